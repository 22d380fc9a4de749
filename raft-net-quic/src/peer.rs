//! One peer: its address, its current connection (at most one, see [`install`]), and the
//! tasks that dial it and feed its streams.

use crate::frame::{TrafficClass, put_frame};
use crate::transport::Shared;
use bytes::{BufMut, BytesMut};
use raft_core::{Message, NodeId, wire};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Close codes on the wire.
pub(crate) const CLOSE_DUPLICATE: u32 = 1;
pub(crate) const CLOSE_REFUSED: u32 = 2;
pub(crate) const CLOSE_SHUTDOWN: u32 = 3;
pub(crate) const CLOSE_REMOVED: u32 = 4;
/// Stream stop codes.
pub(crate) const STOP_BAD_FRAME: u32 = 10;
pub(crate) const STOP_BAD_CLASS: u32 = 11;

/// Most bytes of queued messages written to a stream in one go.
const WRITE_BATCH_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub(crate) struct PeerConn {
    pub(crate) conn: quinn::Connection,
    /// Whether this node dialed it (the tie-break needs to know who did).
    pub(crate) dialed_by_me: bool,
}

impl PeerConn {
    fn live(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

pub(crate) struct Peer {
    pub(crate) id: NodeId,
    pub(crate) addr: watch::Sender<SocketAddr>,
    pub(crate) conn: watch::Sender<Option<PeerConn>>,
    pub(crate) control: mpsc::Sender<Message>,
    pub(crate) replication: mpsc::Sender<Message>,
    /// The dialer and the senders; they hold the peer, so they end only when aborted.
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Peer {
    /// A new peer and its tasks (dialer, one sender per message class).
    pub(crate) fn spawn(shared: &Arc<Shared>, id: NodeId, addr: SocketAddr) -> Arc<Peer> {
        let (control, control_rx) = mpsc::channel(shared.cfg.control_queue);
        let (replication, replication_rx) = mpsc::channel(shared.cfg.replication_queue);
        let peer = Arc::new(Peer {
            id,
            addr: watch::Sender::new(addr),
            conn: watch::Sender::new(None),
            control,
            replication,
            tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        });
        {
            let mut tasks = peer.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.spawn(dial_loop(shared.clone(), peer.clone()));
            tasks.spawn(sender(peer.clone(), TrafficClass::Control, control_rx));
            tasks.spawn(sender(
                peer.clone(),
                TrafficClass::Replication,
                replication_rx,
            ));
        }
        peer
    }

    /// Stops the peer's tasks and closes its connection.
    /// Returns the aborted tasks, to wait for.
    pub(crate) fn stop(&self, code: u32, reason: &[u8]) -> tokio::task::JoinSet<()> {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        tasks.abort_all();
        if let Some(c) = self.conn.send_replace(None) {
            c.conn.close(code.into(), reason);
        }
        tasks
    }

    /// The live connection, if any.
    pub(crate) fn current(&self) -> Option<quinn::Connection> {
        self.conn
            .borrow()
            .as_ref()
            .filter(|c| c.live())
            .map(|c| c.conn.clone())
    }

    /// The live connection, waiting up to `limit` for one.
    pub(crate) async fn connection_within(&self, limit: Duration) -> Option<quinn::Connection> {
        let mut rx = self.conn.subscribe();
        let wait = rx.wait_for(|c| c.as_ref().is_some_and(PeerConn::live));
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(c)) => c.as_ref().map(|c| c.conn.clone()),
            _ => None,
        }
    }

    fn clear_if(&self, stable_id: usize) {
        self.conn.send_if_modified(|cur| {
            if cur
                .as_ref()
                .is_some_and(|c| c.conn.stable_id() == stable_id)
            {
                *cur = None;
                true
            } else {
                false
            }
        });
    }
}

/// Of two live connections between the same pair, the one dialed by the lower id wins, so
/// both ends keep the same one when they dialed each other at once. A connection in the same
/// direction as the current one replaces it (the peer reconnected).
fn existing_wins(me: NodeId, them: NodeId, existing: &PeerConn, new: &PeerConn) -> bool {
    if existing.dialed_by_me == new.dialed_by_me {
        return false;
    }
    let existing_dialer = if existing.dialed_by_me { me } else { them };
    existing_dialer == me.min(them)
}

/// Makes `new` the peer's connection, unless the current one wins the tie-break.
pub(crate) fn install(shared: &Arc<Shared>, peer: &Arc<Peer>, new: PeerConn) {
    let mut replaced = None;
    let mut accepted = true;
    peer.conn.send_modify(|cur| match cur {
        Some(c) if c.live() && existing_wins(shared.id, peer.id, c, &new) => accepted = false,
        _ => replaced = cur.replace(new.clone()),
    });
    if !accepted {
        tracing::debug!(
            node = shared.id.get(),
            peer = peer.id.get(),
            "dropping duplicate connection"
        );
        new.conn
            .close(CLOSE_DUPLICATE.into(), b"duplicate connection");
        return;
    }
    if let Some(old) = replaced.filter(|o| o.conn.stable_id() != new.conn.stable_id()) {
        // New streams go to the new connection from now on; requests already in flight on
        // the old one (forwarded writes, whose outcome would otherwise be unknown) get the
        // forward timeout to finish before it is closed.
        let grace = shared.cfg.forward_timeout;
        shared.spawn(async move {
            tokio::time::sleep(grace).await;
            old.conn.close(CLOSE_DUPLICATE.into(), b"replaced");
        });
    }
    let remote = new.conn.remote_address();
    tracing::info!(node = shared.id.get(), peer = peer.id.get(), %remote, dialed = new.dialed_by_me, "peer connected");
    metrics::counter!("raft_net_connections_total").increment(1);
    shared.event(crate::PeerEvent::Connected {
        peer: peer.id,
        remote,
        dialed: new.dialed_by_me,
    });
    shared.spawn(crate::transport::serve_connection(
        shared.clone(),
        peer.id,
        new.conn.clone(),
    ));
    let (shared2, peer2, conn) = (shared.clone(), peer.clone(), new.conn);
    shared.spawn(async move {
        let reason = conn.closed().await;
        peer2.clear_if(conn.stable_id());
        tracing::info!(node = shared2.id.get(), peer = peer2.id.get(), %reason, "peer disconnected");
        shared2.event(crate::PeerEvent::Disconnected {
            peer: peer2.id,
            reason: reason.to_string(),
        });
    });
}

/// Exponential backoff with full jitter (no shared RNG: a per-peer xorshift).
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let cap = self
            .min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = (self.rng % 1000) as u32;
        self.min.min(cap) + (cap.saturating_sub(self.min)) * jitter / 1000
    }
}

async fn dial_loop(shared: Arc<Shared>, peer: Arc<Peer>) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ peer.id.get().wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut backoff = Backoff {
        min: shared.cfg.backoff_min,
        max: shared.cfg.backoff_max,
        attempt: 0,
        rng: seed | 1,
    };
    let mut conn_rx = peer.conn.subscribe();
    let mut addr_rx = peer.addr.subscribe();
    if shared.id > peer.id {
        // Give the lower id's dial a head start: when both ends start together, its
        // connection is the one the tie-break keeps anyway, and this end need not dial at all.
        let head_start = shared.cfg.backoff_min * 5;
        let _ = tokio::time::timeout(
            head_start,
            conn_rx.wait_for(|c| c.as_ref().is_some_and(PeerConn::live)),
        )
        .await;
    }
    loop {
        if conn_rx
            .wait_for(|c| c.as_ref().is_none_or(|c| !c.live()))
            .await
            .is_err()
        {
            return;
        }
        let addr = *addr_rx.borrow_and_update();
        match crate::transport::dial(&shared, peer.id, addr).await {
            Ok(conn) => {
                backoff.attempt = 0;
                install(
                    &shared,
                    &peer,
                    PeerConn {
                        conn,
                        dialed_by_me: true,
                    },
                );
            }
            Err(e) => {
                if e.starts_with("refused by the peer") {
                    tracing::warn!(node = shared.id.get(), peer = peer.id.get(), %addr, error = %e, "peer refused this node");
                    shared.event(crate::PeerEvent::Refused {
                        remote: addr,
                        reason: e.clone(),
                    });
                }
                let delay = backoff.next();
                tracing::debug!(node = shared.id.get(), peer = peer.id.get(), %addr, error = %e, ?delay, "dial failed");
                metrics::counter!("raft_net_dial_failures_total").increment(1);
                // A new address is worth trying at once.
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = addr_rx.changed() => {}
                }
            }
        }
    }
}

/// Feeds one class of messages to the peer over its own stream of the current connection,
/// reopening the stream on every new connection. Messages taken while the connection fails
/// are lost; Raft retransmits what matters.
async fn sender(peer: Arc<Peer>, class: TrafficClass, mut rx: mpsc::Receiver<Message>) {
    let mut conn_rx = peer.conn.subscribe();
    let mut buf = BytesMut::new();
    loop {
        let conn = match conn_rx
            .wait_for(|c| c.as_ref().is_some_and(PeerConn::live))
            .await
        {
            // Checked by the predicate.
            Ok(c) => c.as_ref().expect("live connection").conn.clone(),
            Err(_) => return,
        };
        let Ok(mut stream) = conn.open_uni().await else {
            let _ = conn_rx.changed().await;
            continue;
        };
        let _ = stream.set_priority(class.priority());
        if stream.write_all(&[class as u8]).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                biased;
                changed = conn_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let same = conn_rx
                        .borrow()
                        .as_ref()
                        .is_some_and(|c| c.conn.stable_id() == conn.stable_id());
                    if !same {
                        break;
                    }
                }
                m = rx.recv() => {
                    let Some(m) = m else { return };
                    buf.clear();
                    put_frame(&mut buf, &wire::encode(&m));
                    let mut n = 1u64;
                    while buf.len() < WRITE_BATCH_BYTES {
                        let Ok(m) = rx.try_recv() else { break };
                        put_frame(&mut buf, &wire::encode(&m));
                        n += 1;
                    }
                    if stream.write_all(&buf).await.is_err() {
                        metrics::counter!("raft_net_messages_lost_total", "class" => class.as_str()).increment(n);
                        break;
                    }
                    metrics::counter!("raft_net_messages_sent_total", "class" => class.as_str()).increment(n);
                }
            }
        }
    }
}

/// The class a message travels in.
pub(crate) fn class_of(m: &Message) -> TrafficClass {
    use raft_core::MessageBody as B;
    match &m.body {
        B::AppendEntries(_) | B::AppendEntriesResponse(_) => TrafficClass::Replication,
        _ => TrafficClass::Control,
    }
}

pub(crate) fn put_class(buf: &mut BytesMut, class: TrafficClass) {
    buf.put_u8(class as u8);
}
