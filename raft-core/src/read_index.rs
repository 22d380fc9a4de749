//! ReadIndex (thesis §6.4): linearizable reads without writing to the log.
//!
//! The leader records its commit index as the read index, then confirms it is still leader
//! with one round of heartbeats acknowledged by a quorum; the read is served once the state
//! machine has applied up to the read index. Requests that arrive together share one round:
//! they queue in `waiting` and one round starts for all of them when the node next produces a
//! [`crate::Ready`]. A new leader serves no read before it has committed an entry of its own
//! term, since until then its commit index may lag the cluster's (§8).

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
#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    /// Requests not yet part of a round.
    waiting: Vec<ReadRequest>,
    /// Rounds started and not yet confirmed, oldest first.
    rounds: VecDeque<Round>,
    last_round: u64,
    /// The highest round each peer has acknowledged.
    acked: BTreeMap<NodeId, u64>,
}

impl ReadOnly {
    pub(crate) fn push(&mut self, req: ReadRequest) {
        self.waiting.push(req);
    }

    pub(crate) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Starts a round at read index `index` for every waiting request; returns its id, to be
    /// carried by the heartbeats that confirm it.
    pub(crate) fn start_round(&mut self, index: LogIndex) -> u64 {
        self.last_round += 1;
        self.rounds.push_back(Round {
            id: self.last_round,
            index,
            requests: std::mem::take(&mut self.waiting),
        });
        self.last_round
    }

    /// The round that heartbeats sent now confirm.
    pub(crate) fn last_round(&self) -> u64 {
        self.last_round
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
    /// leader has committed an entry of its term.
    pub(crate) fn flush_reads(&mut self) {
        if self.role != Role::Leader
            || !self.read_only.has_waiting()
            || !self.committed_in_current_term()
        {
            return;
        }
        self.read_only.start_round(self.log.committed);
        self.broadcast_heartbeat();
        self.heartbeat_elapsed = 0;
        self.release_reads();
    }

    pub(crate) fn reads_ready_to_start(&self) -> bool {
        self.role == Role::Leader
            && self.read_only.has_waiting()
            && self.committed_in_current_term()
    }

    /// Serves every round a quorum has confirmed (the leader confirms its own rounds).
    pub(crate) fn release_reads(&mut self) {
        if !self.read_only.has_rounds() {
            return;
        }
        let me = self.id;
        let ro = &self.read_only;
        let confirmed = self
            .conf
            .committed(|id| if id == me { u64::MAX } else { ro.acked(id) });
        for (req, index) in self.read_only.release(confirmed) {
            if req.from == me {
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
