//! Shared test helpers: generated snapshots, pipes and a stream wrapper that fails, hangs or
//! flips a byte at a chosen position.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use raft_core::{ConfState, LogIndex, NodeId, Term};
use raft_snapshot::{Manifest, SnapshotStore, TransferConfig};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, ReadHalf, WriteHalf};

pub const MIB: usize = 1 << 20;

/// splitmix64.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed from `var` or the clock, printed with the command that replays it.
pub fn seed(var: &str, test: &str) -> u64 {
    let seed = std::env::var(var).map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |v| v.parse().expect(var),
    );
    println!(
        "seed {seed}; replay: {var}={seed} cargo test -p raft-snapshot --test {test} -- --nocapture"
    );
    seed
}

/// Pseudo-random bytes (fast enough for 100 MiB in a debug build).
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes files of the given sizes into `dir`.
pub fn write_files(dir: &Path, files: &[(&str, usize)], seed: u64) {
    for (i, (name, size)) in files.iter().enumerate() {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data(seed ^ ((i as u64 + 1) * 0x1234_5678), *size)).unwrap();
    }
}

pub fn conf() -> ConfState {
    ConfState::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// Creates and installs a snapshot of generated files in `store`.
pub fn make_snapshot(
    store: &SnapshotStore,
    index: u64,
    term: u64,
    files: &[(&str, usize)],
    seed: u64,
) -> Manifest {
    let dir = store.staging_dir(LogIndex(index), Term(term)).unwrap();
    write_files(&dir, files, seed);
    let m = Manifest::from_dir(&dir, LogIndex(index), Term(term), conf()).unwrap();
    store.install_dir(&dir, &m).unwrap();
    m
}

/// A multi-file layout of about `total` bytes: uneven sizes, a nested directory, an empty
/// file.
pub fn layout(total: usize) -> Vec<(&'static str, usize)> {
    vec![
        ("000011.sst", total / 2 + 12_345),
        ("sst/000012.sst", total / 4 - 777),
        ("sst/000013.sst", total / 8 + 3),
        ("OPTIONS-000007", 4_321),
        ("empty.log", 0),
        (
            "tail.sst",
            total - (total / 2 + 12_345) - (total / 4 - 777) - (total / 8 + 3) - 4_321,
        ),
    ]
}

/// Asserts that two snapshot directories hold identical files.
pub fn assert_same_files(m: &Manifest, a: &Path, b: &Path) {
    for f in &m.files {
        let (x, y) = (
            std::fs::read(a.join(&f.name)).unwrap(),
            std::fs::read(b.join(&f.name)).unwrap(),
        );
        assert_eq!(x.len(), y.len(), "{} differs in length", f.name);
        assert!(x == y, "{} differs", f.name);
    }
}

/// Lists the temporary entries (names starting with `.`) under a store root.
pub fn temp_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

pub fn cfg() -> TransferConfig {
    let mut c = TransferConfig::default();
    c.stall_timeout = Duration::from_secs(20);
    c
}

pub type Half = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

/// Two ends of an in-memory pipe, each split into halves.
pub fn pipe(capacity: usize) -> (Half, Half) {
    let (a, b) = tokio::io::duplex(capacity);
    (tokio::io::split(a), tokio::io::split(b))
}

/// Wraps a stream half; counts the bytes passing through and, at chosen byte positions,
/// fails, hangs forever, or flips a byte.
pub struct Faulty<S> {
    inner: S,
    pos: u64,
    fail_at: Option<u64>,
    hang_at: Option<u64>,
    flips: Vec<u64>,
    pub seen: Arc<AtomicU64>,
}

impl<S> Faulty<S> {
    pub fn new(inner: S) -> Faulty<S> {
        Faulty {
            inner,
            pos: 0,
            fail_at: None,
            hang_at: None,
            flips: Vec::new(),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }
    /// Fails every call once `n` bytes have passed.
    pub fn fail_at(mut self, n: u64) -> Self {
        self.fail_at = Some(n);
        self
    }
    /// Never completes a call once `n` bytes have passed.
    pub fn hang_at(mut self, n: u64) -> Self {
        self.hang_at = Some(n);
        self
    }
    /// Flips the byte at position `n` (can be given several times).
    pub fn flip_at(mut self, n: u64) -> Self {
        self.flips.push(n);
        self
    }

    /// How many bytes may pass in this call (`Err`: fail, `None`: hang).
    fn budget(&self, want: usize) -> Option<io::Result<usize>> {
        if self.fail_at.is_some_and(|f| self.pos >= f) {
            return Some(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "cut by the test",
            )));
        }
        if self.hang_at.is_some_and(|h| self.pos >= h) {
            return None;
        }
        let stop = [self.fail_at, self.hang_at].into_iter().flatten().min();
        let n = stop.map_or(want as u64, |s| (s - self.pos).min(want as u64));
        Some(Ok(n as usize))
    }

    fn flip(&mut self, buf: &mut [u8]) {
        let end = self.pos + buf.len() as u64;
        for f in &self.flips {
            if (self.pos..end).contains(f) {
                buf[(f - self.pos) as usize] ^= 0x20;
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.pos += n as u64;
        self.seen.store(self.pos, Ordering::Relaxed);
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Faulty<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = match self.budget(buf.len()) {
            None => return Poll::Pending,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            Some(Ok(n)) => n,
        };
        let mut copy = buf[..n].to_vec();
        self.flip(&mut copy);
        match Pin::new(&mut self.inner).poll_write(cx, &copy) {
            Poll::Ready(Ok(written)) => {
                self.advance(written);
                Poll::Ready(Ok(written))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Faulty<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = match self.budget(buf.remaining()) {
            None => return Poll::Pending,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            Some(Ok(n)) => n,
        };
        let mut tmp = vec![0u8; n];
        let mut tmp_buf = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut tmp_buf) {
            Poll::Ready(Ok(())) => {
                let got = tmp_buf.filled().len();
                self.flip(&mut tmp[..got]);
                buf.put_slice(&tmp[..got]);
                self.advance(got);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Bytes of snapshot files held by partial transfers under a store root.
pub fn partial_bytes(root: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&e.path())
                } else if e.file_name() == "MANIFEST" {
                    0
                } else {
                    e.metadata().unwrap().len()
                }
            })
            .sum()
    }
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-recv-"))
        .map(|e| walk(&e.path()))
        .sum()
}
