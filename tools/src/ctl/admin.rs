//! The commands that change something: leadership transfer, a snapshot, membership.
//!
//! raftctl knows only the addresses it was given; it learns which node id answers at each
//! from RAFT.INFO, then sends the command to the node it concerns (a snapshot) or to the
//! leader (a transfer, a membership change). A node's refusal is shown verbatim.

use std::time::Duration;

use super::CtlError;
use super::probe::{self, NodeProbe};
use crate::resp::{ConnectOptions, Reply};

/// How long a leadership transfer may take: the target must catch up and win an election.
const TRANSFER_WITHIN: Duration = Duration::from_secs(15);
/// How long a snapshot may take on a node with a large state.
const SNAPSHOT_WITHIN: Duration = Duration::from_secs(120);
/// How long a membership change may take to commit.
const MEMBER_WITHIN: Duration = Duration::from_secs(15);
/// Times a command is re-sent to the node a refusal names as leader (the leader changed
/// between RAFT.INFO and the command).
const REDIRECTS: usize = 2;

/// A membership change (`RAFT.MEMBER ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Add a node at this Raft (peer) address, as a voter or a learner.
    Add {
        /// The new node's id.
        id: u64,
        /// Its Raft (peer) address.
        raft_addr: String,
        /// Added as a learner (receives the log, does not vote).
        learner: bool,
    },
    /// Make a learner a voter.
    Promote(u64),
    /// Remove a node.
    Remove(u64),
}

impl MemberChange {
    /// The command's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["RAFT.MEMBER".to_owned()];
        match self {
            MemberChange::Add {
                id,
                raft_addr,
                learner,
            } => {
                a.extend(["ADD".to_owned(), id.to_string(), raft_addr.clone()]);
                if *learner {
                    a.push("LEARNER".into());
                }
            }
            MemberChange::Promote(id) => a.extend(["PROMOTE".to_owned(), id.to_string()]),
            MemberChange::Remove(id) => a.extend(["REMOVE".to_owned(), id.to_string()]),
        }
        a
    }
}

impl MemberChange {
    /// What was done, once the leader says OK.
    fn done(&self) -> String {
        match self {
            MemberChange::Add {
                id,
                raft_addr,
                learner,
            } => format!(
                "node {id} added as a {} at {raft_addr}",
                if *learner { "learner" } else { "voter" }
            ),
            MemberChange::Promote(id) => format!("node {id} promoted to voter"),
            MemberChange::Remove(id) => format!("node {id} removed"),
        }
    }
}

/// The leader among the answering nodes, or why there is none.
fn find_leader(probes: &[NodeProbe]) -> Result<&NodeProbe, CtlError> {
    if let Some(l) = probe::leader(probes) {
        return Ok(l);
    }
    let answered = probes.iter().filter(|p| p.info().is_some()).count();
    if answered == 0 {
        return Err(CtlError::none_answered(probes));
    }
    if let Some((id, term)) = probe::reported_leader(probes) {
        return Err(CtlError::LeaderNotGiven { id, term });
    }
    Err(CtlError::NoLeader {
        answered,
        given: probes.len(),
    })
}

/// The node with this id among the answering nodes, or why there is none.
fn find_node(probes: &[NodeProbe], id: u64) -> Result<&NodeProbe, CtlError> {
    if let Some(p) = probe::by_id(probes, id) {
        return Ok(p);
    }
    if probes.iter().all(|p| p.info().is_none()) {
        return Err(CtlError::none_answered(probes));
    }
    Err(CtlError::UnknownNode {
        id,
        known: known(probes),
    })
}

/// "1 at ADDR, 2 at ADDR; unreachable: ADDR (why)".
fn known(probes: &[NodeProbe]) -> String {
    let mut ids: Vec<String> = probes
        .iter()
        .filter_map(|p| Some(format!("{} at {}", p.info()?.node_id, p.given)))
        .collect();
    if ids.is_empty() {
        ids.push("none".into());
    }
    let failed: Vec<String> = probes
        .iter()
        .filter_map(|p| Some(format!("{} ({})", p.given, p.result.as_ref().err()?)))
        .collect();
    if failed.is_empty() {
        ids.join(", ")
    } else {
        format!("{}; not answering: {}", ids.join(", "), failed.join(", "))
    }
}

/// The node a "not the leader ... node N" refusal names, if it names one.
fn redirect_target(text: &str) -> Option<u64> {
    if !text.contains("not the leader") {
        return None;
    }
    let after = &text[text.rfind("node ")? + 5..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&id| id != 0)
}

/// Sends `args` to the leader, following a "not the leader" refusal to the node it names
/// (when that node's address was given). The leader's id and its reply.
async fn to_leader(
    probes: &[NodeProbe],
    args: &[&str],
    within: Duration,
    options: &ConnectOptions,
) -> Result<(u64, Reply), CtlError> {
    let mut target = find_leader(probes)?;
    for attempt in 0..=REDIRECTS {
        let (id, addr) = node_addr(target)?;
        let reply = probe::call(addr, args, within, options)
            .await
            .map_err(|e| CtlError::Unreachable {
                id,
                addr: target.given.clone(),
                reason: e.to_string(),
            })?;
        if let Reply::Error(text) = &reply {
            let next = redirect_target(text).and_then(|n| probe::by_id(probes, n));
            if let (Some(next), true) = (next, attempt < REDIRECTS) {
                target = next;
                continue;
            }
        }
        return Ok((id, reply));
    }
    unreachable!("the loop returns on its last attempt")
}

fn node_addr(p: &NodeProbe) -> Result<(u64, std::net::SocketAddr), CtlError> {
    match (p.info(), p.addr) {
        (Some(info), Some(addr)) => Ok((info.node_id, addr)),
        _ => Err(CtlError::Unexpected(format!(
            "{} has no usable address",
            p.given
        ))),
    }
}

/// `raftctl transfer-leader ID`: asks the leader to hand leadership to node `to`; returns
/// the message to print once node `to` leads.
pub async fn transfer_leader(
    addrs: &[String],
    to: u64,
    within: Duration,
    options: &ConnectOptions,
) -> Result<String, CtlError> {
    let probes = probe::probe_all(addrs, within, options).await;
    let leader = find_leader(&probes)?;
    let lead = leader.info().expect("a leader answered");
    if lead.node_id == to {
        return Ok(format!(
            "node {to} already leads (term {}); nothing to do",
            lead.term
        ));
    }
    // The node would refuse too; raftctl says why in the operator's terms.
    let members = lead
        .members()
        .unwrap_or_else(|| lead.peers.iter().map(|p| p.id).collect());
    if !members.is_empty() && !members.contains(&to) {
        let members: Vec<String> = members.iter().map(u64::to_string).collect();
        return Err(CtlError::NotMember {
            id: to,
            leader: lead.node_id,
            members: members.join(", "),
        });
    }
    if lead.membership(to) == Some("learner") {
        return Err(CtlError::Learner(to));
    }
    let from = lead.node_id;
    let to_s = to.to_string();
    let (asked, reply) =
        to_leader(&probes, &["RAFT.TRANSFER", &to_s], TRANSFER_WITHIN, options).await?;
    match reply {
        Reply::Simple(_) => {
            // Best effort: the new term, for the message.
            let term = match probe::by_id(&probes, to) {
                Some(p) => probe::probe(p.given.clone(), within, options)
                    .await
                    .info()
                    .map(|i| format!(" (term {})", i.term)),
                None => None,
            };
            Ok(format!(
                "leadership moved from node {from} to node {to}{}",
                term.unwrap_or_default()
            ))
        }
        other => Err(refused(asked, &probes, other)),
    }
}

/// `raftctl snapshot ID`: node `id` takes a snapshot now; returns its index.
pub async fn snapshot(
    addrs: &[String],
    id: u64,
    within: Duration,
    options: &ConnectOptions,
) -> Result<u64, CtlError> {
    let probes = probe::probe_all(addrs, within, options).await;
    let node = find_node(&probes, id)?;
    let (_, addr) = node_addr(node)?;
    let reply = probe::call(
        addr,
        &["RAFT.SNAPSHOT"],
        SNAPSHOT_WITHIN.max(within),
        options,
    )
    .await
    .map_err(|e| CtlError::Unreachable {
        id,
        addr: node.given.clone(),
        reason: e.to_string(),
    })?;
    match reply {
        Reply::Integer(index) if index >= 0 => Ok(index as u64),
        other => Err(refused(id, &probes, other)),
    }
}

/// `raftctl member ...`: sends the change to the leader; returns its reply's text.
pub async fn member(
    addrs: &[String],
    change: &MemberChange,
    within: Duration,
    options: &ConnectOptions,
) -> Result<String, CtlError> {
    let probes = probe::probe_all(addrs, within, options).await;
    let args = change.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (asked, reply) = to_leader(&probes, &args, MEMBER_WITHIN.max(within), options).await?;
    match reply {
        Reply::Simple(text) if text == "OK" => {
            Ok(format!("{} (by leader node {asked})", change.done()))
        }
        Reply::Simple(text) => Ok(format!("node {asked}: {text}")),
        Reply::Integer(n) => Ok(format!("node {asked}: {n}")),
        Reply::Bulk(text) => Ok(format!("node {asked}: {}", String::from_utf8_lossy(&text))),
        other => Err(refused(asked, &probes, other)),
    }
}

/// A reply that is not what was asked for: an error reply verbatim, else the reply.
fn refused(id: u64, probes: &[NodeProbe], reply: Reply) -> CtlError {
    let addr = probe::by_id(probes, id)
        .map(|p| p.given.clone())
        .unwrap_or_default();
    match reply {
        Reply::Error(text) => CtlError::Refused { id, addr, text },
        other => CtlError::Unexpected(format!("node {id} ({addr}) replied {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_changes_become_raft_member_commands() {
        let add = MemberChange::Add {
            id: 4,
            raft_addr: "10.0.0.4:7000".into(),
            learner: true,
        };
        assert_eq!(
            add.args(),
            ["RAFT.MEMBER", "ADD", "4", "10.0.0.4:7000", "LEARNER"]
        );
        assert_eq!(
            MemberChange::Promote(4).args(),
            ["RAFT.MEMBER", "PROMOTE", "4"]
        );
        assert_eq!(
            MemberChange::Remove(2).args(),
            ["RAFT.MEMBER", "REMOVE", "2"]
        );
    }

    #[test]
    fn a_not_the_leader_refusal_names_where_to_go() {
        assert_eq!(
            redirect_target("ERR not the leader; send RAFT.TRANSFER to node 3"),
            Some(3)
        );
        assert_eq!(
            redirect_target("ERR not the leader; send RAFT.TRANSFER to node 0"),
            None
        );
        assert_eq!(redirect_target("ERR transfer failed: unknown node 9"), None);
    }
}
