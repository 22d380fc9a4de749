//! Transport throughput and latency next to a raw quinn stream echo, in one run.
//!
//! `cargo bench -p raft-net-quic --bench transport` (`BENCH_SECS` per case, default 3).
//!
//! Each case echoes messages between two endpoints on loopback with a window of 1 or 64
//! messages in flight: node 1 sends, node 2 sends each message straight back, node 1 counts
//! round trips. Small messages are heartbeats (control stream); large ones are AppendEntries
//! carrying one 64 KiB entry (replication stream). The baseline does the same with
//! length-prefixed frames of the same sizes on one raw quinn bidirectional stream with the
//! same TLS setup.

use hdrhistogram::Histogram;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use raft_core::{
    AppendEntries, Entry, Heartbeat, LogIndex, Message, MessageBody, NodeId, Term, wire,
};
use raft_net_quic::certs::ClusterCa;
use raft_net_quic::{SendError, TlsIdentity, Transport, TransportConfig};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

struct Figures {
    msgs_per_sec: f64,
    mb_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn message(seq: u64, large: bool) -> Message {
    let body = if large {
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(seq),
            prev_log_term: Term(1),
            entries: vec![Entry::new(
                Term(1),
                LogIndex(seq + 1),
                vec![0x42u8; 64 << 10],
            )],
            leader_commit: LogIndex(0),
            commit_only: false,
        })
    } else {
        MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(7),
            read_round: seq,
        })
    };
    Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body,
    }
}

fn seq_of(m: &Message) -> u64 {
    match &m.body {
        MessageBody::Heartbeat(h) => h.read_round,
        MessageBody::AppendEntries(a) => a.prev_log_index.get(),
        _ => 0,
    }
}

fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let c = ca.issue(NodeId(id)).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap()
}

async fn transport_case(ca: &ClusterCa, large: bool, window: u64, secs: f64) -> Figures {
    let any = "127.0.0.1:0".parse().unwrap();
    let (a, mut a_in) =
        Transport::start(TransportConfig::new(NodeId(1), any, identity(ca, 1))).unwrap();
    let a_addr = a.local_addr().unwrap();
    let (b, mut b_in) = Transport::start(
        TransportConfig::new(NodeId(2), any, identity(ca, 2)).peer(NodeId(1), a_addr),
    )
    .unwrap();
    a.set_peer(NodeId(2), b.local_addr().unwrap());
    let echo = tokio::spawn(async move {
        while let Some(mut m) = b_in.messages.recv().await {
            std::mem::swap(&mut m.from, &mut m.to);
            while let Err(SendError::Full(_)) = b.send(m.clone()) {
                tokio::task::yield_now().await;
            }
        }
    });
    while a.connected_peers().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let size = wire::encoded_len(&message(0, large));
    let mut sent_at = vec![Instant::now(); 1 << 20];
    let mut h = Histogram::<u64>::new(3).unwrap();
    let warmup = Duration::from_millis(300);
    let begin = Instant::now();
    let mut next = 0u64;
    for _ in 0..window {
        sent_at[(next as usize) & 0xfffff] = Instant::now();
        a.send(message(next, large)).unwrap();
        next += 1;
    }
    let mut done = 0u64;
    let mut measure_start = None;
    loop {
        let m = a_in.messages.recv().await.unwrap();
        let now = Instant::now();
        if now - begin >= warmup {
            let start = *measure_start.get_or_insert(now);
            h.record((now - sent_at[(seq_of(&m) as usize) & 0xfffff]).as_nanos() as u64)
                .unwrap();
            done += 1;
            if (now - start).as_secs_f64() >= secs {
                let elapsed = (now - start).as_secs_f64();
                echo.abort();
                return Figures {
                    msgs_per_sec: done as f64 / elapsed,
                    mb_per_sec: done as f64 * size as f64 / elapsed / 1e6,
                    p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
                    p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
                };
            }
        }
        sent_at[(next as usize) & 0xfffff] = Instant::now();
        let mut msg = message(next, large);
        next += 1;
        loop {
            match a.send(msg) {
                Ok(()) => break,
                Err(SendError::Full(_)) => {
                    tokio::task::yield_now().await;
                    msg = message(next - 1, large);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
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

async fn raw_case(ca: &ClusterCa, size: usize, window: usize, secs: f64) -> Figures {
    let (server_cfg, client_cfg) = raw_configs(ca);
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut buf = vec![0u8; size + 4];
        while recv.read_exact(&mut buf).await.is_ok() {
            if send.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_cfg);
    let conn = client.connect(addr, "node-1").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let permits = Arc::new(Semaphore::new(window));
    let sent_at = Arc::new(std::sync::Mutex::new(vec![Instant::now(); 1 << 20]));
    let writer = {
        let (permits, sent_at) = (permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut frame = vec![0u8; size + 4];
            frame[..4].copy_from_slice(&(size as u32).to_be_bytes());
            for seq in 0u64.. {
                permits.acquire().await.unwrap().forget();
                frame[4..12.min(size + 4)].copy_from_slice(&seq.to_be_bytes()[..8.min(size)]);
                sent_at.lock().unwrap()[(seq as usize) & 0xfffff] = Instant::now();
                if send.write_all(&frame).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; size + 4];
    let mut h = Histogram::<u64>::new(3).unwrap();
    let begin = Instant::now();
    let mut measure_start = None;
    let mut done = 0u64;
    let mut seq = 0u64;
    loop {
        recv.read_exact(&mut buf).await.unwrap();
        let now = Instant::now();
        permits.add_permits(1);
        if now - begin >= Duration::from_millis(300) {
            let start = *measure_start.get_or_insert(now);
            let at = sent_at.lock().unwrap()[(seq as usize) & 0xfffff];
            h.record((now - at).as_nanos() as u64).unwrap();
            done += 1;
            if (now - start).as_secs_f64() >= secs {
                let elapsed = (now - start).as_secs_f64();
                writer.abort();
                echo.abort();
                return Figures {
                    msgs_per_sec: done as f64 / elapsed,
                    mb_per_sec: done as f64 * size as f64 / elapsed / 1e6,
                    p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
                    p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
                };
            }
        }
        seq += 1;
    }
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .map(|v| v.parse().expect("BENCH_SECS"))
        .unwrap_or(if smoke { 0.2 } else { 3.0 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = ClusterCa::generate().unwrap();
        println!("{secs} s per case, loopback, round trips (node 2 echoes every message)");
        println!(
            "{:<28} {:>10} {:>9} {:>10} {:>10} {:>8}",
            "case", "msgs/s", "MB/s", "p50 µs", "p99 µs", "vs raw"
        );
        let mut goals = Vec::new();
        for (large, name) in [(false, "heartbeat"), (true, "64 KiB AppendEntries")] {
            let size = wire::encoded_len(&message(0, large));
            for window in [1u64, 64] {
                let raw = raw_case(&ca, size, window as usize, secs).await;
                let t = transport_case(&ca, large, window, secs).await;
                let ratio = t.msgs_per_sec / raw.msgs_per_sec;
                for (label, f, r) in [("raw quinn", &raw, None), ("transport", &t, Some(ratio))] {
                    println!(
                        "{:<28} {:>10.0} {:>9.1} {:>10.1} {:>10.1} {:>8}",
                        format!("{label} {name} x{window}"),
                        f.msgs_per_sec,
                        f.mb_per_sec,
                        f.p50_us,
                        f.p99_us,
                        r.map_or("1.00".to_string(), |r| format!("{r:.2}"))
                    );
                }
                goals.push((format!("{name} x{window}"), ratio));
                if !large && window == 1 {
                    goals.push(("idle heartbeat rtt p99 (ms)".into(), t.p99_us / 1e3));
                }
            }
        }
        for (what, v) in goals {
            let met = if what.contains("rtt") {
                v < 1.0
            } else {
                v >= 0.8
            };
            println!("goal {what}: {v:.2} {}", if met { "MET" } else { "MISSED" });
        }
    });
}
