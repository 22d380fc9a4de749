//! CheckQuorum (Raft thesis §6.2, §9.6) and lease-based reads (§6.4.1), one test per rule:
//! a leader that loses its quorum steps down after one election timeout; a node that heard
//! from a live leader ignores vote requests for a later term unless a leadership transfer
//! asked for them; a leader whose lease holds answers reads without a heartbeat round, and
//! falls back to the round once the lease lapses or while a transfer runs.

mod support;

use bytes::Bytes;
use raft_core::{
    Config, ConfigError, Error, LogIndex, MemStorage, Message, MessageBody, NodeId, RawNode,
    RequestVote, Role, Term,
};
use support::{Net, config, ids};

/// T of the test configuration.
const T: u32 = 10;

/// Test configuration with lease reads: T = 10, H = 1, lease = T - 2 = 8 ticks.
fn lease_config(id: u64) -> Config {
    let mut c = config(id);
    c.read_lease = true;
    c
}

/// A cluster with node 1 elected, its no-op committed and one heartbeat round answered.
fn cluster_with(n: u64, cfg: impl Fn(u64) -> Config) -> Net {
    let ids: Vec<u64> = (1..=n).collect();
    let mut net = Net::with_config(&ids, cfg);
    net.campaign(1);
    net.stabilize();
    round(&mut net);
    assert_eq!(net.status(1).role, Role::Leader);
    net
}

/// One tick of every live node, then the network settles.
fn round(net: &mut Net) {
    net.tick_all(1);
    net.stabilize();
}

fn vote(from: u64, to: u64, term: u64, net: &mut Net, pre_vote: bool, transfer: bool) -> Message {
    let st = net.status(from);
    let last_term = net
        .node(from)
        .raw()
        .entries(st.last_index, st.last_index.next())
        .unwrap()[0]
        .term;
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::RequestVote(RequestVote {
            pre_vote,
            last_log_index: st.last_index,
            last_log_term: last_term,
            transfer,
        }),
    }
}

/// Node `from` asks node `to` for a (pre-)vote in `term`; returns the answers, described.
fn ask(
    net: &mut Net,
    from: u64,
    to: u64,
    term: u64,
    pre_vote: bool,
    transfer: bool,
) -> Vec<String> {
    let m = vote(from, to, term, net, pre_vote, transfer);
    let out = net.step_and_collect(m);
    out.iter().map(support::describe).collect()
}

/// The messages queued now, described.
fn queued(net: &Net) -> Vec<String> {
    net.queue.iter().map(support::describe).collect()
}

// ---- CheckQuorum: the leader ----

/// §6.2: a leader cut off from the majority steps down once an election timeout passed
/// without hearing from a quorum — not earlier, and in its own term.
#[test]
fn leader_cut_off_from_majority_steps_down_after_one_election_timeout() {
    let mut net = cluster_with(5, config);
    net.partition(&[&[1, 2], &[3, 4, 5]]);
    for t in 1..T {
        round(&mut net);
        let st = net.status(1);
        assert_eq!(
            (st.role, st.term),
            (Role::Leader, Term(1)),
            "stepped down after only {t} ticks"
        );
        assert_eq!(st.quorum_silent_ticks, Some(u64::from(t)));
    }
    round(&mut net);
    let st = net.status(1);
    assert_eq!(
        (st.role, st.term, st.leader),
        (Role::Follower, Term(1), NodeId::NONE),
        "still leader after an election timeout without a quorum"
    );
    assert_eq!(st.quorum_silent_ticks, None);
    // The proposals a deposed leader would have taken are refused: the client retries.
    assert!(matches!(net.propose(1, b"x"), Err(Error::NotLeader { .. })));
    // The majority elects a leader of its own and the old one joins it after healing.
    for _ in 0..3 * T {
        round(&mut net);
    }
    let new = net.leader().expect("the majority elects a leader");
    assert!([3, 4, 5].contains(&new));
    net.heal();
    for _ in 0..3 {
        round(&mut net);
    }
    assert_eq!(net.status(1).leader, NodeId(new));
    net.assert_safe();
}

/// A leader that still hears from a quorum stays leader however long a minority is away.
#[test]
fn leader_with_a_quorum_stays_leader() {
    let mut net = cluster_with(5, config);
    net.partition(&[&[1, 2, 3], &[4, 5]]);
    for _ in 0..10 * T {
        round(&mut net);
    }
    let st = net.status(1);
    assert_eq!((st.role, st.term), (Role::Leader, Term(1)));
    assert!(st.quorum_silent_ticks.unwrap() < 2);
    net.assert_safe();
}

/// Without CheckQuorum an isolated leader stays leader (of a term the others left behind).
#[test]
fn without_check_quorum_an_isolated_leader_stays() {
    let mut net = cluster_with(3, |i| {
        let mut c = config(i);
        c.check_quorum = false;
        c
    });
    net.isolate(1);
    for _ in 0..5 * T {
        round(&mut net);
    }
    assert_eq!(net.status(1).role, Role::Leader);
}

// ---- CheckQuorum: leader stickiness ----

/// §9.6: a partitioned follower keeps pre-voting for a later term (pre-vote keeps its own
/// term); when it rejoins, neither its pre-votes nor anything else unseat the leader, and the
/// cluster's term stays.
#[test]
fn rejoining_node_with_higher_pre_vote_term_does_not_unseat_the_leader() {
    let mut net = cluster_with(3, config);
    net.isolate(3);
    for _ in 0..5 * T {
        round(&mut net);
    }
    let st = net.status(3);
    assert_eq!((st.role, st.term), (Role::PreCandidate, Term(1)));
    net.heal();
    // Its pre-vote for term 2 reaches the others while they hear from the leader: refused.
    for to in [1, 2] {
        let answers = ask(&mut net, 3, to, 2, true, false);
        assert_eq!(answers, [format!("{to}->3 t1 PreVoteResp rejected")]);
    }
    // And its timer keeps firing as the cluster runs: still nobody moves.
    for _ in 0..3 * T {
        round(&mut net);
    }
    for id in 1..=3 {
        let st = net.status(id);
        assert_eq!((st.term, st.leader), (Term(1), NodeId(1)), "node {id}");
    }
    net.assert_safe();
}

/// §9.6 leader stickiness: a vote request for a later term is ignored — no answer, no term
/// change — by a follower that heard from its leader within the election timeout and by the
/// leader itself; a pre-vote is refused.
#[test]
fn vote_request_during_a_fresh_leaders_lease_is_ignored() {
    let mut net = cluster_with(3, config);
    // Node 3 asks node 2 and the leader for votes in term 5.
    for to in [2, 1] {
        let out = ask(&mut net, 3, to, 5, false, false);
        assert!(out.is_empty(), "node {to} answered: {out:?}");
        let st = net.status(to);
        assert_eq!(
            (st.term, st.vote, st.leader),
            (Term(1), NodeId(1), NodeId(1))
        );
    }
    // A pre-vote is refused outright, with the current term.
    assert_eq!(
        ask(&mut net, 3, 2, 5, true, false),
        ["2->3 t1 PreVoteResp rejected"]
    );
    // Once node 2's election timer ran out without news from the leader, it grants.
    net.isolate(1);
    for _ in 0..T {
        net.tick(2);
    }
    let answers = ask(&mut net, 3, 2, 5, false, false);
    assert_eq!(answers, ["2->3 t5 VoteResp granted"]);
}

/// §3.10: a vote request marked `transfer` (the leader sent `TimeoutNow`) is granted even
/// while the lease holds, and deposes the leader too.
#[test]
fn transfer_vote_is_granted_during_the_lease() {
    let mut net = cluster_with(3, config);
    let answers = ask(&mut net, 3, 2, 2, false, true);
    assert_eq!(answers, ["2->3 t2 VoteResp granted"]);
    let answers = ask(&mut net, 3, 1, 2, false, true);
    assert_eq!(answers, ["1->3 t2 VoteResp granted"]);
    assert_eq!(net.status(1).role, Role::Follower);
}

/// A transfer completes with CheckQuorum on, and its target wins at once.
#[test]
fn transfer_completes_with_check_quorum() {
    let mut net = cluster_with(3, lease_config);
    net.transfer_leader(1, 3).unwrap();
    net.stabilize();
    let st = net.status(3);
    assert_eq!((st.role, st.term), (Role::Leader, Term(2)));
    net.assert_safe();
}

/// Lease reads: a node restarted less than an election timeout ago may have acknowledged the
/// leader just before it went down, so it ignores votes for a later term until then.
#[test]
fn restarted_node_ignores_votes_for_an_election_timeout() {
    let mut net = cluster_with(3, lease_config);
    net.crash(2);
    net.restart(2);
    let st = net.status(2);
    assert_eq!((st.term, st.leader), (Term(1), NodeId::NONE));
    let out = ask(&mut net, 3, 2, 2, false, false);
    assert!(out.is_empty(), "restarted node answered: {out:?}");
    for _ in 0..T {
        net.tick(2);
    }
    let answers = ask(&mut net, 3, 2, 2, false, false);
    assert_eq!(answers, ["2->3 t2 VoteResp granted"]);
}

// ---- Lease reads ----

fn take_reads(net: &mut Net, id: u64) -> Vec<(String, LogIndex)> {
    net.node(id)
        .read_states
        .drain(..)
        .map(|r| (String::from_utf8_lossy(&r.ctx).into_owned(), r.index))
        .collect()
}

/// §6.4.1: while the lease holds the leader answers a read in the next ready, at its commit
/// index, without a heartbeat round; a follower's forwarded read costs one round trip to the
/// leader and no heartbeats either.
#[test]
fn lease_read_is_answered_without_a_heartbeat_round() {
    let mut net = cluster_with(3, lease_config);
    net.propose(1, b"a").unwrap();
    net.stabilize();
    let st = net.status(1);
    assert!(st.lease_valid);
    assert_eq!(st.commit, LogIndex(2));
    net.read_index(1, &[b"r1"]).unwrap();
    assert!(net.queue.is_empty(), "messages sent: {:?}", queued(&net));
    assert_eq!(take_reads(&mut net, 1), [("r1".into(), LogIndex(2))]);

    net.read_index(2, &[b"r2"]).unwrap();
    net.trace = Some(Vec::new());
    net.stabilize();
    assert_eq!(
        net.trace.take().unwrap(),
        ["2->1 t1 ReadIndex", "1->2 t1 ReadIndexResp index=2"]
    );
    assert_eq!(take_reads(&mut net, 2), [("r2".into(), LogIndex(2))]);
}

/// The safe mode (the default) always confirms with a round.
#[test]
fn without_lease_a_read_takes_a_heartbeat_round() {
    let mut net = cluster_with(3, config);
    let st = net.status(1);
    assert!(!st.lease_valid);
    net.read_index(1, &[b"r"]).unwrap();
    assert_eq!(
        queued(&net),
        [
            "1->2 t1 Heartbeat commit=1 round=1",
            "1->3 t1 Heartbeat commit=1 round=1"
        ]
    );
    assert!(take_reads(&mut net, 1).is_empty());
    net.stabilize();
    assert_eq!(take_reads(&mut net, 1), [("r".into(), LogIndex(1))]);
}

/// The lease lasts `election_ticks - max_clock_drift_ticks` ticks from the send time of the
/// newest heartbeat a quorum acknowledged. An isolated leader (still leader: CheckQuorum needs
/// a whole election timeout) loses it at that point and falls back to a round, which cannot
/// complete.
#[test]
fn lease_lapses_when_the_leader_is_isolated() {
    let mut net = cluster_with(3, lease_config);
    let lease = lease_config(1).lease_ticks();
    assert_eq!(lease, T - 2);
    net.isolate(1);
    for t in 1..lease {
        net.tick(1);
        assert!(net.status(1).lease_valid, "lease lost after {t} ticks");
    }
    net.tick(1);
    let st = net.status(1);
    assert_eq!(st.role, Role::Leader);
    assert!(!st.lease_valid, "lease still valid after {lease} ticks");
    net.queue.clear();
    net.read_index(1, &[b"r"]).unwrap();
    let sent = queued(&net);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|m| m.contains("Heartbeat")), "{sent:?}");
    net.stabilize();
    assert!(
        take_reads(&mut net, 1).is_empty(),
        "read served without a quorum"
    );
    // The leader steps down at the election timeout and fails the read.
    for _ in lease..T {
        net.tick(1);
    }
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(net.node(1).failed_reads, [Bytes::from_static(b"r")]);
}

/// A leader whose lease holds but that has not committed an entry of its term yet (its
/// no-op) answers no read, lease or not (§8).
#[test]
fn no_lease_read_before_the_leaders_first_commit() {
    let mut net = Net::with_config(&[1, 2, 3], lease_config);
    net.campaign(1);
    // Deliver until node 1 is leader, but not the appends of its no-op.
    while net.status(1).role != Role::Leader {
        assert!(net.deliver_one());
    }
    net.read_index(1, &[b"r"]).unwrap();
    assert!(!net.status(1).lease_valid);
    assert!(take_reads(&mut net, 1).is_empty());
    net.stabilize();
    round(&mut net);
    assert_eq!(take_reads(&mut net, 1), [("r".into(), LogIndex(1))]);
}

/// The known raft-rs hazard: during a leadership transfer the target's votes ignore leases,
/// so the leader must not use its lease while one runs. Once the transfer is abandoned
/// without a `TimeoutNow` having been sent, the lease is back.
#[test]
fn no_lease_read_during_a_transfer() {
    let mut net = cluster_with(3, lease_config);
    // Node 3 falls behind, so the transfer to it waits for it to catch up.
    net.isolate(3);
    net.propose(1, b"a").unwrap();
    net.stabilize();
    net.transfer_leader(1, 3).unwrap();
    let st = net.status(1);
    assert_eq!(st.transferring, Some(NodeId(3)));
    assert!(!st.lease_valid);
    net.queue.clear();
    net.read_index(1, &[b"r"]).unwrap();
    assert_eq!(
        queued(&net),
        [
            "1->2 t1 Heartbeat commit=2 round=2",
            "1->3 t1 Heartbeat commit=1 round=2"
        ]
    );
    net.stabilize();
    // Node 2 confirms the round: the read is served the safe way.
    assert_eq!(take_reads(&mut net, 1), [("r".into(), LogIndex(2))]);
    for _ in 0..T {
        round(&mut net);
    }
    let st = net.status(1);
    assert_eq!((st.role, st.transferring), (Role::Leader, None));
    assert!(st.lease_valid, "no TimeoutNow went out: the lease is back");
}

/// Once `TimeoutNow` went out the target may win an election at any time (the message may
/// be delayed), with votes that ignore leases: no lease for the rest of the leader's term.
#[test]
fn no_lease_for_the_rest_of_the_term_after_timeout_now() {
    let mut net = cluster_with(3, lease_config);
    net.isolate(3);
    net.transfer_leader(1, 3).unwrap();
    assert_eq!(queued(&net).last().unwrap(), "1->3 t1 TimeoutNow");
    net.stabilize();
    for _ in 0..2 * T {
        round(&mut net);
    }
    let st = net.status(1);
    assert_eq!(
        (st.role, st.term, st.transferring),
        (Role::Leader, Term(1), None)
    );
    assert!(!st.lease_valid);
    net.read_index(1, &[b"r"]).unwrap();
    assert!(take_reads(&mut net, 1).is_empty());
    net.stabilize();
    assert_eq!(take_reads(&mut net, 1), [("r".into(), LogIndex(1))]);
}

// ---- Configuration ----

#[test]
fn lease_config_is_validated() {
    let c = Config::new(NodeId(1));
    assert!(c.check_quorum && !c.read_lease);
    assert!(c.validate().is_ok());

    let mut c = lease_config(1);
    assert!(c.validate().is_ok());
    c.check_quorum = false;
    assert_eq!(c.validate(), Err(ConfigError::LeaseWithoutCheckQuorum));
    let err = RawNode::new(&c, MemStorage::new(ids(&[1, 2, 3])))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("read_lease requires check_quorum"),
        "{err}"
    );

    let mut c = lease_config(1);
    c.max_clock_drift_ticks = c.election_ticks;
    assert_eq!(
        c.validate(),
        Err(ConfigError::DriftNotBelowElection {
            drift: 10,
            election: 10
        })
    );
    // Without lease reads the drift bound does not matter.
    c.read_lease = false;
    assert!(c.validate().is_ok());
}
