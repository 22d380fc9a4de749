//! One simulated node: a RawNode over MemStorage, with writes that become durable only when
//! the harness says so, and a crash that loses everything not yet durable.

use std::collections::VecDeque;

use raft_core::{
    Config, Entry, EntryKind, HardState, LogIndex, MemStorage, Message, MessageBody, NodeId,
    RawNode, ReadState, Role, SnapshotMeta, Storage, Term,
};

use super::checker::{Checker, Mirror};

/// A ready's writes, waiting to become durable.
pub struct Write {
    number: u64,
    snapshot: Option<SnapshotMeta>,
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
}

/// Entries kept below a snapshot when compacting, for followers slightly behind.
const KEEP_TRAILING: u64 = 3;

pub struct SimNode {
    pub id: NodeId,
    pub cfg: Config,
    pub raw: Option<RawNode<MemStorage>>,
    /// The durable store while the node is down.
    down_store: MemStorage,
    pub writes: VecDeque<Write>,
    pub mirror: Mirror,
    /// Entries applied since the last start, in order.
    pub applied: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    pub failed_reads: Vec<bytes::Bytes>,
    /// Highest hard state ever made durable (never goes backwards, even across crashes).
    pub durable_hs: HardState,
    /// Last observed term/commit, to check they never go backwards while up.
    seen_term: Term,
    seen_commit: LogIndex,
    pub restarts: u32,
}

impl SimNode {
    pub fn new(cfg: Config, store: MemStorage) -> SimNode {
        let mut n = SimNode {
            id: cfg.id,
            cfg,
            raw: None,
            down_store: store,
            writes: VecDeque::new(),
            mirror: Mirror::default(),
            applied: Vec::new(),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            durable_hs: HardState::default(),
            seen_term: Term(0),
            seen_commit: LogIndex(0),
            restarts: 0,
        };
        n.start(&Checker::default());
        n
    }

    /// The term of entry `i` in this node's durable store, if it holds it.
    pub fn durable_term(&self, i: LogIndex) -> Option<Term> {
        let store = match self.raw.as_ref() {
            Some(r) => r.store(),
            None => &self.down_store,
        };
        store.term(i).ok()
    }

    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    pub fn raw(&mut self) -> &mut RawNode<MemStorage> {
        self.raw.as_mut().expect("node is up")
    }

    pub fn role(&self) -> Option<Role> {
        self.raw.as_ref().map(|r| r.status().role)
    }

    fn start(&mut self, checker: &Checker) {
        let store = std::mem::take(&mut self.down_store);
        // Rebuild the mirror from what is durable: a compacted prefix was committed.
        let first = store.first_index().unwrap().get();
        let last = store.last_index().unwrap().get();
        // (A store built compacted by a test, before anything ran, has no known prefix: its
        // mirror starts empty and is not checked below the compaction point.)
        let known = checker.committed_mirror(first - 1);
        self.mirror = known.clone().unwrap_or_default();
        if last >= first && known.is_some() {
            let ents = store
                .entries(LogIndex(first), LogIndex(last + 1), u64::MAX)
                .unwrap();
            self.mirror.write(&ents).unwrap();
        }
        // The state machine restarts from the newest snapshot (the same state the others
        // applied up to there) and replays the log after it.
        let applied = store.snapshot().unwrap().map_or(LogIndex(0), |s| s.index);
        self.applied = checker.applied_prefix(applied.get()).unwrap_or_default();
        let raw =
            RawNode::with_applied(&self.cfg, store, applied).expect("restart from durable state");
        self.raw = Some(raw);
        let st = self.raw.as_ref().unwrap().status();
        self.seen_term = st.term;
        self.seen_commit = st.commit;
    }

    /// Loses everything not durable.
    pub fn crash(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.down_store = raw.into_store();
            self.writes.clear();
            self.read_states.clear();
            self.failed_reads.clear();
        }
    }

    pub fn restart(&mut self, checker: &mut Checker) {
        if self.raw.is_some() {
            return;
        }
        self.restarts += 1;
        self.start(checker);
        let st = self.raw.as_ref().unwrap().status();
        let d = self.durable_hs;
        if st.term < d.term || (st.term == d.term && st.vote != d.vote && !d.vote.is_none()) {
            checker.violations.push(format!(
                "node {} restarted with term {} vote {} below durable term {} vote {}",
                self.id, st.term, st.vote, d.term, d.vote
            ));
        }
        if st.commit < d.commit {
            checker.violations.push(format!(
                "node {} restarted with commit {} below durable commit {}",
                self.id, st.commit, d.commit
            ));
        }
    }

    /// Takes every ready, sending messages to `out`. With `persist_now`, writes become durable
    /// at once; otherwise they queue in `writes` until [`SimNode::persist_one`].
    pub fn drain(&mut self, persist_now: bool, checker: &mut Checker, out: &mut Vec<Message>) {
        while self.raw.as_ref().is_some_and(|r| r.has_ready()) {
            let raw = self.raw.as_mut().expect("checked above");
            let rd = raw.ready();
            if let Some(meta) = &rd.snapshot {
                // The log restarts after the snapshot, whose prefix must be the committed one.
                match checker.committed_mirror(meta.index.get()) {
                    Some(m) => self.mirror = m,
                    None => checker.violations.push(format!(
                        "node {} got a snapshot at {} beyond anything committed",
                        self.id, meta.index
                    )),
                }
            }
            if let Some(first) = rd.entries.first() {
                let from = first.index.get();
                if let Err(e) = self.mirror.write(&rd.entries) {
                    checker.violations.push(format!("node {}: {e}", self.id));
                }
                checker.logged(self.id, &self.mirror, from);
                checker.conf_written(&rd.entries);
            }
            let st = raw.status();
            if rd.soft_state.is_some_and(|s| s.role == Role::Leader) {
                checker.leader(st.term, self.id);
                checker.leader_complete(self.id, st.term, &self.mirror);
                let conf = raw.conf_state().clone();
                let raw_ref = &*raw;
                checker.leader_conf(self.id, st.term, &conf, |upto| {
                    let upto = LogIndex(upto);
                    let last = raw_ref.status().last_index;
                    let tail = raw_ref.entries(upto.next(), last.next()).ok()?;
                    let changes = tail
                        .iter()
                        .filter(|e| e.kind == EntryKind::ConfChange)
                        .count();
                    Some((raw_ref.conf_state_at(upto), changes))
                });
            }
            if matches!(st.role, Role::PreCandidate | Role::Candidate)
                && !raw.conf_state().is_voter(self.id)
                && !raw
                    .conf_state_at(st.commit)
                    .is_some_and(|cs| cs.is_voter(self.id))
            {
                checker.violations.push(format!(
                    "node {} campaigns but is not a voter of {:?}",
                    self.id,
                    raw.conf_state()
                ));
            }
            // Answers that promise durable state may go out at once only if that state is
            // durable already (the store holds exactly what is durable).
            for m in &rd.messages {
                let store = raw.store();
                let early = match &m.body {
                    MessageBody::AppendEntriesResponse(r) if r.reject.is_none() => {
                        store.last_index().unwrap() < r.index
                    }
                    MessageBody::RequestVoteResponse(v) if v.granted && !v.pre_vote => {
                        let hs = store.hard_state();
                        hs.vote != m.to || hs.term != m.term
                    }
                    _ => false,
                };
                if early {
                    checker.violations.push(format!(
                        "node {} sends {} before persisting",
                        self.id,
                        m.body.name()
                    ));
                }
            }
            out.extend(rd.messages);
            for e in &rd.committed_entries {
                let expect = self.applied.last().map_or(0, |l| l.index.get()) + 1;
                if e.index.get() != expect && !self.applied.is_empty() {
                    checker.violations.push(format!(
                        "node {} applies {} after {}",
                        self.id,
                        e.index,
                        expect - 1
                    ));
                }
                checker.applied(self.id, e);
                self.applied.push(e.clone());
            }
            if let Some(last) = rd.committed_entries.last() {
                raw.on_applied(last.index).unwrap();
            }
            if let Some(at) = rd.snapshot_due {
                // Take a snapshot at the applied index and compact below it. Applied entries
                // are durable, so the store holds them.
                let conf_state = raw
                    .conf_state_at(at)
                    .expect("the configuration at the applied index is known");
                let store = raw.store_mut();
                let meta = SnapshotMeta {
                    index: at,
                    term: store.term(at).expect("applied entries are durable"),
                    conf_state,
                };
                store.set_snapshot(meta.clone());
                let upto = LogIndex(at.get().saturating_sub(KEEP_TRAILING));
                if upto >= store.first_index().unwrap() {
                    store.compact(upto).expect("compact below the snapshot");
                }
                raw.on_snapshot_taken(meta).unwrap();
            }
            self.read_states.extend(rd.read_states);
            self.failed_reads.extend(rd.failed_reads);
            self.writes.push_back(Write {
                number: rd.number,
                snapshot: rd.snapshot,
                entries: rd.entries,
                hard_state: rd.hard_state,
            });
            // Monotonic while up.
            if st.term < self.seen_term || st.commit < self.seen_commit {
                checker
                    .violations
                    .push(format!("node {} term or commit went backwards", self.id));
            }
            self.seen_term = st.term;
            self.seen_commit = st.commit;
            if st.applied > st.commit || st.applied > st.durable {
                checker.violations.push(format!(
                    "node {} applied {} beyond commit {} or durable {}",
                    self.id, st.applied, st.commit, st.durable
                ));
            }
            // Only the leader that decided it (maybe stepping down at once, removed by what it
            // committed) is first to know a commit index: record what it counted.
            let first_to_commit = st.commit.get() > checker.max_committed();
            checker.committed(self.id, st.commit.get(), &self.mirror);
            if first_to_commit {
                checker
                    .commit_confs
                    .insert(st.commit.get(), raw.conf_state().clone());
            }
            if persist_now {
                self.persist_one(checker, out);
            }
        }
    }

    /// Makes the oldest pending write durable, then sends what waited for it.
    pub fn persist_one(&mut self, checker: &mut Checker, out: &mut Vec<Message>) -> bool {
        let Some(raw) = self.raw.as_mut() else {
            return false;
        };
        let Some(w) = self.writes.pop_front() else {
            return false;
        };
        let store = raw.store_mut();
        if let Some(meta) = &w.snapshot {
            store.apply_snapshot(meta.clone());
            // The snapshot's data: what the nodes applied up to its index.
            match checker.applied_prefix(meta.index.get()) {
                Some(sm) => self.applied = sm,
                None => checker.violations.push(format!(
                    "node {} installs a snapshot at {} covering entries nobody applied",
                    self.id, meta.index
                )),
            }
        }
        store.append(&w.entries).expect("append follows the log");
        if let Some(hs) = w.hard_state {
            store.set_hard_state(hs);
            self.durable_hs = hs;
        }
        let answers = raw.on_persisted(w.number).unwrap();
        let store = raw.store();
        // What the persisted messages promise must now be durable.
        for m in &answers {
            match &m.body {
                MessageBody::RequestVoteResponse(v) if v.granted && !v.pre_vote => {
                    let hs = store.hard_state();
                    if hs.vote != m.to || hs.term != m.term {
                        checker.violations.push(format!(
                            "node {} grants vote to {} in term {} before it is durable",
                            self.id, m.to, m.term
                        ));
                    }
                }
                MessageBody::AppendEntriesResponse(r)
                    if r.reject.is_none() && store.last_index().unwrap() < r.index =>
                {
                    checker.violations.push(format!(
                        "node {} acks index {} but durable last is {} (write {}: snapshot {:?}, entries {:?})",
                        self.id,
                        r.index,
                        store.last_index().unwrap(),
                        w.number,
                        w.snapshot.as_ref().map(|s| s.index),
                        w.entries.first().map(|e| (e.index, w.entries.len())),
                    ));
                }
                _ => {}
            }
        }
        out.extend(answers);
        if let Some(meta) = &w.snapshot {
            raw.on_applied(meta.index).unwrap();
        }
        true
    }

    pub fn persist_all(&mut self, checker: &mut Checker, out: &mut Vec<Message>) {
        while !self.writes.is_empty() {
            self.persist_one(checker, out);
            self.drain(false, checker, out);
        }
    }
}
