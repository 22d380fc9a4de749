//! The `raft-node` binary: `certs` (cluster certificates), `run` (one node), `dev` (a local
//! cluster of `run` children).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use raft_core::NodeId;
use raft_node::{Node, NodeConfig, NodeError, ReadMode};

#[derive(Parser)]
#[command(
    name = "raft-node",
    version,
    about = "A replicated key-value server speaking the Redis protocol"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a cluster CA and a certificate per node id (PEM) into a directory.
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Node ids, comma-separated: makes a new cluster CA and a certificate per node.
        /// Without it, the CA already in the directory signs the client-port and client
        /// certificates asked for (so a new client needs no new cluster certificates).
        #[arg(long, value_delimiter = ',')]
        ids: Vec<u64>,
        /// Replace what exists: with --ids, the cluster CA (every node then needs the new
        /// certificates); without, only the client-port and client certificates named,
        /// signed by the CA already in the directory.
        #[arg(long)]
        force: bool,
        /// Also write `client-port.crt` / `.key` for the TLS client port, with these names
        /// (DNS names or IP addresses, comma-separated) as the ones clients connect to.
        #[arg(long, value_delimiter = ',')]
        client_port_names: Vec<String>,
        /// Also write `client-<name>.crt` / `.key`, client certificates for the TLS client
        /// port when it verifies them (`--client-tls-ca DIR/ca.crt`).
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
    },
    /// Read a password on standard input and print its salted hash, for a user's
    /// `password_hash` in the config file.
    HashPassword {
        /// PBKDF2 iterations (more is slower to check and to guess).
        #[arg(long, default_value_t = raft_node::auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Run one node.
    Run(Box<RunArgs>),
    /// Start a local cluster on 127.0.0.1 (Ctrl-C stops every node).
    Dev {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Working directory for certificates, data and logs.
        #[arg(long, default_value = "raft-dev")]
        dir: PathBuf,
        /// A TOML config (tunables) given to every node.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also give each node a TLS client port (certificate for 127.0.0.1 and localhost,
        /// signed by the dev CA in DIR/certs/ca.crt).
        #[arg(long)]
        tls: bool,
    },
}

/// Flags of `run`; each overrides the same key of `--config`.
#[derive(Args)]
struct RunArgs {
    /// TOML file with the same settings (keys as in `NodeConfig`) plus tunables.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id.
    #[arg(long)]
    id: Option<u64>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Peer (QUIC) listen address.
    #[arg(long)]
    raft_addr: Option<SocketAddr>,
    /// Client (RESP) listen address, plain TCP.
    #[arg(long)]
    client_addr: Option<SocketAddr>,
    /// Serve clients over TLS only (on --client-tls-addr), not on --client-addr.
    #[arg(long)]
    no_plain_client: bool,
    /// Client listen address that speaks TLS.
    #[arg(long)]
    client_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain of the TLS client port.
    #[arg(long)]
    client_tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS client port.
    #[arg(long)]
    client_tls_key: Option<PathBuf>,
    /// PEM CA: TLS clients must present a certificate it signed.
    #[arg(long)]
    client_tls_ca: Option<PathBuf>,
    /// Password of the `default` user (an admin); clients must AUTH. Prefer the
    /// environment variable: a flag shows in `ps`.
    #[arg(long, env = "RAFT_REQUIREPASS", hide_env_values = true)]
    requirepass: Option<String>,
    /// Prometheus endpoint address.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Every member: ID=HOST:PORT,... (this node included).
    #[arg(long)]
    peers: Option<String>,
    /// Certificate directory (ca.crt, node-<id>.crt, node-<id>.key).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// linearizable (default), lease or stale.
    #[arg(long)]
    read_mode: Option<ReadMode>,
    /// Tick length in milliseconds.
    #[arg(long)]
    tick_ms: Option<u64>,
    /// Election timeout in ticks.
    #[arg(long)]
    election_ticks: Option<u32>,
    /// Consider a snapshot after this many applied entries.
    #[arg(long)]
    snapshot_interval: Option<u64>,
    /// Take a periodic snapshot only once the log since the last one holds this many bytes.
    #[arg(long)]
    snapshot_min_log_bytes: Option<u64>,
    /// ... and this percentage of the last snapshot's size.
    #[arg(long)]
    snapshot_log_percentage: Option<u64>,
    /// Client request deadline in milliseconds.
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Threads of the async runtime (0: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Answer RAFT.FAULT (network partitions for tests; loopback client address only).
    #[arg(long)]
    enable_fault_injection: bool,
    /// Join an existing cluster: start empty and wait to be added with RAFT.MEMBER ADD;
    /// --peers then lists where the current members are.
    #[arg(long)]
    join: bool,
}

impl RunArgs {
    fn config(&self) -> Result<NodeConfig, NodeError> {
        let mut c = match &self.config {
            Some(path) => NodeConfig::from_file(path)?,
            None => NodeConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(
            id,
            data_dir,
            raft_addr,
            certs,
            read_mode,
            tick_ms,
            election_ticks
        );
        set!(
            snapshot_interval,
            snapshot_min_log_bytes,
            snapshot_log_percentage,
            request_timeout_ms,
            client_addr,
            worker_threads
        );
        if let Some(m) = self.metrics_addr {
            c.metrics_addr = Some(m);
        }
        for (flag, field) in [
            (&self.client_tls_cert, &mut c.client_tls_cert),
            (&self.client_tls_key, &mut c.client_tls_key),
            (&self.client_tls_ca, &mut c.client_tls_ca),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if self.client_tls_addr.is_some() {
            c.client_tls_addr = self.client_tls_addr;
        }
        if self.no_plain_client {
            c.client_plain = false;
        }
        if let Some(p) = &self.requirepass {
            c.requirepass = Some(raft_node::auth::Secret(p.clone()));
        }
        if let Some(p) = &self.peers {
            c.peers = vec![p.clone()];
        }
        if self.enable_fault_injection {
            c.enable_fault_injection = true;
        }
        if self.join {
            c.join = true;
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.cmd {
        Cmd::Certs {
            out,
            ids,
            force,
            client_port_names,
            clients,
        } => certs_command(&out, &ids, force, &client_port_names, &clients),
        Cmd::HashPassword { iterations } => hash_password(iterations),
        Cmd::Run(args) => args
            .config()
            .and_then(|cfg| runtime(cfg.worker_threads).and_then(|rt| rt.block_on(run(cfg)))),
        Cmd::Dev {
            nodes,
            dir,
            config,
            tls,
        } => runtime(1).and_then(|rt| rt.block_on(dev(nodes, &dir, config.as_deref(), tls))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(worker_threads: usize) -> Result<tokio::runtime::Runtime, NodeError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        b.worker_threads(worker_threads);
    }
    b.enable_all()
        .build()
        .map_err(NodeError::io_fn("starting the runtime"))
}

fn certs(out: &Path, ids: &[u64], force: bool) -> Result<(), NodeError> {
    if ids.contains(&0) {
        return Err(NodeError::Config("node id 0 is reserved".into()));
    }
    if out.join("ca.key").exists() && !force {
        return Err(NodeError::Config(format!(
            "{} already holds a cluster CA; pass --force to replace it (every node then needs new certificates)",
            out.display()
        )));
    }
    let ids: Vec<NodeId> = ids.iter().map(|&i| NodeId(i)).collect();
    raft_net_quic::certs::write_cluster_certs(out, &ids)
        .map_err(|e| NodeError::Config(e.to_string()))?;
    println!(
        "wrote ca.crt, ca.key and {} node certificates to {}",
        ids.len(),
        out.display()
    );
    Ok(())
}

/// `raft-node certs`: with `--ids` a new cluster CA and node certificates, then the named
/// certificates asked for; without, only those, signed by the CA already in `out`. `--force`
/// replaces what it would write, and nothing else: without `--ids`, the CA stays.
fn certs_command(
    out: &Path,
    ids: &[u64],
    force: bool,
    port_names: &[String],
    clients: &[String],
) -> Result<(), NodeError> {
    check_cert_names(port_names, clients)?;
    if !ids.is_empty() {
        certs(out, ids, force)?;
    } else if port_names.is_empty() && clients.is_empty() {
        return Err(NodeError::Config(
            "nothing to write: pass --ids, --client-port-names or --clients".into(),
        ));
    } else if !out.join("ca.key").exists() {
        return Err(NodeError::Config(format!(
            "{} holds no cluster CA: pass --ids to make one",
            out.display()
        )));
    }
    client_certs(out, port_names, clients, force)
}

/// Refuses, before anything is written, names that no certificate should carry: client
/// names that would not make a file name, and a node's name (`node-<id>`), which the peer
/// transport would take as that node's identity.
fn check_cert_names(port_names: &[String], clients: &[String]) -> Result<(), NodeError> {
    for name in clients {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NodeError::Config(format!(
                "client name {name:?}: use letters, digits, - and _"
            )));
        }
    }
    let check = |names| {
        raft_net_quic::certs::check_names(names).map_err(|e| NodeError::Config(e.to_string()))
    };
    check(port_names)?;
    check(clients)
}

/// The TLS client port's certificate and client certificates, signed by the CA in `out`.
/// An existing one is replaced only with `overwrite` (a running cluster may use its key).
fn client_certs(
    out: &Path,
    port_names: &[String],
    clients: &[String],
    overwrite: bool,
) -> Result<(), NodeError> {
    // Every certificate to write, as (file base, names), checked before any is written.
    let wanted: Vec<(String, Vec<String>)> = (!port_names.is_empty())
        .then(|| ("client-port".to_string(), port_names.to_vec()))
        .into_iter()
        .chain(
            clients
                .iter()
                .map(|c| (format!("client-{c}"), vec![c.clone()])),
        )
        .collect();
    for (base, _) in &wanted {
        let path = out.join(format!("{base}.crt"));
        if !overwrite && path.exists() {
            return Err(NodeError::Config(format!(
                "{} exists; pass --force to replace it",
                path.display()
            )));
        }
    }
    for (base, names) in &wanted {
        raft_net_quic::certs::write_named_cert(out, base, names)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        println!("wrote {base}.crt and {base}.key for {}", names.join(", "));
    }
    Ok(())
}

fn hash_password(iterations: u32) -> Result<(), NodeError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(NodeError::io_fn("reading the password from standard input"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(NodeError::Config(
            "no password on standard input (echo -n PASSWORD | raft-node hash-password)".into(),
        ));
    }
    let hash = raft_node::auth::PasswordHash::new(password.as_bytes(), iterations)
        .map_err(NodeError::Config)?;
    println!("{hash}");
    Ok(())
}

async fn run(cfg: NodeConfig) -> Result<(), NodeError> {
    let prometheus = raft_node::metrics::install().map_err(NodeError::Config)?;
    let metrics = match cfg.metrics_addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(NodeError::io_fn(format!("listening on {addr}")))?;
            Some(tokio::spawn(raft_node::metrics::serve(l, prometheus)))
        }
        None => None,
    };
    let mut node = Node::start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(NodeError::io_fn("installing the SIGTERM handler"))?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        e = node.wait_failed() => Some(e),
    };
    if let Some(m) = metrics {
        m.abort();
    }
    match failed {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopping: finishing in-flight requests");
            node.shutdown(Duration::from_secs(5)).await?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// A free 127.0.0.1 port for TCP (client, metrics) or UDP (QUIC).
fn free_port(udp: bool) -> Result<u16, NodeError> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(NodeError::io_fn("choosing a free port"))
}

async fn dev(nodes: u64, dir: &Path, config: Option<&Path>, tls: bool) -> Result<(), NodeError> {
    if nodes == 0 {
        return Err(NodeError::Config("--nodes must be at least 1".into()));
    }
    let certs_dir = dir.join("certs");
    let ids: Vec<u64> = (1..=nodes).collect();
    let new_ca = !certs_dir.join("ca.crt").exists()
        || ids
            .iter()
            .any(|i| !certs_dir.join(format!("node-{i}.crt")).exists());
    if new_ca {
        certs(&certs_dir, &ids, true)?;
    }
    // A client-port certificate of an earlier CA would fail every TLS client.
    if tls && (new_ca || !certs_dir.join("client-port.crt").exists()) {
        client_certs(
            &certs_dir,
            &["127.0.0.1".into(), "localhost".into()],
            &[],
            true,
        )?;
    }
    let mut addrs = Vec::new();
    let mut tls_ports = Vec::new();
    for _ in &ids {
        addrs.push((free_port(true)?, free_port(false)?, free_port(false)?));
        tls_ports.push(if tls { Some(free_port(false)?) } else { None });
    }
    let peers = ids
        .iter()
        .zip(&addrs)
        .map(|(i, (r, _, _))| format!("{i}=127.0.0.1:{r}"))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().map_err(NodeError::io_fn("finding this executable"))?;
    let config = config
        .map(std::fs::canonicalize)
        .transpose()
        .map_err(NodeError::io_fn("finding the --config file"))?;
    // The nodes share this machine's cores: give each its share of runtime threads, unless
    // the config says otherwise.
    let configured = match &config {
        Some(c) => NodeConfig::from_file(c)?.worker_threads,
        None => 0,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_threads = match configured {
        0 => (cores / nodes as usize).max(1),
        n => n,
    };
    let mut children = Vec::new();
    for ((i, (raft, client, metrics)), tls_port) in ids.iter().zip(&addrs).zip(&tls_ports) {
        let data = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&data).map_err(NodeError::io_fn("creating the data dir"))?;
        let log_path = dir.join(format!("node-{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(NodeError::io_fn(format!("opening {}", log_path.display())))?;
        let mut cmd = tokio::process::Command::new(&exe);
        if let Some(c) = &config {
            cmd.arg("run").arg("--config").arg(c);
        } else {
            cmd.arg("run");
        }
        if let Some(port) = tls_port {
            cmd.args(["--client-tls-addr", &format!("127.0.0.1:{port}")])
                .arg("--client-tls-cert")
                .arg(certs_dir.join("client-port.crt"))
                .arg("--client-tls-key")
                .arg(certs_dir.join("client-port.key"));
        }
        let child = cmd
            .args(["--id", &i.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(["--raft-addr", &format!("127.0.0.1:{raft}")])
            .args(["--client-addr", &format!("127.0.0.1:{client}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--peers", &peers])
            .args(["--worker-threads", &worker_threads.to_string()])
            .arg("--certs")
            .arg(&certs_dir)
            .stdout(log.try_clone().map_err(NodeError::io_fn("log file"))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(NodeError::io_fn("starting a node"))?;
        let tls_text = tls_port.map_or(String::new(), |p| format!("  tls 127.0.0.1:{p}"));
        println!(
            "node {i}: client 127.0.0.1:{client}{tls_text}  metrics http://127.0.0.1:{metrics}/metrics  log {}",
            log_path.display()
        );
        children.push((*i, child));
    }
    // Print the line to try only once every node takes connections.
    for (i, (_, client, _)) in ids.iter().zip(&addrs) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", *client))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::Fatal(format!(
                    "node {i} did not listen on 127.0.0.1:{client} within 60 s; see its log in {}",
                    dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let first = addrs[0].1;
    println!("try:  redis-cli -p {first} set hello world && redis-cli -p {first} get hello");
    if let Some(port) = tls_ports[0] {
        println!(
            "TLS:  redis-cli --tls --cacert {} -p {port} get hello",
            certs_dir.join("ca.crt").display()
        );
    }
    println!("Ctrl-C stops every node.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(NodeError::io_fn("installing the SIGTERM handler"))?;
    let mut waits: futures_util::stream::FuturesUnordered<_> = children
        .iter_mut()
        .map(|(i, c)| {
            let i = *i;
            async move { (i, c.wait().await) }
        })
        .collect();
    loop {
        use futures_util::StreamExt;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            Some((i, status)) = waits.next() => {
                println!("node {i} exited ({status:?}); the others keep running (Ctrl-C stops them)");
            }
        }
    }
    drop(waits);
    println!("stopping every node");
    for (_, c) in &children {
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (i, c) in &mut children {
        match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {i} did not stop in 10 s; killing it");
                let _ = c.kill().await;
            }
        }
    }
    Ok(())
}
