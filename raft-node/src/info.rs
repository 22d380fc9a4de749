//! The text of `INFO` and `RAFT.INFO`: `field:value` lines, as Redis formats INFO, so
//! scripts and `raftctl` parse both the same way.

use std::fmt::Write as _;

use bytes::Bytes;
use raft_core::{ConfState, ProgressState, Role, Status};

use crate::handle::NodeHandle;

/// The role's name in RAFT.INFO.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
        Role::Follower => "follower",
    }
}

fn state_name(s: ProgressState) -> &'static str {
    match s {
        ProgressState::Probe => "probe",
        ProgressState::Replicate => "replicate",
        ProgressState::Snapshot => "snapshot",
    }
}

/// `RAFT.INFO`: this node's Raft state, its configuration and, on a leader, one line per
/// peer.
pub fn raft_info(st: &Status, conf: &ConfState) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "node_id:{}\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\nlast_log_index:{}\r\nfirst_log_index:{}\r\nsnapshot_index:{}\r\n",
        st.id,
        role_name(st.role),
        st.term,
        st.leader,
        st.commit,
        st.applied,
        st.last_index,
        st.first_index,
        st.snapshot_index
    );
    let ids = |v: &[raft_core::NodeId]| {
        v.iter()
            .map(|id| id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let _ = write!(
        s,
        "voters:{}\r\nlearners:{}\r\n",
        ids(&conf.voters),
        ids(&conf.learners)
    );
    if !conf.voters_outgoing.is_empty() {
        // Joint consensus (§6): decisions need a majority of both voter sets.
        let _ = write!(s, "voters_outgoing:{}\r\n", ids(&conf.voters_outgoing));
    }
    if let Some(to) = st.transferring {
        let _ = write!(s, "transferring_to:{to}\r\n");
    }
    if st.role == Role::Leader {
        let _ = write!(s, "lease_valid:{}\r\n", u8::from(st.lease_valid));
    }
    for p in &st.peers {
        let _ = write!(
            s,
            "peer{}:match_index={},next_index={},state={},lag={}\r\n",
            p.id,
            p.matched,
            p.next,
            state_name(p.state),
            st.last_index.get().saturating_sub(p.matched.get())
        );
    }
    s
}

/// `INFO [section]`: server, raft and replication sections.
pub fn info(node: &NodeHandle, st: &Status, section: Option<&Bytes>) -> String {
    let want = |name: &str| {
        section.is_none_or(|s| {
            let s = s.to_ascii_lowercase();
            s == name.as_bytes() || s == b"all" || s == b"default" || s == b"everything"
        })
    };
    let mut s = String::new();
    if want("server") {
        let _ = write!(
            s,
            "# Server\r\nredis_version:7.0.0\r\nraft_node_version:{}\r\nredis_mode:standalone\r\n\
             process_id:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
    }
    if want("raft") {
        s.push_str("# Raft\r\n");
        s.push_str(&raft_info(st, &node.members.borrow()));
        s.push_str("\r\n");
    }
    if want("replication") {
        let role = if st.role == Role::Leader {
            "master"
        } else {
            "slave"
        };
        let _ = write!(
            s,
            "# Replication\r\nrole:{role}\r\nconnected_slaves:{}\r\n",
            st.peers.len()
        );
        if st.role != Role::Leader {
            let up = if st.leader.is_none() { "down" } else { "up" };
            let _ = write!(
                s,
                "master_node_id:{}\r\nmaster_link_status:{up}\r\n",
                st.leader
            );
        }
        s.push_str("\r\n");
    }
    if want("keyspace") {
        // Redis's line, left out for an empty database as Redis does. The count is RocksDB's
        // estimate (DBSIZE counts exactly); no key expires here.
        s.push_str("# Keyspace\r\n");
        let keys = node.kv().estimate_keys();
        if keys > 0 {
            let _ = write!(s, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
        }
    }
    s
}
