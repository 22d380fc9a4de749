//! Leader election (§5.2) with the up-to-date rule (§5.4.1) and pre-vote (thesis §9.6).

use tracing::{debug, info};

use crate::message::{MessageBody, RequestVote, RequestVoteResponse};
use crate::quorum::VoteResult;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{NodeId, Role, Term};

impl<S: Storage> Raft<S> {
    /// The election timer fired (or the caller forces an election).
    pub(crate) fn campaign(&mut self) {
        if !self.can_campaign() {
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate();
            self.poll(self.id, true);
            if self.role == Role::PreCandidate {
                self.request_votes(true, false);
            }
        } else {
            self.start_election(false);
        }
    }

    /// The leader handed leadership over (`TimeoutNow`): campaign now, skipping pre-vote —
    /// the point is to win at once, and the leader that would make a pre-vote fail is the one
    /// asking. The vote requests say so (`transfer`), so no lease refuses them.
    pub(crate) fn campaign_transfer(&mut self) {
        if self.can_campaign() {
            self.start_election(true);
        }
    }

    fn can_campaign(&self) -> bool {
        // Learners, removed nodes and nodes waiting to join never campaign.
        if !self.may_campaign() {
            return false;
        }
        if self.term == Term(u64::MAX) {
            // The next term does not exist; reusing this one could mean a second vote in it.
            tracing::error!(node = %self.id, "term space exhausted; not campaigning");
            return false;
        }
        true
    }

    /// The real election: bump the term, vote for ourselves, ask the others. Our own vote is
    /// counted once it is durable (see `on_persisted`).
    pub(crate) fn start_election(&mut self, transfer: bool) {
        self.become_candidate();
        self.request_votes(false, transfer);
    }

    /// Whether this node refuses to disturb a live leader it heard from lately (CheckQuorum,
    /// thesis §4.2.3 and §9.6): a vote request for a later term is ignored while this holds,
    /// unless it is marked `transfer` (the leader itself asked for the election), and a
    /// pre-vote is refused. It holds on a leader (which steps down by itself once it loses
    /// its quorum), on a follower whose election timer has not run out since it last heard
    /// from its leader, and — with `read_lease` — on a node that restarted less than an
    /// election timeout ago (it may have acknowledged a leader just before it went down; a
    /// leader's read lease counts on that acknowledgement). Without `check_quorum` it never
    /// holds.
    pub(crate) fn in_leader_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        match self.role {
            Role::Leader => true,
            _ => {
                (!self.leader.is_none() || self.restart_lease)
                    && self.election_elapsed < self.cfg.election_ticks
            }
        }
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        let term = if pre_vote {
            self.term.next()
        } else {
            self.term
        };
        let v = RequestVote {
            pre_vote,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            transfer,
        };
        for to in self.voters_but_me() {
            self.send_with_term(to, term, MessageBody::RequestVote(v.clone()));
        }
    }

    pub(crate) fn handle_vote_request(&mut self, from: NodeId, term: Term, v: RequestVote) {
        let up_to_date = self.log.is_up_to_date(v.last_log_index, v.last_log_term);
        let grant = if v.pre_vote {
            // Grant a pre-vote only to a node that could win (up to date, asking for a later
            // term) and only if we have not heard from a live leader within the election
            // timeout: a healthy leader is not disrupted (§9.6).
            let leader_alive = !self.leader.is_none()
                && (self.role == Role::Leader || self.election_elapsed < self.cfg.election_ticks);
            term > self.term && up_to_date && !leader_alive && !self.in_leader_lease()
        } else {
            // One vote per term (§5.2). The term was already raised to the request's term.
            let free = self.vote == from || (self.vote.is_none() && self.leader.is_none());
            free && up_to_date
        };
        debug!(node = %self.id, term = %self.term, candidate = %from, pre_vote = v.pre_vote,
               granted = grant, "vote request");
        if grant && !v.pre_vote {
            self.vote = from;
            self.election_elapsed = 0;
        }
        // A granted pre-vote echoes the asked term so the pre-candidate does not step down; a
        // refusal carries ours so a lagging pre-candidate learns the current term.
        let reply_term = if grant && v.pre_vote { term } else { self.term };
        self.send_with_term(
            from,
            reply_term,
            MessageBody::RequestVoteResponse(RequestVoteResponse {
                pre_vote: v.pre_vote,
                granted: grant,
            }),
        );
    }

    pub(crate) fn handle_vote_response(&mut self, from: NodeId, v: RequestVoteResponse) {
        let expected = if v.pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        if self.role == expected {
            self.poll(from, v.granted);
        }
    }

    /// Records a vote and acts on the result.
    pub(crate) fn poll(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        let votes = &self.votes;
        match self.conf.vote_result(|id| votes.get(&id).copied()) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.start_election(false);
                    // A single-voter cluster wins as soon as its own vote is durable.
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => {
                info!(node = %self.id, term = %self.term, "election lost");
                self.become_follower(self.term, NodeId::NONE);
            }
            VoteResult::Pending => {}
        }
    }
}
