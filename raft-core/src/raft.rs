//! The protocol state of one node and the dispatch of its inputs. The rules themselves live
//! in concept modules: [`crate::election`], [`crate::replication`], [`crate::read_index`].

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, info};

use crate::config::Config;
use crate::error::Result;
use crate::log::RaftLog;
use crate::membership::{ConfHistory, load_history};
use crate::message::{HeartbeatResponse, Message, MessageBody, RequestVoteResponse};
use crate::progress::Progress;
use crate::quorum::JointConfig;
use crate::read_index::{ReadOnly, ReadState};
use crate::rng::Rng;
use crate::storage::Storage;
use crate::transfer::LeaderTransfer;
use crate::types::{ConfState, HardState, LogIndex, NodeId, Role, SoftState, Term};

pub(crate) struct Raft<S> {
    pub(crate) id: NodeId,
    pub(crate) cfg: Config,
    pub(crate) term: Term,
    pub(crate) vote: NodeId,
    pub(crate) role: Role,
    pub(crate) leader: NodeId,
    pub(crate) log: RaftLog<S>,
    /// The configuration in effect: the latest in the log (see [`crate::membership`]).
    pub(crate) conf_state: ConfState,
    /// Its voters, for the quorum math.
    pub(crate) conf: JointConfig,
    /// The configurations the log defines, from the newest snapshot on.
    pub(crate) confs: ConfHistory,
    /// Bumped whenever the configuration in effect is recomputed (for [`crate::Ready`]).
    pub(crate) conf_version: u64,
    /// Leader: a newly committed configuration waits for its commit index to go out before
    /// the leader drops the nodes it removed (or steps down, if it removed this node).
    pub(crate) conf_commit_pending: bool,
    /// Leader: nodes a committed configuration removed, still replicated to (so they learn
    /// the commit of their removal) until the tick given here.
    pub(crate) departing: BTreeMap<NodeId, u64>,
    /// Leader: the index of the first entry of its term; no configuration change before it
    /// is applied.
    pub(crate) term_start: LogIndex,
    /// A peer needs a snapshot and there is none to send (or it is older than the log's
    /// start): the caller is asked to take one.
    pub(crate) snapshot_wanted: bool,
    /// Per-peer replication state (leader only); includes this node.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)election.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Ticks since this node started: the clock of CheckQuorum and of the read lease.
    pub(crate) ticks: u64,
    /// Lease reads: this node restarted less than an election timeout ago and may have
    /// acknowledged a leader just before; it honours that leader's lease as if it had just
    /// heard from it. Cleared on any role change.
    pub(crate) restart_lease: bool,
    /// A `TimeoutNow` went out in this leader's term: the target may campaign at any time
    /// (the message may be delayed) with votes that ignore leases, so this leader holds no
    /// read lease for the rest of its term.
    pub(crate) lease_revoked: bool,
    pub(crate) randomized_timeout: u32,
    rng: Rng,
    /// Messages to send now.
    pub(crate) msgs: Vec<Message>,
    /// Messages to send once everything handed out so far is durable.
    pub(crate) msgs_after_persist: Vec<Message>,
    /// The log lost entries from this index on (a conflict or a snapshot) since the last
    /// ready: acknowledgements held back by the caller's handle for them are stale.
    pub(crate) stale_acks_from: Option<LogIndex>,
    pub(crate) read_only: ReadOnly,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) failed_reads: Vec<Bytes>,
    /// Read contexts this follower forwarded to the leader and awaits.
    pub(crate) forwarded_reads: Vec<Bytes>,
    /// The leader has new entries (or a new commit index) for its followers.
    pub(crate) broadcast_pending: bool,
    /// The last hard state known durable.
    pub(crate) durable_hard_state: HardState,
    /// The leadership transfer this leader is running, if any.
    pub(crate) transfer: Option<LeaderTransfer>,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn new(cfg: &Config, store: S, applied: LogIndex) -> Result<Self> {
        cfg.validate()?;
        let init = store.initial_state()?;
        let confs = load_history(cfg.id, &store, init.conf_state)?;
        let conf_state = confs.latest().clone();
        let hs = init.hard_state;
        let log = RaftLog::new(store, hs.commit, applied)?;
        let mut r = Raft {
            id: cfg.id,
            cfg: cfg.clone(),
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: NodeId::NONE,
            log,
            conf: JointConfig::from(&conf_state),
            conf_state,
            confs,
            conf_version: 0,
            conf_commit_pending: false,
            departing: BTreeMap::new(),
            term_start: LogIndex(0),
            snapshot_wanted: false,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            // A node that has been part of a term may have promised a leader, before it went
            // down, not to vote for an election timeout; lease reads count on that promise.
            restart_lease: cfg.read_lease && hs.term > Term(0),
            lease_revoked: false,
            randomized_timeout: cfg.election_ticks,
            rng: Rng::new(cfg.seed ^ cfg.id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            stale_acks_from: None,
            read_only: ReadOnly::new(cfg.read_lease, u64::from(cfg.election_ticks)),
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            forwarded_reads: Vec::new(),
            broadcast_pending: false,
            durable_hard_state: hs,
            transfer: None,
        };
        r.reset_timers();
        info!(node = %r.id, term = %r.term, commit = %r.log.committed,
              last_index = %r.log.last_index(), "raft node started");
        Ok(r)
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
        }
    }

    /// The leader's commit index counts only entries of its own term (§5.4.2).
    pub(crate) fn committed_in_current_term(&self) -> bool {
        self.log
            .term(self.log.committed)
            .is_ok_and(|t| t == self.term)
    }

    pub(crate) fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_timeout = self
            .rng
            .range(self.cfg.election_ticks, 2 * self.cfg.election_ticks);
    }

    /// Leaves whatever role this node had and fails the reads it can no longer serve.
    fn reset(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.vote = NodeId::NONE;
        }
        self.leader = NodeId::NONE;
        self.votes.clear();
        self.progress.clear();
        self.broadcast_pending = false;
        self.transfer = None;
        self.conf_commit_pending = false;
        self.departing.clear();
        self.snapshot_wanted = false;
        self.restart_lease = false;
        self.lease_revoked = false;
        self.reset_timers();
        self.fail_pending_reads();
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: NodeId) {
        let was = self.soft_state();
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        if was.role != Role::Follower || was.leader != leader {
            info!(node = %self.id, term = %self.term, leader = %leader, "became follower");
        }
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        // The term does not change: a pre-candidate that cannot win disturbs nobody (§9.6).
        let term = self.term;
        self.reset(term);
        self.role = Role::PreCandidate;
        debug!(node = %self.id, term = %self.term, "became pre-candidate");
    }

    pub(crate) fn become_candidate(&mut self) {
        let term = self.term.next();
        self.reset(term);
        self.role = Role::Candidate;
        self.vote = self.id;
        info!(node = %self.id, term = %self.term, "became candidate");
    }

    pub(crate) fn become_leader(&mut self) {
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = self.id;
        // Every member gets a progress, and an election timeout to answer (CheckQuorum).
        self.sync_progress();
        let durable = self.log.durable;
        if let Some(p) = self.progress.get_mut(&self.id) {
            p.matched = durable;
            p.become_replicate();
        }
        info!(node = %self.id, term = %self.term, last_index = %self.log.last_index(), "became leader");
        // A no-op of the new term lets earlier entries commit promptly (§5.4.2, §8).
        self.term_start = self.log.last_index().next();
        self.append_noop();
        // A joint configuration the previous leader committed but did not leave.
        self.maybe_auto_leave();
    }

    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    pub(crate) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let m = Message {
            from: self.id,
            to,
            term,
            body,
        };
        // Answers that promise something about this node's durable state (a vote, entries
        // appended) wait until that state is durable (§5.1: "respond after persisting").
        let after_persist = matches!(
            &m.body,
            MessageBody::AppendEntriesResponse(_)
                | MessageBody::RequestVoteResponse(RequestVoteResponse {
                    pre_vote: false,
                    ..
                })
        );
        if after_persist {
            self.msgs_after_persist.push(m);
        } else {
            self.msgs.push(m);
        }
    }

    /// Entries from `from` on are being replaced: acknowledgements of them that are not sent
    /// yet would tell a leader we hold entries we no longer hold (and could let it commit an
    /// entry a quorum does not have). Drop them.
    pub(crate) fn drop_stale_acks(&mut self, from: LogIndex) {
        self.msgs_after_persist
            .retain(|m| !is_ack_at_or_above(m, from));
        self.stale_acks_from = Some(self.stale_acks_from.map_or(from, |f| f.min(from)));
    }

    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
        match self.role {
            Role::Leader => {
                self.tick_transfer();
                self.tick_departing();
                if self.tick_check_quorum() {
                    return;
                }
                self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
                if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                    self.heartbeat_elapsed = 0;
                    self.broadcast_heartbeat();
                }
                // After the heartbeat, which may have told the followers already.
                self.send_deferred_commit();
            }
            _ => {
                self.election_elapsed = self.election_elapsed.saturating_add(1);
                if self.election_elapsed >= self.randomized_timeout && self.may_campaign() {
                    self.election_elapsed = 0;
                    self.campaign();
                }
            }
        }
    }

    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        // Senders outside the configuration are heard too: a leader or candidate may have been
        // added by entries this node has not received yet (see `crate::membership`).
        crate::validate::check(self.id, &m)?;
        if m.term > self.term {
            match &m.body {
                // A pre-vote does not change anybody's term (§9.6); a granted pre-vote answer
                // echoes the term we would campaign in.
                MessageBody::RequestVote(v) if v.pre_vote => {}
                // Leader lease (CheckQuorum, thesis §4.2.3): a node that heard from a live
                // leader lately ignores vote requests, unless that leader asked for them.
                MessageBody::RequestVote(v) if !v.transfer && self.in_leader_lease() => {
                    debug!(node = %self.id, term = %self.term, from = %m.from, msg_term = %m.term,
                           "vote request ignored: the leader's lease holds");
                    return Ok(());
                }
                MessageBody::RequestVoteResponse(v) if v.pre_vote && v.granted => {}
                MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::InstallSnapshot(_) => self.become_follower(m.term, m.from),
                _ => self.become_follower(m.term, NodeId::NONE),
            }
        } else if m.term < self.term {
            // A stale message: answer only where the answer tells the sender it is behind,
            // and never touch the election timer.
            match &m.body {
                MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::InstallSnapshot(_) => {
                    self.send(
                        m.from,
                        MessageBody::HeartbeatResponse(HeartbeatResponse { read_round: 0 }),
                    );
                }
                MessageBody::RequestVote(v) if v.pre_vote => {
                    self.send(
                        m.from,
                        MessageBody::RequestVoteResponse(RequestVoteResponse {
                            pre_vote: true,
                            granted: false,
                        }),
                    );
                }
                _ => {}
            }
            debug!(node = %self.id, term = %self.term, from = %m.from, msg_term = %m.term,
                   kind = m.body.name(), "ignored stale message");
            return Ok(());
        }

        if self.role == Role::Leader {
            self.record_activity(&m);
        }
        match m.body {
            MessageBody::RequestVote(v) => self.handle_vote_request(m.from, m.term, v),
            MessageBody::RequestVoteResponse(v) => self.handle_vote_response(m.from, v),
            MessageBody::AppendEntries(a) => {
                if self.accept_leader(m.from) {
                    self.handle_append(m.from, a)?;
                }
            }
            MessageBody::Heartbeat(h) => {
                if self.accept_leader(m.from) {
                    self.handle_heartbeat(m.from, h);
                }
            }
            MessageBody::AppendEntriesResponse(r) => {
                if self.role == Role::Leader {
                    self.handle_append_response(m.from, r);
                }
            }
            MessageBody::HeartbeatResponse(r) => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_response(m.from, r);
                }
            }
            MessageBody::ReadIndex(r) => self.handle_read_index_request(m.from, r),
            MessageBody::ReadIndexResponse(r) => self.handle_read_index_response(r),
            MessageBody::InstallSnapshot(s) => {
                if self.accept_leader(m.from) {
                    self.handle_install_snapshot(m.from, s.meta);
                }
            }
            MessageBody::TimeoutNow(_) => self.handle_timeout_now(m.from),
        }
        Ok(())
    }

    /// A message from the leader of our term: followers reset their election timer;
    /// (pre-)candidates step down (§5.2). Returns false when it must be ignored.
    fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => {
                // Election safety makes this impossible with a correct peer.
                tracing::error!(node = %self.id, term = %self.term, from = %from,
                                "second leader in the same term; message ignored");
                false
            }
            Role::Candidate | Role::PreCandidate => {
                self.become_follower(self.term, from);
                true
            }
            Role::Follower => {
                if self.leader != from {
                    if !self.leader.is_none() {
                        tracing::error!(node = %self.id, term = %self.term, from = %from,
                                        leader = %self.leader, "two leaders in one term");
                        return false;
                    }
                    self.leader = from;
                    info!(node = %self.id, term = %self.term, leader = %from, "leader known");
                }
                self.election_elapsed = 0;
                true
            }
        }
    }

    /// Acknowledgement from the caller: the hard state `hs` is durable and entries up to
    /// `last` (if any were handed out) too.
    pub(crate) fn on_persisted(&mut self, hs: Option<HardState>, last: Option<(LogIndex, Term)>) {
        if let Some((index, term)) = last {
            self.log.persisted_to(index, term);
        }
        if let Some(hs) = hs {
            self.durable_hard_state = hs;
        }
        match self.role {
            Role::Leader => {
                let durable = self.log.durable;
                if let Some(p) = self.progress.get_mut(&self.id)
                    && p.maybe_update(durable)
                    && self.maybe_commit()
                {
                    // Our own write completed the quorum: tell the followers.
                    self.broadcast_pending = true;
                }
            }
            Role::Candidate => {
                // Our own vote counts only once it is durable: a candidate that crashed before
                // could vote for someone else in the same term after restart.
                let d = self.durable_hard_state;
                if d.term == self.term && d.vote == self.id && !self.votes.contains_key(&self.id) {
                    self.poll(self.id, true);
                }
            }
            _ => {}
        }
    }
}

/// Whether `m` acknowledges log entries at or above `from`.
pub(crate) fn is_ack_at_or_above(m: &Message, from: LogIndex) -> bool {
    matches!(&m.body, MessageBody::AppendEntriesResponse(r) if r.reject.is_none() && r.index >= from)
}
