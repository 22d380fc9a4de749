//! ReadIndex (thesis §6.4): linearizable reads without writing to the log.
//!
//! The leader records its commit index as the read index, then confirms it is still leader
//! with one round of heartbeats acknowledged by a quorum; the read is served once the state
//! machine has applied up to the read index. Requests that arrive together share one round:
//! they queue in `waiting` and one round starts for all of them when the node next produces a
//! [`crate::Ready`]. A new leader serves no read before it has committed an entry of its own
//! term, since until then its commit index may lag the cluster's (§8).
//!
//! With [`crate::Config::read_lease`] the leader skips the round while its lease holds (see
//! [`crate::check_quorum`]): every heartbeat then starts a new round, stamped with its send
//! time, so the rounds a quorum acknowledged tell how recently a quorum promised not to vote
//! for anybody else.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::message::{MessageBody, ReadIndexRequest, ReadIndexResponse};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{LogIndex, NodeId, Role};

/// A read that may now be served once the applied index reaches `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's context, as given to [`crate::RawNode::read_index`].
    pub ctx: Bytes,
    /// Serve the read once the local applied index is at least this.
    pub index: LogIndex,
}

/// A read request and who asked (this node, or a follower that forwarded it).
#[derive(Clone, Debug)]
pub(crate) struct ReadRequest {
    pub(crate) ctx: Bytes,
    pub(crate) from: NodeId,
}

#[derive(Debug)]
struct Round {
    id: u64,
    index: LogIndex,
    requests: Vec<ReadRequest>,
}

/// The leader's pending reads.
#[derive(Debug)]
pub(crate) struct ReadOnly {
    /// Requests not yet part of a round.
    waiting: Vec<ReadRequest>,
    /// Rounds started and not yet confirmed, oldest first.
    rounds: VecDeque<Round>,
    last_round: u64,
    /// The highest round each peer has acknowledged.
    acked: BTreeMap<NodeId, u64>,
    /// Stamp rounds with their send time and start one with every heartbeat (lease reads).
    stamped: bool,
    /// `(round, tick it was sent at)` of the rounds sent within the last `keep_ticks` ticks,
    /// oldest first (only when `stamped`).
    sent: VecDeque<(u64, u64)>,
    keep_ticks: u64,
}

impl ReadOnly {
    /// `stamped`: record when each round was sent, for the read lease; rounds older than
    /// `keep_ticks` are forgotten (no lease lasts longer).
    pub(crate) fn new(stamped: bool, keep_ticks: u64) -> Self {
        ReadOnly {
            waiting: Vec::new(),
            rounds: VecDeque::new(),
            last_round: 0,
            acked: BTreeMap::new(),
            stamped,
            sent: VecDeque::new(),
            keep_ticks,
        }
    }

    pub(crate) fn push(&mut self, req: ReadRequest) {
        self.waiting.push(req);
    }

    pub(crate) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Takes the waiting requests (to answer them without a round).
    pub(crate) fn take_waiting(&mut self) -> Vec<ReadRequest> {
        std::mem::take(&mut self.waiting)
    }

    /// Starts a round at read index `index` for every waiting request, sent at tick `now`;
    /// returns its id, to be carried by the heartbeats that confirm it.
    pub(crate) fn start_round(&mut self, index: LogIndex, now: u64) -> u64 {
        let id = self.next_round(now);
        self.rounds.push_back(Round {
            id,
            index,
            requests: std::mem::take(&mut self.waiting),
        });
        id
    }

    /// The round a periodic heartbeat sent at tick `now` carries: the last one started, or
    /// with stamping a new one.
    pub(crate) fn heartbeat_round(&mut self, now: u64) -> u64 {
        if self.stamped {
            self.next_round(now)
        } else {
            self.last_round
        }
    }

    fn next_round(&mut self, now: u64) -> u64 {
        self.last_round += 1;
        if self.stamped {
            while self
                .sent
                .front()
                .is_some_and(|&(_, at)| at + self.keep_ticks <= now)
            {
                self.sent.pop_front();
            }
            self.sent.push_back((self.last_round, now));
        }
        self.last_round
    }

    /// The tick at which round `round` (or the newest round before it still remembered) was
    /// sent; `None` if it is older than `keep_ticks` or was never stamped.
    pub(crate) fn sent_at(&self, round: u64) -> Option<u64> {
        self.sent
            .iter()
            .rev()
            .find(|&&(id, _)| id <= round)
            .map(|&(_, at)| at)
    }

    /// `peer` answered a heartbeat that carried round `round`: it acknowledged this leader
    /// after every round up to `round` had started.
    pub(crate) fn ack(&mut self, peer: NodeId, round: u64) {
        let e = self.acked.entry(peer).or_default();
        *e = (*e).max(round);
    }

    pub(crate) fn acked(&self, peer: NodeId) -> u64 {
        self.acked.get(&peer).copied().unwrap_or(0)
    }

    /// Releases every round up to `confirmed` (the highest round a quorum acknowledged).
    pub(crate) fn release(&mut self, confirmed: u64) -> Vec<(ReadRequest, LogIndex)> {
        let mut out = Vec::new();
        while self.rounds.front().is_some_and(|r| r.id <= confirmed) {
            // The loop condition just checked that a front round exists.
            let r = self.rounds.pop_front().expect("front exists");
            out.extend(r.requests.into_iter().map(|q| (q, r.index)));
        }
        out
    }

    pub(crate) fn has_rounds(&self) -> bool {
        !self.rounds.is_empty()
    }

    /// Drops every pending request (leadership lost) and returns them to be failed.
    pub(crate) fn drain(&mut self) -> Vec<ReadRequest> {
        let mut out = std::mem::take(&mut self.waiting);
        for r in self.rounds.drain(..) {
            out.extend(r.requests);
        }
        self.acked.clear();
        self.sent.clear();
        out
    }
}

impl<S: Storage> Raft<S> {
    /// Asks for a read index for `ctx`. The answer comes as a [`ReadState`] (or a failed
    /// read) in a later [`crate::Ready`].
    pub(crate) fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        if self.role == Role::Leader {
            self.read_only.push(ReadRequest { ctx, from: self.id });
            return Ok(());
        }
        if self.leader.is_none() {
            return Err(Error::NotLeader {
                leader: NodeId::NONE,
            });
        }
        self.forwarded_reads.push(ctx.clone());
        let leader = self.leader;
        self.send(leader, MessageBody::ReadIndex(ReadIndexRequest { ctx }));
        Ok(())
    }

    pub(crate) fn handle_read_index_request(&mut self, from: NodeId, r: ReadIndexRequest) {
        if self.role == Role::Leader {
            self.read_only.push(ReadRequest { ctx: r.ctx, from });
        } else {
            let body = MessageBody::ReadIndexResponse(ReadIndexResponse {
                ctx: r.ctx,
                index: None,
            });
            self.send(from, body);
        }
    }

    pub(crate) fn handle_read_index_response(&mut self, r: ReadIndexResponse) {
        let Some(pos) = self.forwarded_reads.iter().position(|c| *c == r.ctx) else {
            return;
        };
        let ctx = self.forwarded_reads.swap_remove(pos);
        match r.index {
            Some(index) => self.read_states.push(ReadState { ctx, index }),
            None => self.failed_reads.push(ctx),
        }
    }

    /// Starts one heartbeat round for all reads that arrived since the last one, once this
    /// leader has committed an entry of its term — or, while its read lease holds, answers
    /// them at once with its commit index.
    pub(crate) fn flush_reads(&mut self) {
        if self.role != Role::Leader
            || !self.read_only.has_waiting()
            || !self.committed_in_current_term()
        {
            return;
        }
        let index = self.log.committed;
        if self.lease_valid() {
            // No other leader can exist before the lease ends, and this one has committed an
            // entry of its term: its commit index covers every write acknowledged so far.
            for req in self.read_only.take_waiting() {
                self.answer_read(req, index);
            }
            return;
        }
        let round = self.read_only.start_round(index, self.ticks);
        self.send_heartbeats(round);
        self.heartbeat_elapsed = 0;
        self.release_reads();
    }

    pub(crate) fn reads_ready_to_start(&self) -> bool {
        self.role == Role::Leader
            && self.read_only.has_waiting()
            && self.committed_in_current_term()
    }

    /// The highest round a quorum has acknowledged (the leader acknowledges its own rounds).
    pub(crate) fn confirmed_round(&self) -> u64 {
        let me = self.id;
        let ro = &self.read_only;
        self.conf
            .committed(|id| if id == me { u64::MAX } else { ro.acked(id) })
    }

    /// Serves every round a quorum has confirmed.
    pub(crate) fn release_reads(&mut self) {
        if !self.read_only.has_rounds() {
            return;
        }
        let confirmed = self.confirmed_round();
        for (req, index) in self.read_only.release(confirmed) {
            self.answer_read(req, index);
        }
    }

    /// Answers a read at `index`: a read state here, or a response to the follower that asked.
    fn answer_read(&mut self, req: ReadRequest, index: LogIndex) {
        if req.from == self.id {
            self.read_states.push(ReadState {
                ctx: req.ctx,
                index,
            });
        } else {
            let body = MessageBody::ReadIndexResponse(ReadIndexResponse {
                ctx: req.ctx,
                index: Some(index),
            });
            self.send(req.from, body);
            // The follower serves the read once it has applied `index`: it must not wait for
            // a deferred commit notice. With appends in flight it is told with the next one
            // its answer lets go.
            if self.cfg.defer_commit_notice
                && let Some(pr) = self.progress.get_mut(&req.from)
                && pr.sent_commit < index
            {
                pr.commit_wanted = true;
                self.send_append(req.from, crate::replication::Send::IfNewOrCommit);
            }
        }
    }

    /// Fails every read this node can no longer serve (it left its role or term).
    pub(crate) fn fail_pending_reads(&mut self) {
        for req in self.read_only.drain() {
            if req.from == self.id {
                self.failed_reads.push(req.ctx);
            } else {
                let body = MessageBody::ReadIndexResponse(ReadIndexResponse {
                    ctx: req.ctx,
                    index: None,
                });
                self.send(req.from, body);
            }
        }
        self.failed_reads.append(&mut self.forwarded_reads);
    }
}
