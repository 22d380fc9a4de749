//! Fault injection, for tests only: network partitions without root or a firewall.
//!
//! A node started with `enable_fault_injection` (`--enable-fault-injection`) answers
//! `RAFT.FAULT`: `RAFT.FAULT BLOCK id [id ...]` makes it drop all traffic to and from those
//! peers (Raft messages, snapshot streams, forwarded client requests), as a cut network
//! would; `RAFT.FAULT HEAL` restores it; `RAFT.FAULT STATUS` lists the blocked peers. A
//! partition is blocking on both sides: the chaos runner tells every node which peers it
//! cannot reach, so it can make any shape (minority, majority, an isolated leader, a bridge).
//!
//! It is refused on a node whose client port is not on a loopback address: anyone who can
//! reach that port could partition the cluster.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use raft_core::NodeId;

/// The peers this node does not talk to. Cheap to ask when nothing is blocked.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    enabled: bool,
    /// Fast path: false while `blocked` is empty.
    any: AtomicBool,
    blocked: RwLock<BTreeSet<NodeId>>,
}

impl Faults {
    pub(crate) fn new(enabled: bool) -> Faults {
        Faults {
            enabled,
            ..Faults::default()
        }
    }

    /// True if traffic to or from `peer` is dropped.
    pub(crate) fn blocks(&self, peer: NodeId) -> bool {
        self.any.load(Ordering::Relaxed)
            && self
                .blocked
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&peer)
    }

    /// Runs `RAFT.FAULT <args>`; the reply text or the error text.
    pub(crate) fn command(&self, args: &[&str]) -> Result<String, String> {
        if !self.enabled {
            return Err(
                "fault injection is disabled (a test-only feature: start the node with \
                 --enable-fault-injection)"
                    .into(),
            );
        }
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        match args {
            [verb, ids @ ..] if verb.eq_ignore_ascii_case("block") && !ids.is_empty() => {
                let ids = ids
                    .iter()
                    .map(|s| match s.parse::<u64>() {
                        Ok(0) | Err(_) => Err(format!("not a node id: {s:?}")),
                        Ok(id) => Ok(NodeId(id)),
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?;
                *blocked = ids;
            }
            [verb] if verb.eq_ignore_ascii_case("heal") => blocked.clear(),
            [verb] if verb.eq_ignore_ascii_case("status") => return Ok(list(&blocked)),
            _ => return Err("usage: RAFT.FAULT BLOCK id [id ...] | HEAL | STATUS".into()),
        }
        self.any.store(!blocked.is_empty(), Ordering::Relaxed);
        tracing::warn!(blocked = ?*blocked, "fault injection: blocked peers set");
        Ok(list(&blocked))
    }
}

/// `2,3`: the reply to RAFT.FAULT.
fn list(blocked: &BTreeSet<NodeId>) -> String {
    blocked
        .iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn block_heal_and_refusals() {
        let f = Faults::new(true);
        assert!(!f.blocks(NodeId(2)));
        assert_eq!(f.command(&["BLOCK", "2", "3"]), Ok("2,3".into()));
        assert!(f.blocks(NodeId(2)) && f.blocks(NodeId(3)) && !f.blocks(NodeId(1)));
        assert_eq!(f.command(&["block", "3"]), Ok("3".into()));
        assert!(!f.blocks(NodeId(2)));
        assert_eq!(f.command(&["status"]), Ok("3".into()));
        assert_eq!(f.command(&["HEAL"]), Ok(String::new()));
        assert!(!f.blocks(NodeId(3)));
        assert!(f.command(&["BLOCK"]).is_err());
        assert!(f.command(&["BLOCK", "0"]).is_err());
        assert!(f.command(&["BLOCK", "x"]).is_err());
        assert!(f.command(&["cut"]).is_err());
        let off = Faults::new(false);
        assert!(off.command(&["HEAL"]).unwrap_err().contains("disabled"));
    }
}
