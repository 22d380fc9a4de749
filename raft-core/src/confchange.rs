//! Membership changes as pure functions: a configuration and a change in, the next
//! configuration (or a typed error) out. Nothing here knows about logs, terms or messages;
//! [`crate::RawNode::propose_conf_change`] says when a change is proposed and takes effect.
//!
//! A [`ConfChange`] is a list of single operations ([`ConfChangeSingle`]: add a voter, add a
//! learner, remove a node) and a [`ConfChangeTransition`]:
//!
//! - **simple**: the operations are applied directly. Allowed only when they add or remove at
//!   most one voter, since any majority of the old voters and any majority of the new ones
//!   then share a node (thesis §4.1). Learners may change freely.
//! - **joint** (§6, thesis §4.3): the old voters become the *outgoing* half and the operations
//!   are applied to the *incoming* half; until the joint configuration is left, every decision
//!   needs a majority of each half. Leaving it (an empty change list) drops the outgoing half.
//!   Each of the two steps keeps a node in common between any quorum before and any quorum
//!   after, whatever the operations.
//!
//! [`ConfChangeTransition::Auto`] picks simple when it is allowed and joint (left
//! automatically once committed) otherwise; the other transitions force a joint change.
//!
//! Operations never fail on their own: adding a voter that is a voter, or removing a node
//! that is not a member, changes nothing. What fails is a change whose result breaks a rule
//! ([`ConfChangeError`]).
//!
//! ```
//! use raft_core::{ConfChange, ConfChangeSingle, ConfState, NodeId};
//!
//! let cs = ConfState::new([NodeId(1), NodeId(2), NodeId(3)]);
//! // Replace node 3 by node 4 in one step: a joint configuration, left automatically.
//! let cc = ConfChange::new(vec![
//!     ConfChangeSingle::AddVoter(NodeId(4)),
//!     ConfChangeSingle::RemoveNode(NodeId(3)),
//! ]);
//! let joint = cs.apply_change(&cc).unwrap();
//! assert_eq!(joint.voters, [NodeId(1), NodeId(2), NodeId(4)]);
//! assert_eq!(joint.voters_outgoing, [NodeId(1), NodeId(2), NodeId(3)]);
//! assert!(joint.auto_leave);
//! let after = joint.apply_change(&ConfChange::leave_joint()).unwrap();
//! assert_eq!(after, ConfState::new([NodeId(1), NodeId(2), NodeId(4)]));
//! ```

use bytes::Bytes;

use crate::types::{ConfState, NodeId, sorted};

/// One membership operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeSingle {
    /// Make the node a voter: a new node joins as a voter, a learner is promoted.
    AddVoter(NodeId),
    /// Make the node a learner: a new node joins as a learner, a voter is demoted (in a joint
    /// change it keeps voting in the outgoing half until the joint configuration is left).
    AddLearner(NodeId),
    /// Remove the node, voter or learner (in a joint change it keeps voting in the outgoing
    /// half until the joint configuration is left).
    RemoveNode(NodeId),
}

impl ConfChangeSingle {
    /// The node the operation is about.
    pub fn node(self) -> NodeId {
        match self {
            ConfChangeSingle::AddVoter(id)
            | ConfChangeSingle::AddLearner(id)
            | ConfChangeSingle::RemoveNode(id) => id,
        }
    }
}

/// How a [`ConfChange`] moves to its new configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfChangeTransition {
    /// A simple change when the operations add or remove at most one voter (learners may
    /// change freely); otherwise a joint change that the leader leaves by itself once the
    /// joint configuration is committed.
    #[default]
    Auto,
    /// A joint change, whatever the operations, left automatically once committed.
    JointImplicit,
    /// A joint change that stays joint until the application proposes
    /// [`ConfChange::leave_joint`] (e.g. to do something between the two steps).
    JointExplicit,
}

/// A membership change, proposed with [`crate::RawNode::propose_conf_change`] and carried by
/// an entry of kind [`crate::EntryKind::ConfChange`]. An empty list of operations leaves the
/// joint configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfChange {
    /// Simple or joint.
    pub transition: ConfChangeTransition,
    /// The operations, applied in order. Empty: leave the joint configuration.
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque to the protocol and handed back with the committed entry: e.g. the address of
    /// a node being added, for the application's peer directory.
    pub context: Bytes,
}

impl ConfChange {
    /// The most operations one change may hold. Real changes hold a few; the bound keeps a
    /// crafted entry (whose payload may run to megabytes) from costing quadratic time in
    /// [`ConfState::apply_change`]. A change over it is refused when proposed and does not
    /// decode when received.
    pub const MAX_CHANGES: usize = 256;

    /// A change of the given operations ([`ConfChangeTransition::Auto`]).
    pub fn new(changes: Vec<ConfChangeSingle>) -> ConfChange {
        ConfChange {
            transition: ConfChangeTransition::Auto,
            changes,
            context: Bytes::new(),
        }
    }

    /// Adds `id` as a voter (or promotes the learner `id`).
    pub fn add_voter(id: NodeId) -> ConfChange {
        ConfChange::new(vec![ConfChangeSingle::AddVoter(id)])
    }

    /// Adds `id` as a learner (or demotes the voter `id`).
    pub fn add_learner(id: NodeId) -> ConfChange {
        ConfChange::new(vec![ConfChangeSingle::AddLearner(id)])
    }

    /// Removes `id`.
    pub fn remove_node(id: NodeId) -> ConfChange {
        ConfChange::new(vec![ConfChangeSingle::RemoveNode(id)])
    }

    /// Leaves the joint configuration.
    pub fn leave_joint() -> ConfChange {
        ConfChange::default()
    }

    /// The same change with another transition.
    pub fn with_transition(mut self, transition: ConfChangeTransition) -> ConfChange {
        self.transition = transition;
        self
    }

    /// The same change carrying `context`.
    pub fn with_context(mut self, context: impl Into<Bytes>) -> ConfChange {
        self.context = context.into();
        self
    }

    /// Whether this change leaves a joint configuration.
    pub fn is_leave_joint(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Why a membership change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfChangeError {
    /// The configuration is joint: the next change must leave it first.
    #[error("the configuration is joint: leave it (an empty change) before changing it again")]
    AlreadyJoint,
    /// Leaving a joint configuration when there is none.
    #[error("the configuration is not joint: there is nothing to leave")]
    NotJoint,
    /// The change would leave the (incoming) configuration without a voter.
    #[error("the change would leave no voter")]
    NoVoters,
    /// Node id 0 means "none".
    #[error("node id 0 in a configuration change")]
    ZeroNodeId,
    /// More operations than [`ConfChange::MAX_CHANGES`].
    #[error("{count} operations in one configuration change, more than the maximum of {max}")]
    TooManyChanges {
        /// Operations in the change.
        count: usize,
        /// [`ConfChange::MAX_CHANGES`].
        max: usize,
    },
}

impl ConfState {
    /// The configuration after `cc`, or why `cc` cannot be applied to this one.
    pub fn apply_change(&self, cc: &ConfChange) -> Result<ConfState, ConfChangeError> {
        if cc.changes.len() > ConfChange::MAX_CHANGES {
            return Err(ConfChangeError::TooManyChanges {
                count: cc.changes.len(),
                max: ConfChange::MAX_CHANGES,
            });
        }
        if cc.changes.iter().any(|c| c.node().is_none()) {
            return Err(ConfChangeError::ZeroNodeId);
        }
        if cc.is_leave_joint() {
            return leave_joint(self);
        }
        if self.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        let mut simple = self.clone();
        for &c in &cc.changes {
            apply_single(&mut simple, c);
        }
        let joint = match cc.transition {
            ConfChangeTransition::Auto => symmetric_difference(&self.voters, &simple.voters) > 1,
            ConfChangeTransition::JointImplicit | ConfChangeTransition::JointExplicit => true,
        };
        let next = if joint {
            if self.voters.is_empty() {
                // A joint configuration needs voters in both halves.
                return Err(ConfChangeError::NoVoters);
            }
            let mut next = self.clone();
            next.voters_outgoing = self.voters.clone();
            next.auto_leave = cc.transition != ConfChangeTransition::JointExplicit;
            for &c in &cc.changes {
                apply_single(&mut next, c);
            }
            next
        } else {
            simple
        };
        if next.voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        debug_assert_eq!(next.check(), Ok(()));
        Ok(next)
    }
}

fn leave_joint(cs: &ConfState) -> Result<ConfState, ConfChangeError> {
    if !cs.is_joint() {
        return Err(ConfChangeError::NotJoint);
    }
    let mut next = cs.clone();
    next.learners = sorted(cs.learners.iter().chain(&cs.learners_next).copied());
    next.learners_next.clear();
    next.voters_outgoing.clear();
    next.auto_leave = false;
    debug_assert_eq!(next.check(), Ok(()));
    Ok(next)
}

fn apply_single(cs: &mut ConfState, c: ConfChangeSingle) {
    let id = c.node();
    cs.voters.retain(|&v| v != id);
    cs.learners.retain(|&v| v != id);
    cs.learners_next.retain(|&v| v != id);
    match c {
        ConfChangeSingle::AddVoter(_) => insert(&mut cs.voters, id),
        ConfChangeSingle::AddLearner(_) => {
            // A voter of the outgoing half keeps voting there until the joint configuration
            // is left: it becomes a learner then.
            if cs.voters_outgoing.contains(&id) {
                insert(&mut cs.learners_next, id);
            } else {
                insert(&mut cs.learners, id);
            }
        }
        ConfChangeSingle::RemoveNode(_) => {}
    }
}

fn insert(list: &mut Vec<NodeId>, id: NodeId) {
    if let Err(at) = list.binary_search(&id) {
        list.insert(at, id);
    }
}

fn symmetric_difference(a: &[NodeId], b: &[NodeId]) -> usize {
    a.iter().filter(|x| !b.contains(x)).count() + b.iter().filter(|x| !a.contains(x)).count()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use datadriven::{TestCase, walk};

    use super::*;
    use crate::quorum::JointConfig;

    fn ids(list: &[NodeId]) -> String {
        let v: Vec<String> = list.iter().map(|i| i.to_string()).collect();
        v.join(" ")
    }

    /// `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3) autoleave`
    pub(crate) fn describe(cs: &ConfState) -> String {
        let mut out = format!("voters=({})", ids(&cs.voters));
        if cs.is_joint() {
            let _ = write!(out, "&&({})", ids(&cs.voters_outgoing));
        }
        if !cs.learners.is_empty() {
            let _ = write!(out, " learners=({})", ids(&cs.learners));
        }
        if !cs.learners_next.is_empty() {
            let _ = write!(out, " learners_next=({})", ids(&cs.learners_next));
        }
        if cs.auto_leave {
            out.push_str(" autoleave");
        }
        out
    }

    /// Operations from a line like `v1 l2 r3` (add voter 1, add learner 2, remove 3).
    fn parse_changes(input: &str) -> Vec<ConfChangeSingle> {
        input
            .split_whitespace()
            .map(|tok| {
                let (kind, id) = tok.split_at(1);
                let id = NodeId(id.parse().expect("v1, l2 or r3"));
                match kind {
                    "v" => ConfChangeSingle::AddVoter(id),
                    "l" => ConfChangeSingle::AddLearner(id),
                    "r" => ConfChangeSingle::RemoveNode(id),
                    _ => panic!("unknown operation {tok}"),
                }
            })
            .collect()
    }

    fn run(cs: &mut ConfState, tc: &TestCase) -> String {
        let transition = match tc.directive.as_str() {
            "auto" => ConfChangeTransition::Auto,
            "enter-joint" => match tc.args.get("autoleave").and_then(|v| v.first()) {
                Some(v) if v == "false" => ConfChangeTransition::JointExplicit,
                _ => ConfChangeTransition::JointImplicit,
            },
            "leave-joint" => ConfChangeTransition::Auto,
            other => panic!("unknown directive {other}"),
        };
        let cc = ConfChange::new(parse_changes(&tc.input)).with_transition(transition);
        match cs.apply_change(&cc) {
            Ok(next) => {
                assert_eq!(next.check(), Ok(()));
                *cs = next;
                describe(cs) + "\n"
            }
            Err(e) => format!("error: {e}\n"),
        }
    }

    /// Table tests in `src/testdata/confchange/*.txt`: each file starts from an empty
    /// configuration; `auto` and `enter-joint [autoleave=false]` take operations like
    /// `v1 l2 r3` as input, `leave-joint` none. Rewrite with `REWRITE=1`.
    #[test]
    fn confchange_tables() {
        walk("src/testdata/confchange", |f| {
            let mut cs = ConfState::default();
            f.run(|tc| run(&mut cs, tc));
        });
    }

    /// Every change this module allows keeps a node in common between any quorum of the
    /// configuration before and any quorum of the one after (the point of §6): checked over
    /// random walks of changes among six nodes, every quorum enumerated.
    #[test]
    fn every_allowed_step_keeps_quorums_intersecting() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut allowed, mut refused) = (0, 0);
        for _walk in 0..300 {
            let mut cs = ConfState::new([NodeId(1), NodeId(2), NodeId(3)]);
            for _step in 0..12 {
                let n = 1 + next() % 3;
                let changes = (0..n)
                    .map(|_| {
                        let id = NodeId(1 + next() % 6);
                        match next() % 3 {
                            0 => ConfChangeSingle::AddVoter(id),
                            1 => ConfChangeSingle::AddLearner(id),
                            _ => ConfChangeSingle::RemoveNode(id),
                        }
                    })
                    .collect();
                let cc = match next() % 5 {
                    0 => ConfChange::leave_joint(),
                    1 => ConfChange::new(changes)
                        .with_transition(ConfChangeTransition::JointExplicit),
                    _ => ConfChange::new(changes),
                };
                match cs.apply_change(&cc) {
                    Ok(after) => {
                        allowed += 1;
                        assert!(
                            JointConfig::from(&cs).quorums_intersect(&JointConfig::from(&after)),
                            "{} -> {} via {cc:?}",
                            describe(&cs),
                            describe(&after)
                        );
                        cs = after;
                    }
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(allowed > 1000 && refused > 100, "{allowed} {refused}");
    }
}
