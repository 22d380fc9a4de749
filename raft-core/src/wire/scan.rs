//! Counts the entries of an encoded [`super::PbMessage`]'s AppendEntries without decoding
//! them, so that [`super::decode`] can refuse a message before it allocates for each entry.
//!
//! prost decodes the message into a shape that keeps nothing of an entry: each becomes a
//! zero-sized [`Counted`], and a `Vec` of a zero-sized type never allocates, however many
//! it holds. Every other field is skipped as unknown.

use prost::Message as _;

/// `Message` with only its `append_entries` field (tag 12). prost merges repeated
/// occurrences of a message field, so the entries of all of them add up, as in [`super::decode`].
#[derive(Clone, PartialEq, ::prost::Message)]
struct CountMessage {
    #[prost(message, optional, tag = "12")]
    append_entries: Option<CountAppend>,
}

/// `AppendEntries` with only its `entries` field (tag 3).
#[derive(Clone, PartialEq, ::prost::Message)]
struct CountAppend {
    #[prost(message, repeated, tag = "3")]
    entries: Vec<Counted>,
}

/// One entry, its fields skipped.
#[derive(Clone, PartialEq, ::prost::Message)]
struct Counted {}

/// Entries in all of the message's `append_entries` fields; 0 for a malformed encoding,
/// which decoding then reports.
pub(super) fn count_entries(buf: &[u8]) -> usize {
    CountMessage::decode(buf)
        .ok()
        .and_then(|m| m.append_entries)
        .map_or(0, |a| a.entries.len())
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
    fn a_malformed_encoding_counts_nothing() {
        let bytes = crate::wire::encode(&append(10));
        for cut in 0..bytes.len() {
            assert!(count_entries(&bytes[..cut]) <= 10);
        }
        assert_eq!(count_entries(&[0xff; 20]), 0);
        // A group's wire type.
        assert_eq!(count_entries(&[(12 << 3) | 3]), 0);
    }
}
