//! A small cluster of transports on loopback for tests.
#![allow(dead_code)]

use raft_core::{Heartbeat, LogIndex, Message, MessageBody, NodeId, Term};
use raft_net_quic::certs::ClusterCa;
use raft_net_quic::{Inbound, PeerEvent, TlsIdentity, Transport, TransportConfig};
use std::net::SocketAddr;
use std::time::Duration;

pub fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
    let cert = ca.issue(NodeId(id)).unwrap();
    TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

pub fn config(id: u64, identity: TlsIdentity) -> TransportConfig {
    let mut cfg = TransportConfig::new(NodeId(id), "127.0.0.1:0".parse().unwrap(), identity);
    cfg.backoff_max = Duration::from_millis(200);
    cfg
}

pub struct Node {
    pub t: Transport,
    pub inbound: Inbound,
    pub addr: SocketAddr,
}

pub fn start(cfg: TransportConfig) -> Node {
    let (t, inbound) = Transport::start(cfg).expect("start transport");
    let addr = t.local_addr().unwrap();
    Node { t, inbound, addr }
}

/// Starts on a fixed address that a stopped transport just released (its socket closes a
/// moment after shutdown returns).
pub async fn start_retrying(cfg: TransportConfig) -> Node {
    for _ in 0..100 {
        if let Ok((t, inbound)) = Transport::start(cfg.clone()) {
            let addr = t.local_addr().unwrap();
            return Node { t, inbound, addr };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("address {} never became free", cfg.listen);
}

/// Two nodes of one CA that know each other.
pub fn pair(ca: &ClusterCa) -> (Node, Node) {
    let a = start(config(1, identity(ca, 1)));
    let b = start(config(2, identity(ca, 2)).peer(NodeId(1), a.addr));
    a.t.set_peer(NodeId(2), b.addr);
    (a, b)
}

pub fn heartbeat(from: u64, to: u64, round: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(0),
            read_round: round,
        }),
    }
}

/// Waits until `node` is connected to `peer`.
pub async fn connected(node: &Node, peer: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !node.t.connected_peers().contains(&NodeId(peer)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("node {} never connected to {peer}", node.t.id()));
}

/// Sends `m` until the receiver gets a message (retrying while the connection comes up).
pub async fn deliver(from: &Node, to: &mut Node, m: Message) -> Message {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let _ = from.t.send(m.clone());
            if let Ok(Some(got)) =
                tokio::time::timeout(Duration::from_millis(100), to.inbound.messages.recv()).await
            {
                return got;
            }
        }
    })
    .await
    .expect("message never delivered")
}

/// Collects `Refused` events for a while.
pub async fn refusals(
    events: &mut tokio::sync::broadcast::Receiver<PeerEvent>,
    within: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        while let Ok(e) = events.recv().await {
            if let PeerEvent::Refused { reason, .. } = e {
                out.push(reason);
            }
        }
    })
    .await;
    out
}
