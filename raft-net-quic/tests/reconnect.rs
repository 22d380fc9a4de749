//! An endpoint that restarts on the same address gets its messages again, without anyone
//! doing anything.

mod support;

use raft_core::NodeId;
use raft_net_quic::certs::ClusterCa;
use std::time::Duration;
use support::{config, connected, deliver, heartbeat, identity, pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_gets_messages_again() {
    let ca = ClusterCa::generate().unwrap();
    let (mut a, b) = pair(&ca);
    connected(&a, 2).await;
    let b_addr = b.addr;
    b.t.shutdown().await;
    drop(b.inbound);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut cfg = config(2, identity(&ca, 2)).peer(NodeId(1), a.addr);
    cfg.listen = b_addr;
    let mut b = support::start_retrying(cfg).await;
    let m = heartbeat(1, 2, 1);
    assert_eq!(deliver(&a, &mut b, m.clone()).await, m);
    let back = heartbeat(2, 1, 2);
    assert_eq!(deliver(&b, &mut a, back.clone()).await, back);
    assert_eq!(a.t.connected_peers(), vec![NodeId(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_settle_on_one_connection() {
    let ca = ClusterCa::generate().unwrap();
    for _ in 0..5 {
        let (mut a, mut b) = pair(&ca);
        connected(&a, 2).await;
        connected(&b, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Traffic flows both ways on whatever connection survived.
        let m = heartbeat(1, 2, 1);
        assert_eq!(deliver(&a, &mut b, m.clone()).await, m);
        let m = heartbeat(2, 1, 1);
        assert_eq!(deliver(&b, &mut a, m.clone()).await, m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_moves_is_found_at_its_new_address() {
    let ca = ClusterCa::generate().unwrap();
    let (mut a, b) = pair(&ca);
    connected(&a, 2).await;
    b.t.shutdown().await;
    drop(b.inbound);
    // Node 2 comes back elsewhere; node 1 is told (as a membership change would).
    let mut b = support::start(config(2, identity(&ca, 2)).peer(NodeId(1), a.addr));
    a.t.set_peer(NodeId(2), b.addr);
    let m = heartbeat(1, 2, 1);
    assert_eq!(deliver(&a, &mut b, m.clone()).await, m);
    let back = heartbeat(2, 1, 2);
    assert_eq!(deliver(&b, &mut a, back.clone()).await, back);
}
