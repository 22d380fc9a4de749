//! What the checker concludes: a verdict per key, and counts over the whole run, with two
//! direct audits that need no search and that a person reads first: acknowledged appends
//! missing from the final read, and tokens read that no append wrote.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use super::history::{Call, OpId, Operation, Outcome};

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The key's operations are linearizable.
    Ok,
    /// They are not; the explanation names the operations involved.
    Violation {
        /// For a person.
        explanation: String,
    },
    /// The search ran out of budget before deciding.
    Inconclusive {
        /// For a person.
        reason: String,
    },
}

/// Operations by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// All operations.
    pub ops: usize,
    /// Ended `ok`.
    pub ok: usize,
    /// Ended `fail`.
    pub fail: usize,
    /// Ended `unknown`, or not at all.
    pub unknown: usize,
}

impl Counts {
    pub(crate) fn of<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> Counts {
        let mut counts = Counts::default();
        for op in ops {
            counts.ops += 1;
            match op.outcome {
                Outcome::Ok { .. } => counts.ok += 1,
                Outcome::Fail { .. } => counts.fail += 1,
                Outcome::Unknown => counts.unknown += 1,
            }
        }
        counts
    }
}

/// The result for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Its operations by outcome.
    pub counts: Counts,
    /// Ok appends whose token the last ok read of the key lacks, though that read was invoked
    /// after the append completed. Each is a violation.
    pub missing_acknowledged_appends: Vec<OpId>,
    /// Tokens some ok read returned that no append to the key wrote. Each is a violation.
    pub unwritten_tokens: Vec<String>,
    /// Search steps taken (0 if no search was needed).
    pub steps: u64,
}

/// Counts over all keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// All operations.
    pub ops: usize,
    /// Ended `ok`.
    pub ok: usize,
    /// Ended `fail`.
    pub fail: usize,
    /// Ended `unknown`, or not at all.
    pub unknown: usize,
    /// Acknowledged appends missing from the final read of their key: must be 0.
    pub missing_acknowledged_appends: usize,
    /// Tokens read that no append wrote: must be 0.
    pub unwritten_tokens: usize,
    /// Keys found linearizable.
    pub keys_ok: usize,
    /// Keys with a violation.
    pub keys_violated: usize,
    /// Keys the search could not decide within its budget.
    pub keys_inconclusive: usize,
}

/// The checker's result for a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One per key, in key order.
    pub keys: Vec<KeyReport>,
    /// Counts over all keys.
    pub summary: Summary,
}

impl Report {
    pub(crate) fn new(keys: Vec<KeyReport>) -> Report {
        let mut summary = Summary::default();
        for key in &keys {
            summary.ops += key.counts.ops;
            summary.ok += key.counts.ok;
            summary.fail += key.counts.fail;
            summary.unknown += key.counts.unknown;
            summary.missing_acknowledged_appends += key.missing_acknowledged_appends.len();
            summary.unwritten_tokens += key.unwritten_tokens.len();
            match key.verdict {
                Verdict::Ok => summary.keys_ok += 1,
                Verdict::Violation { .. } => summary.keys_violated += 1,
                Verdict::Inconclusive { .. } => summary.keys_inconclusive += 1,
            }
        }
        Report { keys, summary }
    }

    /// Every key is linearizable and both audits found nothing.
    pub fn is_linearizable(&self) -> bool {
        let s = &self.summary;
        s.keys_violated == 0
            && s.keys_inconclusive == 0
            && s.missing_acknowledged_appends == 0
            && s.unwritten_tokens == 0
    }

    /// Some key is not linearizable, or an audit found something.
    pub fn has_violation(&self) -> bool {
        let s = &self.summary;
        s.keys_violated > 0 || s.missing_acknowledged_appends > 0 || s.unwritten_tokens > 0
    }
}

impl fmt::Display for Report {
    /// A summary line, then each key that is not `Ok` with its explanation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let conclusion = if self.is_linearizable() {
            "linearizable"
        } else if self.has_violation() {
            "NOT linearizable"
        } else {
            "inconclusive"
        };
        writeln!(
            f,
            "{conclusion}: {} keys ({} ok, {} violated, {} inconclusive), {} operations ({} ok, \
             {} fail, {} unknown); {} acknowledged appends missing from the final read; {} \
             tokens read that no append wrote",
            self.keys.len(),
            s.keys_ok,
            s.keys_violated,
            s.keys_inconclusive,
            s.ops,
            s.ok,
            s.fail,
            s.unknown,
            s.missing_acknowledged_appends,
            s.unwritten_tokens,
        )?;
        for key in &self.keys {
            let (label, text) = match &key.verdict {
                Verdict::Ok => continue,
                Verdict::Violation { explanation } => ("violation", explanation),
                Verdict::Inconclusive { reason } => ("inconclusive", reason),
            };
            writeln!(f, "key {:?}: {label}", key.key)?;
            for line in text.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Ok appends whose token the last ok read of the key (by invoke time) lacks, though that
/// read was invoked after the append completed. "The last ok read invoked after the append
/// completed" is simply the last ok read, when it was.
pub(crate) fn missing_acknowledged(ops: &[&Operation]) -> Vec<OpId> {
    let Some(last) = ops
        .iter()
        .filter(|op| op.ok_at().is_some() && op.read_value().is_some())
        .max_by_key(|op| (op.invoke, op.id))
    else {
        return Vec::new();
    };
    let tokens: HashSet<&str> = last
        .read_value()
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    ops.iter()
        .filter(|op| op.ok_at().is_some_and(|at| at < last.invoke))
        .filter(|op| op.token().is_some_and(|t| !tokens.contains(t)))
        .map(|op| op.id)
        .collect()
}

/// Distinct tokens that ok reads returned and no append to the key wrote (in any outcome;
/// the token of a failed append is a violation the search reports, not an unwritten token).
pub(crate) fn unwritten_tokens(ops: &[&Operation]) -> Vec<String> {
    let written: HashSet<&str> = ops.iter().filter_map(|op| op.token()).collect();
    let reads: Vec<&[String]> = ops
        .iter()
        .filter_map(|op| match (&op.call, op.outcome) {
            (Call::Get { value: Some(value) }, Outcome::Ok { .. }) => Some(&value[..]),
            _ => None,
        })
        .collect();
    // A prefix of the longest read has no token the longest lacks: skip it, cheaply.
    let longest = reads
        .iter()
        .copied()
        .max_by_key(|v| v.len())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    let mut unwritten = Vec::new();
    let others = reads.iter().filter(|v| !longest.starts_with(v));
    for value in std::iter::once(&longest).chain(others) {
        for token in value.iter() {
            if !written.contains(token.as_str()) && seen.insert(token.as_str()) {
                unwritten.push(token.clone());
            }
        }
    }
    unwritten
}
