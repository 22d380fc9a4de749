//! What the leader knows of each follower's log, and how it paces replication to it.
//!
//! - `Probe`: the follower's position is unknown; one AppendEntries in flight at a time until
//!   one is accepted (or a heartbeat answer says the follower is alive again).
//! - `Replicate`: the follower is known to match; appends are pipelined, bounded by an
//!   inflight window counted in messages and bytes.
//! - `Snapshot`: the follower needs a snapshot (arrives with the snapshot issue).

use std::collections::VecDeque;

use crate::types::LogIndex;

/// The replication state of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Finding where the follower's log matches.
    Probe,
    /// Streaming entries.
    Replicate,
    /// Waiting for a snapshot transfer.
    Snapshot,
}

/// The appends in flight to one follower, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    /// `(last index of the message, entry bytes)`.
    queue: VecDeque<(LogIndex, u64)>,
    bytes: u64,
    max_count: usize,
    max_bytes: u64,
}

impl Inflights {
    pub(crate) fn new(max_count: usize, max_bytes: u64) -> Self {
        Inflights {
            queue: VecDeque::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    pub(crate) fn add(&mut self, last: LogIndex, bytes: u64) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is at or below `index` (acknowledged).
    pub(crate) fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.queue.len() >= self.max_count || (self.max_bytes > 0 && self.bytes >= self.max_bytes)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

/// The leader's view of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to match the leader's log (durable on the peer).
    pub(crate) matched: LogIndex,
    /// The next index to send.
    pub(crate) next: LogIndex,
    pub(crate) state: ProgressState,
    /// In probe state: an append is in flight, wait for its answer or a heartbeat answer.
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    /// `matched` when the previous heartbeat answer arrived: a replicate pipeline that made no
    /// progress across a whole heartbeat interval lost a message and falls back to probe.
    pub(crate) matched_at_last_heartbeat: LogIndex,
    /// The commit index last sent to this peer.
    pub(crate) sent_commit: LogIndex,
    /// The peer waits to serve a read at our commit index: tell it the commit index as soon
    /// as an append may go, even with [`crate::Config::defer_commit_notice`].
    pub(crate) commit_wanted: bool,
    /// In snapshot state: the index of the snapshot being sent.
    pub(crate) pending_snapshot: LogIndex,
    /// The leader's tick count when the peer last sent it a message of its term
    /// (CheckQuorum's "recent activity").
    pub(crate) last_active: u64,
}

impl Progress {
    pub(crate) fn new(next: LogIndex, max_count: usize, max_bytes: u64) -> Self {
        Progress {
            matched: LogIndex(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_count, max_bytes),
            matched_at_last_heartbeat: LogIndex(0),
            sent_commit: LogIndex(0),
            commit_wanted: false,
            pending_snapshot: LogIndex(0),
            last_active: 0,
        }
    }

    /// Waiting for the peer to install the snapshot at `index`; nothing else is sent.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = index;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        self.pending_snapshot = LogIndex(0);
        self.state = ProgressState::Probe;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// The peer acknowledged `index`. Returns whether `matched` moved.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        self.inflights.free_to(index);
        updated
    }

    /// The peer rejected an append whose `prev_log_index` was `rejected`; the conflict hint
    /// suggests `hint_next`. Returns false when the rejection is stale (it answers a message
    /// older than the current probe or below what is known to match) and must be ignored.
    pub(crate) fn maybe_decrease(&mut self, rejected: LogIndex, hint_next: LogIndex) -> bool {
        if rejected <= self.matched {
            return false;
        }
        match self.state {
            ProgressState::Replicate => {
                // The pipeline broke (a lost or reordered message): find the match again.
                self.become_probe();
                self.next = hint_next.min(rejected).max(self.matched.next());
                true
            }
            ProgressState::Probe => {
                // Only the answer to the probe in flight counts.
                if self.next.prev() != rejected {
                    return false;
                }
                self.next = hint_next.min(rejected).max(self.matched.next());
                self.probe_sent = false;
                true
            }
            ProgressState::Snapshot => false,
        }
    }

    /// Records an append carrying entries up to `last` (`None` for an empty append).
    pub(crate) fn sent(&mut self, last: Option<LogIndex>, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next = last.next();
                    self.inflights.add(last, bytes);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_window_counts_messages_and_bytes() {
        let mut i = Inflights::new(3, 100);
        i.add(LogIndex(1), 10);
        i.add(LogIndex(2), 10);
        assert!(!i.full());
        i.add(LogIndex(5), 90);
        assert!(i.full());
        i.free_to(LogIndex(2));
        assert_eq!(i.len(), 1);
        assert!(!i.full(), "90 bytes and one message are under both limits");
        i.free_to(LogIndex(9));
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(LogIndex(11), 4, 0);
        p.matched = LogIndex(5);
        p.sent(None, 0);
        // A rejection of an older probe (prev 7) while the probe in flight has prev 10.
        assert!(!p.maybe_decrease(LogIndex(7), LogIndex(6)));
        // A rejection below matched is stale too.
        assert!(!p.maybe_decrease(LogIndex(4), LogIndex(2)));
        assert_eq!(p.next, LogIndex(11));
        // The real answer moves next back, but never below matched + 1.
        assert!(p.maybe_decrease(LogIndex(10), LogIndex(2)));
        assert_eq!(p.next, LogIndex(6));
        assert!(!p.probe_sent);
    }

    #[test]
    fn replicate_pipelines_until_window_full() {
        let mut p = Progress::new(LogIndex(1), 2, 0);
        p.become_replicate();
        p.sent(Some(LogIndex(3)), 30);
        assert_eq!(p.next, LogIndex(4));
        p.sent(Some(LogIndex(6)), 30);
        assert!(p.is_paused());
        assert!(p.maybe_update(LogIndex(3)));
        assert!(!p.is_paused());
        // A rejection in replicate state falls back to probe at the hint.
        assert!(p.maybe_decrease(LogIndex(6), LogIndex(5)));
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next, LogIndex(5));
    }
}
