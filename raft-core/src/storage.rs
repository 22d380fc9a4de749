//! What the core reads from durable storage, and an in-memory implementation.
//!
//! The core never writes storage: it hands entries and hard state to persist out in a
//! [`crate::Ready`] and the caller writes them (with whatever batching it likes) and
//! acknowledges. A [`Storage`] therefore only has to answer questions about what is durable.
//! Entries handed out but not yet acknowledged are served from the core's own memory.

use crate::error::StorageError;
use crate::types::{ConfState, Entry, HardState, LogIndex, SnapshotMeta, Term};

/// What a node needs to restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// Term, vote and commit as last persisted.
    pub hard_state: HardState,
    /// The configuration as of the log's start (`first_index() - 1`): a new cluster's
    /// bootstrap configuration, or empty for a node waiting to join one. A node's
    /// configuration follows from its log: when storage holds a snapshot at or after the
    /// log's start, the snapshot's configuration is the starting point instead, and the
    /// configuration changes stored after it apply on top (see
    /// [`crate::RawNode::propose_conf_change`]). Keep it in step with compaction (a store that
    /// installs a snapshot may simply take the snapshot's).
    pub conf_state: ConfState,
}

/// Read access to a node's durable log.
///
/// The log may start after a compacted prefix: `first_index() > 1`, and `term(first_index() - 1)`
/// still answers (the compaction point, kept from the snapshot that replaced the prefix).
/// Indexes `first_index()..=last_index()` are present; an empty log has
/// `last_index() == first_index() - 1`.
pub trait Storage {
    /// Hard state and configuration at start.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Entries in `[lo, hi)`, stopping once `max_bytes` is reached but always returning at
    /// least one entry when the range is not empty. `lo` below `first_index()` gives
    /// [`StorageError::Compacted`], `hi` above `last_index() + 1` [`StorageError::Unavailable`].
    fn entries(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    /// The term of the entry at `index`, for `first_index() - 1 ..= last_index()`.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    /// The first index present in the log (1 for a log that was never compacted).
    fn first_index(&self) -> Result<LogIndex, StorageError>;

    /// The last index present (`first_index() - 1` when empty).
    fn last_index(&self) -> Result<LogIndex, StorageError>;

    /// The newest snapshot the node holds, if any: a leader sends it to followers that need
    /// compacted entries. Its index is at or above the compaction point.
    fn snapshot(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        Ok(None)
    }
}

/// An in-memory [`Storage`] for tests, simulations and embedders that persist elsewhere.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    /// `(index, term)` of the last compacted entry: the entry just before `entries[0]`.
    compacted: (LogIndex, Term),
    entries: Vec<Entry>,
    snapshot: Option<SnapshotMeta>,
}

impl MemStorage {
    /// An empty log with the given configuration: a new cluster's bootstrap configuration,
    /// or [`ConfState::default`] for a node that waits to join a cluster.
    pub fn new(conf_state: ConfState) -> MemStorage {
        MemStorage {
            conf_state,
            ..MemStorage::default()
        }
    }

    /// An empty log that starts after a compacted prefix ending at `(index, term)`.
    pub fn with_compacted(conf_state: ConfState, index: LogIndex, term: Term) -> MemStorage {
        MemStorage {
            conf_state,
            compacted: (index, term),
            hard_state: HardState {
                term,
                vote: crate::NodeId::NONE,
                commit: index,
            },
            entries: Vec::new(),
            snapshot: None,
        }
    }

    /// Appends `entries` (consecutive), first removing every stored entry at or after
    /// `entries[0].index`: the conflict truncation the core asks for when it hands out entries
    /// that overwrite a suffix.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let start = first.index;
        if start <= self.compacted.0 {
            return Err(StorageError::Compacted(start));
        }
        let last = self.last();
        if start.get() > last.get() + 1 {
            return Err(StorageError::Unavailable(start));
        }
        let keep = (start.get() - self.compacted.0.get() - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Replaces the configuration at the log's start ([`InitialState::conf_state`]).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Drops every entry up to and including `index` (which must be present), keeping its term
    /// as the compaction point.
    pub fn compact(&mut self, index: LogIndex) -> Result<(), StorageError> {
        if index <= self.compacted.0 {
            return Ok(());
        }
        if index > self.last() {
            return Err(StorageError::Unavailable(index));
        }
        let term = self.term(index)?;
        let n = (index.get() - self.compacted.0.get()) as usize;
        self.entries.drain(..n);
        self.compacted = (index, term);
        Ok(())
    }

    /// Records a snapshot this node took (of its own state machine at `meta.index`).
    pub fn set_snapshot(&mut self, meta: SnapshotMeta) {
        if self.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
            self.snapshot = Some(meta);
        }
    }

    /// Installs a snapshot received from the leader (a [`crate::Ready::snapshot`]): the log
    /// restarts after it, keeping a suffix only if it holds the snapshot's last entry (§7).
    /// A snapshot at or below the compaction point is ignored.
    pub fn apply_snapshot(&mut self, meta: SnapshotMeta) {
        if meta.index <= self.compacted.0 {
            return;
        }
        let keep_suffix = self.term(meta.index).is_ok_and(|t| t == meta.term);
        if keep_suffix {
            let n = (meta.index.get() - self.compacted.0.get()) as usize;
            self.entries.drain(..n);
        } else {
            self.entries.clear();
        }
        self.compacted = (meta.index, meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.conf_state.clone();
        self.snapshot = Some(meta);
    }

    fn last(&self) -> LogIndex {
        self.compacted.0.plus(self.entries.len() as u64)
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if lo <= self.compacted.0 {
            return Err(StorageError::Compacted(lo));
        }
        if hi > self.last().next() {
            return Err(StorageError::Unavailable(hi));
        }
        let base = self.compacted.0.get() + 1;
        let slice =
            &self.entries[(lo.get() - base) as usize..(hi.get().max(lo.get()) - base) as usize];
        Ok(limit_size(slice, max_bytes).to_vec())
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.compacted.0 {
            return Ok(self.compacted.1);
        }
        if index < self.compacted.0 {
            return Err(StorageError::Compacted(index));
        }
        let off = (index.get() - self.compacted.0.get() - 1) as usize;
        self.entries
            .get(off)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable(index))
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.compacted.0.next())
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.last())
    }

    fn snapshot(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        Ok(self.snapshot.clone())
    }
}

/// The longest prefix of `entries` within `max_bytes`, but at least one entry.
pub(crate) fn limit_size(entries: &[Entry], max_bytes: u64) -> &[Entry] {
    let mut size = 0u64;
    for (i, e) in entries.iter().enumerate() {
        size += e.size();
        if size > max_bytes && i > 0 {
            return &entries[..i];
        }
    }
    entries
}
