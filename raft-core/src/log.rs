//! The Raft log as the core sees it: the durable part in [`Storage`], followed by entries that
//! were accepted but are not yet acknowledged as durable (the "unstable" tail).
//!
//! Positions kept here:
//! - `committed`: the highest index known committed;
//! - `durable`: the highest index acknowledged durable *and* still part of this log;
//! - `applying`: the highest index handed out for applying; `applied`: acknowledged applied.
//!
//! Invariants: `applied <= applying <= min(committed, durable)` and the log is contiguous.

use crate::error::StorageError;
use crate::storage::{Storage, limit_size};
use crate::types::{Entry, LogIndex, SnapshotMeta, Term};

pub(crate) struct RaftLog<S> {
    pub(crate) store: S,
    /// Entries from `unstable_offset` on, not yet acknowledged durable.
    unstable: Vec<Entry>,
    unstable_offset: LogIndex,
    /// Unstable entries below this index were already handed out for persisting.
    handed_out: LogIndex,
    pub(crate) committed: LogIndex,
    pub(crate) durable: LogIndex,
    pub(crate) applying: LogIndex,
    pub(crate) applied: LogIndex,
    /// The newest snapshot this node has (taken, installed or found in storage at start).
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// A snapshot received from the leader that replaces the log but is not durable yet;
    /// `bool`: whether it was handed out in a ready.
    pending_snapshot: Option<(SnapshotMeta, bool)>,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(
        store: S,
        committed: LogIndex,
        applied: LogIndex,
    ) -> Result<Self, StorageError> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        let snapshot = store.snapshot()?;
        // A restarted node knows its commit index from its hard state — or from its applied
        // index, which may be newer when applying raced the hard-state write (applied entries
        // were committed). It is never beyond what it stored, nor below the compacted prefix.
        let applied = applied.min(last).max(first.prev());
        let committed = committed.max(applied).min(last).max(first.prev());
        Ok(RaftLog {
            store,
            unstable: Vec::new(),
            unstable_offset: last.next(),
            handed_out: last.next(),
            committed,
            durable: last,
            applying: applied,
            applied,
            snapshot,
            pending_snapshot: None,
        })
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        // Storage errors here mean a broken store; an empty-prefix answer keeps us safe
        // (nothing is considered present that is not).
        if let Some((s, _)) = &self.pending_snapshot {
            return s.index.next();
        }
        self.store.first_index().unwrap_or(LogIndex(1))
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        if self.unstable.is_empty() {
            self.unstable_offset.prev()
        } else {
            self.unstable_offset.plus(self.unstable.len() as u64 - 1)
        }
    }

    pub(crate) fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or_default()
    }

    /// The term at `index`, for `first_index() - 1 ..= last_index()`.
    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index.get() == 0 {
            return Ok(Term(0));
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable(index));
        }
        if index >= self.unstable_offset {
            return Ok(self.unstable[(index.get() - self.unstable_offset.get()) as usize].term);
        }
        if let Some((s, _)) = &self.pending_snapshot {
            if index == s.index {
                return Ok(s.term);
            }
            if index < s.index {
                return Err(StorageError::Compacted(index));
            }
        }
        self.store.term(index)
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// §5.4.1: is a log ending in `(last_index, last_term)` at least as up to date as ours?
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let my_term = self.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.last_index())
    }

    /// Entries in `[lo, hi)` within `max_bytes` (at least one).
    pub(crate) fn slice(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let hi = hi.min(self.last_index().next());
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(StorageError::Compacted(lo));
        }
        let mut out = Vec::new();
        if lo < self.unstable_offset {
            let stored_hi = hi.min(self.unstable_offset);
            out = self.store.entries(lo, stored_hi, max_bytes)?;
            if (out.len() as u64) < stored_hi.get() - lo.get() || stored_hi == hi {
                return Ok(out);
            }
        }
        let used: u64 = out.iter().map(Entry::size).sum();
        let from = lo.max(self.unstable_offset);
        let a = (from.get() - self.unstable_offset.get()) as usize;
        let b = (hi.get() - self.unstable_offset.get()) as usize;
        let part = &self.unstable[a..b];
        if out.is_empty() {
            out.extend_from_slice(limit_size(part, max_bytes));
        } else {
            let mut size = used;
            for e in part {
                size += e.size();
                if size > max_bytes {
                    break;
                }
                out.push(e.clone());
            }
        }
        Ok(out)
    }

    /// Appends entries that directly follow our last entry (a leader's proposals).
    pub(crate) fn append(&mut self, entries: Vec<Entry>) {
        debug_assert!(
            entries
                .first()
                .is_none_or(|e| e.index == self.last_index().next())
        );
        self.unstable.extend(entries);
    }

    /// Puts `entries` at `entries[0].index`, dropping whatever followed there (§5.3's "delete
    /// the existing entry and all that follow it"). Callers only do this on a real conflict.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let at = first.index;
        debug_assert!(at > self.committed, "truncating committed entries");
        if at == self.last_index().next() {
            self.unstable.extend_from_slice(entries);
            return;
        }
        if at <= self.unstable_offset {
            // The replacement starts inside the durable part: it supersedes the whole unstable
            // tail and the storage suffix from `at` (the caller's write truncates it).
            self.unstable.clear();
            self.unstable_offset = at;
            self.handed_out = at;
        } else {
            self.unstable
                .truncate((at.get() - self.unstable_offset.get()) as usize);
            self.handed_out = self.handed_out.min(at);
        }
        self.durable = self.durable.min(at.prev());
        self.unstable.extend_from_slice(entries);
    }

    /// Entries not yet handed out for persisting; marks them handed out.
    pub(crate) fn take_unpersisted(&mut self) -> Vec<Entry> {
        let from = self.handed_out.max(self.unstable_offset);
        let a = (from.get() - self.unstable_offset.get()) as usize;
        if a >= self.unstable.len() {
            return Vec::new();
        }
        self.handed_out = self.last_index().next();
        self.unstable[a..].to_vec()
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.handed_out.max(self.unstable_offset) <= self.last_index()
    }

    /// The caller made entries up to `(index, term)` durable. Ignored when that entry has since
    /// been replaced (its write raced a truncation; the replacing write will be acknowledged).
    pub(crate) fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if !self.match_term(index, term) {
            return;
        }
        if index >= self.unstable_offset {
            let n = (index.get() - self.unstable_offset.get() + 1) as usize;
            self.unstable.drain(..n);
            self.unstable_offset = index.next();
            self.handed_out = self.handed_out.max(self.unstable_offset);
        }
        self.durable = self.durable.max(index);
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Committed, durable entries not yet handed out for applying; marks them handed out.
    pub(crate) fn take_committed(&mut self, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let hi = self.committed.min(self.durable);
        if self.applying >= hi {
            return Ok(Vec::new());
        }
        let ents = self.slice(self.applying.next(), hi.next(), max_bytes)?;
        if let Some(last) = ents.last() {
            self.applying = last.index;
        }
        Ok(ents)
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.applying < self.committed.min(self.durable)
    }

    /// Replaces the whole log by a snapshot from the leader (§7: the log did not contain the
    /// snapshot's last entry, so none of it can be kept). The snapshot is handed out in the
    /// next ready, and counts as applied through its index.
    pub(crate) fn restore(&mut self, meta: SnapshotMeta) {
        let index = meta.index;
        self.unstable.clear();
        self.unstable_offset = index.next();
        self.handed_out = index.next();
        // Only the committed prefix is known to survive: the rest of the old log may differ
        // from the snapshot, and the snapshot itself is durable only once persisted.
        self.durable = self.durable.min(self.committed);
        self.committed = index;
        self.applying = index;
        self.snapshot = Some(meta.clone());
        self.pending_snapshot = Some((meta, false));
    }

    /// The restored snapshot, if not handed out yet; marks it handed out.
    pub(crate) fn take_snapshot(&mut self) -> Option<SnapshotMeta> {
        match &mut self.pending_snapshot {
            Some((meta, handed_out)) if !*handed_out => {
                *handed_out = true;
                Some(meta.clone())
            }
            _ => None,
        }
    }

    pub(crate) fn has_unpersisted_snapshot(&self) -> bool {
        self.pending_snapshot.as_ref().is_some_and(|(_, out)| !out)
    }

    /// The caller made the snapshot at `index` durable: storage now answers for it. A newer
    /// snapshot may have been restored meanwhile; the older one still made the committed
    /// prefix up to `index` durable (both snapshots hold the same committed prefix).
    pub(crate) fn snapshot_persisted(&mut self, index: LogIndex) {
        if self
            .pending_snapshot
            .as_ref()
            .is_some_and(|(s, _)| s.index == index)
        {
            self.pending_snapshot = None;
        }
        self.durable = self.durable.max(index);
    }

    /// The caller took a snapshot at `meta.index` (an applied index).
    pub(crate) fn snapshot_taken(&mut self, meta: SnapshotMeta) {
        if self.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
            self.snapshot = Some(meta);
        }
    }
}
