//! Snapshots end to end in the core (§7): a follower partitioned while the leader takes a
//! snapshot and compacts its log catches up by snapshot, then by log, and ends with the same
//! state machine; stale and already-covered snapshots change nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use raft_core::{
    ConfState, Config, InstallSnapshot, LogIndex, MemStorage, Message, MessageBody, NodeId,
    ProgressState, RawNode, Role, SnapshotMeta, Storage, Term,
};

/// A state machine: the normal entries applied, by index.
type Sm = BTreeMap<u64, Bytes>;

struct Node {
    raw: RawNode<MemStorage>,
    sm: Sm,
    /// Snapshots this node took or installed: their data.
    snapshots: HashMap<u64, Sm>,
}

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    queue: VecDeque<Message>,
    cut: Vec<u64>,
    /// Data of snapshots in flight, keyed by (to, index): what the transfer would carry.
    transfers: HashMap<(u64, u64), Sm>,
    /// Transfers fail: InstallSnapshot messages are dropped (and counted).
    fail_transfers: bool,
    failed_transfers: usize,
    /// Every snapshot suggested: (node, whether it was needed rather than periodic).
    suggested: Vec<(u64, bool)>,
}

fn voters() -> ConfState {
    ConfState::new([NodeId(1), NodeId(2), NodeId(3)])
}

impl Cluster {
    fn new(snapshot_interval: u64) -> Cluster {
        let nodes = (1..=3)
            .map(|id| {
                let mut cfg = Config::new(NodeId(id));
                cfg.snapshot_interval = snapshot_interval;
                cfg.seed = 7;
                let raw = RawNode::new(&cfg, MemStorage::new(voters())).unwrap();
                (
                    id,
                    Node {
                        raw,
                        sm: Sm::new(),
                        snapshots: HashMap::new(),
                    },
                )
            })
            .collect();
        Cluster {
            nodes,
            queue: VecDeque::new(),
            cut: Vec::new(),
            transfers: HashMap::new(),
            fail_transfers: false,
            failed_transfers: 0,
            suggested: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Runs every node's readies and delivers messages until quiet. Writes are durable at
    /// once; snapshots are taken when due and compact the log right away.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            for (&id, n) in self.nodes.iter_mut() {
                while n.raw.has_ready() {
                    progress = true;
                    let rd = n.raw.ready();
                    let mut out = rd.messages;
                    if let Some(meta) = &rd.snapshot {
                        let data = self
                            .transfers
                            .remove(&(id, meta.index.get()))
                            .expect("snapshot data was transferred");
                        n.raw.store_mut().apply_snapshot(meta.clone());
                        n.sm = data.clone();
                        n.snapshots.insert(meta.index.get(), data);
                    }
                    n.raw.store_mut().append(&rd.entries).unwrap();
                    if let Some(hs) = rd.hard_state {
                        n.raw.store_mut().set_hard_state(hs);
                    }
                    out.extend(n.raw.on_persisted(rd.number).unwrap());
                    if let Some(meta) = &rd.snapshot {
                        n.raw.on_applied(meta.index).unwrap();
                    }
                    for e in &rd.committed_entries {
                        if !e.data.is_empty() {
                            n.sm.insert(e.index.get(), e.data.clone());
                        }
                        n.raw.on_applied(e.index).unwrap();
                    }
                    if let Some(at) = rd.snapshot_due {
                        self.suggested.push((id, n.raw.snapshot_needed()));
                        let data: Sm =
                            n.sm.range(..=at.get())
                                .map(|(k, v)| (*k, v.clone()))
                                .collect();
                        let meta = SnapshotMeta {
                            index: at,
                            term: n.raw.store().term(at).unwrap(),
                            conf_state: voters(),
                        };
                        n.raw.store_mut().set_snapshot(meta.clone());
                        n.raw.on_snapshot_taken(meta).unwrap();
                        n.raw.store_mut().compact(at).unwrap();
                        n.snapshots.insert(at.get(), data);
                    }
                    for m in out {
                        if let MessageBody::InstallSnapshot(InstallSnapshot { meta }) = &m.body {
                            if self.fail_transfers {
                                self.failed_transfers += 1;
                                continue;
                            }
                            // What raft-snapshot would stream before the message is delivered.
                            let data = n.snapshots[&meta.index.get()].clone();
                            self.transfers.insert((m.to.get(), meta.index.get()), data);
                        }
                        self.queue.push_back(m);
                    }
                }
            }
            while let Some(m) = self.queue.pop_front() {
                progress = true;
                if self.cut.contains(&m.from.get()) || self.cut.contains(&m.to.get()) {
                    continue;
                }
                let _ = self.node(m.to.get()).raw.step(m);
            }
            if !progress {
                return;
            }
        }
        panic!("the cluster never settled");
    }

    fn tick(&mut self, id: u64, n: usize) {
        for _ in 0..n {
            self.node(id).raw.tick();
            self.settle();
        }
    }

    fn propose(&mut self, leader: u64, n: usize, tag: &str) {
        for i in 0..n {
            self.node(leader)
                .raw
                .propose(Bytes::from(format!("{tag}-{i}")))
                .unwrap();
            self.settle();
        }
    }

    fn peer_state(&mut self, leader: u64, peer: u64) -> ProgressState {
        let st = self.node(leader).raw.status();
        st.peers
            .iter()
            .find(|p| p.id == NodeId(peer))
            .unwrap()
            .state
    }
}

#[test]
fn partitioned_follower_catches_up_by_snapshot_then_by_log() {
    let mut c = Cluster::new(20);
    c.node(1).raw.campaign();
    c.settle();
    assert_eq!(c.node(1).raw.status().role, Role::Leader);
    c.propose(1, 5, "before");

    // Node 3 is cut off while the leader's log moves on, snapshots and compacts.
    c.cut = vec![3];
    c.propose(1, 60, "during");
    let leader = c.node(1).raw.status();
    assert!(leader.snapshot_index >= LogIndex(40), "{leader:?}");
    assert!(
        leader.first_index > LogIndex(10),
        "the leader compacted: {leader:?}"
    );
    let behind = c.node(3).raw.status().last_index;
    assert!(
        behind < leader.first_index,
        "node 3 needs compacted entries"
    );

    // Healed: the next heartbeat round finds node 3 behind the compaction point.
    c.cut.clear();
    c.tick(1, 3);
    let st3 = c.node(3).raw.status();
    assert!(
        st3.snapshot_index >= leader.snapshot_index,
        "node 3 installed a snapshot: {st3:?}"
    );
    assert_eq!(c.peer_state(1, 3), ProgressState::Replicate);

    // And then by log.
    c.propose(1, 10, "after");
    c.tick(1, 2);
    let want = c.node(1).sm.clone();
    for id in [2, 3] {
        assert_eq!(c.node(id).sm, want, "node {id}'s state machine");
    }
    let st3 = c.node(3).raw.status();
    assert_eq!(st3.commit, c.node(1).raw.status().commit);
    assert_eq!(st3.applied, st3.commit);
    // Node 3's storage starts after the snapshot and holds what came after it by log.
    let store = c.node(3).raw.store();
    assert_eq!(store.first_index().unwrap(), st3.snapshot_index.next());
    assert_eq!(store.last_index().unwrap(), st3.last_index);
}

/// A periodic snapshot may be put off; one a follower waits for may not
/// (`RawNode::snapshot_needed` tells them apart).
#[test]
fn periodic_snapshots_are_suggested_and_a_lagging_followers_is_needed() {
    let mut c = Cluster::new(20);
    c.node(1).raw.campaign();
    c.settle();
    c.propose(1, 50, "x");
    assert!(c.suggested.len() >= 6, "every node's periodic ones");
    assert!(c.suggested.iter().all(|&(_, needed)| !needed));

    // No periodic snapshots; the leader's storage drops entries node 3 lacks, with no
    // snapshot to cover them.
    let mut c = Cluster::new(0);
    c.node(1).raw.campaign();
    c.settle();
    c.cut = vec![3];
    c.propose(1, 30, "y");
    c.node(1).raw.store_mut().compact(LogIndex(20)).unwrap();
    assert!(c.suggested.is_empty());
    c.cut.clear();
    c.tick(1, 3);
    assert_eq!(c.suggested, [(1, true)], "the leader needs one for node 3");
    let want = c.node(1).sm.clone();
    assert_eq!(c.node(3).sm, want, "and node 3 got it");
}

#[test]
fn a_failed_transfer_is_retried() {
    let mut c = Cluster::new(20);
    c.node(1).raw.campaign();
    c.settle();
    c.cut = vec![3];
    c.propose(1, 50, "x");
    c.cut.clear();
    c.fail_transfers = true;
    c.tick(1, 3);
    assert_eq!(
        c.failed_transfers, 1,
        "one snapshot sent, and no resend while in flight"
    );
    assert_eq!(c.peer_state(1, 3), ProgressState::Snapshot);
    let index = c.node(1).raw.status().snapshot_index;
    c.node(1).raw.report_snapshot(NodeId(3), index, false);
    assert_eq!(c.peer_state(1, 3), ProgressState::Probe);
    // The next rounds send it again, and this time it arrives.
    c.fail_transfers = false;
    c.tick(1, 3);
    assert_eq!(c.peer_state(1, 3), ProgressState::Replicate);
    let want = c.node(1).sm.clone();
    assert_eq!(c.node(3).sm, want);
}

#[test]
fn stale_or_covered_snapshots_change_nothing() {
    let mut c = Cluster::new(0);
    c.node(1).raw.campaign();
    c.settle();
    c.propose(1, 10, "x");
    let before = c.node(2).raw.status();
    // A snapshot at an index node 2 already committed: answered, nothing restored.
    let m = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: before.term,
        body: MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(5),
                term: Term(before.term.get()),
                conf_state: voters(),
            },
        }),
    };
    c.node(2).raw.step(m).unwrap();
    let rd = c.node(2).raw.ready();
    assert!(rd.snapshot.is_none());
    c.node(2).raw.on_persisted(rd.number).unwrap();
    let after = c.node(2).raw.status();
    assert_eq!(after.last_index, before.last_index);
    assert_eq!(after.commit, before.commit);
}

/// Found by the simulation (5 nodes, seed 4247): a second snapshot restored before the
/// first one is durable. Persisting the first still makes its prefix durable, so applying it
/// never runs ahead of durability.
#[test]
fn two_snapshots_restored_before_either_is_durable() {
    let mut cfg = Config::new(NodeId(2));
    cfg.snapshot_interval = 0;
    let mut raw = RawNode::new(&cfg, MemStorage::new(voters())).unwrap();
    let install = |index: u64| Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(2),
        body: MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(2),
                conf_state: voters(),
            },
        }),
    };
    raw.step(install(11)).unwrap();
    let first = raw.ready();
    assert_eq!(first.snapshot.as_ref().unwrap().index, LogIndex(11));
    raw.step(install(27)).unwrap();
    let second = raw.ready();
    assert_eq!(second.snapshot.as_ref().unwrap().index, LogIndex(27));

    raw.store_mut()
        .apply_snapshot(first.snapshot.clone().unwrap());
    raw.on_persisted(first.number).unwrap();
    raw.on_applied(LogIndex(11)).unwrap();
    let st = raw.status();
    assert!(st.applied <= st.durable, "{st:?}");

    raw.store_mut()
        .apply_snapshot(second.snapshot.clone().unwrap());
    raw.on_persisted(second.number).unwrap();
    raw.on_applied(LogIndex(27)).unwrap();
    let st = raw.status();
    assert_eq!(
        (st.applied, st.durable, st.commit),
        (LogIndex(27), LogIndex(27), LogIndex(27))
    );
    assert_eq!(raw.store().first_index().unwrap(), LogIndex(28));
}
