//! The storage conformance suite against the in-memory store (raft-log runs it against RocksDB).

use raft_core::MemStorage;

raft_core::storage_conformance_tests!(MemStorage::new);
