//! The protocol's numbers and records: newtypes so that an index is never passed as a term.

use std::fmt;

use bytes::Bytes;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

newtype!(
    /// A Raft term (§5.1). Term 0 is before any election.
    Term
);
newtype!(
    /// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
    LogIndex
);
newtype!(
    /// A node's identity in the cluster. 0 is reserved for "none".
    NodeId
);

impl Term {
    /// The next term.
    pub const fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

impl LogIndex {
    /// The following index.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }
    /// The preceding index (saturating at 0).
    pub const fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
    /// `self + n`.
    pub const fn plus(self, n: u64) -> LogIndex {
        LogIndex(self.0.saturating_add(n))
    }
}

impl NodeId {
    /// "No node": used for "no vote" and "no known leader".
    pub const NONE: NodeId = NodeId(0);
    /// Whether this is [`NodeId::NONE`].
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// Application data, opaque to the protocol.
    #[default]
    Normal,
    /// An empty entry a new leader appends so entries of earlier terms commit (§5.4.2, §8).
    Noop,
    /// A membership change: `data` is an encoded [`crate::ConfChange`]
    /// ([`crate::ConfChange::encode`]). It takes effect on every node as soon as it is in the
    /// node's log (see [`crate::confchange`]); the state machine applies nothing for it.
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created it.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// What it carries.
    pub kind: EntryKind,
    /// The payload (empty for [`EntryKind::Noop`]).
    pub data: Bytes,
}

impl Entry {
    /// A normal entry.
    pub fn new(term: Term, index: LogIndex, data: impl Into<Bytes>) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: data.into(),
        }
    }

    /// The bytes this entry counts for in size limits (payload plus a fixed header estimate).
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state every node must persist before it answers (§5, Figure 2) — plus the commit index,
/// so a restarted node can apply what it knew was committed without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom it voted for in `term` ([`NodeId::NONE`] for nobody).
    pub vote: NodeId,
    /// The highest index it knows to be committed.
    pub commit: LogIndex,
}

/// A cluster configuration: who votes, who only learns.
///
/// Outside a membership change only `voters` and `learners` are set. During a joint change
/// (§6, thesis §4.3) `voters_outgoing` holds the voters of the configuration being left: every
/// decision (commit, election, CheckQuorum, read confirmation) needs a majority of `voters`
/// *and* a majority of `voters_outgoing`. Each list is sorted and holds each id once; a node is
/// in at most one of `learners` and `voters`, and `learners_next` only holds nodes of
/// `voters_outgoing` (see [`crate::confchange`] for how changes produce these).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfState {
    /// The voters (of the incoming configuration, when joint).
    pub voters: Vec<NodeId>,
    /// The voters of the outgoing configuration while joint; empty otherwise.
    pub voters_outgoing: Vec<NodeId>,
    /// Non-voting members: they receive the log and snapshots but never vote, never campaign
    /// and never count toward a quorum.
    pub learners: Vec<NodeId>,
    /// Voters of the outgoing configuration that become learners when the joint
    /// configuration is left (a voter demoted to learner in a joint change keeps voting in the
    /// outgoing half until then).
    pub learners_next: Vec<NodeId>,
    /// While joint: the leader leaves the joint configuration by itself as soon as it is
    /// committed ([`crate::ConfChangeTransition::Auto`] and
    /// [`crate::ConfChangeTransition::JointImplicit`]).
    pub auto_leave: bool,
}

impl ConfState {
    /// A configuration of the given voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        ConfState {
            voters: sorted(voters),
            ..ConfState::default()
        }
    }

    /// A configuration of the given voters and learners.
    pub fn with_learners(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> ConfState {
        ConfState {
            voters: sorted(voters),
            learners: sorted(learners),
            ..ConfState::default()
        }
    }

    /// Whether this is a joint configuration (a change between two voter sets is under way).
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes: a voter of either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a learner (now, or once the joint configuration is left).
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) || self.learners_next.contains(&id)
    }

    /// Whether `id` is a member at all (voter or learner).
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners, each once, in id order.
    pub fn members(&self) -> Vec<NodeId> {
        sorted(
            self.voters
                .iter()
                .chain(&self.voters_outgoing)
                .chain(&self.learners)
                .copied(),
        )
    }

    /// Whether there is no configuration at all (no voter in either half): a node that waits
    /// to join a cluster starts like this and learns its configuration from a snapshot.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.voters_outgoing.is_empty()
    }

    /// Checks the invariants listed on the type; a description of the first broken one.
    pub fn check(&self) -> Result<(), &'static str> {
        for list in [
            &self.voters,
            &self.voters_outgoing,
            &self.learners,
            &self.learners_next,
        ] {
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err("configuration lists must be sorted without duplicates");
            }
            if list.iter().any(|id| id.is_none()) {
                return Err("node id 0 in a configuration");
            }
        }
        if self.learners.iter().any(|&l| self.is_voter(l)) {
            return Err("a learner is also a voter");
        }
        if self
            .learners_next
            .iter()
            .any(|l| !self.voters_outgoing.contains(l))
        {
            return Err("a next learner is not an outgoing voter");
        }
        if self.learners_next.iter().any(|l| self.learners.contains(l)) {
            return Err("a next learner is already a learner");
        }
        if self.auto_leave && !self.is_joint() {
            return Err("auto_leave on a configuration that is not joint");
        }
        Ok(())
    }
}

pub(crate) fn sorted(ids: impl IntoIterator<Item = NodeId>) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = ids.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The role of a node (§5.2), with pre-vote as its own role (thesis §9.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asking for pre-votes without bumping its term.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// Volatile state worth reporting when it changes: role and known leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftState {
    /// The node's role.
    pub role: Role,
    /// The leader it knows for its term, or [`NodeId::NONE`].
    pub leader: NodeId,
}

/// What a snapshot covers: the state after applying every entry up to and including `index`
/// (of `term`), and the configuration at that point. The snapshot's data travels outside the
/// core (see `raft-snapshot`); the core only needs to know where it stands in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last entry the snapshot includes.
    pub index: LogIndex,
    /// That entry's term.
    pub term: Term,
    /// The configuration as of `index`.
    pub conf_state: ConfState,
}
