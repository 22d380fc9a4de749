//! Tunables of a [`crate::LogStore`].

use std::path::PathBuf;

/// How a [`crate::LogStore`] is opened. [`LogOptions::default`] is what a server should use.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogOptions {
    /// Bytes of the most recent entries kept in memory, so a leader replicating to healthy
    /// followers never reads RocksDB. Default 64 MiB. 0 disables the cache.
    pub cache_bytes: u64,
    /// Sync every write to disk before reporting it durable. Default `true`.
    ///
    /// `false` is for benchmarks and tests only: a crash of the machine loses writes the
    /// store called durable, which breaks Raft's safety. Opening with it logs a warning.
    pub sync: bool,
    /// Entries kept below a compaction point, so slow followers can still catch up from the
    /// log instead of a snapshot. Default 1024.
    pub keep_trailing: u64,
    /// Most bytes of writes gathered into one batch (one fsync). Default 32 MiB; a single write
    /// larger than this is still written, alone.
    pub max_batch_bytes: u64,
    /// RocksDB's memtable size for the log. Default 16 MiB. It is also about the size of each
    /// write-ahead log file, as a full memtable is flushed and its WAL file retired.
    pub write_buffer_bytes: usize,
    /// Reuse retired write-ahead log files instead of creating new ones, and fill two of them
    /// when the log is opened. Default `true`.
    ///
    /// On ext4 and XFS an fdatasync that extends a file must also commit the new file size to
    /// the filesystem journal; overwriting a file that is already written needs only the data
    /// write. Measured here (`cargo bench -p raft-log --bench group_commit`), that is about 1.5×
    /// fewer microseconds per durable append. The cost: up to two WAL files' worth of disk kept
    /// (about 2 × [`LogOptions::write_buffer_bytes`]), and writing that much once at every open.
    pub recycle_wal: bool,
    /// Put RocksDB's write-ahead log on another device (e.g. a faster one). Default: inside
    /// the data directory.
    pub wal_dir: Option<PathBuf>,
    /// Read and verify every stored entry when opening (checksums, contiguity, terms).
    /// Default `true`: a damaged log is refused at start rather than found later. `false`
    /// checks only the metadata and the ends of the log.
    pub verify_on_open: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            cache_bytes: 64 << 20,
            sync: true,
            keep_trailing: 1024,
            max_batch_bytes: 32 << 20,
            write_buffer_bytes: 16 << 20,
            recycle_wal: true,
            wal_dir: None,
            verify_on_open: true,
        }
    }
}

impl LogOptions {
    /// Sets [`LogOptions::cache_bytes`].
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }
    /// Sets [`LogOptions::sync`].
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }
    /// Sets [`LogOptions::keep_trailing`].
    pub fn keep_trailing(mut self, entries: u64) -> Self {
        self.keep_trailing = entries;
        self
    }
    /// Sets [`LogOptions::max_batch_bytes`].
    pub fn max_batch_bytes(mut self, bytes: u64) -> Self {
        self.max_batch_bytes = bytes;
        self
    }
    /// Sets [`LogOptions::write_buffer_bytes`].
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.write_buffer_bytes = bytes;
        self
    }
    /// Sets [`LogOptions::recycle_wal`].
    pub fn recycle_wal(mut self, recycle: bool) -> Self {
        self.recycle_wal = recycle;
        self
    }
    /// Sets [`LogOptions::wal_dir`].
    pub fn wal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.wal_dir = Some(dir.into());
        self
    }
    /// Sets [`LogOptions::verify_on_open`].
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }
}
