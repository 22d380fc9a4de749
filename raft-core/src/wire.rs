//! The wire encoding of [`Message`]: protobuf (prost), one message per buffer.
//!
//! [`encode`] turns a message into bytes and [`decode`] turns bytes back into a message or a
//! typed [`WireError`]; decoding never panics, whatever the input. The transport frames these
//! bytes with a length prefix and enforces the maximum frame size before calling [`decode`]:
//! this module has no size limit of its own (a declared length longer than the buffer is an
//! error, but a long buffer is decoded in full). It does bound what a buffer can grow into:
//! an AppendEntries with more than [`MAX_ENTRIES_PER_MESSAGE`] entries is refused before any
//! entry is decoded (an empty entry is 2 bytes on the wire but over 100 in memory, so an
//! 8 MiB frame of them would otherwise take half a gigabyte).
//!
//! The schema, for other implementations (proto3):
//!
//! ```text
//! message Message { uint64 from = 1; uint64 to = 2; uint64 term = 3;
//!   oneof body { RequestVote request_vote = 10; RequestVoteResponse request_vote_response = 11;
//!                AppendEntries append_entries = 12; AppendEntriesResponse append_entries_response = 13;
//!                Heartbeat heartbeat = 14; HeartbeatResponse heartbeat_response = 15;
//!                ReadIndexRequest read_index = 16; ReadIndexResponse read_index_response = 17;
//!                InstallSnapshot install_snapshot = 18; TimeoutNow timeout_now = 19; } }
//! message RequestVote { bool pre_vote = 1; uint64 last_log_index = 2; uint64 last_log_term = 3;
//!                       bool transfer = 4; }
//! message RequestVoteResponse { bool pre_vote = 1; bool granted = 2; }
//! message Entry { uint64 term = 1; uint64 index = 2; uint32 kind = 3; bytes data = 4; }
//!   // kind: 0 normal, 1 noop, 2 configuration change (data: a ConfChange)
//! message AppendEntries { uint64 prev_log_index = 1; uint64 prev_log_term = 2;
//!                         repeated Entry entries = 3; uint64 leader_commit = 4;
//!                         bool commit_only = 5; }
//! message ConflictHint { optional uint64 term = 1; uint64 index = 2; bool needs_snapshot = 3; }
//! message AppendEntriesResponse { uint64 index = 1; ConflictHint reject = 2; }  // absent: success
//! message Heartbeat { uint64 commit = 1; uint64 read_round = 2; }
//! message HeartbeatResponse { uint64 read_round = 1; }
//! message ReadIndexRequest { bytes ctx = 1; }
//! message ReadIndexResponse { bytes ctx = 1; optional uint64 index = 2; }
//! message InstallSnapshot { uint64 index = 1; uint64 term = 2; repeated uint64 voters = 3;
//!   repeated uint64 voters_outgoing = 4; repeated uint64 learners = 5;
//!   repeated uint64 learners_next = 6; bool auto_leave = 7; }
//! message TimeoutNow { }
//!
//! // The payload of a configuration-change entry (ConfChange::encode / ConfChange::decode).
//! message ConfChange { uint32 transition = 1; repeated ConfChangeSingle changes = 2; bytes context = 3; }
//!   // transition: 0 auto, 1 joint (left automatically), 2 joint (left explicitly)
//! message ConfChangeSingle { uint32 kind = 1; uint64 node = 2; }
//!   // kind: 0 add voter, 1 add learner, 2 remove node
//! ```
//!
//! Unknown fields are skipped, so fields can be added compatibly; a body of a kind this version
//! does not know decodes as [`WireError::MissingBody`].
//!
//! ```
//! use raft_core::{Heartbeat, LogIndex, Message, MessageBody, NodeId, Term, wire};
//!
//! let m = Message {
//!     from: NodeId(1),
//!     to: NodeId(2),
//!     term: Term(3),
//!     body: MessageBody::Heartbeat(Heartbeat { commit: LogIndex(7), read_round: 0 }),
//! };
//! let bytes = wire::encode(&m);
//! assert_eq!(bytes.len(), wire::encoded_len(&m));
//! assert_eq!(wire::decode(&bytes[..]).unwrap(), m);
//! assert!(wire::decode(&bytes[..bytes.len() - 1]).is_err());
//! ```

use bytes::{Buf, Bytes};
use prost::Message as _;

use crate::confchange::{ConfChange, ConfChangeSingle, ConfChangeTransition};
use crate::message::{
    AppendEntries, AppendEntriesResponse, ConflictHint, Heartbeat, HeartbeatResponse,
    InstallSnapshot, Message, MessageBody, ReadIndexRequest, ReadIndexResponse, RequestVote,
    RequestVoteResponse, TimeoutNow,
};
use crate::types::{ConfState, Entry, EntryKind, LogIndex, NodeId, SnapshotMeta, Term, sorted};

mod scan;

/// Why bytes could not be decoded into a [`Message`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a valid protobuf encoding of the message (truncated, a length beyond
    /// the buffer, a wrong wire type, nesting too deep, ...).
    #[error("invalid message encoding: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message carries no body, or a body of a kind this version does not know.
    #[error("message has no body (or a kind this version does not know)")]
    MissingBody,
    /// An entry's kind is not one this version knows.
    #[error("unknown entry kind {0}")]
    UnknownEntryKind(u32),
    /// A configuration change payload names an unknown transition or operation, or node 0, or
    /// holds more than [`ConfChange::MAX_CHANGES`] operations.
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(&'static str),
    /// An AppendEntries carries more entries than [`MAX_ENTRIES_PER_MESSAGE`].
    #[error("{count} entries in one message, more than the maximum of {max}")]
    TooManyEntries {
        /// Entries found.
        count: usize,
        /// [`MAX_ENTRIES_PER_MESSAGE`].
        max: usize,
    },
}

/// The most entries one AppendEntries carries. A leader never sends more (it splits a longer
/// run across messages, as it does by [`crate::Config::max_size_per_msg`]) and [`decode`]
/// refuses more, so a message decodes into at most a few tens of megabytes, whatever its
/// entries hold.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 1 << 16;

/// Encodes `m`.
pub fn encode(m: &Message) -> Bytes {
    PbMessage::from(m).encode_to_vec().into()
}

/// The length of [`encode`]`(m)`, e.g. to check a frame size limit before encoding.
pub fn encoded_len(m: &Message) -> usize {
    PbMessage::from(m).encoded_len()
}

/// Decodes one message that fills the whole of `buf`.
///
/// Any [`Buf`] works: a [`Bytes`] is not copied (entry payloads share its memory, which keeps
/// the whole buffer alive as long as any of them lives); a `&[u8]` is copied once, and the
/// payloads share the copy.
///
/// An AppendEntries with more than [`MAX_ENTRIES_PER_MESSAGE`] entries is
/// [`WireError::TooManyEntries`], found by a count that keeps nothing of an entry, before any
/// entry is decoded.
pub fn decode(mut buf: impl Buf) -> Result<Message, WireError> {
    // The count needs the bytes in one piece: free for `Bytes`, one copy for anything else.
    let bytes = buf.copy_to_bytes(buf.remaining());
    let count = scan::count_entries(&bytes);
    if count > MAX_ENTRIES_PER_MESSAGE {
        return Err(WireError::TooManyEntries {
            count,
            max: MAX_ENTRIES_PER_MESSAGE,
        });
    }
    PbMessage::decode(bytes)?.try_into()
}

const KIND_NORMAL: u32 = 0;
const KIND_NOOP: u32 = 1;
const KIND_CONF_CHANGE: u32 = 2;

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbMessage {
    #[prost(uint64, tag = "1")]
    from: u64,
    #[prost(uint64, tag = "2")]
    to: u64,
    #[prost(uint64, tag = "3")]
    term: u64,
    #[prost(oneof = "PbBody", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
    body: Option<PbBody>,
}

#[derive(Clone, PartialEq, ::prost::Oneof)]
enum PbBody {
    #[prost(message, tag = "10")]
    RequestVote(PbRequestVote),
    #[prost(message, tag = "11")]
    RequestVoteResponse(PbRequestVoteResponse),
    #[prost(message, tag = "12")]
    AppendEntries(PbAppendEntries),
    #[prost(message, tag = "13")]
    AppendEntriesResponse(PbAppendEntriesResponse),
    #[prost(message, tag = "14")]
    Heartbeat(PbHeartbeat),
    #[prost(message, tag = "15")]
    HeartbeatResponse(PbHeartbeatResponse),
    #[prost(message, tag = "16")]
    ReadIndex(PbReadIndexRequest),
    #[prost(message, tag = "17")]
    ReadIndexResponse(PbReadIndexResponse),
    #[prost(message, tag = "18")]
    InstallSnapshot(PbInstallSnapshot),
    #[prost(message, tag = "19")]
    TimeoutNow(PbTimeoutNow),
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbTimeoutNow {}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbInstallSnapshot {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    term: u64,
    #[prost(uint64, repeated, tag = "3")]
    voters: Vec<u64>,
    #[prost(uint64, repeated, tag = "4")]
    voters_outgoing: Vec<u64>,
    #[prost(uint64, repeated, tag = "5")]
    learners: Vec<u64>,
    #[prost(uint64, repeated, tag = "6")]
    learners_next: Vec<u64>,
    #[prost(bool, tag = "7")]
    auto_leave: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbConfChange {
    #[prost(uint32, tag = "1")]
    transition: u32,
    #[prost(message, repeated, tag = "2")]
    changes: Vec<PbConfChangeSingle>,
    #[prost(bytes = "bytes", tag = "3")]
    context: Bytes,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbConfChangeSingle {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(uint64, tag = "2")]
    node: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbRequestVote {
    #[prost(bool, tag = "1")]
    pre_vote: bool,
    #[prost(uint64, tag = "2")]
    last_log_index: u64,
    #[prost(uint64, tag = "3")]
    last_log_term: u64,
    #[prost(bool, tag = "4")]
    transfer: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbRequestVoteResponse {
    #[prost(bool, tag = "1")]
    pre_vote: bool,
    #[prost(bool, tag = "2")]
    granted: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbEntry {
    #[prost(uint64, tag = "1")]
    term: u64,
    #[prost(uint64, tag = "2")]
    index: u64,
    #[prost(uint32, tag = "3")]
    kind: u32,
    #[prost(bytes = "bytes", tag = "4")]
    data: Bytes,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbAppendEntries {
    #[prost(uint64, tag = "1")]
    prev_log_index: u64,
    #[prost(uint64, tag = "2")]
    prev_log_term: u64,
    #[prost(message, repeated, tag = "3")]
    entries: Vec<PbEntry>,
    #[prost(uint64, tag = "4")]
    leader_commit: u64,
    #[prost(bool, tag = "5")]
    commit_only: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbConflictHint {
    #[prost(uint64, optional, tag = "1")]
    term: Option<u64>,
    #[prost(uint64, tag = "2")]
    index: u64,
    #[prost(bool, tag = "3")]
    needs_snapshot: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbAppendEntriesResponse {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(message, optional, tag = "2")]
    reject: Option<PbConflictHint>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbHeartbeat {
    #[prost(uint64, tag = "1")]
    commit: u64,
    #[prost(uint64, tag = "2")]
    read_round: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbHeartbeatResponse {
    #[prost(uint64, tag = "1")]
    read_round: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbReadIndexRequest {
    #[prost(bytes = "bytes", tag = "1")]
    ctx: Bytes,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct PbReadIndexResponse {
    #[prost(bytes = "bytes", tag = "1")]
    ctx: Bytes,
    #[prost(uint64, optional, tag = "2")]
    index: Option<u64>,
}

// ---- domain -> wire ----

impl From<&Message> for PbMessage {
    fn from(m: &Message) -> Self {
        let body = match &m.body {
            MessageBody::RequestVote(v) => PbBody::RequestVote(PbRequestVote {
                pre_vote: v.pre_vote,
                last_log_index: v.last_log_index.get(),
                last_log_term: v.last_log_term.get(),
                transfer: v.transfer,
            }),
            MessageBody::RequestVoteResponse(v) => {
                PbBody::RequestVoteResponse(PbRequestVoteResponse {
                    pre_vote: v.pre_vote,
                    granted: v.granted,
                })
            }
            MessageBody::AppendEntries(a) => PbBody::AppendEntries(PbAppendEntries {
                prev_log_index: a.prev_log_index.get(),
                prev_log_term: a.prev_log_term.get(),
                entries: a.entries.iter().map(PbEntry::from).collect(),
                leader_commit: a.leader_commit.get(),
                commit_only: a.commit_only,
            }),
            MessageBody::AppendEntriesResponse(r) => {
                PbBody::AppendEntriesResponse(PbAppendEntriesResponse {
                    index: r.index.get(),
                    reject: r.reject.map(|h| PbConflictHint {
                        term: h.term.map(Term::get),
                        index: h.index.get(),
                        needs_snapshot: h.needs_snapshot,
                    }),
                })
            }
            MessageBody::Heartbeat(h) => PbBody::Heartbeat(PbHeartbeat {
                commit: h.commit.get(),
                read_round: h.read_round,
            }),
            MessageBody::HeartbeatResponse(h) => PbBody::HeartbeatResponse(PbHeartbeatResponse {
                read_round: h.read_round,
            }),
            MessageBody::ReadIndex(r) => {
                PbBody::ReadIndex(PbReadIndexRequest { ctx: r.ctx.clone() })
            }
            MessageBody::ReadIndexResponse(r) => PbBody::ReadIndexResponse(PbReadIndexResponse {
                ctx: r.ctx.clone(),
                index: r.index.map(LogIndex::get),
            }),
            MessageBody::InstallSnapshot(s) => {
                let cs = &s.meta.conf_state;
                PbBody::InstallSnapshot(PbInstallSnapshot {
                    index: s.meta.index.get(),
                    term: s.meta.term.get(),
                    voters: raw_ids(&cs.voters),
                    voters_outgoing: raw_ids(&cs.voters_outgoing),
                    learners: raw_ids(&cs.learners),
                    learners_next: raw_ids(&cs.learners_next),
                    auto_leave: cs.auto_leave,
                })
            }
            MessageBody::TimeoutNow(TimeoutNow {}) => PbBody::TimeoutNow(PbTimeoutNow {}),
        };
        PbMessage {
            from: m.from.get(),
            to: m.to.get(),
            term: m.term.get(),
            body: Some(body),
        }
    }
}

impl From<&Entry> for PbEntry {
    fn from(e: &Entry) -> Self {
        PbEntry {
            term: e.term.get(),
            index: e.index.get(),
            kind: match e.kind {
                EntryKind::Normal => KIND_NORMAL,
                EntryKind::Noop => KIND_NOOP,
                EntryKind::ConfChange => KIND_CONF_CHANGE,
            },
            data: e.data.clone(),
        }
    }
}

// ---- wire -> domain ----

impl TryFrom<PbMessage> for Message {
    type Error = WireError;

    fn try_from(m: PbMessage) -> Result<Self, WireError> {
        let body = match m.body.ok_or(WireError::MissingBody)? {
            PbBody::RequestVote(v) => MessageBody::RequestVote(RequestVote {
                pre_vote: v.pre_vote,
                last_log_index: LogIndex(v.last_log_index),
                last_log_term: Term(v.last_log_term),
                transfer: v.transfer,
            }),
            PbBody::RequestVoteResponse(v) => {
                MessageBody::RequestVoteResponse(RequestVoteResponse {
                    pre_vote: v.pre_vote,
                    granted: v.granted,
                })
            }
            PbBody::AppendEntries(a) => MessageBody::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(a.prev_log_index),
                prev_log_term: Term(a.prev_log_term),
                entries: a
                    .entries
                    .into_iter()
                    .map(Entry::try_from)
                    .collect::<Result<_, _>>()?,
                leader_commit: LogIndex(a.leader_commit),
                commit_only: a.commit_only,
            }),
            PbBody::AppendEntriesResponse(r) => {
                MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                    index: LogIndex(r.index),
                    reject: r.reject.map(|h| ConflictHint {
                        term: h.term.map(Term),
                        index: LogIndex(h.index),
                        needs_snapshot: h.needs_snapshot,
                    }),
                })
            }
            PbBody::Heartbeat(h) => MessageBody::Heartbeat(Heartbeat {
                commit: LogIndex(h.commit),
                read_round: h.read_round,
            }),
            PbBody::HeartbeatResponse(h) => MessageBody::HeartbeatResponse(HeartbeatResponse {
                read_round: h.read_round,
            }),
            PbBody::ReadIndex(r) => MessageBody::ReadIndex(ReadIndexRequest { ctx: r.ctx }),
            PbBody::ReadIndexResponse(r) => MessageBody::ReadIndexResponse(ReadIndexResponse {
                ctx: r.ctx,
                index: r.index.map(LogIndex),
            }),
            PbBody::InstallSnapshot(s) => MessageBody::InstallSnapshot(InstallSnapshot {
                meta: SnapshotMeta {
                    index: LogIndex(s.index),
                    term: Term(s.term),
                    conf_state: ConfState {
                        voters: node_ids(s.voters),
                        voters_outgoing: node_ids(s.voters_outgoing),
                        learners: node_ids(s.learners),
                        learners_next: node_ids(s.learners_next),
                        auto_leave: s.auto_leave,
                    },
                },
            }),
            PbBody::TimeoutNow(PbTimeoutNow {}) => MessageBody::TimeoutNow(TimeoutNow {}),
        };
        Ok(Message {
            from: NodeId(m.from),
            to: NodeId(m.to),
            term: Term(m.term),
            body,
        })
    }
}

impl TryFrom<PbEntry> for Entry {
    type Error = WireError;

    fn try_from(e: PbEntry) -> Result<Self, WireError> {
        let kind = match e.kind {
            KIND_NORMAL => EntryKind::Normal,
            KIND_NOOP => EntryKind::Noop,
            KIND_CONF_CHANGE => EntryKind::ConfChange,
            k => return Err(WireError::UnknownEntryKind(k)),
        };
        Ok(Entry {
            term: Term(e.term),
            index: LogIndex(e.index),
            kind,
            data: e.data,
        })
    }
}

fn raw_ids(ids: &[NodeId]) -> Vec<u64> {
    ids.iter().map(|v| v.get()).collect()
}

/// Node ids from the wire, sorted and each once (the order [`ConfState`] keeps).
fn node_ids(raw: Vec<u64>) -> Vec<NodeId> {
    sorted(raw.into_iter().map(NodeId))
}

// ---- configuration changes ----

const TRANSITION_AUTO: u32 = 0;
const TRANSITION_JOINT_IMPLICIT: u32 = 1;
const TRANSITION_JOINT_EXPLICIT: u32 = 2;
const CHANGE_ADD_VOTER: u32 = 0;
const CHANGE_ADD_LEARNER: u32 = 1;
const CHANGE_REMOVE_NODE: u32 = 2;

impl ConfChange {
    /// The payload of an [`EntryKind::ConfChange`] entry.
    pub fn encode(&self) -> Bytes {
        let pb = PbConfChange {
            transition: match self.transition {
                ConfChangeTransition::Auto => TRANSITION_AUTO,
                ConfChangeTransition::JointImplicit => TRANSITION_JOINT_IMPLICIT,
                ConfChangeTransition::JointExplicit => TRANSITION_JOINT_EXPLICIT,
            },
            changes: self
                .changes
                .iter()
                .map(|c| PbConfChangeSingle {
                    kind: match c {
                        ConfChangeSingle::AddVoter(_) => CHANGE_ADD_VOTER,
                        ConfChangeSingle::AddLearner(_) => CHANGE_ADD_LEARNER,
                        ConfChangeSingle::RemoveNode(_) => CHANGE_REMOVE_NODE,
                    },
                    node: c.node().get(),
                })
                .collect(),
            context: self.context.clone(),
        };
        pb.encode_to_vec().into()
    }

    /// Decodes the payload of an [`EntryKind::ConfChange`] entry. Never panics: malformed
    /// bytes, an unknown transition or operation, node id 0 and more than
    /// [`ConfChange::MAX_CHANGES`] operations are errors.
    pub fn decode(buf: impl Buf) -> Result<ConfChange, WireError> {
        let pb = PbConfChange::decode(buf)?;
        if pb.changes.len() > ConfChange::MAX_CHANGES {
            return Err(WireError::InvalidConfChange("too many operations"));
        }
        let transition = match pb.transition {
            TRANSITION_AUTO => ConfChangeTransition::Auto,
            TRANSITION_JOINT_IMPLICIT => ConfChangeTransition::JointImplicit,
            TRANSITION_JOINT_EXPLICIT => ConfChangeTransition::JointExplicit,
            _ => return Err(WireError::InvalidConfChange("unknown transition")),
        };
        let changes = pb
            .changes
            .into_iter()
            .map(|c| {
                if c.node == 0 {
                    return Err(WireError::InvalidConfChange("node id 0"));
                }
                let id = NodeId(c.node);
                Ok(match c.kind {
                    CHANGE_ADD_VOTER => ConfChangeSingle::AddVoter(id),
                    CHANGE_ADD_LEARNER => ConfChangeSingle::AddLearner(id),
                    CHANGE_REMOVE_NODE => ConfChangeSingle::RemoveNode(id),
                    _ => return Err(WireError::InvalidConfChange("unknown operation")),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ConfChange {
            transition,
            changes,
            context: pb.context,
        })
    }
}
