//! A conformance suite for [`Storage`] implementations.
//!
//! One suite, every implementation: [`crate::MemStorage`] runs it in raft-core's tests and
//! `raft-log` runs it against RocksDB. An implementation provides a [`TestStore`] and expands
//! [`storage_conformance_tests!`](crate::storage_conformance_tests), which generates one
//! `#[test]` per case, so a failure names the rule that broke.
//!
//! ```ignore
//! raft_core::storage_conformance_tests!(|conf| MyStore::new_in_tempdir(conf));
//! ```

use crate::confchange::{ConfChange, ConfChangeSingle};
use crate::storage::Storage;
use crate::types::{ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, SnapshotMeta, Term};
use crate::{MemStorage, StorageError};

/// What the suite needs beyond the read-only [`Storage`] trait: a way to write, durably.
pub trait TestStore: Storage {
    /// Durably appends consecutive `entries`, removing every stored entry at or after
    /// `entries[0].index` first (conflict truncation).
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;
    /// Durably records the hard state.
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError>;
    /// Drops every entry up to and including `index` (which must be present), keeping its
    /// term as the compaction point.
    fn compact(&mut self, index: LogIndex) -> Result<(), StorageError>;
    /// Installs a snapshot from the leader: the log restarts after it, keeping the entries
    /// that follow only if the log holds its last entry with its term.
    fn apply_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), StorageError>;
    /// Records a snapshot this node took.
    fn set_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), StorageError>;
    /// Closes and reopens the store from what it persisted (a no-op for memory stores).
    fn reopen(&mut self);
}

impl TestStore for MemStorage {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        MemStorage::append(self, entries)
    }
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        MemStorage::set_hard_state(self, hs);
        Ok(())
    }
    fn compact(&mut self, index: LogIndex) -> Result<(), StorageError> {
        MemStorage::compact(self, index)
    }
    fn apply_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), StorageError> {
        MemStorage::apply_snapshot(self, meta);
        Ok(())
    }
    fn set_snapshot(&mut self, meta: SnapshotMeta) -> Result<(), StorageError> {
        MemStorage::set_snapshot(self, meta);
        Ok(())
    }
    fn reopen(&mut self) {}
}

/// Generates one `#[test]` per conformance case. `$factory` is an expression of type
/// `impl Fn(ConfState) -> S` with `S: TestStore`, returning a new, empty store.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($factory:expr) => {
        $crate::storage_conformance_tests!(@cases $factory;
            empty_log, initial_state_has_conf_state, append_then_read, entries_respect_max_bytes,
            entries_out_of_range, conflict_truncates_suffix, truncate_to_first_entry,
            append_with_gap_is_refused, append_below_compaction_is_refused, hard_state_survives_reopen,
            log_survives_reopen, compaction_moves_first_index, compaction_is_monotonic,
            compaction_of_whole_log, compaction_survives_reopen, compaction_beyond_last_is_refused,
            large_log_round_trip, snapshot_replaces_a_divergent_log,
            snapshot_keeps_a_matching_suffix, snapshot_record_survives_reopen,
            joint_configuration_survives_reopen, conf_change_entries_round_trip,
            snapshot_carries_a_joint_configuration);
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::cases::$case(&$factory);
            }
        )*
    };
}

fn t(n: u64) -> Term {
    Term(n)
}

fn i(n: u64) -> LogIndex {
    LogIndex(n)
}

/// Entries `lo..=hi` in term `term`, with a payload that names both.
pub fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi)
        .map(|n| {
            Entry::new(
                t(term),
                i(n),
                format!("entry {n} of term {term}").into_bytes(),
            )
        })
        .collect()
}

fn conf() -> ConfState {
    ConfState::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// A joint configuration with every part set: {1,2,4} && {1,2,3}, learner 5, 3 a learner
/// once left, left automatically.
fn joint_conf() -> ConfState {
    let mut cs = ConfState::with_learners([NodeId(1), NodeId(2), NodeId(4)], [NodeId(5)]);
    cs.voters_outgoing = vec![NodeId(1), NodeId(2), NodeId(3)];
    cs.learners_next = vec![NodeId(3)];
    cs.auto_leave = true;
    cs
}

fn all<S: TestStore>(s: &S) -> Vec<Entry> {
    let lo = s.first_index().expect("first_index");
    let hi = s.last_index().expect("last_index").next();
    s.entries(lo, hi, u64::MAX).expect("entries")
}

#[track_caller]
fn assert_bounds<S: TestStore>(s: &S, first: u64, last: u64) {
    assert_eq!(
        s.first_index().expect("first_index"),
        i(first),
        "first_index"
    );
    assert_eq!(s.last_index().expect("last_index"), i(last), "last_index");
}

/// The cases, one function each. Each panics with a message naming what broke.
pub mod cases {
    use super::*;

    /// A new store: first index 1, last 0, term(0) = 0, nothing else.
    pub fn empty_log<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let s = new(conf());
        assert_bounds(&s, 1, 0);
        assert_eq!(s.term(i(0)).expect("term(0)"), t(0));
        assert!(matches!(s.term(i(1)), Err(StorageError::Unavailable(_))));
        assert!(
            s.entries(i(1), i(1), u64::MAX)
                .expect("empty range")
                .is_empty()
        );
        assert!(matches!(
            s.entries(i(1), i(2), u64::MAX),
            Err(StorageError::Unavailable(_))
        ));
        assert_eq!(
            s.initial_state().expect("initial_state").hard_state,
            HardState::default()
        );
        assert_eq!(s.snapshot().expect("snapshot"), None);
    }

    /// The configuration the store was created with is reported.
    pub fn initial_state_has_conf_state<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        assert_eq!(s.initial_state().expect("initial_state").conf_state, conf());
        s.reopen();
        assert_eq!(s.initial_state().expect("initial_state").conf_state, conf());
    }

    /// Appended entries read back exactly, by range and by term.
    pub fn append_then_read<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        let mut want = entries(1, 5, 1);
        want.extend(entries(6, 10, 2));
        s.append(&want[..5]).expect("append 1..=5");
        s.append(&want[5..]).expect("append 6..=10");
        assert_bounds(&s, 1, 10);
        assert_eq!(all(&s), want);
        assert_eq!(s.entries(i(3), i(7), u64::MAX).expect("3..7"), want[2..6]);
        for e in &want {
            assert_eq!(s.term(e.index).expect("term"), e.term, "term({})", e.index);
        }
        assert!(matches!(s.term(i(11)), Err(StorageError::Unavailable(_))));
    }

    /// `max_bytes` stops a range early but always yields at least one entry.
    pub fn entries_respect_max_bytes<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        let want = entries(1, 10, 1);
        s.append(&want).expect("append");
        let one = want[0].size();
        assert_eq!(s.entries(i(1), i(11), 0).expect("0 bytes").len(), 1);
        assert_eq!(s.entries(i(1), i(11), one).expect("1 entry").len(), 1);
        let three: u64 = want[..3].iter().map(Entry::size).sum();
        assert_eq!(s.entries(i(1), i(11), three).expect("3 entries"), want[..3]);
        assert_eq!(
            s.entries(i(1), i(11), three + 1)
                .expect("3 entries + 1 byte"),
            want[..3]
        );
        assert_eq!(
            s.entries(i(4), i(11), three - 1).expect("2 entries").len(),
            2
        );
    }

    /// Below the first index is `Compacted`, beyond the last is `Unavailable`.
    pub fn entries_out_of_range<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        s.compact(i(3)).expect("compact");
        assert!(matches!(
            s.entries(i(3), i(5), u64::MAX),
            Err(StorageError::Compacted(_))
        ));
        assert!(matches!(
            s.entries(i(4), i(12), u64::MAX),
            Err(StorageError::Unavailable(_))
        ));
        assert_eq!(s.entries(i(4), i(11), u64::MAX).expect("4..11").len(), 7);
        assert!(s.entries(i(7), i(7), u64::MAX).expect("empty").is_empty());
    }

    /// Appending at an index inside the log replaces everything from there on.
    pub fn conflict_truncates_suffix<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        s.append(&entries(6, 8, 2)).expect("append conflicting");
        assert_bounds(&s, 1, 8);
        let mut want = entries(1, 5, 1);
        want.extend(entries(6, 8, 2));
        assert_eq!(all(&s), want);
        assert!(matches!(s.term(i(9)), Err(StorageError::Unavailable(_))));
        s.reopen();
        assert_eq!(all(&s), want, "after reopen");
        // And the log grows again from the new end.
        s.append(&entries(9, 12, 2))
            .expect("append after truncation");
        assert_bounds(&s, 1, 12);
        assert_eq!(s.term(i(10)).expect("term(10)"), t(2));
    }

    /// A conflict at the very first index replaces the whole log.
    pub fn truncate_to_first_entry<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 5, 1)).expect("append");
        s.append(&entries(1, 2, 3)).expect("replace all");
        assert_eq!(all(&s), entries(1, 2, 3));
        s.reopen();
        assert_eq!(all(&s), entries(1, 2, 3), "after reopen");
    }

    /// A write that would leave a hole is refused and changes nothing.
    pub fn append_with_gap_is_refused<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 3, 1)).expect("append");
        assert!(s.append(&entries(5, 6, 1)).is_err(), "gap accepted");
        assert_bounds(&s, 1, 3);
        assert_eq!(all(&s), entries(1, 3, 1));
    }

    /// Entries at or below the compaction point cannot be rewritten.
    pub fn append_below_compaction_is_refused<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 6, 1)).expect("append");
        s.compact(i(4)).expect("compact");
        assert!(
            s.append(&entries(3, 7, 2)).is_err(),
            "rewrite of compacted entries accepted"
        );
        assert_eq!(all(&s), entries(5, 6, 1));
        // At first_index it is an ordinary conflict.
        s.append(&entries(5, 7, 2)).expect("append at first index");
        assert_eq!(all(&s), entries(5, 7, 2));
        assert_eq!(s.term(i(4)).expect("term(4)"), t(1));
    }

    /// The last hard state written is the one a restart sees.
    pub fn hard_state_survives_reopen<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 3, 1)).expect("append");
        let hs = |term, vote, commit| HardState {
            term: t(term),
            vote: NodeId(vote),
            commit: i(commit),
        };
        s.set_hard_state(hs(1, 1, 0)).expect("hard state");
        s.set_hard_state(hs(2, 3, 2)).expect("hard state");
        assert_eq!(
            s.initial_state().expect("initial_state").hard_state,
            hs(2, 3, 2)
        );
        s.reopen();
        assert_eq!(
            s.initial_state().expect("initial_state").hard_state,
            hs(2, 3, 2)
        );
    }

    /// Entries survive a restart.
    pub fn log_survives_reopen<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 20, 1)).expect("append");
        s.reopen();
        assert_bounds(&s, 1, 20);
        assert_eq!(all(&s), entries(1, 20, 1));
    }

    /// Compacting drops the prefix; the compaction point's term stays answerable.
    pub fn compaction_moves_first_index<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        let mut want = entries(1, 5, 1);
        want.extend(entries(6, 10, 2));
        s.append(&want).expect("append");
        s.compact(i(7)).expect("compact");
        assert_bounds(&s, 8, 10);
        assert_eq!(s.term(i(7)).expect("term(first - 1)"), t(2));
        assert!(matches!(s.term(i(6)), Err(StorageError::Compacted(_))));
        assert!(matches!(s.term(i(1)), Err(StorageError::Compacted(_))));
        assert_eq!(all(&s), want[7..]);
    }

    /// Compacting to an older point than the current one changes nothing.
    pub fn compaction_is_monotonic<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        s.compact(i(6)).expect("compact 6");
        s.compact(i(3)).expect("compact 3 (stale)");
        assert_bounds(&s, 7, 10);
        assert_eq!(s.term(i(6)).expect("term(6)"), t(1));
    }

    /// Compacting everything leaves an empty log that still knows where it ended.
    pub fn compaction_of_whole_log<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 4, 3)).expect("append");
        s.compact(i(4)).expect("compact all");
        assert_bounds(&s, 5, 4);
        assert_eq!(s.term(i(4)).expect("term(4)"), t(3));
        assert!(s.entries(i(5), i(5), u64::MAX).expect("empty").is_empty());
        s.reopen();
        assert_bounds(&s, 5, 4);
        assert_eq!(s.term(i(4)).expect("term(4) after reopen"), t(3));
        s.append(&entries(5, 6, 4))
            .expect("append after full compaction");
        assert_eq!(all(&s), entries(5, 6, 4));
    }

    /// The compaction point survives a restart.
    pub fn compaction_survives_reopen<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        s.compact(i(5)).expect("compact");
        s.reopen();
        assert_bounds(&s, 6, 10);
        assert_eq!(s.term(i(5)).expect("term(5)"), t(1));
        assert!(matches!(
            s.entries(i(5), i(6), u64::MAX),
            Err(StorageError::Compacted(_))
        ));
        assert_eq!(all(&s), entries(6, 10, 1));
    }

    /// Entries that do not exist cannot be compacted.
    pub fn compaction_beyond_last_is_refused<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 3, 1)).expect("append");
        assert!(
            s.compact(i(4)).is_err(),
            "compaction beyond the last index accepted"
        );
        assert_bounds(&s, 1, 3);
    }

    /// Many entries, appended in batches, read back in pages.
    pub fn large_log_round_trip<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        let mut want = Vec::new();
        for batch in 0..50u64 {
            let es = entries(batch * 100 + 1, batch * 100 + 100, 1 + batch / 10);
            s.append(&es).expect("append");
            want.extend(es);
        }
        s.reopen();
        assert_bounds(&s, 1, 5000);
        let mut got = Vec::new();
        let mut lo = i(1);
        while lo <= i(5000) {
            let page = s.entries(lo, i(5001), 10_000).expect("page");
            assert!(!page.is_empty());
            lo = lo.plus(page.len() as u64);
            got.extend(page);
        }
        assert_eq!(got, want);
    }

    fn snap(index: u64, term: u64, voters: &[u64]) -> SnapshotMeta {
        SnapshotMeta {
            index: i(index),
            term: t(term),
            conf_state: ConfState::new(voters.iter().copied().map(NodeId)),
        }
    }

    /// A snapshot whose last entry the log does not hold replaces the whole log (§7).
    pub fn snapshot_replaces_a_divergent_log<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        let meta = snap(15, 2, &[1, 2, 3, 4]);
        s.apply_snapshot(meta.clone()).expect("apply snapshot");
        for round in ["before reopen", "after reopen"] {
            assert_bounds(&s, 16, 15);
            assert_eq!(s.term(i(15)).expect("term(15)"), t(2), "{round}");
            assert!(
                matches!(s.term(i(10)), Err(StorageError::Compacted(_))),
                "{round}"
            );
            assert_eq!(
                s.snapshot().expect("snapshot"),
                Some(meta.clone()),
                "{round}"
            );
            assert_eq!(
                s.initial_state().expect("initial_state").conf_state,
                meta.conf_state,
                "{round}"
            );
            s.reopen();
        }
        s.append(&entries(16, 17, 2))
            .expect("append after the snapshot");
        assert_eq!(all(&s), entries(16, 17, 2));
    }

    /// A snapshot whose last entry the log holds keeps the entries after it (§7).
    pub fn snapshot_keeps_a_matching_suffix<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        s.apply_snapshot(snap(6, 1, &[1, 2, 3]))
            .expect("apply snapshot");
        assert_bounds(&s, 7, 10);
        assert_eq!(all(&s), entries(7, 10, 1));
        s.reopen();
        assert_bounds(&s, 7, 10);
        assert_eq!(all(&s), entries(7, 10, 1));
        assert_eq!(s.term(i(6)).expect("term(6)"), t(1));
    }

    /// A snapshot the node took is reported after a restart; compaction up to it works.
    pub fn snapshot_record_survives_reopen<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        let meta = snap(8, 1, &[1, 2, 3]);
        s.set_snapshot(meta.clone()).expect("set snapshot");
        s.reopen();
        assert_eq!(s.snapshot().expect("snapshot"), Some(meta));
        s.compact(i(8)).expect("compact to the snapshot");
        assert_bounds(&s, 9, 10);
    }

    /// A store created with a joint configuration with learners reports it, also reopened.
    pub fn joint_configuration_survives_reopen<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(joint_conf());
        assert_eq!(
            s.initial_state().expect("initial_state").conf_state,
            joint_conf()
        );
        s.reopen();
        assert_eq!(
            s.initial_state().expect("initial_state").conf_state,
            joint_conf()
        );
    }

    /// Configuration-change entries are stored and read back with their kind and payload.
    pub fn conf_change_entries_round_trip<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        let cc = ConfChange::new(vec![
            ConfChangeSingle::AddVoter(NodeId(4)),
            ConfChangeSingle::RemoveNode(NodeId(3)),
        ])
        .with_context(&b"node 4 at 10.0.0.4"[..]);
        let mut log = entries(1, 3, 1);
        for (e, cc) in log[1..].iter_mut().zip([cc, ConfChange::leave_joint()]) {
            e.kind = EntryKind::ConfChange;
            e.data = cc.encode();
        }
        s.append(&log).expect("append");
        assert_eq!(all(&s), log);
        s.reopen();
        assert_eq!(all(&s), log);
    }

    /// A snapshot's joint configuration survives, and installing it reports it.
    pub fn snapshot_carries_a_joint_configuration<S: TestStore>(new: &impl Fn(ConfState) -> S) {
        let mut s = new(conf());
        s.append(&entries(1, 10, 1)).expect("append");
        let mut meta = snap(8, 1, &[1, 2, 4]);
        meta.conf_state = joint_conf();
        s.set_snapshot(meta.clone()).expect("set snapshot");
        s.reopen();
        assert_eq!(s.snapshot().expect("snapshot"), Some(meta.clone()));
        let mut other = new(conf());
        meta.index = i(20);
        other.apply_snapshot(meta.clone()).expect("apply snapshot");
        other.reopen();
        assert_eq!(other.snapshot().expect("snapshot"), Some(meta.clone()));
        assert_eq!(
            other.initial_state().expect("initial_state").conf_state,
            joint_conf()
        );
    }
}
