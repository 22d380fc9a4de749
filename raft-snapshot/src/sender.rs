//! The sending side: offers the manifest, streams chunks from the receiver's verified
//! offsets and goes back when the receiver refuses a corrupted chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::config::TransferConfig;
use crate::disk::ChunkSource;
use crate::error::{Error, RemoteCode, Result};
use crate::frame::{FrameReader, read_msg, write_frame, write_parts};
use crate::manifest::{Manifest, path_in};
use crate::wire::{PbAccept, PbNack, PbOffer, ToReceiver, ToSender, chunk_frame_head};

/// What a successful [`send_snapshot`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReport {
    /// File bytes sent in chunks, resends included.
    pub bytes_sent: u64,
    /// Chunks sent, resends included.
    pub chunks_sent: u64,
    /// Times the receiver refused a corrupted chunk and asked for a resend.
    pub resends: u64,
    /// Bytes the receiver already held from an earlier attempt (not sent again).
    pub resumed_bytes: u64,
    /// From the start of the call until the receiver confirmed the install.
    pub elapsed: Duration,
}

/// Sends the snapshot `manifest` describes, reading its files from `dir` (for an installed
/// snapshot, [`SnapshotStore::path_of`](crate::SnapshotStore::path_of)), over
/// `reader`/`writer` (the two halves of one stream), and returns once the receiver has
/// installed it.
///
/// After a broken transfer, call it again on a new stream: the receiver says how much of each
/// file it holds and only the rest is sent. Files must not change while they are sent; their
/// sizes are checked first ([`Error::Mismatch`]), their checksums by the receiver (which
/// then fails the install: [`Error::Remote`] with [`RemoteCode::Mismatch`]).
pub async fn send_snapshot<R, W>(
    dir: impl AsRef<Path>,
    manifest: &Manifest,
    reader: R,
    writer: W,
    cfg: &TransferConfig,
) -> Result<SendReport>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    cfg.validate()?;
    manifest.validate()?;
    let span = tracing::info_span!(
        "snapshot_send",
        index = %manifest.index,
        term = %manifest.term,
        files = manifest.files.len(),
        bytes = manifest.total_bytes()
    );
    let started = Instant::now();
    let result = async {
        let _permit = cfg.limits.try_acquire()?;
        send(dir.as_ref(), manifest, reader, writer, cfg).await
    }
    .instrument(span.clone())
    .await;
    let _enter = span.enter();
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("raft_snapshot_transfers_total", "role" => "send", "outcome" => outcome)
        .increment(1);
    match result {
        Ok(mut report) => {
            report.elapsed = started.elapsed();
            tracing::info!(
                sent = report.bytes_sent,
                resumed = report.resumed_bytes,
                resends = report.resends,
                elapsed_ms = report.elapsed.as_millis() as u64,
                "snapshot sent"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::warn!(error = %e, retryable = e.is_retryable(), "snapshot send failed");
            Err(e)
        }
    }
}

async fn send<R, W>(
    dir: &Path,
    m: &Manifest,
    reader: R,
    mut writer: W,
    cfg: &TransferConfig,
) -> Result<SendReport>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    check_sizes(dir, m).await?;
    let stall = cfg.stall_timeout;
    let mut frames = FrameReader::new(reader, cfg.max_frame_bytes);
    let offer = ToReceiver::Offer(PbOffer {
        manifest: Some(m.to_pb()),
    });
    write_frame(&mut writer, &offer.into_frame(cfg.max_frame_bytes)?, stall).await?;
    let accept = match read_msg(&mut frames, Some(stall), ToSender::from_frame).await? {
        ToSender::Accept(a) => a,
        ToSender::Refused(r) => return Err(remote(r.code, r.detail)),
        _ => return Err(Error::Protocol("expected an answer to the offer".into())),
    };
    let chunk = check_accept(&accept, m)?.min(cfg.chunk_size);
    let mut pump = Pump {
        dir: dir.into(),
        m: Arc::new(m.clone()),
        accepted: accept.offsets,
        chunk,
        epoch: 0,
        report: SendReport::default(),
    };
    pump.report.resumed_bytes = pump.accepted.iter().sum();
    if pump.report.resumed_bytes > 0 {
        tracing::info!(
            resumed = pump.report.resumed_bytes,
            "receiver holds part of the snapshot"
        );
    }
    let (nacks_tx, nacks) = mpsc::channel(64);
    {
        let streaming = pump.run(&mut writer, nacks, cfg);
        let listening = listen(&mut frames, nacks_tx);
        tokio::select! {
            biased;
            r = listening => r?,
            r = streaming => r?,
        }
    }
    let _ = tokio::time::timeout(stall, writer.shutdown()).await;
    Ok(pump.report)
}

fn remote(code: u32, detail: String) -> Error {
    Error::Remote {
        code: RemoteCode::from_wire(code),
        detail,
    }
}

/// Checks the receiver's answer; returns the largest chunk it takes.
fn check_accept(a: &PbAccept, m: &Manifest) -> Result<usize> {
    if a.offsets.len() != m.files.len() {
        return Err(Error::Protocol(format!(
            "{} offsets for {} files",
            a.offsets.len(),
            m.files.len()
        )));
    }
    if let Some((o, f)) = a.offsets.iter().zip(&m.files).find(|(o, f)| **o > f.size) {
        return Err(Error::Protocol(format!(
            "offset {o} beyond the end of {:?} ({} bytes)",
            f.name, f.size
        )));
    }
    match usize::try_from(a.max_chunk) {
        Ok(0) => Err(Error::Protocol("the receiver takes no chunk".into())),
        Ok(n) => Ok(n),
        Err(_) => Ok(usize::MAX),
    }
}

/// Refuses to start when a file's size differs from the manifest.
async fn check_sizes(dir: &Path, m: &Manifest) -> Result<()> {
    let (dir, m) = (dir.to_path_buf(), m.clone());
    let check = move || -> Result<()> {
        for f in &m.files {
            let path = path_in(&dir, &f.name);
            let size = std::fs::metadata(&path)
                .map_err(Error::io("stat", &path))?
                .len();
            if size != f.size {
                return Err(m.mismatch(&f.name, format!("size {size}, manifest says {}", f.size)));
            }
        }
        Ok(())
    };
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| Error::io("stat", PathBuf::new())(std::io::Error::other(e)))?
}

/// Reads the receiver's answers while chunks flow: resend requests go to the pump; returns
/// once the receiver confirms the install.
async fn listen<R: AsyncRead + Unpin>(
    frames: &mut FrameReader<R>,
    nacks: mpsc::Sender<PbNack>,
) -> Result<()> {
    loop {
        match read_msg(frames, None, ToSender::from_frame).await? {
            ToSender::Nack(n) => {
                if nacks.send(n).await.is_err() {
                    return std::future::pending().await;
                }
            }
            ToSender::Installed(_) => return Ok(()),
            ToSender::Refused(r) => return Err(remote(r.code, r.detail)),
            ToSender::Accept(_) => return Err(Error::Protocol("a second accept".into())),
        }
    }
}

/// Streams chunks; never returns `Ok` (the listener ends a successful transfer).
struct Pump {
    dir: Arc<Path>,
    m: Arc<Manifest>,
    /// The receiver's offsets when the transfer started.
    accepted: Vec<u64>,
    chunk: usize,
    epoch: u64,
    report: SendReport,
}

impl Pump {
    async fn run<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        mut nacks: mpsc::Receiver<PbNack>,
        cfg: &TransferConfig,
    ) -> Result<()> {
        let stall = cfg.stall_timeout;
        let mut source = self.source(self.accepted.clone());
        loop {
            while let Ok(n) = nacks.try_recv() {
                source = self.rewind(n)?;
            }
            match source.next().await {
                Some(Ok(c)) => {
                    let len = c.data.len() as u64;
                    cfg.limits.throttle(c.data.len()).await;
                    let head = chunk_frame_head(self.epoch, c.file, c.offset, c.crc, c.data.len());
                    write_parts(writer, &[&head, &c.data], stall).await?;
                    self.report.bytes_sent += len;
                    self.report.chunks_sent += 1;
                    metrics::counter!("raft_snapshot_bytes_sent_total").increment(len);
                }
                Some(Err(e)) => return Err(e),
                // All sent: wait for a resend request (or the listener's end).
                None => match tokio::time::timeout(stall, nacks.recv()).await {
                    Err(_) => return Err(Error::Stalled(stall)),
                    Ok(Some(n)) => source = self.rewind(n)?,
                    Ok(None) => return std::future::pending().await,
                },
            }
        }
    }

    fn source(&self, from: Vec<u64>) -> ChunkSource {
        ChunkSource::start(self.dir.clone(), self.m.clone(), from, self.chunk)
    }

    /// Restarts from where the receiver asks (everything after it is sent again).
    fn rewind(&mut self, n: PbNack) -> Result<ChunkSource> {
        let file = n.file as usize;
        let valid =
            n.epoch > self.epoch && self.m.files.get(file).is_some_and(|f| n.offset <= f.size);
        if !valid {
            return Err(Error::Protocol(format!(
                "resend request for file {} at {} (epoch {}, current {})",
                n.file, n.offset, n.epoch, self.epoch
            )));
        }
        self.epoch = n.epoch;
        self.report.resends += 1;
        metrics::counter!("raft_snapshot_resends_total").increment(1);
        tracing::info!(
            file,
            offset = n.offset,
            epoch = n.epoch,
            "resending from a refused chunk"
        );
        let from = (0..self.m.files.len())
            .map(|j| match j.cmp(&file) {
                std::cmp::Ordering::Less => self.m.files[j].size,
                std::cmp::Ordering::Equal => n.offset,
                std::cmp::Ordering::Greater => self.accepted[j],
            })
            .collect();
        Ok(self.source(from))
    }
}
