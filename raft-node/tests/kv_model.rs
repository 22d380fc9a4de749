//! The state machine against a model: random write commands (transactions, RENAME and
//! FLUSHALL among them), applied in random batches, give the outcomes and the state that a plain map
//! applying them one by one gives; and the state survives a sync and reopen, and a snapshot
//! installed elsewhere.
//!
//! On a failure proptest prints the smallest failing input it found and records its seed in
//! `tests/kv_model.proptest-regressions`, which later runs replay first.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use raft_core::{Entry, LogIndex, Term};
use raft_node::command::{Command, Outcome, SetCond};
use raft_node::kv::{KvStore, parse_i64};

const KEYS: &[&str] = &["a", "b", "c", "d"];
const VALUES: &[&str] = &["1", "-5", "9223372036854775807", "x", "", "007"];
const DELTAS: &[i64] = &[1, -1, 7, i64::MAX, i64::MIN];

fn key() -> impl Strategy<Value = Bytes> {
    proptest::sample::select(KEYS).prop_map(|k: &str| Bytes::from_static(k.as_bytes()))
}

fn value() -> impl Strategy<Value = Bytes> {
    proptest::sample::select(VALUES).prop_map(|v: &str| Bytes::from_static(v.as_bytes()))
}

fn simple() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (key(), value(), prop_oneof![Just(SetCond::Always), Just(SetCond::Nx), Just(SetCond::Xx)])
            .prop_map(|(key, value, cond)| Command::Set { key, value, cond }),
        2 => proptest::collection::vec(key(), 1..4).prop_map(|keys| Command::Del { keys }),
        2 => (key(), value(), proptest::option::of(0u64..8))
            .prop_map(|(key, value, max_len)| Command::Append { key, value, max_len }),
        3 => (key(), proptest::sample::select(DELTAS))
            .prop_map(|(key, delta)| Command::IncrBy { key, delta }),
        1 => proptest::collection::vec((key(), value()), 1..4)
            .prop_map(|pairs| Command::MSet { pairs }),
        1 => Just(Command::Flush),
        2 => (key(), key(), any::<bool>()).prop_map(|(from, to, nx)| Command::Rename { from, to, nx }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        8 => simple(),
        1 => proptest::collection::vec(simple(), 0..5).prop_map(Command::Multi),
    ]
}

/// The model: Redis's semantics on a map, one command at a time.
fn model(state: &mut BTreeMap<Bytes, Bytes>, cmd: Command) -> Outcome {
    match cmd {
        Command::Set { key, value, cond } => {
            let exists = state.contains_key(&key);
            if (cond == SetCond::Nx && exists) || (cond == SetCond::Xx && !exists) {
                return Outcome::Nil;
            }
            state.insert(key, value);
            Outcome::Ok
        }
        Command::Del { keys } => {
            Outcome::Integer(keys.iter().filter(|k| state.remove(*k).is_some()).count() as i64)
        }
        Command::Append {
            key,
            value,
            max_len,
        } => {
            let old = state.get(&key).cloned().unwrap_or_default();
            let len = (old.len() + value.len()) as u64;
            if max_len.is_some_and(|m| len > m) {
                return Outcome::Error(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
                );
            }
            state.insert(key, [&old[..], &value[..]].concat().into());
            Outcome::Integer(len as i64)
        }
        Command::IncrBy { key, delta } => {
            let current = match state.get(&key) {
                None => 0,
                Some(v) => match parse_i64(v) {
                    Some(n) => n,
                    None => {
                        return Outcome::Error(
                            "ERR value is not an integer or out of range".into(),
                        );
                    }
                },
            };
            match current.checked_add(delta) {
                Some(n) => {
                    state.insert(key, n.to_string().into());
                    Outcome::Integer(n)
                }
                None => Outcome::Error("ERR increment or decrement would overflow".into()),
            }
        }
        Command::MSet { pairs } => {
            state.extend(pairs);
            Outcome::Ok
        }
        Command::Flush => {
            state.clear();
            Outcome::Ok
        }
        Command::Rename { from, to, nx } => {
            let Some(value) = state.get(&from).cloned() else {
                return Outcome::Error("ERR no such key".into());
            };
            if nx && state.contains_key(&to) {
                return Outcome::Integer(0);
            }
            state.remove(&from);
            state.insert(to, value);
            if nx { Outcome::Integer(1) } else { Outcome::Ok }
        }
        Command::Multi(cmds) => Outcome::Multi(cmds.into_iter().map(|c| model(state, c)).collect()),
    }
}

/// Every key the store holds, read one by one, and the count by a scan.
fn contents(kv: &KvStore) -> (BTreeMap<Bytes, Bytes>, u64) {
    let mut held = BTreeMap::new();
    for k in KEYS {
        if let Some(v) = kv.get(k.as_bytes()).unwrap() {
            held.insert(Bytes::from_static(k.as_bytes()), v);
        }
    }
    (held, kv.count_keys().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_apply_as_the_model_one_by_one(
        cmds in proptest::collection::vec(command(), 1..40),
        cuts in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (kv, _) = KvStore::open(dir.path().join("a")).unwrap();
        let mut state = BTreeMap::new();
        let want: Vec<Outcome> = cmds.iter().cloned().map(|c| model(&mut state, c)).collect();

        // Entries 1.., cut into batches where `cuts` says.
        let entries: Vec<Entry> = cmds
            .iter()
            .enumerate()
            .map(|(i, c)| Entry::new(Term(1), LogIndex(i as u64 + 1), c.encode()))
            .collect();
        let mut got = Vec::new();
        let mut batch = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            batch.push(e);
            if cuts[i] || i + 1 == cmds.len() {
                let out = kv.apply(&batch, true).unwrap().expect("may wait: never refused");
                got.extend(out.into_iter().map(|(_, _, o)| o));
                batch.clear();
            }
        }
        prop_assert_eq!(&got, &want);
        let expected = (state.clone(), state.len() as u64);
        prop_assert_eq!(&contents(&kv), &expected);

        // Durable once synced: a reopen holds the same.
        kv.sync().unwrap();
        let snap = dir.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        let (index, _, keys) = kv.write_snapshot(&snap).unwrap();
        prop_assert_eq!(index, LogIndex(cmds.len() as u64));
        prop_assert_eq!(keys, state.len() as u64);
        drop(kv);
        let (kv, rec) = KvStore::open(dir.path().join("a")).unwrap();
        prop_assert_eq!(rec.applied.0, LogIndex(cmds.len() as u64));
        prop_assert_eq!(&contents(&kv), &expected);

        // And a snapshot of it installs elsewhere as the same state.
        let (other, _) = KvStore::open(dir.path().join("b")).unwrap();
        other.install(&snap, index, Term(1)).unwrap();
        prop_assert_eq!(&contents(&other), &expected);
    }
}
