//! Snapshots of the state machine: taking one (an SST file from a consistent RocksDB
//! snapshot), recording it in the log and compacting, streaming it to a follower and
//! receiving one. Everything here runs beside the driver and reports back as an [`Event`].

use std::path::PathBuf;
use std::sync::Arc;

use raft_core::{ConfState, LogIndex, Message, SnapshotMeta, Term};
use raft_log::{LogStore, LogWrite};
use raft_net_quic::{SnapshotStream, Transport};
use raft_snapshot::{Manifest, SnapshotStore, TransferConfig, receive_snapshot, send_snapshot};
use tokio::sync::mpsc;

use crate::driver::Event;
use crate::kv::KvStore;

/// What a log entry costs besides its data, in [`Policy`]'s estimate of the log's bytes:
/// index, term and kind as stored, and the store's key and checksum.
const ENTRY_OVERHEAD: u64 = 32;

/// Whether a periodic snapshot is worth taking. The core suggests one every
/// `snapshot_interval` entries; but a snapshot writes the whole state machine, and the log it
/// lets us drop may be far smaller. With 100,000 keys of 16-byte values, a snapshot every
/// 100,000 SETs (2.7 MB of SST against 4.2 MB of log) was a fifth of the p99 at 64 clients:
/// its CPU and its fsyncs land between the log's. So, as Redis rewrites its append-only file
/// only once it grew by `auto-aof-rewrite-percentage` and `auto-aof-rewrite-min-size`, a
/// periodic snapshot waits until the log since the last one is both at least `min_log_bytes`
/// and `percentage` % of the last snapshot's size. A snapshot a follower needs is never put
/// off (see [`raft_core::RawNode::snapshot_needed`]).
#[derive(Debug)]
pub(crate) struct Policy {
    min_log_bytes: u64,
    percentage: u64,
    /// Bytes of the newest snapshot's files (taken here or installed from the leader).
    snapshot_bytes: u64,
    /// An estimate of the log's bytes since then: data plus [`ENTRY_OVERHEAD`] an entry.
    log_bytes: u64,
}

impl Policy {
    /// `snapshot_bytes`: the newest snapshot's size (0 if none); `log_bytes`: the log's
    /// size at start (so that restarts do not put compaction off indefinitely).
    pub(crate) fn new(
        min_log_bytes: u64,
        percentage: u64,
        snapshot_bytes: u64,
        log_bytes: u64,
    ) -> Policy {
        Policy {
            min_log_bytes,
            percentage,
            snapshot_bytes,
            log_bytes,
        }
    }

    /// Entries appended to the log.
    pub(crate) fn appended(&mut self, entries: &[raft_core::Entry]) {
        let bytes: u64 = entries
            .iter()
            .map(|e| e.data.len() as u64 + ENTRY_OVERHEAD)
            .sum();
        self.log_bytes = self.log_bytes.saturating_add(bytes);
    }

    /// A snapshot of `bytes` was taken or installed; the log before it no longer counts.
    pub(crate) fn snapshot(&mut self, bytes: u64) {
        self.snapshot_bytes = bytes;
        self.log_bytes = 0;
    }

    /// Whether a periodic snapshot should be taken now.
    pub(crate) fn worth_taking(&self) -> bool {
        self.log_bytes >= self.threshold()
    }

    /// The log's bytes at which a periodic snapshot is taken.
    fn threshold(&self) -> u64 {
        let relative = self.snapshot_bytes.saturating_mul(self.percentage) / 100;
        self.min_log_bytes.max(relative)
    }

    /// Publishes the log's bytes since the last snapshot and the threshold, for operators
    /// who wonder when the next one comes.
    pub(crate) fn record(&self) {
        metrics::gauge!("raft_snapshot_log_bytes").set(self.log_bytes as f64);
        metrics::gauge!("raft_snapshot_log_threshold_bytes").set(self.threshold() as f64);
    }
}

/// Snapshots kept on disk: the newest serves followers; one older is kept so a transfer of
/// it that is still running is not cut off.
const KEEP: usize = 2;

#[derive(Clone)]
pub(crate) struct Snapshots {
    pub(crate) store: SnapshotStore,
    pub(crate) kv: KvStore,
    pub(crate) cfg: TransferConfig,
}

impl Snapshots {
    pub(crate) fn has(&self, index: LogIndex, term: Term) -> bool {
        self.store.get(index, term).is_some()
    }

    pub(crate) fn dir_of(&self, index: LogIndex, term: Term) -> Option<PathBuf> {
        self.store.get(index, term).map(|m| self.store.path_of(&m))
    }

    /// The size of the newest snapshot's files (0 if there is none).
    pub(crate) fn newest_bytes(&self) -> u64 {
        self.store.latest().map_or(0, |m| m.total_bytes())
    }

    /// The size of the files of snapshot `(index, term)` (0 if it is not in the store).
    pub(crate) fn bytes_of(&self, index: LogIndex, term: Term) -> u64 {
        self.store.get(index, term).map_or(0, |m| m.total_bytes())
    }

    /// Takes a snapshot at the state machine's applied index; reports `SnapshotTaken` with
    /// its size (`None` when there is nothing newer than the last one).
    pub(crate) fn take(&self, conf: ConfState, events: mpsc::UnboundedSender<Event>) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = this.take_blocking(conf).map_err(|e| e.to_string());
            let _ = events.send(Event::SnapshotTaken(result));
        });
    }

    fn take_blocking(
        &self,
        conf: ConfState,
    ) -> Result<Option<(SnapshotMeta, u64)>, Box<dyn std::error::Error>> {
        let newest = self.store.latest().map_or(LogIndex(0), |m| m.index);
        let staging = self.store.staging_dir(LogIndex(0), Term(0))?;
        let (index, term, keys) = self.kv.write_snapshot(&staging)?;
        if index <= newest {
            std::fs::remove_dir_all(&staging)?;
            return Ok(None);
        }
        let manifest = Manifest::from_dir(&staging, index, term, conf.clone())?;
        self.store.install_dir(&staging, &manifest)?;
        // The log is compacted below this index next: the state machine must hold it
        // durably first, or a crash could leave it behind a log that no longer reaches it.
        self.kv.sync()?;
        let bytes = manifest.total_bytes();
        tracing::info!(index = %index, term = %term, keys, bytes, "snapshot taken");
        metrics::counter!("raft_snapshots_total", "kind" => "taken", "outcome" => "ok")
            .increment(1);
        metrics::counter!("raft_snapshot_bytes_total", "kind" => "taken").increment(bytes);
        let meta = SnapshotMeta {
            index,
            term,
            conf_state: conf,
        };
        Ok(Some((meta, bytes)))
    }

    /// Records `meta` in the log (so a leader offers it to followers that fell behind), then
    /// compacts the log below it and prunes older snapshots. `hard_state`, when given, is
    /// written with the record: the log compacts only up to the commit index it stores.
    pub(crate) fn record_and_compact(
        &self,
        log: LogStore,
        meta: SnapshotMeta,
        hard_state: Option<raft_core::HardState>,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let store = self.store.clone();
        let handle = tokio::runtime::Handle::current();
        let mut write = LogWrite::entries(Vec::new()).with_snapshot(meta.clone());
        if let Some(hs) = hard_state {
            write = write.with_hard_state(hs);
        }
        let compact_log = log.clone();
        log.submit(write, move |result| {
            if let Err(e) = result {
                let _ = events.send(Event::SnapshotRecorded(Err(e.to_string())));
                return;
            }
            // Compaction blocks; the writer thread that runs this callback must not.
            handle.spawn_blocking(move || {
                let result = compact_log
                    .compact(meta.index)
                    .map_err(|e| e.to_string())
                    .and_then(|first| {
                        store.prune(KEEP).map_err(|e| e.to_string())?;
                        tracing::info!(index = %meta.index, first_index = %first, "log compacted after snapshot");
                        Ok(meta)
                    });
                let _ = events.send(Event::SnapshotRecorded(result));
            });
        });
    }

    /// Streams the snapshot to `msg.to`, then delivers the InstallSnapshot message itself,
    /// which the follower acts on only once the files are there. Reports `SnapshotSent`.
    pub(crate) fn send(
        &self,
        transport: Arc<Transport>,
        msg: Message,
        meta: SnapshotMeta,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let peer = msg.to;
            let result: Result<u64, String> = async {
                let manifest = this
                    .store
                    .get(meta.index, meta.term)
                    .ok_or_else(|| format!("snapshot {} is not in the store", meta.index))?;
                let stream = transport
                    .open_snapshot(peer)
                    .await
                    .map_err(|e| e.to_string())?;
                let report = send_snapshot(
                    this.store.path_of(&manifest),
                    &manifest,
                    stream.recv,
                    stream.send,
                    &this.cfg,
                )
                .await
                .map_err(|e| e.to_string())?;
                transport.send(msg).map_err(|e| e.to_string())?;
                Ok(report.bytes_sent)
            }
            .await;
            let ok = match result {
                Ok(bytes) => {
                    tracing::info!(peer = %peer, index = %meta.index, bytes, "snapshot sent");
                    metrics::counter!("raft_snapshot_bytes_total", "kind" => "sent")
                        .increment(bytes);
                    true
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, index = %meta.index, error = %e, "snapshot transfer failed");
                    false
                }
            };
            let outcome = if ok { "ok" } else { "error" };
            metrics::counter!("raft_snapshots_total", "kind" => "sent", "outcome" => outcome)
                .increment(1);
            let _ = events.send(Event::SnapshotSent {
                peer,
                index: meta.index,
                ok,
            });
        });
    }

    /// Receives a snapshot a peer streams to us into the store.
    pub(crate) fn receive(&self, stream: SnapshotStream) {
        let this = self.clone();
        tokio::spawn(async move {
            let peer = stream.peer;
            match receive_snapshot(&this.store, stream.recv, stream.send, &this.cfg).await {
                Ok(m) => {
                    tracing::info!(peer = %peer, index = %m.index, term = %m.term, bytes = m.total_bytes(), "snapshot received");
                    metrics::counter!("raft_snapshots_total", "kind" => "received", "outcome" => "ok").increment(1);
                    metrics::counter!("raft_snapshot_bytes_total", "kind" => "received")
                        .increment(m.total_bytes());
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "snapshot receive failed");
                    metrics::counter!("raft_snapshots_total", "kind" => "received", "outcome" => "error").increment(1);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::{Entry, EntryKind};

    fn entries(n: usize, data_bytes: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                index: LogIndex(i as u64 + 1),
                term: Term(1),
                kind: EntryKind::Normal,
                data: Bytes::from(vec![b'x'; data_bytes]),
            })
            .collect()
    }

    #[test]
    fn the_log_must_reach_the_floor_and_the_share_of_the_last_snapshot() {
        // 68 bytes an entry in the estimate.
        let mut p = Policy::new(6_800, 200, 10_000, 0);
        p.appended(&entries(150, 36));
        assert!(!p.worth_taking(), "over the floor, under 200 % of 10,000");
        p.appended(&entries(145, 36));
        assert!(p.worth_taking(), "20,060 bytes of log");
        p.snapshot(1_000);
        assert!(
            !p.worth_taking(),
            "the log before a snapshot no longer counts"
        );
        p.appended(&entries(99, 36));
        assert!(!p.worth_taking(), "under the floor");
        p.appended(&entries(1, 36));
        assert!(p.worth_taking(), "at the floor, over 200 % of 1,000");
    }

    #[test]
    fn zeros_take_every_suggested_snapshot() {
        let p = Policy::new(0, 0, 1 << 30, 0);
        assert!(p.worth_taking());
        let p = Policy::new(0, 100, 0, 0);
        assert!(p.worth_taking(), "no snapshot yet");
    }

    #[test]
    fn the_log_found_at_start_counts() {
        let mut p = Policy::new(10_000, 100, 5_000, 9_990);
        assert!(!p.worth_taking());
        p.appended(&entries(1, 0));
        assert!(p.worth_taking(), "9,990 bytes at start and 32 since");
    }
}
