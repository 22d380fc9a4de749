//! Engine overhead: a 3-node cluster in one thread (in-process message passing, MemStorage,
//! writes durable at once) committing 64-byte proposals with 1, 64 and 1024 proposals in
//! flight. Prints committed proposals per second and entries per AppendEntries, next to a
//! baseline measured in the same run: appending the same entries to MemStorage alone.
//!
//! `cargo bench -p raft-core --bench cluster` (`BENCH_PROPOSALS=N` to change the count).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use raft_core::{
    ConfState, Config, Entry, LogIndex, MemStorage, Message, MessageBody, NodeId, RawNode, Role,
    Term,
};

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    queues: Vec<VecDeque<Message>>,
    appends: u64,
    appended_entries: u64,
    committed: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let voters = ConfState::new([NodeId(1), NodeId(2), NodeId(3)]);
        let nodes = (1..=3)
            .map(|i| {
                let mut c = Config::new(NodeId(i));
                c.max_inflight_msgs = 256;
                RawNode::new(&c, MemStorage::new(voters.clone())).unwrap()
            })
            .collect();
        Cluster {
            nodes,
            queues: vec![VecDeque::new(); 3],
            appends: 0,
            appended_entries: 0,
            committed: 0,
        }
    }

    /// Handles node `i`'s ready; returns whether it had one.
    fn handle(&mut self, i: usize) -> bool {
        let n = &mut self.nodes[i];
        if !n.has_ready() {
            return false;
        }
        let rd = n.ready();
        let store = n.store_mut();
        store.append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            store.set_hard_state(hs);
        }
        let answers = n.on_persisted(rd.number).unwrap();
        if let Some(last) = rd.committed_entries.last() {
            if i == 0 {
                self.committed += rd.committed_entries.len() as u64;
            }
            n.on_applied(last.index).unwrap();
        }
        for m in rd.messages.into_iter().chain(answers) {
            if let MessageBody::AppendEntries(a) = &m.body
                && !a.entries.is_empty()
            {
                self.appends += 1;
                self.appended_entries += a.entries.len() as u64;
            }
            self.queues[m.to.get() as usize - 1].push_back(m);
        }
        true
    }

    fn pump(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..3 {
                while let Some(m) = self.queues[i].pop_front() {
                    self.nodes[i].step(m).unwrap();
                    busy = true;
                }
                busy |= self.handle(i);
            }
            if !busy {
                break;
            }
        }
    }
}

fn run(inflight: u64, total: u64) -> (f64, f64) {
    let mut c = Cluster::new();
    c.nodes[0].campaign();
    c.pump();
    assert_eq!(c.nodes[0].status().role, Role::Leader);
    let base_committed = c.committed;
    let payload = Bytes::from(vec![7u8; 64]);
    let start = Instant::now();
    let mut proposed = 0;
    while c.committed - base_committed < total {
        let outstanding = proposed - (c.committed - base_committed);
        let room = inflight.saturating_sub(outstanding).min(total - proposed);
        for _ in 0..room {
            c.nodes[0].propose(payload.clone()).unwrap();
        }
        proposed += room;
        // One round of the event loop: every node handles what it has.
        for i in 0..3 {
            while let Some(m) = c.queues[i].pop_front() {
                c.nodes[i].step(m).unwrap();
            }
            c.handle(i);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (
        total as f64 / secs,
        c.appended_entries as f64 / c.appends.max(1) as f64,
    )
}

/// Baseline: the same entries appended to a MemStorage, no protocol.
fn baseline(total: u64) -> f64 {
    let payload = Bytes::from(vec![7u8; 64]);
    let mut store = MemStorage::new(ConfState::new([NodeId(1)]));
    let start = Instant::now();
    for i in 1..=total {
        store
            .append(&[Entry::new(Term(1), LogIndex(i), payload.clone())])
            .unwrap();
    }
    black_box(&store);
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let total: u64 = std::env::var("BENCH_PROPOSALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = baseline(total);
    println!(
        "baseline: MemStorage append alone        {:>12.0} entries/s",
        base
    );
    println!("3-node cluster, 64-byte proposals, {total} committed per row:");
    println!(
        "{:>10} {:>16} {:>18} {:>14}",
        "in-flight", "committed/s", "entries/append", "vs baseline"
    );
    for inflight in [1, 64, 1024] {
        let n = if inflight == 1 { total / 10 } else { total };
        let (rate, per_append) = run(inflight, n);
        println!(
            "{:>10} {:>16.0} {:>18.1} {:>13.2}x",
            inflight,
            rate,
            per_append,
            rate / base
        );
    }
}
