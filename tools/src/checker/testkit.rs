//! Test histories: a builder for hand-made ones, a simulated run that records linearizable
//! ones, and mutations that each make a history certainly not linearizable.

use super::event::{Event, EventKind, Function};
use super::history::History;
pub(crate) use crate::rng::Rng;

/// Builds a history from operations given as intervals, each by a client of its own.
pub(crate) struct Script {
    events: Vec<Event>,
    key: String,
    next_process: u64,
}

impl Script {
    pub fn new() -> Script {
        Script {
            events: Vec::new(),
            key: "k".to_owned(),
            next_process: 0,
        }
    }

    /// Later operations touch `key`.
    pub fn key(&mut self, key: &str) -> &mut Script {
        self.key = key.to_owned();
        self
    }

    fn process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process - 1
    }

    fn append_invoke(&mut self, token: &str, start: u64) -> Event {
        let p = self.process();
        let invoke = Event::append(p, start, &self.key, token);
        self.events.push(invoke.clone());
        invoke
    }

    fn get_invoke(&mut self, start: u64) -> Event {
        let p = self.process();
        let invoke = Event::get(p, start, &self.key);
        self.events.push(invoke.clone());
        invoke
    }

    pub fn append(&mut self, token: &str, start: u64, end: u64) -> &mut Script {
        let done = self.append_invoke(token, start).ok(end);
        self.events.push(done);
        self
    }

    pub fn append_len(&mut self, token: &str, start: u64, end: u64, len: u64) -> &mut Script {
        let done = self.append_invoke(token, start).ok(end).with_len(len);
        self.events.push(done);
        self
    }

    pub fn append_unknown(&mut self, token: &str, start: u64) -> &mut Script {
        let done = self.append_invoke(token, start).unknown(start + 1);
        self.events.push(done.with_error("timeout"));
        self
    }

    pub fn append_fail(&mut self, token: &str, start: u64, end: u64) -> &mut Script {
        let done = self.append_invoke(token, start).fail(end);
        self.events.push(done);
        self
    }

    pub fn get(&mut self, value: &[&str], start: u64, end: u64) -> &mut Script {
        let done = self
            .get_invoke(start)
            .ok(end)
            .with_value(value.iter().copied());
        self.events.push(done);
        self
    }

    pub fn get_unknown(&mut self, start: u64) -> &mut Script {
        let done = self.get_invoke(start).unknown(start + 1);
        self.events.push(done);
        self
    }

    pub fn get_fail(&mut self, start: u64, end: u64) -> &mut Script {
        let done = self.get_invoke(start).fail(end);
        self.events.push(done);
        self
    }

    /// The events in time order (a stable sort keeps an invoke before its completion).
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.events.clone();
        events.sort_by_key(|e| e.time);
        events
    }

    pub fn history(&self) -> History {
        History::from_events(self.events()).expect("a script makes a well-formed history")
    }
}

/// The shape of a simulated run.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub processes: u64,
    pub keys: usize,
    pub ops: usize,
    pub get_percent: u64,
    pub fail_percent: u64,
    pub unknown_percent: u64,
    /// Of ok appends, how many record the replied length.
    pub len_percent: u64,
}

impl Workload {
    /// A small random shape, so that a failure is a history a person can read.
    pub fn small(rng: &mut Rng) -> Workload {
        Workload {
            processes: 1 + rng.below(6),
            keys: 1 + rng.index(3),
            ops: 5 + rng.index(60),
            get_percent: 20 + rng.below(40),
            fail_percent: rng.below(10),
            unknown_percent: rng.below(15),
            len_percent: rng.below(101),
        }
    }
}

/// Tokens are all this many bytes, so a length off by one can never match.
const TOKEN_BYTES: u64 = 8;

enum Plan {
    Ok,
    Fail,
    Unknown,
}

struct InFlight {
    invoke: Event,
    key: usize,
    plan: Plan,
    applied: bool,
    reply: Event,
}

/// A run against a correct, sequential key-value store: each operation takes effect at one
/// instant strictly inside its interval (ok), never (fail), or maybe, even after its client
/// gave up (unknown). Ends with one final read per key after everything took effect.
pub(crate) fn simulate(rng: &mut Rng, w: &Workload) -> Vec<Event> {
    let mut values: Vec<Vec<String>> = vec![Vec::new(); w.keys];
    let mut flight: Vec<Option<InFlight>> = (0..w.processes).map(|_| None).collect();
    let mut late: Vec<(usize, String)> = Vec::new();
    let mut events = Vec::new();
    let (mut time, mut issued, mut tokens) = (0u64, 0usize, 0u64);
    loop {
        let busy = flight.iter().any(Option::is_some);
        if issued >= w.ops && !busy && late.is_empty() {
            break;
        }
        time += 1 + rng.below(3);
        if !late.is_empty() && rng.chance(10) {
            let (key, token) = late.swap_remove(rng.index(late.len()));
            values[key].push(token);
            continue;
        }
        let p = rng.index(flight.len());
        let Some(op) = &mut flight[p] else {
            if issued < w.ops {
                issued += 1;
                let key = rng.index(w.keys);
                let name = format!("k{key}");
                let invoke = if rng.chance(w.get_percent) {
                    Event::get(p as u64, time, &name)
                } else {
                    tokens += 1;
                    Event::append(p as u64, time, &name, &format!("t{tokens:07}"))
                };
                let plan = match rng.below(100) {
                    x if x < w.fail_percent => Plan::Fail,
                    x if x < w.fail_percent + w.unknown_percent => Plan::Unknown,
                    _ => Plan::Ok,
                };
                events.push(invoke.clone());
                flight[p] = Some(InFlight {
                    reply: invoke.clone(),
                    invoke,
                    key,
                    plan,
                    applied: false,
                });
            }
            continue;
        };
        let value = &mut values[op.key];
        match op.plan {
            Plan::Ok if !op.applied => {
                op.applied = true;
                op.reply = apply(rng, &op.invoke, value, w.len_percent);
                continue;
            }
            Plan::Ok => {
                let mut done = op.invoke.ok(time);
                (done.value, done.len) = (op.reply.value.take(), op.reply.len);
                events.push(done);
            }
            Plan::Fail => events.push(op.invoke.fail(time)),
            Plan::Unknown => {
                if let Some(token) = &op.invoke.token {
                    match rng.below(3) {
                        0 => value.push(token.clone()),
                        1 => late.push((op.key, token.clone())),
                        _ => {}
                    }
                }
                events.push(op.invoke.unknown(time).with_error("timeout"));
            }
        }
        flight[p] = None;
    }
    for (key, value) in values.iter().enumerate() {
        let read = Event::get(w.processes + key as u64, time + 1, &format!("k{key}"));
        events.push(read.clone());
        events.push(read.ok(time + 2).with_value(value.iter().cloned()));
    }
    events
}

/// The operation takes effect; returns its invoke with the reply filled in, for the
/// completion to copy.
fn apply(rng: &mut Rng, invoke: &Event, value: &mut Vec<String>, len_percent: u64) -> Event {
    let mut reply = invoke.clone();
    match &invoke.token {
        Some(token) => {
            value.push(token.clone());
            if rng.chance(len_percent) {
                reply.len = Some(value.len() as u64 * TOKEN_BYTES);
            }
        }
        None => reply.value = Some(value.clone()),
    }
    reply
}

/// An edit to one event of a history.
enum Edit {
    Remove { event: usize, at: usize },
    Push { event: usize, token: String },
    Swap { event: usize, at: usize },
    Len { event: usize, len: u64 },
    Fail { event: usize },
}

/// Makes a linearizable history certainly not linearizable, by one edit chosen at random
/// among those that apply; returns what it did, or `None` if none applies.
pub(crate) fn mutate(rng: &mut Rng, events: &mut [Event]) -> Option<String> {
    let history = History::from_events(events.to_vec()).ok()?;
    let ops = history.operations();
    let reads: Vec<_> = ops
        .iter()
        .filter(|o| o.ok_at().is_some() && o.read_value().is_some())
        .collect();
    let appends: Vec<_> = ops.iter().filter(|o| o.token().is_some()).collect();
    let line = |op: &super::Operation| op.complete_line.map(|l| l - 1);
    let mut edits: Vec<(Edit, String)> = Vec::new();
    for r in &reads {
        let (Some(event), Some(value), Some(done)) = (line(r), r.read_value(), r.ok_at()) else {
            continue;
        };
        for (at, token) in value.iter().enumerate() {
            let append = appends.iter().find(|a| a.token() == Some(token.as_str()));
            // It completed before the read began: the read must contain it.
            if append.is_some_and(|a| a.ok_at().is_some_and(|t| t < r.invoke)) {
                edits.push((
                    Edit::Remove { event, at },
                    format!("stale read: {r} loses {token:?}"),
                ));
            }
            // Another read also holds both tokens, in this order: swapping makes them disagree.
            if let Some(next) = value.get(at + 1) {
                let both = |o: &&&super::Operation| {
                    o.id != r.id
                        && o.read_value()
                            .is_some_and(|v| v.contains(token) && v.contains(next))
                };
                if reads.iter().any(|o| both(&o)) {
                    edits.push((
                        Edit::Swap { event, at },
                        format!("{r}: {token:?} and {next:?} swapped"),
                    ));
                }
            }
        }
        for a in &appends {
            // Invoked after the read completed, so the read cannot contain it.
            if a.key == r.key
                && a.invoke > done
                && !matches!(a.outcome, super::Outcome::Fail { .. })
            {
                let token = a.token().unwrap_or_default().to_owned();
                edits.push((
                    Edit::Push {
                        event,
                        token: token.clone(),
                    },
                    format!("{r} reads {token:?} from the future"),
                ));
            }
        }
        if let Some(token) = value.first() {
            edits.push((
                Edit::Push {
                    event,
                    token: token.clone(),
                },
                format!("{r} returns {token:?} twice"),
            ));
        }
        edits.push((
            Edit::Push {
                event,
                token: "zzzzzzzz".into(),
            },
            format!("{r} returns an unwritten token"),
        ));
    }
    for a in &appends {
        let Some(event) = line(a) else { continue };
        if let super::Call::Append { len: Some(len), .. } = a.call {
            // Every length is a multiple of TOKEN_BYTES.
            edits.push((
                Edit::Len {
                    event,
                    len: len + 1,
                },
                format!("{a}: length off by one"),
            ));
        }
        let token = a.token().unwrap_or_default();
        if a.ok_at().is_some()
            && reads
                .iter()
                .any(|r| r.read_value().is_some_and(|v| v.iter().any(|t| t == token)))
        {
            edits.push((
                Edit::Fail { event },
                format!("{a} fails, yet a read returned its token"),
            ));
        }
    }
    if edits.is_empty() {
        return None;
    }
    let (edit, what) = edits.swap_remove(rng.index(edits.len()));
    match edit {
        Edit::Remove { event, at } => {
            events[event].value.as_mut()?.remove(at);
        }
        Edit::Push { event, token } => events[event].value.as_mut()?.push(token),
        Edit::Swap { event, at } => events[event].value.as_mut()?.swap(at, at + 1),
        Edit::Len { event, len } => events[event].len = Some(len),
        Edit::Fail { event } => {
            let e = &mut events[event];
            debug_assert_eq!((e.kind, e.f), (EventKind::Ok, Function::Append));
            e.kind = EventKind::Fail;
            e.len = None;
        }
    }
    Some(what)
}

/// A tiny random history of one key, with arbitrary intervals, outcomes, lengths and read
/// values: linearizable or not, by chance. Reads mostly return prefixes of one order of the
/// tokens, so that both verdicts are common.
pub(crate) fn tiny(rng: &mut Rng) -> Script {
    const TOKENS: [&str; 5] = ["a", "bb", "c", "dd", "e"];
    let appends = 1 + rng.index(4);
    let mut order: Vec<&str> = TOKENS[..appends].to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.index(i + 1));
    }
    let mut script = Script::new();
    let interval = |rng: &mut Rng| {
        let start = rng.below(12);
        (start, start + rng.below(8))
    };
    for token in &TOKENS[..appends] {
        let (start, end) = interval(rng);
        match rng.below(10) {
            0 => script.append_fail(token, start, end),
            1 | 2 => script.append_unknown(token, start),
            3 | 4 => {
                let upto = 1 + rng.index(appends);
                let len = order[..upto].iter().map(|t| t.len() as u64).sum();
                script.append_len(token, start, end, len)
            }
            _ => script.append(token, start, end),
        };
    }
    for _ in 0..1 + rng.index(3) {
        let (start, end) = interval(rng);
        let mut value: Vec<&str> = order[..rng.index(appends + 1)].to_vec();
        if value.len() >= 2 && rng.chance(15) {
            value.swap(0, 1);
        }
        script.get(&value, start, end);
    }
    script
}

/// Linearizability by brute force, on the plain model (the value as a list of tokens), with
/// none of the checker's reductions: tries every order that real time allows, with every
/// subset of unknown appends. For a handful of operations only.
pub(crate) fn brute_force(history: &History) -> bool {
    use super::{Call, Operation, Outcome};
    let ops: Vec<&Operation> = history
        .operations()
        .iter()
        .filter(|op| {
            // Fail operations and unknown reads constrain nothing.
            !matches!(
                (&op.call, op.outcome),
                (_, Outcome::Fail { .. }) | (Call::Get { .. }, Outcome::Unknown)
            )
        })
        .collect();
    fn search(ops: &[&Operation], placed: &mut Vec<bool>, value: &mut Vec<String>) -> bool {
        let open = |i: usize, placed: &[bool]| !placed[i];
        if (0..ops.len()).all(|i| !open(i, placed) || ops[i].ok_at().is_none()) {
            return true;
        }
        for i in 0..ops.len() {
            let must_wait = (0..ops.len()).any(|j| {
                j != i && open(j, placed) && ops[j].ok_at().is_some_and(|at| at < ops[i].invoke)
            });
            if !open(i, placed) || must_wait {
                continue;
            }
            let pushed = match &ops[i].call {
                Call::Get { value: read } => {
                    if read.as_ref() != Some(value) {
                        continue;
                    }
                    false
                }
                Call::Append { token, len } => {
                    value.push(token.clone());
                    let bytes: usize = value.iter().map(String::len).sum();
                    if len.is_some_and(|len| len != bytes as u64) {
                        value.pop();
                        continue;
                    }
                    true
                }
            };
            placed[i] = true;
            let found = search(ops, placed, value);
            placed[i] = false;
            if pushed {
                value.pop();
            }
            if found {
                return true;
            }
        }
        false
    }
    search(&ops, &mut vec![false; ops.len()], &mut Vec::new())
}
