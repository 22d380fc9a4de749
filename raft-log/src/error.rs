//! Typed errors of the log store.

use raft_core::{LogIndex, StorageError};
use std::path::PathBuf;

/// Why opening, writing or reading the log failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// RocksDB reported an error (I/O, a lock held by another process, its own checksums).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored entry failed its checks.
    #[error("corrupt log entry at index {index}: {detail}")]
    Corruption {
        /// The entry's index.
        index: LogIndex,
        /// What is wrong.
        detail: String,
    },
    /// A metadata record (hard state, compaction point, configuration) failed its checks.
    #[error("corrupt log metadata `{key}`: {detail}")]
    CorruptMetadata {
        /// Which record.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The records are each intact but do not fit together (a hole in the log, a commit
    /// index beyond the last entry, terms going backwards).
    #[error("inconsistent log: {0}")]
    Inconsistent(String),
    /// The directory holds something other than a log this version can read.
    #[error("{path} is not a raft-log directory: {detail}")]
    NotALog {
        /// The directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The write does not fit the log (not consecutive, leaves a hole, rewrites compacted
    /// entries). Nothing of it was written.
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// The index is at or below the compaction point.
    #[error("log index {0} is compacted")]
    Compacted(LogIndex),
    /// The index is beyond the last entry.
    #[error("log index {0} is not available")]
    Unavailable(LogIndex),
    /// An earlier write failed, so the store refuses further writes: after a failed fsync the
    /// state of the disk is unknown and retrying could report lost data as durable.
    #[error("the log is unusable after an earlier write failure: {0}")]
    Failed(String),
    /// The store is shutting down.
    #[error("the log store is closed")]
    Closed,
    /// A blocking call from a completion callback: it runs on the writer thread, which would
    /// wait for itself.
    #[error("blocking log call from a completion callback would deadlock")]
    WouldDeadlock,
}

impl LogError {
    /// A RocksDB error met while reading at (or near) `index`: its own checksum failures are
    /// corruption there, anything else stays a RocksDB error.
    pub(crate) fn rocks_at(index: LogIndex, e: rocksdb::Error) -> LogError {
        if e.kind() == rocksdb::ErrorKind::Corruption {
            LogError::Corruption {
                index,
                detail: e.into_string(),
            }
        } else {
            LogError::Rocks(e)
        }
    }
}

impl From<LogError> for StorageError {
    fn from(e: LogError) -> StorageError {
        match e {
            LogError::Compacted(i) => StorageError::Compacted(i),
            LogError::Unavailable(i) => StorageError::Unavailable(i),
            LogError::Corruption { index, detail } => StorageError::Corruption { index, detail },
            other => StorageError::Other(Box::new(other)),
        }
    }
}
