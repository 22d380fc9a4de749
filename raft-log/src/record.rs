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

/// A configuration. Fields 2-5 arrived with membership changes; a record written before
/// them decodes as a plain configuration of its voters.
#[derive(Clone, PartialEq, Message)]
struct ConfStateRecord {
    #[prost(uint64, repeated, tag = "1")]
    voters: Vec<u64>,
    #[prost(uint64, repeated, tag = "2")]
    voters_outgoing: Vec<u64>,
    #[prost(uint64, repeated, tag = "3")]
    learners: Vec<u64>,
    #[prost(uint64, repeated, tag = "4")]
    learners_next: Vec<u64>,
    #[prost(bool, tag = "5")]
    auto_leave: bool,
}

impl ConfStateRecord {
    fn new(cs: &ConfState) -> Self {
        let raw = |ids: &[NodeId]| ids.iter().map(|v| v.get()).collect();
        ConfStateRecord {
            voters: raw(&cs.voters),
            voters_outgoing: raw(&cs.voters_outgoing),
            learners: raw(&cs.learners),
            learners_next: raw(&cs.learners_next),
            auto_leave: cs.auto_leave,
        }
    }

    fn into_conf_state(self) -> Result<ConfState, String> {
        let ids = |raw: Vec<u64>| ConfState::new(raw.into_iter().map(NodeId)).voters;
        let mut cs = ConfState::new(self.voters.into_iter().map(NodeId));
        cs.voters_outgoing = ids(self.voters_outgoing);
        cs.learners = ids(self.learners);
        cs.learners_next = ids(self.learners_next);
        cs.auto_leave = self.auto_leave;
        cs.check()
            .map_err(|e| format!("inconsistent configuration: {e}"))?;
        Ok(cs)
    }
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
        EntryKind::ConfChange => Some(2),
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
        2 => EntryKind::ConfChange,
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
    seal(KEY_CONF_STATE, ConfStateRecord::new(cs).encode_to_vec())
}

pub(crate) fn decode_conf_state(value: &[u8]) -> Result<ConfState, String> {
    ConfStateRecord::decode(unseal(KEY_CONF_STATE, value)?)
        .map_err(|e| format!("undecodable configuration: {e}"))?
        .into_conf_state()
}

/// A snapshot's metadata. Its configuration's voters are field 3 (as before membership
/// changes); the rest of the configuration is field 4, absent in older records.
#[derive(Clone, PartialEq, Message)]
struct SnapshotRecord {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(uint64, tag = "2")]
    term: u64,
    #[prost(uint64, repeated, tag = "3")]
    voters: Vec<u64>,
    /// The configuration minus `voters` (left empty there).
    #[prost(message, optional, tag = "4")]
    conf_rest: Option<ConfStateRecord>,
}

pub(crate) fn encode_snapshot(meta: &SnapshotMeta) -> Vec<u8> {
    let mut rest = ConfStateRecord::new(&meta.conf_state);
    let voters = std::mem::take(&mut rest.voters);
    let rec = SnapshotRecord {
        index: meta.index.get(),
        term: meta.term.get(),
        voters,
        // A plain configuration is written exactly as before.
        conf_rest: (rest != ConfStateRecord::default()).then_some(rest),
    };
    seal(KEY_SNAPSHOT, rec.encode_to_vec())
}

pub(crate) fn decode_snapshot(value: &[u8]) -> Result<SnapshotMeta, String> {
    let rec = SnapshotRecord::decode(unseal(KEY_SNAPSHOT, value)?)
        .map_err(|e| format!("undecodable snapshot record: {e}"))?;
    let mut conf = rec.conf_rest.unwrap_or_default();
    conf.voters = rec.voters;
    Ok(SnapshotMeta {
        index: LogIndex(rec.index),
        term: Term(rec.term),
        conf_state: conf.into_conf_state()?,
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

    /// A joint configuration with learners, as membership changes make them.
    fn joint() -> ConfState {
        let mut cs = ConfState::with_learners([NodeId(1), NodeId(2), NodeId(4)], [NodeId(5)]);
        cs.voters_outgoing = vec![NodeId(1), NodeId(2), NodeId(3)];
        cs.learners_next = vec![NodeId(3)];
        cs.auto_leave = true;
        cs
    }

    #[test]
    fn membership_records_round_trip() {
        let cs = joint();
        assert_eq!(decode_conf_state(&encode_conf_state(&cs)).unwrap(), cs);
        let meta = SnapshotMeta {
            index: LogIndex(40),
            term: Term(3),
            conf_state: cs,
        };
        assert_eq!(decode_snapshot(&encode_snapshot(&meta)).unwrap(), meta);
        let mut e = Entry::new(
            Term(2),
            LogIndex(7),
            raft_core::ConfChange::leave_joint().encode(),
        );
        e.kind = EntryKind::ConfChange;
        let value = encode_entry(&e).unwrap();
        assert_eq!(decode_entry(&entry_key(e.index), &value).unwrap(), e);
    }

    /// Records written before membership changes existed still decode, and a plain
    /// configuration is still written in exactly those bytes.
    #[test]
    fn records_from_before_membership_changes_decode() {
        // ConfState { voters: [1, 3] } as written by the first format: field 1, packed.
        let old_conf = seal(KEY_CONF_STATE, vec![0x0a, 0x02, 0x01, 0x03]);
        let cs = ConfState::new([NodeId(1), NodeId(3)]);
        assert_eq!(decode_conf_state(&old_conf).unwrap(), cs);
        assert_eq!(encode_conf_state(&cs), old_conf);
        // Snapshot { index: 9, term: 2, voters: [1, 2] }.
        let old_snap = seal(
            KEY_SNAPSHOT,
            vec![0x08, 0x09, 0x10, 0x02, 0x1a, 0x02, 0x01, 0x02],
        );
        let meta = SnapshotMeta {
            index: LogIndex(9),
            term: Term(2),
            conf_state: ConfState::new([NodeId(1), NodeId(2)]),
        };
        assert_eq!(decode_snapshot(&old_snap).unwrap(), meta);
        assert_eq!(encode_snapshot(&meta), old_snap);
    }

    #[test]
    fn inconsistent_configuration_is_an_error() {
        // Node 1 both voter and learner.
        let bad = seal(KEY_CONF_STATE, vec![0x0a, 0x01, 0x01, 0x1a, 0x01, 0x01]);
        let err = decode_conf_state(&bad).unwrap_err();
        assert!(err.contains("inconsistent configuration"), "{err}");
    }
}
