//! The key-value state machine on RocksDB.
//!
//! Column family `kv` holds the data; `kv_meta` holds the applied index and term and, while
//! a snapshot is being installed, a marker. The applied index is written in
//! the same `WriteBatch` as the data it covers, so after a crash the node replays exactly the
//! entries after it.
//!
//! This is its own RocksDB instance beside the log's, not column families of the log's: the
//! log syncs every write, and writes of the state machine need no sync (the log replays
//! them), so sharing one WAL would make every log fsync also flush state-machine bytes.
//!
//! Applied writes skip RocksDB's WAL altogether: the Raft log is their write-ahead log. A
//! crash loses the memtables, and the store reopens at its last flush, with data and applied
//! index from the same moment (atomic flush of both column families); the node then replays
//! the log from there. The one moment the state machine must be durable is before the log is
//! compacted below its applied index: [`KvStore::sync`] flushes it then. Snapshot installs,
//! rare and not replayable from the log, do go through the WAL, synced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raft_core::{Entry, EntryKind, LogIndex, Term};
use rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, IngestExternalFileOptions, IteratorMode,
    MultiThreaded, Options, SstFileWriter, WriteBatch,
};

use crate::command::{Command, Outcome, SetCond};

type Db = DBWithThreadMode<MultiThreaded>;

const CF_KV: &str = "kv";
const CF_META: &str = "kv_meta";
const KEY_APPLIED: &[u8] = b"applied";
const KEY_INSTALLING: &[u8] = b"installing";
/// The one file of a snapshot (absent when the state machine is empty: RocksDB cannot write
/// an SST file without entries).
pub const SNAPSHOT_FILE: &str = "kv.sst";

/// The outcome of each applied entry that carried a command, with its index and term.
pub type Outcomes = Vec<(LogIndex, Term, Outcome)>;

/// A failure of the state machine's storage.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// RocksDB failed.
    #[error("state machine storage: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Stored metadata does not decode.
    #[error("state machine metadata is damaged: {0}")]
    Corrupt(&'static str),
}

/// What [`KvStore::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The last applied entry (0, 0 for a new store).
    pub applied: (LogIndex, Term),
    /// A snapshot install that a crash interrupted: redo it before anything else.
    pub installing: Option<(LogIndex, Term)>,
}

/// The key-value state machine. Cheap to clone; reads may run on any thread while one
/// thread applies.
#[derive(Clone)]
pub struct KvStore {
    db: Arc<Db>,
    /// The memtable size of the data's column family (see [`MEMTABLE_BYTES`]).
    memtable_bytes: usize,
}

impl KvStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<(KvStore, Recovered), KvError> {
        Self::open_with_memtable(path, MEMTABLE_BYTES)
    }

    /// Opens (or creates) the store in `path` with memtables of `memtable_bytes`.
    pub fn open_with_memtable(
        path: impl AsRef<Path>,
        memtable_bytes: usize,
    ) -> Result<(KvStore, Recovered), KvError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Without a WAL for applied writes, only a flush of both column families at one
        // point keeps the applied index in step with the data it covers.
        opts.set_atomic_flush(true);
        let cfs =
            [CF_KV, CF_META].map(|n| ColumnFamilyDescriptor::new(n, cf_options(memtable_bytes)));
        let db = Db::open_cf_descriptors(&opts, path, cfs)?;
        let kv = KvStore {
            db: Arc::new(db),
            memtable_bytes,
        };
        let applied = kv.applied()?;
        let installing = kv
            .db
            .get_cf(&kv.cf(CF_META), KEY_INSTALLING)?
            .map(|v| decode_pair(&v))
            .transpose()?;
        Ok((
            kv,
            Recovered {
                applied,
                installing,
            },
        ))
    }

    fn cf(&self, name: &str) -> Arc<rocksdb::BoundColumnFamily<'_>> {
        // Both column families are created at open and never dropped but by `install`,
        // which recreates `kv` before returning.
        self.db.cf_handle(name).expect("column family exists")
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        Ok(self
            .db
            .get_pinned_cf(&self.cf(CF_KV), key)?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    /// The last applied entry as stored.
    pub fn applied(&self) -> Result<(LogIndex, Term), KvError> {
        match self.db.get_cf(&self.cf(CF_META), KEY_APPLIED)? {
            Some(v) => decode_pair(&v),
            None => Ok((LogIndex(0), Term(0))),
        }
    }

    /// The number of keys, counted (O(n): a count kept up to date would cost every SET a
    /// read of the key it overwrites, the dearest part of applying it).
    pub fn count_keys(&self) -> Result<u64, KvError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(&self.cf(CF_KV), opts);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Calls `visit` with each key that starts with `prefix`, from the first at or after
    /// `from`, in key order, until it returns false.
    pub fn scan_keys(
        &self,
        from: &[u8],
        prefix: &[u8],
        mut visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), KvError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(&self.cf(CF_KV), opts);
        it.seek(from.max(prefix));
        while let Some(key) = it.key() {
            if !key.starts_with(prefix) || !visit(key) {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// A key just above every stored key (the last one with a zero byte appended), as the
    /// exclusive end of a range that covers them all; none if the store is empty.
    fn past_last_key(&self) -> Result<Option<Vec<u8>>, KvError> {
        let mut it = self.db.raw_iterator_cf(&self.cf(CF_KV));
        it.seek_to_last();
        let end = it.key().map(|k| [k, &[0]].concat());
        it.status()?;
        Ok(end)
    }

    /// RocksDB's estimate of the number of keys (cheap; for INFO).
    pub fn estimate_keys(&self) -> u64 {
        self.db
            .property_int_value_cf(&self.cf(CF_KV), "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Applies committed entries in one `WriteBatch` together with the new applied index.
    /// Returns the outcome of each entry that carried a command.
    ///
    /// With `may_wait` false the write fails rather than wait for RocksDB (a write stall
    /// while memtables flush or level 0 compacts): then nothing is written and the answer is
    /// `None`; the same entries may be applied again later.
    pub fn apply(&self, entries: &[Entry], may_wait: bool) -> Result<Option<Outcomes>, KvError> {
        let Some(last) = entries.last() else {
            return Ok(Some(Vec::new()));
        };
        let kv = self.cf(CF_KV);
        let mut batch = WriteBatch::default();
        let mut tx = Tx {
            store: self,
            overlay: HashMap::new(),
            flushed: false,
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            match e.kind {
                EntryKind::Normal if !e.data.is_empty() => {}
                // A membership change is the protocol's, in effect since it reached the log:
                // nothing to apply, but whoever proposed it waits for it to be applied.
                EntryKind::ConfChange => {
                    out.push((e.index, e.term, Outcome::Ok));
                    continue;
                }
                _ => continue,
            }
            let outcome = match Command::decode(&e.data) {
                Ok(cmd) => tx.run(cmd)?,
                Err(err) => {
                    // Nodes of one version decode the same bytes alike, so all answer the
                    // same; a node too old for the entry does not (README: Upgrading).
                    tracing::error!(index = %e.index, error = %err, "undecodable entry skipped");
                    Outcome::Error(format!("ERR {err}"))
                }
            };
            out.push((e.index, e.term, outcome));
        }
        // A flush deletes every key in the store; the overlay holds only the writes after it.
        if tx.flushed {
            if let Some(end) = self.past_last_key()? {
                batch.delete_range_cf(&kv, Vec::new(), end);
            }
        }
        // In key order: RocksDB's memtable insert reuses the previous insert's place in its
        // skip list, which saves most of the search when the keys come sorted.
        let mut writes: Vec<_> = tx.overlay.iter().collect();
        writes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in writes {
            match v {
                Some(v) => batch.put_cf(&kv, k, v),
                None => batch.delete_cf(&kv, k),
            }
        }
        let meta = self.cf(CF_META);
        batch.put_cf(&meta, KEY_APPLIED, encode_pair(last.index, last.term));
        let mut wo = rocksdb::WriteOptions::default();
        // The log is this write's WAL (see the module comment).
        wo.disable_wal(true);
        wo.set_no_slowdown(!may_wait);
        match self.db.write_opt(batch, &wo) {
            Ok(()) => Ok(Some(out)),
            Err(e) if !may_wait && e.kind() == rocksdb::ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// For tests: with `stop`, one level-0 file is too many (a compaction starts only at
    /// four), so RocksDB stops writes once a flush is in; without, the defaults again.
    #[cfg(test)]
    pub(crate) fn stop_writes_after_a_flush(&self, stop: bool) {
        let trigger = if stop { "1" } else { "36" };
        self.db
            .set_options_cf(
                &self.cf(CF_KV),
                &[
                    ("level0_slowdown_writes_trigger", trigger),
                    ("level0_stop_writes_trigger", trigger),
                ],
            )
            .expect("valid options");
    }

    /// Makes every applied write durable (before the log is compacted below it): flushes
    /// both column families, at one point.
    pub fn sync(&self) -> Result<(), KvError> {
        let (kv, meta) = (self.cf(CF_KV), self.cf(CF_META));
        self.db
            .flush_cfs_opt(&[&kv, &meta], &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// Writes the state at a consistent RocksDB snapshot into `dir` as one SST file and
    /// returns the applied `(index, term)` it covers. The applied index is read through the
    /// same snapshot as the data, so the two agree whatever the apply thread does meanwhile.
    /// Blocking.
    pub fn write_snapshot(&self, dir: &Path) -> Result<(LogIndex, Term, u64), KvError> {
        let snap = self.db.snapshot();
        let applied = match snap.get_cf(&self.cf(CF_META), KEY_APPLIED)? {
            Some(v) => decode_pair(&v)?,
            None => (LogIndex(0), Term(0)),
        };
        let opts = Options::default();
        let mut writer = SstFileWriter::create(&opts);
        let path = dir.join(SNAPSHOT_FILE);
        let mut n = 0u64;
        for item in snap.iterator_cf(&self.cf(CF_KV), IteratorMode::Start) {
            let (k, v) = item?;
            if n == 0 {
                writer.open(&path)?;
            }
            writer.put(k, v)?;
            n += 1;
        }
        if n > 0 {
            writer.finish()?;
        }
        Ok((applied.0, applied.1, n))
    }

    /// Replaces the whole state with the snapshot in `dir` (as [`KvStore::write_snapshot`]
    /// wrote it) covering `(index, term)`. A marker written first makes a crash midway
    /// visible at the next open ([`Recovered::installing`]), where the install is redone.
    pub fn install(&self, dir: &Path, index: LogIndex, term: Term) -> Result<(), KvError> {
        let mut mark = WriteBatch::default();
        mark.put_cf(&self.cf(CF_META), KEY_INSTALLING, encode_pair(index, term));
        self.write_synced(mark)?;
        self.db.drop_cf(CF_KV)?;
        self.db.create_cf(CF_KV, &cf_options(self.memtable_bytes))?;
        let file: PathBuf = dir.join(SNAPSHOT_FILE);
        if file.exists() {
            let mut ingest = IngestExternalFileOptions::default();
            // Copy: the snapshot directory stays intact for followers and a redo.
            ingest.set_move_files(false);
            self.db
                .ingest_external_file_cf_opts(&self.cf(CF_KV), &ingest, vec![file])?;
        }
        let meta = self.cf(CF_META);
        let mut done = WriteBatch::default();
        done.put_cf(&meta, KEY_APPLIED, encode_pair(index, term));
        done.delete_cf(&meta, KEY_INSTALLING);
        self.write_synced(done)?;
        Ok(())
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), KvError> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}

/// Options of both column families. A small memtable: each SET inserts a random key into
/// a skip list, and once the list outgrows the CPU caches every level of the search is a
/// cache miss (with RocksDB's 64 MiB default, inserting was the dearest part of applying).
fn cf_options(memtable_bytes: usize) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(memtable_bytes);
    o
}

/// The default memtable size of the data (see [`cf_options`]).
pub const MEMTABLE_BYTES: usize = 4 << 20;

/// Reads see the writes of earlier commands of the same batch.
struct Tx<'a> {
    store: &'a KvStore,
    overlay: HashMap<Bytes, Option<Bytes>>,
    /// A flush ran: keys not in the overlay are gone.
    flushed: bool,
}

impl Tx<'_> {
    fn get(&self, key: &Bytes) -> Result<Option<Bytes>, KvError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None if self.flushed => Ok(None),
            None => self.store.get(key),
        }
    }

    fn put(&mut self, key: Bytes, value: Bytes) {
        self.overlay.insert(key, Some(value));
    }

    fn run(&mut self, cmd: Command) -> Result<Outcome, KvError> {
        Ok(match cmd {
            Command::Set { key, value, cond } => {
                let refused = match cond {
                    // A plain SET does not read the key: that read would be most of its cost.
                    SetCond::Always => false,
                    SetCond::Nx => self.get(&key)?.is_some(),
                    SetCond::Xx => self.get(&key)?.is_none(),
                };
                if refused {
                    Outcome::Nil
                } else {
                    self.put(key, value);
                    Outcome::Ok
                }
            }
            Command::MSet { pairs } => {
                for (k, v) in pairs {
                    self.put(k, v);
                }
                Outcome::Ok
            }
            Command::Rename { from, to, nx } => {
                let Some(value) = self.get(&from)? else {
                    return Ok(Outcome::Error("ERR no such key".into()));
                };
                if nx && self.get(&to)?.is_some() {
                    // Also when `to` is `from`, as Redis answers.
                    return Ok(Outcome::Integer(0));
                }
                if from != to {
                    self.overlay.insert(from, None);
                    self.put(to, value);
                }
                if nx { Outcome::Integer(1) } else { Outcome::Ok }
            }
            // One entry: nothing else can fall between its commands. A command's error
            // (INCR of a non-integer) is its outcome, and the rest still run, as in Redis.
            Command::Multi(cmds) => Outcome::Multi(
                cmds.into_iter()
                    .map(|c| self.run(c))
                    .collect::<Result<_, _>>()?,
            ),
            Command::Flush => {
                // Earlier writes of this batch are gone too: the range delete covers the
                // store, and these were never written to it.
                self.overlay.clear();
                self.flushed = true;
                Outcome::Ok
            }
            Command::Del { keys } => {
                let mut n = 0;
                for k in keys {
                    if self.get(&k)?.is_some() {
                        self.overlay.insert(k, None);
                        n += 1;
                    }
                }
                Outcome::Integer(n)
            }
            Command::Append {
                key,
                value,
                max_len,
            } => {
                let old = self.get(&key)?;
                let old_len = old.as_ref().map_or(0, |b| b.len());
                let new_len = old_len as u64 + value.len() as u64;
                if max_len.is_some_and(|max| new_len > max) {
                    // Redis's text for a string grown past proto-max-bulk-len.
                    return Ok(Outcome::Error(
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
                    ));
                }
                let mut v = Vec::with_capacity(new_len as usize);
                v.extend_from_slice(old.as_deref().unwrap_or_default());
                v.extend_from_slice(&value);
                self.put(key, v.into());
                Outcome::Integer(new_len as i64)
            }
            Command::IncrBy { key, delta } => {
                let old = self.get(&key)?;
                let current = match &old {
                    None => 0,
                    Some(v) => match parse_i64(v) {
                        Some(n) => n,
                        None => {
                            return Ok(Outcome::Error(
                                "ERR value is not an integer or out of range".into(),
                            ));
                        }
                    },
                };
                match current.checked_add(delta) {
                    Some(n) => {
                        self.put(key, n.to_string().into());
                        Outcome::Integer(n)
                    }
                    None => Outcome::Error("ERR increment or decrement would overflow".into()),
                }
            }
        })
    }
}

/// Redis's rule for a string holding an integer: decimal, optional '-', no spaces, no '+',
/// no leading zeros, fits in i64.
pub fn parse_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

fn encode_pair(index: LogIndex, term: Term) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index.0.to_be_bytes());
    b[8..].copy_from_slice(&term.0.to_be_bytes());
    b
}

fn decode_pair(v: &[u8]) -> Result<(LogIndex, Term), KvError> {
    let a: [u8; 16] = v
        .try_into()
        .map_err(|_| KvError::Corrupt("index/term pair"))?;
    let (i, t) = a.split_at(8);
    // Both halves are exactly 8 bytes by construction of `a`.
    Ok((
        LogIndex(u64::from_be_bytes(i.try_into().expect("8 bytes"))),
        Term(u64::from_be_bytes(t.try_into().expect("8 bytes"))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64, cmd: Command) -> Entry {
        Entry::new(Term(1), LogIndex(i), cmd.encode())
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn set_bytes(key: Bytes, v: &str) -> Command {
        Command::Set {
            key,
            value: b(v),
            cond: SetCond::Always,
        }
    }

    fn set(k: &str, v: &str, cond: SetCond) -> Command {
        Command::Set {
            key: b(k),
            value: b(v),
            cond,
        }
    }

    #[test]
    fn commands_apply_with_redis_semantics_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, rec) = KvStore::open(dir.path()).unwrap();
        assert_eq!(rec.applied, (LogIndex(0), Term(0)));
        let out = kv
            .apply(
                &[
                    entry(1, set("a", "1", SetCond::Always)),
                    entry(2, set("a", "x", SetCond::Nx)),
                    entry(3, set("b", "x", SetCond::Xx)),
                    entry(
                        4,
                        Command::IncrBy {
                            key: b("a"),
                            delta: 41,
                        },
                    ),
                    entry(
                        5,
                        Command::Append {
                            key: b("s"),
                            value: b("hello"),
                            max_len: Some(11),
                        },
                    ),
                    entry(
                        6,
                        Command::Append {
                            key: b("s"),
                            value: b(" world"),
                            max_len: Some(11),
                        },
                    ),
                    entry(
                        7,
                        Command::Append {
                            key: b("s"),
                            value: b("!"),
                            max_len: Some(11),
                        },
                    ),
                    entry(
                        8,
                        Command::IncrBy {
                            key: b("s"),
                            delta: 1,
                        },
                    ),
                    entry(
                        9,
                        Command::Del {
                            keys: vec![b("a"), b("nope"), b("a")],
                        },
                    ),
                ],
                // Without waiting: an idle store never stalls a write.
                false,
            )
            .unwrap()
            .expect("not stalled");
        let outcomes: Vec<_> = out.into_iter().map(|o| o.2).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Ok,
                Outcome::Nil,
                Outcome::Nil,
                Outcome::Integer(42),
                Outcome::Integer(5),
                Outcome::Integer(11),
                Outcome::Error(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
                ),
                Outcome::Error("ERR value is not an integer or out of range".into()),
                Outcome::Integer(1),
            ]
        );
        assert_eq!(kv.get(b"s").unwrap(), Some(b("hello world")));
        assert_eq!(kv.get(b"a").unwrap(), None);
        assert_eq!(kv.count_keys().unwrap(), 1);
        drop(kv);
        let (kv, rec) = KvStore::open(dir.path()).unwrap();
        assert_eq!(rec.applied, (LogIndex(9), Term(1)));
        assert_eq!(kv.count_keys().unwrap(), 1);
        assert_eq!(kv.get(b"s").unwrap(), Some(b("hello world")));
    }

    /// The driver applies without waiting (see `crate::apply`): a write RocksDB would stall
    /// is not made at all, so the apply thread can make it later.
    #[test]
    fn a_write_that_would_stall_is_not_made_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path()).unwrap();
        kv.stop_writes_after_a_flush(true);
        kv.apply(&[entry(1, set("a", "1", SetCond::Always))], true)
            .unwrap();
        kv.sync().unwrap();
        let second = [entry(2, set("b", "2", SetCond::Always))];
        assert!(kv.apply(&second, false).unwrap().is_none());
        assert_eq!(kv.get(b"b").unwrap(), None);
        assert_eq!(kv.applied().unwrap().0, LogIndex(1));
        kv.stop_writes_after_a_flush(false);
        assert!(kv.apply(&second, false).unwrap().is_some());
        assert_eq!(kv.get(b"b").unwrap(), Some(b("2")));
        assert_eq!(kv.applied().unwrap().0, LogIndex(2));
    }

    /// A transaction is one entry: its commands run in order, each sees the ones before it,
    /// and a command's error is its outcome while the rest still run (as in Redis).
    #[test]
    fn a_transaction_applies_its_commands_in_order_as_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path()).unwrap();
        let tx = Command::Multi(vec![
            set("a", "1", SetCond::Always),
            Command::IncrBy {
                key: b("a"),
                delta: 1,
            },
            set("s", "text", SetCond::Always),
            Command::IncrBy {
                key: b("s"),
                delta: 1,
            },
            set("a", "x", SetCond::Nx),
            Command::Del {
                keys: vec![b("s"), b("missing")],
            },
        ]);
        let out = kv.apply(&[entry(1, tx)], true).unwrap().unwrap();
        assert_eq!(out.len(), 1, "one entry, one outcome");
        assert_eq!(
            out[0].2,
            Outcome::Multi(vec![
                Outcome::Ok,
                Outcome::Integer(2),
                Outcome::Ok,
                Outcome::Error("ERR value is not an integer or out of range".into()),
                Outcome::Nil,
                Outcome::Integer(1),
            ])
        );
        assert_eq!(kv.get(b"a").unwrap(), Some(b("2")));
        assert_eq!(kv.get(b"s").unwrap(), None);
        assert_eq!(kv.applied().unwrap().0, LogIndex(1));
    }

    /// FLUSHALL deletes every stored key and every earlier write of its own batch; writes
    /// after it in the batch stay, and so does the result after a snapshot and a reopen.
    #[test]
    fn flush_deletes_every_key_before_it_and_none_after() {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path().join("a")).unwrap();
        // An empty store flushes too.
        kv.apply(&[entry(1, Command::Flush)], true).unwrap();
        let pairs = (0..100).map(|i| (b(&format!("k{i}")), b("v"))).collect();
        // The largest key possible sorts last: the range delete's end must still cover it.
        let last = Bytes::from(vec![0xff; 300]);
        kv.apply(
            &[
                entry(2, Command::MSet { pairs }),
                entry(3, set_bytes(last.clone(), "v")),
            ],
            true,
        )
        .unwrap();
        kv.sync().unwrap(); // some keys in SST files, some written after
        let out = kv
            .apply(
                &[
                    entry(4, set("in-batch", "x", SetCond::Always)),
                    entry(5, Command::Flush),
                    entry(6, set("k1", "x", SetCond::Nx)),
                    entry(
                        7,
                        Command::IncrBy {
                            key: b("k2"),
                            delta: 1,
                        },
                    ),
                ],
                true,
            )
            .unwrap()
            .unwrap();
        let outcomes: Vec<Outcome> = out.into_iter().map(|(_, _, o)| o).collect();
        // After the flush, k1 is absent (NX sets it) and k2 counts from 0.
        assert_eq!(
            outcomes,
            [Outcome::Ok, Outcome::Ok, Outcome::Ok, Outcome::Integer(1)]
        );
        let check = |kv: &KvStore| {
            assert_eq!(kv.count_keys().unwrap(), 2);
            assert_eq!(kv.get(b"k1").unwrap(), Some(b("x")));
            assert_eq!(kv.get(b"k2").unwrap(), Some(b("1")));
            assert_eq!(kv.get(b"k7").unwrap(), None);
            assert_eq!(kv.get(&last).unwrap(), None);
            assert_eq!(kv.get(b"in-batch").unwrap(), None);
        };
        check(&kv);
        let snap = dir.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        assert_eq!(kv.write_snapshot(&snap).unwrap().2, 2);
        drop(kv);
        let (kv, _) = KvStore::open(dir.path().join("a")).unwrap();
        check(&kv);
        let (other, _) = KvStore::open(dir.path().join("b")).unwrap();
        other.install(&snap, LogIndex(7), Term(1)).unwrap();
        check(&other);
    }

    #[test]
    fn snapshot_round_trip_replaces_state() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = KvStore::open(dir.path().join("a")).unwrap();
        let pairs = (0..100).map(|i| (b(&format!("k{i}")), b("v"))).collect();
        a.apply(&[entry(1, Command::MSet { pairs })], true).unwrap();
        let snap = dir.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        assert_eq!(
            a.write_snapshot(&snap).unwrap(),
            (LogIndex(1), Term(1), 100)
        );

        let (b_, _) = KvStore::open(dir.path().join("b")).unwrap();
        b_.apply(&[entry(1, set("other", "x", SetCond::Always))], true)
            .unwrap();
        b_.install(&snap, LogIndex(1), Term(1)).unwrap();
        assert_eq!(b_.count_keys().unwrap(), 100);
        assert_eq!(b_.get(b"other").unwrap(), None);
        assert_eq!(b_.get(b"k7").unwrap(), Some(b("v")));
        drop(b_);
        let (b_, rec) = KvStore::open(dir.path().join("b")).unwrap();
        assert_eq!(rec.applied, (LogIndex(1), Term(1)));
        assert_eq!(rec.installing, None);
        assert_eq!(b_.count_keys().unwrap(), 100);

        // An empty state machine snapshots to no file and installs as empty.
        let (c, _) = KvStore::open(dir.path().join("c")).unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(c.write_snapshot(&empty).unwrap().2, 0);
        b_.install(&empty, LogIndex(5), Term(2)).unwrap();
        assert_eq!(b_.count_keys().unwrap(), 0);
        assert_eq!(b_.get(b"k7").unwrap(), None);
    }

    #[test]
    fn integers_follow_redis_rules() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-42"), Some(-42));
        for bad in [
            "",
            "-",
            "+1",
            " 1",
            "01",
            "-0",
            "1.5",
            "9223372036854775808",
        ] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad}");
        }
    }
}
