//! A multi-process test harness: a [`Cluster`] of `raft-node run` children on 127.0.0.1,
//! each with its own data dir and log file in one temp dir, and a tiny blocking RESP client.
//!
//! Ports are picked free at start (UDP for the Raft transport, TCP for the client and
//! metrics ports) and reused when a node restarts. Every child is killed when the
//! `Cluster` drops; if the test is panicking, the tail of each node's log is printed first.

#![allow(dead_code)] // Each test file uses a different part of the harness.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
pub use raft_node::resp::Reply;
use raft_node::resp::{encode_request, parse_reply};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_raft-node");

/// How long a node may take to open its client port.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long convergence waits (a leader, a catch-up) may take on a slow machine.
pub const CONVERGE: Duration = Duration::from_secs(40);

/// Options for [`Cluster::start_with`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra `run` flags, the same for every node (e.g. `--request-timeout-ms 1500`).
    pub args: Vec<String>,
    /// A TOML config file's text, passed to every node with `--config`.
    pub config_toml: Option<String>,
    /// Do not wait [`SETTLE`] after the start (see there).
    pub no_settle: bool,
    /// Nodes prepared (ids after the `n` members: certificates, ports) but not started;
    /// [`Cluster::join`] starts one with `--join`.
    pub spares: u64,
    /// The `default` user's password (`RAFT_REQUIREPASS`); the harness's own clients
    /// ([`Cluster::client`], the leader and RAFT.INFO polls) log in with it.
    pub password: Option<String>,
    /// A TLS client port per node ([`NodeProc::tls_port`]) with `client-port.crt` (for
    /// 127.0.0.1 and localhost) from the certs dir, which also gets `client-app.crt`.
    pub client_tls: bool,
    /// With `client_tls`: TLS clients must present a certificate of the cluster CA
    /// (`--client-tls-ca`).
    pub client_tls_verify: bool,
}

/// How long [`Cluster::start_with`] waits after the nodes are up before handing the cluster
/// to the test. It used to work around a raft-net-quic race (a late startup handshake
/// replacing a working connection cut the forwards in flight on it; a replaced connection
/// now drains first, see `large_writes_forwarded_right_after_start` in tests/clients.rs);
/// a short pause is kept so that tests start from a settled cluster.
pub const SETTLE: Duration = Duration::from_millis(500);

/// One node of a [`Cluster`].
pub struct NodeProc {
    pub id: u64,
    pub raft_port: u16,
    pub client_port: u16,
    /// The TLS client port (0 without [`Options::client_tls`]).
    pub tls_port: u16,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    /// Whether the child is running (not killed or stopped by the harness).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Clusters of one test binary run one at a time: on a 2-core machine two clusters at once
/// would distort each other's timing (the failover figure above all).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster of `raft-node run` processes.
pub struct Cluster {
    _serial: std::sync::MutexGuard<'static, ()>,
    /// `None` only during drop (a failed test keeps the directory).
    dir: Option<tempfile::TempDir>,
    certs: PathBuf,
    config: Option<PathBuf>,
    args: Vec<String>,
    password: Option<String>,
    peers: String,
    /// `peers` and the spares: what a joining node is given.
    all_peers: String,
    members: u64,
    pub nodes: Vec<NodeProc>,
}

impl Cluster {
    /// Starts `n` nodes with default settings and waits for their client ports.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with(n, Options::default())
    }

    /// Starts `n` nodes with `opts` and waits for their client ports (not for a leader).
    pub fn start_with(n: u64, opts: Options) -> Cluster {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::Builder::new()
            .prefix("raft-node-it-")
            .tempdir()
            .expect("temp dir");
        let certs = dir.path().join("certs");
        let total = n + opts.spares;
        let ids: Vec<String> = (1..=total).map(|i| i.to_string()).collect();
        let out = Command::new(BIN)
            .arg("certs")
            .arg("--out")
            .arg(&certs)
            .args(["--ids", &ids.join(",")])
            .args(if opts.client_tls {
                &[
                    "--client-port-names",
                    "127.0.0.1,localhost",
                    "--clients",
                    "app",
                ][..]
            } else {
                &[]
            })
            .output()
            .expect("running raft-node certs");
        assert!(
            out.status.success(),
            "raft-node certs failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let config = opts.config_toml.map(|text| {
            let path = dir.path().join("node.toml");
            std::fs::write(&path, text).expect("writing the config file");
            path
        });
        // Hold every socket until all are chosen so no two ports collide.
        let mut held_udp = Vec::new();
        let mut held_tcp = Vec::new();
        let mut nodes = Vec::new();
        for id in 1..=total {
            let raft = UdpSocket::bind("127.0.0.1:0").expect("free UDP port");
            let client = TcpListener::bind("127.0.0.1:0").expect("free TCP port");
            let metrics = TcpListener::bind("127.0.0.1:0").expect("free TCP port");
            let tls = TcpListener::bind("127.0.0.1:0").expect("free TCP port");
            nodes.push(NodeProc {
                id,
                raft_port: raft.local_addr().unwrap().port(),
                client_port: client.local_addr().unwrap().port(),
                tls_port: if opts.client_tls {
                    tls.local_addr().unwrap().port()
                } else {
                    0
                },
                metrics_port: metrics.local_addr().unwrap().port(),
                data_dir: dir.path().join(format!("node-{id}")),
                log_path: dir.path().join(format!("node-{id}.log")),
                child: None,
            });
            held_udp.push(raft);
            held_tcp.push(client);
            held_tcp.push(metrics);
            held_tcp.push(tls);
        }
        drop(held_udp);
        drop(held_tcp);
        let peers_of = |nodes: &[NodeProc]| {
            nodes
                .iter()
                .map(|p| format!("{}=127.0.0.1:{}", p.id, p.raft_port))
                .collect::<Vec<_>>()
                .join(",")
        };
        let peers = peers_of(&nodes[..n as usize]);
        let all_peers = peers_of(&nodes);
        let mut args = opts.args;
        if opts.client_tls {
            args.push("--client-tls-cert".into());
            args.push(certs.join("client-port.crt").display().to_string());
            args.push("--client-tls-key".into());
            args.push(certs.join("client-port.key").display().to_string());
            if opts.client_tls_verify {
                args.push("--client-tls-ca".into());
                args.push(certs.join("ca.crt").display().to_string());
            }
        }
        let mut cluster = Cluster {
            _serial: serial,
            dir: Some(dir),
            certs,
            config,
            args,
            password: opts.password,
            peers,
            all_peers,
            members: n,
            nodes,
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        for id in 1..=n {
            cluster.wait_client_port(id);
        }
        if !opts.no_settle {
            std::thread::sleep(SETTLE);
        }
        cluster
    }

    /// The temp dir holding certificates, data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster's directory").path()
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Ids of the nodes the harness has running.
    pub fn live_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect()
    }

    /// Starts spare node `id` with `--join` (see [`Options::spares`]) and waits for its
    /// client port; it waits to be added with RAFT.MEMBER ADD.
    pub fn join(&mut self, id: u64) {
        assert!(id > self.members, "node {id} is not a spare");
        self.spawn(id);
        self.wait_client_port(id);
    }

    fn spawn(&mut self, id: u64) {
        let joining = id > self.members;
        let peers = if joining {
            self.all_peers.clone()
        } else {
            self.peers.clone()
        };
        let mut args = self.args.clone();
        if joining {
            args.push("--join".into());
        }
        let certs = self.certs.clone();
        let config = self.config.clone();
        let password = self.password.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("opening the node log");
        let mut cmd = Command::new(BIN);
        cmd.arg("run");
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        if node.tls_port != 0 {
            cmd.args(["--client-tls-addr", &format!("127.0.0.1:{}", node.tls_port)]);
        }
        match &password {
            Some(p) => cmd.env("RAFT_REQUIREPASS", p),
            None => cmd.env_remove("RAFT_REQUIREPASS"),
        };
        cmd.args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--raft-addr", &format!("127.0.0.1:{}", node.raft_port)])
            .args(["--client-addr", &format!("127.0.0.1:{}", node.client_port)])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", node.metrics_port),
            ])
            .args(["--peers", &peers])
            .arg("--certs")
            .arg(&certs)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        node.child = Some(cmd.spawn().expect("starting raft-node run"));
    }

    /// Waits until node `id` accepts client connections; panics (with its log) if it exits.
    fn wait_client_port(&mut self, id: u64) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let port = self.node(id).client_port;
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            let node = self.node_mut(id);
            if let Some(status) = node.child.as_mut().unwrap().try_wait().expect("try_wait") {
                node.child = None;
                panic!(
                    "node {id} exited at start ({status}); log:\n{}",
                    self.log_tail(id, 60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not open its client port in {START_DEADLINE:?}; log:\n{}",
                self.log_tail(id, 60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill9(&mut self, id: u64) {
        let mut child = self
            .node_mut(id)
            .child
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// SIGTERMs node `id`, waits for it to exit (up to 20 s) and returns its status
    /// without judging it.
    pub fn term_status(&mut self, id: u64) -> ExitStatus {
        let mut child = self
            .node_mut(id)
            .child
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(ok.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} did not exit within 20 s of SIGTERM; log:\n{}",
                    self.log_tail(id, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERMs node `id` and asserts it exits with code 0.
    pub fn term(&mut self, id: u64) {
        let status = self.term_status(id);
        assert_eq!(
            status.code(),
            Some(0),
            "node {id} exited with {status} after SIGTERM; log:\n{}",
            self.log_tail(id, 40)
        );
    }

    /// Starts node `id` again on its data dir and ports; waits for its client port.
    pub fn restart(&mut self, id: u64) {
        self.spawn(id);
        self.wait_client_port(id);
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.node(id).log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The certificates directory (`ca.crt`, and with [`Options::client_tls`]
    /// `client-port.*` and `client-app.*`).
    pub fn certs_dir(&self) -> &Path {
        &self.certs
    }

    /// A new client connection to node `id`, logged in as `default` when the cluster has a
    /// password.
    pub fn client(&self, id: u64) -> Client {
        let mut c = Client::connect(self.node(id).client_port);
        if let Some(p) = &self.password {
            c.login(&["AUTH", p]);
        }
        c
    }

    /// One command on a fresh connection to node `id`.
    pub fn cmd(&self, id: u64, args: &[&str]) -> Reply {
        self.client(id).cmd(args)
    }

    /// RAFT.INFO of node `id` as a map, or `None` if it did not answer with a bulk string.
    pub fn try_raft_info(&self, id: u64) -> Option<HashMap<String, String>> {
        let mut c = Client::try_connect(self.node(id).client_port).ok()?;
        c.set_timeout(Duration::from_secs(5));
        if let Some(p) = &self.password {
            c.login(&["AUTH", p]);
        }
        match c.try_cmd(&["RAFT.INFO"]).ok()? {
            Reply::Bulk(b) => Some(parse_info(&String::from_utf8_lossy(&b))),
            _ => None,
        }
    }

    /// RAFT.INFO of node `id` as a map.
    pub fn raft_info(&self, id: u64) -> HashMap<String, String> {
        match self.cmd(id, &["RAFT.INFO"]) {
            Reply::Bulk(b) => parse_info(&String::from_utf8_lossy(&b)),
            other => panic!("RAFT.INFO on node {id}: {other:?}"),
        }
    }

    /// A numeric RAFT.INFO field of node `id`.
    pub fn info_u64(&self, id: u64, field: &str) -> u64 {
        field_u64(&self.raft_info(id), field)
    }

    /// Polls RAFT.INFO of every running node until one says `role:leader` (and the other
    /// running nodes it reaches agree or have no leader yet); returns its id.
    pub fn leader(&self) -> u64 {
        self.leader_within(CONVERGE)
    }

    /// [`Cluster::leader`] with a deadline.
    pub fn leader_within(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            for id in self.live_ids() {
                if let Some(info) = self.try_raft_info(id) {
                    if info.get("role").map(String::as_str) == Some("leader") {
                        return id;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {:?} within {within:?}; logs:\n{}",
                self.live_ids(),
                self.all_log_tails(20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until node `id`'s applied_index reaches `index`; returns its RAFT.INFO then.
    pub fn wait_applied(&self, id: u64, index: u64, within: Duration) -> HashMap<String, String> {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(info) = self.try_raft_info(id) {
                if field_u64(&info, "applied_index") >= index {
                    return info;
                }
                last = Some(info);
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not apply up to {index} within {within:?}; last RAFT.INFO: \
                 {last:?}\nlog:\n{}",
                self.log_tail(id, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Prometheus text of node `id`.
    pub fn metrics(&self, id: u64) -> String {
        let mut s =
            TcpStream::connect(("127.0.0.1", self.node(id).metrics_port)).expect("metrics port");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reading /metrics");
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "GET /metrics: {}",
            &out[..out.len().min(200)]
        );
        out.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The tails of every node's log, for failure messages.
    pub fn all_log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, self.log_tail(n.id, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "test failed; node log tails follow; data dirs and full logs kept in {}\n{}",
                self.dir().display(),
                self.all_log_tails(40)
            );
            if let Some(d) = self.dir.take() {
                let _ = d.keep();
            }
        }
    }
}

/// Parses `field:value` lines.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A numeric field of a parsed RAFT.INFO.
pub fn field_u64(info: &HashMap<String, String>, field: &str) -> u64 {
    info.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RAFT.INFO has no numeric {field}: {info:?}"))
}

/// The value of a Prometheus sample line `name{labels} value` (0 if absent).
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

/// A blocking RESP2 client.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    pub port: u16,
    /// The AUTH command this client logged in with (sent again on a reconnect).
    auth: Option<Vec<String>>,
}

impl Client {
    /// Connects to 127.0.0.1:`port` (30 s read timeout).
    pub fn connect(port: u16) -> Client {
        Client::try_connect(port).unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"))
    }

    pub fn try_connect(port: u16) -> std::io::Result<Client> {
        let stream =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            stream,
            buf: BytesMut::new(),
            port,
            auth: None,
        })
    }

    /// Sends `auth` (an AUTH command) now, expecting `+OK`, and after every reconnect.
    pub fn login(&mut self, auth: &[&str]) {
        let reply = self.try_cmd(auth);
        assert!(
            matches!(&reply, Ok(Reply::Simple(s)) if s == "OK"),
            "{:?}: {reply:?}",
            auth.first()
        );
        self.auth = Some(auth.iter().map(|a| a.to_string()).collect());
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    /// Sends one request and reads its reply; panics on I/O errors.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let port = self.port;
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} on port {port}: {e}"))
    }

    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_cmd_bytes(&args)
    }

    pub fn try_cmd_bytes(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Writes one request without reading (for pipelining).
    pub fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_request(args, &mut out);
        self.stream.write_all(&out)
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one reply.
    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        loop {
            if let Some(r) = parse_reply(&mut self.buf).map_err(invalid)? {
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// Reads one reply and returns it with its bytes as they came (to tell RESP2's `$-1` from
    /// RESP3's `_`, which parse alike). Copies the buffer per try: for small replies.
    pub fn read_reply_raw(&mut self) -> std::io::Result<(Reply, Vec<u8>)> {
        loop {
            let wire = self.buf.clone();
            if let Some(r) = parse_reply(&mut self.buf).map_err(invalid)? {
                return Ok((r, wire[..wire.len() - self.buf.len()].to_vec()));
            }
            self.fill()?;
        }
    }

    /// Reads what has arrived (at least one byte) into the buffer.
    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 64 << 10];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads until EOF; returns what arrived (after any buffered reply bytes).
    pub fn read_to_eof(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = self.buf.split().to_vec();
        self.stream.read_to_end(&mut rest)?;
        Ok(rest)
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Runs `args`, retrying (on a new connection after an I/O error) while the reply is
    /// a `TRYAGAIN` error or the node is unreachable, until `within` has passed.
    pub fn cmd_retry(&mut self, args: &[&str], within: Duration) -> Reply {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.try_cmd(args) {
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => format!("-{e}"),
                Ok(r) => return r,
                Err(e) => {
                    if let Ok(mut c) = Client::try_connect(self.port) {
                        let auth = self.auth.clone();
                        let args: Vec<&str> = auth.iter().flatten().map(|s| s.as_str()).collect();
                        if args.is_empty() || c.try_cmd(&args).is_ok() {
                            c.auth = auth;
                            *self = c;
                        }
                    }
                    format!("I/O error: {e}")
                }
            };
            assert!(
                Instant::now() < deadline,
                "{args:?} on port {} kept failing for {within:?}; last: {last}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `+OK`.
pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

/// A bulk reply holding `s`.
pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}
