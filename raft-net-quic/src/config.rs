//! Settings of a [`crate::Transport`].

use crate::tls::TlsIdentity;
use raft_core::NodeId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How a node's transport is set up. [`TransportConfig::new`] gives sane defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportConfig {
    /// This node.
    pub id: NodeId,
    /// The UDP address to listen on (port 0 picks a free one; see
    /// [`crate::Transport::local_addr`]).
    pub listen: SocketAddr,
    /// The other nodes and where to reach them. Can change at run time
    /// ([`crate::Transport::set_peer`]).
    pub peers: HashMap<NodeId, SocketAddr>,
    /// The cluster CA and this node's certificate and key.
    pub identity: TlsIdentity,
    /// Largest frame accepted or sent. Default 8 MiB (raft-core's `max_size_per_msg` is 1 MiB).
    pub max_frame_bytes: usize,
    /// Control messages queued per peer before `send` refuses more. Default 1024.
    pub control_queue: usize,
    /// Replication messages queued per peer before `send` refuses more. Default 4096.
    pub replication_queue: usize,
    /// First reconnect delay; doubles per failure up to `backoff_max`, with full jitter.
    /// Defaults 20 ms and 2 s.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Keep-alive ping interval. Default 500 ms.
    pub keep_alive: Duration,
    /// A connection silent for this long is dead. Default 5 s.
    pub idle_timeout: Duration,
    /// Limit for the TLS handshake plus the hello. Default 5 s.
    pub handshake_timeout: Duration,
    /// Limit for one forwarded request's round trip. Default 10 s.
    pub forward_timeout: Duration,
    /// Concurrent forwarded requests and snapshot transfers a peer may open. Default 1024.
    pub max_bidi_streams: u32,
}

impl TransportConfig {
    /// Defaults for node `id` listening on `listen`, with no peers yet.
    pub fn new(id: NodeId, listen: SocketAddr, identity: TlsIdentity) -> TransportConfig {
        TransportConfig {
            id,
            listen,
            peers: HashMap::new(),
            identity,
            max_frame_bytes: 8 << 20,
            control_queue: 1024,
            replication_queue: 4096,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(10),
            max_bidi_streams: 1024,
        }
    }

    /// Adds a peer.
    pub fn peer(mut self, id: NodeId, addr: SocketAddr) -> TransportConfig {
        self.peers.insert(id, addr);
        self
    }
}
