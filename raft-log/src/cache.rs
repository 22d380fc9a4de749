//! A bounded cache of the most recent entries: the suffix of the log a leader sends to
//! followers that keep up, so replication does not read RocksDB.

use raft_core::{Entry, LogIndex};
use std::collections::VecDeque;

/// Holds a contiguous suffix `first()..=last` of the log within `cap` bytes (by
/// [`Entry::size`]). Always either empty or ending at the log's last index.
#[derive(Debug)]
pub(crate) struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: u64,
    cap: u64,
}

impl EntryCache {
    pub(crate) fn new(cap: u64) -> Self {
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            cap,
        }
    }

    /// The budget in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    /// The first cached index, if any.
    pub(crate) fn first(&self) -> Option<LogIndex> {
        self.entries.front().map(|e| e.index)
    }

    /// Adds entries that were just made durable, `entries[0]` at most one past the last cached
    /// one. Entries at or after `entries[0].index` are replaced (conflict truncation).
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(start) = entries.first().map(|e| e.index) else {
            return;
        };
        match self.first() {
            Some(first) if start > first => self.truncate_from(start),
            _ => self.clear(),
        }
        if let Some(last) = self.entries.back() {
            if last.index.next() != start {
                // Not contiguous with what we hold (cannot happen for a log's appends, but the
                // cache must never hold a hole): start over.
                self.clear();
            }
        }
        // Only the tail that fits is worth copying.
        let mut skip = entries.len();
        let mut size = 0;
        while skip > 0 && size + entries[skip - 1].size() <= self.cap {
            skip -= 1;
            size += entries[skip].size();
        }
        if skip > 0 {
            self.clear();
        }
        for e in &entries[skip..] {
            self.bytes += e.size();
            self.entries.push_back(e.clone());
        }
        self.evict();
    }

    /// Drops cached entries at or after `index`.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        while self.entries.back().is_some_and(|e| e.index >= index) {
            let e = self.entries.pop_back().expect("checked non-empty");
            self.bytes -= e.size();
        }
    }

    /// Drops cached entries at or below `index` (compaction).
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            let e = self.entries.pop_front().expect("checked non-empty");
            self.bytes -= e.size();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn evict(&mut self) {
        while self.bytes > self.cap {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= e.size();
        }
    }

    /// The entry at `index`, if cached.
    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.first()?;
        let off = index.get().checked_sub(first.get())?;
        self.entries.get(usize::try_from(off).ok()?)
    }

    /// Cached entries from `lo` (which must be cached) up to `hi`, adding to `out` while the
    /// running total `size` stays within `max_bytes` (the first entry of `out` always goes in).
    pub(crate) fn copy_range(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
        size: &mut u64,
        out: &mut Vec<Entry>,
    ) {
        let Some(first) = self.first() else { return };
        let start = (lo.get() - first.get()) as usize;
        for e in self.entries.iter().skip(start) {
            if e.index >= hi {
                break;
            }
            *size += e.size();
            if *size > max_bytes && !out.is_empty() {
                break;
            }
            out.push(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Term;

    fn es(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
        (lo..=hi)
            .map(|i| Entry::new(Term(term), LogIndex(i), vec![0u8; 76]))
            .collect()
    }

    #[test]
    fn keeps_the_newest_entries_within_its_budget() {
        // Each entry counts 100 bytes.
        let mut c = EntryCache::new(500);
        c.append(&es(1, 3, 1));
        c.append(&es(4, 8, 1));
        assert_eq!(c.first(), Some(LogIndex(4)));
        assert!(c.get(LogIndex(3)).is_none());
        assert_eq!(c.get(LogIndex(8)).unwrap().index, LogIndex(8));
        assert!(c.get(LogIndex(9)).is_none());
        c.append(&es(1, 20, 2));
        assert_eq!(c.first(), Some(LogIndex(16)));
    }

    #[test]
    fn conflicting_append_replaces_the_suffix() {
        let mut c = EntryCache::new(10_000);
        c.append(&es(1, 10, 1));
        c.append(&es(6, 7, 2));
        assert_eq!(c.get(LogIndex(5)).unwrap().term, Term(1));
        assert_eq!(c.get(LogIndex(7)).unwrap().term, Term(2));
        assert!(c.get(LogIndex(8)).is_none());
        // Below the cached window: start over.
        c.compact_to(LogIndex(4));
        c.append(&es(3, 4, 3));
        assert_eq!(c.first(), Some(LogIndex(3)));
        assert!(c.get(LogIndex(5)).is_none());
    }

    #[test]
    fn copy_range_respects_max_bytes_but_returns_one() {
        let mut c = EntryCache::new(10_000);
        c.append(&es(1, 10, 1));
        let (mut size, mut out) = (0, Vec::new());
        c.copy_range(LogIndex(2), LogIndex(11), 0, &mut size, &mut out);
        assert_eq!(out.len(), 1);
        let (mut size, mut out) = (0, Vec::new());
        c.copy_range(LogIndex(2), LogIndex(6), 10_000, &mut size, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(size, 400);
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut c = EntryCache::new(0);
        c.append(&es(1, 3, 1));
        assert!(c.first().is_none());
    }
}
