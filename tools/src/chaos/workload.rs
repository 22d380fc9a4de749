//! The clients: each appends unique tokens to and reads a few keys through one node at a
//! time, and records every operation (invoke, then ok / fail / unknown) in the history.
//!
//! Outcomes are classified conservatively: an operation is `fail` only when it certainly
//! had no effect, and `unknown` whenever it may have had one, because calling an applied
//! write `fail` would make the checker report a violation that is the runner's mistake.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::recorder::Recorder;
use crate::checker::{Event, EventKind, Function};
use crate::resp::{ClientError, Connection, Reply};
use crate::rng::Rng;

/// What the clients do, shared by all of them.
#[derive(Debug)]
pub struct Workload {
    /// The nodes' client addresses (node id `i + 1` at index `i`).
    pub addrs: Vec<SocketAddr>,
    /// The keys operations pick from.
    pub keys: Keys,
    /// How long a client waits for a reply before calling the outcome unknown. Longer than
    /// the node's request timeout, so that the node's own answer usually comes first.
    pub op_timeout: Duration,
    /// How long a client waits for a connection.
    pub connect_timeout: Duration,
    /// Percent of operations that are appends (the rest are reads).
    pub append_percent: u64,
    /// The most a client pauses between operations (uniformly from zero): leaves the CPU to
    /// the nodes and keeps the history of a long run to a size a person can open.
    pub think: Duration,
}

/// The keys: a few slots used at once, each moving on to a fresh key after a number of
/// appends. Why: every read records the key's whole value, so a key that grew for the
/// whole run would make the history grow with the square of its length; and the checker's
/// work per key stays small.
#[derive(Debug)]
pub struct Keys {
    appends_per_key: u64,
    /// Per slot: its current generation and the appends sent to that key so far.
    slots: Mutex<Vec<(u64, u64)>>,
}

impl Keys {
    /// `slots` keys in use at any time, each replaced after `appends_per_key` appends.
    pub fn new(slots: usize, appends_per_key: u64) -> Keys {
        Keys {
            appends_per_key: appends_per_key.max(1),
            slots: Mutex::new(vec![(0, 0); slots.max(1)]),
        }
    }

    fn name(slot: usize, generation: u64) -> String {
        format!("k{slot}-{generation}")
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.lock().len()
    }

    /// The key to append to in `slot`, counting the append.
    pub fn for_append(&self, slot: usize) -> String {
        let mut slots = self.lock();
        let (generation, appends) = &mut slots[slot];
        if *appends == self.appends_per_key {
            *generation += 1;
            *appends = 0;
        }
        *appends += 1;
        Keys::name(slot, *generation)
    }

    /// The key to read in `slot`.
    pub fn for_read(&self, slot: usize) -> String {
        Keys::name(slot, self.lock()[slot].0)
    }

    /// The key each slot uses now.
    pub fn current(&self) -> Vec<String> {
        let slots = self.lock();
        slots
            .iter()
            .enumerate()
            .map(|(slot, &(generation, _))| Keys::name(slot, generation))
            .collect()
    }

    /// Every key used so far.
    pub fn all(&self) -> Vec<String> {
        let slots = self.lock();
        let mut out = Vec::new();
        for (slot, &(generation, _)) in slots.iter().enumerate() {
            out.extend((0..=generation).map(|g| Keys::name(slot, g)));
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hands out process ids. A client takes a new one after an unknown outcome, as Jepsen does:
/// the old operation may still take effect, so the old process stays "in flight" forever.
#[derive(Debug, Default)]
pub struct ProcessIds(AtomicU64);

impl ProcessIds {
    /// A process id never handed out before.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The token a process appends as its `seq`-th append: unique in the run (process ids are),
/// and ended by `;` so that a read's value splits back into tokens ([`split_tokens`]).
pub fn token(process: u64, seq: u64) -> String {
    format!("p{process}-{seq};")
}

/// A value read from a key, as the tokens appended to it: each piece up to and including a
/// `;`. A trailing piece without one (which no append wrote) is kept, so that the checker
/// sees a token no append wrote instead of the runner hiding it.
pub fn split_tokens(value: &[u8]) -> Vec<String> {
    value
        .split_inclusive(|&b| b == b';')
        .map(|piece| String::from_utf8_lossy(piece).into_owned())
        .collect()
}

/// How a write ended, from the text of an error reply.
///
/// `fail` only for the node's words for "refused before it was proposed" or "proposed and
/// then certainly dropped": `... it was not applied` (a leadership change replaced the
/// entry, or a forward that never left) and the not-leader refusal. Everything else is
/// `unknown`: `no leader or no quorum within N ms; a write may or may not have been
/// applied`, `forwarding to leader N failed`, `the write's outcome is unknown`, and also
/// `the node is shutting down`, which the node sends as well when the entry was proposed
/// and the node stopped before applying it (its waiter is dropped): another leader may
/// still commit that entry.
pub fn write_error_outcome(text: &str) -> EventKind {
    let refused = text.contains("it was not applied")
        || text.contains("not the leader")
        || text.starts_with("TRYAGAIN no leader is known");
    if refused {
        EventKind::Fail
    } else {
        EventKind::Unknown
    }
}

/// What came back for a request that was sent (or may have been).
#[derive(Debug)]
pub enum Response {
    /// A reply.
    Reply(Reply),
    /// No reply within the client's timeout.
    Timeout,
    /// The connection failed after the request was (perhaps) sent: a dropped connection, a
    /// reset, a protocol error.
    Broken(ClientError),
}

/// The completion event for `invoke` given what came back. Its time is set on recording.
pub fn completion(invoke: &Event, response: Response) -> Event {
    let reply = match response {
        Response::Reply(reply) => reply,
        Response::Timeout => return no_reply(invoke, "timeout"),
        Response::Broken(e) => return no_reply(invoke, &e.to_string()),
    };
    match (invoke.f, reply) {
        (Function::Append, Reply::Integer(len)) if len >= 0 => invoke.ok(0).with_len(len as u64),
        (Function::Append, Reply::Error(text)) => {
            let event = match write_error_outcome(&text) {
                EventKind::Fail => invoke.fail(0),
                _ => invoke.unknown(0),
            };
            event.with_error(&text)
        }
        // An append answered with anything else: the node did something, we cannot say what.
        (Function::Append, other) => invoke
            .unknown(0)
            .with_error(&format!("unexpected reply {other:?}")),
        (Function::Get, Reply::Bulk(value)) => invoke.ok(0).with_value(split_tokens(&value)),
        (Function::Get, Reply::Nil) => invoke.ok(0).with_value(Vec::<String>::new()),
        // A read has no effect: any other reply is a failed read, which the checker drops.
        (Function::Get, Reply::Error(text)) => invoke.fail(0).with_error(&text),
        (Function::Get, other) => invoke
            .fail(0)
            .with_error(&format!("unexpected reply {other:?}")),
    }
}

/// A request whose reply never came: a write's outcome is unknown; a read, having no effect,
/// is recorded unknown too (the checker drops both kinds of read alike).
fn no_reply(invoke: &Event, why: &str) -> Event {
    invoke.unknown(0).with_error(why)
}

/// One client: operations one at a time until `stop` turns true; the operation in flight
/// then completes (or times out) and is recorded before the client returns.
pub async fn client(
    worker: usize,
    workload: Arc<Workload>,
    recorder: Arc<Recorder>,
    processes: Arc<ProcessIds>,
    mut rng: Rng,
    stop: watch::Receiver<bool>,
) {
    let nodes = workload.addrs.len();
    let mut node = worker % nodes;
    let mut process = processes.next();
    let mut seq = 0u64;
    let mut conn: Option<Connection> = None;
    while !*stop.borrow() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let addr = workload.addrs[node];
                match tokio::time::timeout(workload.connect_timeout, Connection::connect(addr))
                    .await
                {
                    Ok(Ok(c)) => conn.insert(c),
                    // Nothing was sent: no operation to record. Try the next node.
                    _ => {
                        node = (node + 1) % nodes;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
        };
        let slot = rng.below(workload.keys.slots() as u64) as usize;
        let (invoke, args) = if rng.chance(workload.append_percent) {
            let key = workload.keys.for_append(slot);
            let token = token(process, seq);
            seq += 1;
            let invoke = Event::append(process, 0, &key, &token);
            (invoke, vec!["APPEND".to_owned(), key, token])
        } else {
            let key = workload.keys.for_read(slot);
            (Event::get(process, 0, &key), vec!["GET".to_owned(), key])
        };
        let invoke = recorder.record(invoke);
        let response = request(c, &args, workload.op_timeout).await;
        let broken = !matches!(response, Response::Reply(_));
        let done = recorder.record(completion(&invoke, response));
        if done.kind == EventKind::Unknown {
            process = processes.next();
            seq = 0;
        }
        if broken {
            // The connection may still deliver this request's late reply: never reuse it.
            conn = None;
            node = (node + 1) % nodes;
        } else if done.kind != EventKind::Ok {
            // The cluster is unsettled (no leader, a node cut off): back off a little, and
            // sometimes try another node, which may be on the majority side.
            if rng.chance(30) {
                conn = None;
                node = (node + 1) % nodes;
            }
            tokio::time::sleep(rng.millis(10, 50)).await;
        } else if rng.chance(1) {
            // Spread the clients over the nodes over time.
            conn = None;
            node = rng.below(nodes as u64) as usize;
        }
        if !workload.think.is_zero() {
            tokio::time::sleep(rng.millis(0, workload.think.as_millis() as u64)).await;
        }
    }
}

/// Sends one request and waits for its reply, at most `within`.
async fn request<A: AsRef<[u8]>>(conn: &mut Connection, args: &[A], within: Duration) -> Response {
    match tokio::time::timeout(within, conn.call(args)).await {
        Err(_) => Response::Timeout,
        Ok(Ok(reply)) => Response::Reply(reply),
        Ok(Err(e)) => Response::Broken(e),
    }
}

/// Reads `key` through `addr` until a read succeeds or `deadline`, recording every attempt
/// (each by a new process: an attempt that timed out stays in flight for the checker). The
/// run does this for every key after healing: the last ok read of a key is what the audit
/// for lost acknowledged appends compares against. Returns whether a read succeeded.
pub async fn final_read(
    addr: SocketAddr,
    key: &str,
    op_timeout: Duration,
    recorder: &Recorder,
    processes: &ProcessIds,
    deadline: tokio::time::Instant,
) -> bool {
    while tokio::time::Instant::now() < deadline {
        let Ok(Ok(mut conn)) =
            tokio::time::timeout(Duration::from_secs(1), Connection::connect(addr)).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let invoke = recorder.record(Event::get(processes.next(), 0, key));
        let response = request(&mut conn, &["GET", key], op_timeout).await;
        if recorder.record(completion(&invoke, response)).kind == EventKind::Ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_split_back() {
        assert_eq!(token(3, 17), "p3-17;");
        // Process 1's 11th token is not process 11's 1st: the dash keeps them apart.
        assert_ne!(token(1, 11), token(11, 1));
        let value = format!("{}{}{}", token(0, 0), token(12, 3), token(1, 11));
        assert_eq!(
            split_tokens(value.as_bytes()),
            ["p0-0;", "p12-3;", "p1-11;"]
        );
        assert!(split_tokens(b"").is_empty());
        assert_eq!(split_tokens(b"p1-0;garbage"), ["p1-0;", "garbage"]);
    }

    #[test]
    fn keys_move_on_after_their_appends() {
        let keys = Keys::new(2, 2);
        assert_eq!(keys.for_append(0), "k0-0");
        assert_eq!(keys.for_append(0), "k0-0");
        assert_eq!(keys.for_read(0), "k0-0");
        assert_eq!(keys.for_append(0), "k0-1");
        assert_eq!(keys.for_read(0), "k0-1");
        assert_eq!(keys.for_read(1), "k1-0");
        assert_eq!(keys.all(), ["k0-0", "k0-1", "k1-0"]);
        assert_eq!(keys.current(), ["k0-1", "k1-0"]);
    }

    #[test]
    fn write_errors_are_fail_only_when_certainly_not_applied() {
        let fail = [
            "TRYAGAIN leadership changed before the write committed; it was not applied",
            "TRYAGAIN no leader is known; retry shortly",
            "ERR not the leader; send RAFT.TRANSFER to node 2",
        ];
        let unknown = [
            "TRYAGAIN no leader or no quorum within 2000 ms; a write may or may not have been \
             applied",
            "TRYAGAIN forwarding to leader 2 failed: connection lost",
            "TRYAGAIN forwarding to leader 2 failed: the leader changed before it answered; \
             the write may or may not have been applied",
            "TRYAGAIN the write's outcome is unknown (state replaced by a snapshot)",
            "TRYAGAIN the node is shutting down",
            "ERR storage error: disk full",
            "something new",
        ];
        for text in fail {
            assert_eq!(write_error_outcome(text), EventKind::Fail, "{text}");
        }
        for text in unknown {
            assert_eq!(write_error_outcome(text), EventKind::Unknown, "{text}");
        }
    }

    #[test]
    fn completions_by_reply() {
        let append = Event::append(1, 10, "k", "p1-0;");
        let get = Event::get(2, 10, "k");
        let c = completion(&append, Response::Reply(Reply::Integer(12)));
        assert_eq!((c.kind, c.len), (EventKind::Ok, Some(12)));
        let c = completion(&append, Response::Timeout);
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventKind::Unknown, Some("timeout"))
        );
        let c = completion(&append, Response::Broken(ClientError::Closed));
        assert_eq!(c.kind, EventKind::Unknown);
        let c = completion(
            &append,
            Response::Reply(Reply::Error("TRYAGAIN x; it was not applied".into())),
        );
        assert_eq!(c.kind, EventKind::Fail);
        let c = completion(&append, Response::Reply(Reply::Simple("OK".into())));
        assert_eq!(c.kind, EventKind::Unknown);

        let c = completion(&get, Response::Reply(Reply::Bulk(b"p1-0;p2-5;".to_vec())));
        assert_eq!(c.kind, EventKind::Ok);
        assert_eq!(c.value, Some(vec!["p1-0;".into(), "p2-5;".into()]));
        let c = completion(&get, Response::Reply(Reply::Nil));
        assert_eq!(c.value, Some(vec![]));
        let c = completion(&get, Response::Reply(Reply::Error("TRYAGAIN x".into())));
        assert_eq!((c.kind, c.value), (EventKind::Fail, None));
        let c = completion(&get, Response::Timeout);
        assert_eq!(c.kind, EventKind::Unknown);
        // Every completion pairs with its invoke in the checker's eyes.
        for c in [
            completion(&get, Response::Timeout),
            completion(&append, Response::Timeout),
        ] {
            assert_eq!(c.process.0 == 1, c.f == Function::Append);
        }
    }
}
