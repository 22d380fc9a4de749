//! Membership changes (§6, Raft thesis chapter 4), one test per rule: configurations take
//! effect when appended, joint configurations need both majorities, one change at a time,
//! learners replicate without voting, a removed leader steps down once its removal is
//! committed, only voters campaign (a node removed by an entry it does not know committed
//! still does), and a joining node starts from a snapshot.

mod support;

use raft_core::{
    ConfChange, ConfChangeError, ConfChangeSingle, ConfChangeTransition, ConfState, Config, Entry,
    EntryKind, Error, LogIndex, MemStorage, NodeId, RawNode, Role, SnapshotMeta, Term,
};
use support::{Net, config, ids};

use ConfChangeSingle::{AddLearner, AddVoter, RemoveNode};

/// A cluster of `voters` with node 1 elected and its first entry applied everywhere.
fn cluster(voters: &[u64]) -> Net {
    let mut net = Net::new(voters);
    net.campaign(1);
    net.stabilize();
    assert_eq!(net.status(1).role, Role::Leader);
    net
}

/// One tick of every live node, then the network settles.
fn round(net: &mut Net) {
    net.tick_all(1);
    net.stabilize();
}

fn rounds(net: &mut Net, n: usize) {
    for _ in 0..n {
        round(net);
    }
}

/// Rounds until `done`, at most `max`.
fn rounds_until(net: &mut Net, max: usize, done: impl Fn(&Net) -> bool) {
    for _ in 0..max {
        round(net);
        if done(net) {
            break;
        }
    }
}

fn voters(v: &[u64]) -> Vec<NodeId> {
    v.iter().map(|&i| NodeId(i)).collect()
}

/// Every live node's configuration.
fn confs(net: &mut Net) -> Vec<(u64, ConfState)> {
    let up: Vec<u64> = net
        .nodes
        .values()
        .filter(|n| n.is_up())
        .map(|n| n.id.get())
        .collect();
    up.into_iter().map(|i| (i, net.conf(i))).collect()
}

/// With `down` crashed, a proposal on leader 1 does not commit; once `back` restarts, it does.
fn commits_only_once_back(net: &mut Net, down: &[u64], back: u64, data: &[u8]) {
    for &id in down {
        net.crash(id);
    }
    let (index, _) = net.propose(1, data).unwrap();
    net.stabilize();
    assert!(net.status(1).commit < index);
    net.restart(back);
    round(net);
    assert!(net.status(1).commit >= index);
}

/// A node waiting to join: no configuration, empty log.
fn join(net: &mut Net, id: u64) {
    net.add_joining(id, config(id));
}

/// Thesis §4.1: "a server always uses the latest configuration in its log, regardless of
/// whether the entry is committed" — on the leader at once, on a follower when it appends.
#[test]
fn configuration_takes_effect_when_appended() {
    let mut net = cluster(&[1, 2, 3]);
    net.isolate(3);
    let (index, _) = net
        .conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap();
    assert_eq!(net.conf(1).learners, voters(&[4]));
    assert!(net.status(1).peers.iter().any(|p| p.id == NodeId(4)));
    // Node 2 appends it but does not know it committed yet.
    while net.status(2).last_index < index {
        assert!(net.deliver_one());
    }
    assert!(net.status(2).commit < index);
    assert_eq!(net.conf(2).learners, voters(&[4]));
    assert_eq!(net.conf(3).learners, voters(&[]));
    net.stabilize();
    net.assert_safe();
}

/// ... and a configuration whose entry a new leader replaces is undone.
#[test]
fn replaced_configuration_entry_is_undone() {
    let mut c = config(5);
    c.pre_vote = false;
    let mut n = RawNode::new(&c, MemStorage::new(ids(&[5, 6, 7]))).unwrap();
    // Leader 6 of term 1 appends a change at index 1, uncommitted.
    let change = Entry {
        term: Term(1),
        index: LogIndex(1),
        kind: EntryKind::ConfChange,
        data: ConfChange::add_learner(NodeId(8)).encode(),
    };
    n.step(support::append(6, 5, 1, (0, 0), vec![change], 0))
        .unwrap();
    assert_eq!(n.conf_state().learners, voters(&[8]));
    let rd = n.ready();
    assert_eq!(rd.conf_state.as_ref(), Some(n.conf_state()));
    // Leader 7 of term 2 has another entry at index 1.
    let plain = Entry::new(Term(2), LogIndex(1), &b"x"[..]);
    n.step(support::append(7, 5, 2, (0, 0), vec![plain], 0))
        .unwrap();
    assert_eq!(n.conf_state(), &ids(&[5, 6, 7]));
    let rd = n.ready();
    assert_eq!(rd.conf_state.as_ref(), Some(&ids(&[5, 6, 7])));
}

/// §6: "agreement (for elections and entry commitment) requires separate majorities from
/// both the old and new configurations." Commitment first: with the new voters down, the
/// old majority alone commits nothing.
#[test]
fn joint_commit_needs_both_majorities() {
    let mut net = cluster(&[1, 2, 3, 4, 5]);
    // {1,2,3,4,5} -> {1,4,5}: explicitly joint, so the configuration stays joint.
    let cc = ConfChange::new(vec![RemoveNode(NodeId(2)), RemoveNode(NodeId(3))])
        .with_transition(ConfChangeTransition::JointExplicit);
    net.conf_change(1, cc).unwrap();
    net.stabilize();
    let cs = net.conf(1);
    assert_eq!(
        (cs.voters.clone(), cs.voters_outgoing.clone()),
        (voters(&[1, 4, 5]), voters(&[1, 2, 3, 4, 5]))
    );
    // 4 and 5 down: {1,2,3} is a majority of the old voters but not of the new.
    // 5 back: {1,5} is a majority of {1,4,5} and {1,2,3} of the old voters.
    commits_only_once_back(&mut net, &[4, 5], 5, b"needs both");
    net.assert_safe();
}

/// ... and elections: a candidate needs a majority of each half.
#[test]
fn joint_election_needs_both_majorities() {
    let mut net = cluster(&[1, 2, 3]);
    // {1,2,3} -> {3,4,5}, with 4 and 5 joining as voters.
    join(&mut net, 4);
    join(&mut net, 5);
    let cc = ConfChange::new(vec![
        AddVoter(NodeId(4)),
        AddVoter(NodeId(5)),
        RemoveNode(NodeId(1)),
        RemoveNode(NodeId(2)),
    ])
    .with_transition(ConfChangeTransition::JointExplicit);
    net.conf_change(1, cc).unwrap();
    rounds(&mut net, 5);
    assert!(net.conf(4).is_joint(), "{:?}", net.conf(4));
    // Node 3 campaigns with 4 and 5 down: 1, 2, 3 are a majority of the old voters only.
    net.crash(1);
    net.crash(4);
    net.crash(5);
    net.campaign(3);
    net.stabilize();
    rounds(&mut net, 30);
    assert_ne!(net.status(3).role, Role::Leader);
    assert_ne!(net.status(2).role, Role::Leader);
    // With 4 back, 3 has {2,3} of the old and {3,4} of the new voters.
    net.restart(4);
    rounds_until(&mut net, 60, |net| net.leader().is_some());
    let l = net.leader().expect("elected with both majorities");
    assert!([2, 3, 4].contains(&l), "{l}");
    net.assert_safe();
}

/// §6 / thesis §4.3: once the joint configuration is committed the leader moves on to the
/// new one by itself (Auto and JointImplicit), and the old voters stop counting.
#[test]
fn joint_configuration_is_left_automatically_once_committed() {
    let mut net = cluster(&[1, 2, 3]);
    join(&mut net, 4);
    let cc = ConfChange::new(vec![AddVoter(NodeId(4)), RemoveNode(NodeId(3))]);
    let (joint_at, _) = net.conf_change(1, cc).unwrap();
    assert!(net.conf(1).is_joint() && net.conf(1).auto_leave);
    rounds(&mut net, 5);
    // The leave entry follows the joint one.
    let st = net.status(1);
    assert!(st.last_index > joint_at);
    let ents = net
        .node(1)
        .raw()
        .entries(joint_at, st.last_index.next())
        .unwrap();
    let kinds: Vec<EntryKind> = ents.iter().map(|e| e.kind).collect();
    assert_eq!(kinds[0], EntryKind::ConfChange);
    assert!(ents[1..].iter().any(|e| e.kind == EntryKind::ConfChange
        && ConfChange::decode(e.data.clone()).unwrap().is_leave_joint()));
    for (id, cs) in confs(&mut net) {
        if id != 3 || cs.is_joint() {
            assert_eq!(cs, ids(&[1, 2, 4]), "node {id}");
        }
    }
    // Node 3 is gone: with it down the new voters commit.
    net.crash(3);
    let (i, _) = net.propose(1, b"after").unwrap();
    net.stabilize();
    assert!(net.status(1).commit >= i);
    net.assert_safe();
}

/// A joint change asked to stay joint stays so until the application leaves it.
#[test]
fn explicit_joint_configuration_waits_for_leave() {
    let mut net = cluster(&[1, 2, 3]);
    let cc = ConfChange::new(vec![AddLearner(NodeId(3))])
        .with_transition(ConfChangeTransition::JointExplicit);
    net.conf_change(1, cc).unwrap();
    rounds(&mut net, 5);
    let cs = net.conf(1);
    assert!(cs.is_joint() && !cs.auto_leave);
    assert_eq!(cs.learners_next, voters(&[3]));
    // Another change is refused while joint (it is applied, so not pending).
    let err = net
        .conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfChange(ConfChangeError::AlreadyJoint)),
        "{err}"
    );
    net.conf_change(1, ConfChange::leave_joint()).unwrap();
    net.stabilize();
    for (id, cs) in confs(&mut net) {
        assert_eq!(
            cs,
            ConfState::with_learners(voters(&[1, 2]), voters(&[3])),
            "{id}"
        );
    }
    net.assert_safe();
}

/// Thesis §4.1 and §4.2: one change at a time — a change is accepted once the previous one is
/// applied — and a new leader changes nothing before it applied the first entry of its term
/// (the fix of the single-server change bug). Other misuse gets typed errors.
#[test]
fn changes_go_one_at_a_time_with_clear_errors() {
    let mut net = Net::new(&[1, 2, 3]);
    let err = net
        .conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
    net.campaign(1);
    // Elected, but its first entry is not applied yet.
    while net.status(1).role != Role::Leader {
        assert!(net.deliver_one());
    }
    let term_start = net.status(1).last_index;
    let err = net
        .conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap_err();
    assert!(
        matches!(err, Error::ConfChangePending { index } if index == term_start),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "a configuration change is pending until index {term_start} is applied: retry then"
        )
    );
    net.stabilize();
    let (first, _) = net
        .conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap();
    let err = net
        .conf_change(1, ConfChange::add_learner(NodeId(5)))
        .unwrap_err();
    assert!(
        matches!(err, Error::ConfChangePending { index } if index == first),
        "{err}"
    );
    net.stabilize();
    net.conf_change(1, ConfChange::add_learner(NodeId(5)))
        .unwrap();
    net.stabilize();
    // Invalid changes say why.
    let err = net.conf_change(1, ConfChange::leave_joint()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfChange(ConfChangeError::NotJoint)),
        "{err}"
    );
    let err = net
        .conf_change(
            1,
            ConfChange::new(vec![
                RemoveNode(NodeId(1)),
                RemoveNode(NodeId(2)),
                RemoveNode(NodeId(3)),
            ]),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration change: the change would leave no voter"
    );
    // No changes while a leadership transfer runs.
    net.isolate(2);
    net.transfer_leader(1, 2).unwrap();
    let err = net
        .conf_change(1, ConfChange::remove_node(NodeId(5)))
        .unwrap_err();
    assert!(matches!(err, Error::TransferInProgress { .. }), "{err}");
    net.assert_safe();
}

/// Learners receive the log and the commit index but never count toward it: voters {1,2}
/// and learner 3 commit nothing while 2 is down, even though 3 acknowledges.
#[test]
fn learners_replicate_but_do_not_count() {
    let mut net = cluster(&[1, 2]);
    join(&mut net, 3);
    net.conf_change(1, ConfChange::add_learner(NodeId(3)))
        .unwrap();
    rounds(&mut net, 5);
    assert_eq!(net.status(3).commit, net.status(1).commit);
    assert_eq!(net.conf(3).learners, voters(&[3]));
    net.crash(2);
    let (i, _) = net.propose(1, b"x").unwrap();
    net.stabilize();
    assert!(net.status(3).last_index >= i, "the learner has it");
    assert!(net.status(1).commit < i, "but it does not count");
    net.restart(2);
    round(&mut net);
    assert!(net.status(3).commit >= i);
    net.assert_safe();
}

/// A node that is not a voter — a learner, a node waiting to join — never campaigns, not
/// even when asked to.
#[test]
fn non_voters_never_campaign() {
    let mut net = cluster(&[1, 2]);
    join(&mut net, 3);
    join(&mut net, 9);
    net.conf_change(1, ConfChange::add_learner(NodeId(3)))
        .unwrap();
    rounds(&mut net, 5);
    net.crash(1);
    for _ in 0..100 {
        net.campaign(3);
        net.campaign(9);
        round(&mut net);
        for id in [3, 9] {
            assert_eq!(net.status(id).role, Role::Follower, "node {id}");
        }
    }
    // The learner is no transfer target either.
    net.restart(1);
    rounds_until(&mut net, 60, |net| net.leader().is_some());
    let l = net.leader().unwrap();
    let err = net.transfer_leader(l, 3).unwrap_err();
    assert!(matches!(err, Error::UnknownPeer(NodeId(3))), "{err}");
    net.assert_safe();
}

/// The usual way in: a node starts empty, waiting to join; it is added as a learner, gets a
/// snapshot first (the leader has none yet: it asks the caller for one), catches up, and is
/// promoted; from then on it counts.
#[test]
fn joining_node_starts_from_a_snapshot_then_is_promoted() {
    let mut net = cluster(&[1, 2, 3]);
    for k in 0..5 {
        net.propose(1, format!("before {k}").as_bytes()).unwrap();
    }
    net.stabilize();
    join(&mut net, 4);
    net.trace = Some(Vec::new());
    net.conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap();
    rounds(&mut net, 5);
    let trace = net.trace.take().unwrap();
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with("4->1") && l.contains("needs snapshot")),
        "{trace:#?}"
    );
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with("1->4") && l.contains("Snapshot"))
    );
    let (leader, learner) = (net.status(1), net.status(4));
    assert_eq!(learner.last_index, leader.last_index);
    assert_eq!(learner.commit, leader.commit);
    assert_eq!(net.node(4).applied.len() as u64, leader.commit.get());
    // Promotion: now 4 counts, so with 2 and 3 down nothing commits, with 3 down it does.
    net.conf_change(1, ConfChange::add_voter(NodeId(4)))
        .unwrap();
    net.stabilize();
    assert_eq!(net.conf(4), ids(&[1, 2, 3, 4]));
    commits_only_once_back(&mut net, &[2, 3], 3, b"four voters");
    net.assert_safe();
}

/// Thesis §4.2.2: a leader removed from the configuration keeps managing the cluster without
/// counting itself until the configuration without it is committed, then steps down; the
/// others elect a leader among themselves and the removed node never campaigns again.
#[test]
fn removed_leader_steps_down_once_its_removal_commits() {
    let mut net = cluster(&[1, 2, 3]);
    let (index, _) = net
        .conf_change(1, ConfChange::remove_node(NodeId(1)))
        .unwrap();
    // Still leader, no longer a voter: its own durable copy does not count.
    assert_eq!(net.status(1).role, Role::Leader);
    assert!(!net.conf(1).is_voter(NodeId(1)));
    net.isolate(3);
    net.stabilize();
    assert!(
        net.status(1).commit < index,
        "1 and 2 are not a majority of {{2, 3}}"
    );
    assert_eq!(net.status(1).role, Role::Leader);
    net.heal();
    round(&mut net);
    // Committed: it stepped down, and told the others the commit index first.
    let st = net.status(1);
    assert!(st.commit >= index);
    assert_eq!((st.role, st.leader), (Role::Follower, NodeId::NONE));
    assert!(net.status(2).commit >= index);
    for _ in 0..100 {
        round(&mut net);
        assert!(
            matches!(net.status(1).role, Role::Follower),
            "the removed node campaigns"
        );
    }
    let l = net.leader().expect("a new leader");
    assert!([2, 3].contains(&l));
    let (i, _) = net.propose(l, b"without 1").unwrap();
    net.stabilize();
    assert!(net.status(l).commit >= i);
    net.assert_safe();
}

/// A leader keeps replicating to a node it removes until the removal commits, and for one
/// more election timeout, so the node learns its removal committed (its application may then
/// stop it); then it leaves it alone.
#[test]
fn removed_follower_learns_its_removal_then_is_left_alone() {
    let mut net = cluster(&[1, 2, 3]);
    let (index, _) = net
        .conf_change(1, ConfChange::remove_node(NodeId(3)))
        .unwrap();
    assert!(net.status(1).peers.iter().any(|p| p.id == NodeId(3)));
    net.stabilize();
    round(&mut net);
    assert!(
        net.status(3).commit >= index,
        "3 learns that its removal committed"
    );
    assert!(!net.conf(3).contains(NodeId(3)));
    rounds(&mut net, 12);
    assert!(net.status(1).peers.iter().all(|p| p.id != NodeId(3)));
    net.trace = Some(Vec::new());
    for _ in 0..50 {
        round(&mut net);
        assert_eq!(net.status(3).role, Role::Follower);
    }
    let trace = net.trace.take().unwrap();
    assert!(!trace.iter().any(|l| l.contains("->3 ")), "{trace:#?}");
    assert_eq!(net.leader(), Some(1));
    net.assert_safe();
}

/// CheckQuorum counts both halves of a joint configuration: a leader that hears from the old
/// majority but not from the new one steps down.
#[test]
fn check_quorum_uses_the_joint_quorum() {
    let mut net = cluster(&[1, 2, 3]);
    join(&mut net, 4);
    join(&mut net, 5);
    let cc = ConfChange::new(vec![AddVoter(NodeId(4)), AddVoter(NodeId(5))])
        .with_transition(ConfChangeTransition::JointExplicit);
    net.conf_change(1, cc).unwrap();
    rounds(&mut net, 5);
    assert!(net.conf(1).is_joint());
    // {1,2,3} answers; of {1,2,3,4,5} only 1, 2, 3: that is a majority of both. Cut 2 and 3
    // instead: {1,4,5} is a majority of the new voters, not of the old ones.
    net.isolate(2);
    net.isolate(3);
    rounds(&mut net, 12);
    assert_ne!(net.status(1).role, Role::Leader);
    net.assert_safe();
}

/// A restarted node finds its configuration again: the snapshot's (or the stored one) with
/// the changes in its log applied; nothing was persisted for it by hand.
#[test]
fn restart_recovers_the_configuration_from_the_log() {
    let mut net = cluster(&[1, 2, 3]);
    net.conf_change(1, ConfChange::add_learner(NodeId(4)))
        .unwrap();
    net.stabilize();
    net.conf_change(1, ConfChange::remove_node(NodeId(3)))
        .unwrap();
    net.stabilize();
    let want = ConfState::with_learners(voters(&[1, 2]), voters(&[4]));
    assert_eq!(net.conf(2), want);
    assert_eq!(net.node(2).raw().store().hard_state().term, Term(1));
    // The stored configuration is still the bootstrap one.
    let stored = raft_core::Storage::initial_state(net.node(2).raw().store()).unwrap();
    assert_eq!(stored.conf_state, ids(&[1, 2, 3]));
    net.crash(2);
    net.restart(2);
    assert_eq!(net.conf(2), want);
    net.assert_safe();
}

/// A snapshot carries the configuration at its index — joint and learner parts included —
/// and a node installing it takes that configuration on; the caller must give the right one.
#[test]
fn snapshots_carry_the_configuration_at_their_index() {
    let mut net = Net::with_config(&[1, 2, 3], |i| {
        let mut c = config(i);
        c.snapshot_interval = 4;
        c
    });
    net.campaign(1);
    net.stabilize();
    join(&mut net, 4);
    let cc = ConfChange::new(vec![AddLearner(NodeId(4)), AddLearner(NodeId(3))])
        .with_transition(ConfChangeTransition::JointExplicit);
    net.conf_change(1, cc).unwrap();
    for k in 0..8 {
        net.propose(1, format!("v{k}").as_bytes()).unwrap();
        round(&mut net);
    }
    // Node 4 joined from a snapshot taken while joint.
    let joint = net.conf(1);
    assert!(joint.is_joint());
    assert_eq!(net.conf(4), joint);
    let snap = raft_core::Storage::snapshot(net.node(4).raw().store())
        .unwrap()
        .unwrap();
    assert_eq!(snap.conf_state, joint);
    // A snapshot with another configuration is refused.
    let raw = net.node(1).raw();
    let at = raw.status().applied;
    let bad = SnapshotMeta {
        index: at,
        term: raw.status().term,
        conf_state: ids(&[1, 2, 3]),
    };
    let err = raw.on_snapshot_taken(bad).unwrap_err();
    assert!(err.to_string().contains("configuration"), "{err}");
    assert_eq!(raw.conf_state_at(at), Some(joint));
    net.assert_safe();
}

/// Any node answers vote requests, a learner included: the candidate's configuration (maybe
/// newer than the learner's) decides whose votes count. Here 3 was promoted by an entry only
/// 2 holds; with 1 down, 2 can win only with 3's vote.
#[test]
fn a_learner_votes_for_a_candidate_that_counts_it() {
    let mut net = cluster(&[1, 2]);
    join(&mut net, 3);
    net.conf_change(1, ConfChange::add_learner(NodeId(3)))
        .unwrap();
    rounds(&mut net, 5);
    // The promotion reaches 2 but not 3, and 1 dies.
    net.isolate(3);
    net.conf_change(1, ConfChange::add_voter(NodeId(3)))
        .unwrap();
    net.stabilize();
    assert!(net.conf(2).voters.contains(&NodeId(3)));
    assert!(net.conf(3).learners.contains(&NodeId(3)));
    net.crash(1);
    net.heal();
    rounds_until(&mut net, 60, |net| net.leader().is_some());
    assert_eq!(net.leader(), Some(2), "2 won with the learner's vote");
    assert_eq!(net.conf(3), ids(&[1, 2, 3]));
    net.assert_safe();
}

/// Restarting with a configuration stored with no voters is allowed: the node waits to join.
#[test]
fn a_node_without_configuration_waits_to_join() {
    let n = RawNode::new(
        &Config::new(NodeId(7)),
        MemStorage::new(ConfState::default()),
    )
    .unwrap();
    assert!(n.conf_state().is_empty());
    let mut n = n;
    for _ in 0..100 {
        n.tick();
    }
    assert_eq!(n.status().role, Role::Follower);
    assert_eq!(n.status().term, Term(0));
}

/// Thesis §4.2.2: "a server that is not part of its own latest configuration should still
/// start new elections, as it might still be needed until the C_new entry is committed." Here
/// leader 2 moves {1,2} to {1,3}, commits the joint configuration, appends the change that
/// leaves it and is cut off before anyone else has that entry. 1 and 3 (still joint) need 2's
/// vote, which their shorter logs cannot get; 2, no longer a voter of its latest
/// configuration but of the committed one, campaigns, wins with {1,3}, commits the change and
/// steps down.
#[test]
fn removed_node_with_the_longest_log_still_campaigns() {
    let mut net = Net::new(&[1, 2]);
    net.campaign(2);
    net.stabilize();
    join(&mut net, 3);
    net.conf_change(2, ConfChange::add_learner(NodeId(3)))
        .unwrap();
    rounds(&mut net, 5);
    let cc = ConfChange::new(vec![AddVoter(NodeId(3)), RemoveNode(NodeId(2))]);
    let (joint_at, _) = net.conf_change(2, cc).unwrap();
    // Deliver until the leader commits the joint configuration (and appends the leave).
    while net.status(2).commit < joint_at {
        assert!(net.deliver_one());
    }
    let leave_at = joint_at.next();
    assert_eq!(net.status(2).last_index, leave_at);
    net.isolate(2);
    net.stabilize();
    assert!(net.status(1).last_index < leave_at);
    assert!(net.conf(1).is_joint() && !net.conf(2).is_joint());
    // 2 loses its quorum and steps down (CheckQuorum); then the network heals.
    rounds(&mut net, 12);
    assert_ne!(net.status(2).role, Role::Leader);
    net.heal();
    rounds_until(&mut net, 100, |net| net.leader().is_some_and(|l| l != 2));
    let l = net.leader().expect("a leader");
    assert!([1, 3].contains(&l), "{l}");
    assert!(net.status(l).commit >= leave_at);
    for (id, cs) in confs(&mut net) {
        assert_eq!(cs, ids(&[1, 3]), "node {id}");
    }
    net.assert_safe();
}

/// A change may hold at most `ConfChange::MAX_CHANGES` operations: one more is refused when
/// proposed (a crafted one would cost quadratic time to apply), and the bound itself is fine.
#[test]
fn a_change_with_too_many_operations_is_refused() {
    let mut net = cluster(&[1, 2, 3]);
    let learners = |n: u64| ConfChange::new((10..10 + n).map(|i| AddLearner(NodeId(i))).collect());
    let over = ConfChange::MAX_CHANGES as u64 + 1;
    let err = net.conf_change(1, learners(over)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfChange(ConfChangeError::TooManyChanges { count, max })
                if count == over as usize && max == ConfChange::MAX_CHANGES
        ),
        "{err}"
    );
    assert_eq!(net.conf(1), ids(&[1, 2, 3]));
    // Nothing was proposed: the next change goes ahead, and one at the bound applies.
    net.conf_change(1, learners(ConfChange::MAX_CHANGES as u64))
        .unwrap();
    net.stabilize();
    for (id, cs) in confs(&mut net) {
        assert_eq!(cs.learners.len(), ConfChange::MAX_CHANGES, "node {id}");
    }
    net.assert_safe();
}
