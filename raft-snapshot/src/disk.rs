//! File I/O off the async threads: the sender's chunk reader, the receiver's file writer and
//! the receiver's scan of a partial transfer.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest, checksum_prefix, path_in};
use crate::store::ReceiveGuard;

/// Chunks read ahead of the network (sender) or queued for the disk (receiver).
const QUEUE_DEPTH: usize = 4;

/// One chunk of file data read by the sender.
pub(crate) struct SourceChunk {
    pub file: u32,
    pub offset: u64,
    pub data: Bytes,
    pub crc: u32,
}

/// Reads a snapshot's files in manifest order, each from a start offset, in chunks, on a
/// blocking thread a few chunks ahead. Dropping it stops the thread.
pub(crate) struct ChunkSource {
    rx: mpsc::Receiver<Result<SourceChunk>>,
}

impl ChunkSource {
    pub(crate) fn start(
        dir: Arc<Path>,
        manifest: Arc<Manifest>,
        from: Vec<u64>,
        chunk: usize,
    ) -> ChunkSource {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = read_chunks(&dir, &manifest, &from, chunk, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        ChunkSource { rx }
    }

    /// The next chunk; `None` after the last one.
    pub(crate) async fn next(&mut self) -> Option<Result<SourceChunk>> {
        self.rx.recv().await
    }
}

fn read_chunks(
    dir: &Path,
    m: &Manifest,
    from: &[u64],
    chunk: usize,
    tx: &mpsc::Sender<Result<SourceChunk>>,
) -> Result<()> {
    for (i, f) in m.files.iter().enumerate() {
        let mut pos = from[i];
        if pos >= f.size {
            continue;
        }
        let path = path_in(dir, &f.name);
        let mut file = File::open(&path).map_err(Error::io("open", &path))?;
        file.seek(SeekFrom::Start(pos))
            .map_err(Error::io("seek", &path))?;
        while pos < f.size {
            let n = usize::try_from(f.size - pos).map_or(chunk, |left| left.min(chunk));
            // read_to_end fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(n);
            (&mut file)
                .take(n as u64)
                .read_to_end(&mut buf)
                .map_err(Error::io("read", &path))?;
            if buf.len() < n {
                let detail = format!("shorter than the {} bytes listed", f.size);
                return Err(m.mismatch(&f.name, detail));
            }
            let data = Bytes::from(buf);
            let crc = crc32c::crc32c(&data);
            let c = SourceChunk {
                file: i as u32,
                offset: pos,
                data,
                crc,
            };
            if tx.blocking_send(Ok(c)).is_err() {
                return Ok(());
            }
            pos += n as u64;
        }
    }
    Ok(())
}

enum SinkOp {
    Write {
        file: usize,
        offset: u64,
        data: Bytes,
    },
    Sync {
        file: usize,
    },
}

/// Writes verified chunks into the files of a partial transfer on a blocking thread, a few
/// chunks behind the network. Holds the transfer's [`ReceiveGuard`] until every queued write
/// is done, so a resumed transfer never scans files still being written.
pub(crate) struct FileSink {
    tx: Option<mpsc::Sender<SinkOp>>,
    /// `None` once its result has been taken.
    thread: Option<JoinHandle<Result<()>>>,
    dir: PathBuf,
}

impl FileSink {
    pub(crate) fn start(dir: PathBuf, paths: Vec<PathBuf>, guard: Arc<ReceiveGuard>) -> FileSink {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            let r = write_chunks(rx, &paths);
            drop(guard);
            r
        });
        FileSink {
            tx: Some(tx),
            thread: Some(thread),
            dir,
        }
    }

    pub(crate) async fn write(&mut self, file: usize, offset: u64, data: Bytes) -> Result<()> {
        self.send(SinkOp::Write { file, offset, data }).await
    }

    /// fsyncs a file once complete, in the background (so the final install has little left
    /// to sync); [`FileSink::finish`] waits for it.
    pub(crate) async fn sync(&mut self, file: usize) -> Result<()> {
        self.send(SinkOp::Sync { file }).await
    }

    async fn send(&mut self, op: SinkOp) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(op).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: it failed. Its error says why.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(()) => Err(Error::io("write", &self.dir)(std::io::Error::other(
                "the file writer stopped",
            ))),
        }
    }

    /// Waits until every queued write is on disk (in the page cache; synced files synced).
    /// After a failed write, the error has been returned there and this returns `Ok`.
    pub(crate) async fn finish(mut self) -> Result<()> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => match thread.await {
                Ok(r) => r,
                Err(e) => Err(Error::io("write", &self.dir)(std::io::Error::other(e))),
            },
        }
    }
}

/// Written but unsynced bytes of a file after which a background `fdatasync` starts, so the
/// disk works while the network does and the final fsync finds little left to do.
const SYNC_EVERY: u64 = 8 << 20;

/// The file the sink is writing.
struct OpenFile {
    index: usize,
    file: File,
    pos: u64,
    unsynced: u64,
    /// A background sync of this file, if one is running.
    syncing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl OpenFile {
    fn write(&mut self, offset: u64, data: &[u8], path: &Path) -> Result<()> {
        if self.pos != offset {
            self.file
                .seek(SeekFrom::Start(offset))
                .map_err(Error::io("seek", path))?;
        }
        self.file
            .write_all(data)
            .map_err(Error::io("write", path))?;
        self.pos = offset + data.len() as u64;
        self.unsynced += data.len() as u64;
        if self.unsynced >= SYNC_EVERY && self.syncing.as_ref().is_none_or(|h| h.is_finished()) {
            self.wait_sync(path)?;
            let clone = self.file.try_clone().map_err(Error::io("open", path))?;
            self.syncing = Some(std::thread::spawn(move || clone.sync_data()));
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Waits for the background sync, if any, and reports its failure.
    fn wait_sync(&mut self, path: &Path) -> Result<()> {
        match self.syncing.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(Error::io("fsync", path)(e)),
            Some(Err(_)) => Err(Error::io("fsync", path)(std::io::Error::other(
                "the sync thread panicked",
            ))),
        }
    }

    /// Makes the whole file durable.
    fn sync(mut self, path: &Path) -> Result<()> {
        self.wait_sync(path)?;
        self.file.sync_all().map_err(Error::io("fsync", path))
    }
}

/// Completed files being made durable in the background, at most this many at once.
const MAX_FINISHING: usize = 4;

type Finishing = std::collections::VecDeque<std::thread::JoinHandle<Result<()>>>;

fn join_finishing(h: std::thread::JoinHandle<Result<()>>, path: &Path) -> Result<()> {
    h.join().unwrap_or_else(|_| {
        Err(Error::io("fsync", path)(std::io::Error::other(
            "the sync thread panicked",
        )))
    })
}

fn write_chunks(rx: mpsc::Receiver<SinkOp>, paths: &[PathBuf]) -> Result<()> {
    let mut finishing = Finishing::new();
    let written = write_ops(rx, paths, &mut finishing);
    // Every completed file is durable before the sink reports success.
    let mut synced = Ok(());
    for h in finishing {
        let r = join_finishing(h, paths.first().map_or(Path::new(""), |p| p.as_path()));
        synced = synced.and(r);
    }
    written.and(synced)
}

fn write_ops(
    mut rx: mpsc::Receiver<SinkOp>,
    paths: &[PathBuf],
    finishing: &mut Finishing,
) -> Result<()> {
    let mut open: Option<OpenFile> = None;
    let result = (|| {
        while let Some(op) = rx.blocking_recv() {
            let index = match &op {
                SinkOp::Write { file, .. } | SinkOp::Sync { file } => *file,
            };
            let path = &paths[index];
            if open.as_ref().is_none_or(|o| o.index != index) {
                if let Some(mut prev) = open.take() {
                    prev.wait_sync(&paths[prev.index])?;
                }
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(Error::io("open", path))?;
                open = Some(OpenFile {
                    index,
                    file,
                    pos: u64::MAX,
                    unsynced: 0,
                    syncing: None,
                });
            }
            match op {
                SinkOp::Write { offset, data, .. } => {
                    if let Some(o) = open.as_mut() {
                        o.write(offset, &data, path)?;
                    }
                }
                SinkOp::Sync { .. } => {
                    if let Some(o) = open.take() {
                        if finishing.len() >= MAX_FINISHING {
                            if let Some(h) = finishing.pop_front() {
                                join_finishing(h, path)?;
                            }
                        }
                        let path = path.clone();
                        finishing.push_back(std::thread::spawn(move || o.sync(&path)));
                    }
                }
            }
        }
        Ok(())
    })();
    // Never leave a sync thread behind.
    if let Some(mut o) = open {
        let _ = o.wait_sync(&paths[o.index]);
    }
    result
}

/// Prepares `dir` to receive `m`. If it holds a partial transfer of the same manifest, keeps
/// what is there: each file's bytes count as received (a file already complete only if its
/// checksum matches, else it starts over). Otherwise starts empty. Creates every file.
/// Returns, per file, the bytes present and their CRC32C. Blocking.
pub(crate) fn prepare_receive_dir(dir: &Path, m: &Manifest) -> Result<Vec<(u64, u32)>> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let resume = dir.is_dir() && Manifest::read_file(&manifest_path).is_ok_and(|old| old == *m);
    if !resume {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(Error::io("remove", dir))?;
        }
        fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        fs::write(&manifest_path, m.encode_file()?).map_err(Error::io("write", &manifest_path))?;
    }
    let mut out = Vec::with_capacity(m.files.len());
    for f in &m.files {
        let path = path_in(dir, &f.name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let len = file.metadata().map_err(Error::io("stat", &path))?.len();
        let (mut have, mut crc) = if len <= f.size {
            checksum_prefix(&mut file, &path, len)?
        } else {
            (0, 0)
        };
        if have == f.size && crc != f.crc32c {
            (have, crc) = (0, 0);
        }
        if have != len {
            file.set_len(have).map_err(Error::io("truncate", &path))?;
        }
        out.push((have, crc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileMeta;
    use raft_core::{ConfState, LogIndex, Term};

    fn manifest(files: &[(&str, &[u8])]) -> Manifest {
        let files = files
            .iter()
            .map(|(name, data)| FileMeta {
                name: name.to_string(),
                size: data.len() as u64,
                crc32c: crc32c::crc32c(data),
            })
            .collect();
        Manifest::new(LogIndex(3), Term(1), ConfState::default(), files).unwrap()
    }

    #[test]
    fn a_partial_transfer_is_kept_only_where_it_can_be_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recv");
        let (a, b, c, d) = (
            vec![1u8; 1000],
            vec![2u8; 500],
            vec![3u8; 300],
            vec![4u8; 10],
        );
        let m = manifest(&[("a", &a), ("s/b", &b), ("c", &c), ("d", &d)]);
        // Fresh: every file exists and is empty.
        let fresh = prepare_receive_dir(&dir, &m).unwrap();
        assert_eq!(fresh, vec![(0, 0); 4]);
        assert!(dir.join("s/b").is_file());
        // a complete, b partial, c complete but damaged, d longer than listed.
        fs::write(dir.join("a"), &a).unwrap();
        fs::write(dir.join("s/b"), &b[..200]).unwrap();
        let mut bad = c.clone();
        bad[7] ^= 1;
        fs::write(dir.join("c"), &bad).unwrap();
        fs::write(dir.join("d"), [4u8; 11]).unwrap();
        let kept = prepare_receive_dir(&dir, &m).unwrap();
        assert_eq!(
            kept,
            vec![
                (1000, crc32c::crc32c(&a)),
                (200, crc32c::crc32c(&b[..200])),
                (0, 0),
                (0, 0)
            ]
        );
        assert_eq!(fs::metadata(dir.join("c")).unwrap().len(), 0);
        assert_eq!(fs::metadata(dir.join("d")).unwrap().len(), 0);
        // Another manifest: start over.
        let other = manifest(&[("a", &b)]);
        assert_eq!(prepare_receive_dir(&dir, &other).unwrap(), vec![(0, 0)]);
        assert!(!dir.join("s").exists());
    }

    #[tokio::test]
    async fn a_failing_disk_is_an_error_not_a_hang() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::SnapshotStore::open(tmp.path()).unwrap();
        let guard = Arc::new(store.begin_receive(LogIndex(1), Term(1)).unwrap());
        let paths = vec![tmp.path().join("missing/dir/file")];
        let mut sink = FileSink::start(tmp.path().to_path_buf(), paths, guard);
        let mut failed = false;
        for i in 0..20u64 {
            if sink.write(0, i, Bytes::from_static(b"x")).await.is_err() {
                failed = true;
                break;
            }
        }
        let finished = sink.finish().await;
        assert!(failed || finished.is_err());
        // The guard is released with the thread.
        assert!(store.begin_receive(LogIndex(1), Term(1)).is_some());
    }
}
