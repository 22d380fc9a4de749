//! Snapshots (§7): the leader sends its snapshot to a follower that needs entries it
//! compacted; the follower replaces its log with it unless its log already holds the
//! snapshot's last entry.
//!
//! The snapshot's data travels outside the core (the caller streams it, e.g. with
//! `raft-snapshot`). The leader's [`MessageBody::InstallSnapshot`] tells the caller what to
//! send; the follower's caller delivers that message once the data is staged, installs the
//! [`crate::Ready::snapshot`] it gets back, and the follower answers once that is durable.

use tracing::{info, warn};

use crate::message::{InstallSnapshot, MessageBody};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{LogIndex, NodeId, SnapshotMeta};

impl<S: Storage> Raft<S> {
    /// Leader: `to` needs entries we no longer have. Returns false when there is no snapshot
    /// to send (nothing can be sent until the caller takes one).
    pub(crate) fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Some(meta) = self.log.snapshot.clone() else {
            if !self.snapshot_wanted {
                info!(node = %self.id, peer = %to, "a follower needs a snapshot; asking for one");
            }
            self.snapshot_wanted = true;
            return false;
        };
        if meta.index < self.log.first_index().prev() {
            // Storage compacted past its newest snapshot: only a newer one can bring the
            // peer back.
            if !self.snapshot_wanted {
                warn!(node = %self.id, peer = %to, snapshot = %meta.index,
                      first_index = %self.log.first_index(),
                      "the newest snapshot is older than the compacted log; asking for one");
            }
            self.snapshot_wanted = true;
            return false;
        }
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        pr.become_snapshot(meta.index);
        info!(node = %self.id, term = %self.term, peer = %to, index = %meta.index,
              snapshot_term = %meta.term, "sending snapshot");
        self.send(to, MessageBody::InstallSnapshot(InstallSnapshot { meta }));
        true
    }

    /// Leader: the caller's transfer of the snapshot to `to` ended. On failure the follower
    /// is probed again (and gets the snapshot again if it still needs it).
    pub(crate) fn report_snapshot(&mut self, to: NodeId, index: LogIndex, ok: bool) {
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        // A late report of an earlier transfer must not end the current one.
        if pr.state != ProgressState::Snapshot || pr.pending_snapshot != index {
            return;
        }
        let pending = pr.pending_snapshot;
        pr.become_probe();
        if ok {
            // Its answer to the InstallSnapshot message moves it on: wait for it (or for the
            // next heartbeat answer) rather than probe now, which could overtake the message
            // and be rejected, sending the whole snapshot again.
            pr.next = pr.next.max(pending.next());
            pr.probe_sent = true;
        } else {
            warn!(node = %self.id, peer = %to, index = %pending, "snapshot transfer failed");
        }
    }

    /// Follower: the leader's snapshot, its data already staged by the caller.
    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        let committed = self.log.committed;
        if meta.index <= committed {
            // Old news: we already hold everything it covers.
            self.respond_append(from, committed, None);
            return;
        }
        if self.log.match_term(meta.index, meta.term) {
            // §7: our log holds the snapshot's last entry, so it matches the leader's up to
            // there; keep what follows and just commit.
            info!(node = %self.id, term = %self.term, index = %meta.index,
                  "snapshot already covered by the log; committing to it");
            self.log.commit_to(meta.index);
            self.respond_append(from, meta.index, None);
            return;
        }
        info!(node = %self.id, term = %self.term, index = %meta.index,
              snapshot_term = %meta.term, "restoring from the leader's snapshot");
        // Everything above our commit index may have diverged from the snapshot.
        self.drop_stale_acks(committed.next());
        self.log.restore(meta.clone());
        self.restore_conf(&meta);
        // Sent once the snapshot is durable, like any append answer.
        self.respond_append(from, meta.index, None);
    }
}
