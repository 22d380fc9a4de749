//! Leadership transfer (Raft thesis §3.10), one test per rule: the leader brings the target
//! up to date, refuses proposals meanwhile, sends `TimeoutNow`; the target campaigns at once
//! (no pre-vote) and wins; a transfer that cannot finish within an election timeout is
//! abandoned.

mod support;

use raft_core::{
    Error, LogIndex, Message, MessageBody, NodeId, RequestVote, Role, Term, TimeoutNow,
};
use support::Net;

/// A 3-node cluster with node 1 leader of term 1 and one committed proposal everywhere.
fn cluster() -> Net {
    let mut net = Net::new(&[1, 2, 3]);
    net.campaign(1);
    net.stabilize();
    net.propose(1, b"a").unwrap();
    net.stabilize();
    let st = net.node(1).raw().status();
    assert_eq!(
        (st.role, st.term, st.commit),
        (Role::Leader, Term(1), LogIndex(2))
    );
    net
}

/// The messages queued from `from` to `to`, described.
fn queued(net: &Net, from: u64, to: u64) -> Vec<String> {
    net.queue
        .iter()
        .filter(|m| m.from == NodeId(from) && m.to == NodeId(to))
        .map(support::describe)
        .collect()
}

fn timeout_now(from: u64, to: u64, term: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::TimeoutNow(TimeoutNow {}),
    }
}

/// §3.10: a transfer to a follower that holds the leader's whole log sends `TimeoutNow` at
/// once; the target campaigns at the next term without pre-vote, wins within a couple of
/// message rounds, and the old leader steps down to follower.
#[test]
fn transfer_to_up_to_date_follower() {
    let mut net = cluster();
    net.transfer_leader(1, 2).unwrap();
    assert_eq!(net.status(1).transferring, Some(NodeId(2)));
    assert_eq!(queued(&net, 1, 2), ["1->2 t1 TimeoutNow"]);

    // Round 1: TimeoutNow. The target campaigns at once at term 2, skipping pre-vote (pre-vote
    // is on, and would fail: everybody just heard from the leader).
    assert!(net.deliver_one());
    let st = net.status(2);
    assert_eq!((st.role, st.term), (Role::Candidate, Term(2)));
    let votes: Vec<String> = net.queue.iter().map(support::describe).collect();
    assert_eq!(
        votes,
        [
            "2->1 t2 Vote last=2/1 transfer",
            "2->3 t2 Vote last=2/1 transfer"
        ]
    );
    // Round 2: the vote requests and their answers.
    let mut delivered = 0;
    while net.status(2).role != Role::Leader {
        assert!(net.deliver_one(), "node 2 did not win");
        delivered += 1;
    }
    assert!(delivered <= 3, "took {delivered} messages");
    let old = net.status(1);
    assert_eq!(
        (old.role, old.term, old.transferring),
        (Role::Follower, Term(2), None)
    );
    net.stabilize();
    for id in [1, 3] {
        assert_eq!(net.status(id).leader, NodeId(2));
    }
    // The new leader commits.
    let (index, term) = net.propose(2, b"b").unwrap();
    net.stabilize();
    assert_eq!(term, Term(2));
    for id in [1, 2, 3] {
        assert!(net.status(id).commit >= index);
    }
    net.assert_safe();
}

/// §3.10: a target that lags is brought up to date first: the leader sends it appends at
/// once, and `TimeoutNow` only after the target acknowledged the leader's last index.
#[test]
fn transfer_to_lagging_follower_replicates_first() {
    let mut net = cluster();
    net.isolate(3);
    for i in 0..5u8 {
        net.propose(1, &[i]).unwrap();
    }
    net.stabilize();
    net.heal();
    let last = net.status(1).last_index;
    assert!(net.status(3).last_index < last);

    net.transfer_leader(1, 3).unwrap();
    let sent = queued(&net, 1, 3);
    assert!(
        sent.len() == 1 && sent[0].contains("App"),
        "expected an append right away, got {sent:?}"
    );
    net.trace = Some(Vec::new());
    net.stabilize();
    let trace = net.trace.take().unwrap();
    let timeout_at = trace
        .iter()
        .position(|l| l.contains("TimeoutNow"))
        .expect("TimeoutNow sent");
    let caught_up = format!("3->1 t1 AppResp ok index={last}");
    let ack_at = trace
        .iter()
        .position(|l| *l == caught_up)
        .unwrap_or_else(|| panic!("no {caught_up:?} in {trace:#?}"));
    assert!(ack_at < timeout_at, "{trace:#?}");
    assert_eq!(
        trace.iter().filter(|l| l.contains("TimeoutNow")).count(),
        1,
        "{trace:#?}"
    );

    let st = net.status(3);
    assert_eq!((st.role, st.term), (Role::Leader, Term(2)));
    assert_eq!(net.status(1).role, Role::Follower);
    net.assert_safe();
}

/// While a transfer runs the leader refuses proposals with a typed error naming the target;
/// a target that cannot be reached makes the transfer time out after one election timeout,
/// and the old leader, still leader, accepts proposals again.
#[test]
fn proposals_refused_during_transfer_and_accepted_after_abort() {
    let mut net = cluster();
    let election = net.node(1).cfg.election_ticks;
    net.isolate(3);
    net.transfer_leader(1, 3).unwrap();
    for _ in 0..election - 1 {
        match net.propose(1, b"x") {
            Err(Error::TransferInProgress { to }) => assert_eq!(to, NodeId(3)),
            other => panic!("proposal during transfer: {other:?}"),
        }
        net.tick(1);
        net.stabilize();
    }
    let st = net.status(1);
    assert_eq!((st.role, st.transferring), (Role::Leader, Some(NodeId(3))));
    let err = net.propose(1, b"x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "leadership transfer to 3 in progress: retry on the new leader"
    );

    // The election timeout elapses: abandoned.
    net.tick(1);
    net.stabilize();
    let st = net.status(1);
    assert_eq!(
        (st.role, st.term, st.transferring),
        (Role::Leader, Term(1), None)
    );
    let (index, _) = net.propose(1, b"y").unwrap();
    net.stabilize();
    assert!(net.status(2).commit >= index);
    net.assert_safe();
}

/// A second transfer to the same target changes nothing (its timeout keeps running); one to
/// another target replaces it and restarts the timeout.
#[test]
fn repeated_transfer_is_a_noop_and_another_target_replaces_it() {
    let mut net = cluster();
    let election = net.node(1).cfg.election_ticks;
    net.isolate(3);
    net.transfer_leader(1, 3).unwrap();
    for _ in 0..election / 2 {
        net.tick(1);
    }
    net.stabilize();
    let queued_before = net.queue.len();
    net.transfer_leader(1, 3).unwrap();
    assert_eq!(
        net.queue.len(),
        queued_before,
        "a repeated transfer sends nothing"
    );
    for _ in election / 2..election {
        net.tick(1);
    }
    net.stabilize();
    assert_eq!(
        net.status(1).transferring,
        None,
        "the first timeout kept running"
    );

    // Replace a transfer to the unreachable 3 by one to 2, which is up to date.
    net.transfer_leader(1, 3).unwrap();
    net.stabilize();
    net.transfer_leader(1, 2).unwrap();
    assert_eq!(net.status(1).transferring, Some(NodeId(2)));
    assert_eq!(queued(&net, 1, 2), ["1->2 t1 TimeoutNow"]);
    net.stabilize();
    assert_eq!(net.status(2).role, Role::Leader);
    net.assert_safe();
}

/// Transfers that cannot start fail with typed errors and change nothing.
#[test]
fn transfer_errors_are_typed() {
    let mut net = Net::new(&[1, 2, 3]);
    // Nobody leads yet.
    assert!(matches!(
        net.transfer_leader(2, 3),
        Err(Error::NotLeader { leader }) if leader.is_none()
    ));
    net.campaign(1);
    net.stabilize();
    // A follower points at the leader.
    assert!(matches!(
        net.transfer_leader(2, 3),
        Err(Error::NotLeader { leader: NodeId(1) })
    ));
    let err = net.transfer_leader(1, 1).unwrap_err();
    assert!(matches!(err, Error::TransferToSelf), "{err}");
    let err = net.transfer_leader(1, 9).unwrap_err();
    assert!(matches!(err, Error::UnknownPeer(NodeId(9))), "{err}");
    assert_eq!(
        err.to_string(),
        "unknown node 9: not a voter of the configuration"
    );
    assert!(net.queue.is_empty());
    assert_eq!(net.status(1).transferring, None);
    net.propose(1, b"still accepted").unwrap();
}

/// Only the current leader's `TimeoutNow` makes a follower campaign: one from another node,
/// from a former leader (a stale term), or one arriving at a candidate or a leader, is
/// ignored.
#[test]
fn timeout_now_from_non_leader_is_ignored() {
    let mut net = cluster();
    // From a follower of the same term.
    let out = net.step_and_collect(timeout_now(3, 2, 1));
    assert!(out.is_empty(), "{out:?}");
    let st = net.status(2);
    assert_eq!(
        (st.role, st.term, st.leader),
        (Role::Follower, Term(1), NodeId(1))
    );
    // At the leader itself.
    let out = net.step_and_collect(timeout_now(2, 1, 1));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(net.status(1).role, Role::Leader);

    // Node 2 takes over in term 2; node 1's TimeoutNow of term 1 is now stale, and node 1
    // does not lead term 2.
    net.transfer_leader(1, 2).unwrap();
    net.stabilize();
    assert_eq!(net.status(2).role, Role::Leader);
    for m in [timeout_now(1, 3, 1), timeout_now(1, 3, 2)] {
        let out = net.step_and_collect(m);
        assert!(out.is_empty(), "{out:?}");
        let st = net.status(3);
        assert_eq!(
            (st.role, st.term, st.leader),
            (Role::Follower, Term(2), NodeId(2))
        );
    }
    // The real leader's TimeoutNow works (a positive control for the cases above).
    let out = net.step_and_collect(timeout_now(2, 3, 2));
    assert_eq!(net.status(3).role, Role::Candidate);
    assert!(out.iter().any(|m| matches!(
        m.body,
        MessageBody::RequestVote(RequestVote {
            transfer: true,
            pre_vote: false,
            ..
        })
    )));
}

/// A lost `TimeoutNow` is sent again with the next heartbeat answer of the caught-up target.
#[test]
fn lost_timeout_now_is_repeated() {
    let mut net = cluster();
    let mut dropped = 0;
    net.drop_filter = Some(Box::new(move |m: &Message| {
        let first = matches!(m.body, MessageBody::TimeoutNow(_)) && dropped == 0;
        if first {
            dropped += 1;
        }
        first
    }));
    net.transfer_leader(1, 2).unwrap();
    net.stabilize();
    assert_eq!(
        net.status(1).role,
        Role::Leader,
        "the first one was dropped"
    );
    let hb = net.node(1).cfg.heartbeat_ticks;
    for _ in 0..hb {
        net.tick(1);
    }
    net.stabilize();
    assert_eq!(net.status(2).role, Role::Leader);
    assert_eq!(net.status(1).role, Role::Follower);
}

/// A leader that steps down (a higher term) forgets its transfer.
#[test]
fn leader_stepping_down_forgets_its_transfer() {
    let mut net = cluster();
    net.isolate(3);
    net.transfer_leader(1, 3).unwrap();
    net.stabilize();
    // A leader of a later term makes itself known (a vote request would be ignored: with
    // CheckQuorum a leader keeps its lease until it loses its quorum).
    net.step_and_collect(support::append(2, 1, 5, (0, 0), Vec::new(), 0));
    let st = net.status(1);
    assert_eq!(
        (st.role, st.term, st.transferring),
        (Role::Follower, Term(5), None)
    );
    assert!(matches!(net.propose(1, b"x"), Err(Error::NotLeader { .. })));
}

/// A pre-vote cannot carry the transfer flag: such a message is malformed.
#[test]
fn pre_vote_with_transfer_flag_is_malformed() {
    let mut net = cluster();
    let m = Message {
        from: NodeId(2),
        to: NodeId(3),
        term: Term(2),
        body: MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(2),
            last_log_term: Term(1),
            transfer: true,
        }),
    };
    let err = net.node(3).raw().step(m).unwrap_err();
    assert!(matches!(err, Error::MalformedMessage { .. }), "{err}");
}
