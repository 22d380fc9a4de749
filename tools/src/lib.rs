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
//! - [`ctl`] and the `raftctl` binary: administration of a running cluster over the nodes'
//!   client ports: status (a table of every node's state and health, `--json`, `--watch`),
//!   leadership transfer, snapshots, membership changes.
//! - [`bench`] and the `raft-bench` binary: a load generator (closed-loop pipelined SET /
//!   GET clients, latency percentiles from HdrHistograms), against given nodes or a local
//!   cluster it starts and stops itself.
//! - [`resp`]: a small RESP2 client (encode a command, parse a reply, one connection, plain
//!   or TLS, with AUTH), [`client_opts`]: the security flags raftctl and raft-bench share,
//!   and [`table`]: aligned plain-text tables.
//!
//! # raftctl
//!
//! ```text
//! export RAFTCTL_NODES=127.0.0.1:6379,127.0.0.1:6380,127.0.0.1:6381   # or --nodes ...
//! raftctl status                  # table; exit 1 if a node is unreachable or no leader
//! raftctl status --json           # one JSON object (with --watch: one per line)
//! raftctl status --watch 2        # redraw every 2 s until Ctrl-C
//! raftctl transfer-leader 2       # sent to the leader; returns once node 2 leads
//! raftctl snapshot 3              # node 3 snapshots now; prints the index
//! raftctl member add 4 10.0.0.4:7000 --learner
//! raftctl member promote 4
//! raftctl member remove 4
//! ```
//!
//! Against secured nodes (`raft-node run --requirepass`, `[[users]]`, `--client-tls-addr`):
//!
//! ```text
//! export RAFT_PASSWORD=...                   # the `default` user (an admin); or --password
//! raftctl --user app status                  # a named user; a data user may not run
//!                                            # transfer-leader, snapshot or member (NOPERM)
//! raftctl --nodes 10.0.0.1:6380,10.0.0.2:6380 --tls --cacert certs/ca.crt status
//! raftctl --tls --cacert certs/ca.crt --cert certs/client-app.crt --key certs/client-app.key \
//!     --sni localhost status                 # a client certificate; the name to check
//! ```
//!
//! The nodes' TLS certificate is checked against the IP address connected to unless
//! `--sni NAME` is given; `raft-node certs --client-port-names 127.0.0.1,localhost` makes
//! one for both. raft-bench takes the same flags (with `--nodes`).
//!
//! `raftctl status` prints, for example:
//!
//! ```text
//! ID  ADDRESS          ROLE      MEMBER  TERM  LEADER  COMMIT  APPLIED  LAST  SNAPSHOT  LAG  HEALTH
//!  1  127.0.0.1:46409  follower  voter      1       3    2786     2786  2786         0    0  ok
//!  2  127.0.0.1:32933  follower  voter      1       3    2786     2786  2786      2786    0  ok
//!  3  127.0.0.1:41295  leader    voter      1       3    2786     2786  2786         0    -  ok
//! leader: node 3 (term 1); 3 of 3 nodes answered; ok
//! ```
//!
//! The health column and what fails the exit status are in [`ctl::status`].
//!
//! # raft-bench
//!
//! ```text
//! raft-bench                                   # starts 3 local nodes, 10 s after 2 s warmup
//! raft-bench --nodes 127.0.0.1:6379 --clients 64 --pipeline 16 --read-ratio 0.9
//! raft-bench --duration 30 --value-size 1024 --json > result.json
//! raft-bench --nodes 10.0.0.1:6380 --tls --cacert certs/ca.crt --password ...
//! ```
//!
//! It ends with one row per operation and one for all (ops, ops/s, errors, p50 / p90 / p99
//! / p99.9 / max latency in ms) and the errors by kind, if any; `--help` explains how
//! latency is measured with pipelining. For example (release nodes, 2 cores shared):
//!
//! ```text
//! raft-bench: 3 nodes (127.0.0.1:39167,127.0.0.1:36251,127.0.0.1:37369), 50 clients x pipeline 1, 10.0 s measured after 2.0 s warmup, 100000 keys, 16-byte values, 50% GET
//! OP     OPS   OPS/S  ERRORS  P50 MS  P90 MS  P99 MS  P99.9 MS  MAX MS
//! GET  21068  2100.0       0   6.827  22.735  29.759    46.399  52.511
//! SET  20924  2085.7       0  10.823  24.223  32.463    49.407  53.247
//! ALL  41992  4185.7       0   9.551  23.519  31.071    48.735  53.247
//! ```
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
//! `--seed S` replays a run's fault schedule; `--help` lists the other flags.
//! `--membership` replaces the faults with membership changes (see [`chaos::membership`]):
//! two spare nodes join, catch up as learners and are promoted, voters (sometimes the
//! leader) are removed, stopped and wiped, now and then a member is killed and restarted;
//! the summary then adds `members_added=N members_removed=M`. Exit status 0
//! means linearizable, no acknowledged append lost, every node healthy.

pub mod bench;
pub mod chaos;
pub mod checker;
pub mod client_opts;
pub mod ctl;
pub mod resp;
pub mod rng;
pub mod table;

mod interrupt;
