//! The wire messages (protobuf via prost, written by hand; no protoc).
//!
//! ```text
//! // sender -> receiver
//! message ToReceiver { oneof msg { Offer offer = 1; Chunk chunk = 2; } }
//! message Offer { Manifest manifest = 1; }
//! message Chunk { uint64 epoch = 1; uint32 file = 2; uint64 offset = 3; fixed32 crc32c = 4; bytes data = 5; }
//! // receiver -> sender
//! message ToSender { oneof msg { Accept accept = 1; Nack nack = 2; Installed installed = 3; Refused refused = 4; } }
//! message Accept { repeated uint64 offsets = 1; uint64 max_chunk = 2; }  // verified bytes per file
//! message Nack { uint64 epoch = 1; uint32 file = 2; uint64 offset = 3; } // resend from here, tagged epoch
//! message Installed {}
//! message Refused { uint32 code = 1; string detail = 2; }
//! // also the MANIFEST file on disk
//! message Manifest { uint32 version = 1; uint64 index = 2; uint64 term = 3; repeated uint64 voters = 4;
//!                    repeated File files = 5; }
//! message File { string name = 1; uint64 size = 2; fixed32 crc32c = 3; }
//! ```
//!
//! Every message travels in a [`crate::frame`]. A chunk carries the CRC32C of its data; the
//! frame's checksum covers the headers too, so a flipped bit in an offset is caught as well.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{Frame, FrameError, HEADER_LEN};

/// Bytes a chunk frame adds to its data (frame header, field tags and varints), rounded up.
pub(crate) const CHUNK_OVERHEAD: usize = 64;

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbFile {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint64, tag = "2")]
    pub size: u64,
    #[prost(fixed32, tag = "3")]
    pub crc32c: u32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbManifest {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    #[prost(uint64, tag = "3")]
    pub term: u64,
    #[prost(uint64, repeated, tag = "4")]
    pub voters: Vec<u64>,
    #[prost(message, repeated, tag = "5")]
    pub files: Vec<PbFile>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbOffer {
    #[prost(message, optional, tag = "1")]
    pub manifest: Option<PbManifest>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbChunk {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    #[prost(uint32, tag = "2")]
    pub file: u32,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    #[prost(fixed32, tag = "4")]
    pub crc32c: u32,
    #[prost(bytes = "bytes", tag = "5")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbAccept {
    #[prost(uint64, repeated, tag = "1")]
    pub offsets: Vec<u64>,
    #[prost(uint64, tag = "2")]
    pub max_chunk: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbNack {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    #[prost(uint32, tag = "2")]
    pub file: u32,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbInstalled {}

#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct PbRefused {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub detail: String,
}

/// What the sender sends.
#[derive(Clone, PartialEq, ::prost::Oneof)]
pub(crate) enum ToReceiver {
    #[prost(message, tag = "1")]
    Offer(PbOffer),
    #[prost(message, tag = "2")]
    Chunk(PbChunk),
}

/// What the receiver sends.
#[derive(Clone, PartialEq, ::prost::Oneof)]
pub(crate) enum ToSender {
    #[prost(message, tag = "1")]
    Accept(PbAccept),
    #[prost(message, tag = "2")]
    Nack(PbNack),
    #[prost(message, tag = "3")]
    Installed(PbInstalled),
    #[prost(message, tag = "4")]
    Refused(PbRefused),
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbToReceiver {
    #[prost(oneof = "ToReceiver", tags = "1, 2")]
    msg: Option<ToReceiver>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbToSender {
    #[prost(oneof = "ToSender", tags = "1, 2, 3, 4")]
    msg: Option<ToSender>,
}

impl ToReceiver {
    pub(crate) fn into_frame(self, max: usize) -> Result<Bytes, FrameError> {
        crate::frame::encode(&PbToReceiver { msg: Some(self) }, max)
    }

    pub(crate) fn from_frame(body: Bytes) -> Result<ToReceiver, FrameError> {
        <PbToReceiver as prost::Message>::decode(body)?
            .msg
            .ok_or(FrameError::Empty)
    }
}

impl ToSender {
    pub(crate) fn into_frame(self, max: usize) -> Result<Bytes, FrameError> {
        crate::frame::encode(&PbToSender { msg: Some(self) }, max)
    }

    pub(crate) fn from_frame(body: Bytes) -> Result<ToSender, FrameError> {
        <PbToSender as prost::Message>::decode(body)?
            .msg
            .ok_or(FrameError::Empty)
    }
}

/// The start of a chunk frame, up to its data: the frame is this followed by `data_len`
/// bytes of data whose CRC32C is `crc` (the same bytes as `ToReceiver::Chunk(..)` encoded
/// with [`ToReceiver::into_frame`]). Lets the sender write the data without copying it into
/// a frame buffer and derive the frame checksum without reading the data again.
pub(crate) fn chunk_frame_head(
    epoch: u64,
    file: u32,
    offset: u64,
    crc: u32,
    data_len: usize,
) -> Bytes {
    // PbChunk's fields before the data's bytes, in tag order; zero values are omitted (proto3).
    let mut fields = BytesMut::with_capacity(48);
    if epoch != 0 {
        fields.put_u8(1 << 3); // epoch: varint
        put_varint(&mut fields, epoch);
    }
    if file != 0 {
        fields.put_u8(2 << 3); // file: varint
        put_varint(&mut fields, u64::from(file));
    }
    if offset != 0 {
        fields.put_u8(3 << 3); // offset: varint
        put_varint(&mut fields, offset);
    }
    if crc != 0 {
        fields.put_u8((4 << 3) | 5); // crc32c: fixed32
        fields.put_u32_le(crc);
    }
    if data_len != 0 {
        fields.put_u8((5 << 3) | 2); // data: length-delimited
        put_varint(&mut fields, data_len as u64);
    }
    let mut head = BytesMut::with_capacity(HEADER_LEN + 11 + fields.len());
    head.put_u64(0); // the frame header, filled in below
    head.put_u8((2 << 3) | 2); // ToReceiver.chunk: length-delimited
    put_varint(&mut head, (fields.len() + data_len) as u64);
    head.extend_from_slice(&fields);
    let body_len = head.len() - HEADER_LEN + data_len;
    let body_crc = crate::crc::combine(crc32c::crc32c(&head[HEADER_LEN..]), crc, data_len);
    head[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    head[4..HEADER_LEN].copy_from_slice(&body_crc.to_be_bytes());
    head.freeze()
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Checks a decoded chunk against its frame's checksum with one pass over the data (when the
/// data is the tail of the frame body, as this crate's senders encode it); returns the CRC32C
/// of the data.
pub(crate) fn verify_chunk(frame: &Frame, data: &Bytes) -> Result<u32, FrameError> {
    let data_crc = crc32c::crc32c(data);
    let start = (data.as_ptr() as usize).wrapping_sub(frame.body.as_ptr() as usize);
    let computed = if !data.is_empty() && start.checked_add(data.len()) == Some(frame.body.len()) {
        crate::crc::combine(crc32c::crc32c(&frame.body[..start]), data_crc, data.len())
    } else {
        crc32c::crc32c(&frame.body)
    };
    if computed != frame.crc {
        return Err(FrameError::Checksum {
            stored: frame.crc,
            computed,
        });
    }
    Ok(data_crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_exact;

    #[test]
    fn chunk_overhead_bounds_the_frame() {
        let data = Bytes::from(vec![1u8; 4 << 20]);
        let chunk = ToReceiver::Chunk(PbChunk {
            epoch: u64::MAX,
            file: u32::MAX,
            offset: u64::MAX,
            crc32c: u32::MAX,
            data: data.clone(),
        });
        let frame = chunk.clone().into_frame(usize::MAX).unwrap();
        assert!(frame.len() <= data.len() + CHUNK_OVERHEAD);
        let body = decode_exact(&frame, usize::MAX).unwrap();
        assert_eq!(body.len(), frame.len() - HEADER_LEN);
        assert_eq!(ToReceiver::from_frame(body).unwrap(), chunk);
    }

    #[test]
    fn garbage_and_empty_bodies_are_errors() {
        assert!(matches!(
            ToSender::from_frame(Bytes::new()),
            Err(FrameError::Empty)
        ));
        for junk in [
            &[0xffu8, 0xff, 0xff][..],
            &[0x0a, 0x05, 1],
            &[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ] {
            assert!(ToSender::from_frame(Bytes::copy_from_slice(junk)).is_err());
            assert!(ToReceiver::from_frame(Bytes::copy_from_slice(junk)).is_err());
        }
    }

    #[test]
    fn chunk_frame_head_matches_prost() {
        let cases = [
            (0u64, 0u32, 0u64, 0u32, 0usize),
            (0, 0, 0, 7, 1),
            (1, 2, 3, 0xdead_beef, 100),
            (u64::MAX, u32::MAX, u64::MAX, u32::MAX, 300),
            (127, 128, 16383, 1, 16384),
        ];
        for (epoch, file, offset, _, len) in cases {
            let data = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let crc = crc32c::crc32c(&data);
            let whole = ToReceiver::Chunk(PbChunk {
                epoch,
                file,
                offset,
                crc32c: crc,
                data: data.clone(),
            })
            .into_frame(usize::MAX)
            .unwrap();
            let mut split = chunk_frame_head(epoch, file, offset, crc, data.len()).to_vec();
            split.extend_from_slice(&data);
            assert_eq!(split, whole.to_vec(), "{epoch} {file} {offset} {len}");
        }
    }

    #[test]
    fn one_pass_chunk_verification() {
        let data = Bytes::from(vec![9u8; 5000]);
        let crc = crc32c::crc32c(&data);
        let frame = ToReceiver::Chunk(PbChunk {
            epoch: 2,
            file: 1,
            offset: 10,
            crc32c: crc,
            data,
        })
        .into_frame(usize::MAX)
        .unwrap();
        let body = frame.slice(HEADER_LEN..);
        let stored = u32::from_be_bytes(frame[4..8].try_into().unwrap());
        let ToReceiver::Chunk(c) = ToReceiver::from_frame(body.clone()).unwrap() else {
            panic!()
        };
        let f = Frame {
            body: body.clone(),
            crc: stored,
        };
        assert_eq!(verify_chunk(&f, &c.data).unwrap(), crc);
        // A copy of the data (not the tail of the body) is checked the slow way.
        let copy = Bytes::copy_from_slice(&c.data);
        assert_eq!(verify_chunk(&f, &copy).unwrap(), crc);
        // A flipped bit in the header part or in the data is caught.
        for at in [3, body.len() - 1] {
            let mut bad = body.to_vec();
            bad[at] ^= 1;
            let bad = Bytes::from(bad);
            let f = Frame {
                body: bad.clone(),
                crc: stored,
            };
            if let Ok(ToReceiver::Chunk(c)) = ToReceiver::from_frame(bad) {
                assert!(verify_chunk(&f, &c.data).is_err(), "flip at {at}");
            }
        }
    }
}
