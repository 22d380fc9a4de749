//! Snapshot transfer throughput over QUIC on loopback next to a raw quinn stream copy of the
//! same bytes, in one run, with heartbeat round trips on the same connection measured during
//! the snapshot transfer.
//!
//! `cargo bench -p raft-snapshot --bench transfer` (full: `BENCH_MIB` MiB per transfer,
//! default 256, `BENCH_ROUNDS` rounds, default 3; `BENCH_DIR` picks the disk;
//! `BENCH_SKIP_RAW` leaves out the baseline, e.g. to profile the snapshot path). Without
//! `--bench` (as `cargo test` runs it) a small smoke run.
//!
//! - raw quinn: one bidirectional stream on a quinn connection with the same TLS setup; the
//!   sender reads the snapshot's files (page cache) in 1 MiB pieces and writes them, the
//!   receiver reads everything and drops it.
//! - snapshot: `send_snapshot` over `raft-net-quic`'s `open_snapshot` stream, received by
//!   `receive_snapshot` into a store (chunk checksums, file writes, fsyncs, atomic rename),
//!   timed until the sender hears the install. Meanwhile node 1 pings node 2 with
//!   heartbeats on the control stream of the same connection.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use raft_core::{
    ConfState, Heartbeat, HeartbeatResponse, LogIndex, Message, MessageBody, NodeId, Term,
};
use raft_net_quic::certs::ClusterCa;
use raft_net_quic::{Inbound, TlsIdentity, Transport, TransportConfig};
use raft_snapshot::{Manifest, SnapshotStore, TransferConfig, receive_snapshot, send_snapshot};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

const FILES: usize = 8;

fn generate(dir: &Path, total: usize) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..FILES {
        let len = total / FILES;
        let mut data = Vec::with_capacity(len + 8);
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(len);
        std::fs::write(dir.join(format!("{:06}.sst", i + 1)), data).unwrap();
    }
}

fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let c = ca.issue(NodeId(id)).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap()
}

fn raw_configs(ca: &ClusterCa) -> (quinn::ServerConfig, quinn::ClientConfig) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let roots = Arc::new(roots);
    let load = |id| {
        let c = ca.issue(NodeId(id)).unwrap();
        let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (
            chain,
            PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
        )
    };
    let (chain, key) = load(1);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let (chain, key) = load(2);
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    (
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server).unwrap())),
        quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).unwrap())),
    )
}

/// Raw quinn: the files' bytes over one stream; returns MB/s.
async fn raw_copy(ca: &ClusterCa, dir: &Path, m: &Manifest) -> f64 {
    let (server_cfg, client_cfg) = raw_configs(ca);
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let sink = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut total = 0u64;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.unwrap() {
            total += chunk.bytes.len() as u64;
        }
        send.write_all(b"k").await.unwrap();
        send.finish().unwrap();
        let _ = send.stopped().await;
        total
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_cfg);
    let conn = client.connect(addr, "node-1").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let started = Instant::now();
    for f in &m.files {
        let mut file = std::fs::File::open(dir.join(&f.name)).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            send.write_all(&buf[..n]).await.unwrap();
        }
    }
    send.finish().unwrap();
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sink.await.unwrap(), m.total_bytes());
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    m.total_bytes() as f64 / elapsed.as_secs_f64() / 1e6
}

struct Pair {
    a: Arc<Transport>,
    a_in: Inbound,
    b: Arc<Transport>,
    snapshots: tokio::sync::mpsc::Receiver<raft_net_quic::SnapshotStream>,
    answer: tokio::task::JoinHandle<()>,
}

async fn pair(ca: &ClusterCa) -> Pair {
    let any = "127.0.0.1:0".parse().unwrap();
    let (a, a_in) =
        Transport::start(TransportConfig::new(NodeId(1), any, identity(ca, 1))).unwrap();
    let (b, b_in) = Transport::start(
        TransportConfig::new(NodeId(2), any, identity(ca, 2))
            .peer(NodeId(1), a.local_addr().unwrap()),
    )
    .unwrap();
    a.set_peer(NodeId(2), b.local_addr().unwrap());
    let (a, b) = (Arc::new(a), Arc::new(b));
    let Inbound {
        mut messages,
        snapshots,
        ..
    } = b_in;
    // Node 2 answers every heartbeat at once.
    let answer = {
        let b = b.clone();
        tokio::spawn(async move {
            while let Some(m) = messages.recv().await {
                if let MessageBody::Heartbeat(h) = m.body {
                    let _ = b.send(Message {
                        from: NodeId(2),
                        to: NodeId(1),
                        term: Term(1),
                        body: MessageBody::HeartbeatResponse(HeartbeatResponse {
                            read_round: h.read_round,
                        }),
                    });
                }
            }
        })
    };
    while a.connected_peers().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Pair {
        a,
        a_in,
        b,
        snapshots,
        answer,
    }
}

/// One heartbeat round trip from node 1 to node 2.
async fn ping(p: &mut Pair, round: u64) -> Duration {
    let start = Instant::now();
    p.a.send(Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(0),
            read_round: round,
        }),
    })
    .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), p.a_in.messages.recv())
            .await
            .expect("no heartbeat answer")
            .unwrap();
        if matches!(m.body, MessageBody::HeartbeatResponse(r) if r.read_round == round) {
            return start.elapsed();
        }
    }
}

struct SnapFigures {
    mb_per_sec: f64,
    during: Histogram<u64>,
}

/// The snapshot transfer with heartbeats pinging alongside.
async fn snapshot_copy(
    p: &mut Pair,
    leader: &SnapshotStore,
    follower: &SnapshotStore,
    m: &Manifest,
    round0: u64,
) -> SnapFigures {
    let cfg = TransferConfig::default();
    let mut incoming = {
        let (follower, cfg) = (follower.clone(), cfg.clone());
        let mut s = std::mem::replace(&mut p.snapshots, tokio::sync::mpsc::channel(1).1);
        tokio::spawn(async move {
            let stream = s.recv().await.unwrap();
            let r = receive_snapshot(&follower, stream.recv, stream.send, &cfg).await;
            (r.unwrap(), s)
        })
    };
    let started = Instant::now();
    let stream = p.a.open_snapshot(NodeId(2)).await.unwrap();
    let sender = {
        let (dir, m) = (leader.path_of(m), m.clone());
        tokio::spawn(async move { send_snapshot(dir, &m, stream.recv, stream.send, &cfg).await })
    };
    let mut during = Histogram::<u64>::new(3).unwrap();
    let mut round = round0;
    while !sender.is_finished() {
        during
            .record(ping(p, round).await.as_nanos() as u64)
            .unwrap();
        round += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = sender.await.unwrap().unwrap();
    let elapsed = started.elapsed();
    let (got, s) = (&mut incoming).await.unwrap();
    p.snapshots = s;
    assert_eq!(got, *m);
    assert_eq!(report.bytes_sent, m.total_bytes());
    follower.remove(m.index, m.term).unwrap();
    SnapFigures {
        mb_per_sec: m.total_bytes() as f64 / elapsed.as_secs_f64() / 1e6,
        during,
    }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e3
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| std::env::var(k).map_or(d, |v| v.parse().expect(k));
    let mib = env("BENCH_MIB", if smoke { 8 } else { 256 });
    let rounds = env("BENCH_ROUNDS", if smoke { 1 } else { 3 });
    let base = std::env::var("BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let tmp = tempfile::tempdir_in(base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
        let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
        let dir = leader.staging_dir(LogIndex(1), Term(1)).unwrap();
        generate(&dir, mib << 20);
        let conf = ConfState::new([NodeId(1), NodeId(2)]);
        let m = Manifest::from_dir(&dir, LogIndex(1), Term(1), conf).unwrap();
        leader.install_dir(&dir, &m).unwrap();
        let src = leader.path_of(&m);

        let ca = ClusterCa::generate().unwrap();
        let mut p = pair(&ca).await;
        let mut idle = Histogram::<u64>::new(3).unwrap();
        for r in 0..200 {
            idle.record(ping(&mut p, r).await.as_nanos() as u64).unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!(
            "{mib} MiB in {FILES} files per transfer, {rounds} round(s), loopback, 1 MiB chunks"
        );
        println!(
            "{:<8} {:>14} {:>14} {:>8} {:>22}",
            "round", "raw quinn MB/s", "snapshot MB/s", "ratio", "heartbeat p50/p99 µs"
        );
        let (mut raws, mut snaps) = (Vec::new(), Vec::new());
        let mut during_all = Histogram::<u64>::new(3).unwrap();
        let skip_raw = std::env::var("BENCH_SKIP_RAW").is_ok();
        for round in 0..rounds {
            let raw = if skip_raw { f64::NAN } else { raw_copy(&ca, &src, &m).await };
            let snap = snapshot_copy(&mut p, &leader, &follower, &m, 1000 * (round as u64 + 1)).await;
            println!(
                "{:<8} {:>14.0} {:>14.0} {:>8.2} {:>10.0} / {:<10.0}",
                round + 1,
                raw,
                snap.mb_per_sec,
                snap.mb_per_sec / raw,
                us(&snap.during, 0.5),
                us(&snap.during, 0.99)
            );
            during_all.add(&snap.during).unwrap();
            raws.push(raw);
            snaps.push(snap.mb_per_sec);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (raw, snap) = (median(&mut raws), median(&mut snaps));
        println!(
            "median: raw quinn {raw:.0} MB/s, snapshot {snap:.0} MB/s, ratio {:.2}",
            snap / raw
        );
        println!(
            "heartbeat rtt idle p50 {:.0} µs p99 {:.0} µs; during transfers p50 {:.0} µs p99 {:.0} µs max {:.0} µs ({} pings)",
            us(&idle, 0.5),
            us(&idle, 0.99),
            us(&during_all, 0.5),
            us(&during_all, 0.99),
            during_all.max() as f64 / 1e3,
            during_all.len()
        );
        let ratio = snap / raw;
        println!(
            "goal snapshot >= 70% of raw quinn: {ratio:.2} {}",
            if ratio >= 0.7 { "MET" } else { "MISSED" }
        );
        p.answer.abort();
        let _ = &p.b;
    });
}
