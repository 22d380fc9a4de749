//! `tools`: operator and test tooling for the cluster: `raftctl` (administration),
//! `raft-bench` (load generation) and the fault-injection run with its linearizability checker.
//!
//! Status: placeholder; the implementation lands with the tools issue.
