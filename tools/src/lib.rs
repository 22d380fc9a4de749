//! `tools`: operator and test tooling for the cluster.
//!
//! - [`checker`]: the linearizability checker for the fault-injection run. Clients append
//!   unique tokens to a few keys and read them back; the run records every operation as a
//!   JSON-lines history, and the checker decides, key by key, whether one order consistent
//!   with real time explains every reply (Wing–Gong–Lowe search). It is a pure library: a
//!   history in, a report out.
//! - [`chaos`] and the `raft-chaos` binary: the fault-injection run itself. It starts a
//!   cluster of real `raft-node` processes on 127.0.0.1, runs concurrent clients (APPEND of
//!   unique tokens, GET) while a seeded nemesis kills (-9) and restarts, pauses
//!   (SIGSTOP/SIGCONT) and partitions nodes (minority, majority split, isolated leader,
//!   bridge), then heals, reads every key, and checks the history.
//! - [`resp`]: a small RESP2 client (encode a command, parse a reply, one connection), for
//!   the chaos run and the tools to come.
//!
//! # Running the chaos run
//!
//! CI runs 60 s of faults on 3 nodes (`tools/tests/chaos.rs`, `CHAOS_SECS` to change).
//! A long run, after `cargo build -p raft-node --bin raft-node`:
//!
//! ```text
//! cargo run -p tools --bin raft-chaos -- --nodes 5 --duration 600
//! ```
//!
//! It prints each fault as it happens and ends with one line:
//!
//! ```text
//! chaos: nodes=5 duration=600s seed=S faults=F ops=N ok=A fail=F unknown=U lost_acknowledged=0
//!   violations=0 inconclusive=0 wall=612s -> PASS (history: DIR/history.jsonl, verdict: DIR/verdict.txt)
//! ```
//!
//! The run directory (`--dir`, by default `target/chaos/run-<time>-<seed>/`) is kept: the
//! history, the checker's verdict, the nemesis log and each node's log (see [`chaos`]).
//! `--seed S` replays a run's fault schedule; `--help` lists the other flags. Exit status 0
//! means linearizable, no acknowledged append lost, every node healthy.
//!
//! Still to come, with the tools issue: `raftctl` (administration) and `raft-bench` (load
//! generation), on [`resp`].

pub mod bench;
pub mod chaos;
pub mod checker;
pub mod ctl;
pub mod resp;
pub mod table;

mod interrupt;
