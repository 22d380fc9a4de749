//! Quorum math, kept pure: which index a configuration has committed given each voter's
//! match index, and whether an election is won. Joint configurations (§6) are two majorities
//! that must both agree; with an empty outgoing half a joint config is a plain majority.

use std::collections::BTreeSet;

use crate::types::{ConfState, NodeId};

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

    /// Whether every quorum of `self` shares a node with every quorum of `other`, by
    /// enumerating the subsets of their voters (small configurations only: tests).
    #[cfg(test)]
    pub(crate) fn quorums_intersect(&self, other: &JointConfig) -> bool {
        let all: Vec<NodeId> = self.ids().union(&other.ids()).copied().collect();
        assert!(all.len() <= 16, "too many voters to enumerate");
        let is_quorum = |c: &JointConfig, set: u32| {
            c.vote_result(|id| {
                let i = all.iter().position(|&x| x == id).expect("a known voter");
                Some(set & (1 << i) != 0)
            }) == VoteResult::Won
        };
        let full = (1u32 << all.len()) - 1;
        // Quorums are closed under supersets: two disjoint quorums exist iff some set is a
        // quorum of one while its complement is a quorum of the other.
        (0..=full).all(|s| !(is_quorum(self, s) && is_quorum(other, full & !s)))
    }
}

impl From<&ConfState> for JointConfig {
    fn from(cs: &ConfState) -> Self {
        JointConfig {
            incoming: MajorityConfig::new(cs.voters.iter().copied()),
            outgoing: MajorityConfig::new(cs.voters_outgoing.iter().copied()),
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

    fn joint(incoming: &[u64], outgoing: &[u64]) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(ids(incoming)),
            outgoing: MajorityConfig::new(ids(outgoing)),
        }
    }

    /// The committed index of a joint configuration is the smaller of its halves'; with an
    /// empty outgoing half it is the incoming half's; a voter of both halves counts in each.
    #[test]
    fn committed_index_joint_table() {
        // (incoming, outgoing, acked by node id 1..=7, expected)
        type Case = (&'static [u64], &'static [u64], [u64; 7], u64);
        let cases: &[Case] = &[
            // Not joint: the incoming majority alone.
            (&[1, 2, 3], &[], [5, 3, 1, 0, 0, 0, 0], 3),
            // Identical halves: the same as either.
            (&[1, 2, 3], &[1, 2, 3], [5, 3, 1, 0, 0, 0, 0], 3),
            // Replacing 3 by 4: 4 lags, so the incoming half holds the commit back.
            (&[1, 2, 4], &[1, 2, 3], [9, 2, 9, 1, 0, 0, 0], 2),
            // ... and once 4 caught up the outgoing half decides.
            (&[1, 2, 4], &[1, 2, 3], [9, 2, 7, 9, 0, 0, 0], 7),
            // Disjoint halves: each needs its own majority.
            (&[4, 5, 6], &[1, 2, 3], [9, 9, 9, 1, 2, 0, 0], 1),
            (&[4, 5, 6], &[1, 2, 3], [9, 9, 0, 8, 8, 0, 0], 8),
            // Growing 1 -> 3 voters: the single outgoing voter must have it too.
            (&[1, 2, 3], &[1], [4, 9, 9, 0, 0, 0, 0], 4),
            // Shrinking 5 -> 1 voter: a majority of the five, and the one.
            (&[5], &[1, 2, 3, 4, 5], [9, 9, 9, 1, 2, 0, 0], 2),
            (&[5], &[1, 2, 3, 4, 5], [9, 1, 1, 1, 9, 0, 0], 1),
            // An even incoming half needs three of its four.
            (&[1, 2, 3, 4], &[1, 2, 3], [8, 7, 6, 5, 0, 0, 0], 6),
            // Leader (1) only in the outgoing half, not counted in the incoming one.
            (&[2, 3, 4], &[1, 2, 3], [9, 1, 2, 3, 0, 0, 0], 2),
        ];
        for (inc, out, acked, want) in cases {
            let j = joint(inc, out);
            let got = j.committed(|id| acked[id.0 as usize - 1]);
            assert_eq!(
                got, *want,
                "incoming {inc:?} outgoing {out:?} acked {acked:?}"
            );
        }
    }

    /// Elections in a joint configuration are won only with both halves, and lost as soon as
    /// either half can no longer be won.
    #[test]
    fn vote_result_joint_table() {
        use VoteResult::*;
        // votes by node id 1..=6: 1 = yes, 0 = no, 2 = no answer
        type Case = (&'static [u64], &'static [u64], [u8; 6], VoteResult);
        let cases: &[Case] = &[
            (&[1, 2, 3], &[], [1, 1, 2, 2, 2, 2], Won),
            (&[1, 2, 4], &[1, 2, 3], [1, 1, 2, 2, 2, 2], Won),
            // Incoming won (1, 4), outgoing not yet (1 of 1, 2, 3).
            (&[1, 2, 4], &[1, 2, 3], [1, 2, 2, 1, 2, 2], Pending),
            // Outgoing lost (2 and 3 refuse) although incoming is won.
            (&[1, 4, 5], &[1, 2, 3], [1, 0, 0, 1, 1, 2], Lost),
            // Incoming lost although outgoing is won.
            (&[4, 5, 6], &[1, 2, 3], [1, 1, 1, 0, 0, 2], Lost),
            (&[4, 5, 6], &[1, 2, 3], [1, 1, 0, 1, 1, 0], Won),
            // Shrinking 3 -> 1: the one voter and a majority of the three.
            (&[1], &[1, 2, 3], [1, 0, 2, 2, 2, 2], Pending),
            (&[1], &[1, 2, 3], [1, 0, 1, 2, 2, 2], Won),
            (&[2], &[1, 2, 3], [1, 0, 1, 2, 2, 2], Lost),
            // Votes of non-voters (5, 6) never count.
            (&[1, 2, 3], &[1, 2, 4], [1, 0, 0, 2, 1, 1], Lost),
        ];
        for (inc, out, votes, want) in cases {
            let j = joint(inc, out);
            let got = j.vote_result(|id| match votes[id.0 as usize - 1] {
                1 => Some(true),
                0 => Some(false),
                _ => None,
            });
            assert_eq!(
                got, *want,
                "incoming {inc:?} outgoing {out:?} votes {votes:?}"
            );
        }
    }

    /// One joint step keeps quorums intersecting; skipping the joint step may not.
    #[test]
    fn quorum_intersection_table() {
        // (a incoming, a outgoing, b incoming, b outgoing, quorums intersect)
        type Case = (
            &'static [u64],
            &'static [u64],
            &'static [u64],
            &'static [u64],
            bool,
        );
        let cases: &[Case] = &[
            (&[1, 2, 3], &[], &[1, 2, 3, 4], &[], true),
            (&[1, 2, 3, 4], &[], &[1, 2, 3], &[], true),
            (&[1, 2, 3], &[], &[4, 5, 6], &[1, 2, 3], true),
            (&[4, 5, 6], &[1, 2, 3], &[4, 5, 6], &[], true),
            // From {1,2,3} straight to {4,5,6}, or two voters at once: disjoint majorities.
            (&[1, 2, 3], &[], &[4, 5, 6], &[], false),
            (&[1, 2, 3], &[], &[1, 2, 3, 4, 5], &[], false),
            (&[1, 2], &[], &[3, 4], &[], false),
        ];
        for (a_in, a_out, b_in, b_out, want) in cases {
            let (a, b) = (joint(a_in, a_out), joint(b_in, b_out));
            assert_eq!(a.quorums_intersect(&b), *want, "{a:?} vs {b:?}");
            assert_eq!(b.quorums_intersect(&a), *want, "{b:?} vs {a:?}");
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
