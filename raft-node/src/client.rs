//! The client port: RESP2 (RESP3 after `HELLO 3`) over TCP, pipelined. A connection takes
//! every request that has arrived (up to [`MAX_BATCH`], and about `max_request_bytes` of
//! them) and runs them in order, as Redis does: consecutive writes go to the leader as one
//! ordered batch, consecutive reads share one read barrier, and the replies go out
//! together, a few megabytes at a time (see [`crate::commands::execute_pipeline`]). The
//! same port logic serves plain TCP and TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::commands::{After, CommandLimits, Pipeline, Session, execute_pipeline};
use crate::handle::NodeHandle;
use crate::resp::{Limits, Reply, RequestParser};

/// Most requests of one connection executed together (a longer pipeline is taken in parts).
const MAX_BATCH: usize = 1024;
/// What a client that has not logged in may send: enough for AUTH and HELLO, not for
/// filling the server's memory.
const UNAUTHENTICATED: Limits = Limits {
    max_bulk_bytes: 16 << 10,
    max_args: 10,
    max_inline_bytes: 16 << 10,
    max_request_bytes: 10 * (16 << 10),
    unauthenticated: true,
};
/// A TLS client that has not finished its handshake after this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the client port.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// Per-command limits.
    pub limits: CommandLimits,
    /// Most connections at once.
    pub max_clients: usize,
}

/// Accepts connections until `stop` turns true; then every connection finishes the requests
/// it has read, answers them and closes. `open` counts the connections still open (of every
/// client port). With `tls`, a connection speaks RESP inside TLS.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    node: NodeHandle,
    settings: ClientSettings,
    mut stop: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
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
        let (node, stop, open, tls) = (node.clone(), stop.clone(), open.clone(), tls.clone());
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    // The halves of a TcpStream need no lock between them.
                    let (rd, wr) = stream.into_split();
                    connection(rd, wr, peer, node, settings, stop).await
                }
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let (rd, wr) = tokio::io::split(stream);
                            connection(rd, wr, peer, node, settings, stop).await
                        }
                        Ok(Err(e)) => {
                            // A plain client on the TLS port, an unknown client certificate ...
                            metrics::counter!("raft_client_tls_handshake_failures_total")
                                .increment(1);
                            tracing::info!(client = %peer, error = %e, "client TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            metrics::counter!("raft_client_tls_handshake_failures_total")
                                .increment(1);
                            tracing::info!(client = %peer, "client TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(peer = %peer, error = %e, "client connection ended");
            }
            open.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("raft_client_connections").decrement(1.0);
        });
    }
}

/// `CLIENT ID`s, in connection order from 1 as in Redis.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

async fn connection(
    mut rd: impl AsyncRead + Unpin,
    mut wr: impl AsyncWrite + Unpin,
    peer: SocketAddr,
    node: NodeHandle,
    settings: ClientSettings,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut session = Session {
        identity: node.auth.initial(),
        peer: peer.ip(),
        id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
        name: None,
        protocol: Default::default(),
        multi: None,
    };
    let max = settings.limits.max_request_bytes;
    let full = Limits {
        max_bulk_bytes: max,
        max_request_bytes: max,
        // An inline request is one line: held to the request limit too.
        max_inline_bytes: Limits::default().max_inline_bytes.min(max),
        ..Limits::default()
    };
    let mut parser = RequestParser::new(full);
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut out = BytesMut::new();
    // No more requests are read: EOF, a protocol error or shutdown. What was read is
    // still answered.
    let mut closing = false;
    loop {
        let mut requests = Vec::new();
        let mut bad = None;
        // Until it logs in, a client may only send small requests (as Redis 7.2 limits
        // unauthenticated ones), one at a time so that an AUTH runs before the next request
        // is read with the limits it earns.
        let batch = if session.identity.is_some() {
            parser.set_limits(full);
            MAX_BATCH
        } else {
            parser.set_limits(UNAUTHENTICATED);
            1
        };
        // Requests held at once stay within about two requests' worth of bytes.
        let mut held = 0;
        while requests.len() < batch && held < settings.limits.max_request_bytes {
            match parser.parse(&mut buf) {
                Ok(Some(request)) => {
                    held += request.held_bytes();
                    requests.push(request);
                }
                Ok(None) => break,
                Err(e) => {
                    // Malformed RESP: this connection only is closed, after an error.
                    metrics::counter!("raft_client_protocol_errors_total").increment(1);
                    tracing::debug!(error = %e, "client protocol error");
                    bad = Some(Reply::err(e.to_string()));
                    break;
                }
            }
        }
        if !requests.is_empty() {
            let mut pipeline = Pipeline::new(&settings.limits, requests);
            let mut close = false;
            while !pipeline.is_empty() && !close {
                let replies = execute_pipeline(&node, &mut session, &mut pipeline).await;
                for (reply, after) in replies {
                    reply.encode_as(session.protocol, &mut out);
                    close |= after == After::Close;
                }
                if !pipeline.is_empty() && !close {
                    // Over the reply budget: these go out before the rest runs.
                    wr.write_all(&out).await?;
                    out.clear();
                }
            }
            if close {
                wr.write_all(&out).await?;
                break;
            }
        }
        if let Some(reply) = bad {
            reply.encode_as(session.protocol, &mut out);
            wr.write_all(&out).await?;
            break;
        }
        if !out.is_empty() {
            write_out(&mut wr, &mut out).await?;
            // More may have been parsed-ready already: answer it before reading again.
            continue;
        }
        if closing {
            break;
        }
        // Keep the buffer from staying large after a big request.
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            buf = BytesMut::with_capacity(16 << 10);
        }
        tokio::select! {
            read = rd.read_buf(&mut buf) => {
                if read? == 0 {
                    closing = true;
                }
            }
            _ = stopped(&mut stop) => closing = true,
        }
    }
    wr.shutdown().await
}

/// Writes and empties `out`, which does not keep the size of a large reply once a batch
/// is answered.
async fn write_out(wr: &mut (impl AsyncWrite + Unpin), out: &mut BytesMut) -> std::io::Result<()> {
    wr.write_all(out).await?;
    if out.capacity() > 1 << 20 {
        *out = BytesMut::new();
    } else {
        out.clear();
    }
    Ok(())
}

/// Resolves once `stop` is true (the guard `wait_for` returns is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
