//! `raft-node`: a replicated key-value server. It composes `raft-core` (the protocol),
//! `raft-log` (the durable log), `raft-net-quic` (the peer transport) and `raft-snapshot`
//! (snapshot streaming) on tokio, and speaks the Redis protocol (RESP2, RESP3 on request) to
//! clients.
//!
//! The write path (see `ARCHITECTURE.md`): a client's write reaches any node; a follower
//! forwards it to the leader over QUIC; the leader's **driver task** (the one owner of the
//! protocol state) proposes it, sends AppendEntries at once and hands the entries to the
//! **log writer thread** (group commit: one fsync for everything queued); once a quorum holds
//! them durably they commit, and the **apply thread** writes them to the RocksDB state machine
//! together with the applied index, then answers the client. Reads are linearizable by
//! default (ReadIndex), served by the node that received them.
//!
//! ```no_run
//! use raft_node::{Node, NodeConfig};
//!
//! # async fn run() -> Result<(), raft_node::NodeError> {
//! let cfg = NodeConfig {
//!     id: 1,
//!     data_dir: "/var/lib/raft/1".into(),
//!     peers: vec!["1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003".into()],
//!     certs: "/etc/raft/certs".into(),
//!     ..NodeConfig::default()
//! };
//! let node = Node::start(cfg).await?;
//! println!("redis-cli -p {}", node.client_addr().port());
//! node.shutdown(std::time::Duration::from_secs(5)).await
//! # }
//! ```

#![warn(missing_docs)]

mod apply;
pub mod auth;
mod client;
pub mod command;
mod commands;
mod config;
mod driver;
mod error;
mod fault;
mod forward;
mod glob;
mod handle;
mod info;
pub mod kv;
mod members;
pub mod metrics;
mod node;
pub mod resp;
mod scan;
mod snapshot;
mod tls;
mod transaction;

pub use config::{NodeConfig, ReadMode, parse_peers};
pub use driver::RoleInfo;
pub use error::{NodeError, RequestError};
pub use handle::NodeHandle;
pub use node::Node;
