//! The command-line flags of `raft-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::client_opts::ClientArgs;

/// Load generator for a raft-node cluster: closed-loop clients send SET and GET over the
/// Redis protocol for a while, then it prints throughput and latency percentiles.
///
/// Without --nodes it starts a local cluster of its own (raft-node run processes on
/// 127.0.0.1, in a temporary directory) and stops it at the end, also on Ctrl-C.
///
/// Each client is one connection that sends --pipeline requests at once, waits for all
/// their replies, and starts over. A request's latency is that of its whole batch, from
/// writing the batch to reading its last reply (so with --pipeline 1 it is the request's
/// round trip; redis-benchmark also gives each request of a batch the batch's time).
/// Requests started during --warmup are not counted. An error reply (`-...`), a timeout or
/// a broken connection counts as an error, by kind, never as an operation.
///
/// Secured nodes: --password (or RAFT_PASSWORD, with --user for a named user) logs every
/// connection in; --tls --cacert FILE connects to the nodes' TLS client ports (give those
/// in --nodes; the local cluster is plain).
///
/// Exit status: 0 done; 1 no operation succeeded; 2 bad flags; 3 the run could not be
/// carried out (an address unreachable, the local cluster did not start); 130 interrupted
/// (the results so far are still printed).
#[derive(Clone, Debug, Parser)]
#[command(name = "raft-bench", version)]
pub struct Options {
    /// Client addresses to load, HOST:PORT,... (clients are spread over them in turn).
    /// Default: a local cluster started for the run.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// Client connections, each a closed loop.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,

    /// Requests each client sends at once (its batch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pipeline: u64,

    /// Seconds measured (fractions allowed).
    #[arg(long, default_value = "10", value_parser = positive_secs)]
    pub duration: Duration,

    /// Seconds of load before the measurement, not counted (0 for none).
    #[arg(long, default_value = "2", value_parser = secs)]
    pub warmup: Duration,

    /// Distinct keys (`key:000000000042` ...), each request's chosen uniformly.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,

    /// Bytes of each SET's value.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=(64 << 20)))]
    pub value_size: u64,

    /// Fraction of requests that are GETs, 0 to 1 (the others are SETs).
    #[arg(long, default_value_t = 0.5, value_parser = ratio)]
    pub read_ratio: f64,

    /// Seed of the clients' key and operation choices (a run's requests repeat with it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Milliseconds a batch may wait for its replies; then its unanswered requests count
    /// as timeouts and the client reconnects.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Threads running the clients; 1 suffices unless raft-bench itself is the bottleneck
    /// (it then uses a whole core).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,

    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Nodes of the local cluster (without --nodes).
    #[arg(long, default_value_t = 3, conflicts_with = "nodes",
          value_parser = clap::value_parser!(u64).range(1..=9))]
    pub local_nodes: u64,

    /// The raft-node binary for the local cluster (default: the raft-node next to this
    /// executable, else PATH).
    #[arg(long, conflicts_with = "nodes")]
    pub node_bin: Option<PathBuf>,

    /// Extra flags for every `raft-node run` of the local cluster, space-separated (e.g.
    /// "--snapshot-interval 100000"). Each node gets its share of this machine's cores as
    /// --worker-threads unless given here.
    #[arg(
        long,
        default_value = "",
        allow_hyphen_values = true,
        conflicts_with = "nodes"
    )]
    pub node_args: String,

    /// Credentials and TLS for the client connections (with --nodes).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Seconds, whole or fractional, from 0 to a day.
fn secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err("must be between 0 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(v))
}

/// Seconds, more than 0.
fn positive_secs(s: &str) -> Result<Duration, String> {
    secs(s).and_then(|d| {
        if d.is_zero() {
            Err("must be more than 0 seconds".into())
        } else {
            Ok(d)
        }
    })
}

/// A fraction from 0 to 1.
fn ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let o = Options::try_parse_from(["raft-bench"]).unwrap();
        assert!(o.nodes.is_empty());
        assert_eq!(
            (o.clients, o.pipeline, o.keys, o.value_size),
            (50, 1, 100_000, 16)
        );
        assert_eq!(o.duration, Duration::from_secs(10));
        assert_eq!(o.warmup, Duration::from_secs(2));
        assert_eq!(o.read_ratio, 0.5);
        let o = Options::try_parse_from([
            "raft-bench",
            "--nodes",
            "127.0.0.1:1,127.0.0.1:2",
            "--duration",
            "2.5",
            "--warmup",
            "0",
            "--read-ratio",
            "1",
            "--pipeline",
            "16",
            "--json",
        ])
        .unwrap();
        assert_eq!(o.nodes.len(), 2);
        assert_eq!(o.duration, Duration::from_millis(2500));
        assert!(o.warmup.is_zero());
        assert_eq!((o.read_ratio, o.pipeline, o.json), (1.0, 16, true));
        let o =
            Options::try_parse_from(["raft-bench", "--node-args", "--worker-threads 2"]).unwrap();
        assert_eq!(o.node_args, "--worker-threads 2");
        for bad in [
            &["raft-bench", "--duration", "0"][..],
            &["raft-bench", "--duration", "-1"],
            &["raft-bench", "--warmup", "x"],
            &["raft-bench", "--read-ratio", "1.5"],
            &["raft-bench", "--read-ratio", "NaN"],
            &["raft-bench", "--pipeline", "0"],
            &["raft-bench", "--clients", "0"],
            &["raft-bench", "--keys", "0"],
            &["raft-bench", "--local-nodes", "10"],
            &["raft-bench", "--nodes", "127.0.0.1:1", "--local-nodes", "5"],
            &["raft-bench", "--frobnicate"],
        ] {
            assert!(Options::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
