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
//! Membership changes ([`RawNode::propose_conf_change`], the pure math in [`confchange`]):
//! joint consensus (§6) — enter a joint configuration, commit it, leave it (by itself or when
//! asked) — with single-voter changes as the simple case, learners that receive the log and
//! snapshots without voting, one change at a time with typed errors, a removed leader that
//! steps down once its removal commits, and nodes that join empty and start from a snapshot.
//! A configuration takes effect as soon as its entry is in a node's log (thesis §4.1), so it
//! follows from the log: the caller applies and persists nothing for it (only snapshots carry
//! one, [`RawNode::conf_state_at`] their index), and [`Ready::conf_state`] reports changes.
//!
//! ```
//! use raft_core::{ConfChange, ConfState, Config, EntryKind, MemStorage, NodeId, RawNode, Role};
//!
//! let store = MemStorage::new(ConfState::new([NodeId(1)]));
//! let mut node = RawNode::new(&Config::new(NodeId(1)), store).unwrap();
//! node.campaign();
//! let mut committed_changes = Vec::new();
//! for _ in 0..6 {
//!     let rd = node.ready();
//!     node.store_mut().append(&rd.entries).unwrap();
//!     if let Some(hs) = rd.hard_state {
//!         node.store_mut().set_hard_state(hs);
//!     }
//!     node.on_persisted(rd.number).unwrap();
//!     for e in &rd.committed_entries {
//!         if e.kind == EntryKind::ConfChange {
//!             // Nothing to apply; the payload (and its context) is there to read.
//!             committed_changes.push(ConfChange::decode(e.data.clone()).unwrap());
//!         }
//!         node.on_applied(e.index).unwrap();
//!     }
//!     // A new leader changes the membership once it applied the first entry of its term;
//!     // until then, and while a change is not applied, it answers ConfChangePending.
//!     if node.status().role == Role::Leader && committed_changes.is_empty() {
//!         if node.propose_conf_change(ConfChange::add_learner(NodeId(2))).is_ok() {
//!             // In effect at once: the leader replicates to node 2 from now on.
//!             assert_eq!(node.conf_state().learners, [NodeId(2)]);
//!         }
//!     }
//! }
//! assert_eq!(committed_changes, [ConfChange::add_learner(NodeId(2))]);
//! ```
//!
//! See [`RawNode`] for the basic loop.

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
