//! The linearizability checker for the fault-injection (Jepsen-style) run.
//!
//! Why: a Raft cluster under partitions, crashes and clock trouble must still behave like one
//! copy of the data. The run records what its clients saw; this module decides whether some
//! single order of the operations, consistent with real time, explains every reply. It is
//! pure: a [`History`] in, a [`Report`] out; reading and writing files is the caller's.
//!
//! # The workload
//!
//! Clients `APPEND key token` unique tokens and `GET key` a few keys. A key's value is the
//! concatenation of its appended tokens, so each read reveals the order of the appends before
//! it. Every operation is recorded as an invoke and one completion:
//!
//! - `ok`: took effect exactly once, between invoke and completion. A get's value is known;
//!   an append's reply (the new length in bytes) may be recorded and is then checked.
//! - `fail`: definitely did not take effect (the server said it was not applied); ignored.
//! - `unknown` (timeout, dropped connection): may or may not take effect, at any time after
//!   the invoke. An unknown get constrains nothing and is dropped. An invoke with no
//!   completion in the history counts as unknown.
//!
//! A final read after healing is just another ok get.
//!
//! # The history file
//!
//! JSON lines, one event per line, in the order the run recorded them ([`Event`]):
//!
//! ```text
//! {"process":3,"type":"invoke","f":"append","key":"k1","time":1200,"token":"3.17;"}
//! {"process":3,"type":"ok","f":"append","key":"k1","time":1450,"token":"3.17;","len":40}
//! {"process":1,"type":"invoke","f":"get","key":"k1","time":1300}
//! {"process":1,"type":"ok","f":"get","key":"k1","time":1600,"value":["0.1;","3.17;"]}
//! {"process":4,"type":"unknown","f":"append","key":"k1","time":9000,"token":"4.2;","error":"timeout"}
//! ```
//!
//! - `process`: the client; it has at most one operation in flight, and its next event after
//!   an invoke is that operation's completion.
//! - `type`: `invoke`, `ok`, `fail` or `unknown`; `f`: `append` or `get`; `key`.
//! - `time`: monotonic nanoseconds from one clock. Intervals that touch count as overlapping.
//! - `token` (appends): non-empty, unique in the whole run.
//! - `value` (ok gets only): the value split into the appended tokens, `[]` for a missing
//!   key. The runner makes tokens self-delimiting (e.g. ending in `;`) so it can split; a
//!   piece that is no token shows up as a token no append wrote.
//! - `len` (ok appends only, optional): the replied length in bytes, i.e. the sum of the
//!   tokens' byte lengths.
//! - `error` (optional): free text for people, ignored.
//! - Other fields are ignored, so the runner may add its own (a node, a nemesis phase).
//!
//! [`to_jsonl`] and [`History::parse_jsonl`] write and read it.
//!
//! # How it checks
//!
//! Each key is checked alone: every operation touches one key, and linearizability is local
//! (Herlihy & Wing), so a history is linearizable exactly when each key's subhistory is.
//! Per key:
//!
//! 1. Checks that need no search (`model.rs`): every token a read returned was written by an
//!    append that may have taken effect, at most once per read; and every read is a prefix of
//!    the longest read (the value only grows at its end).
//! 2. The Wing–Gong–Lowe search with its cache of (linearized set, state) (`wgl.rs`), on a
//!    model whose state is two numbers: how many tokens of the longest read have been
//!    appended, and the byte length. It is exact because of step 1.
//! 3. For a failure, an explanation: the longest linearizable prefix found, the operation that
//!    had to come next, why each candidate could not, and hints naming stale reads, lost
//!    acknowledged appends and reads from the future.
//!
//! Prunings, each justified where it is made:
//!
//! - fail operations and unknown gets are dropped (`model.rs`);
//! - an unknown append that no read returned is dropped, unless an unobserved ok append with
//!   a recorded length could follow it (`model.rs`);
//! - an observed append can only be the next token of the longest read, and a read only
//!   matches one length, so while reads remain at most one append is a real choice
//!   (`model.rs`);
//! - an append no read returned can only come after every read and every observed append
//!   (`model.rs`);
//! - a candidate read that matches the value is linearized at once, without alternatives
//!   (`wgl.rs`).
//!
//! The search has a [`Budget`] (steps and time); past it the key is
//! [`Verdict::Inconclusive`], never a hang.
//!
//! ```
//! use tools::checker::{check, Budget, Event, History};
//!
//! let append = Event::append(0, 10, "k", "a;");
//! let read = Event::get(1, 30, "k");
//! let history = History::from_events([
//!     append.clone(),
//!     append.ok(20),
//!     read.clone(),
//!     read.ok(40).with_value(Vec::<String>::new()), // misses "a;": a stale read
//! ])?;
//! let report = check(&history, &Budget::default());
//! assert!(report.has_violation());
//! println!("{report}");
//! # Ok::<(), tools::checker::HistoryError>(())
//! ```

mod event;
mod explain;
mod history;
mod model;
mod report;
mod wgl;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

pub use event::{Event, EventKind, Function, ProcessId, parse_jsonl, to_jsonl};
pub use history::{Call, History, HistoryError, OpId, Operation, Outcome};
pub use report::{Counts, KeyReport, Report, Summary, Verdict};

use model::Problem;
use wgl::Search;

/// How much search one key may take before its verdict is [`Verdict::Inconclusive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Search steps (candidate operations tried).
    pub max_steps: u64,
    /// Wall-clock time, looked at every 1024 steps.
    pub max_time: Option<Duration>,
}

impl Default for Budget {
    /// Ten million steps or a minute per key: a few seconds for the histories CI records
    /// (thousands of operations per key), whose search is nearly linear.
    fn default() -> Budget {
        Budget {
            max_steps: 10_000_000,
            max_time: Some(Duration::from_secs(60)),
        }
    }
}

/// Checks every key of a history.
pub fn check(history: &History, budget: &Budget) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history.operations() {
        by_key.entry(&op.key).or_default().push(op);
    }
    let keys = by_key
        .into_iter()
        .map(|(key, ops)| check_key(history, key, &ops, budget))
        .collect();
    Report::new(keys)
}

/// Checks one key's operations.
fn check_key(history: &History, key: &str, ops: &[&Operation], budget: &Budget) -> KeyReport {
    let (verdict, steps) = match Problem::build(ops) {
        Err(lines) => {
            let mut explanation = String::from("no search needed:\n");
            explanation.push_str(&lines.join("\n"));
            (Verdict::Violation { explanation }, 0)
        }
        Ok(problem) => match wgl::search(&problem, budget) {
            Search::Linearizable { steps } => (Verdict::Ok, steps),
            Search::Violation { steps, deepest } => {
                let explanation = explain::violation(history, &problem, &deepest, steps);
                (Verdict::Violation { explanation }, steps)
            }
            Search::OutOfBudget {
                steps,
                elapsed,
                deepest,
            } => {
                let reason =
                    explain::out_of_budget(history, &problem, &deepest, steps, elapsed, budget);
                (Verdict::Inconclusive { reason }, steps)
            }
        },
    };
    KeyReport {
        key: key.to_owned(),
        verdict,
        counts: report::Counts::of(ops.iter().copied()),
        missing_acknowledged_appends: report::missing_acknowledged(ops),
        unwritten_tokens: report::unwritten_tokens(ops),
        steps,
    }
}
