//! Damaged data is reported as a typed error, never served and never silently skipped.

mod support;

use raft_core::conformance::entries;
use raft_core::{HardState, LogIndex, NodeId, Storage, StorageError, Term};
use raft_log::{LogError, LogStore};
use support::{TempLog, key, raw_db, test_options};

/// A log of entries 1..=100 (term 1), closed.
fn closed_log() -> TempLog {
    let mut t = TempLog::new(test_options().cache_bytes(0));
    t.log().append(entries(1, 100, 1)).expect("append");
    t.log()
        .set_hard_state(HardState {
            term: Term(1),
            vote: NodeId(1),
            commit: LogIndex(90),
        })
        .expect("hard state");
    t.close();
    t
}

fn flip_value_byte(t: &TempLog, index: u64, byte: usize) {
    let db = raw_db(&t.path());
    let cf = db.cf_handle("raft_log").unwrap();
    let mut v = db.get_cf(cf, key(index)).unwrap().expect("value present");
    let at = byte % v.len();
    v[at] ^= 0x5a;
    db.put_cf(cf, key(index), v).unwrap();
}

#[test]
fn flipped_byte_in_an_entry_is_reported_on_read() {
    for byte in [0, 3, 10, 1000] {
        let mut t = closed_log();
        flip_value_byte(&t, 50, byte);
        // Without the full check at open, the damage is found by the read that touches it.
        t.opts = t.opts.clone().verify_on_open(false);
        t.reopen();
        let log = t.log();
        match log.entries(LogIndex(40), LogIndex(60), u64::MAX) {
            Err(StorageError::Corruption { index, detail }) => {
                assert_eq!(index, LogIndex(50), "{detail}");
            }
            other => panic!("byte {byte}: expected corruption at 50, got {other:?}"),
        }
        assert!(matches!(
            log.term(LogIndex(50)),
            Err(StorageError::Corruption {
                index: LogIndex(50),
                ..
            })
        ));
        // Entries on either side are still served.
        assert_eq!(
            log.entries(LogIndex(40), LogIndex(50), u64::MAX)
                .unwrap()
                .len(),
            10
        );
        assert_eq!(log.term(LogIndex(51)).unwrap(), Term(1));
    }
}

#[test]
fn flipped_byte_in_an_entry_refuses_open() {
    let t = closed_log();
    flip_value_byte(&t, 73, 5);
    match LogStore::open(t.path(), test_options()) {
        Err(LogError::Corruption { index, detail }) => {
            assert_eq!(index, LogIndex(73));
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected corruption at 73, got {other:?}"),
    }
}

#[test]
fn flipped_byte_in_the_hard_state_refuses_open() {
    let t = closed_log();
    {
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_meta").unwrap();
        let mut v = db.get_cf(cf, b"hard_state").unwrap().unwrap();
        v[1] ^= 1;
        db.put_cf(cf, b"hard_state", v).unwrap();
    }
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::CorruptMetadata {
                key: "hard_state",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn flipped_bytes_in_sst_files_are_reported() {
    let mut t = TempLog::new(test_options().cache_bytes(0));
    let payload = vec![7u8; 1000];
    let es: Vec<_> = (1..=2000)
        .map(|i| raft_core::Entry::new(Term(1), LogIndex(i), payload.clone()))
        .collect();
    t.log().append(es).unwrap();
    t.log().flush().unwrap();
    t.close();
    // Damage the middle of every table file: RocksDB's block checksums must catch it.
    let mut damaged = 0;
    for f in std::fs::read_dir(t.path()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "sst") {
            let mut bytes = std::fs::read(&p).unwrap();
            let mid = bytes.len() / 3;
            for b in &mut bytes[mid..mid + 16] {
                *b ^= 0xff;
            }
            std::fs::write(&p, bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no table file to damage");
    match LogStore::open(t.path(), test_options()) {
        Err(LogError::Corruption { .. } | LogError::Rocks(_)) => {}
        Ok(_) => panic!("a log with damaged table files was opened"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn missing_entry_is_a_hole_and_refuses_open() {
    let t = closed_log();
    {
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_log").unwrap();
        db.delete_cf(cf, key(30)).unwrap();
    }
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, LogError::Inconsistent(ref m) if m.contains("hole")),
        "{err}"
    );
    // The quick check at open misses a hole in the middle, but reading it reports it.
    let log = LogStore::open(
        t.path(),
        test_options().verify_on_open(false).cache_bytes(0),
    )
    .unwrap();
    assert!(matches!(
        log.entries(LogIndex(25), LogIndex(35), u64::MAX),
        Err(StorageError::Corruption {
            index: LogIndex(30),
            ..
        })
    ));
}

#[test]
fn lost_tail_below_the_commit_index_refuses_open() {
    let t = closed_log();
    {
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_log").unwrap();
        db.delete_range_cf(cf, key(80), key(101)).unwrap();
    }
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, LogError::Inconsistent(ref m) if m.contains("commit")),
        "{err}"
    );
}

#[test]
fn entry_from_the_future_refuses_open() {
    let mut t = closed_log();
    {
        // The stored term goes back to 0 (prost: term 0, vote 1, commit 90).
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_meta").unwrap();
        let v = support::sealed(b"hard_state", &[0x10, 0x01, 0x18, 90]);
        db.put_cf(cf, b"hard_state", v).unwrap();
    }
    t.close();
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, LogError::Inconsistent(ref m) if m.contains("term")),
        "{err}"
    );
}

#[test]
fn directories_that_are_not_logs_are_refused() {
    // Files that are not a database.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = LogStore::open(dir.path(), test_options()).unwrap_err();
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");
    assert!(dir.path().join("notes.txt").exists());

    // A RocksDB database of something else.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let err = LogStore::open(dir.path(), test_options()).unwrap_err();
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");

    // A log of a future format version.
    let t = closed_log();
    {
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_meta").unwrap();
        db.put_cf(cf, b"format", b"\x08\x09garbage").unwrap();
    }
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, LogError::CorruptMetadata { key: "format", .. }),
        "{err}"
    );
    {
        // A well-formed marker of version 2: prost field 1 = 2, then its checksum.
        let v = support::sealed(b"format", &[0x08, 0x02]);
        let db = raw_db(&t.path());
        let cf = db.cf_handle("raft_meta").unwrap();
        db.put_cf(cf, b"format", v).unwrap();
    }
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, LogError::NotALog { ref detail, .. } if detail.contains("version 2")),
        "{err}"
    );
}

#[test]
fn a_log_open_elsewhere_is_refused() {
    let t = TempLog::new(test_options());
    let err = LogStore::open(t.path(), test_options()).unwrap_err();
    assert!(matches!(err, LogError::Rocks(_)), "{err}");
    assert!(err.to_string().to_lowercase().contains("lock"), "{err}");
}

#[test]
fn a_crash_while_creating_the_log_leaves_a_directory_that_opens() {
    // What RocksDB writes before `CURRENT` exists.
    let dir = tempfile::tempdir().unwrap();
    for f in ["LOCK", "LOG", "IDENTITY", "MANIFEST-000001", "000003.log"] {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    let log = LogStore::open(dir.path(), test_options()).expect("open after an interrupted create");
    assert_eq!(log.last_index().unwrap(), LogIndex(0));
}
