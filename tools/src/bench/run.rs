//! One run: the cluster (given or started), the clients, the report, the cleanup.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cluster::LocalCluster;
use super::load::{self, Live, Plan, Stats};
use super::report::{self, Results, Setup};
use super::{BenchError, Options, progress};
use crate::chaos::cluster::default_node_bin;
use crate::client_opts::tls_hint;
use crate::interrupt::interrupted;
use crate::resp::{self, ClientError, ConnectOptions, Connection, Reply};
use crate::rng::Rng;

/// How long each node may take to answer the PING before the load.
const PING_WITHIN: Duration = Duration::from_secs(3);

/// Runs raft-bench with parsed flags: prints the report; returns the exit status (see
/// [`Options`]).
pub fn main(options: Options) -> i32 {
    let runtime = if options.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads as usize)
            .enable_all()
            .build()
    };
    let runtime = match runtime.map_err(BenchError::Runtime) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raft-bench: error: {e}");
            return 3;
        }
    };
    let outcome = runtime.block_on(run(&options));
    runtime.shutdown_background();
    let (setup, results) = match outcome {
        Ok(done) => done,
        Err(BenchError::Interrupted) => {
            eprintln!("raft-bench: interrupted");
            return 130;
        }
        Err(e @ BenchError::Usage(_)) => {
            eprintln!("raft-bench: error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("raft-bench: error: {e}");
            return 3;
        }
    };
    if options.json {
        println!("{}", report::to_json(&setup, &results));
    } else {
        print!("{}", report::render(&setup, &results));
    }
    if results.interrupted {
        130
    } else if results.ops() == 0 {
        eprintln!("raft-bench: no operation succeeded");
        1
    } else {
        0
    }
}

/// Sets up, loads, and cleans up.
async fn run(o: &Options) -> Result<(Setup, Results), BenchError> {
    let connect = connect_options(o)?;
    let local = if o.nodes.is_empty() {
        let bin = o.node_bin.clone().unwrap_or_else(default_node_bin);
        eprintln!(
            "raft-bench: starting a local cluster of {} nodes ({})",
            o.local_nodes,
            bin.display()
        );
        // Dropping the start on an interrupt kills the nodes started so far.
        let start = LocalCluster::start(&bin, o.local_nodes, &o.node_args);
        Some(tokio::select! {
            // Polled first, so the signal handlers are in place before the first node
            // starts (`start` runs `raft-node certs` before it first yields).
            biased;
            _ = interrupted() => return Err(BenchError::Interrupted),
            c = start => c?,
        })
    } else {
        None
    };
    let addrs = match &local {
        Some(c) => c.addrs(),
        None => resolve_all(&o.nodes).await?,
    };
    // A dead address is a clear error now rather than a run of connection errors.
    for &addr in &addrs {
        ping(addr, &connect).await?;
    }
    let setup = Setup {
        nodes: addrs.iter().map(SocketAddr::to_string).collect(),
        local: local.is_some(),
        clients: o.clients,
        pipeline: o.pipeline,
        duration: o.duration,
        warmup: o.warmup,
        keys: o.keys,
        value_size: o.value_size,
        read_ratio: o.read_ratio,
        seed: o.seed,
    };
    eprintln!(
        "raft-bench: {} clients x pipeline {} against {}: {:.1} s warmup, then {:.1} s measured",
        o.clients,
        o.pipeline,
        setup.nodes.join(","),
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64()
    );
    let results = load_phase(o, &addrs, connect).await;
    if let Some(c) = local {
        let dir = c.dir();
        c.stop().await;
        eprintln!(
            "raft-bench: local cluster stopped ({} removed)",
            dir.display()
        );
    }
    Ok((setup, results))
}

async fn resolve_all(given: &[String]) -> Result<Vec<SocketAddr>, BenchError> {
    let mut out = Vec::new();
    for addr in given {
        let a = resp::resolve(addr.trim())
            .await
            .map_err(|e| BenchError::BadAddress {
                addr: addr.clone(),
                reason: resp::io_reason(&e),
            })?;
        out.push(a);
    }
    Ok(out)
}

/// The connection options of the flags: TLS and credentials only with --nodes (the local
/// cluster is plain and has no password).
fn connect_options(o: &Options) -> Result<ConnectOptions, BenchError> {
    if o.nodes.is_empty() {
        if o.client.tls {
            return Err(BenchError::Usage(
                "--tls needs --nodes: the local cluster raft-bench starts serves plain TCP \
                 only"
                    .into(),
            ));
        }
        if o.client.is_set() {
            eprintln!(
                "raft-bench: note: the local cluster has no password; --user and --password \
                 (RAFT_USER, RAFT_PASSWORD) are not used"
            );
        }
        return Ok(ConnectOptions::default());
    }
    o.client
        .connect_options()
        .map_err(|e| BenchError::Usage(e.to_string()))
}

/// PING, with the connection's TLS and AUTH: a dead address, an untrusted certificate or
/// a wrong password is a clear error now rather than a run of errors. Then RAFT.INFO, which
/// (unlike PING) needs a login: a NOAUTH reply means a password is missing.
async fn ping(addr: SocketAddr, options: &ConnectOptions) -> Result<(), BenchError> {
    let call = async {
        let mut c = Connection::connect_with(addr, options).await?;
        let pong = c.call(&["PING"]).await?;
        let info = c.call(&["RAFT.INFO"]).await?;
        Ok::<_, ClientError>((pong, info))
    };
    let access = |reason: String| BenchError::Access {
        addr: addr.to_string(),
        reason,
    };
    let reason = match tokio::time::timeout(PING_WITHIN, call).await {
        Ok(Ok((_, Reply::Error(text)))) if text.starts_with("NOAUTH") => {
            return Err(access(
                "requires a password: pass --password or set RAFT_PASSWORD".into(),
            ));
        }
        // Any other RAFT.INFO reply will do: raft-bench may load a server without it.
        Ok(Ok((Reply::Simple(_) | Reply::Bulk(_), _))) => return Ok(()),
        Ok(Ok((other, _))) => format!("PING replied {other:?}"),
        Ok(Err(e @ ClientError::Auth(_))) => return Err(access(e.to_string())),
        Ok(Err(
            ref e @ (ClientError::TlsHandshake { ref reason, .. }
            | ClientError::Tls { ref reason, .. }),
        )) => return Err(BenchError::Tls(format!("{e}{}", tls_hint(reason)))),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no reply to PING within {PING_WITHIN:?}"),
    };
    Err(BenchError::Unreachable {
        addr: addr.to_string(),
        reason,
    })
}

/// Warmup and measurement; stops early (and says so) on SIGINT or SIGTERM.
async fn load_phase(o: &Options, addrs: &[SocketAddr], connect: ConnectOptions) -> Results {
    let start = Instant::now();
    let plan = Arc::new(Plan {
        measure_from: start + o.warmup,
        end: start + o.warmup + o.duration,
        pipeline: o.pipeline as usize,
        keys: o.keys,
        value: vec![b'x'; o.value_size as usize],
        read_ratio: o.read_ratio,
        timeout: Duration::from_millis(o.timeout_ms),
        connect,
    });
    let live = Arc::new(Live::default());
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        interrupted().await;
        let _ = stop_tx.send(true);
    });
    let mut rng = Rng::new(o.seed);
    let clients: Vec<_> = (0..o.clients as usize)
        .map(|i| {
            tokio::spawn(load::client(
                addrs[i % addrs.len()],
                plan.clone(),
                live.clone(),
                rng.fork(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let progress = progress::enabled()
        .then(|| tokio::spawn(progress::show(plan.clone(), live.clone(), start)));
    let mut stats = Stats::default();
    for client in clients {
        // A client task cannot panic short of a bug; its measurements are then lost, not
        // the run's.
        if let Ok(s) = client.await {
            stats.add(&s);
        }
    }
    let interrupted = *stop_rx.borrow_and_update();
    watcher.abort();
    if let Some(p) = progress {
        p.abort();
        progress::clear();
    }
    let elapsed = match stats.last_done {
        Some(done) if done > plan.measure_from => done - plan.measure_from,
        _ if interrupted => Instant::now().saturating_duration_since(plan.measure_from),
        _ => o.duration,
    };
    Results {
        stats,
        elapsed,
        interrupted,
    }
}
