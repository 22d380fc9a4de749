//! `raftctl status`: each node's RAFT.INFO, judged against the leader's view, as a table or
//! JSON.
//!
//! Health of a node, worst first (the first that applies):
//!
//! | health | meaning | fails the exit status |
//! | --- | --- | --- |
//! | `unreachable: REASON` | no connection or no reply in time | yes |
//! | `error: TEXT` | RAFT.INFO failed or was not understood | yes |
//! | `duplicate id: also at ADDR` | two given addresses are the same node | yes |
//! | `no leader` | no answering node leads or names a leader | yes |
//! | `stale leader (term T)` | leads an older term (cut off from the majority) | no |
//! | `not a member: leader N does not list it` | another cluster's node, or removed | yes |
//! | `no leader known` | the cluster has a leader this node has not heard of yet | no |
//! | `follows node N` | still follows an older leader | no |
//! | `catching up by snapshot` | the leader is sending it a snapshot | no |
//! | `probing, lag N` | the leader is finding where its log and this one's agree | no |
//! | `lagging N` | N ≥ `--lag-threshold` entries behind the leader's last index | no |
//! | `not queried` | a member the leader lists whose address was not given | no |
//! | `ok` | | no |
//!
//! Membership comes from the leader's configuration (RAFT.INFO's `voters`, `learners`,
//! `voters_outgoing`; the MEMBER column: `voter`, `learner`, or `leaving` for an outgoing
//! voter of a joint change).
//!
//! The warnings are states a healthy cluster passes through (after a restart, under load),
//! so they do not fail scripts; watching them with `--watch` tells whether they last.

use std::fmt;

use serde_json::{Value, json};

use super::info::{PeerInfo, RaftInfo};
use super::probe::{self, NodeProbe, ProbeError};
use crate::table::Table;

/// Entries behind the leader from which a node counts as lagging, by default: more than a
/// busy cluster has in flight (a few batches), less than a restarted node has to catch up.
pub const DEFAULT_LAG_THRESHOLD: u64 = 1000;

/// A node's health; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Nothing to report.
    Ok,
    /// The leader, handing leadership over to this node.
    Transferring(u64),
    /// No connection or no reply.
    Unreachable(String),
    /// RAFT.INFO failed or was not understood.
    Error(String),
    /// Another given address reported the same node id.
    DuplicateId(String),
    /// No node leads.
    NoLeader,
    /// Says it leads, in this older term.
    StaleLeader(u64),
    /// The leader's configuration does not list it.
    NotMember(u64),
    /// It knows no leader although the cluster has one.
    NoLeaderKnown,
    /// It follows another (older) leader.
    FollowsOther(u64),
    /// The leader is sending it a snapshot.
    Snapshot,
    /// The leader is probing its log; it is this many entries behind.
    Probing(u64),
    /// This many entries behind the leader.
    Lagging(u64),
    /// A member whose address was not given.
    NotQueried,
}

impl Health {
    /// Whether it fails `raftctl status`'s exit status.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Health::Unreachable(_)
                | Health::Error(_)
                | Health::DuplicateId(_)
                | Health::NoLeader
                | Health::NotMember(_)
        )
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ok => write!(f, "ok"),
            Health::Transferring(to) => write!(f, "ok, handing leadership to node {to}"),
            Health::Unreachable(why) => write!(f, "unreachable: {why}"),
            Health::Error(why) => write!(f, "error: {why}"),
            Health::DuplicateId(other) => write!(f, "duplicate id: also at {other}"),
            Health::NoLeader => write!(f, "no leader"),
            Health::StaleLeader(term) => write!(f, "stale leader (term {term})"),
            Health::NotMember(leader) => {
                write!(f, "not a member: leader {leader} does not list it")
            }
            Health::NoLeaderKnown => write!(f, "no leader known"),
            Health::FollowsOther(id) => write!(f, "follows node {id}"),
            Health::Snapshot => write!(f, "catching up by snapshot"),
            Health::Probing(lag) => write!(f, "probing, lag {lag}"),
            Health::Lagging(lag) => write!(f, "lagging {lag}"),
            Health::NotQueried => write!(f, "not queried: address not given"),
        }
    }
}

/// One row: a given address, or a member the leader lists that was not given.
#[derive(Clone, Debug)]
pub struct Row {
    /// The address as given (`None` for a member that was not given).
    pub given: Option<String>,
    /// The node id, when known.
    pub id: Option<u64>,
    /// Its RAFT.INFO, if it answered.
    pub info: Option<RaftInfo>,
    /// `voter`, `learner` or `leaving`, by the leader's configuration (else its own).
    pub member: Option<&'static str>,
    /// Entries behind the leader's last index, as the leader sees it (none for the leader).
    pub lag: Option<u64>,
    /// The leader's replication state for it (`replicate`, `probe`, `snapshot`).
    pub replication: Option<String>,
    /// Its health.
    pub health: Health,
}

/// The whole picture.
#[derive(Clone, Debug)]
pub struct Status {
    /// By node id; addresses that gave no id last, in the order given.
    pub rows: Vec<Row>,
    /// The leader's id and term.
    pub leader: Option<(u64, u64)>,
    /// Whether the leader itself answered (else its id is what the followers report).
    pub leader_answered: bool,
    /// The leader's RAFT.INFO, if it answered (its configuration above all).
    pub leader_info: Option<RaftInfo>,
    /// How many given addresses answered RAFT.INFO.
    pub answered: usize,
}

impl Status {
    /// Judges the probes (see the module doc).
    pub fn assess(probes: &[NodeProbe], lag_threshold: u64) -> Status {
        let leader_probe = probe::leader(probes);
        let lead = leader_probe.and_then(NodeProbe::info);
        let reported = match lead {
            Some(l) => Some((l.node_id, l.term)),
            None => probe::reported_leader(probes),
        };
        let mut rows: Vec<Row> = probes
            .iter()
            .map(|p| {
                let is_leader = leader_probe.is_some_and(|l| std::ptr::eq(l, p));
                row(p, probes, lead, reported, is_leader, lag_threshold)
            })
            .collect();
        if let (None, Some((id, _))) = (lead, reported) {
            if !rows.iter().any(|r| r.id == Some(id)) {
                rows.push(Row {
                    given: None,
                    id: Some(id),
                    info: None,
                    member: None,
                    lag: None,
                    replication: None,
                    health: Health::NotQueried,
                });
            }
        }
        if let Some(lead) = lead {
            for id in members(lead) {
                if !rows.iter().any(|r| r.id == Some(id)) {
                    let peer = lead.peer(id);
                    rows.push(Row {
                        given: None,
                        id: Some(id),
                        info: None,
                        member: lead.membership(id),
                        lag: peer.map(|p| p.lag),
                        replication: peer.map(|p| p.state.clone()),
                        health: Health::NotQueried,
                    });
                }
            }
        }
        // Stable: addresses without an id keep the order given, after the others.
        rows.sort_by_key(|r| r.id.unwrap_or(u64::MAX));
        Status {
            rows,
            leader: reported,
            leader_answered: lead.is_some(),
            leader_info: lead.cloned(),
            answered: probes.iter().filter(|p| p.info().is_some()).count(),
        }
    }

    /// No problem (see [`Health::is_problem`]) and a leader.
    pub fn is_ok(&self) -> bool {
        self.leader.is_some() && !self.rows.iter().any(|r| r.health.is_problem())
    }

    /// The table and a summary line.
    pub fn render(&self) -> String {
        let mut t = Table::new(&[
            "ID", "ADDRESS", "ROLE", "MEMBER", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST",
            "SNAPSHOT", "LAG", "HEALTH",
        ]);
        for col in [0, 4, 5, 6, 7, 8, 9, 10] {
            t.align_right(col);
        }
        let dash = || "-".to_owned();
        let num = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
        for r in &self.rows {
            let i = r.info.as_ref();
            t.row([
                num(r.id),
                r.given.clone().unwrap_or_else(dash),
                i.map_or_else(dash, |i| i.role.clone()),
                r.member.unwrap_or("-").to_owned(),
                num(i.map(|i| i.term)),
                num(i.and_then(|i| i.leader_id)),
                num(i.map(|i| i.commit_index)),
                num(i.map(|i| i.applied_index)),
                num(i.map(|i| i.last_log_index)),
                num(i.map(|i| i.snapshot_index)),
                num(r.lag),
                r.health.to_string(),
            ]);
        }
        let given = self.rows.iter().filter(|r| r.given.is_some()).count();
        let summary = match self.leader {
            Some((id, term)) => format!(
                "leader: node {id} (term {term}{}); {} of {given} nodes answered; {}",
                if self.leader_answered {
                    ""
                } else {
                    ", as its followers report: its address was not given"
                },
                self.answered,
                if self.is_ok() { "ok" } else { "PROBLEMS" }
            ),
            None if self.answered == 0 => format!("no node answered (of {given})"),
            None => format!(
                "no leader: none of the {} answering nodes leads (an election under way, or \
                 no majority reachable)",
                self.answered
            ),
        };
        let joint = match &self.leader_info {
            Some(l) if !l.voters_outgoing.is_empty() => format!(
                "joint configuration: voters {:?} replacing {:?}\n",
                l.voters.clone().unwrap_or_default(),
                l.voters_outgoing
            ),
            _ => String::new(),
        };
        format!("{t}{summary}\n{joint}")
    }

    /// The same as one JSON object.
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let i = r.info.as_ref();
                json!({
                    "address": r.given,
                    "id": r.id,
                    "role": i.map(|i| &i.role),
                    "member": r.member,
                    "term": i.map(|i| i.term),
                    "leader_id": i.and_then(|i| i.leader_id),
                    "commit_index": i.map(|i| i.commit_index),
                    "applied_index": i.map(|i| i.applied_index),
                    "last_log_index": i.map(|i| i.last_log_index),
                    "first_log_index": i.map(|i| i.first_log_index),
                    "snapshot_index": i.map(|i| i.snapshot_index),
                    "lag": r.lag,
                    "replication": r.replication,
                    "health": r.health.to_string(),
                    "problem": r.health.is_problem(),
                })
            })
            .collect();
        json!({
            "ok": self.is_ok(),
            "leader": self.leader.map(|(id, _)| id),
            "term": self.leader.map(|(_, term)| term),
            "leader_answered": self.leader_answered,
            "voters": self.leader_info.as_ref().and_then(|l| l.voters.clone()),
            "learners": self.leader_info.as_ref().map(|l| l.learners.clone()),
            "voters_outgoing": self.leader_info.as_ref().map(|l| l.voters_outgoing.clone()),
            "answered": self.answered,
            "nodes": nodes,
        })
    }
}

fn row(
    p: &NodeProbe,
    all: &[NodeProbe],
    lead: Option<&RaftInfo>,
    reported: Option<(u64, u64)>,
    is_leader: bool,
    lag_threshold: u64,
) -> Row {
    let info = match &p.result {
        Ok(info) => info,
        Err(e) => {
            let health = match e {
                ProbeError::Unreachable(why) => Health::Unreachable(why.clone()),
                other => Health::Error(other.to_string()),
            };
            return Row {
                given: Some(p.given.clone()),
                id: None,
                info: None,
                member: None,
                lag: None,
                replication: None,
                health,
            };
        }
    };
    let id = info.node_id;
    let peer = lead.filter(|_| !is_leader).and_then(|l| l.peer(id));
    let twin = all
        .iter()
        .find(|o| !std::ptr::eq(*o, p) && o.info().is_some_and(|i| i.node_id == id));
    let health = match (lead, twin) {
        (_, Some(twin)) => Health::DuplicateId(twin.given.clone()),
        (Some(_), _) if is_leader => match info.transferring_to {
            Some(to) => Health::Transferring(to),
            None => Health::Ok,
        },
        (Some(_), _) if info.is_leader() => Health::StaleLeader(info.term),
        (Some(l), _) if !is_member(l, id) => Health::NotMember(l.node_id),
        (Some(l), _) => follower_health(info, l.node_id, peer, lag_threshold),
        // The leader's address was not given: judge by what the followers say.
        (None, _) => match reported {
            Some((l, _)) => follower_health(info, l, None, lag_threshold),
            None => Health::NoLeader,
        },
    };
    Row {
        given: Some(p.given.clone()),
        id: Some(id),
        info: Some(info.clone()),
        member: lead.unwrap_or(info).membership(id),
        lag: peer.map(|p| p.lag),
        replication: peer.map(|p| p.state.clone()),
        health,
    }
}

/// The members of the leader's configuration; from its peer lines for a node that does not
/// report its configuration.
fn members(lead: &RaftInfo) -> Vec<u64> {
    lead.members()
        .unwrap_or_else(|| lead.peers.iter().map(|p| p.id).collect())
}

/// Whether the leader's configuration has node `id` (a leader that lists no one cannot
/// tell: yes).
fn is_member(lead: &RaftInfo, id: u64) -> bool {
    let all = members(lead);
    all.is_empty() || all.contains(&id)
}

/// A follower's health, given the leader's id and (if it answered) its view of it.
fn follower_health(
    info: &RaftInfo,
    leader: u64,
    peer: Option<&PeerInfo>,
    lag_threshold: u64,
) -> Health {
    match (info.leader_id, peer) {
        (None, _) => Health::NoLeaderKnown,
        (Some(other), _) if other != leader => Health::FollowsOther(other),
        (_, Some(p)) if p.state == "snapshot" => Health::Snapshot,
        (_, Some(p)) if p.state == "probe" => Health::Probing(p.lag),
        (_, Some(p)) if p.lag >= lag_threshold => Health::Lagging(p.lag),
        _ => Health::Ok,
    }
}

#[cfg(test)]
mod tests;
