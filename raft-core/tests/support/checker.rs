//! Safety invariants checked on every step of a test cluster: election safety, log matching,
//! leader completeness, state machine safety, durability of what was committed and acknowledged,
//! and for membership changes: no two disjoint majorities (every leader is elected with a
//! configuration whose quorums intersect those of the committed configuration, and at most one
//! change ahead of it).

use std::collections::{BTreeMap, HashMap};

use raft_core::{ConfChange, ConfState, Entry, EntryKind, LogIndex, NodeId, Term};

/// Hash of a log prefix: equal hashes at an index mean equal prefixes (up to collisions).
pub fn chain(prev: u64, e: &Entry) -> u64 {
    let mut h = prev ^ 0x9E37_79B9_7F4A_7C15;
    for x in [e.term.get(), e.index.get(), e.data.len() as u64] {
        h = (h ^ x).wrapping_mul(0x100_0000_01B3);
    }
    for &b in e.data.iter() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// A node's log as the harness saw it handed out: `prefix[i-1] = (term, prefix hash)` of index i.
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    pub prefix: Vec<(Term, u64)>,
    /// The first index mirrored (after a compacted prefix); 1 normally.
    pub base: u64,
}

impl Mirror {
    pub fn last(&self) -> u64 {
        self.prefix.len() as u64
    }
    pub fn at(&self, i: u64) -> Option<(Term, u64)> {
        if i == 0 {
            return Some((Term(0), 0));
        }
        self.prefix.get(i as usize - 1).copied()
    }
    /// Applies entries written at `entries[0].index` (truncating what followed).
    pub fn write(&mut self, entries: &[Entry]) -> Result<(), String> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let at = first.index.get();
        if at == 0 || at > self.last() + 1 {
            return Err(format!("write at {at} leaves a hole after {}", self.last()));
        }
        self.prefix.truncate(at as usize - 1);
        let mut h = self.at(at - 1).map(|p| p.1).unwrap_or(0);
        for e in entries {
            if e.index.get() != self.last() + 1 {
                return Err(format!("non-consecutive write at {}", e.index));
            }
            h = chain(h, e);
            self.prefix.push((e.term, h));
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Checker {
    /// term -> leader.
    leaders: HashMap<Term, NodeId>,
    /// (index, term) -> prefix hash, over every log ever seen: log matching.
    seen: HashMap<(u64, Term), u64>,
    /// Prefix hash of every committed index, in order.
    committed: Vec<u64>,
    /// Term of every committed index, in order.
    committed_terms: Vec<Term>,
    /// index -> (term, data) applied by any node: state machine safety.
    applied: BTreeMap<u64, (Term, bytes::Bytes)>,
    /// Configuration changes written by any node, by (index, term).
    conf_entries: HashMap<(u64, Term), ConfChange>,
    /// The configuration of the committed prefix up to `conf_upto` (None: not tracked).
    committed_conf: Option<ConfState>,
    conf_upto: u64,
    /// The configuration each leader counted when its commit index reached an index.
    pub commit_confs: BTreeMap<u64, ConfState>,
    /// Configuration changes committed (and valid) so far.
    pub conf_changes_committed: usize,
    pub violations: Vec<String>,
}

/// Whether `c` is a quorum of `cs` (a majority of each half).
pub fn is_quorum(cs: &ConfState, c: &[NodeId]) -> bool {
    let majority = |voters: &[NodeId]| {
        voters.is_empty() || 2 * voters.iter().filter(|v| c.contains(v)).count() > voters.len()
    };
    !cs.voters.is_empty() && majority(&cs.voters) && majority(&cs.voters_outgoing)
}

/// Whether every quorum of `a` shares a node with every quorum of `b` (enumerates subsets).
pub fn quorums_intersect(a: &ConfState, b: &ConfState) -> bool {
    let mut all: Vec<NodeId> = [&a.voters, &a.voters_outgoing, &b.voters, &b.voters_outgoing]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    assert!(all.len() < 16);
    let pick = |mask: u32| -> Vec<NodeId> {
        (0..all.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| all[i])
            .collect()
    };
    let full = (1u32 << all.len()) - 1;
    (0..=full).all(|m| !(is_quorum(a, &pick(m)) && is_quorum(b, &pick(full & !m))))
}

impl Checker {
    /// Tracks configurations from `initial` on (the cluster's bootstrap configuration).
    pub fn track_conf(&mut self, initial: ConfState) {
        self.committed_conf = Some(initial);
    }

    /// Entries written by a node: remember its configuration changes.
    pub fn conf_written(&mut self, entries: &[Entry]) {
        for e in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
            match ConfChange::decode(e.data.clone()) {
                Ok(cc) => {
                    self.conf_entries.insert((e.index.get(), e.term), cc);
                }
                Err(err) => self.fail(format!("undecodable conf change at {}: {err}", e.index)),
            }
        }
    }

    /// The configuration of the committed prefix, and the index it is known to: the bootstrap
    /// configuration with every committed change applied.
    pub fn committed_conf(&mut self) -> Option<(u64, ConfState)> {
        let mut cs = self.committed_conf.take()?;
        let upto = self.max_committed();
        for i in self.conf_upto + 1..=upto {
            let t = self.committed_terms[i as usize - 1];
            if let Some(cc) = self.conf_entries.get(&(i, t)) {
                // Like the nodes: a change its configuration does not allow changes nothing.
                if let Ok(next) = cs.apply_change(cc) {
                    cs = next;
                    self.conf_changes_committed += 1;
                }
            }
        }
        self.conf_upto = upto;
        self.committed_conf = Some(cs.clone());
        Some((upto, cs))
    }

    /// No two disjoint majorities: node `id` became leader of `term` counting `conf`, whose
    /// quorums must intersect those of the committed configuration; `at_commit` is its own
    /// configuration at the cluster's commit index (it holds every committed entry, so it must
    /// agree) and `changes_after` the number of configuration changes its log holds beyond
    /// (at most one: a change is proposed only once the previous one is committed).
    pub fn leader_conf(
        &mut self,
        id: NodeId,
        term: Term,
        conf: &ConfState,
        conf_at: impl FnOnce(u64) -> Option<(Option<ConfState>, usize)>,
    ) {
        let Some((upto, committed)) = self.committed_conf() else {
            return;
        };
        if !quorums_intersect(conf, &committed) {
            self.fail(format!(
                "two disjoint majorities: leader {id} of term {term} counts {conf:?} while \
                 {committed:?} is committed"
            ));
        }
        if let Some((at, changes_after)) = conf_at(upto) {
            if at.is_some_and(|at| at != committed) {
                self.fail(format!(
                    "leader {id} of term {term} disagrees on the committed configuration \
                     {committed:?} (index {upto})"
                ));
            }
            if changes_after > 1 {
                self.fail(format!(
                    "leader {id} of term {term} holds {changes_after} configuration changes \
                     beyond the committed index {upto}"
                ));
            }
        }
    }

    fn fail(&mut self, s: String) {
        if self.violations.len() < 20 {
            self.violations.push(s);
        }
    }

    pub fn ok(&self) -> Result<(), String> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self.violations.join("\n"))
        }
    }

    /// Election safety: at most one leader per term.
    pub fn leader(&mut self, term: Term, id: NodeId) {
        if let Some(&other) = self.leaders.get(&term)
            && other != id
        {
            self.fail(format!("two leaders in term {term}: {other} and {id}"));
        }
        self.leaders.insert(term, id);
    }

    /// Log matching: a newly written stretch of a node's log agrees with every log seen.
    pub fn logged(&mut self, node: NodeId, mirror: &Mirror, from: u64) {
        for i in from.max(1)..=mirror.last() {
            let Some((t, h)) = mirror.at(i) else { continue };
            match self.seen.get(&(i, t)) {
                Some(&h2) if h2 != h => {
                    self.fail(format!(
                        "log matching: node {node} index {i} term {t} has a different prefix"
                    ));
                }
                Some(_) => {}
                None => {
                    self.seen.insert((i, t), h);
                }
            }
        }
    }

    /// A node reports `commit`: its log up to there must equal every committed prefix seen.
    pub fn committed(&mut self, node: NodeId, commit: u64, mirror: &Mirror) {
        if commit > mirror.last() {
            self.fail(format!(
                "node {node} commit {commit} beyond its log {}",
                mirror.last()
            ));
            return;
        }
        let known = self.committed.len() as u64;
        let check_to = commit.min(known);
        if check_to >= mirror.base.max(1)
            && let Some((_, h)) = mirror.at(check_to)
            && h != self.committed[check_to as usize - 1]
        {
            self.fail(format!(
                "node {node} committed prefix at {check_to} differs from the cluster's"
            ));
            return;
        }
        for i in known + 1..=commit {
            match mirror.at(i) {
                Some((t, h)) => {
                    self.committed.push(h);
                    self.committed_terms.push(t);
                }
                None => break,
            }
        }
    }

    /// The term of committed index `i`.
    pub fn committed_term(&self, i: u64) -> Option<Term> {
        self.committed_terms
            .get(i.checked_sub(1)? as usize)
            .copied()
    }

    pub fn max_committed(&self) -> u64 {
        self.committed.len() as u64
    }

    pub fn committed_hash(&self, i: u64) -> Option<u64> {
        if i == 0 {
            return Some(0);
        }
        self.committed.get(i as usize - 1).copied()
    }

    /// Leader completeness: a leader's log holds every committed entry.
    pub fn leader_complete(&mut self, node: NodeId, term: Term, mirror: &Mirror) {
        let c = self.max_committed();
        if c == 0 {
            return;
        }
        match mirror.at(c) {
            Some((_, h)) if Some(h) == self.committed_hash(c) => {}
            _ => self.fail(format!(
                "leader completeness: leader {node} of term {term} lacks committed index {c}"
            )),
        }
    }

    /// State machine safety: no two nodes apply different entries at one index.
    pub fn applied(&mut self, node: NodeId, e: &Entry) {
        match self.applied.get(&e.index.get()) {
            Some((t, d)) if *t != e.term || *d != e.data => {
                self.fail(format!(
                    "node {node} applied a different entry at index {} (term {} vs {t})",
                    e.index, e.term
                ));
            }
            Some(_) => {}
            None => {
                self.applied.insert(e.index.get(), (e.term, e.data.clone()));
            }
        }
    }

    pub fn applied_entry(&self, index: LogIndex) -> Option<&(Term, bytes::Bytes)> {
        self.applied.get(&index.get())
    }

    /// The mirror of a log whose prefix up to `upto` is the committed one (a node whose log
    /// starts after a snapshot or a compaction point). `None` if `upto` was never committed.
    pub fn committed_mirror(&self, upto: u64) -> Option<Mirror> {
        if upto > self.max_committed() {
            return None;
        }
        let prefix = (0..upto as usize)
            .map(|i| (self.committed_terms[i], self.committed[i]))
            .collect();
        Some(Mirror { prefix, base: 1 })
    }

    /// The state machine after applying everything up to `upto`, as the nodes applied it (the
    /// content of a snapshot at `upto`). `None` if some index was never applied anywhere.
    pub fn applied_prefix(&self, upto: u64) -> Option<Vec<Entry>> {
        (1..=upto)
            .map(|i| {
                self.applied
                    .get(&i)
                    .map(|(t, d)| Entry::new(*t, LogIndex(i), d.clone()))
            })
            .collect()
    }
}
