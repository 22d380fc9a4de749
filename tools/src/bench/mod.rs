//! `raft-bench`: a load generator for a raft-node cluster.
//!
//! Closed-loop clients (each one connection, `--pipeline` requests in flight as one batch)
//! send SET and GET (`--read-ratio`) over `--keys` random keys for `--warmup` plus
//! `--duration` seconds, against the given addresses or a local cluster started for the
//! run. At the end: ops, ops/s, errors and latency percentiles (HdrHistogram, 3
//! significant digits) per operation, as a table or one JSON object.
//!
//! Parts: [`options`] (the flags), [`load`] (the clients), [`report`] (table and JSON),
//! [`cluster`] (the local cluster), [`progress`] (the line on a terminal), and the run
//! itself, [`main`].

pub mod cluster;
pub mod load;
pub mod options;
pub mod progress;
pub mod report;

mod run;

pub use options::Options;
pub use run::main;

use thiserror::Error;

/// Why a run could not be carried out.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BenchError {
    /// An address does not resolve.
    #[error("cannot resolve {addr}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The flags do not go together.
    #[error("{0}")]
    Usage(String),
    /// A node refuses the credentials, or wants a password.
    #[error("node at {addr}: {reason}")]
    Access {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// TLS with a node failed (the text names the address and rustls's reason).
    #[error("{0}")]
    Tls(String),
    /// A node does not answer PING.
    #[error("node at {addr} is unreachable: {reason}")]
    Unreachable {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The local cluster did not start.
    #[error("the local cluster did not start: {0}")]
    Cluster(String),
    /// Interrupted before the load began; any local cluster was stopped.
    #[error("interrupted")]
    Interrupted,
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}
