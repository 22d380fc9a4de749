//! What the tools' integration tests share: a 3-node cluster of real `raft-node run`
//! processes on 127.0.0.1 (the chaos run's `Cluster`, in a temporary directory), with extra
//! flags and environment when a test secures it ([`Setup`]), and running the binaries.
//!
//! The node binary is the `raft-node` next to the tools' binaries: `cargo nextest run
//! --workspace` (scripts/test.sh) builds it; alone, run `cargo build -p raft-node --bin
//! raft-node` first.

#![allow(dead_code)] // Each test binary uses its own part.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tools::chaos::cluster::Cluster;
use tools::resp::Credentials;

pub const RAFTCTL: &str = env!("CARGO_BIN_EXE_raftctl");
pub const RAFT_BENCH: &str = env!("CARGO_BIN_EXE_raft-bench");

/// One cluster at a time, also under `cargo test` (threads): on 2 cores two clusters would
/// distort each other's timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the one-cluster-at-a-time lock while the guard lives.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `raft-node` binary next to the tools' binaries.
pub fn node_bin() -> PathBuf {
    let bin = Path::new(RAFTCTL).with_file_name("raft-node");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo nextest run --workspace` builds it, or run `cargo build -p \
         raft-node --bin raft-node` first",
        bin.display()
    );
    bin
}

/// A running 3-node cluster with a leader; its nodes are killed when it drops.
pub struct TestCluster {
    // Field order: the nodes die before their directory goes.
    cluster: Cluster,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

/// What a test adds to the default cluster.
#[derive(Default)]
pub struct Setup {
    /// `raft-node run` flags of every node.
    pub args: Vec<String>,
    /// Environment of every node.
    pub env: Vec<(String, String)>,
    /// Flags of one node: (id, flags).
    pub node_args: Vec<(u64, Vec<String>)>,
    /// What the harness logs in with to ask RAFT.INFO, when the nodes want a password.
    pub credentials: Option<Credentials>,
}

impl TestCluster {
    pub fn start() -> TestCluster {
        TestCluster::start_with(Setup::default())
    }

    pub fn start_with(setup: Setup) -> TestCluster {
        let serial = serial();
        let dir = tempfile::Builder::new()
            .prefix("tools-test-")
            .tempdir()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut args = ["--worker-threads", "1"].map(String::from).to_vec();
        args.extend(setup.args);
        let mut cluster = Cluster::create(&node_bin(), dir.path(), 3, args)
            .unwrap()
            .with_fault_injection(false);
        for (k, v) in &setup.env {
            cluster = cluster.with_env(k, v);
        }
        for (id, a) in setup.node_args {
            cluster = cluster.with_node_args(id, a);
        }
        if let Some(c) = setup.credentials {
            cluster = cluster.with_credentials(c);
        }
        runtime.block_on(async {
            for id in cluster.ids() {
                cluster.start(id).await.unwrap();
            }
            let leader = cluster.wait_leader(Duration::from_secs(30)).await;
            assert!(leader.is_some(), "no leader within 30 s");
        });
        TestCluster {
            cluster,
            runtime,
            _dir: dir,
            _serial: serial,
        }
    }

    /// The client addresses, comma-separated, by node id.
    pub fn addrs(&self) -> String {
        self.cluster
            .nodes()
            .iter()
            .map(|n| n.client_addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that leads now, by its own RAFT.INFO.
    pub fn leader(&self) -> Option<u64> {
        self.runtime.block_on(self.cluster.leader())
    }
}

/// Runs a binary; prints what it wrote, which the test runner shows when a test fails.
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        // The caller's environment must not leak in; the test's may.
        .env_remove("RAFTCTL_NODES")
        .env_remove("RAFT_USER")
        .env_remove("RAFT_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    println!(
        "$ {} {} -> {:?} in {:?}\n{}{}",
        Path::new(bin).file_name().unwrap().to_string_lossy(),
        args.join(" "),
        out.status.code(),
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A 127.0.0.1 port nothing listens on (it was free a moment ago).
pub fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// `echo -n PASSWORD | raft-node hash-password --iterations 1000` (the fewest allowed:
/// the tests log in often).
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(node_bin())
        .args(["hash-password", "--iterations", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hash-password failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `raft-node certs --out DIR --ids 1` plus `extra` flags; panics if it fails.
pub fn certs(dir: &Path, extra: &[&str]) {
    let out = Command::new(node_bin())
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--ids", "1"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "raft-node certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `bin` until it exits 0 (a cluster is briefly not ok after its election), up to
/// 20 s; the last run.
pub fn run_until_ok(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(bin, args, env);
        if out.status.success() || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
