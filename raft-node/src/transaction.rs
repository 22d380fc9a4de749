//! `MULTI` … `EXEC`: a connection's queued writes, replicated as one log entry
//! ([`Command::Multi`]) so that no other client's command falls between them, and answered
//! with one array.
//!
//! Only writes can be queued: a read inside the transaction would have to be answered from
//! the state at the transaction's place in the log, which a follower forwarding the
//! transaction does not hold. A read or any other command is refused when queued, and the
//! transaction is then discarded at `EXEC` (`EXECABORT`), as Redis does for a command that
//! fails to queue. So a client never sees part of a transaction applied. `WATCH` is refused
//! outright.

use crate::command::{Command, Outcome};
use crate::commands::{Step, outcome_reply, request_error};
use crate::handle::NodeHandle;
use crate::resp::Reply;

/// The commands queued since `MULTI`.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    names: Vec<&'static str>,
    cmds: Vec<Command>,
    /// The encoded size so far: the whole must fit in one log entry.
    bytes: usize,
    /// A command failed to queue: `EXEC` discards the transaction.
    failed: bool,
}

impl Transaction {
    /// A command failed to queue: `EXEC` will discard the transaction.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
    }
}

/// What the connection does with a request, given its transaction state.
pub(crate) enum Route {
    /// Run it as usual.
    Run(Step),
    /// Answered.
    Reply(Reply),
    /// `EXEC` of these commands.
    Exec(Transaction),
}

/// Routes `step` for a connection whose transaction is `tx` (none outside `MULTI`).
pub(crate) fn route(node: &NodeHandle, tx: &mut Option<Transaction>, step: Step) -> Route {
    match (tx.take(), step) {
        (None, step) => outside(tx, step),
        (Some(queue), Step::Other("exec", _)) => Route::Exec(queue),
        (Some(_), Step::Other("discard", _)) => Route::Reply(Reply::ok()),
        (Some(mut queue), step) => {
            let route = inside(node, &mut queue, step);
            *tx = Some(queue);
            route
        }
    }
}

fn outside(tx: &mut Option<Transaction>, step: Step) -> Route {
    match step.name() {
        Some("multi") => {
            *tx = Some(Transaction::default());
            Route::Reply(Reply::ok())
        }
        Some("exec") => Route::Reply(Reply::err("EXEC without MULTI")),
        Some("discard") => Route::Reply(Reply::err("DISCARD without MULTI")),
        Some("watch") => Route::Reply(Reply::err(
            "WATCH is not supported: use a MULTI ... EXEC of writes, applied as one",
        )),
        // Nothing is ever watched.
        Some("unwatch") => Route::Reply(Reply::ok()),
        _ => Route::Run(step),
    }
}

/// A request between `MULTI` and `EXEC`: a write is queued; anything else but QUIT is
/// answered, and a command that fails to queue dooms the transaction.
fn inside(node: &NodeHandle, queue: &mut Transaction, step: Step) -> Route {
    fn refuse(queue: &mut Transaction, reply: Reply) -> Route {
        queue.fail();
        Route::Reply(reply)
    }
    match step {
        Step::Write(name, cmd) => {
            let limit = node.max_entry_bytes();
            // Each command sits in the entry behind a 4-byte length.
            let bytes = queue.bytes + cmd.encode().len() + 4;
            if bytes > limit {
                return refuse(
                    queue,
                    Reply::err(format!(
                        "transaction too large to replicate (over {limit} bytes)"
                    )),
                );
            }
            queue.bytes = bytes;
            queue.names.push(name);
            queue.cmds.push(cmd);
            Route::Reply(Reply::Simple("QUEUED".into()))
        }
        // An unknown command, a wrong number of arguments, a bad option, a denied command.
        Step::Done(reply) | Step::Refused(_, reply) => refuse(queue, reply),
        Step::Other("multi", _) => Route::Reply(Reply::err("MULTI calls can not be nested")),
        Step::Other("watch", _) => Route::Reply(Reply::err("WATCH inside MULTI is not allowed")),
        Step::Other("quit", args) => Route::Run(Step::Other("quit", args)),
        Step::Read(name, _) | Step::Other(name, _) => refuse(
            queue,
            Reply::err(format!(
                "'{name}' cannot be queued: a transaction here holds only writes"
            )),
        ),
    }
}

/// Replicates the transaction as one entry and answers with each command's reply.
pub(crate) async fn exec(node: &NodeHandle, user: &str, tx: Transaction) -> Reply {
    if tx.failed {
        return Reply::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }
    if tx.cmds.is_empty() {
        return Reply::Array(Vec::new());
    }
    match node.write(user, &Command::Multi(tx.cmds)).await {
        Ok(Outcome::Multi(outcomes)) if outcomes.len() == tx.names.len() => Reply::Array(
            tx.names
                .iter()
                .zip(outcomes)
                .map(|(name, o)| outcome_reply(name, o))
                .collect(),
        ),
        Ok(other) => {
            // Every node applies a transaction to one outcome per command.
            tracing::error!(outcome = ?other, "a transaction applied to an unexpected outcome");
            Reply::err("the transaction's outcome is malformed")
        }
        Err(e) => request_error(e),
    }
}
