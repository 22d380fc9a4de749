//! `tools`: operator and test tooling for the cluster.
//!
//! - [`checker`]: the linearizability checker for the fault-injection run. Clients append
//!   unique tokens to a few keys and read them back; the run records every operation as a
//!   JSON-lines history, and the checker decides, key by key, whether one order consistent
//!   with real time explains every reply (Wing–Gong–Lowe search). It is a pure library: a
//!   history in, a report out.
//!
//! Still to come, with the tools issue: `raftctl` (administration), `raft-bench` (load
//! generation) and the chaos runner that injects faults and records the history the checker
//! reads.

pub mod checker;
