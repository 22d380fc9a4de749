//! `raftctl`: administration of a running cluster over the nodes' client (RESP) ports.
//!
//! raftctl is given client addresses (`--nodes` or `RAFTCTL_NODES`), asks each its
//! `RAFT.INFO` to learn its node id and role, and sends each command where it belongs:
//!
//! - `status`: every node's state and health ([`status`]); a table, `--json`, `--watch`;
//! - `transfer-leader ID`: `RAFT.TRANSFER ID` to the leader;
//! - `snapshot ID`: `RAFT.SNAPSHOT` to node ID;
//! - `member add|promote|remove`: `RAFT.MEMBER ...` to the leader (for nodes that support
//!   membership changes; others refuse, and raftctl shows their refusal).
//!
//! Parts: [`info`] (RAFT.INFO parsed), [`probe`] (asking nodes), [`status`], [`admin`].

pub mod admin;
pub mod info;
pub mod probe;
pub mod status;

mod cli;

pub use cli::{Cli, Cmd, MemberCmd, StatusArgs, main};

use thiserror::Error;

/// Why a raftctl command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CtlError {
    /// No address was given.
    #[error("no node addresses: give --nodes HOST:PORT,... or set RAFTCTL_NODES")]
    NoNodes,
    /// No given address answered.
    #[error("none of the given nodes answered: {0}")]
    NoneAnswered(String),
    /// No given address answered, and credentials or TLS are why (a password missing or
    /// refused, a certificate not trusted): the flags must change.
    #[error("{0}")]
    Access(probe::ProbeError),
    /// The answering nodes know no leader.
    #[error(
        "no leader: none of the {answered} answering nodes (of {given} given) leads; an \
         election may be under way or no majority is reachable; retry shortly"
    )]
    NoLeader {
        /// Nodes that answered.
        answered: usize,
        /// Addresses given.
        given: usize,
    },
    /// The nodes name a leader whose address was not given.
    #[error(
        "the leader is node {id} (term {term}, as its followers report), but its address \
         was not given: add it to --nodes"
    )]
    LeaderNotGiven {
        /// The leader.
        id: u64,
        /// Its term.
        term: u64,
    },
    /// No answering node has this id.
    #[error("no node with id {id} among the answering nodes (answering: {known})")]
    UnknownNode {
        /// The id asked for.
        id: u64,
        /// The ids and addresses that answered, and those that did not.
        known: String,
    },
    /// The leader's configuration does not list this id.
    #[error("node {id} is not in the cluster: leader {leader} lists members {members}")]
    NotMember {
        /// The id asked for.
        id: u64,
        /// The leader.
        leader: u64,
        /// The members it lists.
        members: String,
    },
    /// Leadership can only go to a voter.
    #[error(
        "node {0} is a learner: only a voter can lead; promote it first (raftctl member \
         promote {0})"
    )]
    Learner(u64),
    /// A node answered RAFT.INFO but not the command.
    #[error("node {id} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// The node.
        id: u64,
        /// Its address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A node refused the command; its error text, verbatim.
    #[error("node {id} at {addr} refused: {text}")]
    Refused {
        /// The node.
        id: u64,
        /// Its address as given.
        addr: String,
        /// Its error reply, as sent.
        text: String,
    },
    /// A reply raftctl does not understand.
    #[error("{0}")]
    Unexpected(String),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CtlError {
    fn none_answered(probes: &[probe::NodeProbe]) -> CtlError {
        // Said alone: the other addresses most likely fail the same way.
        if let Some(e) = probes
            .iter()
            .filter_map(|p| p.result.as_ref().err())
            .find(|e| e.is_access())
        {
            return CtlError::Access(e.clone());
        }
        let why: Vec<String> = probes
            .iter()
            .filter_map(|p| Some(format!("{}: {}", p.given, p.result.as_ref().err()?)))
            .collect();
        CtlError::NoneAnswered(why.join("; "))
    }
}
