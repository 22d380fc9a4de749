//! Quorum math, kept pure: which index a configuration has committed given each voter's
//! match index, and whether an election is won. Joint configurations (§6) are two majorities
//! that must both agree; with an empty outgoing half a joint config is a plain majority.

use std::collections::BTreeSet;

use crate::types::NodeId;

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
    /// Neither yet.
    Pending,
}

/// A set of voters decided by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    pub(crate) fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    /// The largest value that a majority has reached, where `acked(id)` is what voter `id`
    /// has reached (0 when unknown). An empty config reaches everything (`u64::MAX`), so it
    /// is neutral as the outgoing half of a joint config.
    pub(crate) fn committed(&self, acked: impl Fn(NodeId) -> u64) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let mut v: Vec<u64> = self.voters.iter().map(|&id| acked(id)).collect();
        // Sorted descending, the value at position `majority - 1` is held by a majority.
        v.sort_unstable_by(|a, b| b.cmp(a));
        v[self.voters.len() / 2]
    }

    /// Counts votes: `vote(id)` is `Some(granted)` for voters that answered.
    pub(crate) fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for &id in &self.voters {
            match vote(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.voters.len() / 2 + 1;
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// A configuration that may be joint: decisions need both halves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JointConfig {
    pub(crate) incoming: MajorityConfig,
    pub(crate) outgoing: MajorityConfig,
}

impl JointConfig {
    pub(crate) fn simple(voters: impl IntoIterator<Item = NodeId>) -> Self {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// All voters of both halves, each once.
    pub(crate) fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming.iter().chain(self.outgoing.iter()).collect()
    }

    pub(crate) fn committed(&self, acked: impl Fn(NodeId) -> u64 + Copy) -> u64 {
        self.incoming
            .committed(acked)
            .min(self.outgoing.committed(acked))
    }

    pub(crate) fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool> + Copy) -> VoteResult {
        match (
            self.incoming.vote_result(vote),
            self.outgoing.vote_result(vote),
        ) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn committed_index_table() {
        // (voters, acked values in voter order, expected)
        let cases: &[(&[u64], &[u64], u64)] = &[
            (&[1], &[5], 5),
            (&[1, 2], &[5, 3], 3),
            (&[1, 2, 3], &[5, 3, 1], 3),
            (&[1, 2, 3], &[5, 5, 1], 5),
            (&[1, 2, 3], &[0, 0, 7], 0),
            (&[1, 2, 3, 4], &[4, 3, 2, 1], 2),
            (&[1, 2, 3, 4, 5], &[9, 8, 1, 1, 7], 7),
            (&[], &[], u64::MAX),
        ];
        for (voters, acked, want) in cases {
            let m: BTreeMap<NodeId, u64> =
                ids(voters).into_iter().zip(acked.iter().copied()).collect();
            let c = MajorityConfig::new(ids(voters));
            assert_eq!(
                c.committed(|id| m[&id]),
                *want,
                "voters {voters:?} acked {acked:?}"
            );
        }
    }

    #[test]
    fn vote_result_table() {
        use VoteResult::*;
        // votes: 1 = yes, 0 = no, 2 = no answer
        let cases: &[(&[u64], &[u8], VoteResult)] = &[
            (&[1], &[1], Won),
            (&[1], &[2], Pending),
            (&[1], &[0], Lost),
            (&[1, 2, 3], &[1, 2, 2], Pending),
            (&[1, 2, 3], &[1, 1, 2], Won),
            (&[1, 2, 3], &[1, 0, 2], Pending),
            (&[1, 2, 3], &[1, 0, 0], Lost),
            (&[1, 2, 3, 4], &[1, 1, 0, 2], Pending),
            (&[1, 2, 3, 4], &[1, 1, 0, 0], Lost),
            (&[1, 2, 3, 4, 5], &[1, 1, 1, 0, 0], Won),
        ];
        for (voters, votes, want) in cases {
            let m: BTreeMap<NodeId, u8> =
                ids(voters).into_iter().zip(votes.iter().copied()).collect();
            let c = MajorityConfig::new(ids(voters));
            let got = c.vote_result(|id| match m[&id] {
                1 => Some(true),
                0 => Some(false),
                _ => None,
            });
            assert_eq!(got, *want, "voters {voters:?} votes {votes:?}");
        }
    }

    #[test]
    fn joint_needs_both_halves() {
        let j = JointConfig {
            incoming: MajorityConfig::new(ids(&[1, 2, 3])),
            outgoing: MajorityConfig::new(ids(&[3, 4, 5])),
        };
        let acked = |id: NodeId| [0, 9, 9, 1, 1, 0][id.0 as usize];
        // incoming has 9 on a majority, outgoing only 1.
        assert_eq!(j.committed(acked), 1);
        let vote = |id: NodeId| Some(id.0 <= 2);
        assert_eq!(j.vote_result(vote), VoteResult::Lost);
        let vote = |id: NodeId| Some(id.0 != 5 && id.0 != 1);
        assert_eq!(j.vote_result(vote), VoteResult::Won);
        assert_eq!(j.ids().len(), 5);
    }
}
