//! Asking nodes: one command on a fresh connection with a deadline, and RAFT.INFO of every
//! given address at once, which is how raftctl learns each address's node id and finds the
//! leader.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use super::info::{InfoError, RaftInfo};
use crate::client_opts::tls_hint;
use crate::resp::{self, ClientError, ConnectOptions, Connection, Reply};

/// Why a node gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The address does not resolve.
    #[error("cannot resolve the address: {0}")]
    Resolve(String),
    /// No connection, or no reply in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The node answered RAFT.INFO with an error (not a raft-node?).
    #[error("RAFT.INFO failed: {0}")]
    Refused(String),
    /// The node answered something raftctl does not understand.
    #[error("{0}")]
    Malformed(String),
    /// The node wants a password and none was given.
    #[error("node at {0} requires a password: pass --password or set RAFT_PASSWORD")]
    NoAuth(String),
    /// The node refused the credentials.
    #[error("node at {addr}: {reason}")]
    AuthFailed {
        /// The address as given.
        addr: String,
        /// The node's reply.
        reason: String,
    },
    /// TLS failed (the handshake or later); the reason names the address.
    #[error("{0}")]
    Tls(String),
}

impl ProbeError {
    /// A failure of credentials or TLS: retrying or asking another node will not help,
    /// the flags must change.
    pub fn is_access(&self) -> bool {
        matches!(
            self,
            ProbeError::NoAuth(_) | ProbeError::AuthFailed { .. } | ProbeError::Tls(_)
        )
    }
}

/// One given address and what its RAFT.INFO said.
#[derive(Clone, Debug)]
pub struct NodeProbe {
    /// The address as given.
    pub given: String,
    /// Its resolved address, if it resolved.
    pub addr: Option<SocketAddr>,
    /// Its RAFT.INFO, or why there is none.
    pub result: Result<RaftInfo, ProbeError>,
}

impl NodeProbe {
    /// Its RAFT.INFO, if it answered.
    pub fn info(&self) -> Option<&RaftInfo> {
        self.result.as_ref().ok()
    }
}

/// Sends one command to `addr` on a fresh connection made as `options` say, waiting up to
/// `within` for connecting and replying together. An error reply is `Ok(Reply::Error)`:
/// the caller decides what a refusal means, except that a NOAUTH refusal is
/// [`ProbeError::NoAuth`].
pub async fn call(
    addr: SocketAddr,
    args: &[&str],
    within: Duration,
    options: &ConnectOptions,
) -> Result<Reply, ProbeError> {
    let call = async {
        let mut c = Connection::connect_with(addr, options).await?;
        c.call(args).await
    };
    match tokio::time::timeout(within, call).await {
        Err(_) => Err(ProbeError::Unreachable(format!(
            "no reply within {} ms",
            within.as_millis()
        ))),
        Ok(Err(e @ ClientError::Protocol(_))) => Err(ProbeError::Malformed(format!(
            "{e} (not a raft-node client port?)"
        ))),
        Ok(Err(ClientError::Auth(reason))) => Err(ProbeError::AuthFailed {
            addr: addr.to_string(),
            reason: format!("authentication failed: {reason}"),
        }),
        Ok(Err(
            ref e @ (ClientError::TlsHandshake { ref reason, .. }
            | ClientError::Tls { ref reason, .. }),
        )) => Err(ProbeError::Tls(format!("{e}{}", tls_hint(reason)))),
        Ok(Err(e)) => Err(ProbeError::Unreachable(e.to_string())),
        Ok(Ok(Reply::Error(text))) if text.starts_with("NOAUTH") => {
            Err(ProbeError::NoAuth(addr.to_string()))
        }
        Ok(Ok(reply)) => Ok(reply),
    }
}

/// RAFT.INFO of one address.
pub async fn probe(given: String, within: Duration, options: &ConnectOptions) -> NodeProbe {
    let addr = match tokio::time::timeout(within, resp::resolve(&given)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return NodeProbe {
                given,
                addr: None,
                result: Err(ProbeError::Resolve(resp::io_reason(&e))),
            };
        }
        Err(_) => {
            return NodeProbe {
                given,
                addr: None,
                result: Err(ProbeError::Resolve("no answer from the resolver".into())),
            };
        }
    };
    let result = match call(addr, &["RAFT.INFO"], within, options).await {
        Ok(Reply::Bulk(text)) => RaftInfo::parse(&String::from_utf8_lossy(&text))
            .map_err(|e: InfoError| ProbeError::Malformed(e.to_string())),
        Ok(Reply::Error(text)) => Err(ProbeError::Refused(text)),
        Ok(other) => Err(ProbeError::Malformed(format!(
            "RAFT.INFO replied {other:?}, not text"
        ))),
        Err(e) => Err(e),
    };
    NodeProbe {
        given,
        addr: Some(addr),
        result,
    }
}

/// RAFT.INFO of every address, all at once (an unreachable node costs one timeout, not
/// one per node); in the order given.
pub async fn probe_all(
    addrs: &[String],
    within: Duration,
    options: &ConnectOptions,
) -> Vec<NodeProbe> {
    let tasks: Vec<_> = addrs
        .iter()
        .map(|a| {
            let (given, options) = (a.clone(), options.clone());
            tokio::spawn(async move { probe(given, within, &options).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (task, given) in tasks.into_iter().zip(addrs) {
        out.push(task.await.unwrap_or_else(|e| NodeProbe {
            given: given.clone(),
            addr: None,
            result: Err(ProbeError::Malformed(format!("probe failed: {e}"))),
        }));
    }
    out
}

/// The probe of the node that leads: of the nodes that say they lead, the one in the
/// highest term (an old leader cut off from the others may still think it leads).
pub fn leader(probes: &[NodeProbe]) -> Option<&NodeProbe> {
    probes
        .iter()
        .filter(|p| p.info().is_some_and(RaftInfo::is_leader))
        .max_by_key(|p| p.info().map_or(0, |i| i.term))
}

/// The leader the answering nodes report (the one named in the highest term), for when
/// the leader itself was not asked.
pub fn reported_leader(probes: &[NodeProbe]) -> Option<(u64, u64)> {
    probes
        .iter()
        .filter_map(NodeProbe::info)
        .filter_map(|i| Some((i.term, i.leader_id?)))
        .max()
        .map(|(term, id)| (id, term))
}

/// The probe of node `id`.
pub fn by_id(probes: &[NodeProbe], id: u64) -> Option<&NodeProbe> {
    probes
        .iter()
        .find(|p| p.info().is_some_and(|i| i.node_id == id))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ctl::info::tests::LEADER;

    pub(crate) fn answered(given: &str, text: &str) -> NodeProbe {
        NodeProbe {
            given: given.into(),
            addr: given.parse().ok(),
            result: Ok(RaftInfo::parse(text).unwrap()),
        }
    }

    #[test]
    fn the_leader_is_the_one_in_the_highest_term() {
        let old = LEADER.replace("node_id:1", "node_id:3");
        let new = LEADER
            .replace("node_id:1", "node_id:2")
            .replace("term:3", "term:4");
        let probes = vec![answered("127.0.0.1:1", &old), answered("127.0.0.1:2", &new)];
        assert_eq!(leader(&probes).unwrap().given, "127.0.0.1:2");
        assert_eq!(by_id(&probes, 3).unwrap().given, "127.0.0.1:1");
        assert!(by_id(&probes, 9).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_address_says_why() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let plain = ConnectOptions::default();
        let p = probe(format!("127.0.0.1:{port}"), Duration::from_secs(2), &plain).await;
        assert_eq!(
            p.result,
            Err(ProbeError::Unreachable("connection refused".into()))
        );
        let p = probe(
            "no-such-host.invalid:1".into(),
            Duration::from_secs(5),
            &plain,
        )
        .await;
        assert!(matches!(p.result, Err(ProbeError::Resolve(_))), "{p:?}");
    }
}
