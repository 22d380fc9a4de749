//! Limits: a transfer that stalls (either side stops moving bytes) is abandoned on both sides
//! with `Stalled` after the timeout and resumes later; a lost install confirmation is
//! harmless; the concurrency limit refuses extra transfers with a retryable `Busy` on both
//! sides; the bandwidth cap slows a transfer to the configured rate.

mod support;

use std::time::{Duration, Instant};

use raft_snapshot::{
    Error, Limits, Manifest, RemoteCode, SendReport, SnapshotStore, TransferConfig,
    receive_snapshot, send_snapshot,
};
use support::{Faulty, MIB, assert_same_files, cfg, layout, make_snapshot, pipe, temp_entries};

const STALL: Duration = Duration::from_millis(400);

fn stall_cfg() -> TransferConfig {
    let mut c = cfg();
    c.stall_timeout = STALL;
    c.chunk_size = 256 << 10;
    c
}

struct Setup {
    _tmp: tempfile::TempDir,
    leader: SnapshotStore,
    follower: SnapshotStore,
    m: Manifest,
}

fn setup(size: usize) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let leader = SnapshotStore::open(tmp.path().join("leader")).unwrap();
    let follower = SnapshotStore::open(tmp.path().join("follower")).unwrap();
    let m = make_snapshot(&leader, 40, 4, &layout(size), 40);
    Setup {
        _tmp: tmp,
        leader,
        follower,
        m,
    }
}

/// A clean transfer; returns the sender's report.
async fn clean(s: &Setup, cfg: &TransferConfig) -> SendReport {
    clean_with(s, cfg, cfg).await
}

/// A clean transfer with the sender's and the receiver's own configurations.
async fn clean_with(s: &Setup, cfg: &TransferConfig, rcfg: &TransferConfig) -> SendReport {
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, cfg),
        receive_snapshot(&s.follower, br, bw, rcfg)
    );
    assert_eq!(recv.unwrap(), s.m);
    assert_same_files(&s.m, &s.leader.path_of(&s.m), &s.follower.path_of(&s.m));
    send.unwrap()
}

fn assert_stalled(
    r: &Result<impl std::fmt::Debug, Error>,
    stall: Duration,
    started: Instant,
    side: &str,
) {
    assert!(
        matches!(r, Err(Error::Stalled(t)) if *t == stall),
        "{side}: {r:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= stall && took < stall * 5,
        "{side} gave up after {took:?}"
    );
}

/// The other side's timeout: longer, so that each side is seen to give up on its own (the
/// stuck wrapper does not notice when the peer goes away).
fn slow_cfg() -> TransferConfig {
    let mut c = stall_cfg();
    c.stall_timeout = STALL * 3;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stops_reading_stalls_both_sides_then_the_transfer_resumes() {
    let s = setup(4 * MIB);
    let (cfg, rcfg) = (stall_cfg(), slow_cfg());
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let br = Faulty::new(br).hang_at(MIB as u64 + 1000);
    let started = Instant::now();
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
        receive_snapshot(&s.follower, br, bw, &rcfg)
    );
    assert_stalled(&send, STALL, started, "sender");
    assert_stalled(&recv, STALL * 3, started, "receiver");
    assert!(send.unwrap_err().is_retryable());
    assert_eq!(
        temp_entries(s.follower.root()).len(),
        1,
        "partial state kept"
    );
    let report = clean(&s, &cfg).await;
    assert!(report.resumed_bytes >= 512 << 10, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_stops_writing_is_abandoned_then_the_transfer_resumes() {
    let s = setup(4 * MIB);
    let (cfg, scfg) = (stall_cfg(), slow_cfg());
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let aw = Faulty::new(aw).hang_at(2 * MIB as u64 + 1000);
    let started = Instant::now();
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &scfg),
        receive_snapshot(&s.follower, br, bw, &cfg)
    );
    assert_stalled(&recv, STALL, started, "receiver");
    // The sender's write is stuck in the wrapper, but it hears the receiver leave.
    assert!(matches!(send, Err(Error::Closed)), "{send:?}");
    let report = clean(&s, &cfg).await;
    assert!(report.resumed_bytes >= 3 * MIB as u64 / 2, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_install_confirmation_stalls_the_sender_and_the_retry_hears_installed() {
    let s = setup(2 * MIB);
    let cfg = stall_cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    // The Accept frame is 23 bytes here, the confirmation 10: hang inside the confirmation.
    let bw = Faulty::new(bw).hang_at(28);
    let started = Instant::now();
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
        receive_snapshot(&s.follower, br, bw, &cfg)
    );
    assert_eq!(
        recv.unwrap(),
        s.m,
        "installed even though the answer was lost"
    );
    assert_stalled(&send, STALL, started, "sender");
    let report = clean(&s, &cfg).await;
    assert_eq!(report.bytes_sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_refuses_extra_transfers_on_both_sides() {
    let s = setup(2 * MIB);
    let other = make_snapshot(&s.leader, 41, 4, &layout(MIB), 41);
    let mut follower_cfg = stall_cfg();
    follower_cfg.limits = Limits::new(1, None);
    follower_cfg.stall_timeout = Duration::from_secs(2);
    let leader_cfg = stall_cfg();

    // Transfer 1 hangs half-way and holds the follower's only slot until it stalls.
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let aw = Faulty::new(aw).hang_at(MIB as u64);
    let first = {
        let (s_leader, m, follower, lcfg, fcfg) = (
            s.leader.clone(),
            s.m.clone(),
            s.follower.clone(),
            leader_cfg.clone(),
            follower_cfg.clone(),
        );
        tokio::spawn(async move {
            let mut l = lcfg;
            l.stall_timeout = Duration::from_secs(2);
            tokio::join!(
                send_snapshot(s_leader.path_of(&m), &m, ar, aw, &l),
                receive_snapshot(&follower, br, bw, &fcfg)
            )
        })
    };
    while follower_cfg.limits.active_transfers() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Transfer 2 (another snapshot) is refused by the follower.
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let (send, recv) = tokio::join!(
        send_snapshot(s.leader.path_of(&other), &other, ar, aw, &leader_cfg),
        receive_snapshot(&s.follower, br, bw, &follower_cfg)
    );
    assert!(matches!(recv, Err(Error::Busy(_))), "{recv:?}");
    let e = send.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                code: RemoteCode::Busy,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retryable());

    // A sender at its own limit refuses at once.
    let mut one = stall_cfg();
    one.limits = Limits::new(1, None);
    let ((ar1, aw1), _keep1) = pipe(64 << 10);
    let ((ar2, aw2), _keep2) = pipe(64 << 10);
    let hold = send_snapshot(s.leader.path_of(&s.m), &s.m, ar1, aw1, &one);
    let refused = async {
        while one.limits.active_transfers() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        send_snapshot(s.leader.path_of(&other), &other, ar2, aw2, &one).await
    };
    let (held, refused) = tokio::join!(hold, refused);
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    assert!(matches!(held, Err(Error::Stalled(_))), "{held:?}");

    // Once transfer 1 gives up, the slot is free again.
    let (send1, recv1) = first.await.unwrap();
    assert!(send1.is_err() && recv1.is_err());
    assert_eq!(follower_cfg.limits.active_transfers(), 0);
    let report = clean_with(&s, &leader_cfg, &follower_cfg).await;
    assert!(report.resumed_bytes > 0);
}

#[tokio::test]
async fn one_snapshot_is_received_on_one_stream_at_a_time() {
    let s = setup(2 * MIB);
    let cfg = stall_cfg();
    let ((ar, aw), (br, bw)) = pipe(64 << 10);
    let aw = Faulty::new(aw).hang_at(MIB as u64);
    let ((ar2, aw2), (br2, bw2)) = pipe(64 << 10);
    let second = async {
        // Let the first transfer get going.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::join!(
            send_snapshot(s.leader.path_of(&s.m), &s.m, ar2, aw2, &cfg),
            receive_snapshot(&s.follower, br2, bw2, &cfg)
        )
    };
    let (first, (send2, recv2)) = tokio::join!(
        async {
            tokio::join!(
                send_snapshot(s.leader.path_of(&s.m), &s.m, ar, aw, &cfg),
                receive_snapshot(&s.follower, br, bw, &cfg)
            )
        },
        second
    );
    assert!(matches!(recv2, Err(Error::Busy(_))), "{recv2:?}");
    assert!(
        matches!(
            send2,
            Err(Error::Remote {
                code: RemoteCode::Busy,
                ..
            })
        ),
        "{send2:?}"
    );
    assert!(first.0.is_err() && first.1.is_err());
    clean(&s, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_cap_sets_the_rate() {
    let s = setup(2 * MIB);
    let mut cfg = cfg();
    cfg.chunk_size = 128 << 10;
    cfg.limits = Limits::new(4, Some(4_000_000));
    let started = Instant::now();
    clean(&s, &cfg).await;
    let took = started.elapsed();
    // 2.1 MB at 4 MB/s with a 0.4 MB burst: at least 0.42 s.
    println!("2 MiB at 4 MB/s took {took:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
