//! The [`Transport`]: an endpoint that accepts and dials peers, and the per-connection tasks
//! that read their streams.

use crate::config::TransportConfig;
use crate::error::{SendError, StartError, StreamError};
use crate::frame::{FrameReader, TrafficClass, hello, parse_hello, put_frame, read_class};
use crate::peer::{
    CLOSE_REFUSED, CLOSE_REMOVED, CLOSE_SHUTDOWN, Peer, PeerConn, STOP_BAD_CLASS, STOP_BAD_FRAME,
    class_of, install, put_class,
};
use crate::streams::{ForwardRequest, SnapshotRecv, SnapshotSend, SnapshotStream};
use crate::tls::{cert_names_node, client_crypto, server_crypto};
use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use raft_core::{Message, MessageBody, NodeId, wire};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;

/// A change in a peer connection, for metrics and logs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A connection to `peer` is up.
    Connected {
        /// The peer.
        peer: NodeId,
        /// Its address.
        remote: SocketAddr,
        /// Whether this node dialed.
        dialed: bool,
    },
    /// The connection to `peer` is gone.
    Disconnected {
        /// The peer.
        peer: NodeId,
        /// Why.
        reason: String,
    },
    /// A connection attempt was refused (bad certificate, wrong id, unknown node, garbage).
    Refused {
        /// Where it came from.
        remote: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Tunables the tasks need (the config minus identity and peers).
pub(crate) struct Tunables {
    pub(crate) max_frame_bytes: usize,
    pub(crate) control_queue: usize,
    pub(crate) replication_queue: usize,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) forward_timeout: Duration,
}

pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) cfg: Tunables,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    inbound_control: mpsc::Sender<Message>,
    inbound_replication: mpsc::Sender<Message>,
    forwards: mpsc::Sender<ForwardRequest>,
    snapshots: mpsc::Sender<SnapshotStream>,
    events: broadcast::Sender<PeerEvent>,
    tasks: Mutex<JoinSet<()>>,
}

impl Shared {
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    pub(crate) fn event(&self, e: PeerEvent) {
        let _ = self.events.send(e);
    }

    fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn refuse(&self, conn: Option<&quinn::Connection>, remote: SocketAddr, reason: String) {
        tracing::warn!(node = self.id.get(), %remote, %reason, "refused a peer connection");
        metrics::counter!("raft_net_refused_total").increment(1);
        if let Some(conn) = conn {
            conn.close(CLOSE_REFUSED.into(), reason.as_bytes());
        }
        self.event(PeerEvent::Refused { remote, reason });
    }
}

/// Messages from peers, control traffic first: a heartbeat is never queued behind a burst of
/// AppendEntries.
pub struct Messages {
    control: mpsc::Receiver<Message>,
    replication: mpsc::Receiver<Message>,
}

impl Messages {
    /// The next message, `None` once the transport is shut down.
    pub async fn recv(&mut self) -> Option<Message> {
        tokio::select! {
            biased;
            Some(m) = self.control.recv() => Some(m),
            Some(m) = self.replication.recv() => Some(m),
            else => None,
        }
    }

    /// A message if one is waiting (control first).
    pub fn try_recv(&mut self) -> Option<Message> {
        self.control
            .try_recv()
            .or_else(|_| self.replication.try_recv())
            .ok()
    }
}

/// What arrives from peers.
pub struct Inbound {
    /// Raft messages.
    pub messages: Messages,
    /// Client requests forwarded to this node.
    pub forwards: mpsc::Receiver<ForwardRequest>,
    /// Snapshot transfers opened by peers.
    pub snapshots: mpsc::Receiver<SnapshotStream>,
}

/// The peer transport of one node. See the crate documentation.
pub struct Transport {
    shared: Arc<Shared>,
}

impl Transport {
    /// Binds the endpoint and starts connecting to the configured peers. Must run inside a
    /// tokio runtime.
    pub fn start(cfg: TransportConfig) -> Result<(Transport, Inbound), StartError> {
        let qcfg = |e: &dyn std::fmt::Display| StartError::Config(e.to_string());
        let mut transport = quinn::TransportConfig::default();
        transport
            .keep_alive_interval(Some(cfg.keep_alive))
            .max_idle_timeout(Some(cfg.idle_timeout.try_into().map_err(|e| qcfg(&e))?))
            .max_concurrent_bidi_streams(cfg.max_bidi_streams.into())
            .max_concurrent_uni_streams(16u32.into());
        let transport = Arc::new(transport);
        let server_tls =
            QuicServerConfig::try_from(server_crypto(&cfg.identity)?).map_err(|e| qcfg(&e))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server.transport_config(transport.clone());
        let client_tls =
            QuicClientConfig::try_from(client_crypto(&cfg.identity)?).map_err(|e| qcfg(&e))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
        client.transport_config(transport);
        let endpoint =
            quinn::Endpoint::server(server, cfg.listen).map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;

        let (control_tx, control) = mpsc::channel(cfg.control_queue);
        let (replication_tx, replication) = mpsc::channel(cfg.replication_queue);
        let (forwards_tx, forwards) = mpsc::channel(cfg.max_bidi_streams as usize);
        let (snapshots_tx, snapshots) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            id: cfg.id,
            cfg: Tunables {
                max_frame_bytes: cfg.max_frame_bytes,
                control_queue: cfg.control_queue,
                replication_queue: cfg.replication_queue,
                backoff_min: cfg.backoff_min,
                backoff_max: cfg.backoff_max,
                handshake_timeout: cfg.handshake_timeout,
                forward_timeout: cfg.forward_timeout,
            },
            endpoint,
            client,
            peers: Mutex::new(HashMap::new()),
            inbound_control: control_tx,
            inbound_replication: replication_tx,
            forwards: forwards_tx,
            snapshots: snapshots_tx,
            events: broadcast::channel(256).0,
            tasks: Mutex::new(JoinSet::new()),
        });
        shared.spawn(accept_loop(shared.clone()));
        let t = Transport { shared };
        for (id, addr) in cfg.peers {
            t.set_peer(id, addr);
        }
        Ok((
            t,
            Inbound {
                messages: Messages {
                    control,
                    replication,
                },
                forwards,
                snapshots,
            },
        ))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The largest frame this node sends or accepts ([`crate::TransportConfig`]'s
    /// `max_frame_bytes`; peers are expected to use the same): no message or forwarded
    /// request may be larger once encoded.
    pub fn max_frame_bytes(&self) -> usize {
        self.shared.cfg.max_frame_bytes
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// Queues `m` for `m.to` on the stream of its traffic class. Never waits.
    pub fn send(&self, m: Message) -> Result<(), SendError> {
        let peer = self.shared.peer(m.to).ok_or(SendError::UnknownPeer(m.to))?;
        let len = wire::encoded_len(&m);
        let max = self.shared.cfg.max_frame_bytes;
        if len > max {
            return Err(SendError::TooLarge { len, max });
        }
        let class = class_of(&m);
        let heartbeat = matches!(m.body, MessageBody::Heartbeat(_));
        let queue = match class {
            TrafficClass::Replication => &peer.replication,
            _ => &peer.control,
        };
        queue.try_send(m).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                // A dropped heartbeat is superseded by the next one, which carries newer state.
                let what = if heartbeat { "heartbeat_coalesced" } else { "full" };
                metrics::counter!("raft_net_send_dropped_total", "class" => class.as_str(), "why" => what)
                    .increment(1);
                SendError::Full(peer.id)
            }
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Adds a peer or changes its address (membership changes). A changed address drops the
    /// connection this node dialed, so the next one goes to the new address.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        if id == self.shared.id {
            return;
        }
        let mut peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&id) {
            Some(peer) => {
                if *peer.addr.borrow() != addr {
                    peer.addr.send_replace(addr);
                    if let Some(c) = peer.conn.borrow().as_ref().filter(|c| c.dialed_by_me) {
                        c.conn.close(CLOSE_REMOVED.into(), b"address changed");
                    }
                }
            }
            None => {
                peers.insert(id, Peer::spawn(&self.shared, id, addr));
            }
        }
    }

    /// Forgets a peer: closes its connection and drops its queues.
    pub fn remove_peer(&self, id: NodeId) {
        let peer = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(peer) = peer {
            // Aborted; they finish on their own.
            drop(peer.stop(CLOSE_REMOVED, b"removed from the cluster"));
        }
    }

    /// Peers with a live connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<NodeId> = peers
            .values()
            .filter(|p| p.current().is_some())
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The round-trip time QUIC measures to `peer`, if connected.
    pub fn rtt(&self, peer: NodeId) -> Option<Duration> {
        self.shared.peer(peer)?.current().map(|c| c.rtt())
    }

    /// Connection events (connected, disconnected, refused).
    pub fn events(&self) -> broadcast::Receiver<PeerEvent> {
        self.shared.events.subscribe()
    }

    /// The connection to `to`, waiting up to `limit` for one (e.g. while it reconnects).
    async fn connection(
        &self,
        to: NodeId,
        limit: Duration,
    ) -> Result<quinn::Connection, StreamError> {
        let peer = self.shared.peer(to).ok_or(StreamError::UnknownPeer(to))?;
        peer.connection_within(limit)
            .await
            .ok_or(StreamError::NotConnected(to))
    }

    /// Sends a client request to `to` on a stream of its own and waits for the response.
    /// Waits up to the handshake timeout for a connection.
    pub async fn forward(&self, to: NodeId, request: Bytes) -> Result<Bytes, StreamError> {
        let conn = self
            .connection(to, self.shared.cfg.handshake_timeout)
            .await?;
        let max = self.shared.cfg.max_frame_bytes;
        if request.len() > max {
            return Err(StreamError::BadResponse {
                peer: to,
                detail: format!("request of {} bytes exceeds the frame limit", request.len()),
            });
        }
        let io = |e: &dyn std::fmt::Display| StreamError::Connection {
            peer: to,
            detail: e.to_string(),
        };
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| io(&e))?;
            let _ = send.set_priority(TrafficClass::Forward.priority());
            let mut buf = BytesMut::new();
            put_class(&mut buf, TrafficClass::Forward);
            put_frame(&mut buf, &request);
            send.write_all(&buf).await.map_err(|e| io(&e))?;
            let _ = send.finish();
            match FrameReader::new(&mut recv, max).next().await {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => Err(StreamError::BadResponse {
                    peer: to,
                    detail: "no response".into(),
                }),
                Err(e) => Err(StreamError::BadResponse {
                    peer: to,
                    detail: e.to_string(),
                }),
            }
        };
        tokio::time::timeout(self.shared.cfg.forward_timeout, exchange)
            .await
            .map_err(|_| StreamError::TimedOut(to))?
    }

    /// Opens a snapshot transfer to `to` (a stream of its own, at the lowest priority).
    /// Waits up to the handshake timeout for a connection.
    pub async fn open_snapshot(&self, to: NodeId) -> Result<SnapshotStream, StreamError> {
        let conn = self
            .connection(to, self.shared.cfg.handshake_timeout)
            .await?;
        let io = |e: &dyn std::fmt::Display| StreamError::Connection {
            peer: to,
            detail: e.to_string(),
        };
        let (mut send, recv) = conn.open_bi().await.map_err(|e| io(&e))?;
        let _ = send.set_priority(TrafficClass::Snapshot.priority());
        send.write_all(&[TrafficClass::Snapshot as u8])
            .await
            .map_err(|e| io(&e))?;
        Ok(SnapshotStream {
            peer: to,
            send: SnapshotSend(send),
            recv: SnapshotRecv(recv),
        })
    }

    /// Closes every connection and stops every task; the UDP port is free when this returns.
    pub async fn shutdown(self) {
        for mut tasks in self.stop() {
            tasks.shutdown().await;
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.shared.endpoint.wait_idle()).await;
        drop(self);
        // The endpoint's driver closes the socket once it sees the last handle go.
        tokio::task::yield_now().await;
    }

    /// Closes everything and aborts every task; returns the aborted tasks.
    fn stop(&self) -> Vec<JoinSet<()>> {
        let peers: Vec<_> = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        let mut all: Vec<JoinSet<()>> = peers
            .iter()
            .map(|p| p.stop(CLOSE_SHUTDOWN, b"shutting down"))
            .collect();
        self.shared
            .endpoint
            .close(CLOSE_SHUTDOWN.into(), b"shutting down");
        let mut tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        tasks.abort_all();
        all.push(tasks);
        all
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        drop(self.stop());
    }
}

pub(crate) async fn dial(
    shared: &Arc<Shared>,
    id: NodeId,
    addr: SocketAddr,
) -> Result<quinn::Connection, String> {
    let name = crate::certs::node_name(id);
    let connecting = shared
        .endpoint
        .connect_with(shared.client.clone(), addr, &name)
        .map_err(|e| e.to_string())?;
    let hs = shared.cfg.handshake_timeout;
    let conn = tokio::time::timeout(hs, connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    // The hello goes on a stream of its own, and the acceptor confirms it: until then this
    // side does not count the connection as up (the acceptor may still refuse it).
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let _ = send.set_priority(TrafficClass::Hello.priority());
        let mut buf = BytesMut::new();
        put_class(&mut buf, TrafficClass::Hello);
        put_frame(&mut buf, &hello(shared.id));
        send.write_all(&buf).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        match FrameReader::new(&mut recv, 64).next().await {
            Ok(Some(ack)) if &ack[..] == HELLO_ACK => Ok(()),
            Ok(_) => Err("bad hello acknowledgement".to_string()),
            Err(e) => Err(match conn.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(c)) => format!(
                    "refused by the peer: {}",
                    String::from_utf8_lossy(&c.reason)
                ),
                _ => e.to_string(),
            }),
        }
    };
    match tokio::time::timeout(hs, exchange).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no hello acknowledgement in time".into()),
    }
}

/// The acceptor's answer to an accepted hello.
const HELLO_ACK: &[u8] = b"OK";

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        shared.spawn(handshake(shared.clone(), incoming));
    }
}

/// An incoming connection: TLS checked the chain during the handshake; the dialer's hello
/// says which node it is, and its certificate must name that node.
async fn handshake(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let hs = shared.cfg.handshake_timeout;
    let conn = match tokio::time::timeout(hs, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return shared.refuse(None, remote, format!("handshake failed: {e}")),
        Err(_) => return shared.refuse(None, remote, "handshake timed out".into()),
    };
    let hello = async {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        match read_class(&mut recv).await.map_err(|e| e.to_string())? {
            Some(TrafficClass::Hello) => {}
            other => return Err(format!("expected a hello stream, got {other:?}")),
        }
        let frame = FrameReader::new(&mut recv, 64)
            .next()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("empty hello stream")?;
        parse_hello(&frame).map(|id| (id, send))
    };
    let (id, mut ack) = match tokio::time::timeout(hs, hello).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => return shared.refuse(Some(&conn), remote, format!("bad hello: {e}")),
        Err(_) => return shared.refuse(Some(&conn), remote, "no hello in time".into()),
    };
    let certs = conn
        .peer_identity()
        .and_then(|a| a.downcast::<Vec<CertificateDer<'static>>>().ok());
    let Some(cert) = certs.as_ref().and_then(|c| c.first()) else {
        return shared.refuse(Some(&conn), remote, "no client certificate".into());
    };
    if let Err(e) = cert_names_node(cert, id) {
        metrics::counter!("raft_net_tls_refused_total", "side" => "identity").increment(1);
        return shared.refuse(
            Some(&conn),
            remote,
            format!("claims to be node {id} but its certificate does not say so ({e})"),
        );
    }
    if id == shared.id {
        return shared.refuse(
            Some(&conn),
            remote,
            format!("claims to be this node ({id})"),
        );
    }
    let Some(peer) = shared.peer(id) else {
        return shared.refuse(
            Some(&conn),
            remote,
            format!("node {id} is not a known peer"),
        );
    };
    let mut buf = BytesMut::new();
    put_frame(&mut buf, HELLO_ACK);
    if ack.write_all(&buf).await.is_err() {
        return;
    }
    let _ = ack.finish();
    install(
        &shared,
        &peer,
        PeerConn {
            conn,
            dialed_by_me: false,
        },
    );
}

/// Reads every stream the peer opens on `conn`.
pub(crate) async fn serve_connection(shared: Arc<Shared>, peer: NodeId, conn: quinn::Connection) {
    loop {
        tokio::select! {
            s = conn.accept_uni() => match s {
                Ok(recv) => shared.spawn(read_messages(shared.clone(), peer, recv)),
                Err(_) => return,
            },
            s = conn.accept_bi() => match s {
                Ok((send, recv)) => shared.spawn(serve_bi(shared.clone(), peer, send, recv)),
                Err(_) => return,
            },
        }
    }
}

fn stream_error(
    node: NodeId,
    peer: NodeId,
    class: &str,
    kind: &str,
    detail: &dyn std::fmt::Display,
) {
    tracing::warn!(node = node.get(), peer = peer.get(), class, kind, %detail, "closing a peer stream");
    metrics::counter!("raft_net_stream_errors_total", "class" => class.to_owned(), "kind" => kind.to_owned())
        .increment(1);
}

/// A unidirectional stream of Raft messages.
async fn read_messages(shared: Arc<Shared>, peer: NodeId, mut recv: quinn::RecvStream) {
    let me = shared.id;
    let class = match read_class(&mut recv).await {
        Ok(Some(c @ (TrafficClass::Control | TrafficClass::Replication))) => c,
        Ok(other) => {
            stream_error(me, peer, "unknown", "bad_class", &format!("{other:?}"));
            let _ = recv.stop(STOP_BAD_CLASS.into());
            return;
        }
        Err(_) => return,
    };
    let inbound = match class {
        TrafficClass::Control => &shared.inbound_control,
        _ => &shared.inbound_replication,
    };
    let mut frames = FrameReader::new(&mut recv, shared.cfg.max_frame_bytes);
    loop {
        let frame = match frames.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                if !matches!(e, crate::frame::FrameError::Read(_)) {
                    stream_error(me, peer, class.as_str(), e.kind(), &e);
                    frames.stop(STOP_BAD_FRAME);
                }
                return;
            }
        };
        let m = match wire::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                stream_error(me, peer, class.as_str(), "undecodable", &e);
                frames.stop(STOP_BAD_FRAME);
                return;
            }
        };
        // The certificate authenticated the connection, not the message: a node may speak
        // only for itself, and only to us.
        if m.from != peer || m.to != me {
            stream_error(
                me,
                peer,
                class.as_str(),
                "misaddressed",
                &format!("message from {} to {}", m.from, m.to),
            );
            continue;
        }
        metrics::counter!("raft_net_messages_received_total", "class" => class.as_str())
            .increment(1);
        if inbound.send(m).await.is_err() {
            return;
        }
    }
}

/// A bidirectional stream: a forwarded request or a snapshot transfer.
async fn serve_bi(
    shared: Arc<Shared>,
    peer: NodeId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let me = shared.id;
    match read_class(&mut recv).await {
        Ok(Some(TrafficClass::Forward)) => {
            let body = match FrameReader::new(&mut recv, shared.cfg.max_frame_bytes)
                .next()
                .await
            {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => {
                    stream_error(me, peer, "forward", e.kind(), &e);
                    let _ = recv.stop(STOP_BAD_FRAME.into());
                    return;
                }
            };
            let (tx, rx) = oneshot::channel();
            let req = ForwardRequest {
                from: peer,
                body,
                reply: tx,
            };
            if shared.forwards.send(req).await.is_err() {
                return;
            }
            let Ok(Ok(resp)) = tokio::time::timeout(shared.cfg.forward_timeout, rx).await else {
                let _ = send.reset(STOP_BAD_FRAME.into());
                return;
            };
            let _ = send.set_priority(TrafficClass::Forward.priority());
            let mut buf = BytesMut::new();
            put_frame(&mut buf, &resp);
            if send.write_all(&buf).await.is_ok() {
                let _ = send.finish();
            }
        }
        Ok(Some(TrafficClass::Snapshot)) => {
            let _ = send.set_priority(TrafficClass::Snapshot.priority());
            let stream = SnapshotStream {
                peer,
                send: SnapshotSend(send),
                recv: SnapshotRecv(recv),
            };
            let _ = shared.snapshots.send(stream).await;
        }
        Ok(other) => {
            stream_error(me, peer, "unknown", "bad_class", &format!("{other:?}"));
            let _ = recv.stop(STOP_BAD_CLASS.into());
        }
        Err(_) => {}
    }
}
