//! The group-commit writer: one thread that turns every write waiting in the queue into one
//! RocksDB `WriteBatch` and one synced write.
//!
//! While a batch syncs, new writes queue up; the next turn of the loop takes all of them
//! (up to [`crate::LogOptions::max_batch_bytes`]), so N concurrent writers pay about one
//! fsync. Writes are validated against the log as it will be after the writes before them,
//! applied in order, and completed in order.

use crate::error::LogError;
use crate::record::{
    KEY_COMPACTION, KEY_CONF_STATE, KEY_HARD_STATE, KEY_SNAPSHOT, encode_compaction,
    encode_conf_state, encode_entry, encode_hard_state, encode_snapshot, entry_key,
};
use crate::store::{Durable, LogWrite, Shared};
use raft_core::{HardState, LogIndex, Term};
use rocksdb::{WriteBatch, WriteOptions};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

type WriteDone = Box<dyn FnOnce(Result<Durable, LogError>) + Send>;
type CompactDone = Box<dyn FnOnce(Result<Option<LogIndex>, LogError>) + Send>;

/// Below this many entries a truncation deletes keys one by one; above, one range tombstone.
const POINT_DELETE_MAX: u64 = 64;

// A write is large (its configuration grew with membership changes) but moves only into the
// queue and out again: not worth an allocation per write.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Op {
    Write {
        write: LogWrite,
        done: WriteDone,
    },
    /// Compact to `target` (`upto` minus the trailing entries kept); `upto` must exist.
    Compact {
        upto: LogIndex,
        target: LogIndex,
        done: CompactDone,
    },
}

#[derive(Default)]
pub(crate) struct Queue {
    ops: VecDeque<Op>,
    closed: bool,
}

pub(crate) fn push(shared: &Shared, op: Op) {
    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    if q.closed {
        drop(q);
        fail(op, LogError::Closed);
        return;
    }
    q.ops.push_back(op);
    drop(q);
    shared.wakeup.notify_one();
}

/// Stops the writer once the queued writes are done.
pub(crate) fn close(shared: &Shared) {
    shared
        .queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .closed = true;
    shared.wakeup.notify_one();
}

fn fail(op: Op, err: LogError) {
    match op {
        Op::Write { done, .. } => complete(done, Err(err)),
        Op::Compact { done, .. } => complete(done, Err(err)),
    }
}

/// Runs a completion. A panicking callback is the caller's bug; it must not take the writer
/// (and every later write) down with it.
fn complete<T>(done: Box<dyn FnOnce(T) + Send>, result: T) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result))).is_err() {
        tracing::error!("a raft log completion callback panicked");
    }
}

pub(crate) fn spawn(shared: Arc<Shared>) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name("raft-log-writer".into())
        .spawn(move || run(&shared))
        .map_err(|e| LogError::Failed(format!("cannot start the writer thread: {e}")))
}

enum Batch {
    Writes(Vec<(LogWrite, WriteDone)>),
    Compact {
        upto: LogIndex,
        target: LogIndex,
        done: CompactDone,
    },
}

/// Takes the next batch: every queued write up to the byte budget, or one compaction alone
/// (it reads the term of its target from the store, so writes before it must be on disk).
fn take_batch(shared: &Shared) -> Option<Batch> {
    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    while q.ops.is_empty() {
        if q.closed {
            return None;
        }
        q = shared.wakeup.wait(q).unwrap_or_else(|p| p.into_inner());
    }
    let mut writes = Vec::new();
    let mut bytes = 0;
    while let Some(op) = q.ops.pop_front() {
        match op {
            Op::Compact { upto, target, done } if writes.is_empty() => {
                return Some(Batch::Compact { upto, target, done });
            }
            Op::Write { write, done }
                if writes.is_empty() || bytes + write.bytes() <= shared.opts.max_batch_bytes =>
            {
                bytes += write.bytes();
                writes.push((write, done));
            }
            other => {
                q.ops.push_front(other);
                break;
            }
        }
    }
    Some(Batch::Writes(writes))
}

fn run(shared: &Shared) {
    let mut wo = WriteOptions::default();
    wo.set_sync(shared.opts.sync);
    while let Some(batch) = take_batch(shared) {
        let failed = shared.read_state().failed.clone();
        match (batch, failed) {
            (Batch::Writes(writes), Some(reason)) => {
                for (_, done) in writes {
                    complete(done, Err(LogError::Failed(reason.clone())));
                }
            }
            (Batch::Compact { done, .. }, Some(reason)) => {
                complete(done, Err(LogError::Failed(reason)))
            }
            (Batch::Writes(writes), None) => write_batch(shared, &wo, writes),
            (Batch::Compact { upto, target, done }, None) => {
                complete(done, compact(shared, &wo, upto, target))
            }
        }
    }
}

/// The log as the writes staged so far leave it.
#[derive(Clone)]
struct View {
    compacted: (LogIndex, Term),
    last: LogIndex,
    last_term: Term,
    hard_state: HardState,
    hard_state_stored: bool,
    /// Terms of the entries staged in this batch, from `staged_from` on.
    staged_from: LogIndex,
    staged_terms: Vec<Term>,
}

impl View {
    /// The term of the entry at `index` (`<= last`) as this batch leaves the log.
    fn term(&self, shared: &Shared, index: LogIndex) -> Result<Term, LogError> {
        if index >= self.staged_from {
            let off = (index.get() - self.staged_from.get()) as usize;
            if let Some(t) = self.staged_terms.get(off) {
                return Ok(*t);
            }
        }
        if index == self.compacted.0 {
            return Ok(self.compacted.1);
        }
        shared.term_at(&shared.read_state(), index)
    }

    fn stage_entries(&mut self, entries: &[raft_core::Entry]) {
        let start = entries[0].index;
        if start >= self.staged_from
            && start.get() - self.staged_from.get() <= self.staged_terms.len() as u64
        {
            self.staged_terms
                .truncate((start.get() - self.staged_from.get()) as usize);
        } else {
            self.staged_from = start;
            self.staged_terms.clear();
        }
        self.staged_terms.extend(entries.iter().map(|e| e.term));
    }
}

fn invalid(msg: String) -> LogError {
    LogError::InvalidWrite(msg)
}

/// Adds one write to `batch`, checked against `view`, which it advances. Nothing is added
/// unless all of it is valid. Returns whether it removes or replaces stored entries.
///
/// The checks are the ones opening a log makes, so a log this writer accepted always opens:
/// no hole, nothing at or below the compaction point, no committed entry replaced, the commit
/// index never beyond the last entry, no entry newer than the current term.
fn stage(
    shared: &Shared,
    batch: &mut WriteBatch,
    w: &LogWrite,
    out: &mut View,
) -> Result<Staged, LogError> {
    let view = &*out;
    // Phase 1: a snapshot from the leader restarts the log after it (§7), keeping the suffix
    // only when the log holds the snapshot's last entry.
    let mut restore_delete = None;
    let mut kept_suffix = false;
    let base = match &w.restore {
        None => view.clone(),
        Some(meta) => {
            if meta.index <= view.compacted.0 {
                return Err(invalid(format!(
                    "snapshot at {} is at or below the compaction point {}",
                    meta.index, view.compacted.0
                )));
            }
            kept_suffix = meta.index <= view.last && view.term(shared, meta.index)? == meta.term;
            let mut b = view.clone();
            let end = if kept_suffix { meta.index } else { view.last };
            if end > view.compacted.0 {
                restore_delete = Some((view.compacted.0.next(), end.next()));
            }
            b.compacted = (meta.index, meta.term);
            if !kept_suffix {
                b.last = meta.index;
                b.last_term = meta.term;
                b.staged_from = meta.index.next();
                b.staged_terms.clear();
            }
            b
        }
    };
    let view = &base;
    let mut next = view.clone();
    let mut values = Vec::with_capacity(w.entries.len());
    if let Some(first) = w.entries.first() {
        let start = first.index;
        for (prev, e) in w.entries.iter().zip(&w.entries[1..]) {
            if e.index != prev.index.next() || e.term < prev.term {
                return Err(invalid(format!(
                    "entry {} (term {}) cannot follow entry {} (term {})",
                    e.index, e.term, prev.index, prev.term
                )));
            }
        }
        if start <= view.compacted.0 {
            return Err(invalid(format!(
                "entry {start} is at or below the compaction point {}",
                view.compacted.0
            )));
        }
        if start > view.last.next() {
            return Err(invalid(format!(
                "entry {start} would leave a hole after the last index {}",
                view.last
            )));
        }
        if view.hard_state_stored && start <= view.hard_state.commit {
            return Err(invalid(format!(
                "entry {start} would replace a committed entry (commit index {})",
                view.hard_state.commit
            )));
        }
        let before = if start == view.last.next() {
            view.last_term
        } else {
            view.term(shared, start.prev())?
        };
        if first.term < before {
            return Err(invalid(format!(
                "entry {start} has term {}, older than the term {before} before it",
                first.term
            )));
        }
        for e in &w.entries {
            values.push(encode_entry(e).ok_or_else(|| {
                invalid(format!(
                    "entry {} is of kind {:?}, which this log format cannot store",
                    e.index, e.kind
                ))
            })?);
        }
        let last_entry = &w.entries[w.entries.len() - 1];
        next.last = last_entry.index;
        next.last_term = last_entry.term;
        next.stage_entries(&w.entries);
    }
    if let Some(hs) = w.hard_state {
        if view.hard_state_stored && hs.term < view.hard_state.term {
            return Err(invalid(format!(
                "the term cannot go back from {} to {}",
                view.hard_state.term, hs.term
            )));
        }
        next.hard_state = hs;
        next.hard_state_stored = true;
    }
    if let Some(meta) = &w.snapshot {
        if meta.index > next.last {
            return Err(invalid(format!(
                "snapshot at {} is beyond the last entry {}",
                meta.index, next.last
            )));
        }
    }
    if next.hard_state_stored {
        if next.hard_state.commit > next.last {
            return Err(invalid(format!(
                "commit index {} beyond the last entry {}",
                next.hard_state.commit, next.last
            )));
        }
        if next.last_term > next.hard_state.term {
            return Err(invalid(format!(
                "entry {} has term {}, newer than the current term {}",
                next.last, next.last_term, next.hard_state.term
            )));
        }
    }

    let cf = shared.entries_cf();
    let meta_cf = shared.meta_cf();
    if let Some((from, to)) = restore_delete {
        batch.delete_range_cf(cf, entry_key(from), entry_key(to));
    }
    if let Some(meta) = &w.restore {
        batch.put_cf(
            meta_cf,
            KEY_COMPACTION,
            encode_compaction(meta.index, meta.term),
        );
        batch.put_cf(meta_cf, KEY_SNAPSHOT, encode_snapshot(meta));
        batch.put_cf(meta_cf, KEY_CONF_STATE, encode_conf_state(&meta.conf_state));
    }
    if next.last < view.last {
        // Conflict truncation: the suffix beyond the new entries goes in the same batch.
        let (from, to) = (next.last.next(), view.last.next());
        if to.get() - from.get() <= POINT_DELETE_MAX {
            for i in from.get()..to.get() {
                batch.delete_cf(cf, entry_key(LogIndex(i)));
            }
        } else {
            batch.delete_range_cf(cf, entry_key(from), entry_key(to));
        }
    }
    for (e, v) in w.entries.iter().zip(values) {
        batch.put_cf(cf, entry_key(e.index), v);
    }
    if let Some(hs) = &w.hard_state {
        batch.put_cf(meta_cf, KEY_HARD_STATE, encode_hard_state(hs));
    }
    if let Some(cs) = &w.conf_state {
        batch.put_cf(meta_cf, KEY_CONF_STATE, encode_conf_state(cs));
    }
    if let Some(meta) = &w.snapshot {
        batch.put_cf(meta_cf, KEY_SNAPSHOT, encode_snapshot(meta));
    }
    let destructive =
        w.restore.is_some() || w.entries.first().is_some_and(|e| e.index <= view.last);
    *out = next;
    Ok(Staged {
        destructive,
        kept_suffix,
    })
}

/// What staging one write found.
struct Staged {
    /// It removes or replaces stored entries.
    destructive: bool,
    /// Its snapshot restore kept the log's suffix.
    kept_suffix: bool,
}

fn write_batch(shared: &Shared, wo: &WriteOptions, writes: Vec<(LogWrite, WriteDone)>) {
    let mut view = {
        let st = shared.read_state();
        View {
            compacted: st.compacted,
            last: st.last,
            last_term: st.last_term,
            hard_state: st.hard_state,
            hard_state_stored: st.hard_state_stored,
            staged_from: st.last.next(),
            staged_terms: Vec::new(),
        }
    };
    let mut batch = WriteBatch::default();
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut destructive = false;
    for (w, _) in &writes {
        let outcome = stage(shared, &mut batch, w, &mut view);
        if let Ok(s) = &outcome {
            destructive |= s.destructive;
        }
        outcomes.push(outcome.map(|s| (view.last, view.last_term, s.kept_suffix)));
    }

    // Readers hold the state lock across their reads; a batch that deletes or replaces
    // entries holds it exclusively while it writes, so no reader mixes old bounds with new data.
    let mut guard = destructive.then(|| shared.write_state());
    let started = Instant::now();
    let result = if batch.is_empty() {
        Ok(())
    } else {
        shared.db.write_opt(batch, wo)
    };
    let mut st = guard.take().unwrap_or_else(|| shared.write_state());
    match result {
        Ok(()) => {
            let elapsed = started.elapsed();
            let mut n_entries = 0;
            let mut n_ok = 0;
            for ((w, _), outcome) in writes.iter().zip(&outcomes) {
                let Ok((last, last_term, kept_suffix)) = outcome else {
                    continue;
                };
                if let Some(meta) = &w.restore {
                    if *kept_suffix {
                        st.cache.compact_to(meta.index);
                    } else {
                        st.cache.clear();
                    }
                    st.compacted = (meta.index, meta.term);
                    st.conf_state = meta.conf_state.clone();
                    st.snapshot = Some(meta.clone());
                }
                if let Some(meta) = &w.snapshot {
                    if st.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
                        st.snapshot = Some(meta.clone());
                    }
                }
                st.cache.append(&w.entries);
                st.last = *last;
                st.last_term = *last_term;
                if let Some(hs) = w.hard_state {
                    st.hard_state = hs;
                    st.hard_state_stored = true;
                }
                if let Some(cs) = &w.conf_state {
                    st.conf_state = cs.clone();
                }
                n_entries += w.entries.len() as u64;
                n_ok += 1;
            }
            drop(st);
            let c = &shared.counters;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.writes.fetch_add(n_ok, Ordering::Relaxed);
            c.entries.fetch_add(n_entries, Ordering::Relaxed);
            metrics::counter!("raft_log_batches_total").increment(1);
            metrics::counter!("raft_log_entries_total").increment(n_entries);
            metrics::histogram!("raft_log_batch_writes").record(writes.len() as f64);
            metrics::histogram!("raft_log_batch_entries").record(n_entries as f64);
            metrics::histogram!("raft_log_write_seconds").record(elapsed.as_secs_f64());
            for ((_, done), outcome) in writes.into_iter().zip(outcomes) {
                complete(done, outcome.map(|(last_index, ..)| Durable { last_index }));
            }
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::error!(error = %reason, "raft log write failed; refusing further writes");
            metrics::counter!("raft_log_write_failures_total").increment(1);
            st.failed = Some(reason.clone());
            drop(st);
            for (_, done) in writes {
                complete(done, Err(LogError::Failed(reason.clone())));
            }
        }
    }
}

fn compact(
    shared: &Shared,
    wo: &WriteOptions,
    upto: LogIndex,
    target: LogIndex,
) -> Result<Option<LogIndex>, LogError> {
    let (compacted, last, commit) = {
        let st = shared.read_state();
        let commit = st.hard_state_stored.then_some(st.hard_state.commit);
        (st.compacted, st.last, commit)
    };
    if upto > last {
        return Err(LogError::Unavailable(upto));
    }
    if let Some(commit) = commit.filter(|c| upto > *c) {
        return Err(invalid(format!(
            "cannot compact to {upto}: only entries up to the commit index {commit} may go"
        )));
    }
    if target <= compacted.0 {
        return Ok(None);
    }
    let term: Term = shared.term_at(&shared.read_state(), target)?;
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(
        shared.entries_cf(),
        entry_key(compacted.0.next()),
        entry_key(target.next()),
    );
    batch.put_cf(
        shared.meta_cf(),
        KEY_COMPACTION,
        encode_compaction(target, term),
    );
    let mut st = shared.write_state();
    if let Err(e) = shared.db.write_opt(batch, wo) {
        let reason = e.to_string();
        tracing::error!(error = %reason, "raft log compaction failed; refusing further writes");
        st.failed = Some(reason.clone());
        return Err(LogError::Failed(reason));
    }
    st.compacted = (target, term);
    st.cache.compact_to(target);
    drop(st);
    tracing::debug!(
        index = target.get(),
        term = term.get(),
        "raft log compacted"
    );
    metrics::counter!("raft_log_compactions_total").increment(1);
    Ok(Some(target))
}
