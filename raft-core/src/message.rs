//! The messages Raft nodes exchange. Their wire encoding lives in [`crate::wire`].

use bytes::Bytes;

use crate::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};

/// A message between two nodes. `term` is the sender's current term, except for a granted
/// pre-vote response, which echoes the term the pre-candidate asked for (thesis §9.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The sender's term.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageBody {
    /// A (pre-)candidate asks for a vote (§5.2, thesis §9.6).
    RequestVote(RequestVote),
    /// The answer to [`MessageBody::RequestVote`].
    RequestVoteResponse(RequestVoteResponse),
    /// The leader replicates entries (§5.3).
    AppendEntries(AppendEntries),
    /// The answer to [`MessageBody::AppendEntries`], sent only once the entries are durable.
    AppendEntriesResponse(AppendEntriesResponse),
    /// The leader asserts its leadership and carries the commit index and a read round.
    Heartbeat(Heartbeat),
    /// The answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse(HeartbeatResponse),
    /// A follower asks the leader for a read index on behalf of its client (thesis §6.4).
    ReadIndex(ReadIndexRequest),
    /// The leader's answer to [`MessageBody::ReadIndex`].
    ReadIndexResponse(ReadIndexResponse),
    /// The leader tells a follower that needs compacted entries to install its snapshot
    /// (§7). The caller streams the snapshot's data first and delivers this message once the
    /// data is staged; the follower answers with an [`MessageBody::AppendEntriesResponse`]
    /// once the snapshot is durable.
    InstallSnapshot(InstallSnapshot),
    /// The leader tells a follower that holds its whole log to start an election at once,
    /// skipping pre-vote: the last step of a leadership transfer (thesis §3.10).
    TimeoutNow(TimeoutNow),
}

impl MessageBody {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::RequestVote(v) if v.pre_vote => "PreVote",
            MessageBody::RequestVote(v) if v.transfer => "TransferVote",
            MessageBody::RequestVote(_) => "RequestVote",
            MessageBody::RequestVoteResponse(v) if v.pre_vote => "PreVoteResponse",
            MessageBody::RequestVoteResponse(_) => "RequestVoteResponse",
            MessageBody::AppendEntries(_) => "AppendEntries",
            MessageBody::AppendEntriesResponse(_) => "AppendEntriesResponse",
            MessageBody::Heartbeat(_) => "Heartbeat",
            MessageBody::HeartbeatResponse(_) => "HeartbeatResponse",
            MessageBody::ReadIndex(_) => "ReadIndex",
            MessageBody::ReadIndexResponse(_) => "ReadIndexResponse",
            MessageBody::InstallSnapshot(_) => "InstallSnapshot",
            MessageBody::TimeoutNow(_) => "TimeoutNow",
        }
    }
}

/// A vote request. With `pre_vote` the term is the one the sender *would* campaign in; the
/// sender has not bumped its own term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestVote {
    /// Whether this is a pre-vote.
    pub pre_vote: bool,
    /// Index of the candidate's last entry (§5.4.1).
    pub last_log_index: LogIndex,
    /// Term of the candidate's last entry (§5.4.1).
    pub last_log_term: Term,
    /// The candidate campaigns because the leader handed leadership over to it
    /// ([`MessageBody::TimeoutNow`]). Such a request is never refused for reasons meant to
    /// protect a healthy leader (a leader lease), since that leader asked for it. Never set
    /// on a pre-vote.
    pub transfer: bool,
}

/// A vote answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestVoteResponse {
    /// Whether it answers a pre-vote.
    pub pre_vote: bool,
    /// Whether the vote is granted.
    pub granted: bool,
}

/// Entries to append after `(prev_log_index, prev_log_term)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntries {
    /// The index just before the first entry.
    pub prev_log_index: LogIndex,
    /// The term of that entry.
    pub prev_log_term: Term,
    /// Consecutive entries starting at `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
    /// Sent only to carry `leader_commit` to a follower known to hold the leader's whole log:
    /// no entries, and a success is not answered (it would tell the leader nothing). A
    /// rejection still is.
    pub commit_only: bool,
}

/// Where a follower's log diverges from the leader's, so the leader can move `next_index`
/// back by a whole term per round trip instead of one entry (§5.3, "optimization").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictHint {
    /// The term of the follower's conflicting entry; `None` when the follower's log is
    /// shorter than `prev_log_index`.
    pub term: Option<Term>,
    /// The first index the follower holds for `term`, or its last index + 1 when `term` is
    /// `None`.
    pub index: LogIndex,
    /// The follower has no configuration (it waits to join the cluster) and can start only
    /// from a snapshot, which carries one: entries alone would be applied to an unknown
    /// configuration. The leader sends its snapshot (asking the caller to take one first if
    /// it has none, [`crate::Ready::snapshot_due`]).
    pub needs_snapshot: bool,
}

/// The answer to an [`AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntriesResponse {
    /// On success the highest index known to match the leader's log (durable on the follower);
    /// on rejection the `prev_log_index` that did not match.
    pub index: LogIndex,
    /// `None` on success; the conflict hint on rejection.
    pub reject: Option<ConflictHint>,
}

/// A heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// `min(leader commit, follower's match index)`: what the follower can safely commit.
    pub commit: LogIndex,
    /// The ReadIndex round this heartbeat confirms (0 for none).
    pub read_round: u64,
}

/// The answer to a [`Heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The read round echoed back.
    pub read_round: u64,
}

/// A follower's request for a read index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadIndexRequest {
    /// The caller's request context, echoed in the answer.
    pub ctx: Bytes,
}

/// The leader's answer to a [`ReadIndexRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadIndexResponse {
    /// The context from the request.
    pub ctx: Bytes,
    /// The read index, or `None` when the recipient is no longer leader and cannot serve it.
    pub index: Option<LogIndex>,
}

/// The snapshot a follower must install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshot {
    /// Where the snapshot stands in the log.
    pub meta: SnapshotMeta,
}

/// The leader's request to start an election now (leadership transfer, thesis §3.10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeoutNow {}
