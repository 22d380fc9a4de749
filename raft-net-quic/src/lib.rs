//! `raft-net-quic`: the peer transport for Raft messages on QUIC (quinn + rustls).
//!
//! - **One connection per peer.** Either side may dial; when both do at once, the connection
//!   dialed by the lower node id survives on both ends. Lost connections are redialed with
//!   exponential backoff and jitter; addresses can change at run time ([`Transport::set_peer`]).
//! - **Mutual TLS with a cluster CA.** Each node's certificate names it (`node-<id>`,
//!   [`certs`]). The dialer checks that the acceptor is the node it meant to reach; the
//!   acceptor checks that the dialer's certificate names the node its hello claims to be.
//!   Foreign CAs, expired certificates, wrong ids and unknown nodes are refused, logged and
//!   counted.
//! - **A stream per traffic class** ([`TrafficClass`]): control (votes, heartbeats, ReadIndex),
//!   replication (AppendEntries, ordered and pipelined), forwarded client requests (a stream
//!   each), snapshots (a stream each, handed out as `AsyncRead`/`AsyncWrite`). Control is
//!   sent at the highest priority and received first, so a heartbeat never waits behind bulk
//!   data.
//! - **Frames** are length-prefixed [`raft_core::wire`] messages with a maximum size; an
//!   oversized, truncated or undecodable frame closes that stream with a logged, counted error.
//! - **Bounded queues**: [`Transport::send`] never waits. A full queue is an error the caller
//!   acts on: for replication, tell raft-core (`RawNode::report_unreachable`) so the leader
//!   falls back to probing that follower instead of pipelining into a backlog; a dropped
//!   heartbeat is superseded by the next one (counted as coalesced). Raft tolerates the loss.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use raft_core::NodeId;
//! use raft_net_quic::{Transport, TransportConfig, TlsIdentity};
//!
//! let identity = TlsIdentity::load("certs".as_ref(), NodeId(1))?;
//! let cfg = TransportConfig::new(NodeId(1), "127.0.0.1:7001".parse()?, identity)
//!     .peer(NodeId(2), "127.0.0.1:7002".parse()?);
//! let (transport, mut inbound) = Transport::start(cfg)?;
//! while let Some(message) = inbound.messages.recv().await {
//!     // step it into raft-core; send its answers with transport.send(...)
//! #   let _ = (&transport, message);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod certs;
mod config;
mod error;
mod frame;
mod peer;
mod streams;
mod tls;
mod transport;

pub use config::TransportConfig;
pub use error::{SendError, StartError, StreamError};
pub use frame::TrafficClass;
pub use streams::{ForwardRequest, SnapshotRecv, SnapshotSend, SnapshotStream};
pub use tls::{TlsError, TlsIdentity};
pub use transport::{Inbound, Messages, PeerEvent, Transport};
