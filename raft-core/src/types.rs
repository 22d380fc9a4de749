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

/// The voting configuration.
///
/// Joint configurations (§6) and learners arrive with the membership issue; the type is
/// non-exhaustive so that adding them is not a breaking change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfState {
    /// The voters.
    pub voters: Vec<NodeId>,
}

impl ConfState {
    /// A configuration of the given voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        let mut voters: Vec<NodeId> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        ConfState { voters }
    }
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
