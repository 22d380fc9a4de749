//! Multi-process cluster tests: three `raft-node run` processes on 127.0.0.1 (default
//! election timing), driven over RESP: replication through any node, leader failover under
//! kill -9, durability across a full SIGTERM restart, and catch-up of a lagging follower
//! by snapshot.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{CONVERGE, Client, Cluster, Options, Reply, bulk, field_u64, metric_value, ok};

fn others(c: &Cluster, leader: u64) -> Vec<u64> {
    c.live_ids().into_iter().filter(|&i| i != leader).collect()
}

#[test]
fn write_via_one_node_is_read_via_each_other() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let followers = others(&c, leader);
    let (f1, f2) = (followers[0], followers[1]);
    println!("leader {leader}, followers {followers:?}");

    // A write through a follower (forwarded) and one through the leader.
    let mut cf = c.client(f1);
    assert_eq!(cf.cmd_retry(&["SET", "via-follower", "a"], CONVERGE), ok());
    let mut cl = c.client(leader);
    assert_eq!(cl.cmd_retry(&["SET", "via-leader", "b"], CONVERGE), ok());
    // Linearizable reads: each node sees both writes at once, no waiting.
    for id in [leader, f1, f2] {
        let mut cc = c.client(id);
        assert_eq!(cc.cmd(&["GET", "via-follower"]), bulk("a"), "node {id}");
        assert_eq!(cc.cmd(&["GET", "via-leader"]), bulk("b"), "node {id}");
        assert_eq!(cc.cmd(&["GET", "missing"]), Reply::Nil, "node {id}");
    }

    // INCR / INCRBY / DECR / DECRBY from different nodes add up.
    assert_eq!(c.cmd(f1, &["INCR", "n"]), Reply::Integer(1));
    assert_eq!(c.cmd(f2, &["INCR", "n"]), Reply::Integer(2));
    assert_eq!(c.cmd(leader, &["INCRBY", "n", "40"]), Reply::Integer(42));
    assert_eq!(c.cmd(f2, &["DECR", "n"]), Reply::Integer(41));
    assert_eq!(c.cmd(f1, &["DECRBY", "n", "-1"]), Reply::Integer(42));
    assert_eq!(c.cmd(leader, &["GET", "n"]), bulk("42"));
    match c.cmd(f1, &["INCR", "via-follower"]) {
        Reply::Error(e) => assert!(e.starts_with("ERR value is not an integer"), "{e}"),
        other => panic!("INCR of a non-number: {other:?}"),
    }

    // APPEND returns the new length; the value is the concatenation wherever it is read.
    assert_eq!(c.cmd(f2, &["APPEND", "s", "hello"]), Reply::Integer(5));
    assert_eq!(c.cmd(f1, &["APPEND", "s", " world"]), Reply::Integer(11));
    assert_eq!(c.cmd(leader, &["GET", "s"]), bulk("hello world"));

    // SET NX / XX.
    assert_eq!(c.cmd(f1, &["SET", "s", "x", "NX"]), Reply::Nil);
    assert_eq!(c.cmd(f2, &["SET", "fresh", "x", "XX"]), Reply::Nil);
    assert_eq!(c.cmd(leader, &["SET", "fresh", "y", "NX"]), ok());
    assert_eq!(c.cmd(f1, &["SET", "fresh", "z", "XX"]), ok());
    assert_eq!(c.cmd(f2, &["GET", "fresh"]), bulk("z"));

    // MSET on one node, MGET on another (nil for a missing key, order kept).
    assert_eq!(
        c.cmd(f2, &["MSET", "m1", "v1", "m2", "v2", "m3", "v3"]),
        ok()
    );
    assert_eq!(
        c.cmd(f1, &["MGET", "m1", "nope", "m3", "m2"]),
        Reply::Array(vec![bulk("v1"), Reply::Nil, bulk("v3"), bulk("v2")])
    );

    // EXISTS counts repeats like Redis; DEL counts what it removed.
    assert_eq!(
        c.cmd(leader, &["EXISTS", "m1", "m2", "m1", "nope"]),
        Reply::Integer(3)
    );
    // Keys so far: via-follower, via-leader, n, s, fresh, m1, m2, m3.
    for id in [leader, f1, f2] {
        assert_eq!(c.cmd(id, &["DBSIZE"]), Reply::Integer(8), "node {id}");
    }
    assert_eq!(c.cmd(f1, &["DEL", "m1", "m2", "nope"]), Reply::Integer(2));
    for id in [leader, f1, f2] {
        assert_eq!(
            c.cmd(id, &["EXISTS", "m1", "m2", "m3"]),
            Reply::Integer(1),
            "node {id}"
        );
        assert_eq!(c.cmd(id, &["DBSIZE"]), Reply::Integer(6), "node {id}");
        assert_eq!(c.cmd(id, &["GET", "m1"]), Reply::Nil, "node {id}");
    }

    // Every node applied the same log.
    let commit = c.info_u64(leader, "commit_index");
    for id in [f1, f2] {
        c.wait_applied(id, commit, CONVERGE);
    }
}

/// Writes unique keys to `port` until `stop`; each write has a short client-side deadline
/// (a client that gives up on a stuck request and sends the next one). Returns
/// `(key, sent, acknowledged)` of every acknowledged write.
fn writer(port: u16, prefix: String, stop: Arc<AtomicBool>) -> Vec<(String, Instant, Instant)> {
    let mut acked = Vec::new();
    let mut client: Option<Client> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match Client::try_connect(port) {
                Ok(mut c) => {
                    c.set_timeout(Duration::from_millis(300));
                    client.insert(c)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        i += 1;
        let key = format!("{prefix}-{i}");
        let sent = Instant::now();
        match c.try_cmd(&["SET", &key, &key]) {
            Ok(Reply::Simple(s)) if s == "OK" => acked.push((key, sent, Instant::now())),
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(other) => panic!("SET {key} on port {port}: {other:?}"),
            // A timed-out request: its reply would arrive on this connection later, so
            // start a new one.
            Err(_) => client = None,
        }
    }
    acked
}

#[test]
fn leader_kill9_new_leader_and_writes_continue_within_2s() {
    let mut c = Cluster::start(3);
    let old = c.leader();
    let survivors = others(&c, old);
    // Warm up: both survivors forward writes to the leader.
    for &id in &survivors {
        assert_eq!(
            c.client(id).cmd_retry(&["SET", "warm", "1"], CONVERGE),
            ok()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = survivors
        .iter()
        .map(|&id| {
            let port = c.node(id).client_port;
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, format!("w{id}"), stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let killed_at = Instant::now();
    c.kill9(old);
    // Let the writers run on well past the failover.
    std::thread::sleep(Duration::from_secs(4));
    let new = c.leader();
    assert_ne!(new, old);
    // Writes while the old leader is down, kept for the catch-up check below.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer panicked"))
        .collect();
    let before = acked.iter().filter(|(_, _, a)| *a < killed_at).count();
    assert!(before > 0, "no write was acknowledged before the kill");
    // The first write sent after the kill and acknowledged.
    let first_after = acked
        .iter()
        .filter(|(_, sent, _)| *sent >= killed_at)
        .map(|(_, _, a)| *a)
        .min()
        .expect("no write was acknowledged after the kill");
    let failover = first_after - killed_at;
    let after = acked.iter().filter(|(_, s, _)| *s >= killed_at).count();
    println!(
        "failover: leader {old} killed -9, new leader {new}; first acknowledged write {:.0} ms \
         after the kill ({before} writes acknowledged before, {after} after)",
        failover.as_secs_f64() * 1000.0
    );
    assert!(
        failover < Duration::from_secs(2),
        "writes resumed only {failover:?} after the leader was killed"
    );

    // Every acknowledged write is readable on the new leader.
    let mut cl = c.client(new);
    for (key, _, _) in acked.iter().step_by(7) {
        assert_eq!(cl.cmd(&["GET", key]), bulk(key), "acknowledged {key}");
    }
    let written_while_down = acked
        .iter()
        .rev()
        .find(|(_, s, _)| *s > killed_at)
        .map(|(k, _, _)| k.clone())
        .unwrap();

    // The killed node comes back and catches up.
    c.restart(old);
    let commit = c.info_u64(new, "commit_index");
    let started = Instant::now();
    let info = c.wait_applied(old, commit, CONVERGE);
    println!(
        "node {old} restarted and applied up to {} (leader commit {commit}) in {:?}",
        field_u64(&info, "applied_index"),
        started.elapsed()
    );
    let mut co = c.client(old);
    assert_eq!(
        co.cmd_retry(&["GET", &written_while_down], CONVERGE),
        bulk(&written_while_down)
    );
    assert_eq!(co.cmd(&["GET", "warm"]), bulk("1"));
}

#[test]
fn full_restart_keeps_every_acknowledged_write() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    c.client(leader).cmd_retry(&["SET", "first", "1"], CONVERGE);
    // 500 writes, pipelined 50 at a time, spread over the three nodes.
    let mut acked = Vec::new();
    let mut clients: Vec<Client> = (1..=3).map(|id| c.client(id)).collect();
    let started = Instant::now();
    for batch in 0..10 {
        let cl = &mut clients[batch % 3];
        let keys: Vec<String> = (0..50).map(|i| format!("key-{}", batch * 50 + i)).collect();
        for k in &keys {
            let v = format!("value-of-{k}");
            cl.send(&[b"SET", k.as_bytes(), v.as_bytes()]).unwrap();
        }
        for k in keys {
            match cl.read_reply().unwrap() {
                Reply::Simple(s) if s == "OK" => acked.push(k),
                Reply::Error(e) if e.starts_with("TRYAGAIN") => {}
                other => panic!("SET {k}: {other:?}"),
            }
        }
    }
    println!(
        "{} of 500 writes acknowledged in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() >= 450,
        "only {} writes acknowledged",
        acked.len()
    );
    drop(clients);

    // Followers first, then the leader; each exits 0.
    for id in others(&c, leader) {
        c.term(id);
    }
    c.term(leader);
    for id in 1..=3 {
        c.restart(id);
    }
    let leader = c.leader();
    println!("after the restart: leader {leader}");
    for id in 1..=3 {
        let mut cl = c.client(id);
        assert_eq!(cl.cmd_retry(&["GET", "first"], CONVERGE), bulk("1"));
        for chunk in acked.chunks(100) {
            let mut args = vec!["MGET"];
            args.extend(chunk.iter().map(String::as_str));
            let Reply::Array(values) = cl.cmd(&args) else {
                panic!("MGET on node {id}")
            };
            for (k, v) in chunk.iter().zip(values) {
                assert_eq!(
                    v,
                    bulk(&format!("value-of-{k}")),
                    "{k} on node {id} after restart"
                );
            }
        }
    }
}

/// Every node takes its periodic snapshot only once the log since the last one holds
/// `--snapshot-min-log-bytes` (here about 270 writes' worth), not at the first
/// `--snapshot-interval` entries.
#[test]
fn a_periodic_snapshot_waits_for_enough_log() {
    let args = [
        "--snapshot-interval",
        "100",
        "--snapshot-min-log-bytes",
        "20000",
    ];
    let opts = Options {
        args: args.map(String::from).to_vec(),
        ..Options::default()
    };
    let c = Cluster::start_with(3, opts);
    let leader = c.leader();
    let value = "v".repeat(32);
    let mut cl = c.client(leader);
    let mut write = |from: usize, to: usize| {
        for i in from..to {
            cl.send(&[b"SET", format!("k{i}").as_bytes(), value.as_bytes()])
                .unwrap();
        }
        for i in from..to {
            assert_eq!(cl.read_reply().unwrap(), ok(), "SET k{i}");
        }
    };
    write(0, 200);
    let commit = c.info_u64(leader, "commit_index");
    for id in 1..=3 {
        let info = c.wait_applied(id, commit, CONVERGE);
        assert_eq!(field_u64(&info, "snapshot_index"), 0, "node {id}: {info:?}");
    }
    // What the policy counts, published every tick (50 ms).
    std::thread::sleep(Duration::from_millis(200));
    let m = c.metrics(leader);
    let counted = metric_value(&m, "raft_snapshot_log_bytes");
    assert!((10_000.0..20_000.0).contains(&counted), "{counted}");
    assert_eq!(
        metric_value(&m, "raft_snapshot_log_threshold_bytes"),
        20_000.0
    );
    write(200, 500);
    let deadline = Instant::now() + CONVERGE;
    for id in 1..=3 {
        while c.info_u64(id, "snapshot_index") == 0 {
            assert!(Instant::now() < deadline, "node {id} took no snapshot");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn follower_down_catches_up_by_snapshot() {
    let opts = Options {
        config_toml: Some(
            "keep_trailing = 10\nsnapshot_interval = 200\nsnapshot_min_log_bytes = 0\n".into(),
        ),
        // The flag overrides the file (same value): both paths are exercised.
        args: vec!["--snapshot-interval".into(), "200".into()],
        ..Options::default()
    };
    let mut c = Cluster::start_with(3, opts);
    let leader = c.leader();
    let follower = others(&c, leader)[0];
    c.client(leader)
        .cmd_retry(&["SET", "before", "1"], CONVERGE);
    let commit = c.info_u64(leader, "commit_index");
    let finfo = c.wait_applied(follower, commit, CONVERGE);
    let follower_last = field_u64(&finfo, "last_log_index");
    c.term(follower);

    // 1500 writes through the leader. The first 400 one at a time: each goes out in its own
    // AppendEntries, so the leader's in-flight window to the stopped follower (256 messages)
    // fills up and the log beyond it can reach the follower only by snapshot. (Pipelined
    // writes are batched into a few messages, which the transport queues for the stopped
    // peer and delivers on reconnect: no snapshot would be needed.) The rest pipelined.
    let mut cl = c.client(leader);
    let started = Instant::now();
    for i in 0..400 {
        let k = format!("k{i}");
        assert_eq!(cl.cmd(&["SET", &k, &k]), ok(), "SET {k}");
    }
    for batch in 4..15 {
        for i in 0..100 {
            let k = format!("k{}", batch * 100 + i);
            cl.send(&[b"SET", k.as_bytes(), k.as_bytes()]).unwrap();
        }
        for i in 0..100 {
            assert_eq!(cl.read_reply().unwrap(), ok(), "SET k{}", batch * 100 + i);
        }
    }
    println!(
        "1500 writes with a follower down in {:?}",
        started.elapsed()
    );

    // The leader's log was compacted past everything the follower has.
    let deadline = Instant::now() + CONVERGE;
    let linfo = loop {
        let info = c.raft_info(leader);
        if field_u64(&info, "first_log_index") > follower_last + 1 {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "leader log not compacted past {follower_last}: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "leader {leader}: first_log_index {} snapshot_index {} commit {}; follower {follower} had \
         last_log_index {follower_last}",
        linfo["first_log_index"], linfo["snapshot_index"], linfo["commit_index"]
    );

    c.restart(follower);
    let commit = c.info_u64(leader, "commit_index");
    let started = Instant::now();
    let info = c.wait_applied(follower, commit, CONVERGE);
    println!(
        "follower {follower} applied {} (snapshot_index {}) {:?} after restart",
        info["applied_index"],
        info["snapshot_index"],
        started.elapsed()
    );
    assert!(field_u64(&info, "snapshot_index") > 0, "{info:?}");
    let m = c.metrics(follower);
    let installed = metric_value(
        &m,
        "raft_snapshots_total{kind=\"installed\",outcome=\"ok\"}",
    );
    assert!(
        installed >= 1.0,
        "no installed snapshot in the follower's metrics:\n{}",
        m.lines()
            .filter(|l| l.contains("snapshot"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut cf = c.client(follower);
    for k in ["before", "k0", "k1", "k777", "k1234", "k1499"] {
        let want = if k == "before" { "1" } else { k };
        assert_eq!(cf.cmd_retry(&["GET", k], CONVERGE), bulk(want), "{k}");
    }
    assert_eq!(cf.cmd(&["DBSIZE"]), Reply::Integer(1501));
}

/// RAFT.TRANSFER on the leader hands the leadership to the named follower (raft-core's
/// leadership transfer: catch the target up, then TimeoutNow); writes go on through the new
/// leader, and a transfer asked of a follower or to an unknown node is refused with a reason.
#[test]
fn raft_transfer_moves_the_leadership() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let target = others(&c, leader)[0];
    assert_eq!(
        c.client(leader)
            .cmd_retry(&["SET", "before", "1"], CONVERGE),
        ok()
    );
    let started = Instant::now();
    let reply = c.cmd(leader, &["RAFT.TRANSFER", &target.to_string()]);
    println!(
        "RAFT.TRANSFER {target}: {reply:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(reply, ok());
    assert_eq!(c.raft_info(target)["role"], "leader");
    assert_eq!(c.leader(), target);
    // The old leader follows the new one; a write through it is forwarded there.
    assert_eq!(
        c.client(leader).cmd_retry(&["SET", "after", "2"], CONVERGE),
        ok()
    );
    assert_eq!(c.cmd(target, &["GET", "before"]), bulk("1"));
    assert_eq!(c.cmd(target, &["GET", "after"]), bulk("2"));
    // Refusals say why.
    let Reply::Error(e) = c.cmd(leader, &["RAFT.TRANSFER", &target.to_string()]) else {
        panic!("a follower accepted RAFT.TRANSFER");
    };
    assert!(e.contains("not the leader"), "{e}");
    let Reply::Error(e) = c.cmd(target, &["RAFT.TRANSFER", "99"]) else {
        panic!("a transfer to an unknown node was accepted");
    };
    assert!(e.contains("unknown node 99"), "{e}");
}

/// RAFT.FAULT (started with --enable-fault-injection): the leader cut off from both followers
/// loses the leadership to them; writes go on through the majority, a write sent to the
/// isolated node fails with TRYAGAIN instead of hanging; after HEAL it catches up.
#[test]
fn fault_injection_isolates_the_leader_and_heals() {
    let c = Cluster::start_with(
        3,
        Options {
            args: vec![
                "--enable-fault-injection".into(),
                "--request-timeout-ms".into(),
                "1500".into(),
            ],
            ..Options::default()
        },
    );
    let old = c.leader();
    let rest = others(&c, old);
    assert_eq!(
        c.client(old).cmd_retry(&["SET", "before", "1"], CONVERGE),
        ok()
    );
    // Cut `old` off, on both sides.
    let all: Vec<String> = rest.iter().map(u64::to_string).collect();
    let mut block = vec!["RAFT.FAULT", "BLOCK"];
    block.extend(all.iter().map(String::as_str));
    assert_eq!(c.cmd(old, &block), bulk(&all.join(",")));
    for &id in &rest {
        assert_eq!(
            c.cmd(id, &["RAFT.FAULT", "BLOCK", &old.to_string()]),
            bulk(&old.to_string())
        );
    }
    // The majority elects one of its own and keeps taking writes.
    let deadline = Instant::now() + CONVERGE;
    let new = loop {
        let leaders: Vec<u64> = rest
            .iter()
            .copied()
            .filter(|&id| c.raft_info(id)["role"] == "leader")
            .collect();
        if let [one] = leaders[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "the majority elected no leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        c.client(new).cmd_retry(&["SET", "during", "2"], CONVERGE),
        ok()
    );
    // The isolated node cannot commit: its writes fail (CheckQuorum makes it step down too).
    let mut isolated = c.client(old);
    isolated.set_timeout(Duration::from_secs(10));
    let Reply::Error(e) = isolated.cmd(&["SET", "lost", "3"]) else {
        panic!("an isolated node acknowledged a write");
    };
    assert!(e.starts_with("TRYAGAIN"), "{e}");
    // Heal: the old leader follows the new one and has every write.
    for id in 1..=3 {
        assert_eq!(c.cmd(id, &["RAFT.FAULT", "HEAL"]), bulk(""));
    }
    let commit = c.info_u64(new, "commit_index");
    c.wait_applied(old, commit, CONVERGE);
    let mut healed = c.client(old);
    assert_eq!(healed.cmd_retry(&["GET", "during"], CONVERGE), bulk("2"));
    assert_eq!(healed.cmd(&["GET", "before"]), bulk("1"));
    assert_eq!(c.leader(), new);
}

/// Without --enable-fault-injection the command is refused, and says how to enable it.
#[test]
fn fault_injection_is_off_by_default() {
    let c = Cluster::start(1);
    let Reply::Error(e) = c.cmd(1, &["RAFT.FAULT", "BLOCK", "2"]) else {
        panic!("RAFT.FAULT accepted without --enable-fault-injection");
    };
    assert!(e.contains("--enable-fault-injection"), "{e}");
}
