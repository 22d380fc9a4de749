//! The local cluster raft-bench starts when no `--nodes` are given: `raft-node run`
//! processes on 127.0.0.1 ports chosen free, in a temporary directory, through the chaos
//! run's [`Cluster`] (which kills every node it started when dropped, so an error or a
//! panic leaves none behind).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::BenchError;
use crate::chaos::cluster::Cluster;

/// How long the started cluster may take to elect a leader.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);

/// A running local cluster. Field order matters: the nodes are killed (`cluster` drops)
/// before their directory is removed.
#[derive(Debug)]
pub struct LocalCluster {
    cluster: Cluster,
    dir: TempDir,
}

impl LocalCluster {
    /// Starts `n` nodes of `bin` with `node_args` (space-separated extra flags) and waits
    /// for a leader.
    pub async fn start(bin: &Path, n: u64, node_args: &str) -> Result<LocalCluster, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("raft-bench-")
            .tempdir()
            .map_err(|e| BenchError::Cluster(format!("creating a temporary directory: {e}")))?;
        let mut args: Vec<String> = node_args.split_whitespace().map(str::to_owned).collect();
        if !args.iter().any(|a| a.starts_with("--worker-threads")) {
            // As `raft-node dev` does: the nodes share this machine's cores.
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let share = (cores / n as usize).max(1);
            args.extend(["--worker-threads".to_owned(), share.to_string()]);
        }
        let mut cluster = Cluster::create(bin, dir.path(), n, args)
            .map_err(|e| BenchError::Cluster(e.to_string()))?
            .with_fault_injection(false);
        for id in cluster.ids() {
            cluster
                .start(id)
                .await
                .map_err(|e| BenchError::Cluster(e.to_string()))?;
        }
        if cluster.wait_leader(LEADER_DEADLINE).await.is_none() {
            return Err(BenchError::Cluster(format!(
                "no leader within {LEADER_DEADLINE:?}; the node logs were in {}",
                dir.path().display()
            )));
        }
        Ok(LocalCluster { cluster, dir })
    }

    /// The nodes' client addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.cluster.nodes().iter().map(|n| n.client_addr).collect()
    }

    /// Its directory (removed when it drops).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Stops every node (SIGTERM, then SIGKILL after a while) and removes the directory.
    pub async fn stop(mut self) {
        self.cluster.stop_all().await;
    }
}
