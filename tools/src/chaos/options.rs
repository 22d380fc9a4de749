//! The command-line flags of `raft-chaos`.

use std::path::PathBuf;

use clap::Parser;

/// Fault-injection run with a linearizability check: starts a cluster of `raft-node`
/// processes on 127.0.0.1, runs clients that APPEND unique tokens and GET a few keys while
/// a nemesis kills, pauses and partitions nodes, then heals, reads every key and checks the
/// recorded history. Exit status: 0 pass, 1 a check failed (a violation, a lost
/// acknowledged append, an inconclusive key, a node that crashed or could not be healed),
/// 2 bad flags, 3 the run itself could not be carried out.
#[derive(Clone, Debug, Parser)]
#[command(name = "raft-chaos", version)]
pub struct Options {
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=9))]
    pub nodes: u64,

    /// Seconds of faults (with --no-faults: of workload alone).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,

    /// Concurrent clients.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub clients: u64,

    /// Keys the clients share at any time.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keys: u64,

    /// Appends a key receives before the clients move on to a fresh one (each read records
    /// the whole value: this bounds the history's size and the checker's work per key).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub appends_per_key: u64,

    /// The most milliseconds a client pauses between operations (uniform from 0).
    #[arg(long, default_value_t = 10)]
    pub think_ms: u64,

    /// Seed of the fault schedule and the clients' choices (default: from the clock; printed
    /// either way, to replay the same schedule).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Run directory, created and kept (default: a new directory under the cargo target
    /// directory's chaos/ when run from there, else under the system temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// The raft-node binary (default: the raft-node next to this executable, else PATH).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,

    /// Only the workload, no faults (to debug the runner).
    #[arg(long)]
    pub no_faults: bool,

    /// Flags for every `raft-node run`, space-separated (replaces the default). The
    /// default's request timeout is below --op-timeout-ms, and its snapshot settings make
    /// the nodes snapshot and compact every few seconds, so that a node restarted after a
    /// kill sometimes catches up by snapshot.
    #[arg(
        long,
        default_value = "--request-timeout-ms 2000 --worker-threads 1 --snapshot-interval 1000 --snapshot-min-log-bytes 0",
        allow_hyphen_values = true
    )]
    pub node_args: String,

    /// Milliseconds a client waits for a reply before the outcome is unknown; longer than
    /// the node's request timeout, so the node's own answer usually comes first.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..))]
    pub op_timeout_ms: u64,

    /// Percent of operations that are appends.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub append_percent: u64,

    /// Seconds the checker may search per key before the key is inconclusive.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_secs: u64,

    /// Pass even if the checker could not decide some key within its budget.
    #[arg(long)]
    pub allow_inconclusive: bool,

    /// Membership changes instead of kills, pauses and partitions: spare nodes (2 ids
    /// besides --nodes) join as learners, catch up and are promoted; voters (sometimes the
    /// leader) are removed, stopped and wiped, never below 3 voters; now and then a member
    /// is killed (-9) and restarted. The summary adds
    /// `members_added=N members_removed=M`.
    #[arg(long, conflicts_with = "no_faults")]
    pub membership: bool,

    /// Keep the nodes' data directories after a passing run too.
    #[arg(long)]
    pub keep_data: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let o = Options::try_parse_from(["raft-chaos"]).unwrap();
        assert_eq!((o.nodes, o.duration, o.clients, o.keys), (3, 60, 10, 5));
        let o = Options::try_parse_from([
            "raft-chaos",
            "--nodes",
            "5",
            "--seed",
            "9",
            "--node-args",
            "--request-timeout-ms 1000",
        ])
        .unwrap();
        assert_eq!((o.nodes, o.seed), (5, Some(9)));
        assert_eq!(o.node_args, "--request-timeout-ms 1000");
        assert!(!o.membership);
        let o = Options::try_parse_from(["raft-chaos", "--membership"]).unwrap();
        assert!(o.membership);
        for bad in [
            &["raft-chaos", "--nodes", "2"][..],
            &["raft-chaos", "--duration", "0"],
            &["raft-chaos", "--clients", "x"],
            &["raft-chaos", "--frobnicate"],
            &["raft-chaos", "--membership", "--no-faults"],
        ] {
            assert!(Options::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
