//! Leadership transfer (thesis §3.10).
//!
//! The leader is asked to hand over to `target`. It stops accepting proposals (so the target
//! can catch up with a log that no longer grows), replicates to the target, and as soon as the
//! target's match index equals the leader's last index sends it [`MessageBody::TimeoutNow`].
//! The target campaigns at once, without pre-vote, at the next term, with a vote request
//! marked `transfer`; being as up to date as the leader it wins, and the old leader steps
//! down on seeing the higher term. If that has not happened within one election timeout the
//! leader gives up and accepts proposals again. A leader that steps down forgets its
//! transfer.
//!
//! Read leases: a leader holds none while a transfer runs, nor for the rest of its term once
//! it sent `TimeoutNow` — the target's votes are granted even by followers that promised
//! this leader not to vote (they are marked `transfer`), and a delayed `TimeoutNow` can start
//! that election after the transfer was abandoned.

use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::message::{MessageBody, TimeoutNow};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::replication::Send;
use crate::storage::Storage;
use crate::types::{NodeId, Role};

/// A transfer the leader is running.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaderTransfer {
    /// The node that is to become leader.
    pub(crate) target: NodeId,
    /// Ticks since the transfer started; it is aborted at the election timeout.
    pub(crate) elapsed: u32,
    /// Whether `TimeoutNow` went out (it is repeated on heartbeat answers, in case it was lost).
    pub(crate) timeout_now_sent: bool,
}

impl<S: Storage> Raft<S> {
    /// Starts handing leadership over to `target`; a transfer already running to the same
    /// target is left alone, one to another target is replaced.
    pub(crate) fn transfer_leader(&mut self, target: NodeId) -> Result<()> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.id {
            return Err(Error::TransferToSelf);
        }
        // The target must be a voter of the configuration being moved to (not a learner,
        // nor a voter of only the outgoing half of a joint configuration).
        if !self.conf_state.voters.contains(&target) || !self.progress.contains_key(&target) {
            return Err(Error::UnknownPeer(target));
        }
        if let Some(t) = self.transfer {
            if t.target == target {
                return Ok(());
            }
            info!(node = %self.id, term = %self.term, from = %t.target, to = %target,
                  "leadership transfer redirected");
        } else {
            info!(node = %self.id, term = %self.term, to = %target, "leadership transfer started");
        }
        self.transfer = Some(LeaderTransfer {
            target,
            elapsed: 0,
            timeout_now_sent: false,
        });
        if !self.maybe_send_timeout_now(target) {
            // Bring the target up to date now rather than at the next heartbeat answer. What
            // was sent and not acknowledged may have been lost: a probe is sent again, and a
            // pipeline with nothing new to send gets an empty append at its tail, which either
            // succeeds or is rejected with a hint. That costs a message; waiting costs part of
            // the transfer's time.
            if let Some(p) = self.progress.get_mut(&target)
                && p.state == ProgressState::Probe
            {
                p.probe_sent = false;
            }
            self.send_append(target, Send::Always);
        }
        Ok(())
    }

    /// The leader's tick: a transfer that did not complete within an election timeout is
    /// abandoned, and proposals are accepted again.
    pub(crate) fn tick_transfer(&mut self) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        t.elapsed = t.elapsed.saturating_add(1);
        if t.elapsed >= self.cfg.election_ticks {
            info!(node = %self.id, term = %self.term, to = %t.target,
                  "leadership transfer timed out; aborted");
            self.transfer = None;
        }
    }

    /// `peer` answered the leader: if it is the transfer's target and holds the leader's whole
    /// log, tell it to campaign now. `TimeoutNow` goes out once on catching up and again on
    /// every heartbeat answer (`resend`) until the transfer ends, in case it was lost.
    /// Returns whether it was sent.
    pub(crate) fn maybe_send_timeout_now_to(&mut self, peer: NodeId, resend: bool) -> bool {
        match self.transfer {
            Some(t) if t.target == peer && (resend || !t.timeout_now_sent) => {
                self.maybe_send_timeout_now(peer)
            }
            _ => false,
        }
    }

    fn maybe_send_timeout_now(&mut self, target: NodeId) -> bool {
        let last = self.log.last_index();
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|p| p.matched == last);
        if !caught_up {
            return false;
        }
        if let Some(t) = self.transfer.as_mut() {
            t.timeout_now_sent = true;
        }
        // The target may campaign whenever this arrives, with votes that ignore leases.
        self.lease_revoked = true;
        debug!(node = %self.id, term = %self.term, to = %target, last_index = %last,
               "transfer target caught up; sending TimeoutNow");
        self.send(target, MessageBody::TimeoutNow(TimeoutNow {}));
        true
    }

    /// A `TimeoutNow` of our term: only a follower hearing it from its current leader
    /// campaigns (at once, skipping pre-vote). Anything else is ignored.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role != Role::Follower || self.leader != from {
            debug!(node = %self.id, term = %self.term, from = %from, role = ?self.role,
                   leader = %self.leader, "TimeoutNow not from our leader; ignored");
            return;
        }
        info!(node = %self.id, term = %self.term, from = %from,
              "leader hands leadership over; campaigning now");
        self.campaign_transfer();
    }
}
