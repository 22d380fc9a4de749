//! A manifest that does not match its files fails the install with an error that names the
//! file and what differs, and the snapshot that was there stays visible and intact: for a
//! local install and for a transfer (where the receiver finds it and tells the sender).

mod support;

use raft_core::{LogIndex, Term};
use raft_snapshot::{Error, Manifest, RemoteCode, SnapshotStore, receive_snapshot, send_snapshot};
use support::{MIB, cfg, conf, layout, make_snapshot, pipe, temp_entries, write_files};

/// Makes a manifest and its files disagree.
type Damage = Box<dyn Fn(&mut Manifest, &std::path::Path)>;

fn staged(store: &SnapshotStore, index: u64) -> (std::path::PathBuf, Manifest) {
    let dir = store.staging_dir(LogIndex(index), Term(2)).unwrap();
    write_files(&dir, &[("a.sst", 100_000), ("d/b.sst", 5000)], index);
    let m = Manifest::from_dir(&dir, LogIndex(index), Term(2), conf()).unwrap();
    (dir, m)
}

fn old_state_stays(store: &SnapshotStore, old: &Manifest) {
    assert_eq!(store.latest().as_ref(), Some(old));
    store.verify(old).unwrap();
    let reopened = SnapshotStore::open(store.root()).unwrap();
    assert_eq!(reopened.list(), vec![old.clone()]);
}

#[test]
fn a_local_install_checks_every_file_against_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let old = make_snapshot(&store, 10, 1, &[("a.sst", 2000)], 1);

    let cases: Vec<(&str, Damage)> = vec![
        ("crc32c", Box::new(|m, _| m.files[0].crc32c ^= 1)),
        ("size", Box::new(|m, _| m.files[1].size += 1)),
        (
            "missing",
            Box::new(|_, dir| std::fs::remove_file(dir.join("d/b.sst")).unwrap()),
        ),
        (
            "not in the manifest",
            Box::new(|_, dir| std::fs::write(dir.join("extra"), b"x").unwrap()),
        ),
        (
            "crc32c",
            Box::new(|_, dir| {
                let p = dir.join("a.sst");
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[50_000] ^= 4;
                std::fs::write(&p, bytes).unwrap();
            }),
        ),
    ];
    for (i, (want, damage)) in cases.iter().enumerate() {
        let (dir, mut m) = staged(&store, 20 + i as u64);
        damage(&mut m, &dir);
        let e = store.install_dir(&dir, &m).unwrap_err();
        let text = e.to_string();
        println!("{text}");
        assert!(matches!(e, Error::Mismatch { .. }), "{text}");
        assert!(
            text.contains(want) && text.contains(".sst") || text.contains("extra"),
            "{text}"
        );
        assert!(!store.path_of(&m).exists());
        old_state_stays(&store, &old);
    }
}

#[tokio::test]
async fn a_transfer_with_a_lying_manifest_fails_and_the_old_snapshot_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let old = make_snapshot(&follower, 10, 1, &[("a.sst", 3000)], 1);
    let real = make_snapshot(&leader, 50, 2, &layout(3 * MIB), 2);
    // A wrong checksum for a file in the middle, and for an empty one.
    for name in ["sst/000012.sst", "empty.log"] {
        let mut lying = real.clone();
        let i = lying.files.iter().position(|f| f.name == name).unwrap();
        lying.files[i].crc32c ^= 0x8000;
        lying_transfer(&leader, &follower, &real, &lying, name).await;
        old_state_stays(&follower, &old);
    }
}

async fn lying_transfer(
    leader: &SnapshotStore,
    follower: &SnapshotStore,
    real: &Manifest,
    lying: &Manifest,
    name: &str,
) {
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(real), lying, ar, aw, &cfg),
        receive_snapshot(follower, br, bw, &cfg)
    );
    let e = recv.unwrap_err();
    println!("receiver: {e}");
    match &e {
        Error::Mismatch {
            file,
            detail,
            index,
            ..
        } => {
            assert_eq!(file, name);
            assert!(detail.contains("crc32c"), "{detail}");
            assert_eq!(*index, LogIndex(50));
        }
        other => panic!("{other}"),
    }
    let e = send.unwrap_err();
    println!("sender: {e}");
    assert!(
        matches!(
            e,
            Error::Remote {
                code: RemoteCode::Mismatch,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(name));
    assert!(!e.is_retryable());
    // The partial snapshot is gone.
    assert!(temp_entries(follower.root()).is_empty());
}

#[tokio::test]
async fn a_sender_whose_files_differ_in_size_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let old = make_snapshot(&follower, 10, 1, &[("a.sst", 3000)], 1);
    let real = make_snapshot(&leader, 50, 2, &layout(MIB), 2);
    let mut lying = real.clone();
    lying.files[0].size -= 1;
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(&real), &lying, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    let e = send.unwrap_err();
    assert!(matches!(e, Error::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("size"), "{e}");
    assert!(matches!(recv, Err(Error::Closed)), "{recv:?}");
    assert!(temp_entries(follower.root()).is_empty());
    old_state_stays(&follower, &old);
}

#[tokio::test]
async fn same_index_and_term_with_other_contents_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let theirs = make_snapshot(&follower, 50, 2, &[("a.sst", 3000)], 1);
    let ours = make_snapshot(&leader, 50, 2, &[("a.sst", 3000)], 2);
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(&ours), &ours, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert!(matches!(recv, Err(Error::Conflict { .. })), "{recv:?}");
    assert!(
        matches!(
            send,
            Err(Error::Remote {
                code: RemoteCode::Conflict,
                ..
            })
        ),
        "{send:?}"
    );
    old_state_stays(&follower, &theirs);
}
