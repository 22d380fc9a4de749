//! The progress line on stderr while a run goes: only on a terminal, redrawn in place, and
//! erased at the end, so that neither piped output nor a log file gets garbled.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::load::{Live, Plan};

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);
/// Width of the bar in characters.
const BAR: usize = 30;

/// Whether progress is shown at all.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// Redraws the line until dropped (the caller aborts it), then [`clear`].
pub async fn show(plan: Arc<Plan>, live: Arc<Live>, started: Instant) {
    let (mut last_ops, mut last_at) = (0, Instant::now());
    loop {
        tokio::time::sleep(EVERY).await;
        let now = Instant::now();
        let line = if now < plan.measure_from {
            format!(
                "warming up {:.1} / {:.1} s",
                (now - started).as_secs_f64(),
                (plan.measure_from - started).as_secs_f64()
            )
        } else {
            let ops = live.ops.load(Ordering::Relaxed);
            // Over the time measured since the last redraw (not the warmup's part of it).
            let since = last_at.max(plan.measure_from);
            let rate = (ops - last_ops) as f64 / (now - since).as_secs_f64().max(1e-3);
            (last_ops, last_at) = (ops, now);
            let total = (plan.end - plan.measure_from).as_secs_f64();
            let done = (now - plan.measure_from).as_secs_f64().min(total);
            let filled = ((done / total) * BAR as f64) as usize;
            format!(
                "[{}{}] {done:.1} / {total:.1} s  {ops} ops  {rate:.0} ops/s  {} errors",
                "#".repeat(filled.min(BAR)),
                ".".repeat(BAR - filled.min(BAR)),
                live.errors.load(Ordering::Relaxed)
            )
        };
        let mut err = std::io::stderr().lock();
        // \r and "erase line": the line is redrawn in place.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

/// Erases the progress line.
pub fn clear() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
