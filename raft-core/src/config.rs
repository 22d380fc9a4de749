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
}

impl Config {
    /// Defaults for node `id`: T = 10 ticks, H = 1 tick, pre-vote on.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_apply_bytes: 16 << 20,
            seed: 0,
            snapshot_interval: 10_000,
        }
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
        Ok(())
    }
}
