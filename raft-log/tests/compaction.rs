//! Compaction after a snapshot: typed errors below the first index, disk space reclaimed,
//! the compaction point kept across restarts, trailing entries kept for slow followers.

mod support;

use raft_core::{Entry, LogIndex, Storage, StorageError, Term};
use support::{TempLog, test_options};

fn big_entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    // Incompressible payloads, so sizes on disk are what was written.
    (lo..=hi)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let data: Vec<u8> = (0..1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Entry::new(Term(term), LogIndex(i), data)
        })
        .collect()
}

#[test]
fn compaction_reclaims_space_and_survives_restart() {
    let mut t = TempLog::new(test_options());
    for chunk in 0..20 {
        t.log()
            .append(big_entries(chunk * 1000 + 1, chunk * 1000 + 1000, 1))
            .unwrap();
    }
    t.log().flush().unwrap();
    let before = t.log().live_data_bytes().unwrap();
    assert!(before > 15 << 20, "20 MiB written, {before} bytes live");

    let first = t.log().compact(LogIndex(19_000)).unwrap();
    assert_eq!(first, LogIndex(19_001));
    let after = t.log().live_data_bytes().unwrap();
    let sst_after = t.log().sst_bytes().unwrap();
    println!("live data: {before} bytes before, {after} after (sst files {sst_after})");
    assert!(
        after < before / 10 && sst_after < before / 5,
        "space not reclaimed: {before} -> {after} live, {sst_after} in files"
    );

    let log = t.log();
    assert!(matches!(
        log.term(LogIndex(18_999)),
        Err(StorageError::Compacted(_))
    ));
    assert!(matches!(
        log.entries(LogIndex(1), LogIndex(10), u64::MAX),
        Err(StorageError::Compacted(_))
    ));
    assert_eq!(log.term(LogIndex(19_000)).unwrap(), Term(1));

    t.reopen();
    let log = t.log();
    assert_eq!(log.first_index().unwrap(), LogIndex(19_001));
    assert_eq!(log.last_index().unwrap(), LogIndex(20_000));
    assert_eq!(log.compaction_point(), (LogIndex(19_000), Term(1)));
    assert!(matches!(
        log.term(LogIndex(5)),
        Err(StorageError::Compacted(_))
    ));
    let tail = log
        .entries(LogIndex(19_001), LogIndex(20_001), u64::MAX)
        .unwrap();
    assert_eq!(tail, big_entries(19_001, 20_000, 1));
}

#[test]
fn trailing_entries_are_kept_for_slow_followers() {
    let mut t = TempLog::new(test_options().keep_trailing(100));
    t.log().append(big_entries(1, 1000, 2)).unwrap();
    let first = t.log().compact(LogIndex(900)).unwrap();
    assert_eq!(
        first,
        LogIndex(801),
        "100 entries below the snapshot index stay"
    );
    assert_eq!(t.log().term(LogIndex(800)).unwrap(), Term(2));
    assert_eq!(
        t.log()
            .entries(LogIndex(801), LogIndex(901), u64::MAX)
            .unwrap(),
        big_entries(801, 900, 2)
    );
    // Compacting to a point inside the kept tail is a no-op, not an error.
    assert_eq!(t.log().compact(LogIndex(850)).unwrap(), LogIndex(801));
    t.reopen();
    assert_eq!(t.log().first_index().unwrap(), LogIndex(801));
}

#[test]
fn appends_continue_after_compaction_and_conflicts_at_the_first_index_work() {
    let mut t = TempLog::new(test_options());
    t.log().append(big_entries(1, 50, 1)).unwrap();
    t.log().compact(LogIndex(40)).unwrap();
    t.log().append(big_entries(41, 60, 2)).unwrap();
    assert_eq!(t.log().term(LogIndex(40)).unwrap(), Term(1));
    assert_eq!(t.log().term(LogIndex(41)).unwrap(), Term(2));
    t.reopen();
    assert_eq!(t.log().last_index().unwrap(), LogIndex(60));
    assert_eq!(
        t.log()
            .entries(LogIndex(41), LogIndex(61), u64::MAX)
            .unwrap(),
        big_entries(41, 60, 2)
    );
}
