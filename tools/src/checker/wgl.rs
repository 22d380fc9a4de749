//! The Wing–Gong–Lowe search for a linearization of one key's operations.
//!
//! Lowe's variant ("Testing for linearizability", 2017) of Wing and Gong's algorithm, as
//! Porcupine and Knossos implement it: the operations' invoke and completion times form one
//! list in time order; the operations that may be linearized next are those invoked before
//! the earliest completion still in the list. The search linearizes one (removing its two
//! entries), and backtracks when it meets a completion whose operation it could not place.
//! A cache of (linearized set, state) pairs already explored keeps it from exploring the same
//! configuration twice: a second visit would end as the first did, since a successful visit
//! ends the search.
//!
//! Unknown operations have no completion entry: they stay candidates from their invoke on
//! and never need to be linearized. The search succeeds once every operation that has a
//! completion is linearized.
//!
//! One pruning on top, specific to the model ([`super::model`]): a read that matches the
//! current value and is a candidate is linearized at once, without trying the alternatives
//! ("forced"); when the search backtracks over it, it backtracks further. This is sound
//! because the value only grows (tokens are not empty) and a read does not change it: in any
//! linearization of the rest, only reads of this same value can precede that read, and it may
//! be moved in front of them, since none of them had to precede it in real time (it is a
//! candidate). Without it, k concurrent reads of one value cost 2^k configurations on a
//! failure.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Budget;
use super::model::{Kind, Problem, State};

/// How often, in steps, the search looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// The end of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Search {
    /// A linearization exists.
    Linearizable {
        /// Steps taken.
        steps: u64,
    },
    /// None exists; `deepest` is a longest linearizable prefix found (indices into
    /// `Problem::ops`, in linearization order).
    Violation {
        /// Steps taken.
        steps: u64,
        /// The prefix.
        deepest: Vec<u32>,
    },
    /// The budget ran out first.
    OutOfBudget {
        /// Steps taken.
        steps: u64,
        /// Time taken.
        elapsed: Duration,
        /// The longest linearizable prefix found so far.
        deepest: Vec<u32>,
    },
}

/// Searches for a linearization of `problem` within `budget`.
pub(crate) fn search(problem: &Problem, budget: &Budget) -> Search {
    Searcher::new(problem).run(budget)
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// An entry of the doubly linked time-ordered list; entry 0 is the head sentinel.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: u32,
    is_call: bool,
    prev: u32,
    next: u32,
}

/// A frame of the search stack: the call entry linearized and the state before it.
#[derive(Clone, Copy, Debug)]
struct Frame {
    entry: u32,
    before: State,
    forced: bool,
}

struct Searcher<'a> {
    problem: &'a Problem,
    entries: Vec<Entry>,
    /// Per op: its call entry and its completion entry (`NIL` if unknown).
    call_of: Vec<u32>,
    return_of: Vec<u32>,
    linearized: Linearized,
    cache: HashSet<(CacheKey, State)>,
    stack: Vec<Frame>,
    state: State,
    required_remaining: usize,
    observed_remaining: usize,
    deepest: Vec<u32>,
}

impl<'a> Searcher<'a> {
    fn new(problem: &'a Problem) -> Searcher<'a> {
        let n = problem.ops.len();
        // Calls before completions at the same time: intervals that touch count as
        // overlapping, so the checker never demands an order the clock cannot show.
        let mut timeline: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in (0u32..).zip(&problem.ops) {
            timeline.push((op.invoke, false, i));
            if let Some(complete) = op.complete {
                timeline.push((complete, true, i));
            }
        }
        timeline.sort_unstable();
        let mut entries = vec![Entry {
            op: NIL,
            is_call: false,
            prev: NIL,
            next: NIL,
        }];
        let mut call_of = vec![NIL; n];
        let mut return_of = vec![NIL; n];
        for (_, is_return, op) in timeline {
            let index = entries.len() as u32;
            entries.push(Entry {
                op,
                is_call: !is_return,
                prev: index - 1,
                next: NIL,
            });
            entries[index as usize - 1].next = index;
            if is_return {
                return_of[op as usize] = index;
            } else {
                call_of[op as usize] = index;
            }
        }
        Searcher {
            problem,
            entries,
            call_of,
            return_of,
            linearized: Linearized::new(n),
            cache: HashSet::new(),
            stack: Vec::new(),
            state: State::default(),
            required_remaining: problem.ops.iter().filter(|op| op.is_required()).count(),
            observed_remaining: problem.ops.iter().filter(|op| op.is_observed()).count(),
            deepest: Vec::new(),
        }
    }

    fn run(mut self, budget: &Budget) -> Search {
        let start = Instant::now();
        let mut steps = 0u64;
        let mut cursor = self.entries[HEAD as usize].next;
        let mut fresh_node = true;
        loop {
            if self.required_remaining == 0 {
                return Search::Linearizable { steps };
            }
            let out_of_time = steps % CLOCK_EVERY == CLOCK_EVERY - 1
                && budget.max_time.is_some_and(|max| start.elapsed() >= max);
            if steps >= budget.max_steps || out_of_time {
                self.note_depth();
                return Search::OutOfBudget {
                    steps,
                    elapsed: start.elapsed(),
                    deepest: self.deepest,
                };
            }
            steps += 1;
            if fresh_node {
                fresh_node = false;
                if let Some(read) = self.forced_read() {
                    if self.place(read, true) {
                        cursor = self.entries[HEAD as usize].next;
                        fresh_node = true;
                        continue;
                    }
                    // Explored before, and failed: so does this node, by the forcing rule.
                    match self.backtrack() {
                        Some(next) => cursor = next,
                        None => return self.violation(steps),
                    }
                    continue;
                }
            }
            let at_call = cursor != NIL && self.entries[cursor as usize].is_call;
            if !at_call {
                // A completion whose operation is not linearized: every order from here
                // leaves it out, so this node fails.
                match self.backtrack() {
                    Some(next) => cursor = next,
                    None => return self.violation(steps),
                }
            } else if self.place(cursor, false) {
                cursor = self.entries[HEAD as usize].next;
                fresh_node = true;
            } else {
                cursor = self.entries[cursor as usize].next;
            }
        }
    }

    fn violation(self, steps: u64) -> Search {
        Search::Violation {
            steps,
            deepest: self.deepest,
        }
    }

    /// A candidate read that the current value satisfies.
    fn forced_read(&self) -> Option<u32> {
        let mut cursor = self.entries[HEAD as usize].next;
        while cursor != NIL && self.entries[cursor as usize].is_call {
            let op = &self.problem.ops[self.entries[cursor as usize].op as usize];
            if matches!(op.kind, Kind::Read { len } if len == self.state.prefix) {
                return Some(cursor);
            }
            cursor = self.entries[cursor as usize].next;
        }
        None
    }

    /// Linearizes the operation of a call entry if the model allows it and the resulting
    /// configuration is new.
    fn place(&mut self, entry: u32, forced: bool) -> bool {
        let index = self.entries[entry as usize].op;
        let op = &self.problem.ops[index as usize];
        let Ok(next) = self.problem.step(self.state, op, self.observed_remaining) else {
            return false;
        };
        self.linearized.set(index);
        if !self.cache.insert((self.linearized.key(), next)) {
            self.linearized.clear(index);
            return false;
        }
        self.stack.push(Frame {
            entry,
            before: self.state,
            forced,
        });
        self.state = next;
        self.required_remaining -= usize::from(op.is_required());
        self.observed_remaining -= usize::from(op.is_observed());
        self.lift(index);
        true
    }

    /// Undoes linearizations up to the newest one made by choice, and returns the entry
    /// after it: the next alternative to try. `None`: no alternative is left.
    fn backtrack(&mut self) -> Option<u32> {
        self.note_depth();
        while let Some(frame) = self.stack.pop() {
            let index = self.entries[frame.entry as usize].op;
            let op = &self.problem.ops[index as usize];
            self.unlift(index);
            self.linearized.clear(index);
            self.state = frame.before;
            self.required_remaining += usize::from(op.is_required());
            self.observed_remaining += usize::from(op.is_observed());
            if !frame.forced {
                return Some(self.entries[frame.entry as usize].next);
            }
        }
        None
    }

    fn note_depth(&mut self) {
        if self.stack.len() > self.deepest.len() {
            self.deepest = self
                .stack
                .iter()
                .map(|frame| self.entries[frame.entry as usize].op)
                .collect();
        }
    }

    /// Removes an operation's entries from the list (call first).
    fn lift(&mut self, op: u32) {
        self.unlink(self.call_of[op as usize]);
        if self.return_of[op as usize] != NIL {
            self.unlink(self.return_of[op as usize]);
        }
    }

    /// Puts back an operation's entries, in the reverse order of `lift`; the entries kept
    /// their own links, and the undo is last-in first-out.
    fn unlift(&mut self, op: u32) {
        if self.return_of[op as usize] != NIL {
            self.relink(self.return_of[op as usize]);
        }
        self.relink(self.call_of[op as usize]);
    }

    fn unlink(&mut self, entry: u32) {
        let Entry { prev, next, .. } = self.entries[entry as usize];
        self.entries[prev as usize].next = next;
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn relink(&mut self, entry: u32) {
        let Entry { prev, next, .. } = self.entries[entry as usize];
        self.entries[prev as usize].next = entry;
        if next != NIL {
            self.entries[next as usize].prev = entry;
        }
    }
}

/// The set of linearized operations as a bitset that knows its leading run of full words
/// and its last non-empty word, so a cache key holds only the words in between: the search
/// linearizes roughly in time order, so the key stays a few words long however long the
/// history.
struct Linearized {
    words: Vec<u64>,
    /// `words[..full]` are all ones.
    full: usize,
    /// `words[top..]` are all zeros.
    top: usize,
}

/// A linearized set: `lead` full words, then `words`, then zeros.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    lead: u32,
    words: Box<[u64]>,
}

impl Linearized {
    fn new(n: usize) -> Linearized {
        Linearized {
            words: vec![0; n.div_ceil(64)],
            full: 0,
            top: 0,
        }
    }

    fn set(&mut self, i: u32) {
        let w = (i / 64) as usize;
        self.words[w] |= 1 << (i % 64);
        self.top = self.top.max(w + 1);
        while self.full < self.words.len() && self.words[self.full] == u64::MAX {
            self.full += 1;
        }
    }

    fn clear(&mut self, i: u32) {
        let w = (i / 64) as usize;
        self.words[w] &= !(1 << (i % 64));
        self.full = self.full.min(w);
    }

    fn key(&mut self) -> CacheKey {
        while self.top > self.full && self.words[self.top - 1] == 0 {
            self.top -= 1;
        }
        let top = self.top.max(self.full);
        CacheKey {
            lead: self.full as u32,
            words: self.words[self.full..top].into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linearized_keys_are_canonical() {
        let mut a = Linearized::new(200);
        let mut b = Linearized::new(200);
        for i in 0..70 {
            a.set(i);
        }
        for i in (0..70).rev() {
            b.set(i);
        }
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key().lead, 1);
        assert_eq!(a.key().words.len(), 1);
        a.set(150);
        a.clear(150);
        assert_eq!(a.key(), b.key());
        a.clear(3);
        assert_eq!(a.key().lead, 0);
        assert_eq!(a.key().words.len(), 2);
        a.set(3);
        assert_eq!(a.key(), b.key());
        let mut all = Linearized::new(128);
        (0..128).for_each(|i| all.set(i));
        assert_eq!(
            all.key(),
            CacheKey {
                lead: 2,
                words: Box::new([])
            }
        );
    }
}
