//! The client commands: arity checks, argument parsing, and execution against the node,
//! with Redis's reply types and error texts.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use raft_core::Role;

use crate::auth::{Auth, Identity};
use crate::command::{Command, Outcome, SetCond};
use crate::error::RequestError;
use crate::handle::NodeHandle;
use crate::kv::parse_i64;
use crate::resp::{Protocol, Reply, Request};
use crate::transaction::Route;

/// Size limits checked per command (a violation is an error reply; the connection stays).
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    /// Largest key.
    pub max_key_bytes: usize,
    /// Largest value.
    pub max_value_bytes: usize,
    /// Largest request, all arguments together.
    pub max_request_bytes: usize,
}

/// One connection's state that commands read and change.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who is logged in: none until `AUTH` when a password is required.
    pub identity: Option<Identity>,
    /// The client's address (failed logins are slowed down per address).
    pub peer: IpAddr,
    /// The connection's id (`CLIENT ID`): unique in this process, in connection order.
    pub id: u64,
    /// The name set by `CLIENT SETNAME` or `HELLO … SETNAME`.
    pub name: Option<Bytes>,
    /// The reply protocol, chosen with `HELLO`.
    pub protocol: Protocol,
    /// The writes queued since `MULTI`; none outside a transaction.
    pub(crate) multi: Option<crate::transaction::Transaction>,
}

/// What the connection does after the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Keep serving.
    Continue,
    /// Close (QUIT).
    Close,
}

/// Every command with its arity in Redis's convention: `n` exactly n arguments (the name
/// included), `-n` at least n.
const COMMANDS: &[(&str, i32)] = &[
    ("ping", -1),
    ("echo", 2),
    ("get", 2),
    ("set", -3),
    ("del", -2),
    ("unlink", -2),
    ("exists", -2),
    ("append", 3),
    ("incr", 2),
    ("decr", 2),
    ("incrby", 3),
    ("decrby", 3),
    ("mget", -2),
    ("mset", -3),
    ("dbsize", 1),
    ("keys", 2),
    ("scan", -2),
    ("ttl", 2),
    ("pttl", 2),
    ("expiretime", 2),
    ("pexpiretime", 2),
    ("persist", 2),
    ("touch", -2),
    ("strlen", 2),
    ("type", 2),
    ("setnx", 3),
    ("rename", 3),
    ("renamenx", 3),
    ("flushall", -1),
    ("flushdb", -1),
    ("info", -1),
    ("quit", -1),
    ("multi", 1),
    ("exec", 1),
    ("discard", 1),
    ("watch", -2),
    ("unwatch", 1),
    ("select", 2),
    ("command", -1),
    ("config", -1),
    ("client", -2),
    ("hello", -1),
    ("auth", -2),
    ("raft.info", 1),
    ("raft.snapshot", 1),
    ("raft.transfer", 2),
    ("raft.fault", -2),
    ("raft.member", -3),
];

/// The command's canonical (static, lowercase) name and arity.
fn lookup(name: &[u8]) -> Option<(&'static str, i32)> {
    COMMANDS
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        .copied()
}

/// One request, checked and sorted by how it must run.
pub(crate) enum Step {
    /// Answered already (an unknown command, a wrong number of arguments: Redis says so
    /// before it asks for a login).
    Done(Reply),
    /// A known command with bad arguments: its error is the answer once the client may run
    /// it (before that, NOAUTH or NOPERM, as in Redis).
    Refused(&'static str, Reply),
    /// A write, replicated through the log.
    Write(&'static str, Command),
    /// A read of the state machine, served after a read barrier.
    Read(&'static str, Vec<Bytes>),
    /// Anything else (PING, INFO, RAFT.*, QUIT ...).
    Other(&'static str, Vec<Bytes>),
}

impl Step {
    /// The command's name; none for a request already answered.
    pub(crate) fn name(&self) -> Option<&'static str> {
        match self {
            Step::Done(_) => None,
            Step::Refused(n, _) | Step::Write(n, _) | Step::Read(n, _) | Step::Other(n, _) => {
                Some(n)
            }
        }
    }
}

fn classify(limits: &CommandLimits, request: Request) -> Step {
    let args = match request {
        Request::Args(args) => args,
        Request::TooLarge { bytes } => {
            metrics::counter!("raft_client_commands_total", "cmd" => "too_large", "result" => "error")
                .increment(1);
            return Step::Done(Reply::err(format!(
                "request too large ({bytes} bytes, limit {})",
                limits.max_request_bytes
            )));
        }
    };
    let Some((name, arity)) = lookup(&args[0]) else {
        metrics::counter!("raft_client_commands_total", "cmd" => "unknown", "result" => "error")
            .increment(1);
        return Step::Done(unknown_command(&args));
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        count(name, false);
        return Step::Done(Reply::err(format!(
            "wrong number of arguments for '{name}' command"
        )));
    }
    if let Some(e) = check_sizes(name, &args, limits) {
        return Step::Refused(name, e);
    }
    match name {
        "set" | "setnx" | "del" | "unlink" | "append" | "incr" | "decr" | "incrby" | "decrby"
        | "mset" | "flushall" | "flushdb" | "rename" | "renamenx" => {
            match parse_write(name, &args[1..], limits) {
                Ok(cmd) => Step::Write(name, cmd),
                Err(e) => Step::Refused(name, e),
            }
        }
        "get" | "mget" | "exists" | "touch" | "dbsize" | "strlen" | "type" | "keys" | "scan"
        | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" => Step::Read(name, args),
        _ => Step::Other(name, args),
    }
}

/// Bytes of replies one turn of [`execute_pipeline`] builds before it stops and lets the
/// connection write them: a few small requests (GET of a large value, a thousand times)
/// must not make the node hold gigabytes of replies at once.
const REPLY_BUDGET: usize = 16 << 20;

/// The requests one connection sent together, checked and sorted, in order.
pub struct Pipeline(VecDeque<Step>);

impl Pipeline {
    /// Checks and sorts `requests` (no I/O).
    pub fn new(limits: &CommandLimits, requests: Vec<Request>) -> Pipeline {
        Pipeline(requests.into_iter().map(|r| classify(limits, r)).collect())
    }

    /// True once every request has run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs the requests of `pipeline` with Redis's ordering: each sees the effects of those
/// before it and none of those after it. Consecutive writes go to the leader as one
/// ordered batch; consecutive reads share one read barrier. Stops after QUIT, and once the
/// replies so far come to [`REPLY_BUDGET`] (call again for the rest, after writing them).
/// Each command runs with the rights of `session` as it is when the command's turn comes
/// (an `AUTH` in the pipeline changes it for the commands after it).
pub async fn execute_pipeline(
    node: &NodeHandle,
    session: &mut Session,
    pipeline: &mut Pipeline,
) -> Vec<(Reply, After)> {
    let steps = &mut pipeline.0;
    let mut out = Vec::with_capacity(steps.len());
    let mut reply_bytes = 0;
    while reply_bytes < REPLY_BUDGET {
        let Some(step) = steps.pop_front() else {
            break;
        };
        // A HELLO may change the protocol of the replies from its own on: the replies
        // before it go out first, encoded as they were asked.
        if matches!(step, Step::Other("hello", _)) && !out.is_empty() {
            steps.push_front(step);
            break;
        }
        let allowed = |name: &'static str| Auth::check(session.identity.as_ref(), name).is_ok();
        let denied = step
            .name()
            .and_then(|n| Some((n, Auth::check(session.identity.as_ref(), n).err()?)));
        if let Some((name, denied)) = denied {
            metrics::counter!("raft_client_denied_total", "cmd" => name).increment(1);
            count(name, false);
            out.push((Reply::Error(denied.to_string()), After::Continue));
            if let Some(tx) = &mut session.multi {
                // Redis too discards a transaction whose command was refused.
                tx.fail();
            }
            continue;
        }
        let step = match crate::transaction::route(node, &mut session.multi, step) {
            Route::Run(step) => step,
            Route::Reply(reply) => {
                out.push((reply, After::Continue));
                continue;
            }
            Route::Exec(tx) => {
                let user = session.identity.as_ref().map_or("", |w| &*w.user);
                let reply = crate::transaction::exec(node, user, tx).await;
                count("exec", !matches!(reply, Reply::Error(_)));
                out.push((reply, After::Continue));
                continue;
            }
        };
        match step {
            Step::Done(reply) => out.push((reply, After::Continue)),
            Step::Refused(name, reply) => {
                count(name, false);
                out.push((reply, After::Continue));
            }
            Step::Write(name, cmd) => {
                let (mut names, mut cmds) = (vec![name], vec![cmd]);
                while matches!(steps.front(), Some(Step::Write(n, _)) if allowed(n)) {
                    if let Some(Step::Write(n, c)) = steps.pop_front() {
                        names.push(n);
                        cmds.push(c);
                    }
                }
                // Checked above: a write runs only for a logged-in client. The leader
                // checks the user again when the write is forwarded to it.
                let user = session.identity.as_ref().map_or("", |w| &*w.user);
                let results = node.write_batch(user, &cmds).await;
                for (name, result) in names.iter().zip(results) {
                    let reply = write_reply(name, result);
                    count(name, !matches!(reply, Reply::Error(_)));
                    out.push((reply, After::Continue));
                }
            }
            Step::Read(name, args) => {
                let mut reads = vec![(name, args)];
                while matches!(steps.front(), Some(Step::Read(n, _)) if allowed(n)) {
                    if let Some(Step::Read(n, a)) = steps.pop_front() {
                        reads.push((n, a));
                    }
                }
                let served = match node.read_barrier().await {
                    Ok(()) => serve_reads(node, reads, REPLY_BUDGET - reply_bytes).await,
                    Err(e) => Served {
                        replies: reads
                            .iter()
                            .map(|(n, _)| (*n, request_error(e.clone())))
                            .collect(),
                        bytes: 0,
                        unserved: Vec::new(),
                    },
                };
                // Reads past the budget wait for the next turn (and a read barrier of
                // their own, which is only more recent).
                for (name, args) in served.unserved.into_iter().rev() {
                    steps.push_front(Step::Read(name, args));
                }
                reply_bytes += served.bytes;
                for (name, reply) in served.replies {
                    count(name, !matches!(reply, Reply::Error(_)));
                    out.push((reply, After::Continue));
                }
            }
            Step::Other(name, args) => {
                let reply = run(node, session, name, &args[1..]).await;
                count(name, !matches!(reply, Reply::Error(_)));
                if name == "quit" {
                    out.push((reply, After::Close));
                    steps.clear();
                    break;
                }
                reply_bytes += reply.approx_len();
                out.push((reply, After::Continue));
            }
        }
    }
    out
}

fn count(name: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("raft_client_commands_total", "cmd" => name, "result" => result).increment(1);
}

fn unknown_command(args: &[Bytes]) -> Reply {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        trunc(&args[0], 128)
    );
    // As Redis: arguments while their text is under 128 bytes, each cut to what is left.
    let start = text.len();
    for a in &args[1..] {
        let used = text.len() - start;
        if used >= 128 {
            break;
        }
        let _ = write!(text, "'{}' ", trunc(a, 128 - used));
    }
    Reply::Error(text)
}

fn trunc(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Keys and values over their limits. (The parser has already answered a request over
/// `max_request_bytes` as a whole: [`Request::TooLarge`].)
fn check_sizes(name: &str, args: &[Bytes], limits: &CommandLimits) -> Option<Reply> {
    // Keys are the arguments at these positions; the rest are values.
    let is_key = |i: usize| match name {
        "get" | "set" | "setnx" | "append" | "incr" | "decr" | "incrby" | "decrby" | "strlen"
        | "type" | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" => i == 1,
        "del" | "unlink" | "exists" | "touch" | "mget" | "rename" | "renamenx" => i >= 1,
        "mset" => i % 2 == 1,
        _ => false,
    };
    let is_value = |i: usize| match name {
        "set" | "setnx" | "append" => i == 2,
        "mset" => i >= 2 && i % 2 == 0,
        _ => false,
    };
    for (i, a) in args.iter().enumerate() {
        if is_key(i) && a.len() > limits.max_key_bytes {
            return Some(Reply::err(format!(
                "key too large ({} bytes, limit {})",
                a.len(),
                limits.max_key_bytes
            )));
        }
        if is_value(i) && a.len() > limits.max_value_bytes {
            return Some(Reply::err(format!(
                "value too large ({} bytes, limit {})",
                a.len(),
                limits.max_value_bytes
            )));
        }
    }
    None
}

/// A write command's arguments as a [`Command`].
fn parse_write(name: &str, a: &[Bytes], limits: &CommandLimits) -> Result<Command, Reply> {
    Ok(match name {
        "set" => {
            let mut cond = SetCond::Always;
            for opt in &a[2..] {
                cond = match (opt.to_ascii_lowercase().as_slice(), cond) {
                    (b"nx", SetCond::Always | SetCond::Nx) => SetCond::Nx,
                    (b"xx", SetCond::Always | SetCond::Xx) => SetCond::Xx,
                    _ => return Err(Reply::err("syntax error")),
                };
            }
            Command::Set {
                key: a[0].clone(),
                value: a[1].clone(),
                cond,
            }
        }
        "setnx" => Command::Set {
            key: a[0].clone(),
            value: a[1].clone(),
            cond: SetCond::Nx,
        },
        "flushall" | "flushdb" => match a {
            // Both empty the one database at once: nothing is left to do in the background.
            [] => Command::Flush,
            [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {
                Command::Flush
            }
            _ => return Err(Reply::err("syntax error")),
        },
        "rename" | "renamenx" => Command::Rename {
            from: a[0].clone(),
            to: a[1].clone(),
            nx: name == "renamenx",
        },
        // UNLINK frees the memory in the background in Redis; here both are one entry.
        "del" | "unlink" => Command::Del { keys: a.to_vec() },
        "append" => Command::Append {
            key: a[0].clone(),
            value: a[1].clone(),
            max_len: Some(limits.max_value_bytes as u64),
        },
        "incr" | "decr" | "incrby" | "decrby" => {
            let delta = match name {
                "incr" => 1,
                "decr" => -1,
                _ => match parse_i64(&a[1]) {
                    Some(d) if name == "incrby" => d,
                    Some(d) => d
                        .checked_neg()
                        .ok_or_else(|| Reply::err("decrement would overflow"))?,
                    None => return Err(Reply::err("value is not an integer or out of range")),
                },
            };
            Command::IncrBy {
                key: a[0].clone(),
                delta,
            }
        }
        "mset" => {
            if a.len() % 2 != 0 {
                return Err(Reply::err("wrong number of arguments for 'mset' command"));
            }
            Command::MSet {
                pairs: a
                    .chunks_exact(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            }
        }
        _ => return Err(unknown_command(&[Bytes::copy_from_slice(name.as_bytes())])),
    })
}

/// A batch of reads that touches more keys than this, or holds a DBSIZE, KEYS or SCAN,
/// runs on a blocking thread: on the runtime it would hold up the driver and its
/// heartbeats. [`NodeHandle::heavy_reads`] bounds how many run at once.
const HEAVY_READ_KEYS: usize = 64;
/// The most bytes one MGET may answer: a small request naming a large value many times
/// must not take the node's memory.
const MAX_MGET_REPLY_BYTES: usize = 64 << 20;

type Reads = Vec<(&'static str, Vec<Bytes>)>;

/// What [`serve_reads`] did: the replies, each with its command's name, their size
/// ([`Reply::approx_len`]), and the reads not served.
struct Served {
    replies: Vec<(&'static str, Reply)>,
    bytes: usize,
    unserved: Reads,
}

/// Serves reads after their barrier, in order, until their replies reach `budget` bytes
/// (at least one).
async fn serve_reads(node: &NodeHandle, reads: Reads, budget: usize) -> Served {
    let serve = move |node: &NodeHandle, reads: Reads| {
        let mut replies = Vec::with_capacity(reads.len());
        let mut bytes = 0;
        let mut reads = reads.into_iter();
        for (name, args) in reads.by_ref() {
            let reply = serve_read(node, name, &args[1..]).unwrap_or_else(|e| e);
            bytes += reply.approx_len();
            replies.push((name, reply));
            if bytes >= budget {
                break;
            }
        }
        Served {
            replies,
            bytes,
            unserved: reads.collect(),
        }
    };
    let keys: usize = reads.iter().map(|(_, args)| args.len() - 1).sum();
    let heavy = keys > HEAVY_READ_KEYS
        || reads
            .iter()
            .any(|(name, _)| matches!(*name, "dbsize" | "keys" | "scan"));
    if !heavy {
        return serve(node, reads);
    }
    let names: Vec<&'static str> = reads.iter().map(|(n, _)| *n).collect();
    let failed = |why: &str| Served {
        replies: names.iter().map(|n| (*n, Reply::err(why))).collect(),
        bytes: 0,
        unserved: Vec::new(),
    };
    // Closed only if the node is gone.
    let Ok(_permit) = node.heavy_reads.clone().acquire_owned().await else {
        return failed("read failed: the node is stopping");
    };
    let handle = node.clone();
    tokio::task::spawn_blocking(move || serve(&handle, reads))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "a read thread failed");
            failed("read failed")
        })
}

/// Serves a read from the local state machine (after the read barrier).
fn serve_read(node: &NodeHandle, name: &str, a: &[Bytes]) -> Result<Reply, Reply> {
    Ok(match name {
        "get" => get(node, &a[0])?,
        "mget" => {
            let mut values = Vec::with_capacity(a.len());
            let mut bytes = 0usize;
            for k in a {
                let v = get(node, k)?;
                bytes += v.approx_len();
                if bytes > MAX_MGET_REPLY_BYTES {
                    return Err(Reply::err(format!(
                        "reply too large (over {MAX_MGET_REPLY_BYTES} bytes)"
                    )));
                }
                values.push(v);
            }
            Reply::Array(values)
        }
        "exists" | "touch" => {
            let mut n = 0;
            for k in a {
                if node.kv().get(k).map_err(storage_error)?.is_some() {
                    n += 1;
                }
            }
            Reply::Integer(n)
        }
        "dbsize" => Reply::Integer(node.kv().count_keys().map_err(storage_error)? as i64),
        "keys" => crate::scan::keys(node.kv(), &a[0], MAX_MGET_REPLY_BYTES)?,
        "scan" => crate::scan::page(node.kv(), &node.scans, crate::scan::parse(a)?)?,
        // Keys never expire here: -1 for a key (no expiry), -2 for none, as Redis answers.
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => {
            match node.kv().get(&a[0]).map_err(storage_error)? {
                Some(_) => Reply::Integer(-1),
                None => Reply::Integer(-2),
            }
        }
        // No key has an expiry to remove.
        "persist" => Reply::Integer(0),
        "strlen" => {
            let v = node.kv().get(&a[0]).map_err(storage_error)?;
            Reply::Integer(v.map_or(0, |v| v.len() as i64))
        }
        // Every value is a string.
        "type" => match node.kv().get(&a[0]).map_err(storage_error)? {
            Some(_) => Reply::Simple("string".into()),
            None => Reply::Simple("none".into()),
        },
        _ => unknown_command(&[Bytes::copy_from_slice(name.as_bytes())]),
    })
}

async fn run(node: &NodeHandle, session: &mut Session, name: &str, a: &[Bytes]) -> Reply {
    match name {
        "ping" => match a {
            [] => Reply::Simple("PONG".into()),
            [msg] => Reply::Bulk(msg.clone()),
            _ => Reply::err("wrong number of arguments for 'ping' command"),
        },
        "echo" => Reply::Bulk(a[0].clone()),
        "quit" => Reply::ok(),
        "select" => match parse_i64(&a[0]) {
            Some(0) => Reply::ok(),
            Some(_) => Reply::err("DB index is out of range"),
            None => Reply::err("value is not an integer or out of range"),
        },
        // Clients probe these at connect; answer so they carry on (CONFIG GET answers a
        // map in RESP3).
        "command" => Reply::Array(Vec::new()),
        "config" => Reply::Map(Vec::new()),
        "client" => client(session, a),
        "hello" => hello(node, session, a).await,
        "auth" => match a {
            [_] if !node.auth.required() => Reply::err(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            [password] => {
                login(
                    node,
                    session,
                    crate::auth::DEFAULT_USER.as_bytes(),
                    password,
                )
                .await
            }
            [user, password] => login(node, session, user, password).await,
            _ => Reply::err("syntax error"),
        },
        "info" => match node.status().await {
            Ok(st) => Reply::Bulk(crate::info::info(node, &st, a.first()).into()),
            Err(e) => request_error(e),
        },
        "raft.info" => match node.status().await {
            Ok(st) => {
                let conf = node.members.borrow().clone();
                Reply::Bulk(crate::info::raft_info(&st, &conf).into())
            }
            Err(e) => request_error(e),
        },
        "raft.snapshot" => match node.snapshot().await {
            Ok(index) => Reply::Integer(index.0 as i64),
            Err(e) => Reply::err(format!("snapshot failed: {e}")),
        },
        "raft.transfer" => {
            let Some(to) = std::str::from_utf8(&a[0]).ok().and_then(|t| t.parse().ok()) else {
                return Reply::err("value is not an integer or out of range");
            };
            let info = node.role();
            if info.role != Role::Leader {
                // Only the leader can hand over; say where it is.
                return Reply::err(format!(
                    "not the leader; send RAFT.TRANSFER to node {}",
                    info.leader
                ));
            }
            match node.transfer_leader(raft_core::NodeId(to)).await {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::err(format!("transfer failed: {e}")),
            }
        }
        "raft.member" => member(node, a).await,
        "raft.fault" => {
            let args: Vec<&str> = a
                .iter()
                .map(|b| std::str::from_utf8(b).unwrap_or("?"))
                .collect();
            match node.faults.command(&args) {
                Ok(blocked) => Reply::Bulk(blocked.into()),
                Err(e) => Reply::err(e),
            }
        }
        _ => unknown_command(&[Bytes::copy_from_slice(name.as_bytes())]),
    }
}

/// `RAFT.MEMBER ADD <id> <raft-addr> [LEARNER] | PROMOTE <id> | REMOVE <id>`, on the leader;
/// `+OK` once the change is applied here.
async fn member(node: &NodeHandle, a: &[Bytes]) -> Reply {
    use raft_core::{ConfChange, NodeId};
    let text = |b: &Bytes| std::str::from_utf8(b).unwrap_or("").to_ascii_lowercase();
    let id = match std::str::from_utf8(&a[1])
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(id) if id != 0 => NodeId(id),
        _ => return Reply::err("node id must be a positive integer"),
    };
    let cc = match (text(&a[0]).as_str(), &a[2..]) {
        ("add", [addr, rest @ ..]) if rest.len() <= 1 => {
            let Ok(addr) = std::str::from_utf8(addr)
                .unwrap_or("")
                .parse::<std::net::SocketAddr>()
            else {
                return Reply::err("the raft address must be HOST:PORT with an IP address");
            };
            let cc = match rest.first().map(text).as_deref() {
                None => ConfChange::add_voter(id),
                Some("learner") => ConfChange::add_learner(id),
                Some(_) => return Reply::err("syntax error: ADD <id> <raft-addr> [LEARNER]"),
            };
            cc.with_context(addr.to_string())
        }
        // The core takes both as no-ops for a stranger; an operator means a member (a typo
        // otherwise).
        ("promote" | "remove", []) if !node.members.borrow().contains(id) => {
            return Reply::err(format!("node {id} is not a member"));
        }
        ("promote", []) => ConfChange::add_voter(id),
        ("remove", []) => ConfChange::remove_node(id),
        _ => {
            return Reply::err(
                "syntax error: RAFT.MEMBER ADD <id> <raft-addr> [LEARNER] | PROMOTE <id> | REMOVE <id>",
            );
        }
    };
    let info = node.role();
    if info.role != Role::Leader {
        return Reply::err(format!(
            "not the leader; send RAFT.MEMBER to node {}",
            info.leader
        ));
    }
    match node.change_membership(cc).await {
        Ok(_) => Reply::ok(),
        Err(e) => request_error(e),
    }
}

/// `AUTH`: on success the connection takes the user's rights; on failure it keeps its own.
async fn login(node: &NodeHandle, session: &mut Session, user: &[u8], password: &[u8]) -> Reply {
    if !node.auth.required() && user == crate::auth::DEFAULT_USER.as_bytes() {
        // As Redis without a password: `default` takes any password.
        return Reply::ok();
    }
    match node.auth.login(session.peer, user, password).await {
        Some(who) => {
            session.identity = Some(who);
            Reply::ok()
        }
        None => Reply::Error(crate::auth::WRONGPASS.into()),
    }
}

/// `HELLO [protover [AUTH user password] [SETNAME name]]`: RESP2 or RESP3.
async fn hello(node: &NodeHandle, session: &mut Session, a: &[Bytes]) -> Reply {
    let proto = match a.first().map(|v| parse_i64(v)) {
        None => session.protocol,
        Some(None) => return Reply::err("Protocol version is not an integer or out of range"),
        Some(Some(2)) => Protocol::Resp2,
        Some(Some(3)) => Protocol::Resp3,
        Some(Some(_)) => {
            return Reply::Error("NOPROTO sorry, this protocol version is not supported".into());
        }
    };
    let mut opts = a.iter().skip(1);
    let mut auth = None;
    let mut setname = None;
    while let Some(opt) = opts.next() {
        match opt.to_ascii_lowercase().as_slice() {
            b"auth" => match (opts.next(), opts.next()) {
                (Some(u), Some(p)) => auth = Some((u, p)),
                _ => return Reply::err("Syntax error in HELLO option 'auth'"),
            },
            b"setname" => match opts.next() {
                Some(name) => setname = Some(name),
                None => return Reply::err("Syntax error in HELLO option 'setname'"),
            },
            _ => {
                return Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    trunc(opt, 128)
                ));
            }
        }
    }
    if let Some((user, password)) = auth {
        if let Reply::Error(e) = login(node, session, user, password).await {
            return Reply::Error(e);
        }
    }
    if session.identity.is_none() {
        return Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        );
    }
    if let Some(name) = setname {
        if let Err(e) = set_name(session, name) {
            return e;
        }
    }
    let role = match node.role().role {
        Role::Leader => "master",
        _ => "replica",
    };
    // As in Redis, the protocol changes only when HELLO succeeds, and its own reply is the
    // first in the new one.
    session.protocol = proto;
    let s = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
    let version = match proto {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    Reply::Map(vec![
        (s("server"), s("raft-node")),
        (s("version"), s(env!("CARGO_PKG_VERSION"))),
        (s("proto"), Reply::Integer(version)),
        (s("id"), Reply::Integer(session.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s(role)),
        (s("modules"), Reply::Array(Vec::new())),
    ])
}

/// `CLIENT` with the subcommands a client library sends on connect, answered as Redis does.
/// Those that change how replies are sent (`REPLY`, `TRACKING`) or act on other connections
/// (`LIST`, `KILL`) are refused rather than acknowledged and ignored.
fn client(session: &mut Session, a: &[Bytes]) -> Reply {
    // Arity -2 (`COMMANDS`): the subcommand is there.
    let given = &a[0];
    let sub = String::from_utf8_lossy(given).to_ascii_lowercase();
    let arity = |n: usize| {
        (a.len() != n).then(|| {
            Reply::err(format!(
                "wrong number of arguments for 'client|{sub}' command"
            ))
        })
    };
    match sub.as_str() {
        "id" => arity(1).unwrap_or(Reply::Integer(session.id as i64)),
        "getname" => arity(1).unwrap_or_else(|| match &session.name {
            Some(n) => Reply::Bulk(n.clone()),
            None => Reply::Nil,
        }),
        "setname" => arity(2).unwrap_or_else(|| match set_name(session, &a[1]) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        }),
        // Library name and version, for CLIENT LIST in Redis: nothing here shows them.
        "setinfo" => arity(3).unwrap_or_else(|| match a[1].to_ascii_lowercase().as_slice() {
            b"lib-name" | b"lib-ver" => Reply::ok(),
            _ => Reply::err(format!("Unrecognized option '{}'", trunc(&a[1], 128))),
        }),
        "info" => arity(1).unwrap_or_else(|| {
            let name = session.name.as_deref().unwrap_or_default();
            Reply::Bulk(Bytes::from(format!(
                "id={} addr={} name={} db=0\n",
                session.id,
                session.peer,
                String::from_utf8_lossy(name)
            )))
        }),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            trunc(given, 128)
        )),
    }
}

/// Sets (or, with an empty name, clears) the connection's name. Redis refuses spaces and
/// anything outside printable ASCII, which would break the one-line-per-client listing.
fn set_name(session: &mut Session, name: &Bytes) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    session.name = (!name.is_empty()).then(|| name.clone());
    Ok(())
}

fn get(node: &NodeHandle, key: &[u8]) -> Result<Reply, Reply> {
    Ok(match node.kv().get(key).map_err(storage_error)? {
        Some(v) => Reply::Bulk(v),
        None => Reply::Nil,
    })
}

/// The reply to the outcome of a write named `name`, of the type Redis answers it with.
pub(crate) fn outcome_reply(name: &str, outcome: Outcome) -> Reply {
    match (name, outcome) {
        // SETNX answers as an integer where SET NX answers OK or nil.
        ("setnx", Outcome::Ok) => Reply::Integer(1),
        ("setnx", Outcome::Nil) => Reply::Integer(0),
        (_, Outcome::Ok) => Reply::ok(),
        (_, Outcome::Nil) => Reply::Nil,
        (_, Outcome::Integer(i)) => Reply::Integer(i),
        (_, Outcome::Error(e)) => Reply::Error(e),
        // EXEC's; `transaction::exec` answers it with its commands' names.
        (_, Outcome::Multi(outcomes)) => {
            Reply::Array(outcomes.into_iter().map(|o| outcome_reply("", o)).collect())
        }
    }
}

fn write_reply(name: &str, result: Result<Outcome, RequestError>) -> Reply {
    match result {
        Ok(outcome) => outcome_reply(name, outcome),
        Err(e) => request_error(e),
    }
}

pub(crate) fn storage_error(e: crate::kv::KvError) -> Reply {
    tracing::error!(error = %e, "read failed");
    Reply::err(format!("storage error: {e}"))
}

/// The RESP error for a request the cluster could not serve.
pub fn request_error(e: RequestError) -> Reply {
    match e {
        RequestError::NotLeader { .. } => {
            Reply::Error("TRYAGAIN no leader is known; retry shortly".into())
        }
        other => Reply::Error(other.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request's arguments (tests here and in `scan`).
    pub(crate) fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn client_subcommands_answer_as_redis() {
        let mut s = Session {
            identity: None,
            peer: "127.0.0.1".parse().unwrap(),
            id: 7,
            name: None,
            protocol: Protocol::Resp2,
            multi: None,
        };
        let mut client = |v: &[&str]| client(&mut s, &args(v));
        assert_eq!(client(&["ID"]), Reply::Integer(7));
        assert_eq!(client(&["getname"]), Reply::Nil);
        assert_eq!(client(&["setname", "worker-1"]), Reply::ok());
        assert_eq!(client(&["GETNAME"]), Reply::Bulk("worker-1".into()));
        assert_eq!(
            client(&["setname", "a b"]),
            Reply::err("Client names cannot contain spaces, newlines or special characters.")
        );
        assert_eq!(client(&["getname"]), Reply::Bulk("worker-1".into()));
        assert_eq!(
            client(&["info"]),
            Reply::Bulk("id=7 addr=127.0.0.1 name=worker-1 db=0\n".into())
        );
        assert_eq!(client(&["setname", ""]), Reply::ok());
        assert_eq!(client(&["getname"]), Reply::Nil);
        assert_eq!(client(&["SETINFO", "LIB-NAME", "redis-py"]), Reply::ok());
        assert_eq!(
            client(&["setinfo", "colour", "blue"]),
            Reply::err("Unrecognized option 'colour'")
        );
        assert_eq!(
            client(&["id", "extra"]),
            Reply::err("wrong number of arguments for 'client|id' command")
        );
        // Acknowledging these and carrying on as before would mislead the client.
        assert_eq!(
            client(&["Reply", "off"]),
            Reply::err("unknown subcommand 'Reply'. Try CLIENT HELP.")
        );
        assert_eq!(
            client(&["list"]),
            Reply::err("unknown subcommand 'list'. Try CLIENT HELP.")
        );
    }

    #[test]
    fn flush_takes_one_optional_mode_and_setnx_is_set_nx() {
        let limits = CommandLimits {
            max_key_bytes: 1 << 10,
            max_value_bytes: 1 << 20,
            max_request_bytes: 2 << 20,
        };
        let write = |v: &[&str]| parse_write(v[0], &args(&v[1..]), &limits);
        for ok in [
            &["flushall"][..],
            &["flushall", "ASYNC"],
            &["flushdb", "sync"],
        ] {
            assert_eq!(write(ok), Ok(Command::Flush), "{ok:?}");
        }
        for bad in [&["flushall", "now"][..], &["flushdb", "async", "sync"]] {
            assert_eq!(write(bad), Err(Reply::err("syntax error")), "{bad:?}");
        }
        assert_eq!(
            write(&["setnx", "k", "v"]),
            Ok(Command::Set {
                key: "k".into(),
                value: "v".into(),
                cond: SetCond::Nx
            })
        );
    }

    #[test]
    fn unknown_command_lists_arguments_up_to_128_bytes_as_redis() {
        assert_eq!(
            unknown_command(&args(&["foo", "a", "b"])),
            Reply::Error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ".into())
        );
        let long = "x".repeat(200);
        let mut many = vec!["foo"];
        many.extend(std::iter::repeat_n(long.as_str(), 10_000));
        let Reply::Error(text) = unknown_command(&args(&many)) else {
            panic!("an error")
        };
        let listed = text.split_once("beginning with: ").unwrap().1;
        assert_eq!(listed, format!("'{}' ", "x".repeat(128)));
    }
}
