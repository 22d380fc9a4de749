//! The client port: RESP2 over TCP, pipelined. Each connection reads requests as they come
//! and runs up to [`MAX_IN_FLIGHT`] of them at once (so a pipeline of writes shares one
//! replicated batch), while replies go out strictly in request order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::commands::{After, CommandLimits, execute};
use crate::handle::NodeHandle;
use crate::resp::{Limits, Reply, RequestParser};

/// Requests of one connection executing at once; reading pauses beyond it.
const MAX_IN_FLIGHT: usize = 1024;

type Pending = Pin<Box<dyn Future<Output = (Reply, After)> + Send>>;

/// Settings of the client port.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// Per-command limits.
    pub limits: CommandLimits,
    /// Most connections at once.
    pub max_clients: usize,
}

/// Accepts connections until `stop` turns true; then every connection finishes the requests
/// it has read, answers them and closes.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    settings: ClientSettings,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = tokio::select! {
            _ = stopped(&mut stop) => return,
            c = listener.accept() => c,
        };
        let (mut stream, peer) = match conn {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= settings.max_clients {
            metrics::counter!("raft_client_refused_total").increment(1);
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("raft_client_connections").increment(1.0);
        let (node, stop, open) = (node.clone(), stop.clone(), open.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, node, settings, stop).await {
                tracing::debug!(peer = %peer, error = %e, "client connection ended");
            }
            open.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("raft_client_connections").decrement(1.0);
        });
    }
}

async fn connection(
    stream: TcpStream,
    node: NodeHandle,
    settings: ClientSettings,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let mut parser = RequestParser::new(Limits {
        max_bulk_bytes: settings.limits.max_request_bytes,
        ..Limits::default()
    });
    let limits = settings.limits;
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut out = BytesMut::new();
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    // No more requests are read: EOF, QUIT, a protocol error or shutdown. What was read is
    // still answered.
    let mut closing = false;
    loop {
        while !closing && pending.len() < MAX_IN_FLIGHT {
            match parser.parse(&mut buf) {
                Ok(Some(args)) => {
                    let node = node.clone();
                    pending.push_back(Box::pin(async move { execute(&node, &limits, args).await }));
                }
                Ok(None) => break,
                Err(e) => {
                    // Malformed RESP: this connection only is closed, after an error.
                    metrics::counter!("raft_client_protocol_errors_total").increment(1);
                    tracing::debug!(error = %e, "client protocol error");
                    let reply = Reply::err(e.to_string());
                    pending.push_back(Box::pin(async move { (reply, After::Close) }));
                    closing = true;
                }
            }
        }
        if closing && pending.is_empty() {
            break;
        }
        tokio::select! {
            read = rd.read_buf(&mut buf), if !closing && pending.len() < MAX_IN_FLIGHT => {
                if read? == 0 {
                    closing = true;
                }
            }
            Some((reply, after)) = pending.next(), if !pending.is_empty() => {
                reply.encode(&mut out);
                let mut close = after == After::Close;
                // Everything else already answered goes out in the same write.
                while !close {
                    match futures_util::FutureExt::now_or_never(pending.next()) {
                        Some(Some((reply, after))) => {
                            reply.encode(&mut out);
                            close = after == After::Close;
                        }
                        _ => break,
                    }
                }
                wr.write_all(&out).await?;
                out.clear();
                if close {
                    break;
                }
            }
            _ = stopped(&mut stop), if !closing => closing = true,
        }
        // Keep the buffer from growing without bound between large requests.
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            buf = BytesMut::with_capacity(16 << 10);
        }
    }
    wr.shutdown().await
}

/// Resolves once `stop` is true (the guard `wait_for` returns is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
