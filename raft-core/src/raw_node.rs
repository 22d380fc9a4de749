//! The caller's handle: feed inputs, take a [`Ready`] of effects, acknowledge what was done.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::confchange::ConfChange;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::read_index::ReadState;
use crate::storage::Storage;
use crate::types::{
    ConfState, Entry, HardState, LogIndex, NodeId, Role, SnapshotMeta, SoftState, Term,
};

/// One batch of effects. Handle it in this order:
///
/// 1. send `messages` (they do not depend on local durability: the leader replicates while
///    its own write is in flight, thesis §10.2.1);
/// 2. persist `snapshot` first if there is one (install the staged snapshot data into the
///    state machine and restart the log after it, e.g. `MemStorage::apply_snapshot`), then
///    `entries` (an append at `entries[0].index` replaces every stored entry from there on)
///    and `hard_state` — atomically, or in that order;
/// 3. once that is durable, call [`RawNode::on_persisted`] with `number` and send the answers
///    it returns (append acknowledgements and votes, which promise durable state: §5.1
///    "respond after persisting"). Writes must become durable in ready order (one log writer
///    that batches them does this; acknowledging the last ready of a batch acknowledges all).
///    Answers whose entries a later ready replaced are dropped, never returned;
/// 4. apply `committed_entries` in order and call [`RawNode::on_applied`] (entries of kind
///    [`crate::EntryKind::ConfChange`] change nothing in the state machine: the configuration
///    took effect when the entry was appended; see [`RawNode::propose_conf_change`]);
/// 5. serve `read_states` once the applied index reaches their index; fail `failed_reads`;
/// 6. `conf_state`, when set, is the new configuration: connect to new members if needed.
///
/// Steps 2–3 and 4 may run asynchronously; further readies can be taken meanwhile.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Ready {
    /// Identifies this ready in [`RawNode::on_persisted`].
    pub number: u64,
    /// Role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot from the leader to install before anything else in this ready: its data
    /// replaces the state machine (applied through `snapshot.index`) and the log restarts
    /// after it. Install it into the state machine only after every `committed_entries` of
    /// earlier readies is applied (or dropped): applying them afterwards would move the
    /// state back. Acknowledge it with [`RawNode::on_persisted`] and, once the state machine
    /// runs on it, [`RawNode::on_applied`]`(snapshot.index)`.
    pub snapshot: Option<SnapshotMeta>,
    /// Entries to persist.
    pub entries: Vec<Entry>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Entries to apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads that may be served once applied reaches their index.
    pub read_states: Vec<ReadState>,
    /// Read contexts that cannot be served (leadership changed): retry elsewhere.
    pub failed_reads: Vec<Bytes>,
    /// The log has grown [`crate::Config::snapshot_interval`] entries past the newest
    /// snapshot, or a follower needs a snapshot and there is none (a node joining the
    /// cluster): take one at this applied index, with the configuration
    /// [`RawNode::conf_state_at`] that index, then call [`RawNode::on_snapshot_taken`] and
    /// compact storage up to it (keeping a tail for slow followers).
    pub snapshot_due: Option<LogIndex>,
    /// The configuration in effect changed since the previous ready: an entry of kind
    /// [`crate::EntryKind::ConfChange`] was appended or replaced, or a snapshot installed.
    /// For information (e.g. to connect to new members); there is nothing to persist, since
    /// the configuration follows from the log (see [`RawNode::propose_conf_change`]).
    pub conf_state: Option<ConfState>,
}

impl Ready {
    /// Whether steps 2–3 have anything to write.
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some() || !self.entries.is_empty() || self.snapshot.is_some()
    }
}

/// What a ready promised to persist, kept until acknowledged.
struct InFlight {
    number: u64,
    hard_state: Option<HardState>,
    last: Option<(LogIndex, Term)>,
    snapshot: Option<LogIndex>,
    /// Answers to send once this write is durable.
    answers: Vec<Message>,
}

/// A Raft node without I/O, time or threads.
///
/// ```
/// use raft_core::{Config, ConfState, MemStorage, NodeId, RawNode, Role};
///
/// // A one-node cluster elects itself and commits a proposal.
/// let store = MemStorage::new(ConfState::new([NodeId(1)]));
/// let mut node = RawNode::new(&Config::new(NodeId(1)), store).unwrap();
/// node.campaign();
/// let mut applied = Vec::new();
/// for _ in 0..4 {
///     let rd = node.ready();
///     node.store_mut().append(&rd.entries).unwrap();
///     if let Some(hs) = rd.hard_state {
///         node.store_mut().set_hard_state(hs);
///     }
///     node.on_persisted(rd.number).unwrap();
///     for e in &rd.committed_entries {
///         applied.push(e.data.clone());
///         node.on_applied(e.index).unwrap();
///     }
///     if node.status().role == Role::Leader && applied.is_empty() {
///         node.propose(b"hello".to_vec().into()).unwrap();
///     }
/// }
/// assert!(applied.iter().any(|d| &d[..] == b"hello"));
/// ```
pub struct RawNode<S> {
    raft: Raft<S>,
    prev_soft: SoftState,
    prev_hard: HardState,
    next_number: u64,
    in_flight: VecDeque<InFlight>,
    /// The applied index a snapshot was last suggested at.
    snapshot_suggested: LogIndex,
    /// The configuration version last handed out in a ready.
    reported_conf_version: u64,
}

/// A peer as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// Highest index known to match.
    pub matched: LogIndex,
    /// Next index to send.
    pub next: LogIndex,
    /// Replication state.
    pub state: ProgressState,
}

/// A snapshot of a node's state for metrics, admin commands and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term.
    pub term: Term,
    /// Vote in the current term.
    pub vote: NodeId,
    /// Role.
    pub role: Role,
    /// Known leader.
    pub leader: NodeId,
    /// Commit index.
    pub commit: LogIndex,
    /// Highest index acknowledged applied.
    pub applied: LogIndex,
    /// Highest index acknowledged durable.
    pub durable: LogIndex,
    /// First index in the log.
    pub first_index: LogIndex,
    /// Last index in the log.
    pub last_index: LogIndex,
    /// Index of the newest snapshot (0 if none).
    pub snapshot_index: LogIndex,
    /// Per-peer replication state (leader only).
    pub peers: Vec<PeerStatus>,
    /// The target of the leadership transfer this leader is running (proposals are refused
    /// meanwhile), if any.
    pub transferring: Option<NodeId>,
    /// This leader holds a read lease now ([`crate::Config::read_lease`]): a
    /// [`RawNode::read_index`] is answered in the next [`Ready`] without a heartbeat round.
    pub lease_valid: bool,
    /// Leader only: ticks since it last heard from a quorum (itself included); with
    /// CheckQuorum it steps down when this reaches the election timeout.
    pub quorum_silent_ticks: Option<u64>,
}

impl<S: Storage> RawNode<S> {
    /// A node over `store`, restarting from its persisted state. The state machine is assumed
    /// empty (applied = the compaction point); use [`RawNode::with_applied`] when it persists
    /// its applied index.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        Self::with_applied(config, store, LogIndex(0))
    }

    /// Like [`RawNode::new`] for a state machine that has applied up to `applied`: only later
    /// entries are handed out to apply.
    pub fn with_applied(config: &Config, store: S, applied: LogIndex) -> Result<Self> {
        let raft = Raft::new(config, store, applied)?;
        let prev_hard = raft.hard_state();
        Ok(RawNode {
            prev_soft: raft.soft_state(),
            prev_hard,
            next_number: 1,
            in_flight: VecDeque::new(),
            snapshot_suggested: LogIndex(0),
            reported_conf_version: raft.conf_version,
            raft,
        })
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (pre-vote first when enabled). A node that does not campaign —
    /// a learner, a removed node that knows it, a node waiting to join — does nothing.
    pub fn campaign(&mut self) {
        if self.raft.role != Role::Leader {
            self.raft.campaign();
        }
    }

    /// The transport could not deliver to `peer` (its queue is full, or it is unreachable).
    /// A leader stops pipelining to it and falls back to probing: one AppendEntries at a time
    /// from just after what the peer is known to hold, so nothing is sent into a void.
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if self.raft.role != Role::Leader || peer == self.raft.id {
            return;
        }
        if let Some(p) = self.raft.progress.get_mut(&peer) {
            if p.state == ProgressState::Replicate {
                p.become_probe();
            }
        }
    }

    /// Hands leadership over to `target`, a voter (thesis §3.10). The leader stops accepting
    /// proposals ([`Error::TransferInProgress`]), brings `target` up to date and then tells
    /// it to campaign at once ([`crate::MessageBody::TimeoutNow`]); `target` wins the election
    /// of the next term and this node steps down. If that has not happened within one
    /// election timeout (`election_ticks` ticks) the transfer is abandoned and proposals are
    /// accepted again; [`Status::transferring`] shows a transfer in progress.
    ///
    /// A second call for the same target while its transfer runs changes nothing; a call for
    /// another target replaces it (and restarts the timeout).
    ///
    /// Errors: [`Error::NotLeader`] on a non-leader, [`Error::TransferToSelf`] for the leader
    /// itself, [`Error::UnknownPeer`] for a node that is not a voter.
    ///
    /// ```
    /// use raft_core::{Config, ConfState, Error, MemStorage, NodeId, RawNode};
    ///
    /// let store = MemStorage::new(ConfState::new([NodeId(1), NodeId(2)]));
    /// let mut node = RawNode::new(&Config::new(NodeId(1)), store).unwrap();
    /// // Only a leader can hand leadership over.
    /// assert!(matches!(node.transfer_leader(NodeId(2)), Err(Error::NotLeader { .. })));
    /// ```
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<()> {
        self.raft.transfer_leader(target)
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<()> {
        self.raft.step(m)
    }

    /// Proposes one entry; returns its `(index, term)`. It is committed when an entry at that
    /// index with that term is handed out in `committed_entries`. Fails with
    /// [`Error::NotLeader`] on a non-leader and [`Error::TransferInProgress`] while this leader
    /// hands leadership over: retry on the new leader.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term)> {
        self.raft.propose(vec![data])
    }

    /// Proposes several entries at once; returns the `(index, term)` of the last one.
    pub fn propose_batch(&mut self, data: Vec<Bytes>) -> Result<(LogIndex, Term)> {
        if data.is_empty() {
            return Ok((self.raft.log.last_index(), self.raft.term));
        }
        self.raft.propose(data)
    }

    /// Proposes a membership change; returns the `(index, term)` of its entry, which is
    /// committed like any other ([`crate::EntryKind::ConfChange`] entries come out in
    /// `committed_entries`; the state machine applies nothing for them, but may read their
    /// [`ConfChange::context`], e.g. a new member's address).
    ///
    /// The change takes effect on each node as soon as its entry is in that node's log — the
    /// caller applies and persists nothing: [`RawNode::conf_state`] is always the latest
    /// configuration in the log, [`Ready::conf_state`] says when it changed, and a restarted
    /// node finds it again in its log. Only snapshots carry a configuration (the one
    /// [`RawNode::conf_state_at`] their index). See [`crate::confchange`] for simple and
    /// joint changes; a joint change with `auto_leave` is left by the leader itself once
    /// committed.
    ///
    /// The usual way to add a node: start it with an empty configuration and log (it waits
    /// to join and receives a snapshot first), add it as a learner, wait until it caught up
    /// ([`Status::peers`]), then promote it with [`ConfChange::add_voter`]. A leader that
    /// removes (or demotes) itself keeps leading until that configuration is committed, then
    /// steps down. Only voters campaign: a learner, a node waiting to join and a node that
    /// knows its removal committed never do (a node removed by an entry it does not know
    /// committed still may: its log may be the one a new leader needs, thesis §4.2.2). Any
    /// node answers vote requests; the candidate's configuration decides whose votes count.
    ///
    /// Errors: [`Error::NotLeader`]; [`Error::TransferInProgress`]; [`Error::ConfChangePending`]
    /// while the previous change (or, on a new leader, the first entry of its term) is not
    /// applied — one change at a time; [`Error::InvalidConfChange`] for a change the
    /// configuration in effect does not allow (see [`crate::ConfChangeError`]).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(LogIndex, Term)> {
        self.raft.propose_conf_change(cc)
    }

    /// The configuration in effect: the latest one in this node's log.
    pub fn conf_state(&self) -> &ConfState {
        &self.raft.conf_state
    }

    /// The configuration in effect at log index `index` (the one a snapshot at `index` must
    /// carry), for indexes from the newest snapshot to the last index; `None` outside.
    pub fn conf_state_at(&self, index: LogIndex) -> Option<ConfState> {
        self.raft.conf_state_at(index)
    }

    /// Requests a linearizable read index for `ctx` (on a follower, from the leader). The
    /// leader confirms its leadership with a heartbeat round first, or with
    /// [`Config::read_lease`] answers at once (in the next [`Ready`]) while its lease holds
    /// ([`Status::lease_valid`]).
    pub fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        self.raft.read_index(ctx)
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft
            || r.hard_state() != self.prev_hard
            || r.log.has_unpersisted()
            || r.log.has_unpersisted_snapshot()
            || self.snapshot_due().is_some()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || r.log.has_committed_to_apply()
            || !r.read_states.is_empty()
            || !r.failed_reads.is_empty()
            || (r.role == Role::Leader && r.broadcast_pending)
            || r.reads_ready_to_start()
            || r.conf_commit_pending
            || r.conf_version != self.reported_conf_version
    }

    /// Drops answers not yet released that acknowledge entries replaced since (a conflict
    /// or a snapshot): they would tell a leader we hold entries we no longer hold.
    fn drop_stale_answers(&mut self) {
        if let Some(from) = self.raft.stale_acks_from.take() {
            for f in &mut self.in_flight {
                f.answers
                    .retain(|m| !crate::raft::is_ack_at_or_above(m, from));
            }
        }
    }

    /// Takes the pending effects.
    pub fn ready(&mut self) -> Ready {
        self.drop_stale_answers();
        let r = &mut self.raft;
        if r.role == Role::Leader {
            r.flush_reads();
            if r.broadcast_pending {
                r.broadcast_append();
            }
            // After the commit index went out: drop removed nodes, or step down if removed.
            r.finish_conf_commit();
        }
        let number = self.next_number;
        self.next_number += 1;

        let soft = r.soft_state();
        let soft_state = (soft != self.prev_soft).then_some(soft);
        self.prev_soft = soft;
        let hard = r.hard_state();
        let hard_state = (hard != self.prev_hard).then_some(hard);
        self.prev_hard = hard;

        let snapshot = r.log.take_snapshot();
        let entries = r.log.take_unpersisted();
        let committed_entries = r
            .log
            .take_committed(r.cfg.max_apply_bytes)
            .unwrap_or_else(|e| {
                tracing::error!(node = %r.id, error = %e, "cannot read committed entries");
                Vec::new()
            });
        let last = entries.last().map(|e| (e.index, e.term));
        let mut messages = std::mem::take(&mut r.msgs);
        let answers = std::mem::take(&mut r.msgs_after_persist);
        let writes = hard_state.is_some() || !entries.is_empty() || snapshot.is_some();
        let mut own_answers = Vec::new();
        if writes {
            own_answers = answers;
        } else if let Some(f) = self
            .in_flight
            .iter_mut()
            .rev()
            .find(|f| f.hard_state.is_some() || f.last.is_some() || f.snapshot.is_some())
        {
            // Nothing to write here, but the answers may repeat a promise (an append ack, a
            // vote) whose write is still in flight: they go out with that write.
            f.answers.extend(answers);
        } else {
            // Everything they promise is durable already.
            messages.extend(answers);
        }
        self.in_flight.push_back(InFlight {
            number,
            hard_state,
            last,
            snapshot: snapshot.as_ref().map(|s| s.index),
            answers: own_answers,
        });
        let snapshot_due = self.snapshot_due();
        if let Some(at) = snapshot_due {
            self.snapshot_suggested = at;
        }
        let r = &mut self.raft;
        let conf_state = (r.conf_version != self.reported_conf_version).then(|| {
            self.reported_conf_version = r.conf_version;
            r.conf_state.clone()
        });
        Ready {
            conf_state,
            number,
            soft_state,
            hard_state,
            snapshot,
            snapshot_due,
            entries,
            messages,
            committed_entries,
            read_states: std::mem::take(&mut r.read_states),
            failed_reads: std::mem::take(&mut r.failed_reads),
        }
    }

    /// Acknowledges that ready `number` and every earlier one are durable — also for a ready
    /// with nothing to write: acknowledge it only once every earlier write is. Returns the
    /// answers that waited for it (append acknowledgements, votes): send them now. Answers
    /// made stale meanwhile (their entries were replaced by a later ready) are not returned,
    /// so a writer may make several readies durable in one batch.
    pub fn on_persisted(&mut self, number: u64) -> Result<Vec<Message>> {
        if number >= self.next_number {
            return Err(Error::InvalidAck("ready number was never handed out"));
        }
        self.drop_stale_answers();
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|f| f.number <= number) {
            // The loop condition just checked that a front element exists.
            let f = self.in_flight.pop_front().expect("front exists");
            if let Some(index) = f.snapshot {
                self.raft.log.snapshot_persisted(index);
            }
            self.raft.on_persisted(f.hard_state, f.last);
            out.extend(f.answers);
        }
        Ok(out)
    }

    /// Whether the snapshot [`Ready::snapshot_due`] suggests is needed rather than periodic:
    /// a follower needs entries the log no longer holds, and nothing can be sent to it until
    /// the caller takes one. A caller may put off a periodic snapshot (it is suggested again
    /// [`crate::Config::snapshot_interval`] entries later), not a needed one.
    pub fn snapshot_needed(&self) -> bool {
        self.raft.snapshot_wanted
    }

    /// The applied index at which a snapshot is due, if one is.
    fn snapshot_due(&self) -> Option<LogIndex> {
        let interval = self.raft.cfg.snapshot_interval;
        let log = &self.raft.log;
        let base = log
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.index)
            .max(self.snapshot_suggested);
        let periodic = interval > 0 && log.applied.get() >= base.get().saturating_add(interval);
        let wanted = self.raft.snapshot_wanted && log.applied > base;
        (periodic || wanted).then_some(log.applied)
    }

    /// The caller took a snapshot of its state machine at `meta.index` (at most the applied
    /// index) and recorded it in storage: the leader sends it to followers that need entries
    /// from before it, so storage may now compact up to `meta.index`.
    pub fn on_snapshot_taken(&mut self, meta: SnapshotMeta) -> Result<()> {
        if meta.index > self.raft.log.applied {
            return Err(Error::InvalidAck("snapshot beyond the applied index"));
        }
        if self
            .raft
            .conf_state_at(meta.index)
            .is_some_and(|cs| cs != meta.conf_state)
        {
            return Err(Error::InvalidAck(
                "the snapshot's configuration is not the one at its index (RawNode::conf_state_at)",
            ));
        }
        self.raft.snapshot_wanted = false;
        self.raft.conf_snapshot_taken(meta.index);
        self.raft.log.snapshot_taken(meta);
        Ok(())
    }

    /// The caller's transfer of the snapshot at `index` to `peer` finished (`ok`) or failed.
    /// After a failure the leader probes the peer again, and sends the snapshot again if
    /// needed. The caller must report every transfer it starts: until then the leader sends
    /// that peer nothing else.
    pub fn report_snapshot(&mut self, peer: NodeId, index: LogIndex, ok: bool) {
        if self.raft.role == Role::Leader {
            self.raft.report_snapshot(peer, index, ok);
        }
    }

    /// Acknowledges that the state machine applied every entry up to `index`.
    pub fn on_applied(&mut self, index: LogIndex) -> Result<()> {
        let log = &mut self.raft.log;
        if index > log.applying {
            return Err(Error::InvalidAck("applied beyond the entries handed out"));
        }
        log.applied = log.applied.max(index);
        Ok(())
    }

    /// The node's state.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        Status {
            id: r.id,
            term: r.term,
            vote: r.vote,
            role: r.role,
            leader: r.leader,
            commit: r.log.committed,
            applied: r.log.applied,
            durable: r.log.durable,
            first_index: r.log.first_index(),
            last_index: r.log.last_index(),
            snapshot_index: r.log.snapshot.as_ref().map_or(LogIndex(0), |s| s.index),
            peers: r
                .progress
                .iter()
                .map(|(&id, p)| PeerStatus {
                    id,
                    matched: p.matched,
                    next: p.next,
                    state: p.state,
                })
                .collect(),
            transferring: r.transfer.map(|t| t.target),
            lease_valid: r.lease_valid(),
            quorum_silent_ticks: (r.role == Role::Leader)
                .then(|| r.ticks.saturating_sub(r.quorum_active_since())),
        }
    }

    /// The entries in `[lo, hi)` of this node's log (durable or not), for inspection.
    pub fn entries(&self, lo: LogIndex, hi: LogIndex) -> Result<Vec<Entry>> {
        Ok(self.raft.log.slice(lo, hi, u64::MAX)?)
    }

    /// The storage.
    pub fn store(&self) -> &S {
        &self.raft.log.store
    }

    /// The storage, for the caller's writes.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.log.store
    }

    /// Consumes the node, returning its storage (e.g. to restart it).
    pub fn into_store(self) -> S {
        self.raft.log.store
    }
}
