//! `raft-log`: the durable Raft log on RocksDB.
//!
//! [`LogStore`] implements [`raft_core::Storage`] for reads and adds the writes a Raft node
//! needs:
//!
//! - **Group commit.** [`LogStore::submit`] queues a [`LogWrite`] (entries plus hard state);
//!   one writer thread turns everything queued while the previous sync ran into one RocksDB
//!   `WriteBatch` and one synced write, so N concurrent writers pay about one fsync. Writes
//!   complete in submission order and report the durable last index.
//! - **Conflict truncation** in the same batch as the new entries: the log never has a hole.
//! - **A cache of the newest entries**, so a leader feeding healthy followers never reads
//!   RocksDB.
//! - **Compaction** after a snapshot ([`LogStore::compact`]): DeleteRange plus a RocksDB
//!   compaction of the range, keeping a configurable tail for slow followers.
//! - **Checksums** (CRC32C on every value, verified on every read) and **checks at open**: a
//!   damaged log is refused with a typed [`LogError`], never served.
//!
//! Layout: column family `raft_log` holds entries under big-endian u64 keys (iteration is log
//! order); `raft_meta` holds the hard state, the compaction point, the configuration and a
//! format marker. Values are prost messages followed by their checksum.
//!
//! ```no_run
//! use raft_core::{Entry, LogIndex, Storage, Term};
//! use raft_log::{LogOptions, LogStore, LogWrite};
//!
//! let log = LogStore::open("/var/lib/raft/log", LogOptions::default())?;
//! let durable = log.write(LogWrite::entries(vec![Entry::new(Term(1), LogIndex(1), "x")]))?;
//! assert_eq!(durable.last_index, LogIndex(1));
//! assert_eq!(log.term(LogIndex(1))?, Term(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod cache;
mod error;
mod options;
mod record;
mod recovery;
mod store;
mod writer;

pub use error::LogError;
pub use options::LogOptions;
pub use store::{Durable, LogStats, LogStore, LogWrite};
