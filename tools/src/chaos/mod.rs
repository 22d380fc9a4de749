//! The fault-injection run (`raft-chaos`): a cluster of real `raft-node` processes on
//! loopback, clients appending unique tokens and reading a few keys, a nemesis killing,
//! pausing and partitioning nodes, then healing, a final read and the linearizability
//! checker's verdict.
//!
//! A run's directory holds what a person needs afterwards:
//!
//! - `history.jsonl`: every operation (invoke, then ok / fail / unknown), in the checker's
//!   format ([`crate::checker`]), written as the run goes;
//! - `verdict.txt`: the checker's report; `summary.txt`: the one-line summary;
//! - `nemesis.log`: each fault with its time (seconds from the run's start, the history's
//!   clock in nanoseconds);
//! - `node-N.log`: each node's output over all its restarts; `certs/`; and the nodes' data
//!   directories `node-N/`, removed after a passing run unless `--keep-data`.
//!
//! Parts: [`cluster`] (the processes), [`membership`] (`--membership`: the cluster grows
//! and shrinks), [`workload`] (the clients and how each outcome is
//! classified), [`nemesis`] (the fault schedule and healing), [`recorder`] (the history
//! file), [`rng`] (the seeded generator that makes `--seed` replay a schedule).

pub mod cluster;
pub mod membership;
pub mod nemesis;
pub mod recorder;
pub mod workload;

mod options;
mod run;

pub use options::Options;
pub use run::{ChaosError, RunResult, main, run};
