//! Walking the keyspace: `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` a page at
//! a time, and `KEYS pattern` in one go.
//!
//! Keys are stored in order, so a page resumes just after the last key the previous page
//! examined. Clients parse cursors as integers, so the cursor a client gets is a number
//! naming that key in a table of this node: valid on the node that issued it, for
//! [`CURSOR_TTL`], among its [`MAX_CURSORS`] most recent. As in Redis, a key present for the
//! whole iteration is returned (here exactly once), and one added or removed meanwhile may
//! or may not be.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::glob::Glob;
use crate::kv::KvStore;
use crate::resp::Reply;

/// How long an issued cursor stays valid.
const CURSOR_TTL: Duration = Duration::from_secs(600);
/// The most cursors a node remembers; the oldest go first.
const MAX_CURSORS: usize = 10_000;
/// The most keys one page examines, whatever COUNT asks.
const MAX_COUNT: usize = 100_000;
/// The page is cut once its keys come to this many bytes.
const MAX_PAGE_BYTES: usize = 16 << 20;
/// Redis's default COUNT.
const DEFAULT_COUNT: usize = 10;

/// The cursors this node has issued.
#[derive(Default)]
pub(crate) struct Cursors(Mutex<Table>);

#[derive(Default)]
struct Table {
    /// The last cursor issued (cursor 0 means "from the start": never issued).
    last: u64,
    /// Cursor → the last key its page examined, and when it was issued.
    open: HashMap<u64, (Bytes, Instant)>,
    /// Cursors in the order issued, for eviction.
    order: VecDeque<u64>,
}

impl Cursors {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Each change of the table leaves it whole: a poisoned lock is still good to use.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the page of `cursor` starts: after this key, or at the first key (cursor 0).
    /// None for a cursor this node did not issue, or has forgotten.
    fn resume(&self, cursor: u64) -> Option<Option<Bytes>> {
        if cursor == 0 {
            return Some(None);
        }
        let table = self.table();
        match table.open.get(&cursor) {
            Some((key, issued)) if issued.elapsed() < CURSOR_TTL => Some(Some(key.clone())),
            _ => None,
        }
    }

    /// A new cursor for a page that resumes after `key`.
    fn issue(&self, key: Bytes) -> u64 {
        let mut table = self.table();
        while table.order.len() >= MAX_CURSORS {
            if let Some(old) = table.order.pop_front() {
                table.open.remove(&old);
            }
        }
        table.last += 1;
        let id = table.last;
        table.open.insert(id, (key, Instant::now()));
        table.order.push_back(id);
        id
    }
}

/// A parsed SCAN.
pub(crate) struct Scan {
    cursor: u64,
    pattern: Option<Glob>,
    count: usize,
    /// False for `TYPE` of another type than string: the page examines keys but returns none.
    strings: bool,
}

/// Parses the arguments after `SCAN`, with Redis's error texts.
pub(crate) fn parse(args: &[Bytes]) -> Result<Scan, Reply> {
    let cursor = std::str::from_utf8(&args[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut scan = Scan {
        cursor,
        pattern: None,
        count: DEFAULT_COUNT,
        strings: true,
    };
    let mut opts = args[1..].iter();
    while let Some(opt) = opts.next() {
        let Some(value) = opts.next() else {
            return Err(Reply::err("syntax error"));
        };
        match opt.to_ascii_lowercase().as_slice() {
            b"match" => scan.pattern = Some(Glob::new(value)),
            b"count" => {
                scan.count = match crate::kv::parse_i64(value) {
                    Some(n) if n >= 1 => (n as usize).min(MAX_COUNT),
                    Some(_) => return Err(Reply::err("syntax error")),
                    None => return Err(Reply::err("value is not an integer or out of range")),
                }
            }
            b"type" => {
                scan.strings = match value.to_ascii_lowercase().as_slice() {
                    b"string" => true,
                    b"list" | b"set" | b"zset" | b"hash" | b"stream" => false,
                    _ => {
                        return Err(Reply::err(format!(
                            "unknown type name '{}'",
                            String::from_utf8_lossy(value)
                        )));
                    }
                }
            }
            _ => return Err(Reply::err("syntax error")),
        }
    }
    Ok(scan)
}

/// Serves one page: `[next cursor, [keys]]`, the next cursor 0 once the keys are done.
pub(crate) fn page(kv: &KvStore, cursors: &Cursors, scan: Scan) -> Result<Reply, Reply> {
    let Some(after) = cursors.resume(scan.cursor) else {
        return Err(Reply::err(
            "invalid cursor: not issued by this node, or expired; start again from 0",
        ));
    };
    // The smallest key after `after` is `after` with a zero byte appended.
    let from = after.map(|k| [&k[..], &[0]].concat()).unwrap_or_default();
    let walk = walk(
        kv,
        scan.pattern.as_ref(),
        &from,
        scan.strings,
        scan.count,
        MAX_PAGE_BYTES,
    )?;
    // A page that stopped early may have more after it; one that ran out reached the end.
    let next = walk.stopped_at.map_or(0, |k| cursors.issue(Bytes::from(k)));
    Ok(Reply::Array(vec![
        Reply::Bulk(next.to_string().into()),
        Reply::Array(walk.keys),
    ]))
}

/// `KEYS pattern`: the matching keys in key order. A reply past `max_bytes` is refused
/// rather than built (Redis would build it; a narrower pattern or `DBSIZE` does instead).
pub(crate) fn keys(kv: &KvStore, pattern: &[u8], max_bytes: usize) -> Result<Reply, Reply> {
    let walk = walk(
        kv,
        Some(&Glob::new(pattern)),
        b"",
        true,
        usize::MAX,
        max_bytes,
    )?;
    if walk.stopped_at.is_some() {
        return Err(Reply::err(format!(
            "reply too large (over {max_bytes} bytes): use a narrower pattern"
        )));
    }
    Ok(Reply::Array(walk.keys))
}

/// What [`walk`] found.
struct Walk {
    keys: Vec<Reply>,
    /// The last key examined, if the walk stopped before the keys ran out.
    stopped_at: Option<Vec<u8>>,
}

/// About what a key costs in a reply besides its bytes (the bulk header).
const KEY_REPLY_OVERHEAD: usize = 16;

/// Walks the keys from `from` on that `pattern` may match (only those under its literal
/// prefix are read), keeping the matches when `keep`, until `count` keys were examined or
/// the kept ones come to more than `max_bytes` of reply.
fn walk(
    kv: &KvStore,
    pattern: Option<&Glob>,
    from: &[u8],
    keep: bool,
    count: usize,
    max_bytes: usize,
) -> Result<Walk, Reply> {
    let prefix = pattern.map(Glob::literal_prefix).unwrap_or_default();
    let (mut examined, mut bytes) = (0, 0);
    let mut walk = Walk {
        keys: Vec::new(),
        stopped_at: None,
    };
    kv.scan_keys(from, &prefix, |k| {
        examined += 1;
        if keep && pattern.is_none_or(|g| g.matches(k)) {
            bytes += k.len() + KEY_REPLY_OVERHEAD;
            walk.keys.push(Reply::Bulk(Bytes::copy_from_slice(k)));
        }
        let go_on = examined < count && bytes <= max_bytes;
        if !go_on {
            walk.stopped_at = Some(k.to_vec());
        }
        go_on
    })
    .map_err(crate::commands::storage_error)?;
    Ok(walk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::commands::tests::args;

    fn store(keys: &[String]) -> (tempfile::TempDir, KvStore) {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path()).unwrap();
        let pairs = keys
            .iter()
            .map(|k| (Bytes::from(k.clone()), Bytes::from("v")))
            .collect();
        let entry = raft_core::Entry::new(
            raft_core::Term(1),
            raft_core::LogIndex(1),
            Command::MSet { pairs }.encode(),
        );
        kv.apply(&[entry], true).unwrap();
        (dir, kv)
    }

    /// Runs SCAN from 0 until the cursor comes back 0; returns every key and the pages.
    fn full_scan(kv: &KvStore, cursors: &Cursors, opts: &[&str]) -> (Vec<String>, usize) {
        let (mut cursor, mut keys, mut pages) = ("0".to_string(), Vec::new(), 0);
        loop {
            let mut a = vec![cursor.as_str()];
            a.extend_from_slice(opts);
            let reply = page(kv, cursors, parse(&args(&a)).unwrap()).unwrap();
            let Reply::Array(parts) = reply else {
                panic!("an array")
            };
            let [Reply::Bulk(next), Reply::Array(found)] = &parts[..] else {
                panic!("cursor and keys: {parts:?}")
            };
            pages += 1;
            keys.extend(found.iter().map(|k| match k {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("a key: {other:?}"),
            }));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                return (keys, pages);
            }
        }
    }

    #[test]
    fn pages_cover_every_key_once_with_match_count_and_type() {
        let names: Vec<String> = (0..25)
            .map(|i| format!("user:{i:02}"))
            .chain(["a".into(), "z".into()])
            .collect();
        let (_dir, kv) = store(&names);
        let cursors = Cursors::default();
        let (keys, pages) = full_scan(&kv, &cursors, &[]);
        let mut want = names.clone();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(pages, 3, "27 keys, 10 a page");
        let (keys, _) = full_scan(&kv, &cursors, &["MATCH", "user:1*", "COUNT", "3"]);
        assert_eq!(
            keys,
            (10..20).map(|i| format!("user:{i}")).collect::<Vec<_>>()
        );
        let (keys, _) = full_scan(&kv, &cursors, &["COUNT", "1000", "TYPE", "string"]);
        assert_eq!(keys.len(), 27);
        let (keys, _) = full_scan(&kv, &cursors, &["TYPE", "hash"]);
        assert!(keys.is_empty());
    }

    #[test]
    fn keys_match_in_key_order_and_a_reply_too_large_is_refused() {
        let names = ["a", "user:1", "user:2", "user:10", "userx", "z"].map(String::from);
        let (_dir, kv) = store(&names);
        let bulk = |ks: &[&str]| {
            Reply::Array(
                ks.iter()
                    .map(|k| Reply::Bulk(Bytes::from(k.to_string())))
                    .collect(),
            )
        };
        assert_eq!(
            keys(&kv, b"user:*", 1 << 20),
            Ok(bulk(&["user:1", "user:10", "user:2"]))
        );
        assert_eq!(keys(&kv, b"*1*", 1 << 20), Ok(bulk(&["user:1", "user:10"])));
        assert_eq!(keys(&kv, b"nothing*", 1 << 20), Ok(bulk(&[])));
        // Six keys of about 20 bytes each as replies: over 100 bytes, refused.
        let Err(Reply::Error(e)) = keys(&kv, b"*", 100) else {
            panic!("a reply over the limit is refused")
        };
        assert!(e.contains("reply too large"), "{e}");
    }

    #[test]
    fn bad_arguments_and_unknown_cursors_are_refused() {
        let (_dir, kv) = store(&["k".into()]);
        let cursors = Cursors::default();
        let err = |v: &[&str]| match parse(&args(v)) {
            Err(Reply::Error(e)) => e,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{v:?} parsed"),
        };
        assert_eq!(err(&["x"]), "ERR invalid cursor");
        assert_eq!(err(&["0", "COUNT", "0"]), "ERR syntax error");
        assert_eq!(err(&["0", "COUNT"]), "ERR syntax error");
        assert_eq!(err(&["0", "BOGUS", "1"]), "ERR syntax error");
        assert_eq!(
            err(&["0", "COUNT", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err(&["0", "TYPE", "nope"]), "ERR unknown type name 'nope'");
        let Err(Reply::Error(e)) = page(&kv, &cursors, parse(&args(&["77"])).unwrap()) else {
            panic!("an unknown cursor is refused")
        };
        assert!(e.starts_with("ERR invalid cursor"), "{e}");
    }

    #[test]
    fn the_oldest_cursors_are_forgotten_first() {
        let cursors = Cursors::default();
        let first = cursors.issue(Bytes::from("a"));
        for _ in 0..MAX_CURSORS {
            cursors.issue(Bytes::from("b"));
        }
        assert!(cursors.resume(first).is_none());
        assert_eq!(
            cursors.resume(first + MAX_CURSORS as u64),
            Some(Some(Bytes::from("b")))
        );
        assert_eq!(cursors.resume(0), Some(None));
    }
}
