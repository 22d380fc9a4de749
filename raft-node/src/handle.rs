//! What a client connection uses to reach the replicated state: writes go through the
//! leader (proposed here, or forwarded to it over QUIC), reads wait for a read index.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{LogIndex, NodeId, Role, Status};
use raft_net_quic::{StreamError, Transport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::{Command, Outcome};
use crate::config::ReadMode;
use crate::driver::{Input, RoleInfo};
use crate::error::RequestError;
use crate::kv::KvStore;

/// Room in a transport frame for what wraps one entry: the message and AppendEntries fields,
/// the entry's own term, index and kind, a forwarded request's user name and lengths.
const ENTRY_ENVELOPE: usize = 4096;

/// How long to wait before asking again after a transient refusal (a read round that a
/// leader change failed, a forward to a peer that is reconnecting).
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How long a read waits for its read index before asking again (a lost message).
const READ_REASK: Duration = Duration::from_secs(1);
/// The longest wait for a role change before a refused request is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(200);

/// A cheap-to-clone handle on a running node for client requests.
#[derive(Clone)]
pub struct NodeHandle {
    /// The configuration in effect.
    pub(crate) members: watch::Receiver<raft_core::ConfState>,
    pub(crate) faults: Arc<crate::fault::Faults>,
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(crate) role: watch::Receiver<RoleInfo>,
    pub(crate) applied: watch::Receiver<LogIndex>,
    pub(crate) kv: KvStore,
    pub(crate) auth: Arc<crate::auth::Auth>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) read_mode: ReadMode,
    pub(crate) timeout: Duration,
    /// True once the node is stopping: requests waiting for a leader give up at once.
    pub(crate) stopping: watch::Receiver<bool>,
    /// Read batches served on blocking threads (long MGETs, DBSIZE) at once: one per core,
    /// so clients cannot take every core from the runtime.
    pub(crate) heavy_reads: Arc<tokio::sync::Semaphore>,
    /// The SCAN cursors this node has issued.
    pub(crate) scans: Arc<crate::scan::Cursors>,
}

impl NodeHandle {
    /// The state machine, for reads after [`NodeHandle::read_barrier`].
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// This node's role and known leader.
    pub fn role(&self) -> RoleInfo {
        *self.role.borrow()
    }

    /// Replicates `cmd` and returns its outcome once it is committed and applied. On a
    /// follower the command is forwarded to the leader. Retries while no leader is known,
    /// until the request deadline.
    pub async fn write(&self, user: &str, cmd: &Command) -> Result<Outcome, RequestError> {
        let mut results = self.write_batch(user, std::slice::from_ref(cmd)).await;
        results.pop().unwrap_or(Err(RequestError::Dropped))
    }

    /// Replicates `cmds` in this order (one client's pipelined writes: they are applied in
    /// the order sent) and returns one result per command. A refusal that left a command
    /// unapplied (no leader, a leadership change) is retried, with every command after it,
    /// at the next leader; commands before it keep their results. `user` is the client's (see
    /// [`crate::auth`]): a forwarded write runs with its rights on the leader.
    pub async fn write_batch(
        &self,
        user: &str,
        cmds: &[Command],
    ) -> Vec<Result<Outcome, RequestError>> {
        let deadline = Instant::now() + self.timeout;
        let data: Vec<Bytes> = cmds.iter().map(Command::encode).collect();
        let mut results: Vec<Result<Outcome, RequestError>> = Vec::with_capacity(cmds.len());
        let mut role = self.role.clone();
        while results.len() < cmds.len() {
            let rest = &data[results.len()..];
            let info = *role.borrow_and_update();
            let attempt = if info.role == Role::Leader {
                self.propose_local(rest, deadline).await
            } else if !info.leader.is_none() {
                self.forward(info.leader, user, rest, deadline).await
            } else {
                vec![
                    Err(RequestError::NotLeader {
                        leader: NodeId::NONE
                    });
                    rest.len()
                ]
            };
            let past_deadline = Instant::now() >= deadline;
            if take_attempt(&mut results, attempt, cmds.len(), past_deadline) == Next::Retry {
                if let Err(e) = self.wait_for_change(&mut role, deadline).await {
                    results.resize(cmds.len(), Err(e));
                }
            }
        }
        results
    }

    /// The largest command, encoded, that may become a log entry: an AppendEntries carrying
    /// it alone must fit in one transport frame.
    pub(crate) fn max_entry_bytes(&self) -> usize {
        self.transport
            .max_frame_bytes()
            .saturating_sub(ENTRY_ENVELOPE)
    }

    fn too_large(&self, d: &Bytes) -> Option<RequestError> {
        let limit = self.max_entry_bytes();
        (d.len() > limit).then_some(RequestError::TooLarge {
            bytes: d.len(),
            limit,
        })
    }

    /// Proposes on this node, which must be the leader (a forwarded request arrives here).
    /// The proposals enter the driver's queue in order, so they get consecutive indexes.
    /// A command too large to replicate is answered at once and not proposed: as an entry no
    /// follower could receive, it would stop replication for good.
    pub(crate) async fn propose_local(
        &self,
        data: &[Bytes],
        deadline: Instant,
    ) -> Vec<Result<Outcome, RequestError>> {
        let mut waits = Vec::with_capacity(data.len());
        for d in data {
            if let Some(e) = self.too_large(d) {
                waits.push(Err(e));
                continue;
            }
            let (reply, rx) = oneshot::channel();
            let input = Input::Propose {
                data: d.clone(),
                reply,
                proposed: Instant::now(),
            };
            if self.inputs.send(input).await.is_err() {
                break;
            }
            waits.push(Ok(rx));
        }
        let mut out = Vec::with_capacity(data.len());
        for rx in waits {
            let rx = match rx {
                Ok(rx) => rx,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            out.push(match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(r)) => r,
                // The driver stopped with the proposal in its queue or in the log.
                Ok(Err(_)) => Err(RequestError::StoppedUnknown),
                Err(_) => Err(self.timeout_error()),
            });
        }
        // Never handed to the driver.
        out.resize(data.len(), Err(RequestError::Stopping));
        out
    }

    /// Forwards the longest prefix of `data` that fits in one frame (at least one command)
    /// and returns its results; [`NodeHandle::write_batch`] forwards the rest after them.
    async fn forward(
        &self,
        leader: NodeId,
        user: &str,
        data: &[Bytes],
        deadline: Instant,
    ) -> Vec<Result<Outcome, RequestError>> {
        if let Some(e) = data.first().and_then(|d| self.too_large(d)) {
            return vec![Err(e)];
        }
        let n = crate::forward::fitting_prefix(user, data, self.max_entry_bytes());
        let data = &data[..n];
        let all = |e: RequestError| vec![Err(e); n];
        let blocked = self.faults.blocks(leader);
        let call = self
            .transport
            .forward(leader, crate::forward::encode_request(user, data));
        // Fault injection: a forward into a cut network is never answered.
        let call = async move {
            if blocked {
                std::future::pending::<()>().await;
            }
            call.await
        };
        // A leader that dies keeps its connection open until the idle timeout: stop waiting
        // for it as soon as another leader is known (the outcome is then unknown: the old
        // leader may have committed the writes before it died).
        let mut role = self.role.clone();
        let leader_changed = async move {
            let _ = role.wait_for(|r| r.leader != leader).await;
        };
        let call = async {
            tokio::select! {
                r = call => Some(r),
                _ = leader_changed => None,
            }
        };
        let response = match tokio::time::timeout_at(deadline.into(), call).await {
            Err(_) => return all(self.timeout_error()),
            Ok(None) => {
                return all(RequestError::Forward {
                    leader,
                    detail: "the leader changed before it answered; the write may or may not have been applied".into(),
                });
            }
            Ok(Some(Ok(r))) => r,
            // Not sent at all: safe to try again once the connection is back.
            Ok(Some(Err(StreamError::NotConnected(_)))) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                return all(RequestError::Dropped);
            }
            Ok(Some(Err(e))) => {
                return all(RequestError::Forward {
                    leader,
                    detail: e.to_string(),
                });
            }
        };
        crate::forward::decode_response(&response, n).unwrap_or_else(|e| {
            all(RequestError::Forward {
                leader,
                detail: e.to_string(),
            })
        })
    }

    /// Waits until a read started now may be served from this node's state: for
    /// linearizable reads, until a read index confirmed by a quorum is applied here.
    pub async fn read_barrier(&self) -> Result<(), RequestError> {
        if self.read_mode == ReadMode::Stale {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        let mut role = self.role.clone();
        let index = loop {
            let (reply, rx) = oneshot::channel();
            self.inputs
                .send(Input::Read { reply })
                .await
                .map_err(|_| RequestError::Stopping)?;
            // A read asked of a leader that then died, or whose request or answer was lost,
            // is never answered: ask again once the leader changes or after a while (reads
            // have no effect, so asking twice is harmless).
            let leader = role.borrow_and_update().leader;
            let answer = async {
                tokio::select! {
                    r = rx => Some(r),
                    _ = role.wait_for(|r| r.leader != leader) => None,
                    _ = tokio::time::sleep(READ_REASK) => None,
                }
            };
            match tokio::time::timeout_at(deadline.into(), answer).await {
                Err(_) => return Err(self.timeout_error()),
                Ok(None) => continue,
                Ok(Some(Err(_))) => return Err(RequestError::Stopping),
                Ok(Some(Ok(Ok(index)))) => break index,
                Ok(Some(Ok(Err(RequestError::NotLeader { .. })))) => {
                    self.wait_for_change(&mut role, deadline).await?;
                }
                Ok(Some(Ok(Err(_)))) => {
                    if Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(self.timeout_error());
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        let mut applied = self.applied.clone();
        match tokio::time::timeout_at(deadline.into(), applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(RequestError::Stopping),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// The node's Raft status.
    pub async fn status(&self) -> Result<Status, RequestError> {
        let (reply, rx) = oneshot::channel();
        self.inputs
            .send(Input::Status { reply })
            .await
            .map_err(|_| RequestError::Stopping)?;
        rx.await.map_err(|_| RequestError::Stopping)
    }

    /// Takes a snapshot now; returns the index it covers.
    pub async fn snapshot(&self) -> Result<LogIndex, String> {
        let (reply, rx) = oneshot::channel();
        self.inputs
            .send(Input::Snapshot { reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())?
    }

    /// Proposes a membership change on this node (the leader) and waits until it is
    /// applied here.
    pub(crate) async fn change_membership(
        &self,
        cc: raft_core::ConfChange,
    ) -> Result<Outcome, RequestError> {
        let (reply, rx) = oneshot::channel();
        let input = Input::ConfChange {
            cc,
            reply,
            proposed: Instant::now(),
        };
        self.inputs
            .send(input)
            .await
            .map_err(|_| RequestError::Stopping)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RequestError::StoppedUnknown),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Moves the leadership to `to` (this node must lead) and waits until `to` leads, for at
    /// most the request timeout.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.inputs
            .send(Input::Transfer { to, reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())??;
        let mut role = self.role.clone();
        let done = role.wait_for(|r| r.leader == to);
        match tokio::time::timeout(self.timeout, done).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the node is shutting down".to_string()),
            Err(_) => Err(format!(
                "node {to} did not take over within {} ms (the transfer was abandoned)",
                self.timeout.as_millis()
            )),
        }
    }

    /// Waits for the role or leader to change, or fails at the deadline.
    async fn wait_for_change(
        &self,
        role: &mut watch::Receiver<RoleInfo>,
        deadline: Instant,
    ) -> Result<(), RequestError> {
        if *self.stopping.borrow() {
            return Err(RequestError::Stopping);
        }
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(self.timeout_error());
        }
        // Wake on a role change, but try again after a while in any case: a refusal can
        // come without one (a forward that found the leader reconnecting, a leader that
        // is still catching up on its own term).
        let until = deadline.min(Instant::now() + MAX_RETRY_WAIT);
        let mut stopping = self.stopping.clone();
        let _ = tokio::time::timeout_at(until.into(), async {
            tokio::select! {
                _ = role.changed() => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        })
        .await;
        if *self.stopping.borrow() {
            return Err(RequestError::Stopping);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    fn timeout_error(&self) -> RequestError {
        RequestError::Timeout(self.timeout.as_millis() as u64)
    }
}

/// A write that may or may not have been applied.
fn outcome_unknown(r: &Result<Outcome, RequestError>) -> bool {
    matches!(
        r,
        Err(RequestError::Timeout(_)
            | RequestError::Forward { .. }
            | RequestError::StoppedUnknown
            | RequestError::Unknown)
    )
}

/// What [`NodeHandle::write_batch`] does after an attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Send the commands still without a result (to the leader known next).
    Send,
    /// Wait for a leader, then retry the refused commands.
    Retry,
}

/// Adds the results of one attempt at the first commands of a pipeline of `total`
/// (`results` holds those before it). Only a refused suffix is retried: retrying a command
/// while a later one was applied would reorder them. A forwarded pipeline goes in
/// frame-sized parts, each once the one before it is answered; after a part whose outcome is
/// unknown (it may still be applied), or past the deadline, the rest is not sent (answered
/// [`RequestError::NotSent`]): it could be applied before that part.
fn take_attempt(
    results: &mut Vec<Result<Outcome, RequestError>>,
    attempt: Vec<Result<Outcome, RequestError>>,
    total: usize,
    past_deadline: bool,
) -> Next {
    match attempt.iter().position(is_refusal) {
        Some(f) if attempt[f..].iter().all(is_refusal) => {
            results.extend(attempt.into_iter().take(f));
            Next::Retry
        }
        _ => {
            let unknown = attempt.iter().any(outcome_unknown);
            results.extend(attempt);
            if unknown || past_deadline {
                results.resize(total, Err(RequestError::NotSent));
            }
            Next::Send
        }
    }
}

/// Whether a result means the command was not applied and may be sent again.
fn is_refusal(r: &Result<Outcome, RequestError>) -> bool {
    matches!(
        r,
        Err(RequestError::NotLeader { .. }) | Err(RequestError::Dropped)
    )
}

/// Serves a batch forwarded by a follower: proposes it here, in order, if this node leads
/// (never forwards again, so a stale leader hint cannot make a loop).
/// The user the follower authenticated must be one this node knows.
pub(crate) async fn serve_forward(handle: &NodeHandle, body: Bytes) -> Bytes {
    let (user, cmds) = match crate::forward::decode_request(&body) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable forwarded request");
            // An empty answer: the follower reports a bad response for the whole batch.
            return Bytes::new();
        }
    };
    let info = handle.role();
    let results = if let Err(denied) = handle.auth.forwarded(&user) {
        tracing::warn!(%user, "refused a forwarded write: the user is unknown here");
        vec![Err(RequestError::Denied(denied.to_string())); cmds.len()]
    } else if info.role != Role::Leader {
        vec![
            Err(RequestError::NotLeader {
                leader: info.leader
            });
            cmds.len()
        ]
    } else {
        handle
            .propose_local(&cmds, Instant::now() + handle.timeout)
            .await
    };
    crate::forward::encode_response(&results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward_failed() -> Result<Outcome, RequestError> {
        Err(RequestError::Forward {
            leader: NodeId(1),
            detail: "stream reset".into(),
        })
    }

    /// The first part of a three-part forwarded pipeline came back, the second failed with
    /// an unknown outcome: the third is not sent, or it could be applied before the second.
    #[test]
    fn after_a_part_with_an_unknown_outcome_the_rest_is_not_sent() {
        let mut results = Vec::new();
        let next = take_attempt(&mut results, vec![Ok(Outcome::Ok); 2], 6, false);
        assert_eq!((next, results.len()), (Next::Send, 2));
        let next = take_attempt(
            &mut results,
            vec![Ok(Outcome::Ok), forward_failed()],
            6,
            false,
        );
        assert_eq!(next, Next::Send);
        assert_eq!(results.len(), 6, "every command has its answer");
        assert_eq!(results[3], forward_failed());
        assert!(
            results[4..]
                .iter()
                .all(|r| *r == Err(RequestError::NotSent))
        );
    }

    /// Past the deadline, nothing more is sent either.
    #[test]
    fn past_the_deadline_the_rest_is_not_sent() {
        let mut results = Vec::new();
        assert_eq!(
            take_attempt(&mut results, vec![Ok(Outcome::Ok)], 3, true),
            Next::Send
        );
        assert_eq!(results[0], Ok(Outcome::Ok));
        assert_eq!(
            results[1..],
            [Err(RequestError::NotSent), Err(RequestError::NotSent)]
        );
    }

    /// A refused suffix (not applied) is retried; the results before it are kept.
    #[test]
    fn a_refused_suffix_is_retried_and_the_prefix_kept() {
        let mut results = Vec::new();
        let refused = Err(RequestError::NotLeader { leader: NodeId(2) });
        let attempt = vec![
            Ok(Outcome::Integer(1)),
            refused.clone(),
            Err(RequestError::Dropped),
        ];
        assert_eq!(take_attempt(&mut results, attempt, 3, false), Next::Retry);
        assert_eq!(results, [Ok(Outcome::Integer(1))]);
    }

    /// A refusal followed by an applied command is not retried: that would reorder them.
    #[test]
    fn a_refusal_before_an_applied_command_is_not_retried() {
        let mut results = Vec::new();
        let refused = Err(RequestError::NotLeader { leader: NodeId(2) });
        let attempt = vec![refused.clone(), Ok(Outcome::Ok)];
        assert_eq!(take_attempt(&mut results, attempt, 2, false), Next::Send);
        assert_eq!(results, [refused, Ok(Outcome::Ok)]);
    }
}
