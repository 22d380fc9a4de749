//! The results of a run: a table (per operation and in all: ops, ops/s, errors, latency
//! percentiles in milliseconds) with the failures by kind, or one JSON object.
//!
//! Latencies come from HdrHistograms of microseconds with 3 significant digits: each
//! figure is within 0.1% of the true one (a bucket's highest value is reported, as
//! HdrHistogram does).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::load::{OpStats, Stats};
use crate::table::Table;

/// The percentiles reported, with their column and JSON names.
const PERCENTILES: [(f64, &str, &str); 4] = [
    (50.0, "P50 MS", "p50"),
    (90.0, "P90 MS", "p90"),
    (99.0, "P99 MS", "p99"),
    (99.9, "P99.9 MS", "p99_9"),
];

/// What was run, for the report's first line and the JSON.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The client addresses loaded.
    pub nodes: Vec<String>,
    /// Whether raft-bench started the cluster.
    pub local: bool,
    /// Client connections.
    pub clients: u64,
    /// Requests per batch.
    pub pipeline: u64,
    /// The planned measurement.
    pub duration: Duration,
    /// The warmup before it.
    pub warmup: Duration,
    /// Distinct keys.
    pub keys: u64,
    /// Bytes per SET value.
    pub value_size: u64,
    /// Fraction of GETs.
    pub read_ratio: f64,
    /// The seed.
    pub seed: u64,
}

/// A run's measurements.
#[derive(Clone, Debug)]
pub struct Results {
    /// Every client's, merged.
    pub stats: Stats,
    /// The time measured: from the warmup's end to the last measured batch's reply.
    pub elapsed: Duration,
    /// Whether Ctrl-C or SIGTERM cut the run short.
    pub interrupted: bool,
}

impl Results {
    /// GET and SET together.
    pub fn all(&self) -> OpStats {
        let mut all = self.stats.get.clone();
        all.add(&self.stats.set);
        all
    }

    /// Successful requests.
    pub fn ops(&self) -> u64 {
        self.stats.get.ops() + self.stats.set.ops()
    }

    fn rate(&self, ops: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { ops as f64 / secs } else { 0.0 }
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The table, the failures by kind, and a first line saying what ran.
pub fn render(setup: &Setup, r: &Results) -> String {
    let mut out = format!(
        "raft-bench: {} {} ({}), {} clients x pipeline {}, {:.1} s measured after {:.1} s \
         warmup, {} keys, {}-byte values, {:.0}% GET{}\n",
        setup.nodes.len(),
        if setup.nodes.len() == 1 {
            "node"
        } else {
            "nodes"
        },
        if setup.local {
            "a local cluster".to_owned()
        } else {
            setup.nodes.join(",")
        },
        setup.clients,
        setup.pipeline,
        r.elapsed.as_secs_f64(),
        setup.warmup.as_secs_f64(),
        setup.keys,
        setup.value_size,
        setup.read_ratio * 100.0,
        if r.interrupted { "; INTERRUPTED" } else { "" },
    );
    let mut header = vec!["OP", "OPS", "OPS/S", "ERRORS"];
    header.extend(PERCENTILES.iter().map(|p| p.1));
    header.push("MAX MS");
    let mut t = Table::new(&header);
    for col in 1..header.len() {
        t.align_right(col);
    }
    let all = r.all();
    // Failed connection attempts belong to no operation: they show in the total only.
    let total_errors = r.stats.total_errors();
    for (name, s, errors) in [
        ("GET", &r.stats.get, r.stats.get.errors),
        ("SET", &r.stats.set, r.stats.set.errors),
        ("ALL", &all, total_errors),
    ] {
        let mut row = vec![
            name.to_owned(),
            s.ops().to_string(),
            format!("{:.1}", r.rate(s.ops())),
            errors.to_string(),
        ];
        let h = &s.latency_us;
        if h.is_empty() {
            row.extend(std::iter::repeat_n("-".to_owned(), PERCENTILES.len() + 1));
        } else {
            row.extend(PERCENTILES.iter().map(|p| ms(h.value_at_percentile(p.0))));
            row.push(ms(h.max()));
        }
        t.row(row);
    }
    out.push_str(&t.to_string());
    if !r.stats.errors.is_empty() {
        out.push_str("errors by kind:\n");
        let mut e = Table::new(&["  KIND", "COUNT", "FIRST"]);
        e.align_right(1);
        for (kind, c) in &r.stats.errors {
            e.row([format!("  {kind}"), c.count.to_string(), c.example.clone()]);
        }
        out.push_str(&e.to_string());
    }
    out
}

fn op_json(r: &Results, s: &OpStats, errors: u64) -> Value {
    let h = &s.latency_us;
    let latency = if h.is_empty() {
        Value::Null
    } else {
        let mut m = Map::new();
        for (q, _, name) in PERCENTILES {
            m.insert(name.into(), json!(h.value_at_percentile(q) as f64 / 1000.0));
        }
        m.insert("max".into(), json!(h.max() as f64 / 1000.0));
        m.insert("mean".into(), json!(h.mean() / 1000.0));
        Value::Object(m)
    };
    json!({
        "ops": s.ops(),
        "ops_per_sec": r.rate(s.ops()),
        "errors": errors,
        "latency_ms": latency,
    })
}

/// The same as one JSON object.
pub fn to_json(setup: &Setup, r: &Results) -> Value {
    let errors: Map<String, Value> = r
        .stats
        .errors
        .iter()
        .map(|(k, c)| (k.clone(), json!({"count": c.count, "first": c.example})))
        .collect();
    let mut v = op_json(r, &r.all(), r.stats.total_errors());
    let extra = json!({
        "nodes": setup.nodes,
        "local_cluster": setup.local,
        "clients": setup.clients,
        "pipeline": setup.pipeline,
        "duration_s": setup.duration.as_secs_f64(),
        "warmup_s": setup.warmup.as_secs_f64(),
        "keys": setup.keys,
        "value_size": setup.value_size,
        "read_ratio": setup.read_ratio,
        "seed": setup.seed,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "interrupted": r.interrupted,
        "errors_by_kind": errors,
        "get": op_json(r, &r.stats.get, r.stats.get.errors),
        "set": op_json(r, &r.stats.set, r.stats.set.errors),
    });
    if let (Value::Object(m), Value::Object(extra)) = (&mut v, extra) {
        m.extend(extra);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::ErrorCount;

    fn setup() -> Setup {
        Setup {
            nodes: vec!["127.0.0.1:7001".into()],
            local: false,
            clients: 2,
            pipeline: 1,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            keys: 10,
            value_size: 16,
            read_ratio: 0.5,
            seed: 1,
        }
    }

    /// 1,000 GETs of 1..=1000 µs and 10 SETs of 5 ms, over 2 s; 3 TRYAGAIN on SET. (The
    /// histogram keeps 3 significant digits and reports a bucket's highest value: 5 ms
    /// shows as 5.003.)
    fn results() -> Results {
        let mut stats = Stats::default();
        for us in 1..=1000 {
            stats.get.latency_us.record(us).unwrap();
        }
        for _ in 0..10 {
            stats.set.latency_us.record(5000).unwrap();
        }
        stats.set.errors = 3;
        stats.errors.insert(
            "TRYAGAIN".into(),
            ErrorCount {
                count: 3,
                example: "TRYAGAIN no leader".into(),
            },
        );
        Results {
            stats,
            elapsed: Duration::from_secs(2),
            interrupted: false,
        }
    }

    #[test]
    fn the_table_has_a_row_per_operation_and_the_errors_apart() {
        let text = render(&setup(), &results());
        assert_eq!(
            text,
            "\
raft-bench: 1 node (127.0.0.1:7001), 2 clients x pipeline 1, 2.0 s measured after 1.0 s warmup, 10 keys, 16-byte values, 50% GET
OP    OPS  OPS/S  ERRORS  P50 MS  P90 MS  P99 MS  P99.9 MS  MAX MS
GET  1000  500.0       0   0.500   0.900   0.990     1.000   1.000
SET    10    5.0       3   5.003   5.003   5.003     5.003   5.003
ALL  1010  505.0       3   0.505   0.909   1.000     5.003   5.003
errors by kind:
  KIND      COUNT  FIRST
  TRYAGAIN      3  TRYAGAIN no leader
"
        );
    }

    #[test]
    fn an_operation_without_replies_shows_dashes() {
        let mut r = results();
        r.stats.set = OpStats::clone(&Stats::default().set);
        r.stats.errors.clear();
        let text = render(&setup(), &r);
        assert!(
            text.contains("SET     0    0.0       0       -       -       -         -       -"),
            "{text}"
        );
        assert!(!text.contains("errors by kind"));
        assert_eq!(to_json(&setup(), &r)["set"]["latency_ms"], Value::Null);
    }

    #[test]
    fn json_holds_the_same_numbers() {
        let v = to_json(&setup(), &results());
        assert_eq!(v["ops"], 1010);
        assert_eq!(v["ops_per_sec"], 505.0);
        assert_eq!(v["errors"], 3);
        assert_eq!(v["get"]["ops"], 1000);
        assert_eq!(v["get"]["latency_ms"]["p50"], 0.5);
        assert_eq!(v["set"]["latency_ms"]["max"], 5.003);
        assert_eq!(v["errors_by_kind"]["TRYAGAIN"]["count"], 3);
        assert_eq!(v["nodes"][0], "127.0.0.1:7001");
        assert_eq!(v["interrupted"], false);
        // One line, parseable back.
        let line = v.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
    }
}
