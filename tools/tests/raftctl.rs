//! `raftctl` against a real 3-node cluster: the status table and its JSON, membership
//! (a learner added and removed), leadership transfer, a snapshot, and the clear errors (an
//! unreachable address, an unknown node, a refused command, a learner asked to lead).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{RAFTCTL, TestCluster, dead_addr, run, stderr, stdout};

/// `raftctl status --json` through RAFTCTL_NODES, parsed.
fn status_json(addrs: &str) -> Value {
    let out = run(RAFTCTL, &["status", "--json"], &[("RAFTCTL_NODES", addrs)]);
    serde_json::from_slice(&out.stdout).expect("status --json prints one JSON object")
}

/// Waits until status is ok (followers are briefly "probing" after an election).
fn wait_ok(addrs: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = status_json(addrs);
        if v["ok"] == true
            && v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                // Followers learn the commit index from the next append or heartbeat
                // (`defer_commit_notice`): up to a heartbeat after the leader.
                .all(|n| n["health"] == "ok" && n["commit_index"].as_u64() >= Some(1))
        {
            return v;
        }
        assert!(Instant::now() < deadline, "status not ok within 10 s: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_shows_every_node_and_one_leader() {
    let c = TestCluster::start();
    let addrs = c.addrs();
    let v = wait_ok(&addrs);

    let out = run(RAFTCTL, &["status", "--nodes", &addrs], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID  ADDRESS"), "{text}");
    let rows: Vec<Vec<&str>> = lines[1..4]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 5, "header, 3 rows, summary:\n{text}");
    assert_eq!(rows.iter().filter(|r| r[2] == "leader").count(), 1);
    let leader = rows.iter().find(|r| r[2] == "leader").unwrap()[0];
    for (i, r) in rows.iter().enumerate() {
        // ID ADDRESS ROLE MEMBER TERM LEADER COMMIT APPLIED LAST SNAPSHOT LAG HEALTH
        let n = |col: usize| r[col].parse::<u64>().unwrap();
        let (term, commit, applied, last, snapshot) = (n(4), n(6), n(7), n(8), n(9));
        assert_eq!(n(0), i as u64 + 1, "rows by id");
        assert_eq!(r[3], "voter");
        assert!(term >= 1);
        assert_eq!(r[5], leader);
        assert!(commit >= 1, "the leader's first entry is committed");
        assert!(
            applied <= commit && commit <= last,
            "applied <= commit <= last"
        );
        assert!(snapshot <= applied);
        assert_eq!(r[10] == "-", r[2] == "leader", "a lag for each follower");
        assert_eq!(r[11], "ok");
    }
    assert!(
        lines[4].starts_with(&format!("leader: node {leader} ")),
        "{text}"
    );

    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(v["leader"].to_string(), leader);
    assert_eq!(Some(v["leader"].as_u64().unwrap()), c.leader());

    // An unknown id, and a membership change the leader refuses: clear errors, exit 1.
    let out = run(RAFTCTL, &["--nodes", &addrs, "snapshot", "9"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no node with id 9 among the answering nodes (answering: 1 at"));
    let out = run(
        RAFTCTL,
        &["--nodes", &addrs, "member", "add", "9", "not-an-address"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("node {leader} at ")),
        "sent to the leader"
    );
    assert!(
        err.contains(" refused: ERR "),
        "the node's refusal, verbatim"
    );
}

#[test]
fn a_learner_is_added_shown_refused_leadership_and_removed() {
    let c = TestCluster::start();
    let addrs = c.addrs();
    wait_ok(&addrs);
    // Never started: it only has to be in the configuration.
    let out = run(
        RAFTCTL,
        &[
            "--nodes",
            &addrs,
            "member",
            "add",
            "4",
            &dead_addr(),
            "--learner",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("node 4 added as a learner at 127.0.0.1:"));
    let v = status_json(&addrs);
    assert_eq!(v["learners"], serde_json::json!([4]));
    let n4 = &v["nodes"][3];
    assert_eq!((&n4["id"], &n4["member"]), (&4.into(), &"learner".into()));
    assert_eq!(n4["health"], "not queried: address not given");
    assert_eq!(v["ok"], true, "a member not given is no problem");

    let out = run(RAFTCTL, &["--nodes", &addrs, "transfer-leader", "4"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("node 4 is a learner: only a voter can lead"));

    let out = run(RAFTCTL, &["--nodes", &addrs, "member", "remove", "4"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("node 4 removed (by leader node "));
    assert_eq!(status_json(&addrs)["nodes"].as_array().unwrap().len(), 3);
}

#[test]
fn transfer_leader_moves_leadership_and_snapshot_returns_an_index() {
    let c = TestCluster::start();
    let addrs = c.addrs();
    let from = wait_ok(&addrs)["leader"].as_u64().unwrap();
    let to = from % 3 + 1;

    let out = run(
        RAFTCTL,
        &["--nodes", &addrs, "transfer-leader", &to.to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with(&format!("leadership moved from node {from} to node {to}")));
    assert_eq!(status_json(&addrs)["leader"], to);
    assert_eq!(c.leader(), Some(to));

    let out = run(RAFTCTL, &["--nodes", &addrs, "transfer-leader", "9"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("node 9 is not in the cluster: leader"));

    let out = run(
        RAFTCTL,
        &["--nodes", &addrs, "snapshot", &from.to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let prefix = format!("node {from}: snapshot taken at index ");
    let index: u64 = stdout(&out)
        .trim()
        .strip_prefix(&prefix)
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("{prefix}N expected"));
    assert!(index >= 1);
    let v = status_json(&addrs);
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == from)
        .unwrap();
    assert!(node["snapshot_index"].as_u64().unwrap() >= index);
}

#[test]
fn unreachable_nodes_give_a_clear_message_and_a_failing_status() {
    let dead = dead_addr();
    let out = run(RAFTCTL, &["status", "--nodes", &dead], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(&format!("{dead}  -")), "{text}");
    assert!(text.contains("unreachable: connection refused"), "{text}");
    assert!(text.ends_with("no node answered (of 1)\n"), "{text}");

    let out = run(RAFTCTL, &["--nodes", &dead, "transfer-leader", "2"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "raftctl: error: none of the given nodes answered: {dead}: unreachable: \
             connection refused\n"
        )
    );

    let out = run(RAFTCTL, &["status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --nodes HOST:PORT,... or set RAFTCTL_NODES"));
}
