//! Head-of-line blocking: while a 64 MiB snapshot streams between two endpoints, heartbeat
//! round trips stay close to the idle figure (control traffic has its own stream, is sent
//! first and is received first).

mod support;

use raft_core::{HeartbeatResponse, Message, MessageBody, NodeId, Term};
use raft_net_quic::certs::ClusterCa;
use std::time::{Duration, Instant};
use support::{connected, heartbeat, pair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SNAPSHOT_BYTES: usize = 64 << 20;

/// Round trips of heartbeats from a to b (b answers each).
async fn ping(a: &mut support::Node, n: usize, round0: u64) -> Vec<Duration> {
    let mut rtts = Vec::with_capacity(n);
    for r in round0..round0 + n as u64 {
        let start = Instant::now();
        a.t.send(heartbeat(1, 2, r)).unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), a.inbound.messages.recv())
                .await
                .expect("no heartbeat response")
                .unwrap();
            if matches!(m.body, MessageBody::HeartbeatResponse(HeartbeatResponse { read_round }) if read_round == r)
            {
                break;
            }
        }
        rtts.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rtts.sort();
    rtts
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_do_not_wait_behind_a_snapshot() {
    let ca = ClusterCa::generate().unwrap();
    let (mut a, b) = pair(&ca);
    connected(&a, 2).await;
    let support::Node {
        t: bt,
        inbound: bin,
        ..
    } = b;
    let raft_net_quic::Inbound {
        mut messages,
        mut snapshots,
        ..
    } = bin;
    let bt = std::sync::Arc::new(bt);
    // b answers every heartbeat at once.
    let answer = {
        let bt = bt.clone();
        tokio::spawn(async move {
            while let Some(m) = messages.recv().await {
                if let MessageBody::Heartbeat(h) = m.body {
                    let _ = bt.send(Message {
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
    // b drains snapshots.
    let drain = tokio::spawn(async move {
        let mut s = snapshots.recv().await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            let n = s.recv.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });

    let idle = ping(&mut a, 50, 1).await;
    let mut snap = a.t.open_snapshot(NodeId(2)).await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..SNAPSHOT_BYTES >> 20 {
            snap.send.write_all(&chunk).await.unwrap();
        }
        snap.send.shutdown().await.unwrap();
    });
    let mut loaded = Vec::new();
    let mut round = 1000;
    while !writer.is_finished() || loaded.len() < 50 {
        loaded.extend(ping(&mut a, 10, round).await);
        round += 10;
    }
    writer.await.unwrap();
    let received = drain.await.unwrap();
    let elapsed = started.elapsed();
    loaded.sort();
    assert_eq!(received, SNAPSHOT_BYTES);
    println!(
        "idle rtt p50 {:?} p99 {:?}; during a 64 MiB snapshot ({:.0} MB/s) p50 {:?} p99 {:?} max {:?} over {} pings",
        pct(&idle, 0.5),
        pct(&idle, 0.99),
        SNAPSHOT_BYTES as f64 / elapsed.as_secs_f64() / 1e6,
        pct(&loaded, 0.5),
        pct(&loaded, 0.99),
        loaded.last().unwrap(),
        loaded.len()
    );
    // Generous bounds for a shared 2-core machine running a debug build: the point is that a
    // heartbeat does not wait for the snapshot (which takes seconds), not a precise latency.
    assert!(
        pct(&loaded, 0.5) < pct(&idle, 0.5) + Duration::from_millis(20),
        "median heartbeat round trip grew from {:?} to {:?}",
        pct(&idle, 0.5),
        pct(&loaded, 0.5)
    );
    assert!(
        pct(&loaded, 0.99) < Duration::from_millis(250),
        "p99 heartbeat round trip {:?} during the snapshot",
        pct(&loaded, 0.99)
    );
    answer.abort();
}
