//! Transfers cut at random byte positions (in either direction, on either side) resume on a
//! new stream from the receiver's verified offsets and end with identical bytes.
//! `SNAP_SEED` replays a run, `SNAP_CUTS` sets the number of cuts (default 6).

mod support;

use raft_snapshot::{Error, SnapshotStore, receive_snapshot, send_snapshot};
use support::{
    Faulty, MIB, Rng, assert_same_files, cfg, layout, make_snapshot, partial_bytes, pipe,
    temp_entries,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_at_random_offsets_then_resumed() {
    let seed = support::seed("SNAP_SEED", "resume");
    let cuts: usize = std::env::var("SNAP_CUTS").map_or(6, |v| v.parse().expect("SNAP_CUTS"));
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 77, 3, &layout(24 * MIB), seed);
    let total = m.total_bytes();
    let mut cfg = cfg();
    cfg.chunk_size = 256 << 10;

    let mut sent_total = 0u64;
    let mut attempts = 0;
    let mut finished = false;
    let mut broken = 0;
    for cut in 0..=cuts {
        attempts += 1;
        let ((ar, aw), (br, bw)) = pipe(64 << 10);
        // Where this attempt breaks: the data direction at the sender or at the receiver, or
        // the answer direction (which carries few bytes). The last attempt is not cut.
        let how = if cut == cuts { 3 } else { rng.below(3) };
        let at = match how {
            // Within the first three quarters of what is left: this attempt breaks.
            0 | 1 => 1 + rng.below((total - partial_bytes(follower.root())) * 3 / 4),
            // Inside the Accept frame (at least 23 bytes for these six files).
            2 => rng.below(23),
            _ => u64::MAX,
        };
        let (mut ar, mut aw, mut br, mut bw) = (
            Faulty::new(ar),
            Faulty::new(aw),
            Faulty::new(br),
            Faulty::new(bw),
        );
        match how {
            0 => aw = aw.fail_at(at),
            1 => br = br.fail_at(at),
            2 => bw = bw.fail_at(at),
            _ => ar = ar.fail_at(u64::MAX),
        }
        let wire_bytes = aw.seen.clone();
        let (send, recv) = tokio::join!(
            send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
            receive_snapshot(&follower, br, bw, &cfg)
        );
        println!(
            "attempt {attempts}: cut kind {how} at {at}: sender {:?}, receiver {:?}",
            send.as_ref()
                .map(|r| (r.bytes_sent, r.resumed_bytes))
                .map_err(Error::to_string),
            recv.as_ref().map(|_| ()).map_err(Error::to_string)
        );
        for e in [send.as_ref().err(), recv.as_ref().err()]
            .into_iter()
            .flatten()
        {
            assert!(e.is_retryable(), "attempt {attempts}: not retryable: {e}");
        }
        if let Ok(r) = &send {
            sent_total += wire_bytes.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(r.bytes_sent + r.resumed_bytes, total, "attempt {attempts}");
            assert_eq!(recv.unwrap(), m);
            finished = true;
            break;
        }
        broken += 1;
        sent_total += wire_bytes.load(std::sync::atomic::Ordering::Relaxed);
        if recv.is_ok() {
            // The install happened but its confirmation was lost: the next attempt hears
            // "installed" at once.
            assert_eq!(follower.latest(), Some(m.clone()));
        }
    }
    assert!(finished, "seed {seed}: no attempt finished");
    assert_eq!(follower.latest(), Some(m.clone()));
    assert_same_files(&m, &leader.path_of(&m), &follower.path_of(&m));
    assert!(temp_entries(follower.root()).is_empty());
    // Resuming means not starting over: about one copy went out in all, not one per attempt
    // (a broken attempt loses at most what was in flight).
    println!("{attempts} attempts ({broken} broken), {sent_total} bytes on the wire for {total}");
    assert_eq!(broken, cuts, "seed {seed}");
    assert!(
        sent_total < total + attempts as u64 * (2 * MIB as u64),
        "seed {seed}: {sent_total} bytes on the wire for a {total}-byte snapshot"
    );
}

#[tokio::test]
async fn a_resume_reports_what_the_receiver_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 5, 1, &layout(4 * MIB), 3);
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let aw = Faulty::new(aw).fail_at(2 * MIB as u64 + 100);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert!(matches!(send, Err(Error::Stream(_))), "{send:?}");
    assert!(
        matches!(
            recv,
            Err(Error::Frame(raft_snapshot::FrameError::Truncated))
        ),
        "{recv:?}"
    );
    assert!(follower.latest().is_none());
    assert_eq!(
        temp_entries(follower.root()).len(),
        1,
        "the partial transfer is kept"
    );

    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(&m), &m, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    let report = send.unwrap();
    assert_eq!(recv.unwrap(), m);
    // Everything before the cut except the frame it broke arrived and was kept.
    assert!(report.resumed_bytes >= MIB as u64, "{report:?}");
    assert_eq!(report.resumed_bytes + report.bytes_sent, m.total_bytes());
    assert_same_files(&m, &leader.path_of(&m), &follower.path_of(&m));
}

#[tokio::test]
async fn an_older_partial_transfer_is_dropped_for_a_newer_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let old = make_snapshot(&leader, 5, 1, &layout(2 * MIB), 3);
    let new = make_snapshot(&leader, 9, 1, &layout(2 * MIB), 4);
    let cfg = cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let aw = Faulty::new(aw).fail_at(MIB as u64 + 100);
    let (send, _) = tokio::join!(
        send_snapshot(leader.path_of(&old), &old, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert!(send.is_err());
    assert_eq!(temp_entries(follower.root()).len(), 1);
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(leader.path_of(&new), &new, ar, aw, &cfg),
        receive_snapshot(&follower, br, bw, &cfg)
    );
    assert_eq!(send.unwrap().resumed_bytes, 0);
    assert_eq!(recv.unwrap(), new);
    assert!(temp_entries(follower.root()).is_empty());
}
