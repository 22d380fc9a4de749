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

use bytes::Bytes;

use crate::frame::FrameError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{HEADER_LEN, decode_exact};

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
}
