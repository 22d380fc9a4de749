//! The member directory: each member's Raft (QUIC) address.
//!
//! The protocol knows members by id only (`raft_core::ConfState`); the transport needs
//! addresses. They come from `--peers` (the members of a new cluster, or the address book of
//! a node joining one), and from membership changes: `RAFT.MEMBER ADD` carries the new node's
//! address as the change's context, so every node that appends the change learns it. The
//! directory is kept in `DATA_DIR/members` (one `id=host:port` line each, replaced
//! atomically), so a restarted node reaches members added after its `--peers` was written.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use raft_core::{ConfChange, ConfChangeSingle, ConfState, NodeId};

use crate::error::NodeError;

/// Member addresses, persisted.
#[derive(Debug)]
pub(crate) struct Directory {
    path: PathBuf,
    addrs: BTreeMap<NodeId, SocketAddr>,
}

impl Directory {
    /// Loads `data_dir/members` (empty if absent), then takes `flags` over it: an address an
    /// operator gives is newer than a stored one.
    pub(crate) fn open(
        data_dir: &Path,
        flags: &BTreeMap<NodeId, SocketAddr>,
    ) -> Result<Directory, NodeError> {
        let path = data_dir.join("members");
        let mut addrs = match std::fs::read_to_string(&path) {
            Ok(text) => {
                crate::config::parse_peers(&text.lines().map(str::to_owned).collect::<Vec<_>>())
                    .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(NodeError::io_fn(format!("reading {}", path.display()))(e)),
        };
        let mut changed = false;
        for (&id, &addr) in flags {
            match addrs.insert(id, addr) {
                Some(old) if old == addr => {}
                Some(old) => {
                    tracing::info!(member = %id, stored = %old, flag = %addr, "member address taken from --peers");
                    changed = true;
                }
                None => changed = true,
            }
        }
        let dir = Directory { path, addrs };
        if changed {
            dir.save()?;
        }
        Ok(dir)
    }

    /// The members of `conf` other than `me` without a known address.
    pub(crate) fn missing(&self, conf: &ConfState, me: NodeId) -> Vec<NodeId> {
        conf.members()
            .into_iter()
            .filter(|m| *m != me && !self.addrs.contains_key(m))
            .collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        self.addrs.iter().map(|(&id, &a)| (id, a))
    }

    /// Records the address a membership change carries (one node added, its address as the
    /// context); returns it if it is new or moved.
    pub(crate) fn learn(&mut self, cc: &ConfChange) -> Option<(NodeId, SocketAddr)> {
        let [ConfChangeSingle::AddVoter(id) | ConfChangeSingle::AddLearner(id)] = cc.changes[..]
        else {
            return None;
        };
        let addr: SocketAddr = std::str::from_utf8(&cc.context).ok()?.parse().ok()?;
        if self.addrs.insert(id, addr) == Some(addr) {
            return None;
        }
        if let Err(e) = self.save() {
            // The address is in use from now on; only a restart before the next save (with
            // no --peers naming the member) would miss it.
            tracing::warn!(error = %e, "cannot store the member directory");
        }
        Some((id, addr))
    }

    fn save(&self) -> Result<(), NodeError> {
        let tmp = self.path.with_extension("tmp");
        let text: String = self
            .addrs
            .iter()
            .map(|(id, a)| format!("{}={a}\n", id.0))
            .collect();
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(NodeError::io_fn(format!("writing {}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stored_and_learned_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let flags = BTreeMap::from([(NodeId(1), a("127.0.0.1:1")), (NodeId(2), a("127.0.0.1:2"))]);
        let mut d = Directory::open(dir.path(), &flags).unwrap();
        let add = ConfChange::add_learner(NodeId(4)).with_context("127.0.0.1:4");
        assert_eq!(d.learn(&add), Some((NodeId(4), a("127.0.0.1:4"))));
        assert_eq!(d.learn(&add), None, "known already");
        assert_eq!(d.learn(&ConfChange::remove_node(NodeId(2))), None);
        assert_eq!(
            d.learn(&ConfChange::add_voter(NodeId(5)).with_context("junk")),
            None
        );
        drop(d);
        // Reopened: stored addresses kept, a flag moves node 2.
        let d =
            Directory::open(dir.path(), &BTreeMap::from([(NodeId(2), a("127.0.0.1:9"))])).unwrap();
        let got: BTreeMap<_, _> = d.iter().collect();
        assert_eq!(got[&NodeId(4)], a("127.0.0.1:4"));
        assert_eq!(got[&NodeId(2)], a("127.0.0.1:9"));
        assert_eq!(got[&NodeId(1)], a("127.0.0.1:1"));
        assert_eq!(got.len(), 3);
        let conf = ConfState::new([NodeId(1), NodeId(5)]);
        assert_eq!(d.missing(&conf, NodeId(1)), [NodeId(5)]);
    }
}
