//! `RAFT.INFO`'s text as a typed value.
//!
//! The node formats RAFT.INFO as Redis formats INFO: `field:value` lines. On a leader, one
//! line per member describes the leader's view of it:
//! `peer2:match_index=41,next_index=42,state=replicate,lag=0` (the leader lists itself too).
//! Unknown fields are ignored, so a node that reports more still parses; a missing field
//! the tools rely on is an error that names it.

use serde::Serialize;
use thiserror::Error;

/// RAFT.INFO's reply did not hold what raftctl needs.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InfoError {
    /// A required field is absent.
    #[error("RAFT.INFO has no `{0}` field")]
    Missing(&'static str),
    /// A field's value is not what it should be.
    #[error("RAFT.INFO field `{field}` has a bad value {value:?}")]
    Bad {
        /// The field.
        field: String,
        /// Its value.
        value: String,
    },
}

/// One node's RAFT.INFO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RaftInfo {
    /// The node's id.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `precandidate` (kept as text: roles may grow,
    /// e.g. learners).
    pub role: String,
    /// Its current term.
    pub term: u64,
    /// The leader it knows for its term, if any (RAFT.INFO says 0 for none).
    pub leader_id: Option<u64>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to its state machine.
    pub applied_index: u64,
    /// Last index in its log.
    pub last_log_index: u64,
    /// First index still in its log (earlier ones are in the snapshot).
    pub first_log_index: u64,
    /// Index of its latest snapshot (0: none).
    pub snapshot_index: u64,
    /// A leadership transfer under way, to this node.
    pub transferring_to: Option<u64>,
    /// The voters of its configuration (`None`: a node that does not report it).
    pub voters: Option<Vec<u64>>,
    /// The learners (receive the log, do not vote).
    pub learners: Vec<u64>,
    /// During a joint configuration change, the outgoing voters (decisions need a
    /// majority of both sets).
    pub voters_outgoing: Vec<u64>,
    /// On a leader: its view of each member, itself included; empty elsewhere.
    pub peers: Vec<PeerInfo>,
}

/// A leader's view of one member's replication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The member.
    pub id: u64,
    /// Highest index known replicated on it.
    pub match_index: u64,
    /// Next index the leader will send it.
    pub next_index: u64,
    /// `replicate`, `probe` or `snapshot`.
    pub state: String,
    /// Entries it is behind the leader's last index.
    pub lag: u64,
}

impl RaftInfo {
    /// Parses RAFT.INFO's text (or INFO's: section headers and blank lines are skipped).
    pub fn parse(text: &str) -> Result<RaftInfo, InfoError> {
        let mut fields = Vec::new();
        let mut peers = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.strip_prefix("peer").and_then(|id| id.parse().ok()) {
                Some(id) => peers.push(parse_peer(id, value)?),
                None => fields.push((key, value)),
            }
        }
        let get = |name: &'static str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or(InfoError::Missing(name))
        };
        let num = |name: &'static str| get(name).and_then(|v| number(name, v));
        let opt_id = |name: &'static str| match get(name) {
            Ok(v) => number(name, v).map(|id| Some(id).filter(|&id| id != 0)),
            Err(_) => Ok(None),
        };
        Ok(RaftInfo {
            node_id: num("node_id")?,
            role: get("role")?.to_owned(),
            term: num("term")?,
            leader_id: opt_id("leader_id")?,
            commit_index: num("commit_index")?,
            applied_index: num("applied_index")?,
            last_log_index: num("last_log_index")?,
            first_log_index: num("first_log_index").unwrap_or(0),
            snapshot_index: num("snapshot_index")?,
            transferring_to: opt_id("transferring_to")?,
            voters: get("voters").ok().map(|v| ids("voters", v)).transpose()?,
            learners: get("learners").map_or(Ok(Vec::new()), |v| ids("learners", v))?,
            voters_outgoing: get("voters_outgoing")
                .map_or(Ok(Vec::new()), |v| ids("voters_outgoing", v))?,
            peers,
        })
    }

    /// Whether it says it leads.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }

    /// Every member of its configuration (voters, learners, outgoing voters), if it reports
    /// its configuration.
    pub fn members(&self) -> Option<Vec<u64>> {
        let mut all: Vec<u64> = self.voters.clone()?;
        all.extend(&self.learners);
        all.extend(&self.voters_outgoing);
        all.sort_unstable();
        all.dedup();
        Some(all)
    }

    /// What node `id` is in its configuration: `voter`, `learner`, or `leaving` (an
    /// outgoing voter of a joint change); `None` if not a member or not reported.
    pub fn membership(&self, id: u64) -> Option<&'static str> {
        if self.voters.as_ref()?.contains(&id) {
            Some("voter")
        } else if self.learners.contains(&id) {
            Some("learner")
        } else if self.voters_outgoing.contains(&id) {
            Some("leaving")
        } else {
            None
        }
    }

    /// The leader's view of member `id` (only on a leader).
    pub fn peer(&self, id: u64) -> Option<&PeerInfo> {
        self.peers.iter().find(|p| p.id == id)
    }
}

fn number(field: &str, value: &str) -> Result<u64, InfoError> {
    value.trim().parse().map_err(|_| InfoError::Bad {
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

/// `1,2,3` (or empty).
fn ids(field: &str, value: &str) -> Result<Vec<u64>, InfoError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| number(field, v))
        .collect()
}

/// `match_index=3,next_index=4,state=replicate,lag=0`.
fn parse_peer(id: u64, value: &str) -> Result<PeerInfo, InfoError> {
    let field = format!("peer{id}");
    let bad = || InfoError::Bad {
        field: field.clone(),
        value: value.to_owned(),
    };
    let parts: Vec<(&str, &str)> = value
        .split(',')
        .map(|kv| kv.split_once('=').ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    let get = |k: &str| parts.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let num = |k: &str| get(k).and_then(|v| v.parse().ok()).ok_or_else(bad);
    Ok(PeerInfo {
        id,
        match_index: num("match_index")?,
        next_index: num("next_index")?,
        state: get("state").ok_or_else(bad)?.to_owned(),
        lag: num("lag")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RAFT.INFO of a leader, as raft-node formats it.
    pub(crate) const LEADER: &str = "node_id:1\r\nrole:leader\r\nterm:3\r\nleader_id:1\r\n\
        commit_index:120\r\napplied_index:119\r\nlast_log_index:121\r\nfirst_log_index:101\r\n\
        snapshot_index:100\r\nvoters:1,2,3\r\nlearners:\r\nlease_valid:1\r\n\
        peer1:match_index=121,next_index=122,state=replicate,lag=0\r\n\
        peer2:match_index=120,next_index=122,state=replicate,lag=1\r\n\
        peer3:match_index=0,next_index=90,state=probe,lag=121\r\n";

    #[test]
    fn parses_a_leader() {
        let info = RaftInfo::parse(LEADER).unwrap();
        assert_eq!(info.node_id, 1);
        assert!(info.is_leader());
        assert_eq!((info.term, info.leader_id), (3, Some(1)));
        assert_eq!(
            (info.commit_index, info.applied_index, info.last_log_index),
            (120, 119, 121)
        );
        assert_eq!((info.first_log_index, info.snapshot_index), (101, 100));
        assert_eq!(info.peers.len(), 3);
        let p3 = info.peer(3).unwrap();
        assert_eq!((p3.match_index, p3.next_index, p3.lag), (0, 90, 121));
        assert_eq!(p3.state, "probe");
        assert_eq!(info.voters, Some(vec![1, 2, 3]));
        assert!(info.learners.is_empty() && info.voters_outgoing.is_empty());
        assert_eq!(info.membership(2), Some("voter"));
        assert_eq!(info.membership(4), None);
    }

    #[test]
    fn parses_a_joint_configuration_with_a_learner() {
        let text = LEADER.replace(
            "voters:1,2,3\r\nlearners:\r\n",
            "voters:1,2,4\r\nlearners:5\r\nvoters_outgoing:1,2,3\r\n",
        );
        let info = RaftInfo::parse(&text).unwrap();
        assert_eq!(info.members(), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(info.membership(4), Some("voter"));
        assert_eq!(info.membership(5), Some("learner"));
        assert_eq!(info.membership(3), Some("leaving"));
        let bad = LEADER.replace("voters:1,2,3", "voters:1,x");
        assert!(RaftInfo::parse(&bad).is_err());
    }

    #[test]
    fn parses_a_follower_without_leader_and_full_info() {
        let text = "# Server\r\nredis_version:7.0.0\r\n\r\n# Raft\r\nnode_id:2\r\nrole:candidate\r\n\
                    term:9\r\nleader_id:0\r\ncommit_index:5\r\napplied_index:5\r\n\
                    last_log_index:6\r\nfirst_log_index:1\r\nsnapshot_index:0\r\n\
                    some_future_field:x\r\n";
        let info = RaftInfo::parse(text).unwrap();
        assert_eq!((info.node_id, info.leader_id), (2, None));
        assert!(!info.is_leader());
        assert!(info.peers.is_empty());
        // An older node without its configuration in RAFT.INFO.
        assert_eq!((&info.voters, info.members()), (&None, None));
    }

    #[test]
    fn says_what_is_missing_or_bad() {
        assert_eq!(
            RaftInfo::parse("role:leader\r\n"),
            Err(InfoError::Missing("node_id"))
        );
        let bad_term = LEADER.replace("term:3", "term:three");
        assert!(matches!(
            RaftInfo::parse(&bad_term),
            Err(InfoError::Bad { field, .. }) if field == "term"
        ));
        let bad_peer = LEADER.replace("lag=121", "lag=");
        assert!(matches!(
            RaftInfo::parse(&bad_peer),
            Err(InfoError::Bad { field, .. }) if field == "peer3"
        ));
    }
}
