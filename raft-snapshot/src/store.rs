//! The snapshot directory of a node: installed snapshots, atomic installs, cleanup of what a
//! crash left behind.
//!
//! Layout under the root:
//!
//! ```text
//! snap-<index>-<term>/          an installed snapshot: MANIFEST + its files (zero-padded numbers)
//! .tmp-recv-<index>-<term>/     a transfer in progress (kept for resume while the process runs)
//! .tmp-local-<index>-<term>/    a staging directory from SnapshotStore::staging_dir
//! .del-<name>/                  a snapshot being deleted
//! ```
//!
//! A snapshot becomes visible only by renaming a complete, fsynced directory (files, MANIFEST
//! and directories synced first, the root synced after). Everything starting with `.` is
//! temporary and removed by [`SnapshotStore::open`]. One process owns a root at a time.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::{LogIndex, Term};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest, path_in};

const SNAP_PREFIX: &str = "snap-";
const RECV_PREFIX: &str = ".tmp-recv-";
const LOCAL_PREFIX: &str = ".tmp-local-";
const DEL_PREFIX: &str = ".del-";

type Key = (LogIndex, Term);

/// The installed snapshots of one node. Cheap to clone (clones share state).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    snapshots: Mutex<BTreeMap<Key, Manifest>>,
    receiving: Mutex<HashSet<Key>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn dir_name(prefix: &str, index: LogIndex, term: Term) -> String {
    format!("{prefix}{:020}-{:020}", index.get(), term.get())
}

fn parse_snap_name(name: &str) -> Option<Key> {
    let (i, t) = name.strip_prefix(SNAP_PREFIX)?.split_once('-')?;
    Some((LogIndex(i.parse().ok()?), Term(t.parse().ok()?)))
}

/// fsyncs a file or directory.
pub(crate) fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("fsync", path))
}

fn remove_any(path: &Path) -> Result<()> {
    let r = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

impl SnapshotStore {
    /// Opens (creating it if needed) the snapshot directory `root`: removes the temporary
    /// state a crash left behind (partial transfers, staging and half-deleted directories)
    /// and loads the manifests of the installed snapshots. A snapshot directory whose
    /// manifest cannot be read is skipped with a warning (never listed).
    pub fn open(root: impl AsRef<Path>) -> Result<SnapshotStore> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(Error::io("create directory", &root))?;
        let mut snapshots = BTreeMap::new();
        let mut removed = 0u64;
        for entry in fs::read_dir(&root).map_err(Error::io("read directory", &root))? {
            let entry = entry.map_err(Error::io("read directory", &root))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name.starts_with(DEL_PREFIX) {
                remove_any(&path)?;
                removed += 1;
                tracing::info!(path = %path.display(), "removed stale temporary snapshot state");
                continue;
            }
            let Some(key) = parse_snap_name(&name) else {
                continue;
            };
            match Manifest::read_file(&path.join(MANIFEST_FILE)) {
                Ok(m) if (m.index, m.term) == key => {
                    snapshots.insert(key, m);
                }
                Ok(m) => tracing::warn!(
                    path = %path.display(), index = %m.index, term = %m.term,
                    "skipping snapshot whose manifest names another snapshot"
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(), error = %e, "skipping snapshot with an unreadable manifest"
                ),
            }
        }
        if removed > 0 {
            sync_path(&root)?;
            metrics::counter!("raft_snapshot_stale_temp_removed_total").increment(removed);
        }
        tracing::debug!(root = %root.display(), snapshots = snapshots.len(), "snapshot store open");
        Ok(SnapshotStore {
            inner: Arc::new(Inner {
                root,
                snapshots: Mutex::new(snapshots),
                receiving: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The installed snapshots, oldest first (by index, then term).
    pub fn list(&self) -> Vec<Manifest> {
        lock(&self.inner.snapshots).values().cloned().collect()
    }

    /// The newest installed snapshot.
    pub fn latest(&self) -> Option<Manifest> {
        lock(&self.inner.snapshots).values().next_back().cloned()
    }

    /// The installed snapshot with this index and term.
    pub fn get(&self, index: LogIndex, term: Term) -> Option<Manifest> {
        lock(&self.inner.snapshots).get(&(index, term)).cloned()
    }

    /// The directory holding the files of an installed snapshot (file `name` is at
    /// `path_of(m).join(name)`).
    pub fn path_of(&self, m: &Manifest) -> PathBuf {
        self.inner.root.join(dir_name(SNAP_PREFIX, m.index, m.term))
    }

    /// An empty directory inside the root (so on the same file system) to write a new local
    /// snapshot's files into before [`SnapshotStore::install_dir`]. Removed at the next
    /// [`SnapshotStore::open`] if never installed.
    pub fn staging_dir(&self, index: LogIndex, term: Term) -> Result<PathBuf> {
        let dir = self.inner.root.join(dir_name(LOCAL_PREFIX, index, term));
        remove_any(&dir)?;
        fs::create_dir(&dir).map_err(Error::io("create directory", &dir))?;
        Ok(dir)
    }

    /// Installs the files in `dir` as the snapshot `manifest` describes: checks that `dir`
    /// holds exactly those files with those sizes and checksums (else [`Error::Mismatch`] and
    /// nothing changes), fsyncs them, writes the manifest and renames `dir` into place
    /// atomically. `dir` must be on the root's file system (see
    /// [`SnapshotStore::staging_dir`]); it is moved, not copied. Installing a snapshot that
    /// is already there with the same manifest does nothing. Blocking.
    pub fn install_dir(&self, dir: impl AsRef<Path>, manifest: &Manifest) -> Result<()> {
        let dir = dir.as_ref();
        manifest.validate()?;
        if self.already_installed(manifest)? {
            return Ok(());
        }
        manifest.verify_dir(dir)?;
        self.publish(dir, manifest)
    }

    /// Re-reads an installed snapshot's files and checks them against its manifest.
    /// Blocking.
    pub fn verify(&self, m: &Manifest) -> Result<()> {
        m.verify_dir(self.path_of(m))
    }

    /// Deletes an installed snapshot (atomically: it is unlisted first). Returns whether it
    /// existed. Blocking.
    pub fn remove(&self, index: LogIndex, term: Term) -> Result<bool> {
        let mut snapshots = lock(&self.inner.snapshots);
        if !snapshots.contains_key(&(index, term)) {
            return Ok(false);
        }
        let name = dir_name(SNAP_PREFIX, index, term);
        let (from, to) = (
            self.inner.root.join(&name),
            self.inner.root.join(format!("{DEL_PREFIX}{name}")),
        );
        fs::rename(&from, &to).map_err(Error::io("rename", &from))?;
        snapshots.remove(&(index, term));
        drop(snapshots);
        sync_path(&self.inner.root)?;
        remove_any(&to)?;
        tracing::info!(index = %index, term = %term, "snapshot removed");
        Ok(true)
    }

    /// Removes all but the newest `keep` snapshots; returns how many were removed. Blocking.
    pub fn prune(&self, keep: usize) -> Result<usize> {
        let all = self.list();
        let n = all.len().saturating_sub(keep);
        for m in &all[..n] {
            self.remove(m.index, m.term)?;
        }
        Ok(n)
    }

    /// Whether this exact snapshot is installed; [`Error::Conflict`] if another one with
    /// the same index and term is.
    pub(crate) fn already_installed(&self, m: &Manifest) -> Result<bool> {
        match self.get(m.index, m.term) {
            Some(have) if have == *m => Ok(true),
            Some(_) => Err(Error::Conflict {
                index: m.index,
                term: m.term,
            }),
            None => Ok(false),
        }
    }

    /// Marks a snapshot as being received; `None` if it already is (on another stream).
    pub(crate) fn begin_receive(&self, index: LogIndex, term: Term) -> Option<ReceiveGuard> {
        lock(&self.inner.receiving)
            .insert((index, term))
            .then(|| ReceiveGuard {
                inner: self.inner.clone(),
                key: (index, term),
            })
    }

    /// Where a transfer of this snapshot writes.
    pub(crate) fn receive_dir(&self, index: LogIndex, term: Term) -> PathBuf {
        self.inner.root.join(dir_name(RECV_PREFIX, index, term))
    }

    /// Removes partial transfers of other snapshots that nobody is receiving now (only the
    /// newest partial transfer is worth keeping). Blocking.
    pub(crate) fn remove_other_partials(&self, keep: Key) -> Result<()> {
        let receiving = lock(&self.inner.receiving);
        let root = &self.inner.root;
        for entry in fs::read_dir(root).map_err(Error::io("read directory", root))? {
            let entry = entry.map_err(Error::io("read directory", root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name
                .strip_prefix(".tmp-recv-")
                .and_then(|rest| parse_snap_name(&format!("{SNAP_PREFIX}{rest}")))
            else {
                continue;
            };
            if key != keep && !receiving.contains(&key) {
                remove_any(&entry.path())?;
                tracing::debug!(index = %key.0, term = %key.1, "removed an older partial transfer");
            }
        }
        Ok(())
    }

    /// Makes the complete snapshot in `dir` visible: fsyncs its files, writes and fsyncs
    /// the manifest, fsyncs its directories, renames it into place and fsyncs the root.
    /// Blocking.
    pub(crate) fn publish(&self, dir: &Path, m: &Manifest) -> Result<()> {
        let mut dirs = HashSet::new();
        for f in &m.files {
            let path = path_in(dir, &f.name);
            sync_path(&path)?;
            let mut parent = path.parent();
            while let Some(p) = parent.filter(|p| *p != dir) {
                dirs.insert(p.to_path_buf());
                parent = p.parent();
            }
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = m.encode_file()?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&manifest_path)
            .map_err(Error::io("create", &manifest_path))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(Error::io("write", &manifest_path))?;
        for d in &dirs {
            sync_path(d)?;
        }
        sync_path(dir)?;
        let mut snapshots = lock(&self.inner.snapshots);
        let target = self.path_of(m);
        fs::rename(dir, &target).map_err(Error::io("rename", dir))?;
        sync_path(&self.inner.root)?;
        snapshots.insert((m.index, m.term), m.clone());
        drop(snapshots);
        metrics::counter!("raft_snapshot_installed_total").increment(1);
        tracing::info!(
            index = %m.index, term = %m.term, files = m.files.len(), bytes = m.total_bytes(),
            "snapshot installed"
        );
        Ok(())
    }

    /// Deletes a directory of this store (a failed transfer). Blocking.
    pub(crate) fn discard(&self, dir: &Path) -> Result<()> {
        remove_any(dir)
    }
}

/// While alive, the snapshot is marked as being received.
#[derive(Debug)]
pub(crate) struct ReceiveGuard {
    inner: Arc<Inner>,
    key: Key,
}

impl Drop for ReceiveGuard {
    fn drop(&mut self) {
        lock(&self.inner.receiving).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = dir_name(SNAP_PREFIX, LogIndex(42), Term(7));
        assert_eq!(name, "snap-00000000000000000042-00000000000000000007");
        assert_eq!(parse_snap_name(&name), Some((LogIndex(42), Term(7))));
        assert_eq!(parse_snap_name("snap-1"), None);
        assert_eq!(parse_snap_name("snap-x-1"), None);
        assert_eq!(parse_snap_name("other"), None);
    }

    #[test]
    fn receive_guard_excludes_a_second_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let g = store.begin_receive(LogIndex(1), Term(1)).unwrap();
        assert!(store.begin_receive(LogIndex(1), Term(1)).is_none());
        assert!(store.begin_receive(LogIndex(2), Term(1)).is_some());
        drop(g);
        assert!(store.begin_receive(LogIndex(1), Term(1)).is_some());
    }
}
