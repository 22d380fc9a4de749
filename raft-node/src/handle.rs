//! What a client connection uses to reach the replicated state: writes go through the
//! leader (proposed here, or forwarded to it over QUIC), reads wait for a read index.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use raft_core::{LogIndex, NodeId, Role, Status};
use raft_net_quic::{StreamError, Transport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::{Command, Outcome};
use crate::config::ReadMode;
use crate::driver::{Input, RoleInfo};
use crate::error::RequestError;
use crate::kv::KvStore;

/// How long to wait before asking again after a transient refusal (a read round that a
/// leader change failed, a forward to a peer that is reconnecting).
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// The longest wait for a role change before a refused request is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(200);

/// A cheap-to-clone handle on a running node for client requests.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(crate) role: watch::Receiver<RoleInfo>,
    pub(crate) applied: watch::Receiver<LogIndex>,
    pub(crate) kv: KvStore,
    pub(crate) transport: Arc<Transport>,
    pub(crate) read_mode: ReadMode,
    pub(crate) timeout: Duration,
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
    pub async fn write(&self, cmd: &Command) -> Result<Outcome, RequestError> {
        let deadline = Instant::now() + self.timeout;
        let data = cmd.encode();
        let mut role = self.role.clone();
        loop {
            let info = *role.borrow_and_update();
            let result = if info.role == Role::Leader {
                self.propose_local(data.clone(), deadline).await
            } else if !info.leader.is_none() {
                self.forward(info.leader, data.clone(), deadline).await
            } else {
                Err(RequestError::NotLeader {
                    leader: NodeId::NONE,
                })
            };
            match result {
                // Both leave the command unapplied: asking again cannot apply it twice.
                Err(RequestError::NotLeader { .. }) | Err(RequestError::Dropped) => {
                    self.wait_for_change(&mut role, deadline).await?;
                }
                other => return other,
            }
        }
    }

    /// Proposes on this node, which must be the leader (a forwarded request arrives here).
    pub(crate) async fn propose_local(
        &self,
        data: Bytes,
        deadline: Instant,
    ) -> Result<Outcome, RequestError> {
        let (reply, rx) = oneshot::channel();
        let input = Input::Propose {
            data,
            reply,
            proposed: Instant::now(),
        };
        self.inputs
            .send(input)
            .await
            .map_err(|_| RequestError::Stopping)?;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RequestError::Stopping),
            Err(_) => Err(self.timeout_error()),
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        data: Bytes,
        deadline: Instant,
    ) -> Result<Outcome, RequestError> {
        let call = self.transport.forward(leader, data);
        // A leader that dies keeps its connection open until the idle timeout: stop waiting
        // for it as soon as another leader is known (the outcome is then unknown: the old
        // leader may have committed the write before it died).
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
            Err(_) => return Err(self.timeout_error()),
            Ok(None) => {
                return Err(RequestError::Forward {
                    leader,
                    detail: "the leader changed before it answered; the write may or may not have been applied".into(),
                });
            }
            Ok(Some(Ok(r))) => r,
            // Not sent at all: safe to try again once the connection is back.
            Ok(Some(Err(StreamError::NotConnected(_)))) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                return Err(RequestError::Dropped);
            }
            Ok(Some(Err(e))) => {
                return Err(RequestError::Forward {
                    leader,
                    detail: e.to_string(),
                });
            }
        };
        decode_forward_response(&response).map_err(|detail| RequestError::Forward {
            leader,
            detail: detail.into(),
        })?
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
            // A read asked of a leader that then died is never answered: ask again once
            // the leader changes (reads have no effect, so asking twice is harmless).
            let leader = role.borrow_and_update().leader;
            let answer = async {
                tokio::select! {
                    r = rx => Some(r),
                    _ = role.wait_for(|r| r.leader != leader) => None,
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
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(self.timeout_error());
        }
        // Wake on a role change, but try again after a while in any case: a refusal can
        // come without one (a forward that found the leader reconnecting, a leader that
        // is still catching up on its own term).
        let until = deadline.min(Instant::now() + MAX_RETRY_WAIT);
        let _ = tokio::time::timeout_at(until.into(), role.changed()).await;
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    fn timeout_error(&self) -> RequestError {
        RequestError::Timeout(self.timeout.as_millis() as u64)
    }
}

const F_OUTCOME: u8 = 0;
const F_NOT_LEADER: u8 = 1;
const F_ERROR: u8 = 2;

/// Serves one request forwarded by a follower: proposes it here if this node leads (never
/// forwards again, so a stale leader hint cannot make a loop).
pub(crate) async fn serve_forward(handle: &NodeHandle, body: Bytes) -> Bytes {
    let mut out = BytesMut::new();
    let result = match Command::decode(&body) {
        Err(e) => Err(RequestError::Forward {
            leader: handle.role().id,
            detail: e.to_string(),
        }),
        Ok(_) => {
            let info = handle.role();
            if info.role != Role::Leader {
                Err(RequestError::NotLeader {
                    leader: info.leader,
                })
            } else {
                handle
                    .propose_local(body, Instant::now() + handle.timeout)
                    .await
            }
        }
    };
    match result {
        Ok(o) => {
            out.put_u8(F_OUTCOME);
            o.encode(&mut out);
        }
        Err(RequestError::NotLeader { leader }) => {
            out.put_u8(F_NOT_LEADER);
            out.put_u64_le(leader.0);
        }
        Err(e) => {
            out.put_u8(F_ERROR);
            out.put_slice(e.to_string().as_bytes());
        }
    }
    out.freeze()
}

fn decode_forward_response(r: &Bytes) -> Result<Result<Outcome, RequestError>, &'static str> {
    match r.first() {
        Some(&F_OUTCOME) => Outcome::decode(&r.slice(1..))
            .map(Ok)
            .map_err(|_| "undecodable outcome"),
        Some(&F_NOT_LEADER) => {
            let id: [u8; 8] = r
                .get(1..9)
                .and_then(|s| s.try_into().ok())
                .ok_or("truncated not-leader answer")?;
            Ok(Err(RequestError::NotLeader {
                leader: NodeId(u64::from_le_bytes(id)),
            }))
        }
        Some(&F_ERROR) => Ok(Err(RequestError::Forward {
            leader: NodeId::NONE,
            detail: String::from_utf8_lossy(&r[1..]).into_owned(),
        })),
        _ => Err("unknown answer"),
    }
}
