//! A test cluster for raft-core: simulated nodes, a controllable network and the safety
//! checker. Shared by the scenario, paper, simulation tests and the benchmark.
#![allow(dead_code)]

pub mod checker;
pub mod node;

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;
use raft_core::{
    AppendEntries, ConfChange, ConfState, Config, Entry, HardState, LogIndex, MemStorage, Message,
    MessageBody, NodeId, Role, Term,
};

pub use checker::Checker;
pub use node::SimNode;

/// Test configuration: T = 10 ticks, H = 1 tick, pre-vote on, seed from the node id.
pub fn config(id: u64) -> Config {
    let mut c = Config::new(NodeId(id));
    c.seed = 42;
    c
}

/// A voting configuration of the given ids.
pub fn ids(v: &[u64]) -> ConfState {
    ConfState::new(v.iter().map(|&i| NodeId(i)))
}

/// A log of empty entries with the given terms, starting at index 1.
pub fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry::new(Term(t), LogIndex(i as u64 + 1), Bytes::new()))
        .collect()
}

/// AppendEntries from `from` to `to` in `term`, after `(prev index, prev term)`.
pub fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
            commit_only: false,
        }),
    }
}

/// A store holding a log with the given terms and the given hard-state term and commit.
pub fn store_with(voters: &[u64], terms: &[u64], hs_term: u64, commit: u64) -> MemStorage {
    let mut s = MemStorage::new(ids(voters));
    s.append(&log_of(terms)).unwrap();
    s.set_hard_state(HardState {
        term: Term(hs_term),
        vote: NodeId::NONE,
        commit: LogIndex(commit),
    });
    s
}

/// The leader of the highest term among the live nodes, if any.
pub fn leader_of(nodes: &BTreeMap<NodeId, SimNode>) -> Option<NodeId> {
    nodes
        .values()
        .filter_map(|n| n.raw.as_ref().map(|r| r.status()))
        .filter(|s| s.role == Role::Leader)
        .max_by_key(|s| s.term)
        .map(|s| s.id)
}

/// Decides which messages the network loses.
pub type DropFilter = Box<dyn FnMut(&Message) -> bool>;

/// A cluster on a FIFO network that the test drives step by step.
pub struct Net {
    pub nodes: BTreeMap<NodeId, SimNode>,
    pub queue: VecDeque<Message>,
    pub checker: Checker,
    /// Directed links that drop messages.
    pub cut: HashSet<(NodeId, NodeId)>,
    /// Writes become durable as soon as they are handed out.
    pub persist_now: bool,
    /// Messages delivered so far.
    pub delivered: u64,
    /// When set, every delivered message is described here.
    pub trace: Option<Vec<String>>,
    /// Drop every message the filter returns true for.
    pub drop_filter: Option<DropFilter>,
}

impl Net {
    pub fn new(ids: &[u64]) -> Net {
        Net::with_config(ids, config)
    }

    pub fn with_config(ids: &[u64], cfg: impl Fn(u64) -> Config) -> Net {
        let voters = self::ids(ids);
        let nodes = ids
            .iter()
            .map(|&i| {
                (
                    NodeId(i),
                    SimNode::new(cfg(i), MemStorage::new(voters.clone())),
                )
            })
            .collect();
        let mut checker = Checker::default();
        checker.track_conf(voters);
        Net {
            nodes,
            queue: VecDeque::new(),
            checker,
            cut: HashSet::new(),
            persist_now: true,
            delivered: 0,
            trace: None,
            drop_filter: None,
        }
    }

    /// Adds node `id` waiting to join: no configuration, an empty log.
    pub fn add_joining(&mut self, id: u64, cfg: Config) {
        let node = SimNode::new(cfg, MemStorage::new(ConfState::default()));
        self.nodes.insert(NodeId(id), node);
    }

    /// Asks `id` to propose a configuration change.
    pub fn conf_change(&mut self, id: u64, cc: ConfChange) -> raft_core::Result<(LogIndex, Term)> {
        let raw = self.node(id).raw.as_mut().expect("node is up");
        let r = raw.propose_conf_change(cc);
        self.settle(NodeId(id));
        r
    }

    /// Node `id`'s configuration.
    pub fn conf(&mut self, id: u64) -> ConfState {
        self.node(id).raw().conf_state().clone()
    }

    pub fn node(&mut self, id: u64) -> &mut SimNode {
        self.nodes.get_mut(&NodeId(id)).expect("known node")
    }

    /// Node `id`'s status.
    pub fn status(&mut self, id: u64) -> raft_core::Status {
        self.node(id).raw().status()
    }

    /// Steps `m` into its recipient and returns what the recipient sends in response (its
    /// writes made durable at once), without queueing it.
    pub fn step_and_collect(&mut self, m: Message) -> Vec<Message> {
        let n = self.nodes.get_mut(&m.to).expect("known node");
        n.raw().step(m).unwrap();
        let mut out = Vec::new();
        n.drain(true, &mut self.checker, &mut out);
        out
    }

    fn settle(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let persist = self.persist_now;
        let n = self.nodes.get_mut(&id).expect("known node");
        n.drain(persist, &mut self.checker, &mut out);
        self.queue.extend(out);
    }

    pub fn tick(&mut self, id: u64) {
        let n = self.node(id);
        if let Some(raw) = n.raw.as_mut() {
            raw.tick();
        }
        self.settle(NodeId(id));
    }

    pub fn tick_all(&mut self, times: u32) {
        for _ in 0..times {
            let ids: Vec<u64> = self.nodes.keys().map(|k| k.get()).collect();
            for id in ids {
                self.tick(id);
            }
        }
    }

    /// Asks `id` to hand leadership over to `to`.
    pub fn transfer_leader(&mut self, id: u64, to: u64) -> raft_core::Result<()> {
        let raw = self.node(id).raw.as_mut().expect("node is up");
        let r = raw.transfer_leader(NodeId(to));
        self.settle(NodeId(id));
        r
    }

    pub fn campaign(&mut self, id: u64) {
        if let Some(raw) = self.node(id).raw.as_mut() {
            raw.campaign();
        }
        self.settle(NodeId(id));
    }

    pub fn propose(&mut self, id: u64, data: &[u8]) -> raft_core::Result<(LogIndex, Term)> {
        let raw = self.node(id).raw.as_mut().expect("node is up");
        let r = raw.propose(Bytes::copy_from_slice(data));
        self.settle(NodeId(id));
        r
    }

    /// Proposes several entries before the node's next ready, so they share appends.
    pub fn propose_many(
        &mut self,
        id: u64,
        data: Vec<Vec<u8>>,
    ) -> raft_core::Result<(LogIndex, Term)> {
        let raw = self.node(id).raw.as_mut().expect("node is up");
        let r = raw.propose_batch(data.into_iter().map(Bytes::from).collect());
        self.settle(NodeId(id));
        r
    }

    /// Requests read indexes for all `ctxs` before the node's next ready (one round).
    pub fn read_index(&mut self, id: u64, ctxs: &[&[u8]]) -> raft_core::Result<()> {
        let raw = self.node(id).raw.as_mut().expect("node is up");
        let mut r = Ok(());
        for ctx in ctxs {
            r = r.and(raw.read_index(Bytes::copy_from_slice(ctx)));
        }
        self.settle(NodeId(id));
        r
    }

    /// Makes pending writes of `id` durable (when `persist_now` is off).
    pub fn persist(&mut self, id: u64) {
        let mut out = Vec::new();
        let n = self.nodes.get_mut(&NodeId(id)).expect("known node");
        n.persist_all(&mut self.checker, &mut out);
        self.queue.extend(out);
    }

    /// Delivers the next message; returns false when none is queued.
    pub fn deliver_one(&mut self) -> bool {
        let Some(m) = self.queue.pop_front() else {
            return false;
        };
        let dropped = self.cut.contains(&(m.from, m.to))
            || self.drop_filter.as_mut().is_some_and(|f| f(&m))
            || !self.nodes.get(&m.to).is_some_and(SimNode::is_up);
        if let Some(t) = self.trace.as_mut() {
            t.push(format!(
                "{}{}",
                if dropped { "DROP " } else { "" },
                describe(&m)
            ));
        }
        if let MessageBody::InstallSnapshot(s) = &m.body
            && let Some(raw) = self.nodes.get_mut(&m.from).and_then(|n| n.raw.as_mut())
        {
            // The caller reports how the snapshot transfer ended.
            raw.report_snapshot(m.to, s.meta.index, !dropped);
        }
        if dropped {
            return true;
        }
        self.delivered += 1;
        let to = m.to;
        let n = self.nodes.get_mut(&to).expect("checked above");
        if let Err(e) = n.raw().step(m) {
            self.checker
                .violations
                .push(format!("node {to} step error: {e}"));
        }
        self.settle(to);
        true
    }

    /// Delivers messages (and makes writes durable) until nothing is left.
    pub fn stabilize(&mut self) {
        loop {
            while self.deliver_one() {}
            let pending: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(_, n)| !n.writes.is_empty() && n.is_up())
                .map(|(k, _)| k.get())
                .collect();
            if pending.is_empty() {
                break;
            }
            for id in pending {
                self.persist(id);
            }
        }
    }

    /// Cuts `id` off from everybody, both directions.
    pub fn isolate(&mut self, id: u64) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for o in ids {
            if o != NodeId(id) {
                self.cut.insert((NodeId(id), o));
                self.cut.insert((o, NodeId(id)));
            }
        }
    }

    /// Splits the cluster into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[&[u64]]) {
        self.cut.clear();
        for (gi, g) in groups.iter().enumerate() {
            for (hi, h) in groups.iter().enumerate() {
                if gi == hi {
                    continue;
                }
                for &a in g.iter() {
                    for &b in h.iter() {
                        self.cut.insert((NodeId(a), NodeId(b)));
                    }
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn crash(&mut self, id: u64) {
        self.node(id).crash();
    }

    pub fn restart(&mut self, id: u64) {
        let n = self.nodes.get_mut(&NodeId(id)).expect("known node");
        n.restart(&mut self.checker);
        self.settle(NodeId(id));
    }

    /// The leader of the highest term among live nodes, if any.
    pub fn leader(&self) -> Option<u64> {
        leader_of(&self.nodes).map(NodeId::get)
    }

    /// Ticks everybody and delivers until a leader is known to all live nodes, or panics.
    pub fn elect(&mut self) -> u64 {
        for _ in 0..200 {
            self.tick_all(1);
            self.stabilize();
            if let Some(l) = self.leader() {
                let agreed = self
                    .nodes
                    .values()
                    .filter_map(|n| n.raw.as_ref())
                    .all(|r| r.status().leader == NodeId(l));
                if agreed {
                    return l;
                }
            }
        }
        panic!("no leader after 200 ticks");
    }

    pub fn assert_safe(&self) {
        if let Err(e) = self.checker.ok() {
            panic!("safety violation:\n{e}");
        }
    }
}

/// A one-line description of a message, for traces and scenario output.
pub fn describe(m: &Message) -> String {
    use raft_core::MessageBody::*;
    let body = match &m.body {
        RequestVote(v) => format!(
            "{} last={}/{}{}",
            if v.pre_vote { "PreVote" } else { "Vote" },
            v.last_log_index,
            v.last_log_term,
            if v.transfer { " transfer" } else { "" }
        ),
        RequestVoteResponse(v) => format!(
            "{}Resp {}",
            if v.pre_vote { "PreVote" } else { "Vote" },
            if v.granted { "granted" } else { "rejected" }
        ),
        AppendEntries(a) => format!(
            "App prev={}/{} entries={} commit={}{}",
            a.prev_log_index,
            a.prev_log_term,
            match (a.entries.first(), a.entries.last()) {
                (Some(f), Some(l)) => format!("[{}..{}]", f.index, l.index),
                _ => "[]".to_string(),
            },
            a.leader_commit,
            if a.commit_only { " (commit only)" } else { "" }
        ),
        AppendEntriesResponse(r) => match r.reject {
            None => format!("AppResp ok index={}", r.index),
            Some(h) if h.needs_snapshot => {
                format!("AppResp reject index={} needs snapshot", r.index)
            }
            Some(h) => format!(
                "AppResp reject index={} hint={}/{}",
                r.index,
                h.term.map_or("-".to_string(), |t| t.to_string()),
                h.index
            ),
        },
        InstallSnapshot(s) => format!("Snapshot index={}/{}", s.meta.index, s.meta.term),
        Heartbeat(h) => format!("Heartbeat commit={} round={}", h.commit, h.read_round),
        HeartbeatResponse(h) => format!("HeartbeatResp round={}", h.read_round),
        ReadIndex(_) => "ReadIndex".to_string(),
        ReadIndexResponse(r) => format!(
            "ReadIndexResp index={}",
            r.index.map_or("none".to_string(), |i| i.to_string())
        ),
        TimeoutNow(_) => "TimeoutNow".to_string(),
        _ => "other".to_string(),
    };
    format!("{}->{} t{} {}", m.from, m.to, m.term, body)
}
