//! The receiving side: answers an offer with the verified offsets, checks every chunk and
//! every file, writes into a temporary directory and installs atomically.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::config::TransferConfig;
use crate::disk::{FileSink, prepare_receive_dir};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameReader, read_msg, read_unverified, write_frame};
use crate::manifest::{Manifest, path_in};
use crate::store::SnapshotStore;
use crate::wire::{
    PbAccept, PbChunk, PbInstalled, PbNack, PbRefused, ToReceiver, ToSender, verify_chunk,
};

/// Receives one snapshot from `reader`/`writer` (the two halves of one stream, e.g. a QUIC
/// `raft_net_quic::SnapshotStream`'s `recv` and `send`) into `store` and
/// returns its manifest once it is installed.
///
/// The receiver tells the sender how much of each file it already holds from an earlier,
/// broken transfer of the same snapshot, so the sender resumes there. Each chunk's checksum
/// is checked (a corrupted one is refused and sent again), each complete file is checked
/// against the manifest and fsynced, and the snapshot becomes visible in one atomic rename.
/// If the transfer breaks or stalls, the partial files stay for the next attempt (until
/// [`SnapshotStore::open`] runs again); if a file does not match the manifest, they are
/// deleted and the error is [`Error::Mismatch`]. A snapshot already installed is
/// acknowledged without any data. Whether the snapshot is wanted (newer than the local
/// state) is the caller's decision, after this returns.
pub async fn receive_snapshot<R, W>(
    store: &SnapshotStore,
    reader: R,
    writer: W,
    cfg: &TransferConfig,
) -> Result<Manifest>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    cfg.validate()?;
    let started = Instant::now();
    let mut conn = Conn {
        frames: FrameReader::new(reader, cfg.max_frame_bytes),
        writer,
        stall: cfg.stall_timeout,
    };
    let manifest = match conn.read().await? {
        ToReceiver::Offer(o) => o
            .manifest
            .ok_or_else(|| Error::Protocol("offer without a manifest".into()))
            .and_then(Manifest::from_pb),
        ToReceiver::Chunk(_) => Err(Error::Protocol("a chunk before the offer".into())),
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "refused an invalid snapshot offer");
            return conn.refuse(e).await;
        }
    };
    let span = tracing::info_span!(
        "snapshot_receive",
        index = %manifest.index,
        term = %manifest.term,
        files = manifest.files.len(),
        bytes = manifest.total_bytes()
    );
    let result = receive(store, &mut conn, cfg, &manifest)
        .instrument(span.clone())
        .await;
    let _enter = span.enter();
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("raft_snapshot_transfers_total", "role" => "receive", "outcome" => outcome)
        .increment(1);
    match &result {
        Ok(bytes) => tracing::info!(
            received = bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot received"
        ),
        Err(e) => {
            tracing::warn!(error = %e, retryable = e.is_retryable(), "snapshot receive failed")
        }
    }
    result.map(|_| manifest)
}

/// Receives `m` after the offer; returns the bytes received.
async fn receive<R, W>(
    store: &SnapshotStore,
    conn: &mut Conn<R, W>,
    cfg: &TransferConfig,
    m: &Manifest,
) -> Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let accept = |offsets| {
        ToSender::Accept(PbAccept {
            offsets,
            max_chunk: cfg.max_chunk() as u64,
        })
    };
    match store.already_installed(m) {
        Ok(true) => {
            tracing::info!("snapshot already installed");
            conn.send(accept(m.files.iter().map(|f| f.size).collect()))
                .await?;
            conn.send(ToSender::Installed(PbInstalled {})).await?;
            conn.close().await;
            return Ok(0);
        }
        Ok(false) => {}
        Err(e) => return conn.refuse(e).await,
    }
    let _permit = match cfg.limits.try_acquire() {
        Ok(p) => p,
        Err(e) => return conn.refuse(e).await,
    };
    let Some(guard) = store.begin_receive(m.index, m.term) else {
        let e = Error::Busy("this snapshot is being received on another stream".into());
        return conn.refuse(e).await;
    };
    let guard = Arc::new(guard);
    let dir = store.receive_dir(m.index, m.term);
    let prepared = {
        let (store, dir, m) = (store.clone(), dir.clone(), m.clone());
        blocking(move || {
            store.remove_other_partials((m.index, m.term))?;
            prepare_receive_dir(&dir, &m)
        })
        .await
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return conn.refuse(e).await,
    };
    let mut t = Transfer {
        m,
        have: prepared.iter().map(|p| p.0).collect(),
        crc: prepared.iter().map(|p| p.1).collect(),
        cursor: 0,
        epoch: 0,
        corrupt: 0,
        received: 0,
    };
    let resumed: u64 = t.have.iter().sum();
    if resumed > 0 {
        metrics::counter!("raft_snapshot_resumed_bytes_total").increment(resumed);
        tracing::info!(resumed, "resuming a partial transfer");
    }
    conn.send(accept(t.have.clone())).await?;

    let paths: Vec<PathBuf> = m.files.iter().map(|f| path_in(&dir, &f.name)).collect();
    let mut sink = FileSink::start(dir.clone(), paths, guard.clone());
    let streamed = t.stream(conn, &mut sink, cfg).await;
    let flushed = sink.finish().await;
    let done = streamed.and(flushed).map(|()| t.received);
    let result = match done {
        Ok(received) => {
            let (store, dir, m) = (store.clone(), dir.clone(), m.clone());
            blocking(move || store.publish(&dir, &m))
                .await
                .map(|()| received)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(received) => {
            // Installed: a sender that misses this answer retries and hears "installed".
            if let Err(e) = conn.send(ToSender::Installed(PbInstalled {})).await {
                tracing::debug!(error = %e, "could not confirm the install to the sender");
            }
            conn.close().await;
            drop(guard);
            Ok(received)
        }
        Err(e) => {
            if matches!(e, Error::Mismatch { .. }) {
                let (store, dir) = (store.clone(), dir.clone());
                if let Err(d) = blocking(move || store.discard(&dir)).await {
                    tracing::warn!(error = %d, "could not delete a mismatched partial snapshot");
                }
            }
            if stream_usable(&e) {
                return conn.refuse(e).await;
            }
            Err(e)
        }
    }
}

/// Whether the stream can still carry a refusal after this error.
fn stream_usable(e: &Error) -> bool {
    !matches!(
        e,
        Error::Stream(_) | Error::Closed | Error::Stalled(_) | Error::Frame(_)
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::io("snapshot disk task", PathBuf::new())(
            std::io::Error::other(e),
        ))
    })
}

/// The state of one transfer: what is verified so far.
struct Transfer<'a> {
    m: &'a Manifest,
    /// Verified bytes per file.
    have: Vec<u64>,
    /// CRC32C of those bytes.
    crc: Vec<u32>,
    /// The file the next chunk belongs to.
    cursor: usize,
    /// Chunks from earlier epochs (sent before the latest nack) are ignored.
    epoch: u64,
    corrupt: u32,
    received: u64,
}

impl Transfer<'_> {
    async fn stream<R, W>(
        &mut self,
        conn: &mut Conn<R, W>,
        sink: &mut FileSink,
        cfg: &TransferConfig,
    ) -> Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            while self.cursor < self.have.len()
                && self.have[self.cursor] == self.m.files[self.cursor].size
            {
                self.cursor += 1;
            }
            if self.cursor == self.have.len() {
                return self.check_files();
            }
            let frame = conn.read_unverified().await?;
            // Nothing in a frame is trusted (not even its epoch) before its checksum is.
            let verified = match ToReceiver::from_frame(frame.body.clone()) {
                Ok(ToReceiver::Chunk(c)) => verify_chunk(&frame, &c.data).map(|crc| (c, crc)),
                Ok(ToReceiver::Offer(_)) => match frame.verify() {
                    Ok(()) => return Err(Error::Protocol("a second offer".into())),
                    Err(e) => Err(e),
                },
                Err(e) => match frame.verify() {
                    Ok(()) => return Err(Error::Frame(e)),
                    Err(e) => Err(e),
                },
            };
            let (chunk, crc) = match verified {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "corrupted frame");
                    self.nack(conn, cfg).await?;
                    continue;
                }
            };
            if chunk.epoch != self.epoch {
                continue;
            }
            self.check_position(&chunk)?;
            if crc != chunk.crc32c {
                tracing::debug!(file = chunk.file, offset = chunk.offset, "corrupted chunk");
                self.nack(conn, cfg).await?;
                continue;
            }
            self.accept(chunk.data, crc, sink).await?;
        }
    }

    /// Every file complete: do their checksums match the manifest (empty files and files
    /// kept from an earlier attempt included)?
    fn check_files(&self) -> Result<()> {
        for (f, crc) in self.m.files.iter().zip(&self.crc) {
            if *crc != f.crc32c {
                return Err(self.m.mismatch(
                    &f.name,
                    format!(
                        "received data has crc32c {crc:#010x}, manifest says {:#010x}",
                        f.crc32c
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_position(&self, c: &PbChunk) -> Result<()> {
        let (file, offset) = (self.cursor, self.have[self.cursor]);
        if c.file as usize != file || c.offset != offset {
            return Err(Error::Protocol(format!(
                "chunk for file {} at {} while expecting file {file} at {offset}",
                c.file, c.offset
            )));
        }
        let left = self.m.files[file].size - offset;
        if c.data.is_empty() || c.data.len() as u64 > left {
            return Err(Error::Protocol(format!(
                "chunk of {} bytes with {left} bytes of file {file} left",
                c.data.len()
            )));
        }
        Ok(())
    }

    /// Takes a verified chunk at the cursor.
    async fn accept(&mut self, data: Bytes, crc: u32, sink: &mut FileSink) -> Result<()> {
        let (i, len) = (self.cursor, data.len() as u64);
        sink.write(i, self.have[i], data).await?;
        self.crc[i] = crate::crc::combine(self.crc[i], crc, len as usize);
        self.have[i] += len;
        self.received += len;
        metrics::counter!("raft_snapshot_bytes_received_total").increment(len);
        let f = &self.m.files[i];
        if self.have[i] == f.size {
            if self.crc[i] != f.crc32c {
                return Err(self.m.mismatch(
                    &f.name,
                    format!(
                        "received data has crc32c {:#010x}, manifest says {:#010x}",
                        self.crc[i], f.crc32c
                    ),
                ));
            }
            sink.sync(i).await?;
        }
        Ok(())
    }

    /// Refuses the chunk at the cursor and asks for everything from there again.
    async fn nack<R, W>(&mut self, conn: &mut Conn<R, W>, cfg: &TransferConfig) -> Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.corrupt += 1;
        metrics::counter!("raft_snapshot_chunks_rejected_total").increment(1);
        if self.corrupt > cfg.max_corrupt_chunks {
            return Err(Error::TooManyCorruptChunks(self.corrupt));
        }
        self.epoch += 1;
        let (file, offset) = (self.cursor, self.have[self.cursor]);
        tracing::info!(file, offset, epoch = self.epoch, "asking for a resend");
        conn.send(ToSender::Nack(PbNack {
            epoch: self.epoch,
            file: file as u32,
            offset,
        }))
        .await
    }
}

/// The receiver's end of the stream.
struct Conn<R, W> {
    frames: FrameReader<R>,
    writer: W,
    stall: Duration,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    async fn read(&mut self) -> Result<ToReceiver> {
        read_msg(&mut self.frames, Some(self.stall), ToReceiver::from_frame).await
    }

    async fn read_unverified(&mut self) -> Result<Frame> {
        read_unverified(&mut self.frames, self.stall).await
    }

    async fn send(&mut self, m: ToSender) -> Result<()> {
        let frame = m.into_frame(u32::MAX as usize)?;
        write_frame(&mut self.writer, &frame, self.stall).await
    }

    /// Tells the sender why this transfer fails (best effort) and returns the error.
    async fn refuse<T>(&mut self, e: Error) -> Result<T> {
        let mut detail = e.to_string();
        if detail.len() > 1024 {
            let cut = (0..=1024)
                .rev()
                .find(|&i| detail.is_char_boundary(i))
                .unwrap_or(0);
            detail.truncate(cut);
        }
        let refused = ToSender::Refused(PbRefused {
            code: e.remote_code().to_wire(),
            detail,
        });
        let _ = self.send(refused).await;
        self.close().await;
        Err(e)
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.stall, self.writer.shutdown()).await;
    }
}
