//! Tunables of one Raft node, validated before a node is built.

use crate::error::ConfigError;
use crate::types::NodeId;

/// The configuration of one node. Times are in ticks: the caller decides how long a tick is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// T: a follower that hears nothing from a leader for a random time in `[T, 2T)` ticks
    /// starts an election.
    pub election_ticks: u32,
    /// H: a leader sends heartbeats every H ticks. Must be smaller than T.
    pub heartbeat_ticks: u32,
    /// Run a pre-vote round before bumping the term (thesis §9.6), so that a node that cannot
    /// win does not disrupt a healthy leader.
    pub pre_vote: bool,
    /// CheckQuorum (thesis §6.2, §9.6): a leader that has not heard from a quorum (itself
    /// included) for `election_ticks` ticks steps down, and a node that heard from a live
    /// leader within the last `election_ticks` ticks ignores vote requests for a later term
    /// (and refuses pre-votes) unless they come from a leadership transfer.
    /// Every node of a cluster should agree on it; [`Config::read_lease`] depends on it.
    pub check_quorum: bool,
    /// Lease-based reads (thesis §6.4.1): while a quorum acknowledged a heartbeat sent less
    /// than `election_ticks - max_clock_drift_ticks` ticks ago (and no leadership transfer
    /// ran in this term), the leader answers [`crate::RawNode::read_index`] at once with its
    /// commit index instead of confirming its leadership with a heartbeat round. A node with
    /// it also keeps refusing votes for an election timeout after it restarts (it may have
    /// acknowledged the leader just before going down). Safe only if every node runs with
    /// `check_quorum` and `read_lease`, and tick rates differ by less than
    /// `max_clock_drift_ticks` per election timeout. Requires `check_quorum`.
    pub read_lease: bool,
    /// How many ticks the lease is shortened by, to absorb clock drift between the leader and
    /// its followers over one election timeout. Must be below `election_ticks` when
    /// `read_lease` is on.
    pub max_clock_drift_ticks: u32,
    /// The most entry bytes in one AppendEntries message (at least one entry is always sent).
    pub max_size_per_msg: u64,
    /// The most AppendEntries messages in flight to one follower in replicate state.
    pub max_inflight_msgs: usize,
    /// The most entry bytes in flight to one follower (0 = no byte limit).
    pub max_inflight_bytes: u64,
    /// The most committed-entry bytes handed out in one [`crate::Ready`] (at least one entry).
    pub max_apply_bytes: u64,
    /// Seed for the election-timeout randomness; mixed with `id`, so nodes may share it.
    pub seed: u64,
    /// Suggest a snapshot ([`crate::Ready::snapshot_due`]) once this many entries were applied
    /// since the newest snapshot (0 = never).
    pub snapshot_interval: u64,
    /// Do not send a follower an empty append only to tell it a new commit index. It learns
    /// the index from the next append with entries, from a heartbeat, or at the leader's next
    /// tick; at once when it asked for a read index, or when a configuration change commits.
    /// It saves an append (and a wake-up) per commit to a follower with nothing else to
    /// receive: half the appends a follower gets from a lone writer. The price: followers
    /// apply up to a tick later once writes stop.
    /// Leaders never wait for it: a write commits when a quorum holds it. raft-rs calls it
    /// `skip_bcast_commit`.
    pub defer_commit_notice: bool,
}

impl Config {
    /// Defaults for node `id`: T = 10 ticks, H = 1 tick, pre-vote and CheckQuorum on,
    /// lease reads off (a lease would be T - 2 = 8 ticks).
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            read_lease: false,
            max_clock_drift_ticks: 2,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_apply_bytes: 16 << 20,
            seed: 0,
            snapshot_interval: 10_000,
            defer_commit_notice: false,
        }
    }

    /// How many ticks a lease lasts after the heartbeat that a quorum acknowledged was sent:
    /// `election_ticks - max_clock_drift_ticks` (0 when the drift bound is not below T).
    pub fn lease_ticks(&self) -> u32 {
        self.election_ticks
            .saturating_sub(self.max_clock_drift_ticks)
    }

    /// Checks the invariants between the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.is_none() {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.heartbeat_ticks >= self.election_ticks {
            return Err(ConfigError::HeartbeatNotBelowElection {
                heartbeat: self.heartbeat_ticks,
                election: self.election_ticks,
            });
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::ZeroInflight);
        }
        if self.max_size_per_msg == 0 || self.max_apply_bytes == 0 {
            return Err(ConfigError::ZeroSizeLimit);
        }
        if self.read_lease {
            if !self.check_quorum {
                return Err(ConfigError::LeaseWithoutCheckQuorum);
            }
            if self.max_clock_drift_ticks >= self.election_ticks {
                return Err(ConfigError::DriftNotBelowElection {
                    drift: self.max_clock_drift_ticks,
                    election: self.election_ticks,
                });
            }
        }
        Ok(())
    }
}
