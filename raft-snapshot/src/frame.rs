//! Length-prefixed, checksummed frames: `[length: u32 BE][crc32c of body: u32 BE][body]`.
//!
//! The length is checked against the maximum before anything is allocated; a frame whose
//! checksum fails was read in full, so the stream stays aligned and the caller may ask for a
//! resend. The same encoding stores the manifest on disk.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::error::Error;

/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 8;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length exceeds the maximum frame size.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// The declared body length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The body does not match its checksum (corrupted in transit).
    #[error("frame checksum mismatch (header {stored:#010x}, body {computed:#010x})")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the body as received.
        computed: u32,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The stream or buffer ended inside a frame.
    #[error("truncated frame")]
    Truncated,
    /// A message of a kind this version does not know (or none at all).
    #[error("frame carries no message this version knows")]
    Empty,
}

/// Encodes `m` as one frame, refusing bodies longer than `max`.
pub(crate) fn encode<M: prost::Message>(m: &M, max: usize) -> Result<Bytes, FrameError> {
    let len = m.encoded_len();
    if len > max {
        return Err(FrameError::Oversized {
            len: len as u64,
            max,
        });
    }
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    buf.put_u32(len as u32);
    buf.put_u32(0);
    // A BytesMut grows as needed, so encoding cannot run out of room.
    m.encode(&mut buf).map_err(|_| FrameError::Oversized {
        len: len as u64,
        max,
    })?;
    let crc = crc32c::crc32c(&buf[HEADER_LEN..]);
    buf[4..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a buffer that holds exactly one frame (the manifest file).
pub(crate) fn decode_exact(buf: &[u8], max: usize) -> Result<Bytes, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let (len, stored) = parse_header(buf[..HEADER_LEN].try_into().unwrap_or([0; 8]));
    check_len(len, max)?;
    let body = &buf[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(FrameError::Truncated);
    }
    check_crc(stored, body)?;
    Ok(Bytes::copy_from_slice(body))
}

fn parse_header(h: [u8; HEADER_LEN]) -> (u64, u32) {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    (u64::from(len), crc)
}

fn check_len(len: u64, max: usize) -> Result<(), FrameError> {
    if len > max as u64 {
        return Err(FrameError::Oversized { len, max });
    }
    Ok(())
}

fn check_crc(stored: u32, body: &[u8]) -> Result<(), FrameError> {
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok(())
}

/// Why reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream failed.
    Io(std::io::Error),
    /// The frame is bad (see [`FrameError`]); only `Checksum` leaves the stream aligned.
    Frame(FrameError),
}

/// A frame as read: its body and the checksum its header claims.
pub(crate) struct Frame {
    pub body: Bytes,
    pub crc: u32,
}

impl Frame {
    /// Checks the body against the header's checksum.
    pub(crate) fn verify(&self) -> Result<(), FrameError> {
        check_crc(self.crc, &self.body)
    }
}

/// Reads frames from a byte stream.
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> FrameReader<R> {
        FrameReader {
            inner: BufReader::with_capacity(64 << 10, inner),
            max,
        }
    }

    /// The next frame, checksum verified; `Ok(None)` when the stream ends cleanly between
    /// frames.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        let Some(frame) = self.next_unverified().await? else {
            return Ok(None);
        };
        frame.verify().map_err(ReadError::Frame)?;
        Ok(Some(frame.body))
    }

    /// The next frame without checking its checksum (the caller does, see
    /// [`Frame::verify`]).
    pub(crate) async fn next_unverified(&mut self) -> Result<Option<Frame>, ReadError> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = self
                .inner
                .read(&mut header[got..])
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(ReadError::Frame(FrameError::Truncated))
                };
            }
            got += n;
        }
        let (len, crc) = parse_header(header);
        check_len(len, self.max).map_err(ReadError::Frame)?;
        let len = len as usize;
        // Read into uninitialized capacity: no zeroing of a megabyte per chunk.
        let mut body = BytesMut::with_capacity(len);
        while body.len() < len {
            let want = (len - body.len()) as u64;
            let n = (&mut self.inner)
                .take(want)
                .read_buf(&mut body)
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Frame(FrameError::Truncated));
            }
        }
        Ok(Some(Frame {
            body: body.freeze(),
            crc,
        }))
    }
}

/// Reads and decodes one message; gives up after `stall` if given. A clean end of the stream
/// is [`Error::Closed`].
pub(crate) async fn read_msg<R, M>(
    frames: &mut FrameReader<R>,
    stall: Option<Duration>,
    decode: fn(Bytes) -> Result<M, FrameError>,
) -> crate::Result<M>
where
    R: AsyncRead + Unpin,
{
    let next = match stall {
        Some(t) => tokio::time::timeout(t, frames.next())
            .await
            .map_err(|_| Error::Stalled(t))?,
        None => frames.next().await,
    };
    match next {
        Ok(Some(body)) => Ok(decode(body)?),
        Ok(None) => Err(Error::Closed),
        Err(ReadError::Io(e)) => Err(Error::Stream(e)),
        Err(ReadError::Frame(e)) => Err(Error::Frame(e)),
    }
}

/// Writes one encoded frame and flushes, giving up after `stall`.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
    stall: Duration,
) -> crate::Result<()> {
    write_parts(w, &[frame], stall).await
}

/// Writes a frame given in parts (e.g. a chunk's head and its data) and flushes, giving up
/// after `stall`.
pub(crate) async fn write_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    parts: &[&[u8]],
    stall: Duration,
) -> crate::Result<()> {
    tokio::time::timeout(stall, async {
        for p in parts {
            w.write_all(p).await?;
        }
        w.flush().await
    })
    .await
    .map_err(|_| Error::Stalled(stall))?
    .map_err(Error::Stream)
}

/// Reads one frame without checking its checksum; gives up after `stall`. A clean end of the
/// stream is [`Error::Closed`].
pub(crate) async fn read_unverified<R: AsyncRead + Unpin>(
    frames: &mut FrameReader<R>,
    stall: Duration,
) -> crate::Result<Frame> {
    match tokio::time::timeout(stall, frames.next_unverified())
        .await
        .map_err(|_| Error::Stalled(stall))?
    {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(Error::Closed),
        Err(ReadError::Io(e)) => Err(Error::Stream(e)),
        Err(ReadError::Frame(e)) => Err(Error::Frame(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, ::prost::Message)]
    struct Probe {
        #[prost(bytes = "vec", tag = "1")]
        data: Vec<u8>,
    }

    fn probe(n: usize) -> Probe {
        Probe { data: vec![7u8; n] }
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Option<Bytes>, ReadError>> {
        let mut r = FrameReader::new(&bytes[..], max);
        let mut out = Vec::new();
        loop {
            let x = r.next().await;
            let stop = !matches!(
                x,
                Ok(Some(_)) | Err(ReadError::Frame(FrameError::Checksum { .. }))
            );
            out.push(x);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn round_trip_and_clean_end() {
        let mut bytes = encode(&probe(10), 100).unwrap().to_vec();
        bytes.extend_from_slice(&encode(&probe(0), 100).unwrap());
        let got = read_all(bytes, 100).await;
        assert_eq!(got.len(), 3);
        let first = got[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            <Probe as prost::Message>::decode(first.clone()).unwrap(),
            probe(10)
        );
        assert!(matches!(got[2], Ok(None)));
    }

    #[tokio::test]
    async fn oversized_refused_before_allocation() {
        assert!(matches!(
            encode(&probe(200), 100),
            Err(FrameError::Oversized { .. })
        ));
        // A header claiming 4 GiB: refused from the header alone.
        let bytes = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let got = read_all(bytes, 1 << 20).await;
        assert!(matches!(
            got[0],
            Err(ReadError::Frame(FrameError::Oversized {
                len: 0xffff_ffff,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn flipped_byte_is_a_checksum_error_and_the_stream_stays_aligned() {
        let mut bytes = encode(&probe(50), 100).unwrap().to_vec();
        bytes[HEADER_LEN + 20] ^= 0x10;
        bytes.extend_from_slice(&encode(&probe(3), 100).unwrap());
        let got = read_all(bytes, 100).await;
        assert!(matches!(
            got[0],
            Err(ReadError::Frame(FrameError::Checksum { .. }))
        ));
        assert!(matches!(got[1], Ok(Some(_))));
        assert!(matches!(got[2], Ok(None)));
    }

    #[tokio::test]
    async fn truncation_anywhere_is_an_error() {
        let bytes = encode(&probe(30), 100).unwrap().to_vec();
        for cut in 1..bytes.len() {
            let got = read_all(bytes[..cut].to_vec(), 100).await;
            assert!(
                matches!(got[0], Err(ReadError::Frame(FrameError::Truncated))),
                "cut at {cut}"
            );
            assert!(matches!(
                decode_exact(&bytes[..cut], 100),
                Err(FrameError::Truncated)
            ));
        }
        assert!(decode_exact(&bytes, 100).is_ok());
    }
}
