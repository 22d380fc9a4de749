//! Why a search failed, for a person: the longest linearizable prefix the search found, the
//! operation that had to come next, why each candidate could not, and hints naming the
//! classic anomalies (stale read, lost acknowledged append, read from the future).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use super::Budget;
use super::history::{History, Tokens};
use super::model::{Kind, Op, Problem, Reject, State};

/// Prefix operations shown; the earlier ones are counted.
const SHOWN_PREFIX: usize = 8;
/// Candidates shown; the others are counted.
const MAX_CANDIDATES: usize = 12;
/// Hints shown.
const MAX_HINTS: usize = 6;

/// The explanation of a violation found by the search.
pub(crate) fn violation(
    history: &History,
    problem: &Problem,
    deepest: &[u32],
    steps: u64,
) -> String {
    let mut out = format!(
        "no linearization of the key's {} operations exists (searched {steps} steps).\n",
        problem.ops.len()
    );
    describe(&mut out, history, problem, deepest, true);
    out
}

/// The reason a search was given up.
pub(crate) fn out_of_budget(
    history: &History,
    problem: &Problem,
    deepest: &[u32],
    steps: u64,
    elapsed: Duration,
    budget: &Budget,
) -> String {
    let time = budget
        .max_time
        .map(|max| format!(" or {max:?}"))
        .unwrap_or_default();
    let mut out = format!(
        "gave up after {steps} steps and {elapsed:?} (budget: {} steps{time}); neither a \
         linearization nor a proof that none exists was found. Raise the budget or check a \
         shorter history. How far the search got:\n",
        budget.max_steps
    );
    describe(&mut out, history, problem, deepest, false);
    out
}

/// The prefix and the value after it; if `stuck` (the search is over and found no way on),
/// also why no candidate can come next.
fn describe(out: &mut String, history: &History, problem: &Problem, deepest: &[u32], stuck: bool) {
    let ops = &problem.ops;
    let Replay {
        state,
        linearized,
        observed_remaining,
        tail,
    } = replay(problem, deepest);

    // `write!` to a String cannot fail; its Result is ignored throughout.
    let _ = writeln!(
        out,
        "Longest linearizable prefix found: {} of {} operations{}",
        deepest.len(),
        ops.len(),
        if deepest.is_empty() {
            "."
        } else {
            ", in order:"
        }
    );
    let skipped = deepest.len().saturating_sub(SHOWN_PREFIX);
    if skipped > 0 {
        let _ = writeln!(out, "  … {skipped} earlier operations");
    }
    for (n, &i) in deepest.iter().enumerate().skip(skipped) {
        let _ = writeln!(
            out,
            "  {}. {}",
            n + 1,
            history.operation(ops[i as usize].id)
        );
    }
    let value = value_tokens(history, problem, state, &tail);
    let _ = writeln!(
        out,
        "The value after it ({} bytes): {}",
        state.bytes,
        Tokens(&value)
    );
    if !stuck {
        return;
    }

    let remaining = || (0..ops.len()).filter(|&i| !linearized[i]).map(|i| &ops[i]);
    let Some(blocking) = remaining()
        .filter_map(|op| op.complete.map(|at| (at, op.id, op)))
        .min_by_key(|&(at, id, _)| (at, id))
        .map(|(_, _, op)| op)
    else {
        return;
    };
    let _ = writeln!(
        out,
        "It cannot be extended. {} must come before anything invoked after it completed, and \
         no operation invoked by then can come next:",
        history.operation(blocking.id)
    );
    let deadline = blocking.complete.unwrap_or(u64::MAX);
    let candidates: Vec<&Op> = remaining().filter(|op| op.invoke <= deadline).collect();
    for op in candidates.iter().take(MAX_CANDIDATES) {
        let reason = match problem.step(state, op, observed_remaining) {
            // Not at the deepest point of a finished search: it would have gone deeper.
            Ok(_) => "it can, but every way on from there fails".to_owned(),
            Err(reject) => reason(
                history,
                problem,
                state,
                &value,
                op,
                reject,
                observed_remaining,
            ),
        };
        let _ = writeln!(out, "  - {}: {reason}", history.operation(op.id));
    }
    if candidates.len() > MAX_CANDIDATES {
        let _ = writeln!(out, "  … and {} more", candidates.len() - MAX_CANDIDATES);
    }

    let mut hints = Vec::new();
    let others = candidates.iter().copied().filter(|op| op.id != blocking.id);
    for op in std::iter::once(blocking).chain(others) {
        hints.extend(anomalies(history, problem, op));
    }
    for hint in hints.iter().take(MAX_HINTS) {
        let _ = writeln!(out, "Hint: {hint}");
    }
}

/// The state after a prefix, replayed.
struct Replay {
    state: State,
    linearized: Vec<bool>,
    observed_remaining: usize,
    /// Unobserved appends linearized, in order.
    tail: Vec<usize>,
}

fn replay(problem: &Problem, prefix: &[u32]) -> Replay {
    let mut replay = Replay {
        state: State::default(),
        linearized: vec![false; problem.ops.len()],
        observed_remaining: problem.ops.iter().filter(|op| op.is_observed()).count(),
        tail: Vec::new(),
    };
    for &i in prefix {
        let op = &problem.ops[i as usize];
        // The search took exactly these steps, so each succeeds; stop at the first that
        // would not rather than explain a state that never was.
        let Ok(next) = problem.step(replay.state, op, replay.observed_remaining) else {
            break;
        };
        replay.state = next;
        replay.linearized[i as usize] = true;
        if op.is_observed() {
            replay.observed_remaining -= 1;
        } else {
            replay.tail.push(i as usize);
        }
    }
    replay
}

fn value_tokens<'h>(
    history: &'h History,
    problem: &Problem,
    state: State,
    tail: &[usize],
) -> Vec<&'h str> {
    let observed = problem.order[..state.prefix as usize].iter().copied();
    let unobserved = tail.iter().map(|&i| problem.ops[i].id);
    observed
        .chain(unobserved)
        .filter_map(|id| history.operation(id).token())
        .collect()
}

fn reason(
    history: &History,
    problem: &Problem,
    state: State,
    value: &[&str],
    op: &Op,
    reject: Reject,
    observed_remaining: usize,
) -> String {
    let operation = history.operation(op.id);
    match reject {
        Reject::Value => format!(
            "it returned {}, but the value is {}",
            Tokens(operation.read_value().unwrap_or_default()),
            Tokens(value)
        ),
        Reject::NotNext => {
            let pos = match op.kind {
                Kind::Append { pos: Some(pos), .. } => pos as usize + 1,
                _ => 0,
            };
            let next = problem
                .order
                .get(state.prefix as usize)
                .and_then(|&id| history.operation(id).token())
                .unwrap_or("?");
            format!(
                "reads put its token at position {pos}, but the next token to append is number {} ({next:?})",
                state.prefix + 1
            )
        }
        Reject::Length { after, reply } => format!(
            "its reply says the value became {reply} bytes long, but after it the value would be {after} bytes"
        ),
        Reject::ObservedRemain => format!(
            "no read returned its token, so it can only follow every read and every append a \
             read returned; {observed_remaining} of those remain"
        ),
    }
}

/// Classic anomalies an operation is part of, found by looking at intervals alone.
fn anomalies(history: &History, problem: &Problem, op: &Op) -> Vec<String> {
    let operation = history.operation(op.id);
    let appends = || {
        problem
            .ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::Append { .. }))
            .map(|o| history.operation(o.id))
    };
    let mut hints = Vec::new();
    match op.kind {
        Kind::Read { .. } => {
            let value = operation.read_value().unwrap_or_default();
            let value: HashSet<&str> = value.iter().map(String::as_str).collect();
            for append in appends() {
                let Some(token) = append.token() else {
                    continue;
                };
                let contains = value.contains(token);
                if !contains && append.ok_at().is_some_and(|at| at < operation.invoke) {
                    hints.push(format!(
                        "stale read: {operation} lacks {token:?}, but {append} completed before \
                         the read was invoked"
                    ));
                }
                if contains && op.complete.is_some_and(|at| append.invoke > at) {
                    hints.push(format!(
                        "read from the future: {operation} returned {token:?}, but {append} was \
                         invoked after the read completed"
                    ));
                }
            }
        }
        Kind::Append { pos: None, .. } => {
            let Some(done) = op.complete else {
                return hints;
            };
            let token = operation.token().unwrap_or_default();
            let later: Vec<&Op> = problem
                .ops
                .iter()
                .filter(|o| matches!(o.kind, Kind::Read { .. }) && o.invoke > done)
                .collect();
            if let Some(last) = later.iter().max_by_key(|o| (o.invoke, o.id)) {
                hints.push(format!(
                    "lost acknowledged append or stale read: {operation} completed, but no read \
                     returned {token:?}, though {} reads were invoked after it, the last {}",
                    later.len(),
                    history.operation(last.id)
                ));
            }
        }
        Kind::Append { pos: Some(_), .. } => {}
    }
    hints
}
