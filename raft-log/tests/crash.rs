//! Crash safety: a child process writes a deterministic sequence of operations (appends with
//! conflict truncation, hard-state updates, compactions) and reports each one that became
//! durable; the parent kills it with SIGKILL at random moments, reopens the log and checks
//! that it is *exactly* the state after some prefix of the sequence that includes every
//! reported operation: nothing reported is lost or damaged, the log is contiguous, the hard
//! state matches the entries, and nothing half-written shows.
//!
//! `CRASH_KILLS` (default 50) sets the number of kills, `CRASH_SEED` replays a run.

mod support;

use raft_core::{Entry, HardState, LogIndex, NodeId, Storage, Term};
use raft_log::{LogOptions, LogStore, LogWrite};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const KEEP_TRAILING: u64 = 4;
/// Writes the child keeps in flight: the recovered state is at most this far past the last
/// report.
const IN_FLIGHT: u64 = 32;

fn options() -> LogOptions {
    // A small memtable, so WAL files fill, retire and are reused (`recycle_wal`) many times
    // between kills: recovery then reads recycled files with old records past their end.
    LogOptions::default()
        .keep_trailing(KEEP_TRAILING)
        .cache_bytes(64 << 10)
        .write_buffer_bytes(1 << 20)
}

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn payload(index: u64, term: u64) -> Vec<u8> {
    let len = 16 + (index.wrapping_mul(31) ^ term) % 300;
    (0..len).map(|k| (index ^ (term << 3) ^ k) as u8).collect()
}

#[allow(clippy::large_enum_variant)] // a test's script of operations: size does not matter
enum Op {
    Write(LogWrite),
    Compact(LogIndex),
}

/// The operation sequence of a seed, and the state it leads to (the model).
#[derive(Clone)]
struct Model {
    rng: Rng,
    /// Operations generated so far.
    seq: u64,
    term: u64,
    commit: u64,
    compacted: (u64, u64),
    /// Terms of entries `compacted.0 + 1 ..`.
    terms: VecDeque<u64>,
    hard_state: HardState,
}

impl Model {
    fn new(seed: u64) -> Model {
        Model {
            rng: Rng(seed),
            seq: 0,
            term: 1,
            commit: 0,
            compacted: (0, 0),
            terms: VecDeque::new(),
            hard_state: HardState::default(),
        }
    }

    fn last(&self) -> u64 {
        self.compacted.0 + self.terms.len() as u64
    }

    /// Generates the next operation and applies it to the model.
    fn next_op(&mut self) -> Op {
        self.seq += 1;
        let r = self.rng.below(100);
        if r < 4 && self.commit > self.compacted.0 + KEEP_TRAILING {
            let upto = self.commit - self.rng.below(3);
            let target = upto.saturating_sub(KEEP_TRAILING);
            if target > self.compacted.0 {
                let drop_n = (target - self.compacted.0) as usize;
                let term = self.terms[drop_n - 1];
                self.terms.drain(..drop_n);
                self.compacted = (target, term);
            }
            return Op::Compact(LogIndex(upto));
        }
        if r < 14 {
            self.term += 1;
        }
        let last = self.last();
        // A new leader may overwrite entries that are not committed (§5.3).
        let start = if r < 8 && last > self.commit {
            self.commit + 1 + self.rng.below(last - self.commit)
        } else {
            last + 1
        };
        let n = 1 + self.rng.below(24);
        let keep = (start - self.compacted.0 - 1) as usize;
        self.terms.truncate(keep);
        let entries: Vec<Entry> = (start..start + n)
            .map(|i| {
                self.terms.push_back(self.term);
                Entry::new(Term(self.term), LogIndex(i), payload(i, self.term))
            })
            .collect();
        self.commit = (self.commit + self.rng.below(12)).min(self.last());
        self.hard_state = HardState {
            term: Term(self.term),
            vote: NodeId(1 + self.term % 3),
            commit: LogIndex(self.commit),
        };
        Op::Write(LogWrite::entries(entries).with_hard_state(self.hard_state))
    }

    /// Does the reopened log hold exactly this state?
    fn matches(&self, log: &LogStore) -> Result<(), String> {
        let first = log.first_index().map_err(|e| e.to_string())?.get();
        let last = log.last_index().map_err(|e| e.to_string())?.get();
        if first != self.compacted.0 + 1 || last != self.last() {
            return Err(format!(
                "bounds {first}..={last}, model {}..={}",
                self.compacted.0 + 1,
                self.last()
            ));
        }
        if log.hard_state() != self.hard_state {
            return Err(format!(
                "hard state {:?}, model {:?}",
                log.hard_state(),
                self.hard_state
            ));
        }
        let term = log
            .term(LogIndex(self.compacted.0))
            .map_err(|e| e.to_string())?;
        if term != Term(self.compacted.1) {
            return Err(format!(
                "compaction term {term}, model {}",
                self.compacted.1
            ));
        }
        let got = log
            .entries(LogIndex(first), LogIndex(last + 1), u64::MAX)
            .map_err(|e| format!("reading the log: {e}"))?;
        for (e, want_term) in got.iter().zip(&self.terms) {
            if e.term != Term(*want_term) || e.data[..] != payload(e.index.get(), *want_term)[..] {
                return Err(format!(
                    "entry {} differs (term {}, model {want_term})",
                    e.index, e.term
                ));
            }
        }
        Ok(())
    }
}

/// The child: replays the sequence up to `start`, then writes from there until killed,
/// printing `durable <seq>` for each operation once it is durable.
#[test]
#[ignore = "the child process of crash_safety_under_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var("RAFT_LOG_CRASH_DIR") else {
        return;
    };
    let seed: u64 = std::env::var("RAFT_LOG_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let start: u64 = std::env::var("RAFT_LOG_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let log = LogStore::open(&dir, options()).expect("child: open");
    let mut model = Model::new(seed);
    while model.seq < start {
        model.next_op();
    }
    let in_flight = Arc::new((Mutex::new(0u64), Condvar::new()));
    let reported = Arc::new(AtomicU64::new(start));
    loop {
        let op = model.next_op();
        let seq = model.seq;
        match op {
            Op::Write(w) => {
                let (lock, cv) = &*in_flight;
                let mut n = cv
                    .wait_while(lock.lock().unwrap(), |n| *n >= IN_FLIGHT)
                    .unwrap();
                *n += 1;
                drop(n);
                let (in_flight, reported) = (in_flight.clone(), reported.clone());
                log.submit(w, move |r| {
                    r.expect("child: write failed");
                    reported.store(seq, Ordering::SeqCst);
                    println!("durable {seq}");
                    let (lock, cv) = &*in_flight;
                    *lock.lock().unwrap() -= 1;
                    cv.notify_one();
                });
            }
            Op::Compact(upto) => {
                log.compact(upto).expect("child: compact failed");
                println!("durable {seq}");
            }
        }
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let kills: u64 = std::env::var("CRASH_KILLS").map_or(50, |v| v.parse().expect("CRASH_KILLS"));
    let seed: u64 = std::env::var("CRASH_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |v| v.parse().expect("CRASH_SEED"),
    );
    println!("crash test seed {seed} ({kills} kills); replay with CRASH_SEED={seed}");
    let replay = format!("replay: CRASH_SEED={seed} cargo test -p raft-log --test crash");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut timing = Rng(seed ^ 0x5eed);
    let mut model = Model::new(seed);
    let mut max_ops = 0;
    let started = Instant::now();
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RAFT_LOG_CRASH_DIR", dir.path())
            .env("RAFT_LOG_CRASH_SEED", seed.to_string())
            .env("RAFT_LOG_CRASH_START", model.seq.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let last_report = Arc::new(AtomicU64::new(model.seq));
        let reader = {
            let last_report = last_report.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(seq) = line.strip_prefix("durable ") {
                        last_report.store(seq.parse().unwrap(), Ordering::SeqCst);
                    }
                }
            })
        };
        // Let it get going (its first durable write), then kill it at a random moment.
        let wait_start = Instant::now();
        while last_report.load(Ordering::SeqCst) == model.seq
            && wait_start.elapsed() < Duration::from_secs(120)
        {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited early with {status}; {replay}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(timing.below(80)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let reported = last_report.load(Ordering::SeqCst);
        assert!(
            reported > model.seq,
            "kill {kill}: the child made no progress; {replay}"
        );

        // Catch the model up to the last reported operation; the log must be that state or
        // one a few operations later (durable, but killed before it could say so).
        let mut log = LogStore::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("kill {kill}: reopening failed: {e}; {replay}"));
        while model.seq < reported {
            model.next_op();
        }
        let mut last_err = String::new();
        let mut found = false;
        for _ in 0..=IN_FLIGHT + 1 {
            match model.matches(&log) {
                Ok(()) => {
                    found = true;
                    break;
                }
                Err(e) => last_err = e,
            }
            model.next_op();
        }
        assert!(
            found,
            "kill {kill}: the log after the crash is no prefix of the writes from {reported} \
             on (last mismatch: {last_err}); {replay}"
        );
        max_ops = max_ops.max(model.seq);
        log = reopen_check(log, dir.path());
        drop(log);
    }
    println!(
        "{kills} kills, {max_ops} operations in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Closing and opening again yields the same answers (recovery is idempotent).
fn reopen_check(log: LogStore, dir: &std::path::Path) -> LogStore {
    let before = (
        log.first_index().unwrap(),
        log.last_index().unwrap(),
        log.hard_state(),
    );
    drop(log);
    let log = LogStore::open(dir, options()).expect("second reopen");
    let after = (
        log.first_index().unwrap(),
        log.last_index().unwrap(),
        log.hard_state(),
    );
    assert_eq!(before, after, "a second recovery saw another state");
    log
}
