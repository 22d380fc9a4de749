//! The streams the caller sees for forwarded requests and snapshots, with QUIC hidden.

use bytes::Bytes;
use raft_core::NodeId;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A client request a peer forwarded to this node. Answer it with [`ForwardRequest::reply`];
/// dropping it unanswered resets the peer's stream (it sees an error, not a hang).
#[derive(Debug)]
pub struct ForwardRequest {
    /// The node that forwarded it (authenticated by its certificate).
    pub from: NodeId,
    /// The request, opaque to the transport.
    pub body: Bytes,
    pub(crate) reply: oneshot::Sender<Bytes>,
}

impl ForwardRequest {
    /// Sends the response back to the forwarding node.
    pub fn reply(self, response: Bytes) {
        let _ = self.reply.send(response);
    }
}

/// One snapshot transfer: a byte stream each way, for `raft-snapshot` to drive.
#[derive(Debug)]
pub struct SnapshotStream {
    /// The other node.
    pub peer: NodeId,
    /// Bytes to the peer.
    pub send: SnapshotSend,
    /// Bytes from the peer.
    pub recv: SnapshotRecv,
}

/// The sending half of a [`SnapshotStream`] ([`AsyncWrite`]; shut it down to finish).
#[derive(Debug)]
pub struct SnapshotSend(pub(crate) quinn::SendStream);

/// The receiving half of a [`SnapshotStream`] ([`AsyncRead`]).
#[derive(Debug)]
pub struct SnapshotRecv(pub(crate) quinn::RecvStream);

impl AsyncWrite for SnapshotSend {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

impl AsyncRead for SnapshotRecv {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.0), cx, buf)
    }
}
