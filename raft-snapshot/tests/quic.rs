//! A 100 MiB multi-file snapshot over a real QUIC stream between two `raft-net-quic`
//! transports on loopback (mutual TLS), then a second transfer on the same connection that
//! is cut and resumed on a new stream.

mod support;

use std::time::{Duration, Instant};

use raft_core::NodeId;
use raft_net_quic::certs::ClusterCa;
use raft_net_quic::{TlsIdentity, Transport, TransportConfig};
use raft_snapshot::{SnapshotStore, receive_snapshot, send_snapshot};
use support::{Faulty, MIB, assert_same_files, cfg, layout, make_snapshot};

fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let cert = ca.issue(NodeId(id)).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_over_quic_and_a_resume_on_a_new_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 500, 2, &layout(100 * MIB), 11);

    let ca = ClusterCa::generate().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let (a, _a_in) =
        Transport::start(TransportConfig::new(NodeId(1), any, identity(&ca, 1))).unwrap();
    let (b, mut b_in) = Transport::start(
        TransportConfig::new(NodeId(2), any, identity(&ca, 2))
            .peer(NodeId(1), a.local_addr().unwrap()),
    )
    .unwrap();
    a.set_peer(NodeId(2), b.local_addr().unwrap());

    // The follower serves every snapshot stream that arrives, one after the other.
    let (results_tx, mut results) = tokio::sync::mpsc::unbounded_channel();
    let serving = {
        let follower = follower.clone();
        tokio::spawn(async move {
            while let Some(s) = b_in.snapshots.recv().await {
                assert_eq!(s.peer, NodeId(1));
                let r = receive_snapshot(&follower, s.recv, s.send, &cfg()).await;
                let _ = results_tx.send(r.map_err(|e| e.to_string()));
            }
        })
    };
    let open = || async {
        tokio::time::timeout(Duration::from_secs(20), a.open_snapshot(NodeId(2)))
            .await
            .unwrap()
            .unwrap()
    };

    let s = open().await;
    let started = Instant::now();
    let report = send_snapshot(leader.path_of(&m), &m, s.recv, s.send, &cfg())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!(
        "100 MiB over QUIC in {elapsed:?} ({:.0} MB/s)",
        m.total_bytes() as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert_eq!(report.bytes_sent, m.total_bytes());
    assert_eq!(results.recv().await.unwrap(), Ok(m.clone()));
    assert_eq!(follower.latest(), Some(m.clone()));
    assert_same_files(&m, &leader.path_of(&m), &follower.path_of(&m));

    // A newer snapshot: the first stream breaks after 3 MiB, the next one resumes.
    let m2 = make_snapshot(&leader, 600, 2, &layout(8 * MIB), 12);
    let s = open().await;
    let cut = Faulty::new(s.send).fail_at(3 * MIB as u64);
    let e = send_snapshot(leader.path_of(&m2), &m2, s.recv, cut, &cfg())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let r = results.recv().await.unwrap();
    assert!(r.is_err(), "the receiver saw the cut");
    let s = open().await;
    let report = send_snapshot(leader.path_of(&m2), &m2, s.recv, s.send, &cfg())
        .await
        .unwrap();
    assert_eq!(results.recv().await.unwrap(), Ok(m2.clone()));
    assert!(report.resumed_bytes >= 2 * MIB as u64, "{report:?}");
    assert_eq!(report.bytes_sent + report.resumed_bytes, m2.total_bytes());
    assert_same_files(&m2, &leader.path_of(&m2), &follower.path_of(&m2));
    assert_eq!(follower.latest(), Some(m2));

    serving.abort();
    a.shutdown().await;
    b.shutdown().await;
}
