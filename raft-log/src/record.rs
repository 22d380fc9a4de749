//! The on-disk encoding: keys, prost-encoded values, and the CRC32C that seals each value.
//!
//! A value is `payload ‖ crc32c(key ‖ payload)` (little-endian u32). Including the key in
//! the checksum also catches a value stored under the wrong key. Every read verifies it.

use bytes::Bytes;
use prost::Message;
use raft_core::{ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, SnapshotMeta, Term};

/// Column family of the log entries, keyed by big-endian index so iteration is log order.
pub(crate) const CF_ENTRIES: &str = "raft_log";
/// Column family of the raft metadata.
pub(crate) const CF_META: &str = "raft_meta";

/// Metadata keys.
pub(crate) const KEY_FORMAT: &[u8] = b"format";
pub(crate) const KEY_HARD_STATE: &[u8] = b"hard_state";
pub(crate) const KEY_COMPACTION: &[u8] = b"compaction";
pub(crate) const KEY_CONF_STATE: &[u8] = b"conf_state";
pub(crate) const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// The format this code writes; a directory with another one is refused.
pub(crate) const FORMAT_VERSION: u32 = 1;

pub(crate) fn entry_key(index: LogIndex) -> [u8; 8] {
    index.get().to_be_bytes()
}

pub(crate) fn key_index(key: &[u8]) -> Option<LogIndex> {
    Some(LogIndex(u64::from_be_bytes(key.try_into().ok()?)))
}

/// Appends the checksum to an encoded payload.
pub(crate) fn seal(key: &[u8], payload: Vec<u8>) -> Vec<u8> {
    let mut value = payload;
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), &value);
    value.extend_from_slice(&crc.to_le_bytes());
    value
}

/// Verifies a value's checksum and returns its payload.
pub(crate) fn unseal<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8], String> {
    if value.len() < 4 {
        return Err(format!(
            "value of {} bytes is too short for its checksum",
            value.len()
        ));
    }
    let (payload, crc) = value.split_at(value.len() - 4);
    // The split leaves exactly four bytes.
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let computed = crc32c::crc32c_append(crc32c::crc32c(key), payload);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok(payload)
}

#[derive(Clone, PartialEq, Message)]
struct EntryRecord {
    #[prost(uint64, tag = "1")]
    term: u64,
    #[prost(uint64, tag = "2")]
    index: u64,
    #[prost(uint32, tag = "3")]
    kind: u32,
    #[prost(bytes = "bytes", tag = "4")]
    data: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct HardStateRecord {
    #[prost(uint64, tag = "1")]
    term: u64,
    #[prost(uint64, tag = "2")]
    vote: u64,
    #[prost(uint64, tag = "3")]
    commit: u64,
}

#[derive(Clone, PartialEq, Message)]
struct CompactionRecord {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    term: u64,
}

#[derive(Clone, PartialEq, Message)]
struct ConfStateRecord {
    #[prost(uint64, repeated, tag = "1")]
    voters: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct FormatRecord {
    #[prost(uint32, tag = "1")]
    version: u32,
}

fn kind_code(kind: EntryKind) -> Option<u32> {
    match kind {
        EntryKind::Normal => Some(0),
        EntryKind::Noop => Some(1),
        // EntryKind is non_exhaustive: a new kind needs a code here before it can be stored.
        _ => None,
    }
}

/// Encodes an entry; `None` for an entry kind this format cannot store.
pub(crate) fn encode_entry(e: &Entry) -> Option<Vec<u8>> {
    let rec = EntryRecord {
        term: e.term.get(),
        index: e.index.get(),
        kind: kind_code(e.kind)?,
        data: e.data.clone(),
    };
    Some(seal(&entry_key(e.index), rec.encode_to_vec()))
}

/// Decodes and verifies the entry stored under `key`.
pub(crate) fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry, String> {
    let payload = unseal(key, value)?;
    let rec = EntryRecord::decode(payload).map_err(|e| format!("undecodable entry: {e}"))?;
    let want =
        key_index(key).ok_or_else(|| format!("key of {} bytes is not an index", key.len()))?;
    if rec.index != want.get() {
        return Err(format!(
            "entry says index {} but is stored at {want}",
            rec.index
        ));
    }
    let kind = match rec.kind {
        0 => EntryKind::Normal,
        1 => EntryKind::Noop,
        k => return Err(format!("unknown entry kind {k}")),
    };
    let mut entry = Entry::new(Term(rec.term), want, rec.data);
    entry.kind = kind;
    Ok(entry)
}

pub(crate) fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let rec = HardStateRecord {
        term: hs.term.get(),
        vote: hs.vote.get(),
        commit: hs.commit.get(),
    };
    seal(KEY_HARD_STATE, rec.encode_to_vec())
}

pub(crate) fn decode_hard_state(value: &[u8]) -> Result<HardState, String> {
    let rec = HardStateRecord::decode(unseal(KEY_HARD_STATE, value)?)
        .map_err(|e| format!("undecodable hard state: {e}"))?;
    Ok(HardState {
        term: Term(rec.term),
        vote: NodeId(rec.vote),
        commit: LogIndex(rec.commit),
    })
}

pub(crate) fn encode_compaction(index: LogIndex, term: Term) -> Vec<u8> {
    let rec = CompactionRecord {
        index: index.get(),
        term: term.get(),
    };
    seal(KEY_COMPACTION, rec.encode_to_vec())
}

pub(crate) fn decode_compaction(value: &[u8]) -> Result<(LogIndex, Term), String> {
    let rec = CompactionRecord::decode(unseal(KEY_COMPACTION, value)?)
        .map_err(|e| format!("undecodable compaction point: {e}"))?;
    Ok((LogIndex(rec.index), Term(rec.term)))
}

pub(crate) fn encode_conf_state(cs: &ConfState) -> Vec<u8> {
    let rec = ConfStateRecord {
        voters: cs.voters.iter().map(|v| v.get()).collect(),
    };
    seal(KEY_CONF_STATE, rec.encode_to_vec())
}

pub(crate) fn decode_conf_state(value: &[u8]) -> Result<ConfState, String> {
    let rec = ConfStateRecord::decode(unseal(KEY_CONF_STATE, value)?)
        .map_err(|e| format!("undecodable configuration: {e}"))?;
    Ok(ConfState::new(rec.voters.into_iter().map(NodeId)))
}

#[derive(Clone, PartialEq, Message)]
struct SnapshotRecord {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    term: u64,
    #[prost(uint64, repeated, tag = "3")]
    voters: Vec<u64>,
}

pub(crate) fn encode_snapshot(meta: &SnapshotMeta) -> Vec<u8> {
    let rec = SnapshotRecord {
        index: meta.index.get(),
        term: meta.term.get(),
        voters: meta.conf_state.voters.iter().map(|v| v.get()).collect(),
    };
    seal(KEY_SNAPSHOT, rec.encode_to_vec())
}

pub(crate) fn decode_snapshot(value: &[u8]) -> Result<SnapshotMeta, String> {
    let rec = SnapshotRecord::decode(unseal(KEY_SNAPSHOT, value)?)
        .map_err(|e| format!("undecodable snapshot record: {e}"))?;
    Ok(SnapshotMeta {
        index: LogIndex(rec.index),
        term: Term(rec.term),
        conf_state: ConfState::new(rec.voters.into_iter().map(NodeId)),
    })
}

pub(crate) fn encode_format() -> Vec<u8> {
    let rec = FormatRecord {
        version: FORMAT_VERSION,
    };
    seal(KEY_FORMAT, rec.encode_to_vec())
}

pub(crate) fn decode_format(value: &[u8]) -> Result<u32, String> {
    let rec = FormatRecord::decode(unseal(KEY_FORMAT, value)?)
        .map_err(|e| format!("undecodable format marker: {e}"))?;
    Ok(rec.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_and_every_flipped_bit_is_caught() {
        let mut e = Entry::new(Term(7), LogIndex(42), &b"hello raft"[..]);
        e.kind = EntryKind::Normal;
        let key = entry_key(e.index);
        let value = encode_entry(&e).unwrap();
        assert_eq!(decode_entry(&key, &value).unwrap(), e);
        for byte in 0..value.len() {
            for bit in 0..8 {
                let mut bad = value.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_entry(&key, &bad).is_err(),
                    "flip of bit {bit} in byte {byte}"
                );
            }
        }
    }

    #[test]
    fn value_under_the_wrong_key_is_caught() {
        let e = Entry::new(Term(1), LogIndex(5), &b"x"[..]);
        let value = encode_entry(&e).unwrap();
        let err = decode_entry(&entry_key(LogIndex(6)), &value).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn short_and_empty_values_are_errors() {
        assert!(decode_entry(&entry_key(LogIndex(1)), &[]).is_err());
        assert!(decode_entry(&entry_key(LogIndex(1)), &[1, 2, 3]).is_err());
        assert!(decode_hard_state(&[0; 4]).is_err());
    }

    #[test]
    fn metadata_round_trips() {
        let hs = HardState {
            term: Term(3),
            vote: NodeId(2),
            commit: LogIndex(10),
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&hs)).unwrap(), hs);
        let cp = (LogIndex(9), Term(2));
        assert_eq!(
            decode_compaction(&encode_compaction(cp.0, cp.1)).unwrap(),
            cp
        );
        let cs = ConfState::new([NodeId(1), NodeId(3)]);
        assert_eq!(decode_conf_state(&encode_conf_state(&cs)).unwrap(), cs);
        assert_eq!(decode_format(&encode_format()).unwrap(), FORMAT_VERSION);
    }
}
