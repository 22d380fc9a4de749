//! Framing on a stream: a class byte when the stream opens, then frames of a 4-byte
//! big-endian length and that many bytes. Lengths above the configured maximum are refused
//! before any allocation, so a hostile peer cannot make a node buffer more than one frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use quinn::{ReadExactError, RecvStream};
use raft_core::NodeId;

/// What a stream carries, written as its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TrafficClass {
    /// Who the dialer is: the first stream of a connection (one frame).
    Hello = 0,
    /// Votes, pre-votes, heartbeats, ReadIndex and their replies: small and urgent.
    Control = 1,
    /// AppendEntries and replies: ordered, pipelined, bulky.
    Replication = 2,
    /// Client requests forwarded to the leader (one request/response per stream).
    Forward = 3,
    /// One snapshot transfer per stream.
    Snapshot = 4,
}

impl TrafficClass {
    pub(crate) fn from_byte(b: u8) -> Option<TrafficClass> {
        Some(match b {
            0 => TrafficClass::Hello,
            1 => TrafficClass::Control,
            2 => TrafficClass::Replication,
            3 => TrafficClass::Forward,
            4 => TrafficClass::Snapshot,
            _ => return None,
        })
    }

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficClass::Hello => "hello",
            TrafficClass::Control => "control",
            TrafficClass::Replication => "replication",
            TrafficClass::Forward => "forward",
            TrafficClass::Snapshot => "snapshot",
        }
    }

    /// quinn's send priority: control first, snapshots last.
    pub(crate) fn priority(self) -> i32 {
        match self {
            TrafficClass::Hello | TrafficClass::Control => 100,
            TrafficClass::Forward => 50,
            TrafficClass::Replication => 10,
            TrafficClass::Snapshot => 0,
        }
    }
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
}

impl FrameError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "too_large",
            FrameError::Truncated => "truncated",
            FrameError::Read(_) => "read",
        }
    }
}

/// Appends one frame holding `payload` to `buf`.
pub(crate) fn put_frame(buf: &mut BytesMut, payload: &[u8]) {
    buf.reserve(4 + payload.len());
    // Frames are far below 4 GiB: the sender checks the maximum before framing.
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
}

/// Reads frames from a stream through a buffer: one quinn read yields many small frames
/// (reading each length and body separately costs two stream reads per message). Holds at
/// most one frame plus one chunk.
pub(crate) struct FrameReader<'a> {
    recv: &'a mut RecvStream,
    buf: BytesMut,
    max: usize,
}

impl<'a> FrameReader<'a> {
    pub(crate) fn new(recv: &'a mut RecvStream, max: usize) -> FrameReader<'a> {
        FrameReader {
            recv,
            buf: BytesMut::with_capacity(max.min(16 << 10)),
            max,
        }
    }

    /// The next frame; `None` at a clean end of stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if len > self.max {
                    return Err(FrameError::TooLarge { len, max: self.max });
                }
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            match self.recv.read_chunk(64 << 10, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(FrameError::Truncated),
            }
        }
    }

    /// Asks the peer to stop sending on this stream.
    pub(crate) fn stop(&mut self, code: u32) {
        let _ = self.recv.stop(code.into());
    }
}

/// Reads the class byte that opens a stream.
pub(crate) async fn read_class(recv: &mut RecvStream) -> Result<Option<TrafficClass>, FrameError> {
    let mut b = [0u8; 1];
    match recv.read_exact(&mut b).await {
        Ok(()) => Ok(TrafficClass::from_byte(b[0])),
        Err(ReadExactError::FinishedEarly(_)) => Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => Err(e.into()),
    }
}

const HELLO_MAGIC: &[u8; 4] = b"RAFT";
const HELLO_VERSION: u16 = 1;

/// The hello frame's payload: magic, version, the dialer's node id.
pub(crate) fn hello(id: NodeId) -> Vec<u8> {
    let mut v = Vec::with_capacity(14);
    v.extend_from_slice(HELLO_MAGIC);
    v.extend_from_slice(&HELLO_VERSION.to_be_bytes());
    v.extend_from_slice(&id.get().to_be_bytes());
    v
}

pub(crate) fn parse_hello(payload: &[u8]) -> Result<NodeId, String> {
    if payload.len() != 14 || &payload[..4] != HELLO_MAGIC {
        return Err("not a raft peer hello".into());
    }
    let version = u16::from_be_bytes([payload[4], payload[5]]);
    if version != HELLO_VERSION {
        return Err(format!(
            "peer protocol version {version}, this node speaks {HELLO_VERSION}"
        ));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&payload[6..]);
    match u64::from_be_bytes(id) {
        0 => Err("node id 0".into()),
        id => Ok(NodeId(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_garbage() {
        assert_eq!(parse_hello(&hello(NodeId(7))).unwrap(), NodeId(7));
        assert!(parse_hello(b"RAFT").is_err());
        assert!(parse_hello(&[0u8; 14]).is_err());
        let mut v = hello(NodeId(7));
        v[5] = 9;
        assert!(parse_hello(&v).unwrap_err().contains("version"));
        assert!(parse_hello(&hello(NodeId(0))).is_err());
    }

    #[test]
    fn class_bytes_round_trip() {
        for c in [
            TrafficClass::Hello,
            TrafficClass::Control,
            TrafficClass::Replication,
            TrafficClass::Forward,
            TrafficClass::Snapshot,
        ] {
            assert_eq!(TrafficClass::from_byte(c as u8), Some(c));
        }
        assert_eq!(TrafficClass::from_byte(200), None);
    }
}
