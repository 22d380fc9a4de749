//! Typed errors: what went wrong, and whether a new attempt can resume.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::{LogIndex, Term};

use crate::frame::FrameError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"write"`, `"fsync"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The byte stream to the peer failed (reset, broken pipe, ...).
    #[error("snapshot stream failed: {0}")]
    Stream(#[source] io::Error),
    /// The peer closed the stream before the transfer finished.
    #[error("snapshot stream closed by the peer before the transfer finished")]
    Closed,
    /// No progress for the configured stall timeout; the transfer was abandoned.
    #[error("snapshot transfer stalled: no progress for {0:?}")]
    Stalled(Duration),
    /// A malformed frame arrived (oversized, truncated, bad checksum, undecodable).
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer sent a well-formed message that makes no sense at this point.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A file name in a manifest is not a safe relative path.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A manifest is inconsistent in itself (duplicate names, too many files, ...).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A file does not match the manifest (size, checksum, missing or unexpected file).
    #[error("snapshot {index}/{term}: {file:?} does not match the manifest: {detail}")]
    Mismatch {
        /// The snapshot's last included index.
        index: LogIndex,
        /// The snapshot's last included term.
        term: Term,
        /// The file's relative name.
        file: String,
        /// What differs.
        detail: String,
    },
    /// A snapshot with the same index and term but other contents is already stored.
    #[error("snapshot {index}/{term} already exists with different contents")]
    Conflict {
        /// Last included index.
        index: LogIndex,
        /// Last included term.
        term: Term,
    },
    /// This node already runs the maximum number of transfers (or receives this very
    /// snapshot on another stream).
    #[error("snapshot transfer refused: {0}")]
    Busy(String),
    /// The peer refused or failed the transfer and said why.
    #[error("the peer refused the snapshot ({code}): {detail}")]
    Remote {
        /// The peer's reason.
        code: RemoteCode,
        /// The peer's message.
        detail: String,
    },
    /// More corrupted chunks arrived than the configuration allows in one transfer.
    #[error("{0} corrupted chunks in one transfer; giving up")]
    TooManyCorruptChunks(u32),
    /// A stored file that this crate wrote is damaged.
    #[error("corrupt {}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether a new attempt on a new stream may succeed (and then resumes from the
    /// receiver's verified offsets): stream failures, stalls, bad frames, busy peers.
    /// Mismatches, invalid manifests and conflicts will fail again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Stream(_)
            | Error::Closed
            | Error::Stalled(_)
            | Error::Frame(_)
            | Error::Busy(_)
            | Error::TooManyCorruptChunks(_) => true,
            Error::Remote { code, .. } => matches!(
                code,
                RemoteCode::Busy | RemoteCode::Corrupt | RemoteCode::Internal
            ),
            _ => false,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// The code the receiver sends the sender when it fails with this error.
    pub(crate) fn remote_code(&self) -> RemoteCode {
        match self {
            Error::Busy(_) => RemoteCode::Busy,
            Error::Conflict { .. } => RemoteCode::Conflict,
            Error::InvalidName { .. } | Error::InvalidManifest(_) | Error::Protocol(_) => {
                RemoteCode::Invalid
            }
            Error::Mismatch { .. } => RemoteCode::Mismatch,
            Error::TooManyCorruptChunks(_) => RemoteCode::Corrupt,
            _ => RemoteCode::Internal,
        }
    }
}

/// Why a receiver refused or failed a transfer (sent to the sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteCode {
    /// Too many transfers at once, or this snapshot is being received on another stream.
    Busy,
    /// It holds a snapshot with the same index and term but other contents.
    Conflict,
    /// The manifest or a message was invalid.
    Invalid,
    /// A file did not match the manifest; the partial snapshot was discarded.
    Mismatch,
    /// Too many corrupted chunks.
    Corrupt,
    /// A local failure on the receiver (disk full, I/O error).
    Internal,
    /// A code this version does not know.
    Unknown(u32),
}

impl RemoteCode {
    pub(crate) fn to_wire(self) -> u32 {
        match self {
            RemoteCode::Busy => 1,
            RemoteCode::Conflict => 2,
            RemoteCode::Invalid => 3,
            RemoteCode::Mismatch => 4,
            RemoteCode::Corrupt => 5,
            RemoteCode::Internal => 6,
            RemoteCode::Unknown(c) => c,
        }
    }

    pub(crate) fn from_wire(code: u32) -> RemoteCode {
        match code {
            1 => RemoteCode::Busy,
            2 => RemoteCode::Conflict,
            3 => RemoteCode::Invalid,
            4 => RemoteCode::Mismatch,
            5 => RemoteCode::Corrupt,
            6 => RemoteCode::Internal,
            c => RemoteCode::Unknown(c),
        }
    }
}

impl fmt::Display for RemoteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteCode::Busy => f.write_str("busy"),
            RemoteCode::Conflict => f.write_str("conflict"),
            RemoteCode::Invalid => f.write_str("invalid"),
            RemoteCode::Mismatch => f.write_str("mismatch"),
            RemoteCode::Corrupt => f.write_str("corrupt"),
            RemoteCode::Internal => f.write_str("internal"),
            RemoteCode::Unknown(c) => write!(f, "unknown code {c}"),
        }
    }
}
