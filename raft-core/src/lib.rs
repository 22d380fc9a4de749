//! `raft-core`: the Raft consensus protocol as a deterministic, sans-IO state machine.
//!
//! The caller owns time, I/O and threads. It feeds inputs — [`RawNode::tick`],
//! [`RawNode::step`] (a message from a peer), [`RawNode::propose`], [`RawNode::read_index`] —
//! then takes one [`Ready`] of effects (entries and hard state to persist, messages to send,
//! committed entries to apply, reads that became safe) and acknowledges what it did
//! ([`RawNode::on_persisted`], [`RawNode::on_applied`]). Given the same inputs a node produces
//! the same outputs: randomness comes only from [`Config::seed`].
//!
//! What it implements: elections with randomized timeouts and pre-vote (thesis §9.6), log
//! replication with a pipelined, flow-controlled leader (probe / replicate progress), the
//! follower's conflict hint that moves the leader's `next_index` back a whole term per round
//! trip, the commit rule of §5.4.2, asynchronous persistence (the leader counts itself toward
//! a quorum only for durable entries; followers answer only for durable entries), ReadIndex
//! reads batched into shared heartbeat rounds, and leadership transfer
//! ([`RawNode::transfer_leader`], thesis §3.10: the leader brings the target up to date, then
//! tells it to campaign at once with `TimeoutNow`), CheckQuorum (a leader that loses its
//! quorum steps down; followers that hear from a live leader ignore disruptive vote
//! requests) and opt-in lease-based reads ([`Config::read_lease`]). Storage is read through the [`Storage`] trait;
//! [`MemStorage`] implements it in memory.
//!
//! See [`RawNode`] for a runnable example.

#![warn(missing_docs)]

mod check_quorum;
pub mod confchange;
mod config;
pub mod conformance;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod progress;
mod quorum;
mod raft;
mod raw_node;
mod read_index;
mod replication;
mod rng;
mod snapshot;
mod storage;
mod transfer;
mod types;
mod validate;
pub mod wire;

pub use confchange::{ConfChange, ConfChangeError, ConfChangeSingle, ConfChangeTransition};
pub use config::Config;
pub use error::{ConfigError, Error, Result, StorageError};
pub use message::{
    AppendEntries, AppendEntriesResponse, ConflictHint, Heartbeat, HeartbeatResponse,
    InstallSnapshot, Message, MessageBody, ReadIndexRequest, ReadIndexResponse, RequestVote,
    RequestVoteResponse, TimeoutNow,
};
pub use progress::ProgressState;
pub use raw_node::{PeerStatus, RawNode, Ready, Status};
pub use read_index::ReadState;
pub use storage::{InitialState, MemStorage, Storage};
pub use types::{
    ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, Role, SnapshotMeta, SoftState, Term,
};
