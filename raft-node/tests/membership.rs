//! Membership changes on real processes: a 3-node cluster grows to 5 under write load (each
//! new node joins empty, catches up as a learner, then is promoted), the old leader is removed,
//! and the cluster shrinks back to 3; every acknowledged write is on the new members.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{CONVERGE, Cluster, Options, Reply, bulk, field_u64, metric_value, ok};

/// Sends RAFT.MEMBER to the leader; retries while the answer says to (a change still being
/// applied, a new leader's first entry not applied yet, no leader).
fn member(c: &Cluster, args: &[&str]) -> Reply {
    let mut all = vec!["RAFT.MEMBER"];
    all.extend_from_slice(args);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut cl = c.client(c.leader());
        cl.set_timeout(Duration::from_secs(15));
        let reply = cl.cmd(&all);
        let retry = matches!(&reply, Reply::Error(e)
            if e.contains("pending") || e.starts_with("TRYAGAIN") || e.contains("not the leader"));
        if !retry || Instant::now() >= deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn voters(c: &Cluster, id: u64) -> String {
    c.raft_info(id)["voters"].clone()
}

/// Waits until node `id` has applied everything the leader had committed when asked.
fn caught_up(c: &Cluster, id: u64) {
    let commit = c.info_u64(c.leader(), "commit_index");
    let info = c.wait_applied(id, commit, CONVERGE);
    println!(
        "node {id} caught up to {} (leader commit {commit})",
        field_u64(&info, "applied_index")
    );
}

#[test]
fn grow_to_five_under_load_remove_the_leader_shrink_to_three() {
    let mut c = Cluster::start_with(
        3,
        Options {
            spares: 2,
            // Small snapshots often: the joining nodes catch up by snapshot, then by log.
            args: [
                "--snapshot-interval",
                "500",
                "--snapshot-min-log-bytes",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    );
    let first = c.leader();
    assert_eq!(
        c.client(first).cmd_retry(&["SET", "before", "0"], CONVERGE),
        ok()
    );
    // Past a snapshot plus the trailing 1,024 entries kept: the leader's log no longer starts
    // at 1, so a new node can only start from a snapshot.
    let mut cl = c.client(first);
    for i in 0..2_000 {
        assert_eq!(cl.cmd(&["SET", &format!("pre{i}"), "x"]), ok());
    }
    let deadline = Instant::now() + CONVERGE;
    while c.info_u64(first, "first_log_index") <= 1 {
        assert!(
            Instant::now() < deadline,
            "the leader never compacted its log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Writes all along, through every original node; only acknowledged ones are checked.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let ports: Vec<u16> = (1..=3).map(|id| c.node(id).client_port).collect();
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let port = ports[(i % 3) as usize];
                let key = format!("k{i}");
                if let Ok(mut cl) = support::Client::try_connect(port) {
                    cl.set_timeout(Duration::from_secs(10));
                    if let Ok(Reply::Simple(s)) = cl.try_cmd(&["SET", &key, &i.to_string()]) {
                        if s == "OK" {
                            acked.lock().unwrap().push((key, i));
                        }
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // Grow: each new node joins empty, is added as a learner, catches up, is promoted.
    for id in [4, 5] {
        c.join(id);
        let addr = format!("127.0.0.1:{}", c.node(id).raft_port);
        assert_eq!(
            member(&c, &["ADD", &id.to_string(), &addr, "LEARNER"]),
            ok()
        );
        assert!(
            c.raft_info(c.leader())["learners"].contains(&id.to_string()),
            "{id} is a learner"
        );
        caught_up(&c, id);
        let installed = metric_value(
            &c.metrics(id),
            "raft_snapshots_total{kind=\"installed\",outcome=\"ok\"}",
        );
        assert!(installed >= 1.0, "node {id} caught up without a snapshot");
        assert_eq!(member(&c, &["PROMOTE", &id.to_string()]), ok());
    }
    assert_eq!(voters(&c, c.leader()), "1,2,3,4,5");

    // A change while asked wrongly says why.
    let Reply::Error(e) = member(&c, &["PROMOTE", "0"]) else {
        panic!("node id 0 accepted");
    };
    assert!(e.contains("positive integer"), "{e}");
    let Reply::Error(e) = member(&c, &["REMOVE", "9"]) else {
        panic!("a stranger removed");
    };
    assert!(e.contains("node 9 is not a member"), "{e}");
    let follower = (1..=5).find(|&id| id != c.leader()).unwrap();
    let Reply::Error(e) = c.cmd(follower, &["RAFT.MEMBER", "REMOVE", "5"]) else {
        panic!("a follower accepted RAFT.MEMBER");
    };
    assert!(e.contains("not the leader"), "{e}");

    // Remove the leader: it steps down once the change commits; another one leads.
    let old = c.leader();
    assert_eq!(member(&c, &["REMOVE", &old.to_string()]), ok());
    let deadline = Instant::now() + CONVERGE;
    let new = loop {
        let l = c.leader();
        if l != old {
            break l;
        }
        assert!(Instant::now() < deadline, "the removed leader kept leading");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("removed leader {old}; node {new} leads");
    assert!(!voters(&c, new).contains(&old.to_string()));

    // Shrink back to three: remove one more of the original nodes.
    let other = (1..=3).find(|&id| id != old && id != new).unwrap();
    assert_eq!(member(&c, &["REMOVE", &other.to_string()]), ok());
    let left = voters(&c, c.leader());
    assert_eq!(left.split(',').count(), 3, "voters {left}");
    assert!(left.contains('4') && left.contains('5'), "voters {left}");

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    println!("{} writes acknowledged during the changes", acked.len());

    // Every acknowledged write is readable through each new member.
    for id in [4, 5] {
        caught_up(&c, id);
        let mut cl = c.client(id);
        assert_eq!(cl.cmd_retry(&["GET", "before"], CONVERGE), bulk("0"));
        assert_eq!(cl.cmd(&["GET", "pre1999"]), bulk("x"));
        for (key, v) in &acked {
            assert_eq!(
                cl.cmd(&["GET", key]),
                bulk(&v.to_string()),
                "{key} on node {id}"
            );
        }
    }
}
