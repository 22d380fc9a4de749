//! Per-node limits shared by every transfer: how many run at once, and an optional
//! bandwidth cap for all of them together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// Transfer limits of one node. Clones share the same limits, so make one per node and hand
/// clones (inside [`crate::TransferConfig`]) to every sender and receiver.
#[derive(Clone, Debug)]
pub struct Limits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_transfers: usize,
    transfers: Arc<Semaphore>,
    bandwidth: Option<Bucket>,
}

/// A token bucket that may go into debt: a sender takes its chunk's bytes at once and then
/// waits until the debt is paid back at the configured rate.
#[derive(Debug)]
struct Bucket {
    bytes_per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limits {
    /// At most `max_transfers` transfers (sending and receiving together) at once, and, with
    /// `bytes_per_sec`, at most that many chunk bytes per second sent by all of them.
    pub fn new(max_transfers: usize, bytes_per_sec: Option<u64>) -> Limits {
        let bandwidth = bytes_per_sec.filter(|&r| r > 0).map(|r| {
            let rate = r as f64;
            // 100 ms worth of burst, at least 64 KiB.
            let burst = (rate / 10.0).max(65536.0);
            Bucket {
                bytes_per_sec: rate,
                burst,
                state: Mutex::new((burst, Instant::now())),
            }
        });
        Limits {
            inner: Arc::new(Inner {
                max_transfers,
                transfers: Arc::new(Semaphore::new(max_transfers)),
                bandwidth,
            }),
        }
    }

    /// The maximum number of concurrent transfers.
    pub fn max_transfers(&self) -> usize {
        self.inner.max_transfers
    }

    /// Transfers running now.
    pub fn active_transfers(&self) -> usize {
        self.inner.max_transfers - self.inner.transfers.available_permits()
    }

    /// The bandwidth cap in bytes per second, if any.
    pub fn bytes_per_sec(&self) -> Option<u64> {
        self.inner
            .bandwidth
            .as_ref()
            .map(|b| b.bytes_per_sec as u64)
    }

    /// A slot for one transfer, or [`Error::Busy`] when all are taken.
    pub(crate) fn try_acquire(&self) -> Result<OwnedSemaphorePermit> {
        self.inner
            .transfers
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                metrics::counter!("raft_snapshot_busy_total").increment(1);
                Error::Busy(format!(
                    "{} snapshot transfers already running",
                    self.inner.max_transfers
                ))
            })
    }

    /// Waits until `bytes` more may be sent under the bandwidth cap.
    pub(crate) async fn throttle(&self, bytes: usize) {
        let Some(b) = &self.inner.bandwidth else {
            return;
        };
        let wait = {
            let mut state = b.state.lock().unwrap_or_else(|e| e.into_inner());
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens = (*tokens + b.bytes_per_sec * (now - *last).as_secs_f64()).min(b.burst);
            *last = now;
            *tokens -= bytes as f64;
            if *tokens < 0.0 {
                Duration::from_secs_f64(-*tokens / b.bytes_per_sec)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

impl Default for Limits {
    /// Four transfers at once, no bandwidth cap.
    fn default() -> Limits {
        Limits::new(4, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits() {
        let l = Limits::new(2, None);
        let a = l.try_acquire().unwrap();
        let _b = l.clone().try_acquire().unwrap();
        assert_eq!(l.active_transfers(), 2);
        assert!(matches!(l.try_acquire(), Err(Error::Busy(_))));
        drop(a);
        let _c = l.try_acquire().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn bandwidth() {
        let l = Limits::new(1, Some(1_000_000));
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            l.throttle(100_000).await;
        }
        // 1.1 MB at 1 MB/s with a 100 KB burst: about one second.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(1100),
            "{took:?}"
        );
    }
}
