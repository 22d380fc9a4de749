//! `raft-bench` end to end: against a running 3-node cluster (table and JSON), against a
//! cluster it starts itself (and stops), and its clear errors.

mod support;

use std::net::TcpStream;

use serde_json::Value;
use support::{RAFT_BENCH, TestCluster, dead_addr, node_bin, run, stderr, stdout};

#[test]
fn bench_against_a_cluster_prints_a_table_and_json() {
    let c = TestCluster::start();
    let addrs = c.addrs();
    let load = ["--clients", "8", "--warmup", "0.5"];

    let out = run(
        RAFT_BENCH,
        &[&["--nodes", &addrs, "--duration", "3"][..], &load].concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("raft-bench: 3 nodes ("), "{text}");
    // Words, not spacing: a latency of 100 ms or more widens its column.
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>().join(" "),
        "OP OPS OPS/S ERRORS P50 MS P90 MS P99 MS P99.9 MS MAX MS",
        "{text}"
    );
    let all: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("ALL "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(all[1].parse::<u64>().unwrap() > 0, "ops");
    assert!(all[2].parse::<f64>().unwrap() > 0.0, "ops/s");
    assert_eq!(all[3], "0", "errors:\n{text}");
    let p50: f64 = all[4].parse().unwrap();
    let max: f64 = all[8].parse().unwrap();
    assert!(0.0 < p50 && p50 <= max);
    assert!(!text.contains("errors by kind"));

    let out = run(
        RAFT_BENCH,
        &[
            &[
                "--nodes",
                &addrs,
                "--duration",
                "2",
                "--json",
                "--pipeline",
                "4",
            ][..],
            &load,
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["ops"].as_u64().unwrap() > 0);
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["pipeline"], 4);
    assert_eq!(
        v["ops"],
        v["get"]["ops"].as_u64().unwrap() + v["set"]["ops"].as_u64().unwrap()
    );
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_starts_and_stops_its_own_cluster() {
    let bin = node_bin();
    let out = run(
        RAFT_BENCH,
        &[
            "--node-bin",
            bin.to_str().unwrap(),
            "--duration",
            "1.5",
            "--warmup",
            "0.2",
            "--clients",
            "4",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["local_cluster"], true);
    assert!(v["ops"].as_u64().unwrap() > 0);
    assert!(stderr(&out).contains("local cluster stopped"));
    // Every node is gone: nothing listens on their client ports any more.
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for addr in nodes {
        let addr = addr.as_str().unwrap();
        assert!(TcpStream::connect(addr).is_err(), "{addr} still answers");
    }
}

#[test]
fn bad_flags_and_dead_addresses_are_refused_clearly() {
    let out = run(RAFT_BENCH, &["--read-ratio", "2"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--read-ratio"));

    let dead = dead_addr();
    let out = run(RAFT_BENCH, &["--nodes", &dead, "--duration", "1"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains(&format!(
            "node at {dead} is unreachable: connection refused"
        )),
        "{}",
        stderr(&out)
    );
}
