//! `raft-node`: composes `raft-core`, `raft-log`, `raft-net-quic` and `raft-snapshot` on tokio
//! into a running node: one driver task owns the protocol state, a log-writer thread group
//! commits appends, an apply task feeds a RocksDB key-value state machine, and clients speak
//! the Redis protocol (RESP).
//!
//! Status: placeholder; the implementation lands with the node issue.
