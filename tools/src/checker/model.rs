//! One key as a problem for the search: the model of its value, and the reduction of the
//! key's operations to that model.
//!
//! The value is the sequence of tokens appended so far. Tokens are unique and a read returns
//! the whole sequence, so the states of any linearization form a chain of prefixes, and so
//! must the values the reads returned. All reads are therefore prefixes of the longest read,
//! `S` (checked here, before any search), and the state needs no sequence at all:
//!
//! - while reads remain, the value is `S[..prefix]`: state `(prefix, bytes)`;
//! - an append whose token no read returned ("unobserved") can only be linearized after every
//!   read and every observed append (a read after it would have to contain its token; an
//!   observed append after it would put its token before that one in every later read), so
//!   once it is, the rest are unobserved appends too, whose order matters only through the
//!   byte length a reply recorded: still `(prefix, bytes)`.
//!
//! The state is exact (no hashing of sequences, no collisions) and costs 16 bytes.

use std::collections::{HashMap, HashSet};

use super::history::{Call, OpId, Operation, Outcome, Tokens};

/// At most this many lines per kind of problem found before the search; the rest are
/// counted.
const MAX_LINES: usize = 8;

/// One key's operations that may have taken effect, reduced to the model.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    /// Sorted by invoke time, then id.
    pub ops: Vec<Op>,
    /// `order[i]` is the append of the `i`-th token of the longest read.
    pub order: Vec<OpId>,
}

/// An operation of the problem.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op {
    /// The operation in the history.
    pub id: OpId,
    /// Invoke time.
    pub invoke: u64,
    /// Completion time; `None` for an unknown append, which may take effect any time after
    /// its invoke and need not take effect at all.
    pub complete: Option<u64>,
    /// What it does to the state.
    pub kind: Kind,
}

/// What an operation does to the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An ok read of `S[..len]`.
    Read {
        /// Tokens returned.
        len: u32,
    },
    /// An append of a token `size` bytes long, at `pos` in `S` if observed, with the length
    /// the reply recorded, if any.
    Append {
        /// Position in `S`; `None` if no read returned the token.
        pos: Option<u32>,
        /// Token length in bytes.
        size: u64,
        /// Replied length in bytes.
        reply: Option<u64>,
    },
}

impl Op {
    /// A read or an observed append: these all precede every unobserved append.
    pub fn is_observed(&self) -> bool {
        !matches!(self.kind, Kind::Append { pos: None, .. })
    }

    /// Took effect for sure, so every linearization contains it.
    pub fn is_required(&self) -> bool {
        self.complete.is_some()
    }
}

/// The model state: the value is `S[..prefix]`, followed by any unobserved appends, `bytes`
/// long in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct State {
    /// Tokens of `S` appended.
    pub prefix: u32,
    /// Length of the value in bytes.
    pub bytes: u64,
}

/// Why an operation cannot be linearized in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// A read whose value is not the current value.
    Value,
    /// An observed append whose token is not the next of `S`.
    NotNext,
    /// An append whose reply recorded another length than the value would have after it.
    Length {
        /// The length after the append.
        after: u64,
        /// The replied length.
        reply: u64,
    },
    /// An unobserved append while reads or observed appends remain.
    ObservedRemain,
}

impl Problem {
    /// The state after `op`, or why `op` cannot come next. `observed_remaining` counts the
    /// reads and observed appends not yet linearized.
    pub fn step(&self, state: State, op: &Op, observed_remaining: usize) -> Result<State, Reject> {
        match op.kind {
            Kind::Read { len } if len == state.prefix => Ok(state),
            Kind::Read { .. } => Err(Reject::Value),
            Kind::Append { pos, size, reply } => {
                match pos {
                    Some(pos) if pos != state.prefix => return Err(Reject::NotNext),
                    Some(_) => {}
                    None if observed_remaining > 0 => return Err(Reject::ObservedRemain),
                    None => {}
                }
                let after = state.bytes + size;
                match reply {
                    Some(reply) if reply != after => Err(Reject::Length { after, reply }),
                    _ => Ok(State {
                        prefix: state.prefix + u32::from(pos.is_some()),
                        bytes: after,
                    }),
                }
            }
        }
    }

    /// Reduces a key's operations, or says why no search is needed: a read returned a token
    /// twice, a token no possible append wrote, or two reads disagree.
    pub fn build(ops: &[&Operation]) -> Result<Problem, Vec<String>> {
        let mut appends: HashMap<&str, &Operation> = HashMap::new();
        let mut failed: HashMap<&str, &Operation> = HashMap::new();
        let mut reads: Vec<(&Operation, &[String])> = Vec::new();
        for &op in ops {
            match (&op.call, op.outcome) {
                // A failed operation did not take effect: it is left out, except to name
                // the append whose token a read should not have returned.
                (Call::Append { token, .. }, Outcome::Fail { .. }) => {
                    failed.insert(token, op);
                }
                (Call::Append { token, .. }, _) => {
                    appends.insert(token, op);
                }
                (Call::Get { value: Some(value) }, Outcome::Ok { .. }) => reads.push((op, value)),
                // An unknown read constrains nothing: whatever it would have returned, it
                // may be taken not to have happened.
                (Call::Get { .. }, _) => {}
            }
        }
        let longest_read = reads.iter().copied().max_by_key(|&(_, value)| value.len());
        let longest = longest_read.map_or(&[][..], |(_, value)| value);
        // A read that is a prefix of the longest has only tokens the longest has, so checking
        // the tokens of the longest and of the reads that are not its prefixes checks all:
        // string comparisons instead of hashing every token of every read.
        let others: Vec<_> = reads
            .iter()
            .copied()
            .filter(|(_, v)| !longest.starts_with(v))
            .collect();
        check_tokens(longest_read.iter().chain(&others), &appends, &failed)?;
        if let Some(longest_read) = longest_read {
            check_prefixes(&others, longest_read)?;
        }

        let position: HashMap<&str, u32> = (0u32..)
            .zip(longest)
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        // An unknown append that no read returned may be taken not to have happened — it
        // would go after every read and observed append, where it changes nothing a read can
        // see — except through the byte length an unobserved ok append replied, if that
        // append can follow it (completes after the unknown one was invoked). So it is kept
        // only then; otherwise it is dropped, and the search never branches on it.
        let last_length_constraint = ops
            .iter()
            .filter(|op| matches!(op.call, Call::Append { len: Some(_), .. }))
            .filter(|op| op.token().is_some_and(|t| !position.contains_key(t)))
            .filter_map(|op| op.ok_at())
            .max();
        let mut problem_ops = Vec::new();
        for &(op, value) in &reads {
            let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
            problem_ops.push(Op {
                id: op.id,
                invoke: op.invoke,
                complete: op.ok_at(),
                kind: Kind::Read { len },
            });
        }
        for (&token, &op) in &appends {
            let pos = position.get(token).copied();
            if pos.is_none()
                && op.ok_at().is_none()
                && last_length_constraint.is_none_or(|t| t < op.invoke)
            {
                continue;
            }
            let reply = match op.call {
                Call::Append { len, .. } => len,
                Call::Get { .. } => None,
            };
            problem_ops.push(Op {
                id: op.id,
                invoke: op.invoke,
                complete: op.ok_at(),
                kind: Kind::Append {
                    pos,
                    size: token.len() as u64,
                    reply,
                },
            });
        }
        problem_ops.sort_by_key(|op| (op.invoke, op.id));
        // Every token of `longest` has an append: `check_tokens` passed.
        let order = longest
            .iter()
            .filter_map(|t| appends.get(t.as_str()).map(|op| op.id))
            .collect();
        Ok(Problem {
            ops: problem_ops,
            order,
        })
    }
}

/// Every token a read returned was written by exactly one append that may have taken effect.
fn check_tokens<'a>(
    reads: impl IntoIterator<Item = &'a (&'a Operation, &'a [String])>,
    appends: &HashMap<&str, &Operation>,
    failed: &HashMap<&str, &Operation>,
) -> Result<(), Vec<String>> {
    let mut lines = Lines::default();
    for &(read, value) in reads {
        let mut seen = HashSet::with_capacity(value.len());
        for token in value {
            if !seen.insert(token) {
                lines.push(format!(
                    "{read} returned {token:?} twice, but it was appended at most once"
                ));
            } else if let Some(append) = failed.get(token.as_str()) {
                lines.push(format!(
                    "{read} returned {token:?}, but its append failed: {append}"
                ));
            } else if !appends.contains_key(token.as_str()) {
                lines.push(format!(
                    "{read} returned {token:?}, which no append to this key wrote"
                ));
            }
        }
    }
    lines.into_result()
}

/// Every read's value is a prefix of the longest: the value only grows, by appends at its
/// end, so two reads that differ at some position cannot both be right. `reads` are those
/// that are not.
fn check_prefixes(
    reads: &[(&Operation, &[String])],
    (longest_read, longest): (&Operation, &[String]),
) -> Result<(), Vec<String>> {
    let mut lines = Lines::default();
    for &(read, value) in reads {
        // Not a prefix: it differs somewhere within its length, or is longer than the longest.
        if let Some(i) = (0..value.len()).find(|&i| longest.get(i) != Some(&value[i])) {
            lines.push(format!(
                "{read} and {longest_read} disagree on the order of appends: token {} is {:?} in one and {:?} in the other, yet the value only grows at its end (values {} and {})",
                i + 1,
                value[i],
                longest[i],
                Tokens(value),
                Tokens(longest),
            ));
        }
    }
    lines.into_result()
}

/// Problem lines, at most [`MAX_LINES`] of them spelled out.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    more: usize,
}

impl Lines {
    fn push(&mut self, line: String) {
        if self.lines.len() < MAX_LINES {
            self.lines.push(line);
        } else {
            self.more += 1;
        }
    }

    fn into_result(mut self) -> Result<(), Vec<String>> {
        if self.lines.is_empty() {
            return Ok(());
        }
        if self.more > 0 {
            self.lines
                .push(format!("… and {} more like these", self.more));
        }
        Err(self.lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::event::Event;
    use crate::checker::history::History;

    fn problem(events: Vec<Event>) -> Result<Problem, Vec<String>> {
        let history = History::from_events(events).unwrap();
        let ops: Vec<&Operation> = history.operations().iter().collect();
        Problem::build(&ops)
    }

    #[test]
    fn unobserved_unknown_append_is_dropped_unless_a_length_can_see_it() {
        let u = Event::append(0, 0, "k", "uu");
        let a = Event::append(1, 5, "k", "aa");
        // No reply length: the unknown append is dropped.
        let p = problem(vec![u.clone(), u.unknown(1), a.clone(), a.ok(6)]).unwrap();
        assert_eq!(p.ops.len(), 1);
        // An unobserved ok append that replied a length and can follow it: kept.
        let p = problem(vec![
            u.clone(),
            u.unknown(1),
            a.clone(),
            a.ok(6).with_len(4),
        ])
        .unwrap();
        assert_eq!(p.ops.len(), 2);
        // The append with the length completed before the unknown one began: dropped.
        let late = Event::append(0, 10, "k", "uu");
        let p = problem(vec![
            a.clone(),
            a.ok(6).with_len(4),
            late.clone(),
            late.unknown(11),
        ])
        .unwrap();
        assert_eq!(p.ops.len(), 1);
    }

    #[test]
    fn step_follows_the_longest_read() {
        let (a, b, r) = (
            Event::append(0, 0, "k", "a"),
            Event::append(1, 0, "k", "bb"),
            Event::get(2, 0, "k"),
        );
        let p = problem(vec![
            a.clone(),
            b.clone(),
            r.clone(),
            a.ok(1).with_len(1),
            b.ok(1),
            r.ok(2).with_value(["a", "bb"]),
        ])
        .unwrap();
        assert_eq!(p.order, vec![OpId(0), OpId(1)]);
        let [oa, ob, or] = [0, 1, 2].map(|i| *p.ops.iter().find(|o| o.id == OpId(i)).unwrap());
        let s0 = State::default();
        assert_eq!(p.step(s0, &ob, 3), Err(Reject::NotNext));
        assert_eq!(p.step(s0, &or, 3), Err(Reject::Value));
        let s1 = p.step(s0, &oa, 3).unwrap();
        assert_eq!(
            s1,
            State {
                prefix: 1,
                bytes: 1
            }
        );
        let s2 = p.step(s1, &ob, 2).unwrap();
        assert_eq!(p.step(s2, &or, 1), Ok(s2));
        assert_eq!(p.step(s1, &oa, 2), Err(Reject::NotNext));
    }
}
