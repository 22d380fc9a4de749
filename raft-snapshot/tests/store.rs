//! The store: atomic local installs, listing, removal and pruning, cleanup at open of what a
//! crash left behind, and refusal of unsafe or damaged input.

mod support;

use raft_core::{LogIndex, Term};
use raft_snapshot::{Error, MANIFEST_FILE, Manifest, SnapshotStore};
use support::{conf, make_snapshot, temp_entries, write_files};

#[test]
fn open_removes_temporary_state_and_keeps_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snaps");
    let store = SnapshotStore::open(&root).unwrap();
    let a = make_snapshot(&store, 5, 1, &[("x", 100)], 1);
    let b = make_snapshot(&store, 7, 2, &[("x", 100), ("d/y", 5)], 2);
    // What crashes leave: a partial transfer, a staging directory, a half-deleted snapshot,
    // a stray temporary file.
    for d in [
        ".tmp-recv-00000000000000000009-00000000000000000002/sub",
        ".tmp-local-1-1",
        ".del-snap-3-1",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("f"), b"partial").unwrap();
    }
    std::fs::write(root.join(".tmp-file"), b"x").unwrap();
    std::fs::write(root.join("unrelated.txt"), b"kept").unwrap();
    assert_eq!(temp_entries(&root).len(), 4);

    let store = SnapshotStore::open(&root).unwrap();
    assert!(temp_entries(&root).is_empty());
    assert!(root.join("unrelated.txt").exists());
    assert_eq!(store.list(), vec![a.clone(), b.clone()]);
    assert_eq!(store.latest(), Some(b.clone()));
    assert_eq!(store.get(LogIndex(5), Term(1)), Some(a.clone()));
    assert_eq!(store.get(LogIndex(5), Term(2)), None);
    assert_eq!(
        std::fs::read(store.path_of(&b).join("d/y")).unwrap().len(),
        5
    );
}

#[test]
fn damaged_or_misnamed_snapshot_directories_are_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let a = make_snapshot(&store, 5, 1, &[("x", 100)], 1);
    let b = make_snapshot(&store, 7, 1, &[("x", 100)], 2);
    let c = make_snapshot(&store, 9, 1, &[("x", 100)], 3);
    // b's manifest is damaged; c's directory is renamed to claim another index.
    let mf = store.path_of(&b).join(MANIFEST_FILE);
    let mut bytes = std::fs::read(&mf).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&mf, bytes).unwrap();
    let mut c_claims_11 = c.clone();
    c_claims_11.index = LogIndex(11);
    std::fs::rename(store.path_of(&c), store.path_of(&c_claims_11)).unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.list(), vec![a]);
}

#[test]
fn install_remove_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path().join("s")).unwrap();
    let ms: Vec<Manifest> = (1..=4)
        .map(|i| make_snapshot(&store, i * 10, 1, &[("f", 1000)], i))
        .collect();
    assert_eq!(store.list(), ms);
    // The same snapshot again: nothing happens. Other contents under the same id: conflict.
    let dir = store.staging_dir(LogIndex(40), Term(1)).unwrap();
    write_files(&dir, &[("f", 1000)], 4);
    store.install_dir(&dir, &ms[3]).unwrap();
    write_files(&dir, &[("f", 1000)], 99);
    let other = Manifest::from_dir(&dir, LogIndex(40), Term(1), conf()).unwrap();
    assert!(matches!(
        store.install_dir(&dir, &other),
        Err(Error::Conflict { .. })
    ));

    assert!(store.remove(LogIndex(20), Term(1)).unwrap());
    assert!(!store.remove(LogIndex(20), Term(1)).unwrap());
    assert!(!store.path_of(&ms[1]).exists());
    assert_eq!(store.prune(2).unwrap(), 1);
    assert_eq!(store.list(), vec![ms[2].clone(), ms[3].clone()]);
    assert_eq!(store.prune(5).unwrap(), 0);
    let reopened = SnapshotStore::open(store.root()).unwrap();
    assert_eq!(reopened.list(), vec![ms[2].clone(), ms[3].clone()]);
    for m in reopened.list() {
        reopened.verify(&m).unwrap();
    }
}

#[test]
fn from_dir_describes_files_and_refuses_what_it_cannot_send() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    write_files(&dir, &[("b", 10), ("a/z", 3), ("a/y", 0)], 1);
    let m = Manifest::from_dir(&dir, LogIndex(3), Term(1), conf()).unwrap();
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a/y", "a/z", "b"]);
    assert_eq!(m.total_bytes(), 13);
    assert_eq!(
        m.files[1].crc32c,
        crc32c::crc32c(&std::fs::read(dir.join("a/z")).unwrap())
    );
    m.verify_dir(&dir).unwrap();

    std::fs::write(dir.join(MANIFEST_FILE), b"x").unwrap();
    assert!(matches!(
        Manifest::from_dir(&dir, LogIndex(3), Term(1), conf()),
        Err(Error::InvalidName { .. })
    ));
    std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let e = Manifest::from_dir(&dir, LogIndex(3), Term(1), conf()).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    }
}

#[test]
fn manifests_with_unsafe_names_are_refused() {
    for bad in ["../x", "/abs", "a/./b", "a//b", ""] {
        let files = vec![raft_snapshot::FileMeta {
            name: bad.to_string(),
            size: 1,
            crc32c: 0,
        }];
        assert!(
            Manifest::new(LogIndex(1), Term(1), conf(), files).is_err(),
            "{bad:?}"
        );
    }
}
