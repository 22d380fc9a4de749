//! The clients: closed loops of pipelined SET / GET batches, each measuring its own
//! latencies and counting its own errors (merged at the end, so no lock is taken per
//! request).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::resp::{ClientError, ConnectOptions, Connection, Reply, encode_command_into};
use crate::rng::Rng;

/// The highest latency recorded exactly, in microseconds (an hour); longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Pause after a failed connection attempt, so a dead node is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What every client does, and when.
#[derive(Debug)]
pub struct Plan {
    /// Batches started from here on are measured (the end of the warmup).
    pub measure_from: Instant,
    /// No batch starts from here on.
    pub end: Instant,
    /// Requests per batch.
    pub pipeline: usize,
    /// Distinct keys.
    pub keys: u64,
    /// The value of each SET.
    pub value: Vec<u8>,
    /// Fraction of GETs.
    pub read_ratio: f64,
    /// How long a batch may wait for its replies.
    pub timeout: Duration,
    /// TLS and credentials of each connection.
    pub connect: ConnectOptions,
}

/// Running totals of the measured window, for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Successful requests.
    pub ops: AtomicU64,
    /// Failed requests.
    pub errors: AtomicU64,
}

/// The two operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// GET key.
    Get,
    /// SET key value.
    Set,
}

/// One operation's measurements.
#[derive(Clone, Debug)]
pub struct OpStats {
    /// Latencies of its successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Its failed requests.
    pub errors: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            errors: 0,
        }
    }

    /// Successful requests.
    pub fn ops(&self) -> u64 {
        self.latency_us.len()
    }

    /// Adds another's measurements.
    pub fn add(&mut self, other: &OpStats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.errors += other.errors;
    }
}

/// Failures of one kind: how many, and the first one's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCount {
    /// Failed requests (or connection attempts) of this kind.
    pub count: u64,
    /// The first one's text.
    pub example: String,
}

/// One client's (or, merged, all clients') measurements.
#[derive(Clone, Debug)]
pub struct Stats {
    /// GET.
    pub get: OpStats,
    /// SET.
    pub set: OpStats,
    /// Failures by kind: an error reply's first word (`TRYAGAIN`, `ERR`), `timeout`,
    /// `io: REASON`, `connect: REASON`.
    pub errors: BTreeMap<String, ErrorCount>,
    /// When the last measured batch completed.
    pub last_done: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            get: OpStats::new(),
            set: OpStats::new(),
            errors: BTreeMap::new(),
            last_done: None,
        }
    }
}

impl Stats {
    /// Adds another's measurements.
    pub fn add(&mut self, other: &Stats) {
        self.get.add(&other.get);
        self.set.add(&other.set);
        for (kind, e) in &other.errors {
            let mine = self.errors.entry(kind.clone()).or_insert(ErrorCount {
                count: 0,
                example: e.example.clone(),
            });
            mine.count += e.count;
        }
        self.last_done = self.last_done.max(other.last_done);
    }

    /// Every failure, of any kind (connection attempts included).
    pub fn total_errors(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    fn op(&mut self, op: Op) -> &mut OpStats {
        match op {
            Op::Get => &mut self.get,
            Op::Set => &mut self.set,
        }
    }

    fn error(&mut self, kind: String, text: impl FnOnce() -> String, n: u64) {
        self.errors
            .entry(kind)
            .or_insert_with(|| ErrorCount {
                count: 0,
                example: text(),
            })
            .count += n;
    }
}

/// The kind of an error reply: its first word, as Redis error prefixes go (`ERR`,
/// `TRYAGAIN`, `MOVED` ...).
pub fn reply_error_kind(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or("(empty error)")
        .to_owned()
}

/// Builds one batch: `n` requests over random keys, GET with probability `read_ratio`.
pub fn batch(rng: &mut Rng, plan: &Plan, buf: &mut Vec<u8>, ops: &mut Vec<Op>) {
    buf.clear();
    ops.clear();
    // Compared in millionths: exact for the ratios people type, and a whole-number draw.
    let reads_per_million = (plan.read_ratio * 1e6).round() as u64;
    let mut key = String::new();
    for _ in 0..plan.pipeline {
        key.clear();
        let _ = write!(key, "key:{:012}", rng.below(plan.keys));
        if rng.below(1_000_000) < reads_per_million {
            encode_command_into(buf, &[b"GET".as_slice(), key.as_bytes()]);
            ops.push(Op::Get);
        } else {
            encode_command_into(buf, &[b"SET".as_slice(), key.as_bytes(), &plan.value]);
            ops.push(Op::Set);
        }
    }
}

/// Writes a batch and reads its replies into `replies` (as many as came, on an error).
async fn exchange(
    conn: &mut Connection,
    buf: &[u8],
    n: usize,
    replies: &mut Vec<Reply>,
) -> Result<(), ClientError> {
    replies.clear();
    conn.send_encoded(buf).await?;
    while replies.len() < n {
        replies.push(conn.read_reply().await?);
    }
    Ok(())
}

/// One client: batches against `addr` until the plan's end or `stop`.
pub async fn client(
    addr: SocketAddr,
    plan: Arc<Plan>,
    live: Arc<Live>,
    mut rng: Rng,
    mut stop: watch::Receiver<bool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn: Option<Connection> = None;
    let (mut buf, mut ops, mut replies) = (Vec::new(), Vec::new(), Vec::new());
    while Instant::now() < plan.end && !*stop.borrow() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let started = Instant::now();
                let connect = Connection::connect_with(addr, &plan.connect);
                let failure = match tokio::time::timeout(plan.timeout, connect).await {
                    Ok(Ok(c)) => {
                        conn = Some(c);
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timeout".to_owned(),
                };
                if started >= plan.measure_from {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                    let text = || format!("connecting to {addr}: {failure}");
                    stats.error(format!("connect: {failure}"), text, 1);
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        batch(&mut rng, &plan, &mut buf, &mut ops);
        let started = Instant::now();
        let outcome = tokio::select! {
            r = tokio::time::timeout(plan.timeout, exchange(c, &buf, ops.len(), &mut replies)) => r,
            // Interrupted: the batch in flight is not counted.
            _ = stop.changed() => break,
        };
        let done = Instant::now();
        let broken = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(match e {
                ClientError::Protocol(_) => ("protocol".to_owned(), e.to_string()),
                other => (format!("io: {other}"), format!("{addr}: {other}")),
            }),
            Err(_) => Some((
                "timeout".to_owned(),
                format!(
                    "no reply from {addr} within {} ms",
                    plan.timeout.as_millis()
                ),
            )),
        };
        if broken.is_some() {
            // It may still deliver late replies, which would be taken for the next batch's.
            conn = None;
        }
        if started < plan.measure_from {
            continue;
        }
        let latency_us = (done - started).as_micros().max(1) as u64;
        let (mut ok, mut failed) = (0, 0);
        for (i, &op) in ops.iter().enumerate() {
            match replies.get(i) {
                Some(Reply::Error(text)) => {
                    stats.error(reply_error_kind(text), || text.clone(), 1);
                    stats.op(op).errors += 1;
                    failed += 1;
                }
                Some(_) => {
                    stats.op(op).latency_us.saturating_record(latency_us);
                    ok += 1;
                }
                None => {
                    let (kind, text) = broken.clone().unwrap_or_default();
                    stats.error(kind, || text, 1);
                    stats.op(op).errors += 1;
                    failed += 1;
                }
            }
        }
        stats.last_done = Some(done);
        live.ops.fetch_add(ok, Ordering::Relaxed);
        live.errors.fetch_add(failed, Ordering::Relaxed);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::parse_reply;

    fn plan(pipeline: usize, read_ratio: f64) -> Plan {
        let now = Instant::now();
        Plan {
            measure_from: now,
            end: now,
            pipeline,
            keys: 10,
            value: b"vvv".to_vec(),
            read_ratio,
            timeout: Duration::from_secs(1),
            connect: ConnectOptions::default(),
        }
    }

    /// The commands of a batch, as text.
    fn commands(buf: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((reply, used)) = parse_reply(&buf[at..]).unwrap() {
            out.push(format!("{reply:?}"));
            at += used;
        }
        out
    }

    #[test]
    fn a_batch_is_pipeline_requests_over_the_keys_in_the_ratio() {
        let (mut buf, mut ops) = (Vec::new(), Vec::new());
        let mut rng = Rng::new(3);
        batch(&mut rng, &plan(1000, 0.25), &mut buf, &mut ops);
        assert_eq!(ops.len(), 1000);
        let gets = ops.iter().filter(|&&o| o == Op::Get).count();
        assert!((200..300).contains(&gets), "{gets} GETs of 1000");
        let cmds = commands(&buf);
        assert_eq!(cmds.len(), 1000);
        assert!(cmds.iter().all(|c| c.contains("\"key:0000000000")));
        let set = cmds.iter().find(|c| c.starts_with("[\"SET\"")).unwrap();
        assert!(set.ends_with(", \"vvv\"]"), "{set}");
        // Same seed, same requests.
        let (mut again, mut ops2) = (Vec::new(), Vec::new());
        batch(&mut Rng::new(3), &plan(1000, 0.25), &mut again, &mut ops2);
        assert_eq!((&buf, &ops), (&again, &ops2));
        for (ratio, all) in [(0.0, Op::Set), (1.0, Op::Get)] {
            batch(&mut rng, &plan(100, ratio), &mut Vec::new(), &mut ops);
            assert!(ops.iter().all(|&o| o == all), "ratio {ratio}");
        }
    }

    #[test]
    fn errors_are_kinded_and_merged() {
        assert_eq!(reply_error_kind("TRYAGAIN no leader"), "TRYAGAIN");
        assert_eq!(reply_error_kind(""), "(empty error)");
        let mut a = Stats::default();
        a.error("TRYAGAIN".into(), || "TRYAGAIN first".into(), 2);
        a.get.latency_us.record(100).unwrap();
        let mut b = Stats::default();
        b.error("TRYAGAIN".into(), || "TRYAGAIN second".into(), 1);
        b.error("timeout".into(), || "no reply".into(), 4);
        b.set.latency_us.record(300).unwrap();
        b.set.errors = 5;
        a.add(&b);
        assert_eq!(a.total_errors(), 7);
        assert_eq!(a.errors["TRYAGAIN"].count, 3);
        assert_eq!(a.errors["TRYAGAIN"].example, "TRYAGAIN first");
        assert_eq!((a.get.ops(), a.set.ops(), a.set.errors), (1, 1, 5));
    }
}
