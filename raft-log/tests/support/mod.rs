//! Helpers shared by raft-log's integration tests.
#![allow(dead_code)]

use raft_core::conformance::TestStore;
use raft_core::{ConfState, Entry, HardState, LogIndex, StorageError};
use raft_log::{LogOptions, LogStore, LogWrite};
use std::path::{Path, PathBuf};

/// Options for tests: the real defaults, but a small cache and no trailing entries kept.
pub fn test_options() -> LogOptions {
    LogOptions::default().keep_trailing(0).cache_bytes(4096)
}

/// A [`LogStore`] in its own temporary directory that can be closed and reopened.
pub struct TempLog {
    pub dir: tempfile::TempDir,
    pub opts: LogOptions,
    pub log: Option<LogStore>,
}

impl TempLog {
    pub fn new(opts: LogOptions) -> TempLog {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(dir.path(), opts.clone()).expect("open new log");
        TempLog {
            dir,
            opts,
            log: Some(log),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn log(&self) -> &LogStore {
        self.log.as_ref().expect("open")
    }

    pub fn close(&mut self) {
        self.log = None;
    }

    pub fn reopen(&mut self) {
        self.log = None;
        self.log = Some(LogStore::open(self.dir.path(), self.opts.clone()).expect("reopen"));
    }
}

fn to_storage(e: raft_log::LogError) -> StorageError {
    e.into()
}

impl raft_core::Storage for TempLog {
    fn initial_state(&self) -> Result<raft_core::InitialState, StorageError> {
        self.log().initial_state()
    }
    fn entries(&self, lo: LogIndex, hi: LogIndex, max: u64) -> Result<Vec<Entry>, StorageError> {
        self.log().entries(lo, hi, max)
    }
    fn term(&self, index: LogIndex) -> Result<raft_core::Term, StorageError> {
        self.log().term(index)
    }
    fn first_index(&self) -> Result<LogIndex, StorageError> {
        self.log().first_index()
    }
    fn last_index(&self) -> Result<LogIndex, StorageError> {
        self.log().last_index()
    }
    fn snapshot(&self) -> Result<Option<raft_core::SnapshotMeta>, StorageError> {
        self.log().snapshot()
    }
}

impl TestStore for TempLog {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.log()
            .append(entries.to_vec())
            .map(drop)
            .map_err(to_storage)
    }
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        self.log().set_hard_state(hs).map(drop).map_err(to_storage)
    }
    fn compact(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.log().compact(index).map(drop).map_err(to_storage)
    }
    fn apply_snapshot(&mut self, meta: raft_core::SnapshotMeta) -> Result<(), StorageError> {
        self.log()
            .write(LogWrite::default().with_restore(meta))
            .map(drop)
            .map_err(to_storage)
    }
    fn set_snapshot(&mut self, meta: raft_core::SnapshotMeta) -> Result<(), StorageError> {
        self.log()
            .write(LogWrite::default().with_snapshot(meta))
            .map(drop)
            .map_err(to_storage)
    }
    fn reopen(&mut self) {
        TempLog::reopen(self)
    }
}

/// A new log with `conf` recorded, as the conformance suite's factory.
pub fn new_log(conf: ConfState, opts: LogOptions) -> TempLog {
    let log = TempLog::new(opts);
    log.log()
        .write(LogWrite::default().with_conf_state(conf))
        .expect("record configuration");
    log
}

/// Opens the directory with plain RocksDB, to damage it the way a disk or a bug would.
pub fn raw_db(path: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    rocksdb::DB::open_cf(&opts, path, ["raft_log", "raft_meta"]).expect("raw open")
}

pub fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// A value as the store seals it: `payload ‖ crc32c(key ‖ payload)`.
pub fn sealed(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), payload);
    let mut v = payload.to_vec();
    v.extend_from_slice(&crc.to_le_bytes());
    v
}
