//! Applying committed entries: in batches into the state machine, then the replies to the
//! clients that wait for them.
//!
//! The apply thread runs beside the driver so that a slow RocksDB write never delays a tick
//! or a heartbeat. Its inputs arrive on one FIFO channel, which orders them: a snapshot
//! install comes after every batch handed out before it. Waiters are not inputs: the driver
//! puts them in the shared [`Waiters`] map right after proposing, before the entry each waits
//! for can be handed out, and a registration wakes nobody. Nor does the thread report each
//! batch to the driver: the driver reads the `applied` watch whenever it runs.
//!
//! A small batch is applied by the driver itself when the thread has nothing queued
//! ([`Applier::apply`]): a write that skips the WAL is a few memtable inserts, cheaper than
//! the two thread wake-ups of the hand-off (on a virtual machine each costs tens of µs, and
//! both lie on the path of every write). That write asks RocksDB not to wait
//! (`no_slowdown`): if RocksDB would stall it, the batch goes to the thread after all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The largest batch the driver applies itself: a few tens of µs of memtable inserts, about
/// what the hand-off's two wake-ups cost. Larger batches come under load, when the thread
/// applying beside the driver is worth more than the wake-ups it costs.
const INLINE_MAX_ENTRIES: usize = 8;
const INLINE_MAX_BYTES: usize = 64 << 10;

/// What applying needs, shared by the driver and the apply thread.
#[derive(Clone)]
struct Shared {
    kv: KvStore,
    waiters: Waiters,
    events: mpsc::UnboundedSender<Event>,
    applied: watch::Sender<LogIndex>,
    /// Inputs sent to the thread and not yet done. The driver applies in place only at 0:
    /// then every earlier batch is in the store, and nothing can overtake it.
    queued: Arc<AtomicUsize>,
}

/// The driver's end: applies committed entries in place or hands them to the thread.
pub(crate) struct Applier {
    tx: mpsc::UnboundedSender<ApplyInput>,
    shared: Shared,
    /// Joined when the applier drops (see `Drop`).
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long dropping an [`Applier`] waits for its thread to finish what it was given.
const STOP_WAIT: Duration = Duration::from_secs(5);

impl Drop for Applier {
    /// Lets the thread apply what it was given, then waits for it to end (a bounded time):
    /// a thread still writing to the state machine's store when the process exits can
    /// crash inside RocksDB (a test did).
    fn drop(&mut self) {
        let _ = self.tx.send(ApplyInput::Stop);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!(
                "the apply thread did not stop within {STOP_WAIT:?}; leaving it running"
            );
        }
    }
}

/// Why [`Applier::apply`] failed: the state machine no longer follows the log.
#[derive(Debug)]
pub(crate) struct ApplyFailed;

impl Applier {
    /// Applies committed entries, in log order after every batch handed out before.
    pub(crate) fn apply(&self, mut entries: Vec<Entry>) -> Result<(), ApplyFailed> {
        if self.shared.queued.load(Ordering::Acquire) == 0 && small(&entries) {
            match apply_batch(&self.shared, &mut entries, Wait::No) {
                Applied::Done => {
                    metrics::counter!("raft_apply_batches_total", "on" => "driver").increment(1);
                    return Ok(());
                }
                Applied::Failed => return Err(ApplyFailed),
                // RocksDB would stall the write: the thread may wait, the driver may not.
                Applied::WouldWait => {}
            }
        }
        self.send(ApplyInput::Apply(entries));
        Ok(())
    }

    /// Replaces the state with a snapshot, after every batch handed out before.
    pub(crate) fn install(
        &self,
        dir: PathBuf,
        index: LogIndex,
        term: Term,
        done: oneshot::Sender<Result<(), KvError>>,
    ) {
        self.send(ApplyInput::Install {
            dir,
            index,
            term,
            done,
        });
    }

    fn send(&self, input: ApplyInput) {
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        // A closed channel means the thread stopped on a failure it reported as fatal.
        let _ = self.tx.send(input);
    }
}

fn small(entries: &[Entry]) -> bool {
    entries.len() <= INLINE_MAX_ENTRIES
        && entries.iter().map(|e| e.data.len()).sum::<usize>() <= INLINE_MAX_BYTES
}

enum ApplyInput {
    Apply(Vec<Entry>),
    /// Replace the state with the snapshot in `dir`; answer once done.
    Install {
        dir: PathBuf,
        index: LogIndex,
        term: Term,
        done: oneshot::Sender<Result<(), KvError>>,
    },
    /// Apply everything before this, then end (sent when the [`Applier`] drops).
    Stop,
}

pub(crate) fn spawn(
    kv: KvStore,
    waiters: Waiters,
    events: mpsc::UnboundedSender<Event>,
    applied: watch::Sender<LogIndex>,
) -> std::io::Result<Applier> {
    let (tx, mut input) = mpsc::unbounded_channel();
    let shared = Shared {
        kv,
        waiters,
        events,
        applied,
        queued: Arc::default(),
    };
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || {
            while let Some(first) = input.blocking_recv() {
                // Take everything queued: one RocksDB write for all of it.
                let mut batch = vec![first];
                while let Ok(more) = input.try_recv() {
                    batch.push(more);
                }
                let taken = batch.len();
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
                            if !apply_batch(&sh, &mut entries, Wait::Yes).ok() {
                                return;
                            }
                            let result = sh.kv.install(&dir, index, term);
                            if result.is_ok() {
                                // Outcomes of writes the snapshot covers are unknown here.
                                let covered = {
                                    let mut ws = lock(&sh.waiters);
                                    let later = ws.split_off(&index.next());
                                    std::mem::replace(&mut *ws, later)
                                };
                                for (_, w) in covered {
                                    let _ = w.reply.send(Err(RequestError::Unknown));
                                }
                                sh.applied.send_replace(index);
                            }
                            let _ = done.send(result);
                        }
                        ApplyInput::Stop => {
                            let _ = apply_batch(&sh, &mut entries, Wait::Yes);
                            return;
                        }
                    }
                }
                if !apply_batch(&sh, &mut entries, Wait::Yes).ok() {
                    return;
                }
                metrics::counter!("raft_apply_batches_total", "on" => "thread").increment(1);
                // Only now may the driver apply in place: everything taken is in the store.
                sh.queued.fetch_sub(taken, Ordering::AcqRel);
            }
        })?;
    Ok(Applier {
        tx,
        shared,
        thread: Some(thread),
    })
}

/// Whether [`apply_batch`] may wait for RocksDB (see [`KvStore::apply`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Yes,
    No,
}

enum Applied {
    Done,
    /// Nothing written: RocksDB would have stalled the write (only with [`Wait::No`]).
    WouldWait,
    /// A storage failure, reported as fatal: the state machine no longer follows the log.
    Failed,
}

impl Applied {
    fn ok(&self) -> bool {
        matches!(self, Applied::Done)
    }
}

/// Applies `entries` (emptying it) and answers their waiters.
fn apply_batch(sh: &Shared, entries: &mut Vec<Entry>, wait: Wait) -> Applied {
    let Some(last) = entries.last().map(|e| e.index) else {
        return Applied::Done;
    };
    let started = Instant::now();
    let outcomes = match sh.kv.apply(entries, wait == Wait::Yes) {
        Ok(Some(o)) => o,
        Ok(None) => return Applied::WouldWait,
        Err(e) => {
            tracing::error!(error = %e, "the state machine failed to apply; stopping");
            let _ = sh.events.send(Event::Fatal(format!("state machine: {e}")));
            return Applied::Failed;
        }
    };
    metrics::histogram!("raft_apply_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("raft_apply_batch_entries").record(entries.len() as f64);
    entries.clear();
    sh.applied.send_replace(last);
    // Every waiter at or below `last` is answered now: with its outcome if the entry at its
    // index is the one it proposed (same term), else its proposal was replaced by another
    // leader's entry and never applied.
    let done = {
        let mut ws = lock(&sh.waiters);
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
    Applied::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, SetCond};

    fn set(i: u64, key: &str) -> Entry {
        let cmd = Command::Set {
            key: bytes::Bytes::copy_from_slice(key.as_bytes()),
            value: bytes::Bytes::from_static(b"v"),
            cond: SetCond::Always,
        };
        Entry::new(Term(1), LogIndex(i), cmd.encode())
    }

    /// An applier over a new store. Fields drop in order: the applier (ending its thread)
    /// before the store closes, the store before its directory goes.
    struct Harness {
        applier: Applier,
        kv: KvStore,
        applied: watch::Receiver<LogIndex>,
        _events: mpsc::UnboundedReceiver<Event>,
        _dir: tempfile::TempDir,
    }

    fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path()).unwrap();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (applied_tx, applied) = watch::channel(LogIndex(0));
        let applier = spawn(kv.clone(), Waiters::default(), events, applied_tx).unwrap();
        Harness {
            applier,
            kv,
            applied,
            _events: events_rx,
            _dir: dir,
        }
    }

    /// A small batch is applied in place; one RocksDB would stall goes to the thread, which
    /// waits out the stall, and the batches after it follow it there, in order.
    #[test]
    fn a_stalled_batch_goes_to_the_thread_and_order_is_kept() {
        // The harness drops the applier, ending its thread, before the store closes and its
        // directory goes: with the thread still running, this test once crashed in RocksDB.
        let Harness {
            applier,
            kv,
            applied,
            ..
        } = &harness();

        applier.apply(vec![set(1, "a")]).unwrap();
        // Applied in place: done before `apply` returned.
        assert_eq!(*applied.borrow(), LogIndex(1));

        kv.stop_writes_after_a_flush(true);
        kv.sync().unwrap();
        applier.apply(vec![set(2, "b")]).unwrap();
        applier.apply(vec![set(3, "c")]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(*applied.borrow(), LogIndex(1), "stalled: nothing applied");
        assert_eq!(applier.shared.queued.load(Ordering::Acquire), 2);

        kv.stop_writes_after_a_flush(false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while *applied.borrow() < LogIndex(3) {
            assert!(
                Instant::now() < deadline,
                "the thread never applied the batches"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(kv.get(b"b").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(kv.get(b"c").unwrap().as_deref(), Some(&b"v"[..]));
        // The thread is idle again: the next small batch is applied in place.
        while applier.shared.queued.load(Ordering::Acquire) != 0 {
            assert!(Instant::now() < deadline, "the thread never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
        applier.apply(vec![set(4, "d")]).unwrap();
        assert_eq!(*applied.borrow(), LogIndex(4));
    }

    /// What was handed out before the applier dropped is applied before its thread ends.
    #[test]
    fn dropping_the_applier_applies_what_it_was_given_first() {
        let h = harness();
        // Too large to apply in place: these go to the thread.
        let batch: Vec<Entry> = (1..=INLINE_MAX_ENTRIES as u64 + 1)
            .map(|i| set(i, &format!("k{i}")))
            .collect();
        h.applier.apply(batch).unwrap();
        drop(h.applier);
        assert_eq!(*h.applied.borrow(), LogIndex(INLINE_MAX_ENTRIES as u64 + 1));
        assert_eq!(h.kv.get(b"k9").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
