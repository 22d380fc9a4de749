use super::*;
use crate::ctl::probe::tests::answered;

/// RAFT.INFO text of node `id`; `peers` (id, lag, state) only for a leader.
fn info(id: u64, role: &str, term: u64, leader: u64, peers: &[(u64, u64, &str)]) -> String {
    let mut s = format!(
        "node_id:{id}\r\nrole:{role}\r\nterm:{term}\r\nleader_id:{leader}\r\ncommit_index:100\r\n\
         applied_index:100\r\nlast_log_index:101\r\nfirst_log_index:51\r\nsnapshot_index:50\r\n\
         voters:1,2,3\r\nlearners:\r\n"
    );
    for (p, lag, state) in peers {
        s.push_str(&format!(
            "peer{p}:match_index={},next_index=102,state={state},lag={lag}\r\n",
            101u64.saturating_sub(*lag)
        ));
    }
    s
}

fn unreachable(given: &str) -> NodeProbe {
    NodeProbe {
        given: given.into(),
        addr: given.parse().ok(),
        result: Err(ProbeError::Unreachable("connection refused".into())),
    }
}

fn healthy() -> Vec<NodeProbe> {
    let peers = [
        (1, 0, "replicate"),
        (2, 1, "replicate"),
        (3, 0, "replicate"),
    ];
    vec![
        answered("127.0.0.1:7002", &info(2, "follower", 4, 1, &[])),
        answered("127.0.0.1:7001", &info(1, "leader", 4, 1, &peers)),
        answered("127.0.0.1:7003", &info(3, "follower", 4, 1, &[])),
    ]
}

fn healths(s: &Status) -> Vec<String> {
    s.rows.iter().map(|r| r.health.to_string()).collect()
}

#[test]
fn a_healthy_cluster_renders_as_an_aligned_table() {
    let s = Status::assess(&healthy(), DEFAULT_LAG_THRESHOLD);
    assert!(s.is_ok());
    assert_eq!(s.leader, Some((1, 4)));
    assert_eq!(
        s.render(),
        "\
ID  ADDRESS         ROLE      MEMBER  TERM  LEADER  COMMIT  APPLIED  LAST  SNAPSHOT  LAG  HEALTH
 1  127.0.0.1:7001  leader    voter      4       1     100      100   101        50    -  ok
 2  127.0.0.1:7002  follower  voter      4       1     100      100   101        50    1  ok
 3  127.0.0.1:7003  follower  voter      4       1     100      100   101        50    0  ok
leader: node 1 (term 4); 3 of 3 nodes answered; ok
"
    );
}

#[test]
fn json_has_one_object_per_node() {
    let s = Status::assess(&healthy(), DEFAULT_LAG_THRESHOLD);
    let v = s.to_json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["leader"], 1);
    assert_eq!(v["term"], 4);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[1]["id"], 2);
    assert_eq!(nodes[1]["lag"], 1);
    assert_eq!(nodes[1]["replication"], "replicate");
    assert_eq!(nodes[0]["lag"], Value::Null);
    assert_eq!(nodes[0]["health"], "ok");
}

#[test]
fn an_unreachable_node_is_a_problem_and_its_row_says_why() {
    let mut probes = healthy();
    probes[2] = unreachable("127.0.0.1:7003");
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    assert!(!s.is_ok());
    assert_eq!(
        healths(&s),
        [
            "ok",
            "ok",
            "not queried: address not given",
            "unreachable: connection refused"
        ]
    );
    let text = s.render();
    assert!(text.contains("127.0.0.1:7003  -         -"), "{text}");
    assert!(
        text.ends_with("2 of 3 nodes answered; PROBLEMS\n"),
        "{text}"
    );
}

#[test]
fn no_leader_is_said_on_every_row_and_in_the_summary() {
    let probes = vec![
        answered("127.0.0.1:7001", &info(1, "candidate", 9, 0, &[])),
        answered("127.0.0.1:7002", &info(2, "follower", 9, 0, &[])),
        unreachable("127.0.0.1:7003"),
    ];
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    assert!(!s.is_ok());
    assert_eq!(s.leader, None);
    assert_eq!(healths(&s)[..2], ["no leader", "no leader"]);
    assert!(
        s.render()
            .contains("no leader: none of the 2 answering nodes leads")
    );
    let none = Status::assess(&[unreachable("127.0.0.1:7003")], DEFAULT_LAG_THRESHOLD);
    assert!(none.render().ends_with("no node answered (of 1)\n"));
}

#[test]
fn lagging_probing_stale_and_foreign_nodes_are_named() {
    let peers = [(1, 0, "replicate"), (2, 5000, "replicate"), (3, 7, "probe")];
    let probes = vec![
        answered("127.0.0.1:7001", &info(1, "leader", 4, 1, &peers)),
        answered("127.0.0.1:7002", &info(2, "follower", 4, 1, &[])),
        answered("127.0.0.1:7003", &info(3, "leader", 3, 3, &[])),
        answered("127.0.0.1:9009", &info(9, "follower", 1, 8, &[])),
        answered("127.0.0.1:7004", &info(2, "follower", 4, 0, &[])),
    ];
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    assert_eq!(
        healths(&s),
        [
            "ok",
            "duplicate id: also at 127.0.0.1:7004",
            "duplicate id: also at 127.0.0.1:7002",
            "stale leader (term 3)",
            "not a member: leader 1 does not list it",
        ]
    );
    assert!(!s.is_ok());
    let probes = vec![probes[0].clone(), probes[1].clone()];
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    assert_eq!(
        healths(&s),
        ["ok", "lagging 5000", "not queried: address not given"]
    );
    assert!(s.is_ok(), "lagging is a warning");
    let s = Status::assess(&probes, 10_000);
    assert_eq!(healths(&s)[1], "ok");
}

#[test]
fn a_follower_alone_reports_its_leader() {
    let probes = vec![answered("127.0.0.1:7002", &info(2, "follower", 4, 1, &[]))];
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    assert!(s.is_ok());
    assert_eq!((s.leader, s.leader_answered), (Some((1, 4)), false));
    assert_eq!(healths(&s), ["not queried: address not given", "ok"]);
    assert!(
        s.render().contains(
            "leader: node 1 (term 4, as its followers report: its address was not given)"
        )
    );
}

#[test]
fn learners_and_a_joint_change_are_shown() {
    let leader = info(
        1,
        "leader",
        4,
        1,
        &[(1, 0, "replicate"), (2, 0, "replicate")],
    )
    .replace(
        "voters:1,2,3\r\nlearners:\r\n",
        "voters:1,2\r\nlearners:4\r\nvoters_outgoing:1,2,3\r\n",
    );
    let probes = vec![
        answered("127.0.0.1:7001", &leader),
        answered("127.0.0.1:7002", &info(2, "follower", 4, 1, &[])),
        answered("127.0.0.1:7004", &info(4, "follower", 4, 1, &[])),
    ];
    let s = Status::assess(&probes, DEFAULT_LAG_THRESHOLD);
    let members: Vec<_> = s.rows.iter().map(|r| (r.id, r.member)).collect();
    assert_eq!(
        members,
        [
            (Some(1), Some("voter")),
            (Some(2), Some("voter")),
            (Some(3), Some("leaving")),
            (Some(4), Some("learner"))
        ]
    );
    assert_eq!(s.rows[2].health, Health::NotQueried);
    assert!(s.is_ok());
    assert!(
        s.render()
            .ends_with("joint configuration: voters [1, 2] replacing [1, 2, 3]\n")
    );
    let v = s.to_json();
    assert_eq!(v["learners"][0], 4);
    assert_eq!(v["nodes"][3]["member"], "learner");
}
