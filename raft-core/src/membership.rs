//! Membership changes in the running protocol (§6, thesis chapter 4); the configuration math
//! itself is pure and lives in [`crate::confchange`].
//!
//! **A configuration takes effect as soon as its entry is in a node's log**, committed or not
//! (thesis §4.1: "a server always uses the latest configuration in its log"), and is undone
//! if a new leader replaces that entry. Each node's configuration is therefore a function of
//! its log: the configuration at the log's start (a snapshot's, or the bootstrap one) with
//! every [`EntryKind::ConfChange`] entry after it applied in order. Nobody has to apply or
//! persist a configuration by hand, and a node that restarts finds it again in its log.
//!
//! Why not switch when the entry is *applied*, as etcd-raft does: a node that holds two
//! changes in its log without knowing they committed (say {1,2,3} → joint → {4,5,6}) would
//! still count votes and commits with {1,2,3}, two steps behind; removed nodes 1 and 2 could
//! then elect one of themselves and commit with a majority that shares nobody with {4,5,6}.
//! With log-time configurations a node that lags behind the committed configuration also
//! lags in its log and cannot be elected, so every leader counts the committed configuration
//! or one change ahead of it — and one step never breaks quorum intersection (the simulation
//! checks this at every election).
//!
//! Rules, on the leader:
//! - one change at a time: a change is accepted only once the previous one is applied
//!   ([`crate::Error::ConfChangePending`]), so every change starts from a committed
//!   configuration;
//! - a new leader first applies the entry that starts its term: it then has committed an
//!   entry of its term, which rules out the single-server change bug (two leaders of
//!   different terms each appending a different change to the same configuration);
//! - it replicates to every member of its latest configuration and of the committed one
//!   (learners, and nodes being removed until their removal commits, then for one more
//!   election timeout so that they learn it committed); only voters count toward commit,
//!   elections, CheckQuorum and read confirmation, with both halves of a joint
//!   configuration;
//! - once a joint configuration with `auto_leave` is committed, it appends the change that
//!   leaves it;
//! - a leader that is no longer a voter of its configuration keeps leading, without counting
//!   itself, until that configuration is committed, then steps down (thesis §4.2.2).
//!
//! Everywhere: only a voter campaigns — of its latest configuration, or of the one it knows
//! committed: a node removed by an entry it does not know committed still campaigns (thesis
//! §4.2.2), since its log may be the one a new leader needs, and votes count only where they
//! are a voter's; a learner, a node that knows its removal committed and a node waiting to
//! join never do. Any node answers vote requests, learners and removed nodes included: the
//! candidate's configuration decides whose votes count, and it may be newer than the voter's
//! (a learner promoted by an entry it has not received yet must still be able to vote, or a
//! cluster of three with one voter down could not elect a leader). Messages from nodes
//! outside the configuration are accepted for the same reason (a leader added by an entry
//! this node has not received yet).
//!
//! A node that joins a cluster starts with no configuration and an empty log. It refuses
//! entries until it has a snapshot (its rejection says `needs_snapshot`), since it does not
//! know the configuration they build on; the leader sends its snapshot, asking the caller to
//! take one ([`crate::Ready::snapshot_due`]) if it has none.

use tracing::{debug, info, warn};

use crate::confchange::ConfChange;
use crate::error::{Error, Result, StorageError};
use crate::progress::Progress;
use crate::quorum::JointConfig;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{ConfState, Entry, EntryKind, LogIndex, NodeId, Role, SnapshotMeta, Term};

/// The configurations a node's log defines: the one at the log's start, then the one each
/// configuration-change entry brings, in log order. Kept from the newest snapshot on (older
/// ones are never asked for again: entries at or below the commit index are never replaced).
#[derive(Clone, Debug)]
pub(crate) struct ConfHistory {
    /// `(index, configuration in effect from that index on)`, ascending; never empty.
    list: Vec<(LogIndex, ConfState)>,
}

impl ConfHistory {
    pub(crate) fn new(index: LogIndex, base: ConfState) -> Self {
        ConfHistory {
            list: vec![(index, base)],
        }
    }

    /// The configuration in effect: the latest in the log.
    pub(crate) fn latest(&self) -> &ConfState {
        // Never empty: `new` puts the base in and nothing removes it.
        &self.list.last().expect("history is never empty").1
    }

    /// The index of the latest configuration change (of the base, when there is none).
    pub(crate) fn latest_index(&self) -> LogIndex {
        self.list.last().expect("history is never empty").0
    }

    /// The configuration in effect at `index`; `None` below the oldest one kept.
    pub(crate) fn at(&self, index: LogIndex) -> Option<&ConfState> {
        self.list
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs)
    }

    /// Forgets the changes at or after `index` (their entries are being replaced). Returns
    /// whether any was.
    fn truncate_from(&mut self, index: LogIndex) -> bool {
        let before = self.list.len();
        while self.list.len() > 1 && self.list.last().is_some_and(|(i, _)| *i >= index) {
            self.list.pop();
        }
        self.list.len() != before
    }

    fn push(&mut self, index: LogIndex, cs: ConfState) {
        self.list.push((index, cs));
    }

    /// Forgets what nobody asks for any more: configurations replaced before `index`.
    fn compact_to(&mut self, index: LogIndex) {
        let keep_from = self
            .list
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        self.list.drain(..keep_from);
    }
}

/// The configuration `e` brings on top of `cs`, if `e` is a valid change of it. A change the
/// leader could not have proposed (undecodable, or invalid for this configuration) changes
/// nothing, on every node alike.
fn next_conf(node: NodeId, cs: &ConfState, e: &Entry) -> Option<ConfState> {
    if e.kind != EntryKind::ConfChange {
        return None;
    }
    let cc = match ConfChange::decode(e.data.clone()) {
        Ok(cc) => cc,
        Err(err) => {
            warn!(node = %node, index = %e.index, error = %err,
                  "undecodable configuration change ignored");
            return None;
        }
    };
    match cs.apply_change(&cc) {
        Ok(next) => Some(next),
        Err(err) => {
            warn!(node = %node, index = %e.index, error = %err,
                  "invalid configuration change ignored");
            None
        }
    }
}

/// The configuration history of a restarting node: the newest snapshot's configuration (or,
/// without a snapshot at or after the log's start, the stored one as of the log's start),
/// then every configuration change stored after it.
pub(crate) fn load_history<S: Storage>(
    node: NodeId,
    store: &S,
    stored: ConfState,
) -> Result<ConfHistory, StorageError> {
    let first = store.first_index()?;
    let last = store.last_index()?;
    let (base_index, base) = match store.snapshot()? {
        Some(s) if s.index >= first.prev() => (s.index, s.conf_state),
        _ => (first.prev(), stored),
    };
    if let Err(detail) = base.check() {
        return Err(StorageError::Corruption {
            index: base_index,
            detail: format!("stored configuration: {detail}"),
        });
    }
    let mut h = ConfHistory::new(base_index, base);
    let mut next = base_index.next().max(first);
    while next <= last {
        let chunk = store.entries(next, last.next(), 1 << 20)?;
        let Some(end) = chunk.last().map(|e| e.index) else {
            break;
        };
        for e in &chunk {
            if let Some(cs) = next_conf(node, h.latest(), e) {
                h.push(e.index, cs);
            }
        }
        next = end.next();
    }
    Ok(h)
}

impl<S: Storage> Raft<S> {
    /// Whether this node is a voter of its configuration (either half of a joint one).
    pub(crate) fn is_voter(&self) -> bool {
        self.conf_state.is_voter(self.id)
    }

    /// Whether this node may start an election: a voter of its configuration, or of the one
    /// it knows committed. A node removed by an entry it does not know committed may be
    /// needed to elect the leader that commits it — its log may be the longest (thesis
    /// §4.2.2); its own vote counts only where it is a voter, and once it elected a leader
    /// that commits the removal, that leader steps down.
    pub(crate) fn may_campaign(&self) -> bool {
        self.is_voter()
            || self
                .confs
                .at(self.log.committed)
                .is_some_and(|cs| cs.is_voter(self.id))
    }

    /// The voters to ask in an election, this node excluded.
    pub(crate) fn voters_but_me(&self) -> Vec<NodeId> {
        let me = self.id;
        self.conf.ids().into_iter().filter(|&id| id != me).collect()
    }

    /// The peers the leader replicates to: everybody with a progress, this node excluded.
    pub(crate) fn replication_peers(&self) -> Vec<NodeId> {
        let me = self.id;
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != me)
            .collect()
    }

    /// The log changed from `from` on and now holds `entries` there: forget the
    /// configurations of replaced entries and take on those of the new ones.
    pub(crate) fn track_conf(&mut self, from: LogIndex, entries: &[Entry]) {
        let mut changed = self.confs.truncate_from(from);
        for e in entries {
            if let Some(cs) = next_conf(self.id, self.confs.latest(), e) {
                self.confs.push(e.index, cs);
                changed = true;
            }
        }
        if changed {
            self.conf_changed();
        }
    }

    /// The log restarts after a snapshot: its configuration is the one in effect.
    pub(crate) fn restore_conf(&mut self, meta: &SnapshotMeta) {
        self.confs = ConfHistory::new(meta.index, meta.conf_state.clone());
        self.conf_changed();
    }

    /// The configuration in effect changed: update the quorum view, and on the leader whom it
    /// replicates to.
    fn conf_changed(&mut self) {
        let cs = self.confs.latest().clone();
        if cs != self.conf_state {
            info!(node = %self.id, term = %self.term, index = %self.confs.latest_index(),
                  voters = ?cs.voters, outgoing = ?cs.voters_outgoing, learners = ?cs.learners,
                  "configuration changed");
        }
        self.conf = JointConfig::from(&cs);
        self.conf_state = cs;
        self.conf_version += 1;
        if self.role == Role::Leader {
            self.sync_progress();
            if let Some(t) = self.transfer
                && !self.conf_state.voters.contains(&t.target)
            {
                info!(node = %self.id, term = %self.term, to = %t.target,
                      "leadership transfer aborted: the target is no longer a voter");
                self.transfer = None;
            }
        }
    }

    /// Leader: a progress for every member of the latest and of the committed configuration
    /// (new ones start probing after the log's end) and for departing nodes, none for anybody
    /// else.
    pub(crate) fn sync_progress(&mut self) {
        let mut tracked = self.conf_state.members();
        if let Some(committed) = self.confs.at(self.log.committed) {
            tracked.extend(committed.members());
        }
        tracked.push(self.id);
        tracked.extend(self.departing.keys());
        self.progress.retain(|id, _| tracked.contains(id));
        let next = self.log.last_index().next();
        for id in tracked {
            if !self.progress.contains_key(&id) {
                let mut p = Progress::new(
                    next,
                    self.cfg.max_inflight_msgs,
                    self.cfg.max_inflight_bytes,
                );
                // A new peer gets an election timeout to answer (CheckQuorum).
                p.last_active = self.ticks;
                debug!(node = %self.id, peer = %id, "replicating to a new member");
                self.progress.insert(id, p);
            }
        }
    }

    /// Leader: proposes a membership change (see the module documentation for the rules).
    pub(crate) fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(LogIndex, Term)> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = self.transfer {
            return Err(Error::TransferInProgress { to: t.target });
        }
        let pending = self.confs.latest_index().max(self.term_start);
        if self.log.applied < pending {
            return Err(Error::ConfChangePending { index: pending });
        }
        self.conf_state.apply_change(&cc)?;
        info!(node = %self.id, term = %self.term, change = ?cc.changes,
              transition = ?cc.transition, "configuration change proposed");
        Ok(self.append_conf_change(&cc))
    }

    fn append_conf_change(&mut self, cc: &ConfChange) -> (LogIndex, Term) {
        let e = Entry {
            term: self.term,
            index: self.log.last_index().next(),
            kind: EntryKind::ConfChange,
            data: cc.encode(),
        };
        let at = (e.index, e.term);
        self.append_local(vec![e]);
        at
    }

    /// Leader, after its commit index moved: leave a committed joint configuration that asks
    /// for it, and note that the configuration's progress (and maybe our leadership) need a
    /// look once the new commit index went out.
    pub(crate) fn conf_after_commit(&mut self, before: LogIndex) {
        let latest = self.confs.latest_index();
        if latest > before && latest <= self.log.committed {
            self.conf_commit_pending = true;
        }
        self.maybe_auto_leave();
    }

    /// Leader: appends the change that leaves the joint configuration once it is committed,
    /// if it asks for that (`auto_leave`). A transfer in progress does not stop it: the
    /// leave is part of the change the cluster already agreed on.
    pub(crate) fn maybe_auto_leave(&mut self) {
        if self.role == Role::Leader
            && self.conf_state.is_joint()
            && self.conf_state.auto_leave
            && self.confs.latest_index() <= self.log.committed
        {
            info!(node = %self.id, term = %self.term, "joint configuration committed; leaving it");
            self.append_conf_change(&ConfChange::leave_joint());
        }
    }

    /// Leader, once a newly committed configuration's commit index has been sent: stop
    /// replicating to nodes it removed, and step down if it removed (or demoted) this node.
    pub(crate) fn finish_conf_commit(&mut self) {
        if !std::mem::take(&mut self.conf_commit_pending) || self.role != Role::Leader {
            return;
        }
        if !self.is_voter() {
            info!(node = %self.id, term = %self.term,
                  "the configuration without this node is committed; stepping down");
            self.become_follower(self.term, NodeId::NONE);
            return;
        }
        // Removed nodes still get appends and heartbeats for an election timeout, so that
        // they learn their removal is committed (and their application can stop them).
        let committed = self
            .confs
            .at(self.log.committed)
            .cloned()
            .unwrap_or_default();
        let until = self.ticks + u64::from(self.cfg.election_ticks);
        let removed: Vec<NodeId> = self
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id && !self.conf_state.contains(id) && !committed.contains(id))
            .collect();
        for id in removed {
            self.departing.entry(id).or_insert(until);
        }
        self.sync_progress();
    }

    /// Leader's tick: stop replicating to removed nodes whose grace time is over.
    pub(crate) fn tick_departing(&mut self) {
        let now = self.ticks;
        if self.departing.values().any(|&until| until <= now) {
            self.departing.retain(|_, until| *until > now);
            self.sync_progress();
        }
    }

    /// The configuration in effect at `index`, as far back as the newest snapshot.
    pub(crate) fn conf_state_at(&self, index: LogIndex) -> Option<ConfState> {
        if index > self.log.last_index() {
            return None;
        }
        self.confs.at(index).cloned()
    }

    /// The caller took a snapshot at `index`: configurations before it are not needed.
    pub(crate) fn conf_snapshot_taken(&mut self, index: LogIndex) {
        self.confs.compact_to(index);
    }

    /// A node with no configuration waits to join: it takes no entries before a snapshot.
    pub(crate) fn awaits_snapshot(&self) -> bool {
        self.conf_state.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(v: &[u64]) -> ConfState {
        ConfState::new(v.iter().map(|&i| NodeId(i)))
    }

    #[test]
    fn history_truncates_and_compacts() {
        let mut h = ConfHistory::new(LogIndex(10), cs(&[1]));
        h.push(LogIndex(12), cs(&[1, 2]));
        h.push(LogIndex(15), cs(&[1, 2, 3]));
        assert_eq!(h.at(LogIndex(9)), None);
        assert_eq!(h.at(LogIndex(11)), Some(&cs(&[1])));
        assert_eq!(h.at(LogIndex(14)), Some(&cs(&[1, 2])));
        assert_eq!(h.latest(), &cs(&[1, 2, 3]));
        assert!(h.truncate_from(LogIndex(15)));
        assert_eq!(h.latest_index(), LogIndex(12));
        assert!(!h.truncate_from(LogIndex(13)));
        // The base is never truncated.
        h.truncate_from(LogIndex(1));
        assert_eq!(h.latest(), &cs(&[1]));
        h.push(LogIndex(12), cs(&[1, 2]));
        h.push(LogIndex(15), cs(&[1, 2, 3]));
        h.compact_to(LogIndex(13));
        assert_eq!(h.at(LogIndex(11)), None);
        assert_eq!(h.at(LogIndex(13)), Some(&cs(&[1, 2])));
        assert_eq!(h.latest(), &cs(&[1, 2, 3]));
    }
}
