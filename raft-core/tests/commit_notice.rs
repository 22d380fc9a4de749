//! How followers learn the commit index: with the next append when proposals follow an
//! acknowledgement, and, with `Config::defer_commit_notice`, without empty appends of their own.

mod support;
use raft_core::{LogIndex, Message, MessageBody, NodeId};
use support::{Net, config};

fn appends_from(queue: &[Message], leader: u64) -> Vec<(NodeId, usize, LogIndex)> {
    let mut out: Vec<_> = queue
        .iter()
        .filter(|m| m.from == NodeId(leader))
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries(a) => Some((m.to, a.entries.len(), a.leader_commit)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn deferred_net() -> Net {
    Net::with_config(&[1, 2, 3], |i| {
        let mut c = config(i);
        c.defer_commit_notice = true;
        // A tick without a heartbeat, so that what the tick itself sends shows.
        c.heartbeat_ticks = 3;
        c
    })
}

/// Delivers what is queued to the followers and returns their answers without delivering
/// them, so that the test decides what the leader sees before its next ready.
fn answers_to_leader(net: &mut Net, leader: u64) -> Vec<Message> {
    let to_followers: Vec<Message> = net.queue.drain(..).collect();
    let mut answers = Vec::new();
    for m in to_followers {
        assert_ne!(m.to, NodeId(leader));
        answers.extend(net.step_and_collect(m));
    }
    answers
}

/// An acknowledgement that commits an entry, followed by a proposal before the next ready:
/// each follower gets one append carrying both the new entry and the new commit index, not a
/// commit-only append and then the entry.
#[test]
fn an_ack_and_a_proposal_before_one_ready_share_one_append() {
    let mut net = Net::new(&[1, 2, 3]);
    let l = net.elect();
    net.stabilize();
    let (x, _) = net.propose(l, b"x").unwrap();
    let acks = answers_to_leader(&mut net, l);
    assert_eq!(acks.len(), 2, "{acks:?}");
    let raw = net.node(l).raw.as_mut().unwrap();
    for m in acks {
        raw.step(m).unwrap();
    }
    let (y, _) = net.propose(l, b"y").unwrap();
    assert_eq!(net.status(l).commit, x);
    let queued: Vec<Message> = net.queue.iter().cloned().collect();
    let followers: Vec<NodeId> = [1, 2, 3]
        .into_iter()
        .filter(|&i| i != l)
        .map(NodeId)
        .collect();
    assert_eq!(
        appends_from(&queued, l),
        vec![(followers[0], 1, x), (followers[1], 1, x)],
        "one append per follower with entry {y} and commit {x}"
    );
    net.stabilize();
    net.assert_safe();
}

/// With deferred notices a steady stream of writes sends no commit-only append: each append
/// carries the commit index the previous one's answers made, and the tick tells the rest.
#[test]
fn deferred_commit_notices_ride_on_the_next_append_or_the_tick() {
    let mut net = deferred_net();
    let l = net.elect();
    net.stabilize();
    let followers: Vec<u64> = (1..=3).filter(|&i| i != l).collect();
    let mut commit_only = 0;
    let mut last = net.status(l).commit;
    for i in 0..5 {
        let (idx, _) = net.propose(l, format!("v{i}").as_bytes()).unwrap();
        net.trace = Some(Vec::new());
        net.stabilize();
        let trace = net.trace.take().unwrap();
        commit_only += trace.iter().filter(|t| t.contains("commit only")).count();
        assert_eq!(net.status(l).commit, idx);
        for &f in &followers {
            // The append of this entry carried the commit of the one before.
            assert_eq!(net.status(f).commit, last, "node {f} after entry {idx}");
        }
        last = idx;
    }
    assert_eq!(commit_only, 0);
    // The leader's tick (without a heartbeat) tells them the last one, in commit-only appends.
    net.trace = Some(Vec::new());
    net.tick(l);
    net.stabilize();
    let trace = net.trace.take().unwrap();
    assert_eq!(
        trace.iter().filter(|t| t.contains("commit only")).count(),
        2,
        "{trace:?}"
    );
    assert!(!trace.iter().any(|t| t.contains("Heartbeat")), "{trace:?}");
    for &f in &followers {
        assert_eq!(net.status(f).commit, last, "node {f}");
    }
    net.assert_safe();
}

/// A follower that asks for a read index is not held by a deferred notice: the heartbeat
/// round that confirms the read tells it the commit index (the lease case, without a round,
/// is the next test).
#[test]
fn a_follower_read_is_not_held_by_a_deferred_notice() {
    let mut net = deferred_net();
    let l = net.elect();
    net.stabilize();
    let (idx, _) = net.propose(l, b"x").unwrap();
    net.stabilize();
    let f = if l == 1 { 2 } else { 1 };
    assert!(net.status(f).commit < idx);
    net.read_index(f, &[b"r"]).unwrap();
    net.stabilize();
    let n = net.node(f);
    assert_eq!(n.read_states.len(), 1);
    assert_eq!(n.read_states[0].index, idx);
    assert!(net.status(f).commit >= idx);
    net.assert_safe();
}

/// With lease reads the leader answers a follower's read at once, possibly while an append to
/// it is still in flight: the follower is then told the commit index with the next append its
/// acknowledgement lets go, not at the next tick.
#[test]
fn a_lease_read_behind_an_append_in_flight_is_told_with_its_ack() {
    let mut net = Net::with_config(&[1, 2, 3], |i| {
        let mut c = config(i);
        c.defer_commit_notice = true;
        c.read_lease = true;
        c
    });
    let l = net.elect();
    net.stabilize();
    // A heartbeat round acknowledged by a quorum starts the lease.
    net.tick(l);
    net.stabilize();
    let (f, other) = if l == 1 {
        (2, 3)
    } else {
        (1, if l == 2 { 3 } else { 2 })
    };
    let (idx, _) = net.propose(l, b"x").unwrap();
    // The append to `f` is held back; the other follower's answer commits the entry.
    let held: Vec<Message> = net
        .queue
        .iter()
        .filter(|m| m.to == NodeId(f))
        .cloned()
        .collect();
    net.queue.retain(|m| m.to != NodeId(f));
    net.stabilize();
    assert_eq!(net.status(l).commit, idx);
    assert!(net.status(other).commit < idx, "deferred");
    net.read_index(f, &[b"r"]).unwrap();
    net.stabilize();
    assert_eq!(net.node(f).read_states[0].index, idx);
    assert!(net.status(f).commit < idx, "f does not hold the entry yet");
    net.queue.extend(held);
    net.stabilize();
    assert_eq!(
        net.status(f).commit,
        idx,
        "told with the append after its ack"
    );
    net.assert_safe();
}
