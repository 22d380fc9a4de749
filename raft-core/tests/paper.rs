//! One test per rule of the Raft paper (and thesis) that raft-core implements, in the spirit
//! of etcd-raft's `raft_paper_test.go`.

mod support;

use bytes::Bytes;
use raft_core::{
    Config, ConfigError, Entry, Error, LogIndex, MemStorage, Message, MessageBody, NodeId, RawNode,
    RequestVote, RequestVoteResponse, Role, Term,
};
use support::{Net, SimNode, config, ids, log_of, store_with};

/// AppendEntries to node 1 from `from` in `term`, after `(prev index, prev term)`.
fn append(from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    support::append(from, 1, term, prev, entries, commit)
}

/// Runs a node's ready loop by hand and returns all messages (sent now or after persisting).
fn drain(n: &mut RawNode<MemStorage>) -> Vec<Message> {
    let mut out = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        n.store_mut().append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            n.store_mut().set_hard_state(hs);
        }
        out.extend(rd.messages);
        out.extend(n.on_persisted(rd.number).unwrap());
        if let Some(l) = rd.committed_entries.last() {
            n.on_applied(l.index).unwrap();
        }
    }
    out
}

fn terms(net: &mut Net, id: u64) -> Vec<u64> {
    let raw = net.node(id).raw.as_ref().unwrap();
    let last = raw.status().last_index;
    raw.entries(LogIndex(1), last.next())
        .unwrap()
        .iter()
        .map(|e| e.term.get())
        .collect()
}

#[test]
fn config_is_validated() {
    let mut c = Config::new(NodeId(1));
    c.heartbeat_ticks = 10;
    c.election_ticks = 10;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::HeartbeatNotBelowElection {
            heartbeat: 10,
            election: 10
        })
    ));
    let err = RawNode::new(&c, MemStorage::new(ids(&[1]))).err().unwrap();
    assert!(
        err.to_string()
            .contains("must be smaller than the election timeout"),
        "{err}"
    );
    assert!(matches!(
        Config::new(NodeId(0)).validate(),
        Err(ConfigError::ZeroId)
    ));
    assert!(Config::new(NodeId(1)).validate().is_ok());
}

/// §5.2: election timeouts are chosen randomly from a fixed interval, here [T, 2T).
#[test]
fn election_timeout_is_randomized_in_t_to_2t() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let mut c = Config::new(NodeId(1));
        c.seed = seed;
        c.pre_vote = false;
        let mut n = RawNode::new(&c, MemStorage::new(ids(&[1, 2, 3]))).unwrap();
        let mut ticks = 0;
        while n.status().role == Role::Follower {
            n.tick();
            ticks += 1;
            assert!(
                ticks < 2 * c.election_ticks,
                "seed {seed}: no election within 2T"
            );
        }
        assert!(
            ticks >= c.election_ticks,
            "seed {seed}: election after {ticks} < T ticks"
        );
        seen.insert(ticks);
    }
    assert!(seen.len() >= 5, "timeouts not spread: {seen:?}");
}

/// §5.2: a leader sends heartbeats every H ticks, and an idle leader sends nothing else.
#[test]
fn idle_leader_sends_only_heartbeats_every_h_ticks() {
    let mut net = Net::with_config(&[1, 2, 3], |i| {
        let mut c = config(i);
        c.heartbeat_ticks = 3;
        c
    });
    net.campaign(1);
    net.stabilize();
    for round in 1..=30 {
        net.tick(1);
        let sent: Vec<&Message> = net.queue.iter().collect();
        if round % 3 == 0 {
            assert_eq!(sent.len(), 2, "round {round}");
        } else {
            assert!(sent.is_empty(), "round {round}: {sent:?}");
        }
        assert!(
            sent.iter()
                .all(|m| matches!(m.body, MessageBody::Heartbeat(_)))
        );
        net.stabilize();
    }
    net.assert_safe();
}

/// Message economy: electing a leader in a healthy 3-node cluster takes at most ~30 messages.
#[test]
fn election_message_economy() {
    let mut net = Net::new(&[1, 2, 3]);
    net.campaign(1);
    net.stabilize();
    assert_eq!(net.leader(), Some(1));
    assert!(net.delivered <= 30, "{} messages", net.delivered);
}

/// §5.1: a message with a stale term is rejected; it does not reset the election timer.
#[test]
fn stale_term_message_rejected_without_timer_reset() {
    let mut c = config(1);
    c.pre_vote = false;
    let mut n = RawNode::new(&c, store_with(&[1, 2, 3], &[], 5, 0)).unwrap();
    // Count the ticks to the first election when nothing happens...
    let mut quiet = n.clone_for_test();
    let mut expected = 0;
    while quiet.status().role == Role::Follower {
        quiet.tick();
        expected += 1;
    }
    // ...then interleave stale appends from an old leader: the election comes just as soon.
    let mut ticks = 0;
    while n.status().role == Role::Follower {
        n.step(append(2, 3, (0, 0), vec![], 0)).unwrap();
        let out = drain(&mut n);
        // The old leader learns the current term.
        assert!(
            out.iter().any(|m| m.to == NodeId(2) && m.term >= Term(5)),
            "{out:?}"
        );
        n.tick();
        ticks += 1;
    }
    assert_eq!(ticks, expected);
    assert_eq!(n.status().leader, NodeId::NONE);
}

trait CloneForTest {
    fn clone_for_test(&self) -> Self;
}

impl CloneForTest for RawNode<MemStorage> {
    fn clone_for_test(&self) -> Self {
        let mut c = config(self.status().id.get());
        c.pre_vote = false;
        RawNode::new(&c, self.store().clone()).unwrap()
    }
}

/// §5.2: a candidate that receives AppendEntries from a leader of its term steps down.
#[test]
fn candidate_steps_down_for_leader_of_its_term() {
    let mut c = config(1);
    c.pre_vote = false;
    let mut n = RawNode::new(&c, MemStorage::new(ids(&[1, 2, 3]))).unwrap();
    n.campaign();
    drain(&mut n);
    let st = n.status();
    assert_eq!((st.role, st.term), (Role::Candidate, Term(1)));
    n.step(append(2, 1, (0, 0), vec![], 0)).unwrap();
    let st = n.status();
    assert_eq!(
        (st.role, st.term, st.leader),
        (Role::Follower, Term(1), NodeId(2))
    );
}

fn vote_request(from: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(1),
        term: Term(term),
        body: MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(last_index),
            last_log_term: Term(last_term),
            transfer: false,
        }),
    }
}

fn granted(n: &mut RawNode<MemStorage>) -> Option<bool> {
    let rd = n.ready();
    // A vote granted now changes the hard state, so its answer waits for that write; a
    // refusal, or a vote that is durable already (a retransmitted request), may go out at once.
    let durable = n.store().hard_state();
    for m in &rd.messages {
        if let MessageBody::RequestVoteResponse(RequestVoteResponse { granted: true, .. }) = m.body
        {
            assert!(
                durable.term == m.term && durable.vote == m.to,
                "a vote answer must wait for the vote to be durable"
            );
        }
    }
    if let Some(hs) = rd.hard_state {
        n.store_mut().set_hard_state(hs);
    }
    let answers = n.on_persisted(rd.number).unwrap();
    rd.messages
        .iter()
        .chain(&answers)
        .find_map(|m| match &m.body {
            MessageBody::RequestVoteResponse(v) => Some(v.granted),
            _ => None,
        })
}

/// §5.2: one vote per term, first come first served; the vote is durable before the answer.
#[test]
fn one_vote_per_term_durable_before_reply() {
    let mut n = RawNode::new(&config(1), MemStorage::new(ids(&[1, 2, 3]))).unwrap();
    n.step(vote_request(2, 1, 0, 0)).unwrap();
    assert_eq!(granted(&mut n), Some(true));
    assert_eq!(n.store().hard_state().vote, NodeId(2));
    n.step(vote_request(3, 1, 0, 0)).unwrap();
    assert_eq!(granted(&mut n), Some(false));
    // The same candidate asking again (a retransmission) gets the same answer.
    n.step(vote_request(2, 1, 0, 0)).unwrap();
    assert_eq!(granted(&mut n), Some(true));
    // A new term frees the vote.
    n.step(vote_request(3, 2, 0, 0)).unwrap();
    assert_eq!(granted(&mut n), Some(true));
}

/// §5.4.1: a vote is granted only to a candidate whose log is at least as up to date.
#[test]
fn up_to_date_rule() {
    // Our log: terms 1 1 2 (last index 3, last term 2).
    let cases = [
        (3, 2, true),  // same
        (4, 2, true),  // longer, same last term
        (2, 2, false), // shorter, same last term
        (9, 1, false), // longer but older last term
        (1, 3, true),  // shorter but newer last term
    ];
    for (i, (last_index, last_term, want)) in cases.into_iter().enumerate() {
        let mut n = RawNode::new(&config(1), store_with(&[1, 2, 3], &[1, 1, 2], 2, 0)).unwrap();
        n.step(vote_request(2, 3, last_index, last_term)).unwrap();
        assert_eq!(granted(&mut n), Some(want), "case {i}");
    }
}

/// Figure 7: whatever its log, each follower (a)–(f) ends up with the leader's log.
#[test]
fn figure7_followers_converge() {
    let leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (name, f) in ["a", "b", "c", "d", "e", "f"].iter().zip(followers) {
        let mut net = Net::new(&[1, 2, 3]);
        let v = [1, 2, 3];
        net.nodes.insert(
            NodeId(1),
            SimNode::new(config(1), store_with(&v, &leader, 7, 0)),
        );
        net.nodes
            .insert(NodeId(2), SimNode::new(config(2), store_with(&v, f, 7, 0)));
        net.nodes.insert(
            NodeId(3),
            SimNode::new(config(3), store_with(&v, &leader, 7, 0)),
        );
        net.campaign(1);
        net.stabilize();
        assert_eq!(net.leader(), Some(1), "follower ({name})");
        let want = terms(&mut net, 1);
        assert_eq!(want[..10], leader, "leader log ({name})");
        assert_eq!(
            terms(&mut net, 2),
            want,
            "follower ({name}) did not converge"
        );
        net.assert_safe();
    }
}

/// Figure 8 / §5.4.2: a leader never commits an entry of an earlier term by counting
/// replicas; otherwise S5 could later overwrite it.
#[test]
fn figure8_old_term_entry_not_committed_by_counting() {
    let v = [1, 2, 3, 4, 5];
    let one_entry = |i: u64| {
        let mut c = config(i);
        c.max_size_per_msg = 1; // one entry per append, so index 2 and 3 travel separately
        c.pre_vote = false; // S5 campaigns at once, as in the figure
        c.check_quorum = false; // and S2–S4 vote for it at once, as in the figure
        c
    };
    let mut net = Net::with_config(&v, one_entry);
    // (b)/(c): S1 and S2 hold (2, term 2); S5 holds (2, term 3); all have seen term 3.
    let logs: [&[u64]; 5] = [&[1, 2], &[1, 2], &[1], &[1], &[1, 3]];
    for (i, l) in logs.iter().enumerate() {
        let id = i as u64 + 1;
        net.nodes.insert(
            NodeId(id),
            SimNode::new(one_entry(id), store_with(&v, l, 3, 1)),
        );
    }
    // S1 is elected in term 4 by S2 and S3; S3 never receives S1's own entry (3, term 4).
    net.isolate(4);
    net.isolate(5);
    // S3's first probe (prev 2) passes so S3 rejects it and gets (2, term 2); later appends
    // carrying index 3 are lost.
    let mut seen = 0;
    net.drop_filter = Some(Box::new(move |m: &Message| {
        let carries_3 = matches!(&m.body, MessageBody::AppendEntries(a)
            if a.entries.iter().any(|e| e.index == LogIndex(3)));
        if m.to == NodeId(3) && carries_3 {
            seen += 1;
            return seen > 1;
        }
        false
    }));
    net.campaign(1);
    net.stabilize();
    assert_eq!(net.leader(), Some(1));
    assert_eq!(
        terms(&mut net, 3),
        vec![1, 2],
        "S3 received the term-2 entry"
    );
    // (2, term 2) is on S1, S2, S3 — a majority — but it is of an earlier term.
    assert_eq!(
        net.node(1).raw.as_ref().unwrap().status().commit,
        LogIndex(1)
    );
    // (d): S1 crashes, S5 is elected with S2, S3, S4 and overwrites index 2.
    net.crash(1);
    net.heal();
    net.drop_filter = None;
    for _ in 0..3 {
        if net.leader() != Some(5) {
            net.campaign(5);
            net.stabilize();
        }
    }
    assert_eq!(net.leader(), Some(5));
    for id in 2..=5 {
        assert_eq!(terms(&mut net, id)[..2], [1, 3], "S{id}");
    }
    net.assert_safe();
}

/// §5.3: stale, duplicated or reordered appends never truncate a log.
#[test]
fn stale_or_reordered_append_does_not_truncate() {
    let mut n = RawNode::new(&config(1), store_with(&[1, 2, 3], &[1, 1, 1, 1, 1], 1, 0)).unwrap();
    let app = |prev: u64, terms: &[u64], commit: u64| {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry::new(Term(t), LogIndex(prev + 1 + i as u64), Bytes::new()))
            .collect();
        append(2, 1, (prev, u64::from(prev > 0)), entries, commit)
    };
    // An old append covering 2..3 arrives late: the log keeps its 5 entries.
    n.step(app(1, &[1, 1], 0)).unwrap();
    drain(&mut n);
    assert_eq!(n.status().last_index, LogIndex(5));
    // §5.3: commit = min(leaderCommit, index of last new entry) — not our last index.
    n.step(app(1, &[1], 9)).unwrap();
    drain(&mut n);
    assert_eq!(n.status().commit, LogIndex(2));
    assert_eq!(n.status().last_index, LogIndex(5));
}

/// Async persistence (§10.2.1): the leader counts itself toward the commit quorum only for
/// durable entries, and followers acknowledge only durable entries.
#[test]
fn leader_and_followers_count_only_durable_entries() {
    let mut net = Net::new(&[1, 2, 3]);
    net.campaign(1);
    net.stabilize();
    net.persist_now = false;
    net.isolate(3);
    let (idx, _) = net.propose(1, b"x").unwrap();
    // Deliver the append to node 2; it must not answer before persisting.
    while net.deliver_one() {}
    assert!(
        net.queue.is_empty(),
        "node 2 answered before its write was durable"
    );
    net.persist(2);
    while net.deliver_one() {}
    // Node 2 acknowledged; the leader's own write is not durable: 1 of 3 is no quorum.
    assert!(net.node(1).raw.as_ref().unwrap().status().commit < idx);
    net.persist(1);
    assert_eq!(net.node(1).raw.as_ref().unwrap().status().commit, idx);
    net.assert_safe();
}

/// A crash loses exactly what was not acknowledged durable; term, vote and commit come back.
#[test]
fn crash_discards_unpersisted_and_restores_hard_state() {
    let mut net = Net::new(&[1, 2, 3]);
    net.campaign(1);
    net.stabilize();
    net.propose(1, b"durable").unwrap();
    net.stabilize();
    let before = net.node(1).raw.as_ref().unwrap().status();
    net.persist_now = false;
    net.propose(1, b"lost").unwrap();
    net.crash(1);
    net.restart(1);
    let after = net.node(1).raw.as_ref().unwrap().status();
    assert_eq!(
        after.last_index, before.last_index,
        "unacknowledged entry survived a crash"
    );
    assert_eq!((after.term, after.vote), (before.term, before.vote));
    assert_eq!(after.commit, before.commit);
    net.assert_safe();
}

/// A restarted state machine that persisted its applied index gets only later entries.
#[test]
fn applied_index_survives_restart() {
    let store = store_with(&[1], &[1, 1, 1, 1], 1, 4);
    let mut n = RawNode::with_applied(&config(1), store, LogIndex(3)).unwrap();
    let rd = n.ready();
    let idx: Vec<u64> = rd.committed_entries.iter().map(|e| e.index.get()).collect();
    assert_eq!(idx, vec![4]);
    assert!(matches!(
        n.on_applied(LogIndex(9)),
        Err(Error::InvalidAck(_))
    ));
}

/// Applying may race the hard-state write: a state machine that applied beyond the stored
/// commit index is not handed those entries again after a restart.
#[test]
fn applied_ahead_of_stored_commit_is_not_reapplied() {
    let store = store_with(&[1, 2, 3], &[1, 1, 1, 1], 1, 1);
    let mut n = RawNode::with_applied(&config(1), store, LogIndex(3)).unwrap();
    let st = n.status();
    assert_eq!((st.commit, st.applied), (LogIndex(3), LogIndex(3)));
    assert!(n.ready().committed_entries.is_empty());
}

/// The log may start after a compacted prefix: a cluster whose logs begin at index 11 elects
/// and commits normally.
#[test]
fn log_after_compacted_prefix() {
    let mut net = Net::new(&[1, 2, 3]);
    for id in 1..=3 {
        let s = MemStorage::with_compacted(ids(&[1, 2, 3]), LogIndex(10), Term(3));
        net.nodes.insert(NodeId(id), SimNode::new(config(id), s));
    }
    let l = net.elect();
    let (idx, term) = net.propose(l, b"after").unwrap();
    assert_eq!(idx, LogIndex(12), "the no-op takes 11");
    assert!(term > Term(3));
    net.stabilize();
    for id in 1..=3 {
        let st = net.node(id).raw.as_ref().unwrap().status();
        assert_eq!(st.first_index, LogIndex(11));
        assert!(st.commit >= idx);
    }
}

/// A repeated append answered while the first write is still in flight: the empty ready
/// carries no acknowledgement; it comes with a later ready once the write is durable.
#[test]
fn repeated_ack_waits_for_the_write_in_flight() {
    let mut n = RawNode::new(&config(1), MemStorage::new(ids(&[1, 2, 3]))).unwrap();
    let app = append(2, 1, (0, 0), log_of(&[1, 1]), 0);
    n.step(app.clone()).unwrap();
    let first = n.ready();
    assert!(first.must_persist());
    n.step(app).unwrap();
    let second = n.ready();
    assert!(!second.must_persist());
    assert!(
        second.messages.is_empty(),
        "the repeated ack must not go out early"
    );
    n.store_mut().append(&first.entries).unwrap();
    n.store_mut().set_hard_state(first.hard_state.unwrap());
    // Acknowledging the first write releases both acks (the second repeats the first).
    let answers = n.on_persisted(first.number).unwrap();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(n.on_persisted(second.number).unwrap().is_empty());
}

/// Found by the simulation (5 nodes, seed 9647): an acknowledgement held back until an
/// earlier write is durable must not go out once a new leader has replaced those entries —
/// the old leader could count it toward committing an entry this node no longer holds.
#[test]
fn held_acks_of_replaced_entries_are_dropped() {
    use raft_core::{
        AppendEntries, AppendEntriesResponse, Entry, MemStorage, Message, MessageBody,
    };
    let mut n = raft_core::RawNode::new(
        &support::config(2),
        MemStorage::new(support::ids(&[1, 2, 3])),
    )
    .unwrap();
    let append = |from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>| Message {
        from: NodeId(from),
        to: NodeId(2),
        term: Term(term),
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(0),
            commit_only: false,
        }),
    };
    let ents = |lo: u64, hi: u64, term: u64| -> Vec<Entry> {
        (lo..=hi)
            .map(|i| Entry::new(Term(term), LogIndex(i), bytes::Bytes::new()))
            .collect()
    };
    let acks = |msgs: &[Message]| -> Vec<(u64, u64)> {
        msgs.iter()
            .filter_map(|m| match &m.body {
                MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                    index,
                    reject: None,
                }) => Some((m.term.get(), index.get())),
                _ => None,
            })
            .collect()
    };
    // Leader 1 (term 1) sends 1..=3; the write is in flight.
    n.step(append(1, 1, (0, 0), ents(1, 3, 1))).unwrap();
    let a = n.ready();
    // A duplicate arrives: its answer waits for write A.
    n.step(append(1, 1, (0, 0), ents(1, 3, 1))).unwrap();
    let b = n.ready();
    assert!(acks(&b.messages).is_empty());
    // Leader 3 of term 2 replaces index 2 on.
    n.step(append(3, 2, (1, 1), ents(2, 2, 2))).unwrap();
    let c = n.ready();
    // Writes A and C become durable together (one batch): the "term 1, index 3" answers
    // must not go out, the "term 2, index 2" one must.
    n.store_mut().append(&a.entries).unwrap();
    n.store_mut().append(&c.entries).unwrap();
    if let Some(hs) = c.hard_state {
        n.store_mut().set_hard_state(hs);
    }
    let answers = n.on_persisted(c.number).unwrap();
    assert_eq!(acks(&answers), vec![(2, 2)], "{answers:?}");
    while n.has_ready() {
        let rd = n.ready();
        assert!(acks(&rd.messages).iter().all(|&(term, _)| term == 2));
        n.on_persisted(rd.number).unwrap();
    }
}

/// A commit-only append (the leader's commit index for a follower known to hold its whole
/// log) moves the follower's commit and is not answered; one that does not match the
/// follower's log is still rejected, so a wrong belief of the leader's is corrected.
#[test]
fn commit_only_appends_commit_without_an_answer() {
    use raft_core::{AppendEntriesResponse, MessageBody};
    let mut n = raft_core::RawNode::new(
        &support::config(2),
        support::store_with(&[1, 2, 3], &[1, 1, 1], 1, 0),
    )
    .unwrap();
    let commit_only = |prev: (u64, u64), commit: u64| {
        let mut m = support::append(1, 2, 1, prev, Vec::new(), commit);
        if let MessageBody::AppendEntries(a) = &mut m.body {
            a.commit_only = true;
        }
        m
    };
    let answers = |n: &mut raft_core::RawNode<raft_core::MemStorage>| {
        let mut out = Vec::new();
        while n.has_ready() {
            let rd = n.ready();
            out.extend(rd.messages);
            out.extend(n.on_persisted(rd.number).unwrap());
        }
        out
    };
    n.step(commit_only((3, 1), 3)).unwrap();
    assert!(answers(&mut n).is_empty());
    assert_eq!(n.status().commit, LogIndex(3));
    // The leader thinks we hold index 5; we do not.
    n.step(commit_only((5, 1), 5)).unwrap();
    let out = answers(&mut n);
    assert!(
        matches!(
            out.as_slice(),
            [m] if matches!(m.body, MessageBody::AppendEntriesResponse(AppendEntriesResponse { reject: Some(_), .. }))
        ),
        "{out:?}"
    );
    assert_eq!(n.status().commit, LogIndex(3));
}
