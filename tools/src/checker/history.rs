//! The recorded history as operations: each invoke paired with its completion, checked for
//! shape once, so that the rest of the checker works on whole operations with intervals.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use super::event::{Event, EventKind, Function, ProcessId, parse_jsonl};

/// An operation's position in [`History::operations`]; explanations name operations by it
/// (`#12`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OpId(pub usize);

/// The history could not be read or is not well formed. Lines are 1-based: the line of the
/// history file, or the position in the sequence given to [`History::from_events`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The line is not a JSON event.
    #[error("line {line}: not a history event: {source}")]
    Json {
        /// The line.
        line: usize,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A field the event needs is absent, or a field is present that it may not have.
    #[error("line {line}: {problem}")]
    Malformed {
        /// The line.
        line: usize,
        /// What is wrong, for a person.
        problem: &'static str,
    },
    /// A completion arrived for a process with no operation in flight.
    #[error("line {line}: completion for process {process:?}, which has no operation in flight")]
    CompletionWithoutInvoke {
        /// The line.
        line: usize,
        /// The process.
        process: ProcessId,
    },
    /// A process invoked an operation while another of its operations was in flight.
    #[error(
        "line {line}: process {process:?} invokes while its invoke on line {pending} is in flight"
    )]
    InvokeWhilePending {
        /// The line.
        line: usize,
        /// The process.
        process: ProcessId,
        /// The line of the operation in flight.
        pending: usize,
    },
    /// A completion names another command, key or token than the invoke it completes.
    #[error("line {line}: completion does not match the invoke on line {invoke}")]
    MismatchedCompletion {
        /// The line.
        line: usize,
        /// The line of the invoke.
        invoke: usize,
    },
    /// A completion is timed before its invoke.
    #[error("line {line}: completion at {time} precedes its invoke at {invoke_time}")]
    CompletionBeforeInvoke {
        /// The line.
        line: usize,
        /// The completion's time.
        time: u64,
        /// The invoke's time.
        invoke_time: u64,
    },
    /// Two appends carry the same token; the workload appends each token once, so a read
    /// could not tell them apart.
    #[error("line {line}: token {token:?} was already appended on line {first}")]
    DuplicateToken {
        /// The line of the second append.
        line: usize,
        /// The token.
        token: String,
        /// The line of the first append.
        first: usize,
    },
}

/// The command of an operation, with what its `ok` reply said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `APPEND key token`; `len` is the replied length in bytes, for an `ok` append that
    /// recorded it.
    Append {
        /// The appended token.
        token: String,
        /// The replied length.
        len: Option<u64>,
    },
    /// `GET key`; `value` is `Some` exactly for an `ok` get.
    Get {
        /// The returned value, split into tokens.
        value: Option<Vec<String>>,
    },
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect exactly once, between the invoke and `at`.
    Ok {
        /// The completion time.
        at: u64,
    },
    /// Did not take effect.
    Fail {
        /// The completion time.
        at: u64,
    },
    /// May or may not have taken effect, at any time after the invoke; also an operation
    /// whose completion the history lacks.
    Unknown,
}

/// An invoke paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Its position in the history.
    pub id: OpId,
    /// The client.
    pub process: ProcessId,
    /// The key.
    pub key: String,
    /// The command and its reply.
    pub call: Call,
    /// How it ended.
    pub outcome: Outcome,
    /// The invoke time.
    pub invoke: u64,
    /// The line of the invoke event.
    pub invoke_line: usize,
    /// The line of the completion event, if there was one.
    pub complete_line: Option<usize>,
}

impl Operation {
    /// The completion time of an operation that took effect; `None` for `fail` and
    /// `unknown`.
    pub fn ok_at(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok { at } => Some(at),
            Outcome::Fail { .. } | Outcome::Unknown => None,
        }
    }

    /// The appended token, for an append.
    pub fn token(&self) -> Option<&str> {
        match &self.call {
            Call::Append { token, .. } => Some(token),
            Call::Get { .. } => None,
        }
    }

    /// The returned value, for an `ok` get.
    pub fn read_value(&self) -> Option<&[String]> {
        match &self.call {
            Call::Get { value } => value.as_deref(),
            Call::Append { .. } => None,
        }
    }
}

impl fmt::Display for Operation {
    /// `#12 p3 append "t7" ok len=40 [1200, 1450]`, `#13 p1 get ok ["t1", "t7"] [1300, ∞)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} p{} ", self.id.0, self.process.0)?;
        match &self.call {
            Call::Append { token, .. } => write!(f, "append {token:?}")?,
            Call::Get { .. } => write!(f, "get")?,
        }
        match self.outcome {
            Outcome::Ok { .. } => write!(f, " ok")?,
            Outcome::Fail { .. } => write!(f, " fail")?,
            Outcome::Unknown => write!(f, " unknown")?,
        }
        match &self.call {
            Call::Append { len: Some(len), .. } => write!(f, " len={len}")?,
            Call::Get { value: Some(value) } => write!(f, " {}", Tokens(value))?,
            _ => {}
        }
        match self.outcome {
            Outcome::Ok { at } | Outcome::Fail { at } => write!(f, " [{}, {at}]", self.invoke),
            Outcome::Unknown => write!(f, " [{}, ∞)", self.invoke),
        }
    }
}

/// A value for people: every token of a short one; the first and last few of a long one,
/// with the count.
pub(crate) struct Tokens<'a, T>(pub &'a [T]);

impl<T: AsRef<str>> fmt::Display for Tokens<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: usize = 3;
        const TAIL: usize = 4;
        let tokens = self.0;
        let quoted = |f: &mut fmt::Formatter<'_>, items: &[T]| -> fmt::Result {
            for (i, t) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{:?}", t.as_ref())?;
            }
            Ok(())
        };
        write!(f, "[")?;
        if tokens.len() <= HEAD + TAIL + 1 {
            quoted(f, tokens)?;
            write!(f, "]")
        } else {
            quoted(f, &tokens[..HEAD])?;
            write!(f, ", … ")?;
            quoted(f, &tokens[tokens.len() - TAIL..])?;
            write!(f, "] ({} tokens)", tokens.len())
        }
    }
}

/// A run's operations, paired from its events and checked for shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    operations: Vec<Operation>,
}

impl History {
    /// Pairs events into operations; an event's line is its 1-based position.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Result<History, HistoryError> {
        History::from_numbered_events(events.into_iter().enumerate().map(|(i, e)| (i + 1, e)))
    }

    /// Parses a JSON-lines history file's text.
    pub fn parse_jsonl(text: &str) -> Result<History, HistoryError> {
        History::from_numbered_events(parse_jsonl(text)?)
    }

    /// Pairs events, each with its line, into operations. A process's completion pairs with
    /// its invoke in flight; an invoke that no completion follows is `unknown`.
    pub fn from_numbered_events(
        events: impl IntoIterator<Item = (usize, Event)>,
    ) -> Result<History, HistoryError> {
        let mut operations: Vec<Operation> = Vec::new();
        let mut in_flight: HashMap<ProcessId, usize> = HashMap::new();
        for (line, event) in events {
            check_fields(line, &event)?;
            if event.kind == EventKind::Invoke {
                if let Some(&pending) = in_flight.get(&event.process) {
                    return Err(HistoryError::InvokeWhilePending {
                        line,
                        process: event.process,
                        pending: operations[pending].invoke_line,
                    });
                }
                in_flight.insert(event.process, operations.len());
                operations.push(invoked(OpId(operations.len()), line, event));
            } else {
                let index = in_flight.remove(&event.process).ok_or(
                    HistoryError::CompletionWithoutInvoke {
                        line,
                        process: event.process,
                    },
                )?;
                complete(&mut operations[index], line, event)?;
            }
        }
        check_unique_tokens(&operations)?;
        Ok(History { operations })
    }

    /// All operations, in the order of their invokes in the events.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation with this id.
    pub fn operation(&self, id: OpId) -> &Operation {
        &self.operations[id.0]
    }
}

/// Which fields an event may and must have, by command and kind.
fn check_fields(line: usize, event: &Event) -> Result<(), HistoryError> {
    let malformed = |problem| Err(HistoryError::Malformed { line, problem });
    match event.f {
        Function::Append => {
            if event.token.is_none() {
                return malformed("an append needs a token");
            }
            if event.token.as_deref() == Some("") {
                return malformed("an append's token may not be empty");
            }
            if event.value.is_some() {
                return malformed("an append has no value");
            }
            if event.len.is_some() && event.kind != EventKind::Ok {
                return malformed("only an ok append has a len");
            }
        }
        Function::Get => {
            if event.token.is_some() {
                return malformed("a get has no token");
            }
            if event.len.is_some() {
                return malformed("a get has no len");
            }
            match (event.kind, &event.value) {
                (EventKind::Ok, None) => return malformed("an ok get needs a value"),
                (EventKind::Invoke | EventKind::Fail | EventKind::Unknown, Some(_)) => {
                    return malformed("only an ok get has a value");
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn invoked(id: OpId, line: usize, event: Event) -> Operation {
    let call = match event.f {
        Function::Append => Call::Append {
            token: event.token.unwrap_or_default(),
            len: None,
        },
        Function::Get => Call::Get { value: None },
    };
    Operation {
        id,
        process: event.process,
        key: event.key,
        call,
        outcome: Outcome::Unknown,
        invoke: event.time,
        invoke_line: line,
        complete_line: None,
    }
}

fn complete(op: &mut Operation, line: usize, event: Event) -> Result<(), HistoryError> {
    let same_call = match (&op.call, event.f) {
        (Call::Append { token, .. }, Function::Append) => event.token.as_ref() == Some(token),
        (Call::Get { .. }, Function::Get) => true,
        _ => false,
    };
    if !same_call || event.key != op.key {
        return Err(HistoryError::MismatchedCompletion {
            line,
            invoke: op.invoke_line,
        });
    }
    if event.time < op.invoke {
        return Err(HistoryError::CompletionBeforeInvoke {
            line,
            time: event.time,
            invoke_time: op.invoke,
        });
    }
    op.complete_line = Some(line);
    op.outcome = match event.kind {
        EventKind::Ok => Outcome::Ok { at: event.time },
        EventKind::Fail => Outcome::Fail { at: event.time },
        // `check_fields` let no other kind through as a completion but Unknown.
        EventKind::Unknown | EventKind::Invoke => Outcome::Unknown,
    };
    match &mut op.call {
        Call::Append { len, .. } => *len = event.len,
        Call::Get { value } => *value = event.value,
    }
    Ok(())
}

fn check_unique_tokens(operations: &[Operation]) -> Result<(), HistoryError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for op in operations {
        if let Some(token) = op.token() {
            match seen.entry(token) {
                Entry::Occupied(first) => {
                    return Err(HistoryError::DuplicateToken {
                        line: op.invoke_line,
                        token: token.to_owned(),
                        first: *first.get(),
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(op.invoke_line);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::event::tests::FILE;

    #[test]
    fn parses_a_history_file() {
        let history = History::parse_jsonl(FILE).unwrap();
        let ops = history.operations();
        assert_eq!(ops.len(), 5);
        assert_eq!(
            ops[0].call,
            Call::Append {
                token: "a;".into(),
                len: Some(2)
            }
        );
        assert_eq!(ops[0].outcome, Outcome::Ok { at: 20 });
        assert_eq!((ops[0].invoke_line, ops[0].complete_line), (1, Some(3)));
        assert_eq!(ops[1].read_value(), Some(&["a;".to_owned()][..]));
        assert_eq!(ops[1].complete_line, Some(5), "the blank line counts");
        assert_eq!(ops[2].outcome, Outcome::Unknown);
        assert_eq!(ops[3].outcome, Outcome::Fail { at: 40 });
        assert_eq!(ops[3].key, "j");
        assert_eq!(ops[4].outcome, Outcome::Unknown, "no completion: unknown");
        assert_eq!(ops[4].complete_line, None);
        assert_eq!(ops[1].to_string(), r#"#1 p1 get ok ["a;"] [12, 25]"#);
        assert_eq!(ops[2].to_string(), r#"#2 p2 append "b;" unknown [30, ∞)"#);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let err = History::parse_jsonl("\n{\"process\":0}\n").unwrap_err();
        assert!(matches!(err, HistoryError::Json { line: 2, .. }), "{err}");

        let get = Event::get(0, 5, "k");
        let cases: Vec<(Vec<Event>, &str)> = vec![
            (vec![get.ok(6)], "line 1: an ok get needs a value"),
            (
                vec![Event::append(0, 1, "k", "")],
                "line 1: an append's token may not be empty",
            ),
            (
                vec![get.ok(6).with_value(["x"])],
                "line 1: completion for process ProcessId(0), which has no operation in flight",
            ),
            (
                vec![get.clone(), get.clone()],
                "line 2: process ProcessId(0) invokes while its invoke on line 1 is in flight",
            ),
            (
                vec![
                    get.clone(),
                    Event::get(0, 6, "other").ok(7).with_value([""; 0]),
                ],
                "line 2: completion does not match the invoke on line 1",
            ),
            (
                vec![get.clone(), get.fail(4)],
                "line 2: completion at 4 precedes its invoke at 5",
            ),
            (
                vec![Event::append(0, 1, "k", "t"), Event::append(1, 2, "j", "t")],
                "line 2: token \"t\" was already appended on line 1",
            ),
        ];
        for (events, expected) in cases {
            let err = History::from_events(events).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }
}
