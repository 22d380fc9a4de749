//! Log replication (§5.3): the leader's side (proposals, appends paced by progress, the
//! commit rule) and the follower's side (the consistency check, conflict truncation and the
//! conflict hint).

use bytes::Bytes;
use tracing::{debug, warn};

use crate::error::{Error, Result, StorageError};
use crate::message::{
    AppendEntries, AppendEntriesResponse, ConflictHint, Heartbeat, HeartbeatResponse, MessageBody,
};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role, Term};

/// When [`Raft::send_append`] sends an append without new entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Send {
    /// Only with new entries (or as a probe, or to a follower waiting on a read).
    IfNew,
    /// Also to carry a commit index the follower was not told.
    IfNewOrCommit,
    /// Always.
    Always,
}

impl<S: Storage> Raft<S> {
    // ---- leader ----

    pub(crate) fn propose(&mut self, data: Vec<Bytes>) -> Result<(LogIndex, Term)> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = self.transfer {
            // The target must catch up with a log that stops growing (thesis §3.10).
            return Err(Error::TransferInProgress { to: t.target });
        }
        let mut index = self.log.last_index();
        let entries = data
            .into_iter()
            .map(|d| {
                index = index.next();
                Entry::new(self.term, index, d)
            })
            .collect();
        self.append_local(entries);
        Ok((index, self.term))
    }

    pub(crate) fn append_noop(&mut self) {
        let e = Entry {
            term: self.term,
            index: self.log.last_index().next(),
            kind: EntryKind::Noop,
            data: Bytes::new(),
        };
        self.append_local(vec![e]);
    }

    /// Appends to the leader's log. The entries go out to followers when the caller next takes
    /// a [`crate::Ready`], so proposals made together share one AppendEntries per follower.
    pub(crate) fn append_local(&mut self, entries: Vec<Entry>) {
        let at = self.log.last_index().next();
        self.track_conf(at, &entries);
        self.log.append(entries);
        self.broadcast_pending = true;
        // A single-voter cluster commits as soon as its own write is durable (see on_persisted).
    }

    /// Sends what each follower is missing (or just the new commit index, unless that notice
    /// is deferred).
    pub(crate) fn broadcast_append(&mut self) {
        self.broadcast_pending = false;
        // A committed configuration change is announced at once even when notices are
        // deferred: removed nodes learn they are out, and a removed leader steps down next.
        let mode = if self.cfg.defer_commit_notice && !self.conf_commit_pending {
            Send::IfNew
        } else {
            Send::IfNewOrCommit
        };
        for to in self.replication_peers() {
            self.send_append(to, mode);
        }
    }

    /// With [`crate::Config::defer_commit_notice`]: tells every follower the commit index it
    /// has not been told yet (called on the leader's tick).
    pub(crate) fn send_deferred_commit(&mut self) {
        if self.cfg.defer_commit_notice {
            for to in self.replication_peers() {
                self.send_append(to, Send::IfNewOrCommit);
            }
        }
    }

    /// Sends the next AppendEntries to `to` unless its progress is paused. Without new entries
    /// an empty append is sent only in probe state, to carry a commit index the follower has
    /// not been told when `mode` asks for it or the follower waits on a read, or when `mode`
    /// forces it.
    pub(crate) fn send_append(&mut self, to: NodeId, mode: Send) {
        let last = self.log.last_index();
        let committed = self.log.committed;
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        if pr.is_paused() {
            return;
        }
        let next = pr.next;
        let has_new = next <= last;
        let probing = pr.state == ProgressState::Probe;
        // Appends still in flight will be answered and the answer carries the commit on; an
        // extra empty append pays off only for an otherwise idle follower.
        let untold = pr.sent_commit < committed && pr.inflights.is_empty();
        let carry = match mode {
            // A follower waiting to serve a read gets the commit index whatever the mode.
            Send::IfNew => untold && pr.commit_wanted,
            Send::IfNewOrCommit => untold,
            Send::Always => true,
        };
        if !has_new && !probing && !carry {
            return;
        }
        // Only the commit index is news to a follower that holds our whole log and has
        // answered every append: its answer would repeat what we know. Not asking for one
        // saves a message each way per commit on an otherwise idle cluster.
        let commit_only = mode != Send::Always
            && carry
            && !has_new
            && pr.state == ProgressState::Replicate
            && pr.matched == last;

        let prev = next.prev();
        let prev_term = match self.log.term(prev) {
            Ok(t) => t,
            Err(StorageError::Compacted(_)) => {
                // The follower needs entries we compacted: it gets the snapshot (§7).
                self.send_snapshot(to);
                return;
            }
            Err(e) => {
                warn!(node = %self.id, peer = %to, index = %prev, error = %e,
                      "cannot replicate: previous entry unavailable");
                return;
            }
        };
        let entries = if has_new {
            // At most MAX_ENTRIES_PER_MESSAGE: the receiver refuses more.
            let max = crate::wire::MAX_ENTRIES_PER_MESSAGE as u64;
            let hi = last.next().min(LogIndex(next.get().saturating_add(max)));
            match self.log.slice(next, hi, self.cfg.max_size_per_msg) {
                Ok(e) => e,
                Err(StorageError::Compacted(_)) => {
                    self.send_snapshot(to);
                    return;
                }
                Err(e) => {
                    warn!(node = %self.id, peer = %to, index = %next, error = %e,
                          "cannot read entries to replicate");
                    return;
                }
            }
        } else {
            Vec::new()
        };
        let bytes: u64 = entries.iter().map(Entry::size).sum();
        let last_sent = entries.last().map(|e| e.index);
        // Progress exists: checked at the top and nothing removed it since.
        let pr = self.progress.get_mut(&to).expect("progress exists");
        pr.sent(last_sent, bytes);
        pr.sent_commit = committed;
        pr.commit_wanted = false;
        self.send(
            to,
            MessageBody::AppendEntries(AppendEntries {
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                leader_commit: committed,
                commit_only,
            }),
        );
    }

    /// The periodic heartbeat (§5.2).
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let round = self.read_only.heartbeat_round(self.ticks);
        self.send_heartbeats(round);
    }

    /// Heartbeats to every peer carrying read round `round`.
    pub(crate) fn send_heartbeats(&mut self, round: u64) {
        for to in self.replication_peers() {
            let committed = self.log.committed;
            let Some(pr) = self.progress.get_mut(&to) else {
                continue;
            };
            // Never tell a follower to commit past what it is known to hold.
            let commit = committed.min(pr.matched);
            // The heartbeat tells it this much: no commit-only append needs to repeat it.
            pr.sent_commit = pr.sent_commit.max(commit);
            self.send(
                to,
                MessageBody::Heartbeat(Heartbeat {
                    commit,
                    read_round: round,
                }),
            );
        }
    }

    pub(crate) fn handle_append_response(&mut self, from: NodeId, r: AppendEntriesResponse) {
        match r.reject {
            None => {
                if r.index > self.log.last_index() {
                    warn!(node = %self.id, peer = %from, index = %r.index,
                          "append response beyond our log ignored");
                    return;
                }
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                if pr.maybe_update(r.index) {
                    if pr.state == ProgressState::Snapshot && pr.matched >= pr.pending_snapshot {
                        // The follower installed the snapshot: replicate from there.
                        pr.become_probe();
                    }
                    if pr.state == ProgressState::Probe {
                        pr.become_replicate();
                    }
                    self.maybe_commit();
                }
                // Keep the pipeline full (and tell the follower a new commit index, unless
                // that notice is deferred) at the next ready: proposals that arrive before it
                // then travel in the same append as the commit index, one message, not two.
                self.broadcast_pending = true;
                self.maybe_send_timeout_now_to(from, false);
            }
            Some(hint) => {
                // We never sent an append whose prev_log_index is beyond our log.
                if r.index > self.log.last_index() {
                    warn!(node = %self.id, peer = %from, index = %r.index,
                          "rejection beyond our log ignored");
                    return;
                }
                if hint.needs_snapshot {
                    // A node joining the cluster: it starts from our snapshot.
                    // (Once it answered anything it has a configuration: the rejection is old.)
                    if self.progress.get(&from).is_some_and(|p| {
                        p.state != ProgressState::Snapshot && p.matched == LogIndex(0)
                    }) {
                        self.send_snapshot(from);
                    }
                    return;
                }
                let hint_next = self.next_from_hint(r.index, hint);
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                if pr.maybe_decrease(r.index, hint_next) {
                    debug!(node = %self.id, peer = %from, rejected = %r.index,
                           next = %pr.next, "follower rejected append; backing off");
                    self.send_append(from, Send::IfNew);
                }
            }
        }
    }

    /// Where to probe next after a rejection of `prev_log_index = rejected` with `hint`:
    /// skip the follower's whole conflicting term in one step, and further if our own log
    /// shows where that term ends for us.
    fn next_from_hint(&self, rejected: LogIndex, hint: ConflictHint) -> LogIndex {
        let Some(term) = hint.term else {
            return hint.index;
        };
        // The last index at or below `rejected` where our term is <= the follower's conflict
        // term. If that entry has exactly that term, we share the term up to there.
        let mut i = rejected.min(self.log.last_index());
        while i > LogIndex(0) {
            match self.log.term(i) {
                Ok(t) if t > term => i = i.prev(),
                Ok(t) if t == term => return i.next(),
                _ => break,
            }
        }
        hint.index
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, r: HeartbeatResponse) {
        if !self.progress.contains_key(&from) {
            return;
        }
        self.read_only.ack(from, r.read_round);
        self.release_reads();
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        let mut mode = Send::IfNew;
        match pr.state {
            ProgressState::Probe => pr.probe_sent = false,
            ProgressState::Replicate if pr.matched < last => {
                if pr.matched == pr.matched_at_last_heartbeat && pr.inflights.full() {
                    // A full window and no progress over a heartbeat interval: an append
                    // was lost. Find the match again instead of waiting forever.
                    pr.become_probe();
                } else if pr.next > last {
                    // Everything was sent but not all acknowledged: an empty append at the
                    // tail either succeeds or is rejected with a hint, so a lost append is
                    // detected within one heartbeat.
                    mode = Send::Always;
                }
            }
            _ => {}
        }
        pr.matched_at_last_heartbeat = pr.matched;
        if pr.matched < last {
            self.send_append(from, mode);
        } else {
            self.maybe_send_timeout_now_to(from, true);
        }
    }

    /// Advances the commit index to the largest index durable on a quorum, if that entry is of
    /// the current term (§5.4.2: never commit an earlier term's entry by counting replicas).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let idx = self
            .conf
            .committed(|id| progress.get(&id).map_or(0, |p| p.matched.get()));
        let idx = LogIndex(idx);
        if idx <= self.log.committed || !self.log.match_term(idx, self.term) {
            return false;
        }
        let before = self.log.committed;
        self.log.commit_to(idx);
        debug!(node = %self.id, term = %self.term, index = %idx, "committed");
        self.conf_after_commit(before);
        // Reads waiting for the first commit of this term may start now.
        true
    }

    // ---- follower ----

    pub(crate) fn handle_append(&mut self, from: NodeId, a: AppendEntries) -> Result<()> {
        let AppendEntries {
            mut prev_log_index,
            mut prev_log_term,
            mut entries,
            leader_commit,
            commit_only,
        } = a;
        if self.awaits_snapshot() {
            // Entries build on a configuration this node does not know (see
            // `crate::membership`): it starts from a snapshot.
            let hint = ConflictHint {
                term: None,
                index: self.log.last_index().next(),
                needs_snapshot: true,
            };
            self.respond_append(from, prev_log_index, Some(hint));
            return Ok(());
        }
        let committed = self.log.committed;
        // Entries up to our commit index match the leader's log (Leader Completeness, §5.4):
        // skip them. This also covers a prefix we already compacted away.
        if prev_log_index < committed {
            let skip = (committed.get() - prev_log_index.get()).min(entries.len() as u64) as usize;
            if skip == entries.len() {
                let index = prev_log_index.plus(entries.len() as u64);
                self.respond_append(from, index, None);
                return Ok(());
            }
            if skip > 0 {
                prev_log_term = entries[skip - 1].term;
                prev_log_index = entries[skip - 1].index;
                entries.drain(..skip);
            }
        }
        if !self.log.match_term(prev_log_index, prev_log_term) {
            let hint = self.conflict_hint(prev_log_index);
            debug!(node = %self.id, term = %self.term, leader = %from, prev = %prev_log_index,
                   ?hint, "rejected append");
            self.respond_append(from, prev_log_index, Some(hint));
            return Ok(());
        }
        let last_new = prev_log_index.plus(entries.len() as u64);
        // Skip entries we already hold with the same term; truncate only at a real conflict,
        // so stale, duplicated or reordered appends never shorten the log (§5.3).
        let last = self.log.last_index();
        let mut first_new = entries.len();
        for (i, e) in entries.iter().enumerate() {
            if e.index > last || !self.log.match_term(e.index, e.term) {
                first_new = i;
                break;
            }
        }
        if first_new < entries.len() {
            let at = entries[first_new].index;
            if at <= self.log.committed {
                return Err(Error::CommittedConflict {
                    leader: from,
                    term: self.term,
                    index: at,
                });
            }
            if at <= last {
                warn!(node = %self.id, term = %self.term, index = %at, "truncating conflicting log suffix");
                self.drop_stale_acks(at);
            }
            self.log.truncate_and_append(&entries[first_new..]);
            self.track_conf(at, &entries[first_new..]);
        }
        self.log.commit_to(leader_commit.min(last_new));
        if !commit_only {
            self.respond_append(from, last_new, None);
        }
        Ok(())
    }

    pub(crate) fn respond_append(
        &mut self,
        to: NodeId,
        index: LogIndex,
        reject: Option<ConflictHint>,
    ) {
        self.send(
            to,
            MessageBody::AppendEntriesResponse(AppendEntriesResponse { index, reject }),
        );
    }

    /// The hint for a rejected `prev`: our conflicting term and the first index we hold for
    /// it, or our last index + 1 when our log is shorter.
    fn conflict_hint(&self, prev: LogIndex) -> ConflictHint {
        let last = self.log.last_index();
        if prev > last {
            return ConflictHint {
                term: None,
                index: last.next(),
                needs_snapshot: false,
            };
        }
        let Ok(term) = self.log.term(prev) else {
            return ConflictHint {
                term: None,
                index: self.log.committed.next(),
                needs_snapshot: false,
            };
        };
        // Entries up to the commit index match the leader, so the scan stops above it.
        let floor = self.log.committed.next().max(self.log.first_index());
        let mut first = prev;
        while first > floor && self.log.match_term(first.prev(), term) {
            first = first.prev();
        }
        ConflictHint {
            term: Some(term),
            index: first,
            needs_snapshot: false,
        }
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, h: Heartbeat) {
        self.log.commit_to(h.commit);
        self.send(
            from,
            MessageBody::HeartbeatResponse(HeartbeatResponse {
                read_round: h.read_round,
            }),
        );
    }
}
