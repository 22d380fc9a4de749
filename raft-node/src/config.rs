//! A node's settings: from a TOML file, overridden by command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use raft_core::NodeId;
use serde::Deserialize;

use crate::error::NodeError;

/// How reads are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// ReadIndex (§6.4): one heartbeat round confirms leadership, then the read is served
    /// once this node has applied up to the read index. Linearizable.
    #[default]
    Linearizable,
    /// Lease reads (§6.4.1): the leader answers a read index at once while a quorum
    /// acknowledged it within the election timeout minus `max_clock_drift_ticks` (no round
    /// trip); otherwise as `linearizable`. Linearizable only while clocks tick at rates that
    /// differ by less than the drift bound. Every node of the cluster must use it.
    Lease,
    /// Served from this node's state as it is: fast, possibly stale, even on a leader that
    /// was deposed without knowing it.
    Stale,
}

impl FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linearizable" => Ok(ReadMode::Linearizable),
            "stale" => Ok(ReadMode::Stale),
            "lease" => Ok(ReadMode::Lease),
            other => Err(format!(
                "unknown read mode {other:?} (linearizable, lease or stale)"
            )),
        }
    }
}

/// Everything a node needs to run. [`NodeConfig::default`] holds the documented defaults;
/// `id`, `data_dir`, `peers` and `certs` must be set.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (non-zero).
    pub id: u64,
    /// Where the log, the state machine and the snapshots live.
    pub data_dir: PathBuf,
    /// The peer (QUIC) address to listen on.
    pub raft_addr: SocketAddr,
    /// The client (RESP) address to listen on, plain TCP (default 127.0.0.1:6379).
    pub client_addr: SocketAddr,
    /// Serve plain TCP on `client_addr` (default true; false needs `client_tls_addr`).
    pub client_plain: bool,
    /// A second client address that speaks TLS (as Redis's `tls-port`); needs
    /// `client_tls_cert` and `client_tls_key`.
    pub client_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain of the TLS client port.
    pub client_tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS client port.
    pub client_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): when set, TLS clients must present a certificate it signed.
    pub client_tls_ca: Option<PathBuf>,
    /// The password of the `default` user (an admin), as Redis's `requirepass`. Only from
    /// `--requirepass` or `RAFT_REQUIREPASS`: the config file holds hashes, not passwords.
    #[serde(skip)]
    pub requirepass: Option<crate::auth::Secret>,
    /// Named users (`[[users]]` with `name`, `role` = "data" | "admin", `password_hash`).
    /// With any user or `requirepass`, clients must `AUTH` first.
    pub users: Vec<crate::auth::UserConfig>,
    /// The Prometheus endpoint (`/metrics`); none by default.
    pub metrics_addr: Option<SocketAddr>,
    /// Every member of a new cluster, `ID=HOST:PORT`, this node included. A node restarted
    /// on an existing data dir keeps its stored membership and uses this only for addresses.
    pub peers: Vec<String>,
    /// Directory with `ca.crt` and `node-<id>.crt` / `node-<id>.key`.
    pub certs: PathBuf,
    /// How reads are served (default linearizable).
    pub read_mode: ReadMode,
    /// Length of one tick in milliseconds (default 50).
    pub tick_ms: u64,
    /// Election timeout in ticks: a follower waits `[T, 2T)` (default 10, so 0.5–1 s).
    pub election_ticks: u32,
    /// Heartbeat interval in ticks (default 2, so 100 ms).
    pub heartbeat_ticks: u32,
    /// Consider a snapshot after this many applied entries (default 100,000); it is taken
    /// once the log since the last one is also large enough (the next two settings). Each
    /// snapshot writes the whole state machine, so this trades its cost against log length.
    pub snapshot_interval: u64,
    /// A periodic snapshot waits until the log written since the last one holds at least
    /// this many bytes (default 64 MiB, as Redis's `auto-aof-rewrite-min-size`). 0: no floor.
    pub snapshot_min_log_bytes: u64,
    /// ... and at least this percentage of the last snapshot's size (default 100, as Redis's
    /// `auto-aof-rewrite-percentage`), so that snapshots write at most about as much as the
    /// log does however large the state grows. 0: no such bound.
    pub snapshot_log_percentage: u64,
    /// With `read_mode = "lease"`: ticks the lease is shortened by for clock drift (default
    /// 2, so a lease of 8 of the 10 election ticks).
    pub max_clock_drift_ticks: u32,
    /// AppendEntries messages in flight to one follower (default 1). The next append leaves
    /// when the previous one is acknowledged and carries every entry proposed meanwhile: on
    /// one machine's cores, at 64 clients, fewer and larger appends (and follower fsyncs) gave
    /// 1.09x the SETs per second of 4 and a 9-16% lower p99; at 16 clients 0.94x with the same
    /// p99. A longer pipeline suits links whose round trip is long next to a follower's fsync.
    pub max_inflight_msgs: usize,
    /// Tell followers a new commit index only with the next append, heartbeat or tick, not
    /// with an empty append of its own (default true): one message to each follower less
    /// per write from a lone client, fewer under load. Once writes stop, followers apply up
    /// to a tick later (`stale` reads on a follower lag as much). See
    /// `raft_core::Config::defer_commit_notice`.
    pub defer_commit_notice: bool,
    /// Log entries kept below a snapshot for slow followers (default 1,024).
    pub keep_trailing: u64,
    /// A client request without an answer after this long gets `-TRYAGAIN` (default 5,000).
    pub request_timeout_ms: u64,
    /// Largest key in bytes (default 64 KiB).
    pub max_key_bytes: usize,
    /// Largest value in bytes (default 4 MiB).
    pub max_value_bytes: usize,
    /// Largest request (all arguments together) in bytes (default 8 MiB). A single RESP
    /// bulk string declared larger than this closes the connection, as Redis does.
    pub max_request_bytes: usize,
    /// Most client connections at once (default 10,000); more are refused with an error.
    pub max_clients: usize,
    /// Sync the log on every write (default true). False breaks Raft's safety on a machine
    /// crash: for benchmarks only.
    pub sync: bool,
    /// Threads of the async runtime (client connections, the driver, the transport). Default
    /// 0: one per core. Several nodes on one machine (`raft-node dev`) do better with fewer:
    /// every extra thread is another wake-up on the path of a write.
    pub worker_threads: usize,
    /// Answer `RAFT.FAULT` (drop traffic to and from chosen peers). For tests only, and
    /// refused unless the client address is a loopback one. Default false.
    pub enable_fault_injection: bool,
    /// Start as a new member of an existing cluster: with an empty log and configuration,
    /// waiting for the leader to add it (`RAFT.MEMBER ADD`); `peers` is then only where the
    /// current members are. Ignored on a data dir that already holds a log.
    pub join: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 0,
            data_dir: PathBuf::new(),
            raft_addr: SocketAddr::from(([127, 0, 0, 1], 7001)),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            client_plain: true,
            client_tls_addr: None,
            client_tls_cert: None,
            client_tls_key: None,
            client_tls_ca: None,
            requirepass: None,
            users: Vec::new(),
            metrics_addr: None,
            peers: Vec::new(),
            certs: PathBuf::new(),
            read_mode: ReadMode::Linearizable,
            tick_ms: 50,
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_interval: 100_000,
            snapshot_min_log_bytes: 64 << 20,
            snapshot_log_percentage: 100,
            max_inflight_msgs: 1,
            defer_commit_notice: true,
            max_clock_drift_ticks: 2,
            keep_trailing: 1024,
            request_timeout_ms: 5000,
            max_key_bytes: 64 << 10,
            max_value_bytes: 4 << 20,
            max_request_bytes: 8 << 20,
            max_clients: 10_000,
            sync: true,
            worker_threads: 0,
            enable_fault_injection: false,
            join: false,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file (its keys are the field names).
    pub fn from_file(path: &std::path::Path) -> Result<NodeConfig, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(NodeError::io_fn(format!("reading {}", path.display())))?;
        toml::from_str(&text).map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))
    }

    /// The peers as a map, checked.
    pub fn peer_map(&self) -> Result<BTreeMap<NodeId, SocketAddr>, NodeError> {
        parse_peers(&self.peers)
    }

    /// Checks the settings that cannot work.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |s: &str| Err(NodeError::Config(s.into()));
        if self.id == 0 {
            return bad("--id must be a non-zero node id");
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("--data-dir is required");
        }
        if self.certs.as_os_str().is_empty() {
            return bad("--certs is required");
        }
        let peers = self.peer_map()?;
        if !peers.is_empty() && !peers.contains_key(&NodeId(self.id)) {
            return Err(NodeError::Config(format!(
                "--peers does not list this node ({})",
                self.id
            )));
        }
        if self.tick_ms == 0 || self.request_timeout_ms == 0 {
            return bad("tick_ms and request_timeout_ms must be positive");
        }
        if self.max_inflight_msgs == 0 {
            return bad("max_inflight_msgs must be at least 1");
        }
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return bad("size limits must be positive");
        }
        if self.max_request_bytes < self.max_value_bytes {
            return bad("max_request_bytes must be at least max_value_bytes");
        }
        match (
            &self.client_tls_addr,
            &self.client_tls_cert,
            &self.client_tls_key,
        ) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            (Some(_), _, _) => {
                return bad("client_tls_addr needs client_tls_cert and client_tls_key");
            }
            (None, _, _) => return bad("client_tls_cert and client_tls_key need client_tls_addr"),
        }
        if self.client_tls_ca.is_some() && self.client_tls_addr.is_none() {
            return bad("client_tls_ca needs client_tls_addr");
        }
        if !self.client_plain && self.client_tls_addr.is_none() {
            return bad("without the plain client port, client_tls_addr is needed");
        }
        if let Some(addr) = self
            .client_addrs()
            .into_iter()
            .find(|a| self.enable_fault_injection && !a.ip().is_loopback())
        {
            return Err(NodeError::Config(format!(
                "fault injection is for tests only and needs loopback client addresses, not {addr}"
            )));
        }
        Ok(())
    }

    /// The client addresses served: the plain one, the TLS one.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        let plain = self.client_plain.then_some(self.client_addr);
        plain.into_iter().chain(self.client_tls_addr).collect()
    }

    /// One tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The client request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Parses `1=127.0.0.1:7001,2=...` items (already split on commas).
pub fn parse_peers(items: &[String]) -> Result<BTreeMap<NodeId, SocketAddr>, NodeError> {
    let mut out = BTreeMap::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| NodeError::Config(format!("peer {item:?} is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| NodeError::Config(format!("peer id {id:?} is not a number")))?;
        if id == 0 {
            return Err(NodeError::Config("peer id 0 is reserved".into()));
        }
        let addr = resolve(addr.trim())?;
        if out.insert(NodeId(id), addr).is_some() {
            return Err(NodeError::Config(format!("peer {id} is listed twice")));
        }
    }
    Ok(out)
}

fn resolve(addr: &str) -> Result<SocketAddr, NodeError> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| NodeError::Config(format!("cannot resolve address {addr:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_refuse_mistakes() {
        let p = parse_peers(&["1=127.0.0.1:7001,2=127.0.0.1:7002".into()]).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[&NodeId(2)], "127.0.0.1:7002".parse().unwrap());
        for bad in [
            "1",
            "x=127.0.0.1:1",
            "0=127.0.0.1:1",
            "1=a:b:c",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_peers(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_file_sets_fields_and_refuses_unknown_keys() {
        let cfg: NodeConfig = toml::from_str(
            "id = 2\ndata_dir = \"/tmp/x\"\npeers = [\"1=127.0.0.1:1\", \"2=127.0.0.1:2\"]\n\
             certs = \"/c\"\nread_mode = \"stale\"\ntick_ms = 20\n",
        )
        .unwrap();
        assert_eq!(cfg.id, 2);
        assert_eq!(cfg.read_mode, ReadMode::Stale);
        assert_eq!(cfg.tick_ms, 20);
        assert_eq!(cfg.election_ticks, 10);
        cfg.validate().unwrap();
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
        assert_eq!("lease".parse::<ReadMode>(), Ok(ReadMode::Lease));
        assert!("fast".parse::<ReadMode>().is_err());
    }

    #[test]
    fn client_ports_and_fault_injection_are_checked() {
        let base = NodeConfig {
            id: 1,
            data_dir: "/d".into(),
            certs: "/c".into(),
            ..NodeConfig::default()
        };
        let tls = NodeConfig {
            client_tls_addr: Some("127.0.0.1:6380".parse().unwrap()),
            client_tls_cert: Some("p.crt".into()),
            client_tls_key: Some("p.key".into()),
            ..base.clone()
        };
        tls.validate().unwrap();
        assert_eq!(tls.client_addrs().len(), 2);
        for bad in [
            NodeConfig {
                client_tls_key: None,
                ..tls.clone()
            },
            NodeConfig {
                client_tls_addr: None,
                ..tls.clone()
            },
            NodeConfig {
                client_plain: false,
                ..base.clone()
            },
            NodeConfig {
                client_tls_ca: Some("ca.crt".into()),
                ..base.clone()
            },
            // Fault injection only with loopback client ports, TLS included.
            NodeConfig {
                enable_fault_injection: true,
                client_addr: "0.0.0.0:6379".parse().unwrap(),
                ..base.clone()
            },
            NodeConfig {
                enable_fault_injection: true,
                client_tls_addr: Some("0.0.0.0:6380".parse().unwrap()),
                ..tls.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let users: NodeConfig =
            toml::from_str("[[users]]\nname = \"app\"\nrole = \"data\"\npassword_hash = \"x\"\n")
                .unwrap();
        assert_eq!(users.users[0].role, crate::auth::Role::Data);
        assert!(toml::from_str::<NodeConfig>("requirepass = \"plain\"").is_err());
    }
}
