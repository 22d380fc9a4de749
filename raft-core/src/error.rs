//! Typed errors at the crate boundary.

use crate::confchange::ConfChangeError;
use crate::types::{LogIndex, NodeId, Term};

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Node id 0 means "none".
    #[error("node id must be non-zero")]
    ZeroId,
    /// Heartbeats must happen.
    #[error("heartbeat interval must be at least one tick")]
    ZeroHeartbeat,
    /// Followers would time out between heartbeats.
    #[error(
        "heartbeat interval ({heartbeat} ticks) must be smaller than the election timeout ({election} ticks)"
    )]
    HeartbeatNotBelowElection {
        /// H.
        heartbeat: u32,
        /// T.
        election: u32,
    },
    /// No append could ever be sent.
    #[error("max_inflight_msgs must be at least 1")]
    ZeroInflight,
    /// Size limits must allow some bytes.
    #[error("size limits must be non-zero")]
    ZeroSizeLimit,
    /// Lease reads rely on followers refusing votes while they hear from the leader, which is
    /// part of CheckQuorum.
    #[error("read_lease requires check_quorum")]
    LeaseWithoutCheckQuorum,
    /// The lease would be empty: the drift bound eats the whole election timeout.
    #[error(
        "max_clock_drift_ticks ({drift}) must be smaller than the election timeout ({election} ticks) for lease reads"
    )]
    DriftNotBelowElection {
        /// The drift bound.
        drift: u32,
        /// T.
        election: u32,
    },
    /// No longer returned: a node whose stored configuration has no voters waits to join a
    /// cluster (see [`crate::RawNode::propose_conf_change`]).
    #[error("the stored configuration has no voters")]
    NoVoters,
}

/// A storage failure, as reported by a [`crate::Storage`] implementation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The index is below the first index: the entry was compacted into a snapshot.
    #[error("log index {0} is compacted")]
    Compacted(LogIndex),
    /// The index is above the last index.
    #[error("log index {0} is not available")]
    Unavailable(LogIndex),
    /// Stored data failed its integrity check.
    #[error("corrupt log data at index {index}: {detail}")]
    Corruption {
        /// Where.
        index: LogIndex,
        /// What is wrong.
        detail: String,
    },
    /// Anything else (I/O, ...).
    #[error("storage error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a call into the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Proposals and read-index requests go to the leader; this node is not it.
    #[error("not the leader (leader hint: {leader})")]
    NotLeader {
        /// The leader this node knows of, or [`NodeId::NONE`].
        leader: NodeId,
    },
    /// A leadership transfer's target is not a voter of the configuration.
    #[error("unknown node {0}: not a voter of the configuration")]
    UnknownPeer(NodeId),
    /// [`crate::RawNode::transfer_leader`] named the leader itself.
    #[error("cannot transfer leadership to the leader itself")]
    TransferToSelf,
    /// The leader is handing leadership over to `to` and accepts no proposals meanwhile:
    /// retry on the new leader (or here, if the transfer is aborted after an election
    /// timeout).
    #[error("leadership transfer to {to} in progress: retry on the new leader")]
    TransferInProgress {
        /// The transfer's target.
        to: NodeId,
    },
    /// A configuration change is not applied yet — or, on a new leader, the first entry of
    /// its term — and configuration changes go one at a time: retry once the entry at `index`
    /// is applied.
    #[error("a configuration change is pending until index {index} is applied: retry then")]
    ConfChangePending {
        /// The entry to wait for.
        index: LogIndex,
    },
    /// The configuration change cannot be made to the configuration in effect.
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(#[from] ConfChangeError),
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient {
        /// The recipient named in the message.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The message contradicts itself or the protocol (e.g. non-consecutive entries).
    #[error("malformed message from {from}: {reason}")]
    MalformedMessage {
        /// Sender.
        from: NodeId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A leader asked this node to overwrite an entry it knows to be committed: one of the two
    /// is broken. The message is refused.
    #[error("leader {leader} (term {term}) tried to overwrite committed index {index}")]
    CommittedConflict {
        /// The sender.
        leader: NodeId,
        /// Its term.
        term: Term,
        /// The committed index it conflicts with.
        index: LogIndex,
    },
    /// An acknowledgement that does not match what was handed out.
    #[error("invalid acknowledgement: {0}")]
    InvalidAck(&'static str),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
