//! CheckQuorum and the leader's read lease (thesis §6.2, §6.4.1, §9.6).
//!
//! With [`crate::Config::check_quorum`]:
//! - a leader that has not heard from a quorum (itself included) for `election_ticks` ticks
//!   steps down to follower. "Heard from" is any message of the leader's term other than a
//!   vote request (each peer's `last_active` tick), checked on every tick, so a leader cut off
//!   from its majority steps down exactly one election timeout after the last answer it got;
//! - a node that heard from a live leader less than `election_ticks` ticks ago ignores vote
//!   requests for a later term (the leader's "lease", [`Raft::in_leader_lease`]), unless they
//!   come from a leadership transfer. A node that rejoins from a partition with a higher
//!   term therefore cannot depose a healthy leader with its votes.
//!
//! With [`crate::Config::read_lease`] on top, the leader answers reads without a heartbeat
//! round while its lease holds. Every follower that acknowledged a heartbeat sent at tick `s`
//! refuses votes until `election_ticks` of its own ticks after receiving it, so no other
//! leader can be elected before `s + election_ticks` (less the clock drift bound) on the
//! leader's clock. The lease starts at the *send* time of the newest heartbeat a quorum
//! acknowledged (not at the answer's arrival: an answer may be delayed arbitrarily, and only
//! heartbeat answers, never "any message", promise anything), and holds while
//! `ticks - s < election_ticks - max_clock_drift_ticks`, the leader has committed an entry of
//! its term, and no leadership transfer ran in this term (see [`crate::transfer`]).

use tracing::info;

use crate::message::{Message, MessageBody};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{NodeId, Role};

impl<S: Storage> Raft<S> {
    /// The leader notes that `m`'s sender is alive and follows it.
    pub(crate) fn record_activity(&mut self, m: &Message) {
        // A vote request says the sender is looking for another leader.
        if m.term != self.term || matches!(m.body, MessageBody::RequestVote(_)) {
            return;
        }
        let now = self.ticks;
        if let Some(p) = self.progress.get_mut(&m.from) {
            p.last_active = now;
        }
    }

    /// The tick at which the leader last heard from a quorum (itself included): the newest
    /// tick `t` such that a quorum was active at `t` or later.
    pub(crate) fn quorum_active_since(&self) -> u64 {
        let me = self.id;
        let now = self.ticks;
        let progress = &self.progress;
        self.conf.committed(|id| {
            if id == me {
                now
            } else {
                progress.get(&id).map_or(0, |p| p.last_active)
            }
        })
    }

    /// The leader's CheckQuorum on each tick: steps down when no quorum was heard from within
    /// an election timeout. Returns whether it stepped down.
    pub(crate) fn tick_check_quorum(&mut self) -> bool {
        if !self.cfg.check_quorum || self.role != Role::Leader {
            return false;
        }
        let since = self.quorum_active_since();
        if self.ticks.saturating_sub(since) < u64::from(self.cfg.election_ticks) {
            return false;
        }
        info!(node = %self.id, term = %self.term, silent_ticks = self.ticks - since,
              "no quorum heard from within an election timeout; stepping down");
        self.become_follower(self.term, NodeId::NONE);
        true
    }

    /// Whether this leader may answer reads now without a heartbeat round.
    pub(crate) fn lease_valid(&self) -> bool {
        if !self.cfg.read_lease
            || self.role != Role::Leader
            || self.transfer.is_some()
            || self.lease_revoked
            || !self.committed_in_current_term()
        {
            return false;
        }
        self.read_only
            .sent_at(self.confirmed_round())
            .is_some_and(|sent| self.ticks - sent < u64::from(self.cfg.lease_ticks()))
    }
}
