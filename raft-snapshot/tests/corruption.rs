//! Corruption in transit: a flipped byte is caught by the checksums, the chunk is refused and
//! sent again, and the installed snapshot is byte-identical. A flipped byte in a frame
//! header or in the receiver's answers breaks the stream with a typed error and the next
//! attempt resumes. A link that corrupts everything is given up on. `SNAP_SEED` replays;
//! `SNAP_FLIPS` sets the number of flips in `several_flips_seen_by_the_receiver`.

mod support;

use raft_snapshot::{Error, RemoteCode, SnapshotStore, receive_snapshot, send_snapshot};
use support::{Faulty, MIB, Rng, assert_same_files, cfg, layout, make_snapshot, pipe};

struct Setup {
    _tmp: tempfile::TempDir,
    leader: SnapshotStore,
    follower: SnapshotStore,
    m: raft_snapshot::Manifest,
}

fn setup(size: usize, seed: u64) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 300, 5, &layout(size), seed);
    Setup {
        _tmp: tmp,
        leader,
        follower,
        m,
    }
}

/// Runs attempts until one succeeds; the first goes through `flips` on the data direction
/// (at the sender when `at_sender`, else at the receiver). Returns (attempts, resends).
async fn transfer_with_flips(s: &Setup, flips: &[u64], at_sender: bool) -> (u32, u64) {
    let cfg = cfg();
    for attempt in 1..=4 {
        let ((ar, aw), (br, bw)) = pipe(256 << 10);
        let (mut aw, mut br) = (Faulty::new(aw), Faulty::new(br));
        if attempt == 1 {
            for &f in flips {
                if at_sender {
                    aw = aw.flip_at(f);
                } else {
                    br = br.flip_at(f);
                }
            }
        }
        let (send, recv) = tokio::join!(
            send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
            receive_snapshot(&s.follower, br, bw, &cfg)
        );
        match send {
            Ok(report) => {
                assert_eq!(recv.unwrap(), s.m);
                assert_same_files(&s.m, &s.leader.path_of(&s.m), &s.follower.path_of(&s.m));
                return (attempt, report.resends);
            }
            Err(e) => {
                // Only a flip in a frame header breaks the stream.
                println!("attempt {attempt}: {e}; receiver: {:?}", recv.err());
                assert!(e.is_retryable(), "{e}");
            }
        }
    }
    panic!("no attempt succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_refused_and_the_chunk_resent() {
    let seed = support::seed("SNAP_SEED", "corruption");
    let mut rng = Rng(seed);
    let s = setup(16 * MIB, seed);
    let at = MIB as u64 + rng.below(14 * MIB as u64);
    let (attempts, resends) = transfer_with_flips(&s, &[at], true).await;
    println!("flip at {at}: {attempts} attempt(s), {resends} resend(s)");
    // Frame headers are 30 of every 1 MiB: almost always the flip hits chunk data.
    assert!(
        (attempts == 1 && resends == 1) || attempts == 2,
        "seed {seed}: {attempts} attempts, {resends} resends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_middle_of_chunk_data_costs_one_resend() {
    let s = setup(8 * MIB, 7);
    // 4 MiB + 512 KiB into the stream is deep inside the fifth chunk's data.
    let (attempts, resends) = transfer_with_flips(&s, &[(4 * MIB + MIB / 2) as u64], true).await;
    assert_eq!((attempts, resends), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_flips_seen_by_the_receiver() {
    let seed = support::seed("SNAP_SEED", "corruption");
    let mut rng = Rng(seed ^ 1);
    let s = setup(16 * MIB, seed);
    let n: usize = std::env::var("SNAP_FLIPS").map_or(5, |v| v.parse().expect("SNAP_FLIPS"));
    let flips: Vec<u64> = (0..n).map(|_| rng.below(16 * MIB as u64)).collect();
    let (attempts, resends) = transfer_with_flips(&s, &flips, false).await;
    println!("flips at {flips:?}: {attempts} attempt(s), {resends} resend(s)");
    assert!(resends >= 1 || attempts > 1, "seed {seed}");
}

#[tokio::test]
async fn a_flipped_byte_in_an_answer_fails_the_attempt_and_the_next_one_resumes() {
    let s = setup(2 * MIB, 8);
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(256 << 10);
    let bw = Faulty::new(bw).flip_at(12); // inside the Accept frame's body
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
        receive_snapshot(&s.follower, br, bw, &cfg)
    );
    let e = send.unwrap_err();
    assert!(
        matches!(e, Error::Frame(raft_snapshot::FrameError::Checksum { .. })),
        "{e}"
    );
    assert!(recv.is_err());
    let (attempts, _) = transfer_with_flips(&s, &[], true).await;
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn a_link_that_corrupts_everything_is_given_up_on() {
    let s = setup(4 * MIB, 9);
    let mut cfg = cfg();
    cfg.max_corrupt_chunks = 3;
    cfg.chunk_size = 64 << 10;
    let ((ar, aw), (br, bw)) = pipe(256 << 10);
    let mut aw = Faulty::new(aw);
    for k in 1..200u64 {
        aw = aw.flip_at(k * 20_000);
    }
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
        receive_snapshot(&s.follower, br, bw, &cfg)
    );
    assert!(
        matches!(recv, Err(Error::TooManyCorruptChunks(4))),
        "{recv:?}"
    );
    assert!(
        matches!(
            send,
            Err(Error::Remote {
                code: RemoteCode::Corrupt,
                ..
            })
        ),
        "{send:?}"
    );
    assert!(s.follower.latest().is_none());
}
