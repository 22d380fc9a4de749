//! [`LogStore`]: the handle callers hold. Reads are answered here, from the cache when possible;
//! writes go to the group-commit writer thread ([`crate::writer`]).

use crate::cache::EntryCache;
use crate::error::LogError;
use crate::options::LogOptions;
use crate::record::{CF_ENTRIES, CF_META, decode_entry, entry_key};
use crate::writer::{self, Op, Queue};
use raft_core::{
    ConfState, Entry, HardState, InitialState, LogIndex, SnapshotMeta, Storage, StorageError, Term,
};
use rocksdb::{DB, ReadOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::thread::{self, JoinHandle};

/// One durable write: entries to append (conflict-truncating), and metadata to record with
/// them in the same atomic, synced batch.
#[derive(Clone, Debug, Default)]
pub struct LogWrite {
    /// Consecutive entries. Stored entries at or after `entries[0].index` are replaced.
    pub entries: Vec<Entry>,
    /// The hard state to record, if it changed.
    pub hard_state: Option<HardState>,
    /// The configuration to record, if it changed.
    pub conf_state: Option<ConfState>,
    /// A snapshot from the leader to install first (a [`raft_core::Ready::snapshot`]): the
    /// log restarts after it, keeping the entries that follow only if the log holds the
    /// snapshot's last entry with its term (§7). Records it as the newest snapshot, its
    /// configuration and its compaction point, in the same batch.
    pub restore: Option<SnapshotMeta>,
    /// A snapshot this node took (metadata only): reported by [`Storage::snapshot`] so a
    /// leader can send it after a restart.
    pub snapshot: Option<SnapshotMeta>,
}

impl LogWrite {
    /// A write of `entries`.
    pub fn entries(entries: Vec<Entry>) -> Self {
        LogWrite {
            entries,
            ..LogWrite::default()
        }
    }

    /// Adds a hard state to the write.
    pub fn with_hard_state(mut self, hs: HardState) -> Self {
        self.hard_state = Some(hs);
        self
    }

    /// Adds a snapshot from the leader to install first.
    pub fn with_restore(mut self, meta: SnapshotMeta) -> Self {
        self.restore = Some(meta);
        self
    }

    /// Records a snapshot this node took.
    pub fn with_snapshot(mut self, meta: SnapshotMeta) -> Self {
        self.snapshot = Some(meta);
        self
    }

    /// Adds a configuration to the write.
    pub fn with_conf_state(mut self, cs: ConfState) -> Self {
        self.conf_state = Some(cs);
        self
    }

    /// True if the write carries nothing to store.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.hard_state.is_none()
            && self.conf_state.is_none()
            && self.restore.is_none()
            && self.snapshot.is_none()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.entries.iter().map(Entry::size).sum::<u64>() + 64
    }
}

/// What a completed write reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durable {
    /// The log's last index once this write (and every one before it) is on disk.
    pub last_index: LogIndex,
}

/// Counters of the writer, for benchmarks and tests (the same figures go to `metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches written, each one RocksDB write (and one fsync when syncing).
    pub batches: u64,
    /// Writes completed successfully.
    pub writes: u64,
    /// Entries appended.
    pub entries: u64,
    /// Reads that missed the cache and went to RocksDB.
    pub disk_reads: u64,
}

/// What the store knows of the log, kept in step with what is durable.
#[derive(Debug)]
pub(crate) struct LogState {
    /// `(index, term)` of the last compacted entry.
    pub(crate) compacted: (LogIndex, Term),
    pub(crate) last: LogIndex,
    /// The term of the entry at `last` (the compaction term when the log is empty).
    pub(crate) last_term: Term,
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    /// The newest snapshot recorded (taken here or installed from the leader).
    pub(crate) snapshot: Option<SnapshotMeta>,
    pub(crate) cache: EntryCache,
    /// Whether a hard state was ever recorded (a log written without one, as by a test or
    /// a tool, skips the checks that compare entries with it).
    pub(crate) hard_state_stored: bool,
    /// Set after a failed write; every later write fails with it.
    pub(crate) failed: Option<String>,
}

impl LogState {
    fn first(&self) -> LogIndex {
        self.compacted.0.next()
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) disk_reads: AtomicU64,
}

/// Everything the handle and the writer thread share.
pub(crate) struct Shared {
    pub(crate) db: DB,
    /// Readers hold this across their RocksDB reads; the writer takes it exclusively to
    /// publish a batch, and across the whole write of a batch that deletes entries, so a reader
    /// never sees bounds from before a truncation with data from after it.
    pub(crate) state: RwLock<LogState>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) wakeup: Condvar,
    pub(crate) opts: LogOptions,
    pub(crate) counters: Counters,
    pub(crate) writer_thread: std::sync::OnceLock<thread::ThreadId>,
}

impl Shared {
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, LogState> {
        // A poisoned lock means a panic while publishing; the state itself is plain data that
        // was either updated or not, and the writer marks the store failed on any error.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, LogState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn entries_cf(&self) -> &rocksdb::ColumnFamily {
        // Opening checks that the column family exists, and it is never dropped.
        self.db
            .cf_handle(CF_ENTRIES)
            .expect("entries column family exists")
    }

    pub(crate) fn meta_cf(&self) -> &rocksdb::ColumnFamily {
        // As above.
        self.db
            .cf_handle(CF_META)
            .expect("meta column family exists")
    }

    fn count_disk_read(&self) {
        self.counters.disk_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("raft_log_disk_reads_total").increment(1);
    }

    /// The term at `index`, read under the caller's hold of `st`.
    pub(crate) fn term_at(&self, st: &LogState, index: LogIndex) -> Result<Term, LogError> {
        if index == st.compacted.0 {
            return Ok(st.compacted.1);
        }
        if index < st.compacted.0 {
            return Err(LogError::Compacted(index));
        }
        if index > st.last {
            return Err(LogError::Unavailable(index));
        }
        if let Some(e) = st.cache.get(index) {
            return Ok(e.term);
        }
        self.count_disk_read();
        let key = entry_key(index);
        let value = self
            .db
            .get_pinned_cf(self.entries_cf(), key)
            .map_err(|e| LogError::rocks_at(index, e))?
            .ok_or_else(|| missing(index))?;
        let entry =
            decode_entry(&key, &value).map_err(|detail| LogError::Corruption { index, detail })?;
        Ok(entry.term)
    }
}

struct Inner {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        writer::close(&self.shared);
        if let Some(handle) = self.writer.take() {
            // A completion callback that drops the last handle runs on the writer thread,
            // which must not wait for itself; it exits right after the callback returns.
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// A durable Raft log in a RocksDB directory. Cheap to clone: clones share one store, one
/// writer thread and one cache. Implements [`raft_core::Storage`] for reads.
///
/// Writes are submitted to a writer thread that gathers every write waiting while it syncs
/// into the next batch (group commit): N concurrent writers pay about one fsync. Writes
/// become durable, and their completions run, in submission order.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared().read_state();
        f.debug_struct("LogStore")
            .field("first", &st.first())
            .field("last", &st.last)
            .field("hard_state", &st.hard_state)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the log in `path`, creating it if the directory is missing or empty. An existing
    /// log is checked (see [`LogOptions::verify_on_open`]) and refused with a typed error if it
    /// is damaged or not a log.
    pub fn open(path: impl AsRef<Path>, opts: LogOptions) -> Result<LogStore, LogError> {
        let (db, state) = crate::recovery::open(path.as_ref(), &opts)?;
        let shared = Arc::new(Shared {
            db,
            state: RwLock::new(state),
            queue: Mutex::new(Queue::default()),
            wakeup: Condvar::new(),
            opts,
            counters: Counters::default(),
            writer_thread: std::sync::OnceLock::new(),
        });
        let writer = writer::spawn(shared.clone())?;
        let _ = shared.writer_thread.set(writer.thread().id());
        Ok(LogStore {
            inner: Arc::new(Inner {
                shared,
                writer: Some(writer),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Queues `write`; `done` runs on the writer thread once it is durable (or failed). Keep
    /// `done` short (send on a channel): the next batch waits for it.
    pub fn submit<F>(&self, write: LogWrite, done: F)
    where
        F: FnOnce(Result<Durable, LogError>) + Send + 'static,
    {
        writer::push(
            self.shared(),
            Op::Write {
                write,
                done: Box::new(done),
            },
        );
    }

    fn check_not_writer(&self) -> Result<(), LogError> {
        if self.shared().writer_thread.get() == Some(&thread::current().id()) {
            return Err(LogError::WouldDeadlock);
        }
        Ok(())
    }

    /// Writes and waits until the write is durable.
    pub fn write(&self, write: LogWrite) -> Result<Durable, LogError> {
        self.check_not_writer()?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(write, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(LogError::Closed))
    }

    /// Appends entries durably (a [`LogWrite`] without metadata).
    pub fn append(&self, entries: Vec<Entry>) -> Result<Durable, LogError> {
        self.write(LogWrite::entries(entries))
    }

    /// Records the hard state durably.
    pub fn set_hard_state(&self, hs: HardState) -> Result<Durable, LogError> {
        self.write(LogWrite::default().with_hard_state(hs))
    }

    /// After a snapshot covering `upto`: drops the entries up to `upto` minus
    /// [`LogOptions::keep_trailing`] (DeleteRange, in one synced batch with the new compaction
    /// point), then has RocksDB compact the range so its space is reclaimed. Returns the new
    /// first index. Blocks during RocksDB's compaction: call it off the hot path.
    ///
    /// Only committed entries can be compacted: `upto` beyond the recorded commit index is
    /// refused (unless no hard state was ever recorded).
    pub fn compact(&self, upto: LogIndex) -> Result<LogIndex, LogError> {
        self.check_not_writer()?;
        let target = LogIndex(upto.get().saturating_sub(self.shared().opts.keep_trailing));
        let (tx, rx) = mpsc::sync_channel(1);
        writer::push(
            self.shared(),
            Op::Compact {
                upto,
                target,
                done: Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            },
        );
        let compacted = rx.recv().unwrap_or(Err(LogError::Closed))?;
        if let Some(point) = compacted {
            let shared = self.shared();
            let end = entry_key(point.next());
            shared
                .db
                .compact_range_cf(shared.entries_cf(), None::<&[u8]>, Some(&end[..]));
        }
        Ok(self.shared().read_state().first())
    }

    /// The last index on disk.
    pub fn durable_index(&self) -> LogIndex {
        self.shared().read_state().last
    }

    /// The hard state on disk.
    pub fn hard_state(&self) -> HardState {
        self.shared().read_state().hard_state
    }

    /// `(index, term)` of the last compacted entry (`(0, 0)` if nothing was compacted).
    pub fn compaction_point(&self) -> (LogIndex, Term) {
        self.shared().read_state().compacted
    }

    /// Writer counters since open.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared().counters;
        LogStats {
            batches: c.batches.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            disk_reads: c.disk_reads.load(Ordering::Relaxed),
        }
    }

    /// RocksDB's estimate of the live data of the log column family, in bytes.
    pub fn live_data_bytes(&self) -> Result<u64, LogError> {
        let shared = self.shared();
        Ok(shared
            .db
            .property_int_value_cf(shared.entries_cf(), "rocksdb.estimate-live-data-size")?
            .unwrap_or(0))
    }

    /// Bytes of the log column family's SST files on disk.
    pub fn sst_bytes(&self) -> Result<u64, LogError> {
        let shared = self.shared();
        Ok(shared
            .db
            .property_int_value_cf(shared.entries_cf(), "rocksdb.total-sst-files-size")?
            .unwrap_or(0))
    }

    /// Writes RocksDB's memtables to SST files (durability does not need it: the WAL is
    /// synced; it makes on-disk sizes observable).
    pub fn flush(&self) -> Result<(), LogError> {
        let shared = self.shared();
        shared.db.flush_cf(shared.entries_cf())?;
        Ok(())
    }

    /// Reads `[lo, hi)` from RocksDB into `out`, while the running `size` stays within
    /// `max_bytes`. Returns `true` if it stopped because of `max_bytes`. The caller holds the
    /// state lock, so no entry in the range is deleted meanwhile.
    fn read_db(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
        size: &mut u64,
        out: &mut Vec<Entry>,
    ) -> Result<bool, LogError> {
        let shared = self.shared();
        shared.count_disk_read();
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(entry_key(hi).to_vec());
        let mut it = shared.db.raw_iterator_cf_opt(shared.entries_cf(), ro);
        it.seek(entry_key(lo));
        let mut want = lo;
        while want < hi {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                it.status().map_err(|e| LogError::rocks_at(want, e))?;
                return Err(missing(want));
            };
            if key != entry_key(want) {
                return Err(missing(want));
            }
            let entry = decode_entry(key, value).map_err(|detail| LogError::Corruption {
                index: want,
                detail,
            })?;
            *size += entry.size();
            if *size > max_bytes && !out.is_empty() {
                return Ok(true);
            }
            out.push(entry);
            want = want.next();
            it.next();
        }
        Ok(false)
    }

    fn entries_inner(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, LogError> {
        let st = self.shared().read_state();
        if lo < st.first() {
            return Err(LogError::Compacted(lo));
        }
        if hi > st.last.next() {
            return Err(LogError::Unavailable(hi));
        }
        let mut out = Vec::new();
        if lo >= hi {
            return Ok(out);
        }
        let mut size = 0;
        let cached_from = st.cache.first().unwrap_or(hi).max(lo);
        if lo < cached_from {
            let db_hi = cached_from.min(hi);
            if self.read_db(lo, db_hi, max_bytes, &mut size, &mut out)? || db_hi == hi {
                return Ok(out);
            }
        }
        st.cache
            .copy_range(cached_from, hi, max_bytes, &mut size, &mut out);
        Ok(out)
    }

    fn term_inner(&self, index: LogIndex) -> Result<Term, LogError> {
        let shared = self.shared();
        shared.term_at(&shared.read_state(), index)
    }
}

fn missing(index: LogIndex) -> LogError {
    LogError::Corruption {
        index,
        detail: "entry missing from a contiguous log".into(),
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let st = self.shared().read_state();
        Ok(InitialState {
            hard_state: st.hard_state,
            conf_state: st.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        lo: LogIndex,
        hi: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.entries_inner(lo, hi, max_bytes)?)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        Ok(self.term_inner(index)?)
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.shared().read_state().first())
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.shared().read_state().last)
    }

    fn snapshot(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        Ok(self.shared().read_state().snapshot.clone())
    }
}
