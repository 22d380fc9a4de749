//! How a transfer behaves: chunk size, frame limit, stall timeout, limits.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::wire::CHUNK_OVERHEAD;

/// Settings of snapshot transfers, for both the sender and the receiver.
///
/// Start from [`TransferConfig::default`] and change fields. The [`Limits`] inside are
/// shared by clones: use clones of one config for every transfer of a node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransferConfig {
    /// Bytes of file data per chunk (default 1 MiB). The sender uses the smaller of this
    /// and what the receiver's frame limit allows.
    pub chunk_size: usize,
    /// The largest frame accepted from the peer (default 4 MiB). Bounds the memory a peer
    /// can make this node allocate per frame; a manifest must fit in one frame.
    pub max_frame_bytes: usize,
    /// A transfer with no progress for this long is abandoned on this side (default 30 s):
    /// no frame read (receiver), no write completing or no answer after the last chunk
    /// (sender). Keep it well above the time one chunk takes under the bandwidth cap.
    pub stall_timeout: Duration,
    /// Corrupted chunks tolerated in one transfer before giving up (default 64).
    pub max_corrupt_chunks: u32,
    /// Concurrency and bandwidth limits of this node.
    pub limits: Limits,
}

impl Default for TransferConfig {
    fn default() -> TransferConfig {
        TransferConfig {
            chunk_size: 1 << 20,
            max_frame_bytes: 4 << 20,
            stall_timeout: Duration::from_secs(30),
            max_corrupt_chunks: 64,
            limits: Limits::default(),
        }
    }
}

impl TransferConfig {
    /// Checks that the values work together.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_size == 0 {
            return Err(Error::Config("chunk_size is 0".into()));
        }
        if self.max_frame_bytes > u32::MAX as usize || self.max_frame_bytes < 4096 {
            return Err(Error::Config(format!(
                "max_frame_bytes {} is not within 4 KiB..4 GiB",
                self.max_frame_bytes
            )));
        }
        if self.chunk_size + CHUNK_OVERHEAD > self.max_frame_bytes {
            return Err(Error::Config(format!(
                "chunk_size {} does not fit in max_frame_bytes {}",
                self.chunk_size, self.max_frame_bytes
            )));
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::Config("stall_timeout is 0".into()));
        }
        Ok(())
    }

    /// The largest chunk a peer may send this node.
    pub(crate) fn max_chunk(&self) -> usize {
        self.max_frame_bytes - CHUNK_OVERHEAD
    }
}
