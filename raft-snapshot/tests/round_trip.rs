//! Whole transfers through an in-memory pipe: a 100 MiB multi-file snapshot arrives with
//! identical bytes, a snapshot the receiver already has costs nothing, and hostile input
//! (garbage, oversized frames, unsafe file names) gives typed errors without touching
//! anything outside the store.

mod support;

use std::time::Instant;

use raft_snapshot::{
    Error, FrameError, RemoteCode, SnapshotStore, receive_snapshot, send_snapshot,
};
use support::{MIB, assert_same_files, cfg, layout, make_snapshot, pipe, temp_entries};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_multi_file_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 1000, 4, &layout(100 * MIB), 1);
    assert_eq!(m.total_bytes(), 100 * MIB as u64);
    assert!(m.files.iter().any(|f| f.size == 0) && m.files.iter().any(|f| f.name.contains('/')));

    let ((ar, aw), (br, bw)) = pipe(1 << 20);
    let cfg = cfg();
    let started = Instant::now();
    let (sent, got) = tokio::join!(
        send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    let elapsed = started.elapsed();
    let sent = sent.unwrap();
    assert_eq!(got.unwrap(), m);
    println!(
        "100 MiB in {elapsed:?} ({:.0} MB/s), {} chunks",
        m.total_bytes() as f64 / elapsed.as_secs_f64() / 1e6,
        sent.chunks_sent
    );
    assert_eq!(sent.bytes_sent, m.total_bytes());
    assert_eq!((sent.resends, sent.resumed_bytes), (0, 0));
    assert_eq!(follower.latest(), Some(m.clone()));
    assert_same_files(&m, &leader.path_of(&m), &follower.path_of(&m));
    assert!(temp_entries(follower.root()).is_empty());
    // Visible after a restart too, and the stored files check out.
    let reopened = SnapshotStore::open(follower.root()).unwrap();
    assert_eq!(reopened.list(), vec![m.clone()]);
    reopened.verify(&m).unwrap();

    // Sending it again: the receiver has it, nothing is sent.
    let ((ar, aw), (br, bw)) = pipe(1 << 16);
    let (sent, got) = tokio::join!(
        send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert_eq!(sent.unwrap().bytes_sent, 0);
    assert_eq!(got.unwrap(), m);
}

#[tokio::test]
async fn small_chunks_and_a_newer_snapshot_beside_an_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let old = make_snapshot(&follower, 10, 1, &[("a", 1000)], 5);
    let m = make_snapshot(&leader, 20, 2, &layout(3 * MIB), 6);
    let mut cfg = cfg();
    cfg.chunk_size = 4096 + 7;
    let ((ar, aw), (br, bw)) = pipe(8192);
    let (sent, got) = tokio::join!(
        send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert!(sent.unwrap().chunks_sent > 700);
    assert_eq!(got.unwrap(), m);
    assert_eq!(follower.list(), vec![old.clone(), m.clone()]);
    assert_same_files(&m, &leader.path_of(&m), &follower.path_of(&m));
    assert_eq!(follower.prune(1).unwrap(), 1);
    assert_eq!(follower.list(), vec![m]);
    assert!(!follower.path_of(&old).exists());
}

/// Sends raw bytes to a receiver and returns its error.
async fn receive_garbage(bytes: Vec<u8>) -> Error {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path().join("s")).unwrap();
    let ((_ar, mut aw), (br, bw)) = pipe(1 << 20);
    let writer = tokio::spawn(async move {
        let _ = aw.write_all(&bytes).await;
        let _ = aw.shutdown().await;
        aw
    });
    let err = receive_snapshot(&store, br, bw, &cfg()).await.unwrap_err();
    drop(writer.await);
    assert!(store.list().is_empty());
    assert!(
        std::fs::read_dir(tmp.path().join("s"))
            .unwrap()
            .next()
            .is_none()
    );
    err
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_typed_errors() {
    let mut rng = support::Rng(99);
    for len in [0usize, 1, 7, 8, 9, 100, 5000] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let e = receive_garbage(bytes).await;
        assert!(
            matches!(e, Error::Frame(_) | Error::Closed),
            "{len} garbage bytes: {e}"
        );
    }
    // A header claiming 3 GiB is refused from the header alone.
    let e = receive_garbage(vec![0xc0, 0, 0, 0, 0, 0, 0, 0]).await;
    assert!(
        matches!(e, Error::Frame(FrameError::Oversized { .. })),
        "{e}"
    );
    // A well-formed frame that is no message this version knows.
    let body = [0x7a, 0x00]; // field 15, empty bytes
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    let e = receive_garbage(frame).await;
    assert!(matches!(e, Error::Frame(FrameError::Empty)), "{e}");
}

/// The wire encoding of an offer, built by hand as a hostile sender would.
mod hostile {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct File {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint64, tag = "2")]
        pub size: u64,
        #[prost(fixed32, tag = "3")]
        pub crc32c: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Manifest {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(uint64, tag = "2")]
        pub index: u64,
        #[prost(uint64, tag = "3")]
        pub term: u64,
        #[prost(message, repeated, tag = "5")]
        pub files: Vec<File>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Offer {
        #[prost(message, optional, tag = "1")]
        pub manifest: Option<Manifest>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ToReceiver {
        #[prost(message, optional, tag = "1")]
        pub offer: Option<Offer>,
    }

    pub fn offer_frame(names: &[&str]) -> Vec<u8> {
        let msg = ToReceiver {
            offer: Some(Offer {
                manifest: Some(Manifest {
                    version: 1,
                    index: 5,
                    term: 1,
                    files: names
                        .iter()
                        .map(|n| File {
                            name: n.to_string(),
                            size: 10,
                            crc32c: 0,
                        })
                        .collect(),
                }),
            }),
        };
        let body = prost::Message::encode_to_vec(&msg);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }
}

#[tokio::test]
async fn unsafe_names_from_the_wire_are_refused() {
    for bad in [
        "../escape",
        "/etc/passwd",
        "a/../../b",
        "",
        "a//b",
        "./a",
        "MANIFEST",
        "a\\..\\b",
    ] {
        let e = receive_garbage(hostile::offer_frame(&["ok.sst", bad])).await;
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
    }
    let e = receive_garbage(hostile::offer_frame(&["x", "x"])).await;
    assert!(matches!(e, Error::InvalidManifest(_)), "{e}");
    // The sender hears why.
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let ((mut ar, mut aw), (br, bw)) = pipe(1 << 16);
    aw.write_all(&hostile::offer_frame(&["../x"]))
        .await
        .unwrap();
    let e = receive_snapshot(&store, br, bw, &cfg()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }));
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut ar, &mut answer)
        .await
        .unwrap();
    assert!(answer.len() > 8, "a refusal was sent");
    assert!(String::from_utf8_lossy(&answer).contains("../x"));
    assert!(!tmp.path().parent().unwrap().join("x").exists());
    let _ = RemoteCode::Invalid;
}
