//! Typed errors of the transport.

use raft_core::NodeId;

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// quinn refused a setting.
    #[error("quic configuration: {0}")]
    Config(String),
}

/// Why a message was not queued. Raft tolerates lost messages: the caller may drop it (a
/// full replication queue means the peer is slow; its progress should fall back to probing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No such peer is configured.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The peer's queue for this traffic class is full.
    #[error("send queue to peer {0} is full")]
    Full(NodeId),
    /// The encoded message exceeds the maximum frame size.
    #[error("message of {len} bytes exceeds the maximum frame of {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The transport is shut down.
    #[error("transport is shut down")]
    Closed,
}

/// Why a forwarded request or a snapshot stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such peer is configured.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// There is no connection to the peer right now.
    #[error("not connected to peer {0}")]
    NotConnected(NodeId),
    /// The request took longer than the forward timeout.
    #[error("request to peer {0} timed out")]
    TimedOut(NodeId),
    /// The peer answered with something that is not a frame, or nothing.
    #[error("bad response from peer {peer}: {detail}")]
    BadResponse {
        /// The peer.
        peer: NodeId,
        /// What was wrong.
        detail: String,
    },
    /// The connection or stream failed.
    #[error("connection to peer {peer}: {detail}")]
    Connection {
        /// The peer.
        peer: NodeId,
        /// What happened.
        detail: String,
    },
}
