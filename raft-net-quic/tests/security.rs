//! Who may connect: only nodes with a certificate from the cluster CA that names the node they
//! claim to be, and that this node knows. Garbage aimed at the port changes nothing.

mod support;

use raft_core::NodeId;
use raft_net_quic::TlsIdentity;
use raft_net_quic::certs::ClusterCa;
use std::time::{Duration, SystemTime};
use support::{config, connected, deliver, heartbeat, identity, pair, refusals, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_a_foreign_ca_is_refused_both_ways() {
    let ca = ClusterCa::generate().unwrap();
    let foreign = ClusterCa::generate().unwrap();
    let a = start(config(1, identity(&ca, 1)));
    let mut events = a.t.events();
    // Node 3 with a certificate from another CA (but trusting ours, to make the test about
    // the certificate it presents).
    let cert = foreign.issue(NodeId(3)).unwrap();
    let intruder_id = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let mut intruder = start(config(3, intruder_id).peer(NodeId(1), a.addr));
    a.t.set_peer(NodeId(3), intruder.addr);
    let refused = refusals(&mut events, Duration::from_secs(2)).await;
    assert!(!refused.is_empty(), "the intruder's dial was not refused");
    assert!(a.t.connected_peers().is_empty());
    assert!(intruder.t.connected_peers().is_empty());
    // Nothing gets through in either direction.
    let _ = a.t.send(heartbeat(1, 3, 0));
    let _ = intruder.t.send(heartbeat(3, 1, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(intruder.inbound.messages.try_recv().is_none());
    let mut a = a;
    assert!(a.inbound.messages.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_claiming_another_id_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let mut a = start(config(1, identity(&ca, 1)));
    let mut events = a.t.events();
    // Node 2's genuine certificate, used by a process that says it is node 3.
    let liar = start(config(3, identity(&ca, 2)).peer(NodeId(1), a.addr));
    a.t.set_peer(NodeId(3), liar.addr);
    let refused = refusals(&mut events, Duration::from_secs(2)).await;
    assert!(
        refused.iter().any(|r| r.contains("claims to be node 3")),
        "{refused:?}"
    );
    assert!(a.t.connected_peers().is_empty());
    assert!(
        liar.t.connected_peers().is_empty(),
        "a dialed node-3 and accepted node-2's certificate"
    );
    let _ = liar.t.send(heartbeat(3, 1, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.inbound.messages.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let a = start(config(1, identity(&ca, 1)));
    let mut events = a.t.events();
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let old = ca
        .issue_valid(NodeId(2), now - 10 * day, now - day)
        .unwrap();
    let old_id = TlsIdentity::from_pem(ca.cert_pem(), &old.cert_pem, &old.key_pem).unwrap();
    let stale = start(config(2, old_id).peer(NodeId(1), a.addr));
    a.t.set_peer(NodeId(2), stale.addr);
    let refused = refusals(&mut events, Duration::from_secs(2)).await;
    assert!(!refused.is_empty());
    assert!(a.t.connected_peers().is_empty());
    assert!(stale.t.connected_peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_node_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let a = start(config(1, identity(&ca, 1)));
    let mut events = a.t.events();
    let stranger = start(config(5, identity(&ca, 5)).peer(NodeId(1), a.addr));
    let refused = refusals(&mut events, Duration::from_secs(2)).await;
    assert!(
        refused.iter().any(|r| r.contains("not a known peer")),
        "{refused:?}"
    );
    assert!(stranger.t.connected_peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_and_tcp_clients_do_not_hurt() {
    let ca = ClusterCa::generate().unwrap();
    let (a, mut b) = pair(&ca);
    connected(&a, 2).await;
    // Random UDP datagrams, some shaped like QUIC long headers.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 1400) as usize;
        let mut d: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8).collect();
        if i % 2 == 0 {
            d[0] = 0xc0 | (d[0] & 0x0f); // long header bit set
        }
        let _ = sock.send_to(&d, a.addr);
    }
    // A plain TLS client speaks TCP: the port has no TCP listener, the attempt just fails.
    let _ = std::net::TcpStream::connect_timeout(&a.addr, Duration::from_millis(200));
    // Still working.
    let m = heartbeat(1, 2, 9);
    assert_eq!(deliver(&a, &mut b, m.clone()).await, m);
}
