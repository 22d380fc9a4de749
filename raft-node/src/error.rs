//! Typed errors at the crate boundary.

use raft_core::NodeId;

/// Why a client request was not served. Each maps to one RESP error reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// This node is not the leader; the request may go to `leader` (or nowhere yet).
    #[error("not the leader (leader: {leader})")]
    NotLeader {
        /// The known leader, or [`NodeId::NONE`].
        leader: NodeId,
    },
    /// No leader was known, or no quorum answered, before the request's deadline. For a
    /// write, whether it was applied is unknown.
    #[error(
        "TRYAGAIN no leader or no quorum within {0} ms; a write may or may not have been applied"
    )]
    Timeout(u64),
    /// The proposal was replaced by another leader's entry: it was not applied and can be
    /// retried safely.
    #[error("TRYAGAIN leadership changed before the write committed; it was not applied")]
    Dropped,
    /// The write was covered by a snapshot from the leader before its outcome was seen here.
    #[error("TRYAGAIN the write's outcome is unknown (state replaced by a snapshot)")]
    Unknown,
    /// The node is stopping; the request was not proposed (a write was not applied).
    #[error("TRYAGAIN the node is shutting down")]
    Stopping,
    /// The node stopped after proposing the write and before seeing its outcome: another
    /// leader may still commit it.
    #[error(
        "TRYAGAIN the node stopped before the write's outcome was known; it may or may not have been applied"
    )]
    StoppedUnknown,
    /// The command, as a log entry, would not fit in a message to the followers; it was not
    /// proposed.
    #[error("ERR request too large ({bytes} bytes as a log entry, limit {limit})")]
    TooLarge {
        /// The encoded command's size.
        bytes: usize,
        /// The largest entry the transport can carry.
        limit: usize,
    },
    /// Not sent to the leader, so not applied: an earlier write of the same pipeline failed
    /// with an unknown outcome, or the deadline passed first.
    #[error(
        "TRYAGAIN not sent, so not applied: an earlier write of this pipeline has an unknown outcome or timed out"
    )]
    NotSent,
    /// The client may not do this (`NOAUTH ...`, `NOPERM ...`); nothing was proposed.
    #[error("{0}")]
    Denied(String),
    /// The leader refused a forwarded command; its reply text, as it would have sent it.
    #[error("{0}")]
    Remote(String),
    /// A forwarded request failed in transport; a write may or may not have been applied.
    #[error("TRYAGAIN forwarding to leader {leader} failed: {detail}")]
    Forward {
        /// The leader.
        leader: NodeId,
        /// What failed.
        detail: String,
    },
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The log could not be opened or written.
    #[error(transparent)]
    Log(#[from] raft_log::LogError),
    /// The log's stored state could not be read.
    #[error(transparent)]
    Storage(#[from] raft_core::StorageError),
    /// The state machine's storage failed.
    #[error(transparent)]
    Kv(#[from] crate::kv::KvError),
    /// The snapshot store failed.
    #[error("snapshot store: {0}")]
    Snapshot(#[from] raft_snapshot::Error),
    /// The peer transport could not start.
    #[error("transport: {0}")]
    Transport(String),
    /// The protocol engine refused its state.
    #[error("raft: {0}")]
    Raft(#[from] raft_core::Error),
    /// A listener or file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node hit an unrecoverable failure while running.
    #[error("fatal: {0}")]
    Fatal(String),
}

impl NodeError {
    /// Wraps an I/O error with what was being done (for `map_err`).
    pub fn io_fn(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
        let what = what.into();
        move |source| NodeError::Io { what, source }
    }
}
