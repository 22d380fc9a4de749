//! The wire encoding: every message round-trips, and no input makes `decode` panic.

mod support;

use bytes::Bytes;
use proptest::prelude::*;
use raft_core::wire::{self, WireError};
use raft_core::{
    AppendEntries, AppendEntriesResponse, ConfChange, ConfChangeSingle, ConfChangeTransition,
    ConfState, ConflictHint, Entry, EntryKind, Heartbeat, HeartbeatResponse, InstallSnapshot,
    LogIndex, Message, MessageBody, NodeId, ReadIndexRequest, ReadIndexResponse, RequestVote,
    RequestVoteResponse, SnapshotMeta, Term, TimeoutNow,
};

fn msg(body: MessageBody) -> Message {
    Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(7),
        body,
    }
}

fn noop(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Noop,
        data: Bytes::new(),
    }
}

fn ids(v: &[u64]) -> Vec<NodeId> {
    v.iter().map(|&i| NodeId(i)).collect()
}

/// Replace voter 3 by 4 and add learner 5, with a context.
fn swap_3_for_4() -> ConfChange {
    ConfChange::new(vec![
        ConfChangeSingle::AddVoter(NodeId(4)),
        ConfChangeSingle::RemoveNode(NodeId(3)),
        ConfChangeSingle::AddLearner(NodeId(5)),
    ])
    .with_context(&b"10.0.0.4:7000"[..])
}

fn conf_entry(term: u64, index: u64, cc: &ConfChange) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::ConfChange,
        data: cc.encode(),
    }
}

/// A joint configuration with every part set.
fn joint_conf() -> ConfState {
    let mut cs = ConfState::with_learners(ids(&[1, 2, 4]), ids(&[5]));
    cs.voters_outgoing = ids(&[1, 2, 3]);
    cs.learners_next = ids(&[3]);
    cs.auto_leave = true;
    cs
}

/// One message of every kind and shape worth distinguishing on the wire.
fn samples() -> Vec<Message> {
    let append = |entries: Vec<Entry>| {
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(3),
            entries,
            leader_commit: LogIndex(4),
            commit_only: false,
        })
    };
    let aer = |reject| {
        MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            index: LogIndex(9),
            reject,
        })
    };
    let rir = |index| {
        MessageBody::ReadIndexResponse(ReadIndexResponse {
            ctx: Bytes::from_static(b"read-42"),
            index,
        })
    };
    let mut out: Vec<Message> = [
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(5),
            last_log_term: Term(6),
            transfer: false,
        }),
        MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            transfer: false,
        }),
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(5),
            last_log_term: Term(6),
            transfer: true,
        }),
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: false,
            granted: true,
        }),
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: true,
            granted: false,
        }),
        append(Vec::new()),
        append(vec![
            noop(7, 5),
            Entry::new(Term(7), LogIndex(6), Bytes::from_static(b"hello")),
            Entry::new(Term(7), LogIndex(7), Bytes::new()),
        ]),
        aer(None),
        aer(Some(ConflictHint {
            term: Some(Term(3)),
            index: LogIndex(2),
            needs_snapshot: false,
        })),
        aer(Some(ConflictHint {
            term: None,
            index: LogIndex(5),
            needs_snapshot: false,
        })),
        // Term 0 present must stay distinct from no term.
        aer(Some(ConflictHint {
            term: Some(Term(0)),
            index: LogIndex(1),
            needs_snapshot: false,
        })),
        // A node waiting to join.
        aer(Some(ConflictHint {
            term: None,
            index: LogIndex(1),
            needs_snapshot: true,
        })),
        append(vec![conf_entry(7, 5, &swap_3_for_4())]),
        MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(3),
            read_round: 11,
        }),
        MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(0),
            read_round: 0,
        }),
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_round: 11 }),
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_round: 0 }),
        MessageBody::ReadIndex(ReadIndexRequest {
            ctx: Bytes::from_static(b"read-42"),
        }),
        MessageBody::ReadIndex(ReadIndexRequest { ctx: Bytes::new() }),
        rir(Some(LogIndex(17))),
        // Index 0 present must stay distinct from no index.
        rir(Some(LogIndex(0))),
        rir(None),
        MessageBody::InstallSnapshot(raft_core::InstallSnapshot {
            meta: raft_core::SnapshotMeta {
                index: LogIndex(40),
                term: Term(3),
                conf_state: raft_core::ConfState::new([NodeId(1), NodeId(2), NodeId(3)]),
            },
        }),
        MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(41),
                term: Term(3),
                conf_state: joint_conf(),
            },
        }),
        MessageBody::TimeoutNow(TimeoutNow {}),
    ]
    .into_iter()
    .map(msg)
    .collect();
    out.push(Message {
        from: NodeId(u64::MAX),
        to: NodeId(0),
        term: Term(u64::MAX),
        body: MessageBody::HeartbeatResponse(HeartbeatResponse {
            read_round: u64::MAX,
        }),
    });
    out
}

#[test]
fn every_message_kind_round_trips() {
    let mut kinds = std::collections::BTreeSet::new();
    for m in samples() {
        kinds.insert(m.body.name());
        let bytes = wire::encode(&m);
        assert_eq!(bytes.len(), wire::encoded_len(&m), "{m:?}");
        assert_eq!(wire::decode(&bytes[..]).unwrap(), m, "from a slice");
        assert_eq!(wire::decode(bytes.clone()).unwrap(), m, "from Bytes");
    }
    // Every MessageBody variant (pre-vote and transfer votes counted apart) appears in the
    // samples.
    assert_eq!(kinds.len(), 13, "{kinds:?}");
}

/// The encoding is a protocol between versions: pin the bytes so a changed tag or type
/// cannot slip through as a passing round trip.
#[test]
fn encoding_is_stable() {
    let hb = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body: MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(7),
            read_round: 0,
        }),
    };
    // from=1, to=2, term=3, field 14 (heartbeat) { commit=7 }.
    assert_eq!(hex(&wire::encode(&hb)), "08 01 10 02 18 03 72 02 08 07");
    let reject = msg(MessageBody::AppendEntriesResponse(AppendEntriesResponse {
        index: LogIndex(9),
        reject: Some(ConflictHint {
            term: Some(Term(0)),
            index: LogIndex(1),
            needs_snapshot: false,
        }),
    }));
    // field 13 (append response) { index=9, reject { term=0 (present), index=1 } }.
    assert_eq!(
        hex(&wire::encode(&reject)),
        "08 01 10 02 18 07 6a 08 08 09 12 04 08 00 10 01"
    );
    let noop = msg(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![noop(7, 1)],
        leader_commit: LogIndex(0),
        commit_only: false,
    }));
    // field 12 (append) { entries { term=7, index=1, kind=1 } }.
    assert_eq!(
        hex(&wire::encode(&noop)),
        "08 01 10 02 18 07 62 08 1a 06 08 07 10 01 18 01"
    );
}

/// The leadership transfer's messages: `TimeoutNow` is body field 19 (an empty message), the
/// transfer flag is field 4 of `RequestVote`, and a vote without the flag encodes exactly as
/// before the flag existed.
#[test]
fn transfer_encoding_is_stable() {
    let timeout_now = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body: MessageBody::TimeoutNow(TimeoutNow {}),
    };
    // from=1, to=2, term=3, field 19 (timeout now, tag 0x9a 0x01) { }.
    assert_eq!(
        hex(&wire::encode(&timeout_now)),
        "08 01 10 02 18 03 9a 01 00"
    );
    let vote = |transfer| {
        msg(MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(5),
            last_log_term: Term(6),
            transfer,
        }))
    };
    // field 10 (vote) { last_log_index=5, last_log_term=6, transfer=1 }.
    assert_eq!(
        hex(&wire::encode(&vote(true))),
        "08 01 10 02 18 07 52 06 10 05 18 06 20 01"
    );
    // Without the flag: the bytes of a vote from before leadership transfer existed, so old
    // and new nodes read each other's votes.
    assert_eq!(
        hex(&wire::encode(&vote(false))),
        "08 01 10 02 18 07 52 04 10 05 18 06"
    );
    // A TimeoutNow body with unknown fields inside still decodes (fields can be added).
    let with_extra = [0x08, 1, 0x10, 2, 0x18, 3, 0x9a, 0x01, 0x02, 0x08, 0x05];
    assert_eq!(wire::decode(&with_extra[..]).unwrap(), timeout_now);
    // A TimeoutNow field of the wrong wire type is a typed decode error.
    let wrong_type = [0x08, 1, 0x10, 2, 0x18, 3, 0x98, 0x01, 0x05];
    assert!(matches!(
        wire::decode(&wrong_type[..]),
        Err(WireError::Decode(_))
    ));
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Membership on the wire: a configuration-change entry is kind 2 with an encoded
/// `ConfChange` as its data; snapshots carry joint and learner parts in fields 4-7; a joining
/// node's rejection sets field 3 of the hint. Each addition is a new field: messages without
/// it encode as before, so old and new nodes read each other.
#[test]
fn membership_encoding_is_stable() {
    // ConfChange { transition=1, changes { node=4 (kind 0, the default, is not written) },
    // changes { kind=2 node=3 }, context="x" }.
    let cc = ConfChange::new(vec![
        ConfChangeSingle::AddVoter(NodeId(4)),
        ConfChangeSingle::RemoveNode(NodeId(3)),
    ])
    .with_transition(ConfChangeTransition::JointImplicit)
    .with_context(&b"x"[..]);
    assert_eq!(
        hex(&cc.encode()),
        "08 01 12 02 10 04 12 04 08 02 10 03 1a 01 78"
    );
    assert_eq!(ConfChange::decode(cc.encode()).unwrap(), cc);
    // Leaving a joint configuration: all defaults, no bytes at all.
    assert_eq!(ConfChange::leave_joint().encode().len(), 0);
    assert_eq!(
        ConfChange::decode(&[][..]).unwrap(),
        ConfChange::leave_joint()
    );
    // The entry: kind 2.
    let m = msg(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![conf_entry(7, 1, &ConfChange::leave_joint())],
        leader_commit: LogIndex(0),
        commit_only: false,
    }));
    assert_eq!(
        hex(&wire::encode(&m)),
        "08 01 10 02 18 07 62 08 1a 06 08 07 10 01 18 02"
    );
    // A snapshot of a plain configuration encodes as before the new fields existed.
    let snap = |conf_state| {
        msg(MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(9),
                term: Term(2),
                conf_state,
            },
        }))
    };
    let plain = snap(ConfState::new(ids(&[1, 2])));
    assert_eq!(
        hex(&wire::encode(&plain)),
        "08 01 10 02 18 07 92 01 08 08 09 10 02 1a 02 01 02"
    );
    let mut cs = ConfState::with_learners(ids(&[2]), ids(&[3]));
    cs.voters_outgoing = ids(&[1]);
    cs.learners_next = ids(&[1]);
    cs.auto_leave = true;
    assert_eq!(
        hex(&wire::encode(&snap(cs.clone()))),
        "08 01 10 02 18 07 92 01 12 08 09 10 02 1a 01 02 22 01 01 2a 01 03 32 01 01 38 01"
    );
    assert_eq!(
        wire::decode(wire::encode(&snap(cs.clone()))).unwrap(),
        snap(cs)
    );
    // The joining node's rejection: field 3 of the hint.
    let joining = msg(MessageBody::AppendEntriesResponse(AppendEntriesResponse {
        index: LogIndex(4),
        reject: Some(ConflictHint {
            term: None,
            index: LogIndex(1),
            needs_snapshot: true,
        }),
    }));
    assert_eq!(
        hex(&wire::encode(&joining)),
        "08 01 10 02 18 07 6a 08 08 04 12 04 10 01 18 01"
    );
}

/// A configuration-change payload that is not one is a typed error, never a panic.
#[test]
fn bad_conf_change_payloads_are_errors() {
    let err = |b: &[u8]| ConfChange::decode(b).unwrap_err().to_string();
    // Transition 3 does not exist.
    assert_eq!(
        err(&[0x08, 0x03]),
        "invalid configuration change: unknown transition"
    );
    // Operation kind 7 does not exist.
    assert_eq!(
        err(&[0x12, 0x04, 0x08, 0x07, 0x10, 0x01]),
        "invalid configuration change: unknown operation"
    );
    // Node 0.
    assert_eq!(
        err(&[0x12, 0x02, 0x08, 0x00]),
        "invalid configuration change: node id 0"
    );
    // Truncated.
    assert!(err(&[0x12, 0x04, 0x08]).starts_with("invalid message encoding"));
    // An undecodable payload in an append is decoded by the transport fine (it is just
    // bytes) and refused by the node as malformed (see tests/bad_input.rs).
}

#[test]
fn decoding_from_bytes_shares_the_payload() {
    let m = msg(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![Entry::new(Term(7), LogIndex(1), vec![42u8; 64])],
        leader_commit: LogIndex(0),
        commit_only: false,
    }));
    let bytes = wire::encode(&m);
    let range = bytes.as_ptr_range();
    let MessageBody::AppendEntries(a) = wire::decode(bytes.clone()).unwrap().body else {
        panic!("not an append");
    };
    assert!(
        range.contains(&a.entries[0].data.as_ptr()),
        "payload was copied"
    );
}

#[test]
fn every_truncation_is_an_error() {
    // The body is encoded last, so a cut either drops it (no body) or falls inside it (its
    // declared length runs past the end).
    for m in samples() {
        let bytes = wire::encode(&m);
        for len in 0..bytes.len() {
            let r = wire::decode(&bytes[..len]);
            assert!(
                r.is_err(),
                "prefix of {len}/{} bytes decoded: {r:?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn truncation_inside_a_body_is_a_decode_error() {
    let m = msg(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries: vec![Entry::new(Term(2), LogIndex(2), vec![7u8; 300])],
        leader_commit: LogIndex(1),
        commit_only: false,
    }));
    let bytes = wire::encode(&m);
    // from, to and term take two bytes each; the body's tag follows.
    assert!(matches!(
        wire::decode(&bytes[..6]),
        Err(WireError::MissingBody)
    ));
    for len in 7..bytes.len() {
        let err = wire::decode(&bytes[..len]).unwrap_err();
        assert!(matches!(err, WireError::Decode(_)), "{len}: {err}");
        assert!(
            err.to_string().starts_with("invalid message encoding"),
            "{err}"
        );
    }
}

#[test]
fn empty_input_has_no_body() {
    assert!(matches!(wire::decode(&[][..]), Err(WireError::MissingBody)));
    // from=1, to=2, term=3 and nothing else.
    let err = wire::decode(&[0x08, 1, 0x10, 2, 0x18, 3][..]).unwrap_err();
    assert!(matches!(err, WireError::MissingBody), "{err}");
    assert!(err.to_string().contains("no body"));
}

#[test]
fn unknown_body_kind_has_no_body() {
    // Field 99 (a body kind from a later version), length-delimited and empty: skipped.
    let buf = [0x08, 1, 0x9a, 0x06, 0];
    assert!(matches!(
        wire::decode(&buf[..]),
        Err(WireError::MissingBody)
    ));
}

/// An AppendEntries of `entries` copies of `entry` (its encoding as an `Entry` field's value),
/// built by hand: the encoder would refuse nothing, but this is what a hostile peer sends.
fn raw_append(entry: &[u8], entries: usize) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut one = vec![(3 << 3) | 2];
    varint(entry.len() as u64, &mut one);
    one.extend_from_slice(entry);
    let body = one.repeat(entries);
    let mut out = vec![(1 << 3), 1, (12 << 3) | 2];
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    out
}

/// An 8 MiB frame of empty entries would decode to over half a gigabyte: it is refused by
/// its count, before any entry is decoded. At the limit, it decodes.
#[test]
fn too_many_entries_are_refused_before_decoding() {
    let max = wire::MAX_ENTRIES_PER_MESSAGE;
    let flood = raw_append(&[], (8 << 20) / 2);
    match wire::decode(Bytes::from(flood)) {
        Err(WireError::TooManyEntries { count, max: m }) => {
            assert_eq!((count, m), ((8 << 20) / 2, max));
        }
        other => panic!("expected TooManyEntries, got {other:?}"),
    }
    // term 1 and index 1: a valid-looking entry, one over the limit.
    let over = raw_append(&[0x08, 0x01, 0x10, 0x01], max + 1);
    assert!(matches!(
        wire::decode(&over[..]),
        Err(WireError::TooManyEntries { .. })
    ));
    let at = raw_append(&[0x08, 0x01, 0x10, 0x01], max);
    match wire::decode(&at[..]).unwrap().body {
        MessageBody::AppendEntries(a) => assert_eq!(a.entries.len(), max),
        other => panic!("expected AppendEntries, got {other:?}"),
    }
}

/// A leader splits a longer run of entries across messages, even when they fit its byte
/// limit, so a follower never gets a message its decoder refuses.
#[test]
fn a_leader_sends_at_most_the_entry_limit_per_message() {
    let max = wire::MAX_ENTRIES_PER_MESSAGE;
    let mut net = support::Net::with_config(&[1, 2, 3], |i| {
        let mut c = support::config(i);
        c.max_size_per_msg = 1 << 30;
        c
    });
    let l = net.elect();
    net.stabilize();
    let largest = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = largest.clone();
    net.drop_filter = Some(Box::new(move |m| {
        if let MessageBody::AppendEntries(a) = &m.body {
            seen.set(seen.get().max(a.entries.len()));
            assert!(wire::decode(wire::encode(m)).is_ok());
        }
        false
    }));
    let (last, _) = net.propose_many(l, vec![vec![1]; max + 100]).unwrap();
    net.stabilize();
    assert_eq!(largest.get(), max);
    for id in [1, 2, 3] {
        assert_eq!(net.status(id).commit, last);
    }
    net.assert_safe();
}

#[test]
fn unknown_entry_kind_is_rejected() {
    let m = msg(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![noop(1, 1)],
        leader_commit: LogIndex(0),
        commit_only: false,
    }));
    let bytes = wire::encode(&m).to_vec();
    // The noop entry's kind field is `0x18 0x01` (field 3, varint 1); make it kind 5.
    let pos = bytes.windows(2).rposition(|w| w == [0x18, 0x01]).unwrap();
    let mut bad = bytes.clone();
    bad[pos + 1] = 5;
    let err = wire::decode(&bad[..]).unwrap_err();
    assert!(matches!(err, WireError::UnknownEntryKind(5)), "{err}");
    assert_eq!(err.to_string(), "unknown entry kind 5");
}

#[test]
fn huge_declared_length_is_an_error() {
    // Field 12 (AppendEntries), length-delimited, declared length u64::MAX-ish.
    let mut buf = vec![0x62];
    buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    buf.extend_from_slice(&[0; 16]);
    assert!(matches!(wire::decode(&buf[..]), Err(WireError::Decode(_))));
    // A repeated entry field declaring more bytes than remain.
    let buf = [0x62, 0x04, 0x1a, 0x7f, 0x08, 0x01];
    assert!(matches!(wire::decode(&buf[..]), Err(WireError::Decode(_))));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Unknown length-delimited groups are skipped without recursion, but start groups nest:
    // 10,000 nested start-group tags must fail cleanly.
    let buf = vec![0x0b; 10_000]; // field 1, wire type 3 (start group)
    assert!(wire::decode(&buf[..]).is_err());
}

fn arb_entry() -> impl Strategy<Value = (u64, bool, Vec<u8>)> {
    (
        0u64..4,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
}

prop_compose! {
    fn arb_append()(
        from in any::<u64>(),
        to in any::<u64>(),
        term in any::<u64>(),
        prev_log_index in any::<u64>(),
        prev_log_term in any::<u64>(),
        leader_commit in any::<u64>(),
        raw in proptest::collection::vec(arb_entry(), 0..8),
    ) -> Message {
        let mut index = prev_log_index;
        let entries = raw
            .into_iter()
            .map(|(dt, is_noop, data)| {
                index = index.wrapping_add(1);
                let term = Term(prev_log_term.saturating_add(dt));
                if is_noop {
                    noop(term.get(), index)
                } else {
                    Entry::new(term, LogIndex(index), data)
                }
            })
            .collect();
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(prev_log_index),
                prev_log_term: Term(prev_log_term),
                entries,
                leader_commit: LogIndex(leader_commit),
                commit_only: leader_commit % 2 == 1,
            }),
        }
    }
}

fn arb_conf_change() -> impl Strategy<Value = ConfChange> {
    let single = (0u8..3, 1u64..10).prop_map(|(k, id)| match k {
        0 => ConfChangeSingle::AddVoter(NodeId(id)),
        1 => ConfChangeSingle::AddLearner(NodeId(id)),
        _ => ConfChangeSingle::RemoveNode(NodeId(id)),
    });
    (
        0u8..3,
        proptest::collection::vec(single, 0..5),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(t, changes, ctx)| {
            let t = [
                ConfChangeTransition::Auto,
                ConfChangeTransition::JointImplicit,
                ConfChangeTransition::JointExplicit,
            ][t as usize];
            ConfChange::new(changes)
                .with_transition(t)
                .with_context(ctx)
        })
}

proptest! {
    #[test]
    fn conf_change_round_trips(cc in arb_conf_change()) {
        prop_assert_eq!(ConfChange::decode(cc.encode()).unwrap(), cc);
    }

    #[test]
    fn conf_change_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ConfChange::decode(&bytes[..]);
    }

    #[test]
    fn conf_change_decode_never_panics_on_mutations(
        cc in arb_conf_change(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = cc.encode().to_vec();
        if !bytes.is_empty() {
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
        }
        let _ = ConfChange::decode(&bytes[..]);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode(&bytes[..]);
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        which in 0usize..32,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let samples = samples();
        let m = &samples[which % samples.len()];
        let mut bytes = wire::encode(m).to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let len = cut.index(bytes.len() + 1);
        let _ = wire::decode(&bytes[..len]);
    }

    #[test]
    fn append_entries_round_trips(m in arb_append()) {
        let bytes = wire::encode(&m);
        prop_assert_eq!(bytes.len(), wire::encoded_len(&m));
        prop_assert_eq!(wire::decode(bytes).unwrap(), m);
    }

    #[test]
    fn truncated_append_entries_are_errors(m in arb_append(), cut in any::<prop::sample::Index>()) {
        let bytes = wire::encode(&m);
        let len = cut.index(bytes.len());
        prop_assert!(wire::decode(&bytes[..len]).is_err());
    }
}
