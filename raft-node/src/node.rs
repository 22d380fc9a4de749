//! Composing a node: storage, transport, the driver, the apply thread and the listeners.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use raft_core::{ConfState, Config, NodeId, RawNode, Storage};
use raft_log::{LogOptions, LogStore, LogWrite};
use raft_net_quic::{TlsIdentity, Transport, TransportConfig};
use raft_snapshot::{SnapshotStore, TransferConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::{self, ClientSettings};
use crate::commands::CommandLimits;
use crate::config::NodeConfig;
use crate::driver::{Driver, RoleInfo};
use crate::error::NodeError;
use crate::fault::Faults;
use crate::handle::{NodeHandle, serve_forward};
use crate::kv::KvStore;
use crate::snapshot::Snapshots;

/// A running node. Stop it with [`Node::shutdown`].
pub struct Node {
    handle: NodeHandle,
    client_addr: SocketAddr,
    client_tls_addr: Option<SocketAddr>,
    raft_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Stops the driver, after the clients (so in-flight writes can still commit).
    stop_driver: watch::Sender<bool>,
    driver: JoinHandle<Result<(), NodeError>>,
    /// One accept loop per client port.
    clients: Vec<JoinHandle<()>>,
    open_clients: Arc<AtomicUsize>,
    background: Vec<JoinHandle<()>>,
    transport: Arc<Transport>,
    log: LogStore,
}

/// Runs RocksDB's background threads (memtable flushes, compactions; shared by the log and
/// the state machine, and by every RocksDB instance of the process) at the lowest CPU
/// priority. A flush builds an SST file from a memtable for milliseconds of CPU at a time;
/// at equal priority the log writer, the driver and the apply thread waking meanwhile could
/// wait behind it for a whole scheduler tick (4 ms at 250 Hz, seen with `perf sched`).
fn lower_rocksdb_background_priority() {
    match rocksdb::Env::new() {
        Ok(mut env) => {
            env.lower_high_priority_thread_pool_cpu_priority();
            env.lower_thread_pool_cpu_priority();
        }
        Err(e) => tracing::warn!(error = %e, "cannot lower RocksDB's background thread priority"),
    }
}

/// The client ports anyone who can reach them can use: on a non-loopback address without
/// passwords (and, for TLS, without client certificates).
fn open_client_ports(cfg: &NodeConfig, auth_required: bool) -> Vec<SocketAddr> {
    if auth_required {
        return Vec::new();
    }
    let verifies_clients =
        |a: &SocketAddr| cfg.client_tls_ca.is_some() && cfg.client_tls_addr == Some(*a);
    cfg.client_addrs()
        .into_iter()
        .filter(|a| !a.ip().is_loopback() && !verifies_clients(a))
        .collect()
}

/// Says so loudly at start (see [`open_client_ports`]).
fn warn_if_open(cfg: &NodeConfig, auth_required: bool) {
    for addr in open_client_ports(cfg, auth_required) {
        tracing::warn!(
            client = %addr,
            "SECURITY WARNING: the client port listens on a non-loopback address without \
             --requirepass or users: anyone who can reach it can read, write and \
             reconfigure the cluster"
        );
    }
}

impl Node {
    /// Opens the node's storage in `cfg.data_dir` (creating it for a new node), starts the
    /// transport and the client listener. Must run inside a multi-threaded tokio runtime.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        cfg.validate()?;
        let id = NodeId(cfg.id);
        let peers = cfg.peer_map()?;
        let auth = Arc::new(
            crate::auth::Auth::new(cfg.requirepass.as_ref().map(|s| s.0.as_str()), &cfg.users)
                .map_err(NodeError::Config)?,
        );
        let tls = match (&cfg.client_tls_cert, &cfg.client_tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(
                cert,
                key,
                cfg.client_tls_ca.as_deref(),
            )?),
            _ => None,
        };
        warn_if_open(&cfg, auth.required());
        std::fs::create_dir_all(&cfg.data_dir).map_err(NodeError::io_fn(format!(
            "creating {}",
            cfg.data_dir.display()
        )))?;
        lower_rocksdb_background_priority();

        // The nodes append the same entries and apply the same writes, so with equal
        // memtables all of them would flush at once; on shared cores that took both of them
        // from the log writers for 3-4 ms at a time (`perf sched`). Staggered, one at a time.
        let log_opts = LogOptions::default();
        let log_memtable = staggered(log_opts.write_buffer_bytes as u64, id) as usize;
        let log = LogStore::open(
            cfg.data_dir.join("log"),
            log_opts
                .sync(cfg.sync)
                .keep_trailing(cfg.keep_trailing)
                .write_buffer_bytes(log_memtable),
        )?;
        let wanted: BTreeSet<NodeId> = peers.keys().copied().collect();
        let fresh = log.initial_state()?.conf_state.voters.is_empty()
            && log.last_index()? == raft_core::LogIndex(0);
        if fresh && cfg.join {
            // Its configuration and log come from the leader once it is added (a snapshot
            // first); until then it neither campaigns nor votes.
            tracing::info!(node = %id, "joining: waiting to be added (RAFT.MEMBER ADD on the leader)");
        } else if fresh {
            if wanted.is_empty() {
                return Err(NodeError::Config(
                    "a new node needs --peers (every member, this node included), or --join".into(),
                ));
            }
            // A new cluster: every member starts from the same membership.
            let conf = ConfState::new(wanted.clone());
            log.write(LogWrite::entries(Vec::new()).with_conf_state(conf))?;
            tracing::info!(node = %id, members = ?wanted, "new node initialized");
        }
        let directory = crate::members::Directory::open(&cfg.data_dir, &peers)?;

        let snap_store = SnapshotStore::open(cfg.data_dir.join("snapshots"))?;
        let kv_memtable = staggered(crate::kv::MEMTABLE_BYTES as u64, id) as usize;
        let (kv, recovered) = KvStore::open_with_memtable(cfg.data_dir.join("kv"), kv_memtable)?;
        if let Some((index, term)) = recovered.installing {
            // A crash interrupted an install: redo it from the same files.
            let m = snap_store.get(index, term).ok_or_else(|| {
                NodeError::Fatal(format!(
                    "interrupted install of snapshot {index}, which is gone"
                ))
            })?;
            kv.install(&snap_store.path_of(&m), index, term)?;
        }
        let mut applied = kv.applied()?.0;
        let (compacted, _) = log.compaction_point();
        if applied < compacted {
            // The state machine is behind the log's start: only a snapshot can fill the gap.
            let m = snap_store
                .latest()
                .filter(|m| m.index >= compacted)
                .ok_or_else(|| {
                    NodeError::Fatal(format!(
                        "state machine at {applied} but the log starts after {compacted}, and no snapshot covers the gap"
                    ))
                })?;
            kv.install(&snap_store.path_of(&m), m.index, m.term)?;
            applied = m.index;
        }
        let mut raft_cfg = Config::new(id);
        raft_cfg.election_ticks = cfg.election_ticks;
        raft_cfg.heartbeat_ticks = cfg.heartbeat_ticks;
        raft_cfg.snapshot_interval = staggered(cfg.snapshot_interval, id);
        raft_cfg.max_inflight_msgs = cfg.max_inflight_msgs;
        raft_cfg.defer_commit_notice = cfg.defer_commit_notice;
        raft_cfg.read_lease = cfg.read_mode == crate::config::ReadMode::Lease;
        raft_cfg.max_clock_drift_ticks = cfg.max_clock_drift_ticks;
        raft_cfg
            .validate()
            .map_err(|e| NodeError::Config(format!("raft settings: {e}")))?;
        raft_cfg.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let raw = RawNode::with_applied(&raft_cfg, log.clone(), applied)?;
        tracing::info!(node = %id, applied = %applied, last_index = %log.last_index()?, "storage opened");
        // The configuration in effect is the newest in the log (membership changes included).
        let conf = raw.conf_state().clone();
        if !fresh {
            let voters: BTreeSet<NodeId> = conf.voters.iter().copied().collect();
            if !cfg.join && !wanted.is_empty() && voters != wanted {
                tracing::warn!(node = %id, stored = ?voters, flags = ?wanted, "--peers differs from the stored membership; the stored membership wins");
            }
            if !conf.is_empty() && !conf.contains(id) {
                tracing::warn!(node = %id, members = ?conf.members(), "this node is not a member of its configuration (removed?): it will not campaign");
            }
        }
        let missing = directory.missing(&conf, id);
        if !missing.is_empty() {
            return Err(NodeError::Config(format!(
                "no address for members {missing:?}: list them in --peers"
            )));
        }

        let identity = TlsIdentity::load(&cfg.certs, id).map_err(|e| {
            NodeError::Config(format!("certificates in {}: {e}", cfg.certs.display()))
        })?;
        let mut tcfg = TransportConfig::new(id, cfg.raft_addr, identity);
        for (pid, addr) in directory.iter() {
            if pid != id {
                tcfg = tcfg.peer(pid, addr);
            }
        }
        let (transport, inbound) =
            Transport::start(tcfg).map_err(|e| NodeError::Transport(e.to_string()))?;
        let transport = Arc::new(transport);
        let raft_addr = transport
            .local_addr()
            .map_err(NodeError::io_fn("reading the raft address"))?;

        let (stop, stop_rx) = watch::channel(false);
        let (stop_driver, stop_driver_rx) = watch::channel(false);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (applied_tx, applied_rx) = watch::channel(applied);
        let (inputs_tx, inputs) = mpsc::channel(65_536);
        let (members_tx, members_rx) = watch::channel(conf);
        let (role_tx, role_rx) = watch::channel(RoleInfo {
            id,
            role: raft_core::Role::Follower,
            leader: NodeId::NONE,
        });
        let waiters = crate::apply::Waiters::default();
        let apply = crate::apply::spawn(kv.clone(), waiters.clone(), events_tx.clone(), applied_tx)
            .map_err(NodeError::io_fn("starting the apply thread"))?;
        let snapshots = Snapshots {
            store: snap_store,
            kv: kv.clone(),
            cfg: TransferConfig::default(),
        };
        let faults = Arc::new(Faults::new(cfg.enable_fault_injection));
        if cfg.enable_fault_injection {
            tracing::warn!(node = %id, "fault injection enabled (RAFT.FAULT): for tests only");
        }
        let handle = NodeHandle {
            members: members_rx,
            faults: faults.clone(),
            inputs: inputs_tx,
            role: role_rx,
            applied: applied_rx.clone(),
            kv,
            auth,
            transport: transport.clone(),
            read_mode: cfg.read_mode,
            timeout: cfg.request_timeout(),
            stopping: stop_rx.clone(),
            heavy_reads: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            scans: Arc::default(),
        };
        let driver = Driver {
            members: members_tx,
            directory,
            faults: faults.clone(),
            raw,
            log: log.clone(),
            transport: transport.clone(),
            snapshots: snapshots.clone(),
            apply,
            waiters,
            applied: applied_rx,
            applied_acked: applied,
            events_tx,
            events,
            inputs,
            messages: inbound.messages,
            role: role_tx,
            tick: cfg.tick(),
            request_timeout: cfg.request_timeout(),
            shutdown: stop_driver_rx,
            reads: HashMap::new(),
            next_read: 0,
            snapshotting: false,
            snapshot_policy: crate::snapshot::Policy::new(
                cfg.snapshot_min_log_bytes,
                cfg.snapshot_log_percentage,
                snapshots.newest_bytes(),
                // RocksDB's estimate of the SST files (a log replayed at open is flushed).
                log.live_data_bytes().unwrap_or(0),
            ),
            snapshot_taken: None,
            snapshot_waiters: Vec::new(),
            sending: HashSet::new(),
            persisted: None,
            submitted: 0,
            too_large_logged: None,
            durable: 0,
            empty_after: None,
            written_hs: log.hard_state(),
            deferred_hs: None,
        };
        let driver = tokio::spawn(driver.run());

        let mut background = Vec::new();
        let mut forwards = inbound.forwards;
        let h = handle.clone();
        background.push(tokio::spawn(async move {
            while let Some(req) = forwards.recv().await {
                if faults.blocks(req.from) {
                    continue; // Dropped unanswered, as a cut network would.
                }
                let h = h.clone();
                tokio::spawn(async move {
                    let body = req.body.clone();
                    let answer = serve_forward(&h, body).await;
                    req.reply(answer);
                });
            }
        }));
        let mut incoming = inbound.snapshots;
        background.push(tokio::spawn(async move {
            while let Some(stream) = incoming.recv().await {
                snapshots.receive(stream);
            }
        }));

        let mut listeners = Vec::new();
        let plain = cfg.client_plain.then_some((cfg.client_addr, None));
        let secure = cfg.client_tls_addr.map(|a| (a, tls));
        for (addr, tls) in plain.into_iter().chain(secure) {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(NodeError::io_fn(format!("listening on {addr}")))?;
            let bound = l
                .local_addr()
                .map_err(NodeError::io_fn("reading the client address"))?;
            listeners.push((l, bound, tls));
        }
        // validate() made sure there is at least one client port.
        let client_addr = listeners[0].1;
        let client_tls_addr = listeners.iter().find(|l| l.2.is_some()).map(|l| l.1);
        let settings = ClientSettings {
            limits: CommandLimits {
                max_key_bytes: cfg.max_key_bytes,
                max_value_bytes: cfg.max_value_bytes,
                max_request_bytes: cfg.max_request_bytes,
            },
            max_clients: cfg.max_clients,
        };
        let open_clients = Arc::new(AtomicUsize::new(0));
        let clients = listeners
            .into_iter()
            .map(|(listener, _, tls)| {
                tokio::spawn(client::serve(
                    listener,
                    tls,
                    handle.clone(),
                    settings,
                    stop_rx.clone(),
                    open_clients.clone(),
                ))
            })
            .collect();
        tracing::info!(node = %id, client = %client_addr, client_tls = ?client_tls_addr, raft = %raft_addr, "node started");
        Ok(Node {
            handle,
            client_addr,
            client_tls_addr,
            raft_addr,
            stop,
            stop_driver,
            driver,
            clients,
            open_clients,
            background,
            transport,
            log,
        })
    }

    /// The handle client code uses.
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// The bound client address: the plain one, or the TLS one when there is no plain one.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The bound TLS client address, if TLS is on.
    pub fn client_tls_addr(&self) -> Option<SocketAddr> {
        self.client_tls_addr
    }

    /// The bound peer address.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// Waits until the driver stops on its own (a fatal failure) and returns why.
    pub async fn wait_failed(&mut self) -> NodeError {
        match (&mut self.driver).await {
            Ok(Ok(())) => NodeError::Fatal("the driver stopped".into()),
            Ok(Err(e)) => e,
            Err(e) => NodeError::Fatal(format!("the driver panicked: {e}")),
        }
    }

    /// Stops accepting clients, lets connections answer what they read (up to `grace`),
    /// stops the driver, and flushes the log.
    pub async fn shutdown(self, grace: std::time::Duration) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        let until = tokio::time::Instant::now() + grace;
        for accept in self.clients {
            let _ = tokio::time::timeout_at(until, accept).await;
        }
        // Connections answer what they read (requests waiting for a leader now fail at
        // once), then close.
        while self.open_clients.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // In-flight client requests were answered or timed out; the driver stops next.
        let _ = self.stop_driver.send(true);
        let result = if self.driver.is_finished() {
            self.driver
                .await
                .unwrap_or_else(|e| Err(NodeError::Fatal(e.to_string())))
        } else {
            let _ = tokio::time::timeout(grace, self.driver).await;
            Ok(())
        };
        for b in self.background {
            b.abort();
        }
        // Every acknowledged write is synced already; this only shortens the next start.
        let log = self.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush()).await;
        match Arc::try_unwrap(self.transport) {
            Ok(t) => t.shutdown().await,
            Err(_) => tracing::debug!("transport still shared at shutdown; dropped"),
        }
        result
    }
}

/// A size or interval for node `id`: the configured one stretched by 0-40% depending on the
/// id. Nodes that apply the same entries would otherwise all snapshot, compact or flush at
/// the same point, pausing the whole cluster at once; staggered, a quorum is always free.
fn staggered(value: u64, id: NodeId) -> u64 {
    value.saturating_add(value / 10 * ((id.get().saturating_sub(1)) % 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ports_open_to_anyone_are_found() {
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
        let mut cfg = NodeConfig::default();
        assert!(
            open_client_ports(&cfg, false).is_empty(),
            "loopback by default"
        );
        cfg.client_addr = addr("0.0.0.0:6379");
        assert_eq!(open_client_ports(&cfg, false), [addr("0.0.0.0:6379")]);
        assert!(
            open_client_ports(&cfg, true).is_empty(),
            "passwords close it"
        );
        cfg.client_plain = false;
        cfg.client_tls_addr = Some(addr("10.1.2.3:6380"));
        assert_eq!(open_client_ports(&cfg, false), [addr("10.1.2.3:6380")]);
        cfg.client_tls_ca = Some("ca.crt".into());
        assert!(
            open_client_ports(&cfg, false).is_empty(),
            "client certificates close it"
        );
    }

    #[test]
    fn staggered_values_differ_between_neighbouring_ids() {
        let iv: Vec<u64> = (1..=3).map(|i| staggered(100_000, NodeId(i))).collect();
        assert_eq!(iv, vec![100_000, 110_000, 120_000]);
        assert_eq!(staggered(0, NodeId(2)), 0, "0 still means never");
        assert_eq!(staggered(u64::MAX, NodeId(3)), u64::MAX);
    }
}
