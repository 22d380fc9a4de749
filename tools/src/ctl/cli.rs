//! raftctl's flags and subcommands, and running one.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::CtlError;
use super::admin::{self, MemberChange};
use super::probe;
use super::status::{DEFAULT_LAG_THRESHOLD, Status};
use crate::client_opts::ClientArgs;
use crate::resp::ConnectOptions;

/// Administer a raft-node cluster through its nodes' client (Redis protocol) ports.
///
/// Give the client addresses of some or all nodes with --nodes (or RAFTCTL_NODES); raftctl
/// asks each its RAFT.INFO to learn its node id and finds the leader itself.
///
/// Secured nodes: --password (or RAFT_PASSWORD) logs in as the `default` user, with --user
/// as a named one (the admin commands need an admin user); --tls --cacert FILE connects to
/// the nodes' TLS client ports (give those in --nodes).
///
/// Exit status: 0 done; 1 the command failed (for `status`: a node unreachable or not
/// answering RAFT.INFO, no leader, a duplicate or foreign node); 2 bad usage.
#[derive(Clone, Debug, Parser)]
#[command(name = "raftctl", version)]
pub struct Cli {
    /// Client addresses of the nodes, HOST:PORT,...
    #[arg(long, env = "RAFTCTL_NODES", value_delimiter = ',', global = true)]
    pub nodes: Vec<String>,

    /// Milliseconds to wait for each node's answer to RAFT.INFO.
    #[arg(long, default_value_t = 2000, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Credentials and TLS.
    #[command(flatten)]
    pub client: ClientArgs,

    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Cmd {
    /// Show every node: id, role, membership, term, leader, commit, applied and last index,
    /// snapshot index, lag behind the leader, health.
    ///
    /// HEALTH is, worst first: `unreachable: REASON`, `error: TEXT` (RAFT.INFO failed),
    /// `duplicate id`, `no leader`, `stale leader`, `not a member` (another cluster's node,
    /// or removed), `no leader known`, `follows node N`, `catching up by snapshot`,
    /// `probing`, `lagging N` (at least --lag-threshold entries behind), `not queried` (a
    /// member whose address was not given), `ok`. LAG is the leader's view: entries
    /// between its last index and what the node has acknowledged.
    ///
    /// Exit status 1 if a given node is unreachable or fails RAFT.INFO, is a duplicate or
    /// not a member, or if no leader is known; the other states are transient and exit 0.
    Status(StatusArgs),
    /// Hand leadership to node ID (sent to the current leader; returns once ID leads).
    TransferLeader {
        /// The node to lead.
        id: u64,
    },
    /// Make node ID take a snapshot now; prints the snapshot's index.
    Snapshot {
        /// The node.
        id: u64,
    },
    /// Change the membership (RAFT.MEMBER, sent to the leader). Needs nodes that support
    /// membership changes; a node that does not refuses, and raftctl shows its reply.
    #[command(subcommand)]
    Member(MemberCmd),
}

/// `raftctl status` flags.
#[derive(Clone, Debug, Args)]
pub struct StatusArgs {
    /// One JSON object instead of the table (with --watch: one per line).
    #[arg(long)]
    pub json: bool,

    /// Refresh every SECS seconds until Ctrl-C (the screen is cleared between refreshes
    /// when the output is a terminal). The exit status is that of the last refresh.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub watch: Option<Duration>,

    /// Entries behind the leader's last index from which a node shows as lagging.
    #[arg(long, default_value_t = DEFAULT_LAG_THRESHOLD)]
    pub lag_threshold: u64,
}

/// `raftctl member` verbs. Each needs nodes that support membership changes.
#[derive(Clone, Debug, Subcommand)]
pub enum MemberCmd {
    /// Add node ID, reachable by its peers at RAFT_ADDR (RAFT.MEMBER ADD). Needs nodes
    /// that support membership changes.
    Add {
        /// The new node's id.
        id: u64,
        /// Its Raft (peer) address, HOST:PORT.
        raft_addr: String,
        /// Add it as a learner: it receives the log but does not vote until promoted.
        #[arg(long)]
        learner: bool,
    },
    /// Make learner ID a voter (RAFT.MEMBER PROMOTE). Needs nodes that support membership
    /// changes.
    Promote {
        /// The learner.
        id: u64,
    },
    /// Remove node ID from the cluster (RAFT.MEMBER REMOVE). Needs nodes that support
    /// membership changes.
    Remove {
        /// The node.
        id: u64,
    },
}

/// Seconds, whole or fractional, at least 0.1.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=86_400.0).contains(&secs) {
        return Err("must be between 0.1 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs raftctl with parsed flags; returns the exit status.
pub fn main(cli: Cli) -> i32 {
    let addrs: Vec<String> = cli
        .nodes
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        eprintln!("raftctl: error: {}", CtlError::NoNodes);
        return 2;
    }
    let options = match cli.client.connect_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("raftctl: error: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftctl: error: {}", CtlError::Runtime(e));
            return 1;
        }
    };
    let within = Duration::from_millis(cli.timeout_ms);
    let result = runtime.block_on(async {
        match &cli.cmd {
            Cmd::Status(args) => return status(&addrs, args, within, &options).await,
            Cmd::TransferLeader { id } => {
                admin::transfer_leader(&addrs, *id, within, &options).await
            }
            Cmd::Snapshot { id } => admin::snapshot(&addrs, *id, within, &options)
                .await
                .map(|index| format!("node {id}: snapshot taken at index {index}")),
            Cmd::Member(verb) => admin::member(&addrs, &verb.change(), within, &options).await,
        }
        .map(|message| {
            println!("{message}");
            0
        })
        .unwrap_or_else(|e| {
            eprintln!("raftctl: error: {e}");
            1
        })
    });
    // Probe tasks still waiting on a dead node's timeout must not hold the exit.
    runtime.shutdown_background();
    result
}

impl MemberCmd {
    fn change(&self) -> MemberChange {
        match self {
            MemberCmd::Add {
                id,
                raft_addr,
                learner,
            } => MemberChange::Add {
                id: *id,
                raft_addr: raft_addr.clone(),
                learner: *learner,
            },
            MemberCmd::Promote { id } => MemberChange::Promote(*id),
            MemberCmd::Remove { id } => MemberChange::Remove(*id),
        }
    }
}

/// `raftctl status`, once or with `--watch`; the exit status of the last view.
async fn status(
    addrs: &[String],
    args: &StatusArgs,
    within: Duration,
    options: &ConnectOptions,
) -> i32 {
    let tty = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        let probes = probe::probe_all(addrs, within, options).await;
        if first {
            // Once, on stderr too: a missing password or an untrusted certificate is the
            // operator's to fix, and a table cell is easy to miss.
            let mut said = Vec::new();
            for e in probes.iter().filter_map(|p| p.result.as_ref().err()) {
                if e.is_access() && !said.contains(e) {
                    eprintln!("raftctl: error: {e}");
                    said.push(e.clone());
                }
            }
        }
        let status = Status::assess(&probes, args.lag_threshold);
        let text = if args.json {
            format!("{}\n", status.to_json())
        } else if args.watch.is_some() && tty {
            // Clear the screen and home the cursor: the table redraws in place.
            format!("\x1b[2J\x1b[H{}", status.render())
        } else if args.watch.is_some() && !first {
            // Successive tables in a file or pipe: a blank line between them.
            format!("\n{}", status.render())
        } else {
            status.render()
        };
        first = false;
        let mut out = std::io::stdout().lock();
        // A closed pipe (`raftctl status --watch 1 | head`) ends the watch.
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return 1;
        }
        drop(out);
        let code = if status.is_ok() { 0 } else { 1 };
        let Some(every) = args.watch else {
            return code;
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let cli = Cli::try_parse_from([
            "raftctl",
            "status",
            "--nodes",
            "127.0.0.1:1,localhost:2",
            "--json",
            "--watch",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.nodes, ["127.0.0.1:1", "localhost:2"]);
        let Cmd::Status(s) = cli.cmd else {
            panic!("not status")
        };
        assert!(s.json);
        assert_eq!(s.watch, Some(Duration::from_millis(500)));
        assert_eq!(s.lag_threshold, DEFAULT_LAG_THRESHOLD);

        let cli = Cli::try_parse_from([
            "raftctl",
            "--nodes",
            "a:1",
            "member",
            "add",
            "4",
            "10.0.0.4:7000",
            "--learner",
        ])
        .unwrap();
        let Cmd::Member(verb) = cli.cmd else {
            panic!("not member")
        };
        assert_eq!(
            verb.change(),
            MemberChange::Add {
                id: 4,
                raft_addr: "10.0.0.4:7000".into(),
                learner: true
            }
        );
        for bad in [
            &["raftctl", "status", "--watch", "0"][..],
            &["raftctl", "status", "--watch", "x"],
            &["raftctl", "transfer-leader"],
            &["raftctl", "snapshot", "two"],
            &["raftctl", "member", "add", "4"],
            &["raftctl", "status", "--timeout-ms", "0"],
            &["raftctl", "frobnicate"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_addresses_is_a_usage_error() {
        let cli = Cli::try_parse_from(["raftctl", "status", "--nodes", " "]).unwrap();
        assert_eq!(main(cli), 2);
    }
}
