//! Opening a log directory: create a new log, or recover an existing one and check that it is
//! whole before serving it.
//!
//! A new directory gets the two column families and a format marker. An existing one must be
//! a RocksDB database with both column families and the marker of a format this version
//! reads; its metadata must decode and verify; its entries must run without a hole from just
//! after the compaction point, with terms that never go backwards and never pass the stored
//! term; the stored commit index must not be beyond the last entry. Anything else is refused
//! with an error that says what is wrong: serving a damaged log could undo committed writes.

use crate::cache::EntryCache;
use crate::error::LogError;
use crate::options::LogOptions;
use crate::record::{
    CF_ENTRIES, CF_META, FORMAT_VERSION, KEY_COMPACTION, KEY_CONF_STATE, KEY_FORMAT,
    KEY_HARD_STATE, KEY_SNAPSHOT, decode_compaction, decode_conf_state, decode_entry,
    decode_format, decode_hard_state, decode_snapshot, encode_format, key_index,
};
use crate::store::LogState;
use raft_core::{ConfState, Entry, HardState, LogIndex, Term};
use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, FlushOptions, Options,
    WriteOptions,
};
use std::path::Path;

fn db_options(opts: &LogOptions, create: bool) -> Options {
    let mut o = Options::default();
    o.create_if_missing(create);
    o.create_missing_column_families(create);
    o.set_paranoid_checks(true);
    // Replay the WAL up to the first damaged record: with synced writes that can only be the
    // one write in flight at the crash, which was never reported durable.
    o.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // ...and notice a WAL that went missing or short (e.g. on a separate `wal_dir`) instead of
    // silently rolling back acknowledged writes.
    o.set_track_and_verify_wals_in_manifest(true);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(4);
    if let Some(dir) = &opts.wal_dir {
        o.set_wal_dir(dir);
    }
    if opts.recycle_wal {
        // See `LogOptions::recycle_wal`. RocksDB 10 recycles WAL files safely with
        // point-in-time recovery (facebook/rocksdb#12403; the contrary comment in its
        // SanitizeOptions is outdated, rocksdb#13819).
        o.set_recycle_log_file_num(2);
        // A flush of the entries then flushes the metadata too, so no column family pins
        // an old WAL file and keeps it from being recycled.
        o.set_atomic_flush(true);
    }
    o
}

/// RocksDB recycles only WAL files retired by this process, so right after an open every
/// durable append would extend a new file. Fill and retire two WAL files now, each about one
/// memtable long: from then on, appends overwrite blocks that are already written. The filler
/// is one key in the default column family (which the log does not use), overwritten and
/// then deleted, so the flushes write only its tombstone.
fn prime_wal(db: &DB, opts: &LogOptions) -> Result<(), LogError> {
    const KEY: &[u8] = b"wal-prime";
    let started = std::time::Instant::now();
    let chunk = vec![0u8; 1 << 20];
    let chunks = (opts.write_buffer_bytes >> 20).max(1);
    let cfs = [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, CF_ENTRIES, CF_META]
        .map(|n| db.cf_handle(n).expect("the log's column families are open"));
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    for _ in 0..2 {
        for _ in 0..chunks {
            db.put(KEY, &chunk)?;
        }
        // Synced, so the whole file is on disk before it is reused.
        db.delete_opt(KEY, &synced)?;
        // All column families: one holding data in the old file would keep it alive.
        db.flush_cfs_opt(&cfs, &FlushOptions::default())?;
    }
    tracing::debug!(
        bytes = 2 * chunks * chunk.len(),
        ms = started.elapsed().as_millis() as u64,
        "raft log WAL files primed for recycling"
    );
    Ok(())
}

fn cf_options(opts: &LogOptions) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(opts.write_buffer_bytes);
    o.set_compression_type(DBCompressionType::Lz4);
    o
}

pub(crate) fn open(path: &Path, opts: &LogOptions) -> Result<(DB, LogState), LogError> {
    if !opts.sync {
        tracing::warn!(
            path = %path.display(),
            "raft log opened with sync OFF: writes reported durable can be lost in a crash, \
             which breaks Raft's safety; use this only for benchmarks and tests"
        );
    }
    let not_a_log = |detail: String| LogError::NotALog {
        path: path.to_path_buf(),
        detail,
    };
    let exists = path.join("CURRENT").exists();
    if !exists && path.is_dir() {
        // Empty, or only what RocksDB writes before `CURRENT` (a crash while creating the
        // log): a new log. Anything else is someone's data.
        let names = std::fs::read_dir(path)
            .map_err(|e| not_a_log(format!("cannot list it: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()));
        let names: Vec<String> = names.collect();
        if let Some(other) = names.iter().find(|n| !is_rocksdb_startup_file(n)) {
            return Err(not_a_log(format!(
                "it holds no RocksDB database but other files (`{other}`)"
            )));
        }
        // A WAL left by the interrupted create holds nothing anyone was told is durable (the
        // log is usable only once `CURRENT` exists), and RocksDB refuses to create over it.
        for name in names.iter().filter(|n| n.ends_with(".log")) {
            tracing::warn!(path = %path.display(), file = %name, "removing the WAL of an interrupted log creation");
            std::fs::remove_file(path.join(name))
                .map_err(|e| not_a_log(format!("cannot remove the stale `{name}`: {e}")))?;
        }
    }
    if exists {
        let cfs = DB::list_cf(&Options::default(), path)?;
        for want in [CF_ENTRIES, CF_META] {
            if !cfs.iter().any(|c| c == want) {
                return Err(not_a_log(format!(
                    "a RocksDB database without the `{want}` column family (found: {})",
                    cfs.join(", ")
                )));
            }
        }
    }
    let descriptors =
        [CF_ENTRIES, CF_META].map(|n| ColumnFamilyDescriptor::new(n, cf_options(opts)));
    let db = DB::open_cf_descriptors(&db_options(opts, !exists), path, descriptors)?;
    let state = load(&db, opts).map_err(|e| match e {
        Loaded::NotALog(d) => not_a_log(d),
        Loaded::Err(e) => e,
    })?;
    if opts.recycle_wal {
        prime_wal(&db, opts)?;
    }
    match state {
        Some(state) => Ok((db, state)),
        None => {
            // New (or created but never marked, if a crash came in between): mark it.
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            let meta = db.cf_handle(CF_META).expect("created above");
            db.put_cf_opt(meta, KEY_FORMAT, encode_format(), &wo)?;
            tracing::info!(path = %path.display(), "created a new raft log");
            Ok((db, fresh_state(opts)))
        }
    }
}

fn is_rocksdb_startup_file(name: &str) -> bool {
    ["LOCK", "IDENTITY", "LOG"].contains(&name)
        || ["LOG.old.", "MANIFEST-", "OPTIONS-"]
            .iter()
            .any(|p| name.starts_with(p))
        || name.ends_with(".dbtmp")
        || name.ends_with(".log")
}

fn fresh_state(opts: &LogOptions) -> LogState {
    LogState {
        compacted: (LogIndex(0), Term(0)),
        last: LogIndex(0),
        last_term: Term(0),
        hard_state: HardState::default(),
        conf_state: ConfState::default(),
        snapshot: None,
        cache: EntryCache::new(opts.cache_bytes),
        hard_state_stored: false,
        failed: None,
    }
}

enum Loaded {
    NotALog(String),
    Err(LogError),
}

impl From<LogError> for Loaded {
    fn from(e: LogError) -> Self {
        Loaded::Err(e)
    }
}

impl From<rocksdb::Error> for Loaded {
    fn from(e: rocksdb::Error) -> Self {
        Loaded::Err(e.into())
    }
}

fn meta_err(key: &'static str) -> impl Fn(String) -> Loaded {
    move |detail| Loaded::Err(LogError::CorruptMetadata { key, detail })
}

/// Reads and checks an existing log; `None` for one that holds nothing yet.
fn load(db: &DB, opts: &LogOptions) -> Result<Option<LogState>, Loaded> {
    let meta = db.cf_handle(CF_META).expect("opened with it");
    let entries_cf = db.cf_handle(CF_ENTRIES).expect("opened with it");
    let get = |key: &[u8]| db.get_pinned_cf(meta, key);

    let format = get(KEY_FORMAT)?;
    let hard = get(KEY_HARD_STATE)?;
    let compaction = get(KEY_COMPACTION)?;
    let conf = get(KEY_CONF_STATE)?;
    let snap = get(KEY_SNAPSHOT)?;
    let mut it = db.raw_iterator_cf(entries_cf);
    it.seek_to_first();
    let has_entries = it.valid();
    it.status()?;
    let Some(format) = format else {
        if hard.is_none()
            && compaction.is_none()
            && conf.is_none()
            && snap.is_none()
            && !has_entries
        {
            return Ok(None);
        }
        return Err(Loaded::NotALog(
            "it has data but no raft-log format marker".into(),
        ));
    };
    let version = decode_format(&format).map_err(meta_err("format"))?;
    if version != FORMAT_VERSION {
        return Err(Loaded::NotALog(format!(
            "format version {version}; this build reads version {FORMAT_VERSION}"
        )));
    }
    let hard_state = match &hard {
        Some(v) => Some(decode_hard_state(v).map_err(meta_err("hard_state"))?),
        None => None,
    };
    let compacted = match &compaction {
        Some(v) => decode_compaction(v).map_err(meta_err("compaction"))?,
        None => (LogIndex(0), Term(0)),
    };
    let conf_state = match &conf {
        Some(v) => decode_conf_state(v).map_err(meta_err("conf_state"))?,
        None => ConfState::default(),
    };

    let snapshot = match &snap {
        Some(v) => Some(decode_snapshot(v).map_err(meta_err("snapshot"))?),
        None => None,
    };
    if let Some(s) = &snapshot {
        if s.index < compacted.0 {
            return Err(LogError::Inconsistent(format!(
                "the newest snapshot ({}) is older than the compaction point ({})",
                s.index, compacted.0
            ))
            .into());
        }
    }
    let mut state = fresh_state(opts);
    state.snapshot = snapshot;
    state.compacted = compacted;
    state.hard_state = hard_state.unwrap_or_default();
    state.hard_state_stored = hard_state.is_some();
    state.conf_state = conf_state;
    let (last, last_term) = if opts.verify_on_open {
        scan_all(db, compacted, &mut state.cache)?
    } else {
        scan_tail(db, compacted, &mut state.cache)?
    };
    state.last = last;
    state.last_term = last_term;
    if let Some(hs) = hard_state {
        if hs.commit > state.last {
            return Err(LogError::Inconsistent(format!(
                "the commit index {} is beyond the last entry {}: committed entries are missing",
                hs.commit, state.last
            ))
            .into());
        }
        if last_term > hs.term {
            return Err(LogError::Inconsistent(format!(
                "the last entry has term {last_term}, newer than the stored current term {}",
                hs.term
            ))
            .into());
        }
    }
    tracing::info!(
        first = compacted.0.get() + 1,
        last = state.last.get(),
        term = state.hard_state.term.get(),
        commit = state.hard_state.commit.get(),
        "recovered raft log"
    );
    Ok(Some(state))
}

fn corrupt(index: LogIndex) -> impl Fn(String) -> LogError {
    move |detail| LogError::Corruption { index, detail }
}

/// Reads every entry: each must verify, follow the previous one without a hole and not go
/// back in term. Fills the cache with the tail. Returns the last index and term.
fn scan_all(
    db: &DB,
    compacted: (LogIndex, Term),
    cache: &mut EntryCache,
) -> Result<(LogIndex, Term), LogError> {
    let cf = db.cf_handle(CF_ENTRIES).expect("opened with it");
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_first();
    let mut prev = (compacted.0, compacted.1);
    let mut chunk: Vec<Entry> = Vec::new();
    while let (Some(key), Some(value)) = (it.key(), it.value()) {
        let entry = check_next(key, value, prev)?;
        prev = (entry.index, entry.term);
        chunk.push(entry);
        if chunk.len() == 4096 {
            cache.append(&chunk);
            chunk.clear();
        }
        it.next();
    }
    it.status()
        .map_err(|e| LogError::rocks_at(prev.0.next(), e))?;
    cache.append(&chunk);
    Ok(prev)
}

/// Checks the first entry, then reads back from the last one while the cache has room (at
/// least the last entry), verifying what it reads. Returns the last index and term.
fn scan_tail(
    db: &DB,
    compacted: (LogIndex, Term),
    cache: &mut EntryCache,
) -> Result<(LogIndex, Term), LogError> {
    let cf = db.cf_handle(CF_ENTRIES).expect("opened with it");
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_first();
    let (Some(key), Some(value)) = (it.key(), it.value()) else {
        it.status()
            .map_err(|e| LogError::rocks_at(compacted.0.next(), e))?;
        return Ok(compacted);
    };
    check_next(key, value, compacted)?;
    it.seek_to_last();
    let mut tail = Vec::new();
    let mut bytes = 0;
    while let (Some(key), Some(value)) = (it.key(), it.value()) {
        let index = key_index(key).ok_or_else(|| bad_key(key))?;
        let entry = decode_entry(key, value).map_err(corrupt(index))?;
        if let Some(later) = tail.last() {
            let later: &Entry = later;
            if later.index != entry.index.next() || later.term < entry.term {
                return Err(LogError::Inconsistent(format!(
                    "entry {} (term {}) does not precede entry {} (term {})",
                    entry.index, entry.term, later.index, later.term
                )));
            }
        }
        bytes += entry.size();
        tail.push(entry);
        if bytes > cache.capacity() {
            break;
        }
        it.prev();
    }
    it.status()
        .map_err(|e| LogError::rocks_at(last_seen(&tail, compacted), e))?;
    tail.reverse();
    let last = tail.last().map_or(compacted, |e| (e.index, e.term));
    cache.append(&tail);
    Ok(last)
}

fn last_seen(tail: &[Entry], compacted: (LogIndex, Term)) -> LogIndex {
    tail.last().map_or(compacted.0, |e| e.index)
}

fn bad_key(key: &[u8]) -> LogError {
    LogError::Inconsistent(format!(
        "a key of {} bytes in the log column family",
        key.len()
    ))
}

/// Verifies the entry stored under `key` and that it directly follows `prev` (index, term).
fn check_next(key: &[u8], value: &[u8], prev: (LogIndex, Term)) -> Result<Entry, LogError> {
    let index = key_index(key).ok_or_else(|| bad_key(key))?;
    let want = prev.0.next();
    if index < want {
        return Err(LogError::Inconsistent(format!(
            "entry {index} is still stored though the log is compacted up to {}",
            prev.0
        )));
    }
    if index > want {
        return Err(LogError::Inconsistent(format!(
            "entries {want}..{index} are missing: the log has a hole"
        )));
    }
    let entry = decode_entry(key, value).map_err(corrupt(index))?;
    if entry.term < prev.1 {
        return Err(LogError::Inconsistent(format!(
            "entry {index} has term {}, older than the term {} before it",
            entry.term, prev.1
        )));
    }
    Ok(entry)
}
