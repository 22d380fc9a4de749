//! A cluster of real `raft-node run` processes on 127.0.0.1, and what the nemesis does to
//! them: kill -9 and restart, SIGSTOP and SIGCONT, and commands on their client ports
//! (`RAFT.INFO`, `RAFT.FAULT`).
//!
//! Every child is killed when the [`Cluster`] drops, so no run leaves a node behind, even
//! one that fails or panics midway. (A runner killed with SIGKILL cannot clean up; the
//! nodes stay in its process group, so a test harness that kills the group gets them too.)

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use thiserror::Error;

use crate::resp::{ConnectOptions, Connection, Credentials, Reply};
use crate::rng::Rng;

/// How long a node may take to open its client port after a (re)start.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM before it gets SIGKILL.
const TERM_DEADLINE: Duration = Duration::from_secs(20);

/// Why the cluster could not be set up or a node could not be (re)started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A file, directory or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// `raft-node certs` failed.
    #[error("`raft-node certs` failed ({status}): {stderr}")]
    Certs {
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// No free ports could be found.
    #[error("no free ports on 127.0.0.1")]
    NoPorts,
    /// A node exited before it opened its client port.
    #[error("node {id} exited at start ({status}); see {}", log.display())]
    ExitedAtStart {
        /// The node.
        id: u64,
        /// Its exit status.
        status: ExitStatus,
        /// Its log.
        log: PathBuf,
    },
    /// A node did not open its client port in time.
    #[error("node {id} did not open its client port within {START_DEADLINE:?}; see {}", log.display())]
    NoClientPort {
        /// The node.
        id: u64,
        /// Its log.
        log: PathBuf,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// One node: its ports and files, and its process while it runs.
#[derive(Debug)]
pub struct Node {
    /// Its Raft id (1-based).
    pub id: u64,
    /// Its client (RESP) address.
    pub client_addr: SocketAddr,
    /// Its log file (stdout and stderr of every start, appended).
    pub log_path: PathBuf,
    raft_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Part of the cluster (an initial node, or a spare that joined and was not removed).
    member: bool,
    /// Starts with `--join` and the whole address book (a spare that joined).
    joins: bool,
}

impl Node {
    /// Running (started and not killed or exited, as far as the cluster knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stopped with SIGSTOP and not yet continued.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// The nodes of one run.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    certs: PathBuf,
    peers: String,
    /// Every node's address, spares included: what a joining node is given.
    all_peers: String,
    node_args: Vec<String>,
    nodes: Vec<Node>,
    fault_injection: bool,
    /// Environment of every node process, besides the runner's.
    env: Vec<(String, String)>,
    /// Flags of one node only, after `node_args`.
    own_args: BTreeMap<u64, Vec<String>>,
    /// How the cluster's own commands (RAFT.INFO, RAFT.FAULT) connect: plain, with AUTH
    /// when the nodes want a password.
    client: ConnectOptions,
}

impl Cluster {
    /// Prepares `n` nodes in `dir` (certificates, ports, data and log paths) without starting
    /// them. `node_args` are extra `raft-node run` flags for every node.
    pub fn create(
        bin: &Path,
        dir: &Path,
        n: u64,
        node_args: Vec<String>,
    ) -> Result<Cluster, ClusterError> {
        Cluster::create_with_spares(bin, dir, n, 0, node_args)
    }

    /// Like [`Cluster::create`], plus `spares` nodes (ids `n + 1 ..`) with certificates,
    /// ports and paths that are not members: [`Cluster::join`] starts one with `--join`.
    pub fn create_with_spares(
        bin: &Path,
        dir: &Path,
        n: u64,
        spares: u64,
        node_args: Vec<String>,
    ) -> Result<Cluster, ClusterError> {
        let certs = dir.join("certs");
        let total = n + spares;
        let ids: Vec<String> = (1..=total).map(|i| i.to_string()).collect();
        let out = Command::new(bin)
            .arg("certs")
            .arg("--out")
            .arg(&certs)
            .args(["--ids", &ids.join(",")])
            .output()
            .map_err(io(format!("running {} certs", bin.display())))?;
        if !out.status.success() {
            return Err(ClusterError::Certs {
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let ports = free_ports(3 * total as usize)?;
        let nodes: Vec<Node> = (1..=total)
            .zip(ports.chunks(3))
            .map(|(id, p)| Node {
                id,
                client_addr: SocketAddr::from(([127, 0, 0, 1], p[1])),
                log_path: dir.join(format!("node-{id}.log")),
                raft_port: p[0],
                metrics_port: p[2],
                data_dir: dir.join(format!("node-{id}")),
                child: None,
                paused: false,
                member: id <= n,
                joins: false,
            })
            .collect();
        let peers_of = |nodes: &[Node]| {
            nodes
                .iter()
                .map(|p| format!("{}=127.0.0.1:{}", p.id, p.raft_port))
                .collect::<Vec<_>>()
                .join(",")
        };
        let peers = peers_of(&nodes[..n as usize]);
        let all_peers = peers_of(&nodes);
        Ok(Cluster {
            bin: bin.to_owned(),
            certs,
            peers,
            all_peers,
            node_args,
            nodes,
            fault_injection: true,
            env: Vec::new(),
            own_args: BTreeMap::new(),
            client: ConnectOptions::default(),
        })
    }

    /// Sets `key=value` in every node's environment (e.g. `RAFT_REQUIREPASS`).
    pub fn with_env(mut self, key: &str, value: &str) -> Cluster {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Extra `raft-node run` flags for node `id` only (e.g. its own TLS client port).
    pub fn with_node_args(mut self, id: u64, args: Vec<String>) -> Cluster {
        self.own_args.entry(id).or_default().extend(args);
        self
    }

    /// Credentials for the cluster's own commands, for nodes that want a password.
    pub fn with_credentials(mut self, credentials: Credentials) -> Cluster {
        self.client.credentials = Some(credentials);
        self
    }

    /// Whether the nodes start with `--enable-fault-injection` (the RAFT.FAULT hook the
    /// nemesis partitions with); on by default, off for a cluster that is only measured.
    pub fn with_fault_injection(mut self, on: bool) -> Cluster {
        self.fault_injection = on;
        self
    }

    /// The nodes, by id order, spares included.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The ids of the members: the initial nodes and the spares that joined, less the
    /// nodes removed (what the nemesis hits, heals and reads through).
    pub fn ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.member)
            .map(|n| n.id)
            .collect()
    }

    /// The ids of the nodes that are not members (spares never started, nodes removed).
    pub fn spare_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.member)
            .map(|n| n.id)
            .collect()
    }

    /// Node `id`'s Raft address, as `RAFT.MEMBER ADD` takes it.
    pub fn raft_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.node(id).raft_port)
    }

    /// Starts spare `id` with `--join` on an empty data directory, as a member from now on
    /// (it waits to be added with `RAFT.MEMBER ADD`).
    pub async fn join(&mut self, id: u64) -> Result<(), ClusterError> {
        let node = self.node_mut(id);
        assert!(!node.member, "node {id} is a member already");
        let _ = std::fs::remove_dir_all(&node.data_dir);
        node.member = true;
        node.joins = true;
        self.start(id).await
    }

    /// Stops node `id` (SIGTERM, SIGKILL after 20 s), wipes its data directory and makes
    /// it a spare again (a removed node cannot rejoin with its old data). Returns its exit
    /// status (`None` if it had to be killed or was not running).
    pub async fn retire(&mut self, id: u64) -> Option<ExitStatus> {
        let node = self.node_mut(id);
        let status = match node.child.take() {
            Some(child) => {
                if node.paused {
                    signal(&child, Signal::CONT);
                }
                signal(&child, Signal::TERM);
                reap(child, TERM_DEADLINE).await
            }
            None => None,
        };
        let node = self.node_mut(id);
        node.paused = false;
        node.member = false;
        node.joins = false;
        let _ = std::fs::remove_dir_all(&node.data_dir);
        status
    }

    /// Starts node `id` (on its data dir and ports, as before) and waits for its client port.
    pub async fn start(&mut self, id: u64) -> Result<(), ClusterError> {
        self.spawn(id)?;
        self.wait_client_port(id).await
    }

    fn spawn(&mut self, id: u64) -> Result<(), ClusterError> {
        let mut cmd = Command::new(&self.bin);
        let node = &self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} is already running");
        let peers = if node.joins {
            &self.all_peers
        } else {
            &self.peers
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .map_err(io(format!("opening {}", node.log_path.display())))?;
        let log2 = log.try_clone().map_err(io("cloning a log file handle"))?;
        cmd.arg("run")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--raft-addr", &format!("127.0.0.1:{}", node.raft_port)])
            .args(["--client-addr", &node.client_addr.to_string()])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", node.metrics_port),
            ])
            .args(["--peers", peers])
            .args(node.joins.then_some("--join"))
            .arg("--certs")
            .arg(&self.certs)
            .args(self.fault_injection.then_some("--enable-fault-injection"))
            .args(&self.node_args)
            .args(self.own_args.get(&id).into_iter().flatten())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {}", self.bin.display())))?;
        let node = self.node_mut(id);
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    async fn wait_client_port(&mut self, id: u64) -> Result<(), ClusterError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let addr = self.node(id).client_addr;
            let connect = Connection::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                return Ok(());
            }
            let node = self.node_mut(id);
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    return Err(ClusterError::ExitedAtStart {
                        id,
                        status,
                        log: node.log_path.clone(),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NoClientPort {
                    id,
                    log: node.log_path.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9 node `id` and reaps it.
    pub async fn kill9(&mut self, id: u64) {
        if let Some(child) = self.node_mut(id).child.take() {
            signal(&child, Signal::KILL);
            reap(child, Duration::from_secs(10)).await;
        }
        self.node_mut(id).paused = false;
    }

    /// SIGSTOP node `id`: it keeps its sockets but answers nothing, like a long GC pause.
    pub fn pause(&mut self, id: u64) {
        if let Some(child) = &self.node(id).child {
            signal(child, Signal::STOP);
            self.node_mut(id).paused = true;
        }
    }

    /// SIGCONT node `id`.
    pub fn resume(&mut self, id: u64) {
        if let Some(child) = &self.node(id).child {
            signal(child, Signal::CONT);
        }
        self.node_mut(id).paused = false;
    }

    /// Nodes that exited without being told to, with their exit status; they count as not
    /// running from now on. A node that exits on its own under faults is a bug to report.
    pub fn exited(&mut self) -> Vec<(u64, ExitStatus)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    node.paused = false;
                    out.push((node.id, status));
                }
            }
        }
        out
    }

    /// Stops every running node with SIGTERM (SIGKILL after 20 s); returns each one's exit
    /// status (`None` if it had to be killed).
    pub async fn stop_all(&mut self) -> Vec<(u64, Option<ExitStatus>)> {
        for node in &mut self.nodes {
            if let Some(child) = &node.child {
                if node.paused {
                    signal(child, Signal::CONT);
                    node.paused = false;
                }
                signal(child, Signal::TERM);
            }
        }
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.take() {
                out.push((node.id, reap(child, TERM_DEADLINE).await));
            }
        }
        out
    }

    /// Sends one command to node `id` on a fresh connection and waits up to `within`.
    pub async fn command(&self, id: u64, args: &[&str], within: Duration) -> Result<Reply, String> {
        let addr = self.node(id).client_addr;
        let call = async {
            let mut c = Connection::connect_with(addr, &self.client).await?;
            c.call(args).await
        };
        match tokio::time::timeout(within, call).await {
            Err(_) => Err(format!("no reply within {within:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// `RAFT.INFO` of node `id` as fields, if it answers within a second.
    pub async fn info(&self, id: u64) -> Option<BTreeMap<String, String>> {
        match self
            .command(id, &["RAFT.INFO"], Duration::from_secs(1))
            .await
        {
            Ok(Reply::Bulk(text)) => Some(parse_info(&String::from_utf8_lossy(&text))),
            _ => None,
        }
    }

    /// The node that says it leads, in the highest term any running node reports.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for node in self
            .nodes
            .iter()
            .filter(|n| n.member && n.is_running() && !n.paused)
        {
            if let Some(info) = self.info(node.id).await {
                let term = field(&info, "term");
                if info.get("role").map(String::as_str) == Some("leader")
                    && best.is_none_or(|(t, _)| term > t)
                {
                    best = Some((term, node.id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Polls [`Cluster::leader`] until there is one, up to `within`.
    pub async fn wait_leader(&self, within: Duration) -> Option<u64> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(leader) = self.leader().await {
                return Some(leader);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes the nodes' data directories (the bulk of a run's disk use).
    pub fn remove_data(&self) {
        for node in &self.nodes {
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SIGKILL ends a stopped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends `sig` to `child`; a child that already exited is not an error worth stopping for
/// (the next `exited` call notices it).
fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = kill_process(pid, sig);
    }
}

/// Waits for `child` to exit, up to `within`, then kills it; its status if it exited.
async fn reap(mut child: Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    // Polled, not `wait()`: a blocking wait would stall the clients on this runtime.
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `raft-node` next to this executable (cargo puts every binary of a workspace in one
/// directory), else `raft-node` from PATH.
pub fn default_node_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("raft-node")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("raft-node"))
}

/// `field:value` lines as a map.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A numeric field, 0 if absent.
pub fn field(info: &BTreeMap<String, String>, name: &str) -> u64 {
    info.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `n` distinct ports free for both TCP and UDP on 127.0.0.1, below the kernel's ephemeral
/// range when it can tell: a node's port is free while the node is down, and an outgoing
/// client connection must not take it as its source port then (the restart would fail).
fn free_ports(n: usize) -> Result<Vec<u16>, ClusterError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()) << 32;
    let mut rng = Rng::new(seed);
    // Hold every socket until all are chosen so no two ports collide.
    let mut held: Vec<(TcpListener, UdpSocket)> = Vec::new();
    if low > 11_000 {
        for _ in 0..200 * n {
            if held.len() == n {
                break;
            }
            let port = 10_000 + rng.below(u64::from(low) - 10_000) as u16;
            if let (Ok(t), Ok(u)) = (
                TcpListener::bind(("127.0.0.1", port)),
                UdpSocket::bind(("127.0.0.1", port)),
            ) {
                held.push((t, u));
            }
        }
    }
    // Else the kernel's choice: free now, and nearly always still free at a restart.
    for _ in 0..100 * n {
        if held.len() == n {
            break;
        }
        let t = TcpListener::bind("127.0.0.1:0").map_err(|_| ClusterError::NoPorts)?;
        let port = t.local_addr().map_err(|_| ClusterError::NoPorts)?.port();
        if let Ok(u) = UdpSocket::bind(("127.0.0.1", port)) {
            held.push((t, u));
        }
    }
    if held.len() < n {
        return Err(ClusterError::NoPorts);
    }
    held.iter()
        .map(|(t, _)| t.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|_| ClusterError::NoPorts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raft_info() {
        let info = parse_info("node_id:2\r\nrole:leader\r\nterm:7\r\npeer1:match_index=3\r\n");
        assert_eq!(info["role"], "leader");
        assert_eq!(field(&info, "term"), 7);
        assert_eq!(field(&info, "missing"), 0);
        assert_eq!(info["peer1"], "match_index=3");
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(9).unwrap();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 9);
    }
}
