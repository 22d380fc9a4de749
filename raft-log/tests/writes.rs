//! The write path: group commit, ordering, conflict truncation in one batch, refusals.

mod support;

use raft_core::conformance::entries;
use raft_core::{Entry, HardState, LogIndex, NodeId, Storage, Term};
use raft_log::{LogError, LogWrite};
use std::sync::{Arc, Mutex, mpsc};
use support::{TempLog, test_options};

#[test]
fn writes_queued_during_a_sync_share_the_next_one() {
    let t = TempLog::new(test_options());
    let (tx, rx) = mpsc::channel();
    let n = 2000u64;
    for i in 1..=n {
        let tx = tx.clone();
        t.log()
            .submit(LogWrite::entries(entries(i, i, 1)), move |r| {
                tx.send((i, r)).unwrap();
            });
    }
    drop(tx);
    let done: Vec<_> = rx.iter().collect();
    assert_eq!(done.len() as u64, n);
    for (k, (i, r)) in done.iter().enumerate() {
        assert_eq!(*i, k as u64 + 1, "completions out of submission order");
        assert_eq!(r.as_ref().unwrap().last_index, LogIndex(*i));
    }
    let stats = t.log().stats();
    println!("{stats:?}");
    assert_eq!(stats.writes, n);
    // Submitting takes microseconds, a sync hundreds: nearly all writes wait for one.
    assert!(
        stats.batches <= n / 10,
        "{} batches for {n} writes",
        stats.batches
    );
}

#[test]
fn concurrent_writers_each_see_their_write_durable() {
    let t = TempLog::new(test_options());
    let log = t.log().clone();
    // Raft assigns indexes in one place; model that with a lock around index + submit.
    let next = Arc::new(Mutex::new(1u64));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (log, next) = (log.clone(), next.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let (tx, rx) = mpsc::sync_channel(1);
                    let index = {
                        let mut n = next.lock().unwrap();
                        let index = *n;
                        *n += 1;
                        log.submit(LogWrite::entries(entries(index, index, 1)), move |r| {
                            tx.send(r).unwrap();
                        });
                        index
                    };
                    let durable = rx.recv().unwrap().unwrap();
                    assert!(durable.last_index >= LogIndex(index));
                    assert_eq!(log.term(LogIndex(index)).unwrap(), Term(1));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(log.last_index().unwrap(), LogIndex(800));
    assert_eq!(log.stats().writes, 800);
}

#[test]
fn conflict_truncation_and_hard_state_land_together() {
    let mut t = TempLog::new(test_options().cache_bytes(0));
    t.log().append(entries(1, 500, 1)).unwrap();
    let hs = HardState {
        term: Term(2),
        vote: NodeId(3),
        commit: LogIndex(100),
    };
    // A range tombstone (more than 64 entries removed), new entries and the hard state.
    let d = t
        .log()
        .write(LogWrite::entries(entries(101, 110, 2)).with_hard_state(hs))
        .unwrap();
    assert_eq!(d.last_index, LogIndex(110));
    t.reopen();
    let log = t.log();
    assert_eq!(log.last_index().unwrap(), LogIndex(110));
    assert_eq!(log.hard_state(), hs);
    let mut want = entries(1, 100, 1);
    want.extend(entries(101, 110, 2));
    assert_eq!(
        log.entries(LogIndex(1), LogIndex(111), u64::MAX).unwrap(),
        want
    );
    // The deleted range stays deleted when the log grows past it again.
    log.append(entries(111, 600, 2)).unwrap();
    assert_eq!(log.term(LogIndex(400)).unwrap(), Term(2));
}

#[test]
fn invalid_writes_fail_alone() {
    let t = TempLog::new(test_options());
    let log = t.log();
    log.append(entries(1, 5, 1)).unwrap();
    let mut not_consecutive = entries(6, 8, 1);
    not_consecutive[1].index = LogIndex(9);
    let results: Vec<_> = [
        LogWrite::entries(not_consecutive),
        LogWrite::entries(entries(6, 6, 1)),
        LogWrite::entries(entries(9, 9, 1)), // hole after 6
        LogWrite::entries(entries(7, 7, 1)),
    ]
    .into_iter()
    .map(|w| {
        let (tx, rx) = mpsc::sync_channel(1);
        log.submit(w, move |r| tx.send(r).unwrap());
        rx
    })
    .collect::<Vec<_>>()
    .into_iter()
    .map(|rx| rx.recv().unwrap())
    .collect();
    assert!(matches!(results[0], Err(LogError::InvalidWrite(_))));
    assert_eq!(results[1].as_ref().unwrap().last_index, LogIndex(6));
    assert!(matches!(results[2], Err(LogError::InvalidWrite(_))));
    assert_eq!(results[3].as_ref().unwrap().last_index, LogIndex(7));
    assert_eq!(log.last_index().unwrap(), LogIndex(7));
}

#[test]
fn leader_replication_reads_come_from_the_cache() {
    let t = TempLog::new(test_options().cache_bytes(1 << 20));
    let log = t.log();
    let big: Vec<Entry> = (1..=100)
        .map(|i| Entry::new(Term(1), LogIndex(i), vec![1u8; 100_000]))
        .collect();
    log.append(big).unwrap();
    let before = log.stats().disk_reads;
    // Healthy followers need the newest entries: memory only.
    assert_eq!(
        log.entries(LogIndex(95), LogIndex(101), u64::MAX)
            .unwrap()
            .len(),
        6
    );
    assert_eq!(log.term(LogIndex(99)).unwrap(), Term(1));
    assert_eq!(
        log.stats().disk_reads,
        before,
        "cached entries were read from disk"
    );
    // The cache holds the newest ~1 MiB: entries below it come from RocksDB, the rest from
    // memory, and a range across the boundary is seamless.
    let got = log.entries(LogIndex(80), LogIndex(101), u64::MAX).unwrap();
    assert_eq!(got.len(), 21);
    assert!(
        got.iter()
            .enumerate()
            .all(|(k, e)| e.index == LogIndex(80 + k as u64))
    );
    assert!(log.stats().disk_reads > before);
    let limited = log.entries(LogIndex(85), LogIndex(101), 350_000).unwrap();
    assert_eq!(limited.len(), 3);
}

#[test]
fn writes_that_would_make_the_log_unopenable_are_refused() {
    let t = TempLog::new(test_options());
    let log = t.log();
    let hs = |term, commit| HardState {
        term: Term(term),
        vote: NodeId(1),
        commit: LogIndex(commit),
    };
    log.write(LogWrite::entries(entries(1, 10, 2)).with_hard_state(hs(2, 5)))
        .unwrap();
    let refused = [
        (
            "commit beyond the last entry",
            LogWrite::default().with_hard_state(hs(2, 11)),
        ),
        (
            "entry newer than the term",
            LogWrite::entries(entries(11, 11, 3)),
        ),
        (
            "term going back",
            LogWrite::default().with_hard_state(hs(1, 5)),
        ),
        (
            "committed entry replaced",
            LogWrite::entries(entries(5, 6, 2)),
        ),
        ("term older than the entry before", {
            let mut w = LogWrite::entries(entries(11, 11, 1));
            w.hard_state = Some(hs(2, 5));
            w
        }),
    ];
    for (what, w) in refused {
        match log.write(w) {
            Err(LogError::InvalidWrite(msg)) => println!("{what}: {msg}"),
            other => panic!("{what}: accepted ({other:?})"),
        }
    }
    assert!(
        matches!(log.compact(LogIndex(6)), Err(LogError::InvalidWrite(_))),
        "compaction beyond commit"
    );
    // The same changes, made consistently, are fine.
    log.write(LogWrite::entries(entries(6, 11, 3)).with_hard_state(hs(3, 11)))
        .unwrap();
    assert_eq!(log.compact(LogIndex(11)).unwrap(), LogIndex(12));
    let mut t = t;
    t.reopen();
    assert_eq!(t.log().last_index().unwrap(), LogIndex(11));
}

#[test]
fn a_panicking_callback_does_not_stop_the_writer() {
    let t = TempLog::new(test_options());
    t.log().submit(LogWrite::entries(entries(1, 1, 1)), |_| {
        panic!("callback bug")
    });
    assert_eq!(
        t.log().append(entries(2, 2, 1)).unwrap().last_index,
        LogIndex(2)
    );
}

#[test]
fn blocking_calls_from_a_callback_are_refused_not_deadlocked() {
    let t = TempLog::new(test_options());
    let log = t.log().clone();
    let (tx, rx) = mpsc::channel();
    t.log()
        .submit(LogWrite::entries(entries(1, 1, 1)), move |_| {
            tx.send((log.append(entries(2, 2, 1)), log.compact(LogIndex(1))))
                .unwrap();
        });
    let (append, compact) = rx.recv().unwrap();
    assert!(matches!(append, Err(LogError::WouldDeadlock)));
    assert!(matches!(compact, Err(LogError::WouldDeadlock)));
}

#[test]
fn a_leader_snapshot_entries_and_hard_state_install_in_one_write() {
    use raft_core::{ConfState, SnapshotMeta};
    let mut t = TempLog::new(test_options());
    let log = t.log();
    let hs = |term, commit| HardState {
        term: Term(term),
        vote: NodeId(1),
        commit: LogIndex(commit),
    };
    log.write(LogWrite::entries(entries(1, 30, 1)).with_hard_state(hs(1, 10)))
        .unwrap();
    // What a follower's ready carries after restoring the leader's snapshot at 100: the
    // snapshot, the entries after it, and the hard state committing it.
    let meta = SnapshotMeta {
        index: LogIndex(100),
        term: Term(3),
        conf_state: ConfState::new([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let d = log
        .write(
            LogWrite::entries(entries(101, 105, 3))
                .with_restore(meta.clone())
                .with_hard_state(hs(3, 100)),
        )
        .unwrap();
    assert_eq!(d.last_index, LogIndex(105));
    t.reopen();
    let log = t.log();
    assert_eq!(log.first_index().unwrap(), LogIndex(101));
    assert_eq!(log.compaction_point(), (LogIndex(100), Term(3)));
    assert_eq!(log.snapshot().unwrap(), Some(meta));
    assert_eq!(
        log.entries(LogIndex(101), LogIndex(106), u64::MAX).unwrap(),
        entries(101, 105, 3)
    );
    assert_eq!(log.hard_state(), hs(3, 100));
    // A snapshot at or below the compaction point is refused.
    let old = SnapshotMeta {
        index: LogIndex(50),
        term: Term(2),
        conf_state: ConfState::new([NodeId(1)]),
    };
    assert!(matches!(
        log.write(LogWrite::default().with_restore(old)),
        Err(LogError::InvalidWrite(_))
    ));
}
