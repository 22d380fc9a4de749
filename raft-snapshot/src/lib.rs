//! `raft-snapshot`: streams a snapshot (a manifest plus its files) in checksummed chunks over
//! any byte stream, resumes a broken transfer from the last verified offset and installs the
//! result atomically.
//!
//! - **What a snapshot is**: a [`Manifest`] (last included index and term, membership, files
//!   with sizes and CRC32C checksums) and the files, stored by a [`SnapshotStore`] as
//!   `<root>/snap-<index>-<term>/`.
//! - **Streaming**: [`send_snapshot`] and [`receive_snapshot`] talk over any tokio
//!   `AsyncRead` + `AsyncWrite` pair; in a node, a QUIC stream from `raft-net-quic`
//!   (`Transport::open_snapshot` / `Inbound::snapshots`). Messages are prost-encoded,
//!   length-prefixed frames with a CRC32C and a maximum size; chunks (1 MiB by default) carry
//!   their file, offset and data checksum. Malformed input is a typed [`Error`], never a
//!   panic or an unbounded allocation.
//! - **Integrity**: the receiver checks every chunk (a corrupted one is refused and sent
//!   again) and every whole file, writes into a temporary directory, fsyncs files and
//!   directories and only then renames the snapshot into place. A crash at any moment leaves
//!   the previous snapshots intact; [`SnapshotStore::open`] removes what it left behind.
//! - **Resume**: the receiver answers an offer with how much of each file it already holds
//!   from a broken transfer of the same snapshot, and the sender continues there.
//! - **Limits** ([`TransferConfig`], [`Limits`]): chunk and frame sizes, concurrent
//!   transfers per node, a bandwidth cap, and a stall timeout after which a transfer is
//!   abandoned on either side ([`Error::Stalled`]; partial files are kept for the resume).
//!
//! ```
//! use raft_core::{ConfState, LogIndex, NodeId, Term};
//! use raft_snapshot::{Manifest, SnapshotStore, TransferConfig, receive_snapshot, send_snapshot};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! // The leader: its snapshot's files in a directory, described by a manifest.
//! let leader = SnapshotStore::open(tmp.path().join("leader"))?;
//! let dir = leader.staging_dir(LogIndex(42), Term(3))?;
//! std::fs::write(dir.join("data.sst"), b"the state machine at index 42")?;
//! let conf = ConfState::new([NodeId(1), NodeId(2), NodeId(3)]);
//! let manifest = Manifest::from_dir(&dir, LogIndex(42), Term(3), conf)?;
//! leader.install_dir(&dir, &manifest)?;
//!
//! // The follower receives it over a stream (here an in-memory pipe).
//! let follower = SnapshotStore::open(tmp.path().join("follower"))?;
//! let (a, b) = tokio::io::duplex(64 << 10);
//! let ((a_read, a_write), (b_read, b_write)) = (tokio::io::split(a), tokio::io::split(b));
//! let cfg = TransferConfig::default();
//! let (sent, received) = tokio::join!(
//!     send_snapshot(leader.path_of(&manifest), &manifest, a_read, a_write, &cfg),
//!     receive_snapshot(&follower, b_read, b_write, &cfg),
//! );
//! assert_eq!(sent?.bytes_sent, 29);
//! assert_eq!(received?, manifest);
//! assert_eq!(follower.latest(), Some(manifest.clone()));
//! let path = follower.path_of(&manifest).join("data.sst");
//! assert_eq!(std::fs::read(path)?, b"the state machine at index 42");
//! # Ok(()) }
//! ```
//!
//! Metrics (counters): `raft_snapshot_transfers_total{role, outcome}`,
//! `raft_snapshot_bytes_sent_total`, `raft_snapshot_bytes_received_total`,
//! `raft_snapshot_resumed_bytes_total`, `raft_snapshot_chunks_rejected_total`,
//! `raft_snapshot_resends_total`, `raft_snapshot_installed_total`,
//! `raft_snapshot_busy_total`, `raft_snapshot_stale_temp_removed_total`.

#![warn(missing_docs)]

mod config;
mod crc;
mod disk;
mod error;
mod frame;
mod limits;
mod manifest;
mod receiver;
mod sender;
mod store;
mod wire;

pub use config::TransferConfig;
pub use error::{Error, RemoteCode, Result};
pub use frame::FrameError;
pub use limits::Limits;
pub use manifest::{FileMeta, MANIFEST_FILE, MAX_FILES, MAX_NAME_LEN, Manifest, validate_name};
pub use receiver::receive_snapshot;
pub use sender::{SendReport, send_snapshot};
pub use store::SnapshotStore;
