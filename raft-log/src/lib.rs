//! `raft-log`: the durable Raft log on RocksDB.
//!
//! Implements [`raft_core::Storage`] with group-committed appends (many writers share one
//! fsync), conflict truncation in the same write batch, compaction after snapshots and
//! checksummed values so corruption is reported, never served.
//!
//! Status: placeholder; the implementation lands with the raft-log issue. Until then use
//! [`raft_core::MemStorage`].
