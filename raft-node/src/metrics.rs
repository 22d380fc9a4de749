//! Prometheus metrics: the recorder, the gauges the driver refreshes every tick, and a
//! minimal HTTP endpoint serving `GET /metrics`.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use raft_core::{Role, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Latency buckets in seconds: 50 µs to 10 s.
const SECONDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Size buckets (entries or writes per batch).
const COUNTS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// Installs the global recorder (once per process) and returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    let builder = PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_entries".into()),
                COUNTS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_writes".into()),
                COUNTS,
            )
        })
        .map_err(|e| e.to_string())?;
    builder.install_recorder().map_err(|e| e.to_string())
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read the request head (bounded); we only look at its first line.
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("");
            let (status, body) = if line.starts_with("GET /metrics ") || line == "GET /metrics" {
                ("200 OK", handle.render())
            } else {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}

/// Refreshes the Raft gauges from a status.
pub fn record_status(st: &Status) {
    let role = match st.role {
        Role::Follower => 0.0,
        Role::PreCandidate => 1.0,
        Role::Candidate => 2.0,
        Role::Leader => 3.0,
    };
    metrics::gauge!("raft_term").set(st.term.get() as f64);
    metrics::gauge!("raft_role").set(role);
    metrics::gauge!("raft_leader").set(st.leader.get() as f64);
    metrics::gauge!("raft_commit_index").set(st.commit.get() as f64);
    metrics::gauge!("raft_applied_index").set(st.applied.get() as f64);
    metrics::gauge!("raft_last_index").set(st.last_index.get() as f64);
    metrics::gauge!("raft_first_index").set(st.first_index.get() as f64);
    metrics::gauge!("raft_snapshot_index").set(st.snapshot_index.get() as f64);
    for p in &st.peers {
        let lag = st.last_index.get().saturating_sub(p.matched.get());
        metrics::gauge!("raft_peer_lag_entries", "peer" => p.id.to_string()).set(lag as f64);
        metrics::gauge!("raft_peer_match_index", "peer" => p.id.to_string())
            .set(p.matched.get() as f64);
    }
}
