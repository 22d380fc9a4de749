//! Group commit benchmark: durable appends per second and latency for 1, 16 and 256
//! concurrent appenders (256-byte entries), next to the raw write + fdatasync rate of the same
//! directory measured in the same run (appending to a new file, and overwriting a written one),
//! and next to the log without WAL recycling.
//!
//! `cargo bench -p raft-log --bench group_commit` (`BENCH_SECS` per case, default 3;
//! `BENCH_DIR` for the directory, default the current one).
//!
//! Appenders model a Raft leader: indexes are assigned in one place (a lock around "take the
//! next index, submit"), then each appender waits for its own write to be durable.

use hdrhistogram::Histogram;
use raft_core::{Entry, LogIndex, Term};
use raft_log::{LogOptions, LogStore, LogWrite};
use std::fs::OpenOptions;
use std::io::{Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const ENTRY_BYTES: usize = 256;

struct Figures {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    per_batch: f64,
}

/// Writes and fdatasyncs `ENTRY_BYTES` at a time: appending to a new file, or (`overwrite`)
/// over a file written and synced beforehand, which is what a recycled WAL file is.
fn raw_fdatasync(dir: &Path, secs: f64, overwrite: bool) -> Figures {
    let path = dir.join("raw-fdatasync");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let buf = vec![0xabu8; ENTRY_BYTES];
    if overwrite {
        // Longer than `secs` of appends can reach at a few thousand syncs a second.
        let mb = vec![0u8; 1 << 20];
        for _ in 0..64 {
            f.write_all(&mb).unwrap();
        }
        f.sync_all().unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    Figures {
        ops_per_sec: n as f64 / elapsed,
        p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
        per_batch: 1.0,
    }
}

fn appenders(dir: &Path, options: &LogOptions, clients: usize, secs: f64) -> (Figures, f64) {
    let log_dir = tempfile::tempdir_in(dir).unwrap();
    let opened = Instant::now();
    let log = LogStore::open(log_dir.path(), options.clone()).unwrap();
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;
    let next = Arc::new(Mutex::new(1u64));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let payload = bytes::Bytes::from(vec![0x5au8; ENTRY_BYTES]);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (log, next, stop, measuring, payload) = (
                log.clone(),
                next.clone(),
                stop.clone(),
                measuring.clone(),
                payload.clone(),
            );
            std::thread::spawn(move || {
                let mut h = Histogram::<u64>::new(3).unwrap();
                let mut done = 0u64;
                let (tx, rx) = mpsc::sync_channel(1);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    {
                        let mut n = next.lock().unwrap();
                        let e = Entry::new(Term(1), LogIndex(*n), payload.clone());
                        *n += 1;
                        let tx = tx.clone();
                        log.submit(LogWrite::entries(vec![e]), move |r| {
                            let _ = tx.send(r.is_ok());
                        });
                    }
                    assert!(rx.recv().unwrap(), "write failed");
                    if measuring.load(Ordering::Relaxed) {
                        h.record(t.elapsed().as_nanos() as u64).unwrap();
                        done += 1;
                    }
                }
                (h, done)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // warm-up
    let stats_before = log.stats();
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let stats_after = log.stats();
    stop.store(true, Ordering::Relaxed);
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut total = 0;
    for t in threads {
        let (th, n) = t.join().unwrap();
        h.add(th).unwrap();
        total += n;
    }
    let batches = (stats_after.batches - stats_before.batches).max(1);
    let figures = Figures {
        ops_per_sec: total as f64 / elapsed,
        p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
        per_batch: (stats_after.writes - stats_before.writes) as f64 / batches as f64,
    };
    (figures, open_ms)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it briefly as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .map(|v| v.parse().expect("BENCH_SECS"))
        .unwrap_or(if smoke { 0.2 } else { 3.0 });
    let dir = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::current_dir().unwrap());
    let bench_dir = tempfile::tempdir_in(&dir).unwrap();
    println!("directory: {}  ({secs} s per case)", dir.display());

    let raw = raw_fdatasync(bench_dir.path(), secs, false);
    let raw_overwrite = raw_fdatasync(bench_dir.path(), secs, true);
    println!(
        "{:<34} {:>8} {:>6} {:>8} {:>8} {:>11} {:>8}",
        "case", "ops/s", "× raw", "p50 µs", "p99 µs", "writes/sync", "open ms"
    );
    let row = |name: &str, f: &Figures, open_ms: Option<f64>| {
        println!(
            "{name:<34} {:>8.0} {:>6.2} {:>8.1} {:>8.1} {:>11.1} {:>8}",
            f.ops_per_sec,
            f.ops_per_sec / raw.ops_per_sec,
            f.p50_us,
            f.p99_us,
            f.per_batch,
            open_ms.map_or(String::new(), |ms| format!("{ms:.0}")),
        );
    };
    row("raw write+fdatasync, appending", &raw, None);
    row("raw write+fdatasync, overwriting", &raw_overwrite, None);
    // The log without WAL recycling, for the ratio it buys (`LogOptions::recycle_wal`).
    let plain = LogOptions::default().recycle_wal(false);
    for clients in [1, 16] {
        let (f, open_ms) = appenders(bench_dir.path(), &plain, clients, secs);
        row(
            &format!("log, no WAL recycling, {clients} app."),
            &f,
            Some(open_ms),
        );
    }
    let mut results = Vec::new();
    for clients in [1, 16, 256] {
        let (f, open_ms) = appenders(bench_dir.path(), &LogOptions::default(), clients, secs);
        row(&format!("log, {clients} appenders"), &f, Some(open_ms));
        results.push((clients, f));
    }
    let one = &results[0].1;
    let many = &results[2].1;
    println!(
        "goal: 256 appenders >= 20x raw rate: {:.1}x {}",
        many.ops_per_sec / raw.ops_per_sec,
        if many.ops_per_sec >= 20.0 * raw.ops_per_sec {
            "MET"
        } else {
            "MISSED"
        }
    );
    println!(
        "goal: 1 appender p50 within 1.5x one fdatasync: {:.2}x {}",
        one.p50_us / raw.p50_us,
        if one.p50_us <= 1.5 * raw.p50_us {
            "MET"
        } else {
            "MISSED"
        }
    );
}
