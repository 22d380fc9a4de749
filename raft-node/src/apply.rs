//! The apply thread: committed entries in batches into the state machine, then the replies
//! to the clients that wait for them.
//!
//! It runs beside the driver so that a slow RocksDB write never delays a tick or a
//! heartbeat. Its inputs arrive on one FIFO channel, which orders them: a snapshot install
//! comes after every batch handed out before it. Waiters are not inputs: the driver puts them
//! in the shared [`Waiters`] map right after proposing, before the entry each waits for can
//! be handed out, and a registration wakes nobody. Nor does the thread report each batch to
//! the driver: the driver reads the `applied` watch whenever it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use raft_core::{Entry, LogIndex, Term};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::Outcome;
use crate::driver::Event;
use crate::error::RequestError;
use crate::kv::{KvError, KvStore};

/// A client waiting for its proposal at `index` to be applied.
pub(crate) struct Waiter {
    pub(crate) term: Term,
    pub(crate) reply: oneshot::Sender<Result<Outcome, RequestError>>,
    pub(crate) proposed: Instant,
}

/// The clients waiting for their proposals, by log index.
pub(crate) type Waiters = Arc<Mutex<BTreeMap<LogIndex, Waiter>>>;

/// Locks the waiters. A panic while holding the lock leaves the map whole (every change to
/// it is one insert or one removal), so a poisoned lock is still good to use.
pub(crate) fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, BTreeMap<LogIndex, Waiter>> {
    waiters.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) enum ApplyInput {
    Apply(Vec<Entry>),
    /// Replace the state with the snapshot in `dir`; answer once done.
    Install {
        dir: PathBuf,
        index: LogIndex,
        term: Term,
        done: oneshot::Sender<Result<(), KvError>>,
    },
}

pub(crate) fn spawn(
    kv: KvStore,
    mut input: mpsc::UnboundedReceiver<ApplyInput>,
    waiters: Waiters,
    events: mpsc::UnboundedSender<Event>,
    applied: watch::Sender<LogIndex>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || {
            while let Some(first) = input.blocking_recv() {
                // Take everything queued: one RocksDB write for all of it.
                let mut batch = vec![first];
                while let Ok(more) = input.try_recv() {
                    batch.push(more);
                }
                let mut entries = Vec::new();
                for item in batch {
                    match item {
                        ApplyInput::Apply(mut es) => entries.append(&mut es),
                        ApplyInput::Install {
                            dir,
                            index,
                            term,
                            done,
                        } => {
                            if !apply_batch(&kv, &mut entries, &waiters, &events, &applied) {
                                return;
                            }
                            let result = kv.install(&dir, index, term);
                            if result.is_ok() {
                                // Outcomes of writes the snapshot covers are unknown here.
                                let covered = {
                                    let mut ws = lock(&waiters);
                                    let later = ws.split_off(&index.next());
                                    std::mem::replace(&mut *ws, later)
                                };
                                for (_, w) in covered {
                                    let _ = w.reply.send(Err(RequestError::Unknown));
                                }
                                applied.send_replace(index);
                            }
                            let _ = done.send(result);
                        }
                    }
                }
                if !apply_batch(&kv, &mut entries, &waiters, &events, &applied) {
                    return;
                }
            }
        })
}

/// Applies `entries` (emptying it) and answers their waiters. False on a storage failure,
/// after which the node must stop: the state machine no longer follows the log.
fn apply_batch(
    kv: &KvStore,
    entries: &mut Vec<Entry>,
    waiters: &Waiters,
    events: &mpsc::UnboundedSender<Event>,
    applied: &watch::Sender<LogIndex>,
) -> bool {
    let Some(last) = entries.last().map(|e| e.index) else {
        return true;
    };
    let started = Instant::now();
    let outcomes = match kv.apply(entries) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "the state machine failed to apply; stopping");
            let _ = events.send(Event::Fatal(format!("state machine: {e}")));
            return false;
        }
    };
    metrics::histogram!("raft_apply_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("raft_apply_batch_entries").record(entries.len() as f64);
    entries.clear();
    applied.send_replace(last);
    // Every waiter at or below `last` is answered now: with its outcome if the entry at its
    // index is the one it proposed (same term), else its proposal was replaced by another
    // leader's entry and never applied.
    let done = {
        let mut ws = lock(waiters);
        let later = ws.split_off(&last.next());
        std::mem::replace(&mut *ws, later)
    };
    let mut outcomes = outcomes.into_iter().peekable();
    for (index, w) in done {
        while outcomes.peek().is_some_and(|o| o.0 < index) {
            outcomes.next();
        }
        let result = match outcomes.peek() {
            Some((i, t, _)) if *i == index && *t == w.term => {
                let (_, _, outcome) = outcomes.next().expect("peeked");
                metrics::histogram!("raft_proposal_seconds")
                    .record(w.proposed.elapsed().as_secs_f64());
                Ok(outcome)
            }
            _ => Err(RequestError::Dropped),
        };
        let _ = w.reply.send(result);
    }
    true
}
