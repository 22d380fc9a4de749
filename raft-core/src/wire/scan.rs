//! A walk over the protobuf fields of an encoded [`super::PbMessage`] that counts the entries
//! of its AppendEntries without decoding them, so that [`super::decode`] can refuse a message
//! before it allocates for each entry.

/// Wire types (protobuf encoding).
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Field numbers: `Message.append_entries` and `AppendEntries.entries`.
const APPEND_ENTRIES: u64 = 12;
const ENTRIES: u64 = 3;

/// Entries in all of the message's `append_entries` fields (protobuf merges repeated
/// occurrences of a message field, so their entries add up). A malformed encoding stops the
/// count where it breaks: decoding reports the error.
pub(super) fn count_entries(buf: &[u8]) -> usize {
    let mut count = 0;
    for_each_field(buf, |field, wire_type, value| {
        if field == APPEND_ENTRIES && wire_type == LEN {
            for_each_field(value, |field, wire_type, _| {
                if field == ENTRIES && wire_type == LEN {
                    count += 1;
                }
            });
        }
    });
    count
}

/// Calls `f(field number, wire type, payload)` for each field of `buf` (the payload is
/// empty but for length-delimited fields) until the end or the first malformed field.
fn for_each_field(mut buf: &[u8], mut f: impl FnMut(u64, u64, &[u8])) {
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else { return };
        let (field, wire_type) = (key >> 3, key & 7);
        let payload: &[u8] = match wire_type {
            VARINT => {
                if varint(&mut buf).is_none() {
                    return;
                }
                &[]
            }
            FIXED64 | FIXED32 => {
                let n = if wire_type == FIXED64 { 8 } else { 4 };
                let Some(rest) = buf.get(n..) else { return };
                buf = rest;
                &[]
            }
            LEN => {
                let Some(len) = varint(&mut buf) else { return };
                let Some(len) = usize::try_from(len).ok().filter(|l| *l <= buf.len()) else {
                    return;
                };
                let (payload, rest) = buf.split_at(len);
                buf = rest;
                payload
            }
            // Groups (deprecated) and unknown wire types: prost refuses them.
            _ => return,
        };
        f(field, wire_type, payload);
    }
}

/// Reads one base-128 varint (at most 10 bytes) from the front of `buf`.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppendEntries, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, Term};

    fn append(n: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(4),
                prev_log_term: Term(3),
                entries: (5..5 + n)
                    .map(|i| Entry {
                        term: Term(3),
                        index: LogIndex(i),
                        kind: EntryKind::Normal,
                        data: vec![7; i as usize % 300].into(),
                    })
                    .collect(),
                leader_commit: LogIndex(6),
                commit_only: false,
            }),
        }
    }

    #[test]
    fn counts_the_entries_an_encoding_holds() {
        for n in [0, 1, 2, 130, 1000] {
            assert_eq!(count_entries(&crate::wire::encode(&append(n))), n as usize);
        }
    }

    #[test]
    fn two_append_entries_fields_add_up() {
        let one = crate::wire::encode(&append(3));
        let mut twice = one.to_vec();
        twice.extend_from_slice(&one);
        assert_eq!(count_entries(&twice), 6);
    }

    #[test]
    fn a_malformed_encoding_stops_the_count() {
        let bytes = crate::wire::encode(&append(10));
        for cut in 0..bytes.len() {
            assert!(count_entries(&bytes[..cut]) <= 10);
        }
        assert_eq!(count_entries(&[0xff; 20]), 0);
        // A group's wire type.
        assert_eq!(count_entries(&[(12 << 3) | 3]), 0);
    }
}
