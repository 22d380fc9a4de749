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

    /// Takes a snapshot at the state machine's applied index; reports `SnapshotTaken`
    /// (`None` when there is nothing newer than the last one).
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
    ) -> Result<Option<SnapshotMeta>, Box<dyn std::error::Error>> {
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
        tracing::info!(index = %index, term = %term, keys, bytes = manifest.total_bytes(), "snapshot taken");
        metrics::counter!("raft_snapshots_total", "kind" => "taken", "outcome" => "ok")
            .increment(1);
        metrics::counter!("raft_snapshot_bytes_total", "kind" => "taken")
            .increment(manifest.total_bytes());
        Ok(Some(SnapshotMeta {
            index,
            term,
            conf_state: conf,
        }))
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
