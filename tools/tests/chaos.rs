//! `raft-chaos` end to end, on real `raft-node` processes: a bounded run with faults that must
//! stay linearizable (CI's chaos run), one whose cluster grows and shrinks meanwhile, the
//! workload alone, and a run with stale reads that the checker must catch (so a passing run
//! means something).
//!
//! The node binary is the `raft-node` in the same target directory as `raft-chaos`:
//! `cargo nextest run --workspace` (scripts/test.sh) builds it; alone, run
//! `cargo build -p raft-node --bin raft-node` first. Each run keeps its directory as
//! `<target>/chaos/test-<name>` (replaced by the next run of the same test), so the history
//! and verdict of the last CI run can be read afterwards.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{node_bin, serial};

const CHAOS: &str = env!("CARGO_BIN_EXE_raft-chaos");

/// What a run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    /// The summary line's `key=value` fields.
    summary: HashMap<String, String>,
}

impl Run {
    fn number(&self, key: &str) -> u64 {
        self.summary
            .get(key)
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap_or_else(|| panic!("no number {key} in the summary; output:\n{}", self.stdout))
    }
}

/// Runs `raft-chaos` with `args` in `<target>/chaos/test-<name>`.
fn chaos(name: &str, args: &[&str]) -> Run {
    let _serial = serial();
    let target = Path::new(CHAOS).parent().unwrap().parent().unwrap();
    let dir = target.join("chaos").join(format!("test-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let out = Command::new(CHAOS)
        .arg("--node-bin")
        .arg(node_bin())
        .arg("--dir")
        .arg(&dir)
        .args(args)
        .output()
        .expect("running raft-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Shown by the test runner when the test fails.
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("wall time {:?}", started.elapsed());
    let summary = stdout
        .lines()
        .rfind(|l| l.starts_with("chaos: nodes="))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Run {
        code: out.status.code(),
        stdout,
        summary,
    }
}

/// CI's chaos run: 3 nodes, `CHAOS_SECS` (default 60) seconds of kills, pauses and
/// partitions; every operation's history must be linearizable and no acknowledged append
/// lost.
#[test]
fn three_nodes_under_faults_stay_linearizable() {
    let secs = std::env::var("CHAOS_SECS").unwrap_or_else(|_| "60".into());
    let run = chaos("faults", &["--nodes", "3", "--duration", &secs]);
    assert_eq!(run.code, Some(0), "the run failed; output:\n{}", run.stdout);
    assert_eq!(run.number("violations"), 0);
    assert_eq!(run.number("lost_acknowledged"), 0);
    assert_eq!(run.number("inconclusive"), 0);
    assert!(run.number("faults") > 0, "no fault was injected");
    assert!(
        run.number("ops") > 1000,
        "too few operations to mean much; output:\n{}",
        run.stdout
    );
}

/// `--membership`: the cluster grows (a spare joins as a learner, catches up, is promoted)
/// and shrinks (a voter, sometimes the leader, is removed, stopped and wiped) for
/// `CHAOS_MEMBERSHIP_SECS` (default 40) seconds under the clients; the history must stay
/// linearizable, and at least one grow and one shrink must have completed.
#[test]
fn membership_changes_stay_linearizable() {
    let secs = std::env::var("CHAOS_MEMBERSHIP_SECS").unwrap_or_else(|_| "40".into());
    let run = chaos(
        "membership",
        &["--nodes", "3", "--membership", "--duration", &secs],
    );
    assert_eq!(run.code, Some(0), "the run failed; output:\n{}", run.stdout);
    assert_eq!(run.number("violations"), 0);
    assert_eq!(run.number("lost_acknowledged"), 0);
    assert_eq!(run.number("inconclusive"), 0);
    assert!(
        run.number("ops") > 1000,
        "too few operations to mean much; output:\n{}",
        run.stdout
    );
    assert!(
        run.number("members_added") >= 1,
        "no node joined; output:\n{}",
        run.stdout
    );
    assert!(
        run.number("members_removed") >= 1,
        "no node was removed; output:\n{}",
        run.stdout
    );
}

/// The workload alone: a smoke test of the runner.
#[test]
fn workload_alone_passes() {
    let run = chaos("no-faults", &["--no-faults", "--duration", "5"]);
    assert_eq!(run.code, Some(0), "the run failed; output:\n{}", run.stdout);
    assert!(run.number("ops") > 100);
    assert_eq!(run.number("unknown"), 0, "no faults, no unknown outcomes");
    assert_eq!(run.number("faults"), 0);
}

/// With `--read-mode stale` a follower serves reads from its own state, which lags the
/// leader's acknowledgements: the run must report violations and fail.
#[test]
fn stale_reads_are_caught() {
    let run = chaos(
        "stale-reads",
        &[
            "--no-faults",
            "--duration",
            "5",
            "--node-args",
            "--request-timeout-ms 2000 --worker-threads 1 --snapshot-interval 1000 --snapshot-min-log-bytes 0 --read-mode stale",
        ],
    );
    assert_eq!(
        run.code,
        Some(1),
        "the run should fail; output:\n{}",
        run.stdout
    );
    assert!(run.number("violations") > 0);
    assert!(
        run.stdout.contains("stale read"),
        "the report names stale reads"
    );
}

/// Bad flags: a clear message and exit status 2, and no cluster.
#[test]
fn bad_flags_are_refused() {
    let out = Command::new(CHAOS)
        .args(["--nodes", "2"])
        .output()
        .expect("running raft-chaos");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nodes"));
}
