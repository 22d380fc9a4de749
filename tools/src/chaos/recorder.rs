//! The history file, written as the run goes: one JSON event per line, in the checker's
//! format ([`crate::checker::Event`]), timestamped from one monotonic clock.
//!
//! Why written as it goes (flushed by [`Recorder::flush`], which the run calls every few
//! hundred milliseconds): a run that crashes or is killed still leaves the history of what
//! it did, to check or read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crate::checker::Event;

/// Appends events to the history file; shared by every client.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    out: BufWriter<File>,
    events: u64,
    /// The first write error; the run reports it at the end rather than stopping clients.
    error: Option<std::io::Error>,
}

impl Recorder {
    /// Creates (truncates) the history file. Times count from `start`.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Recorder> {
        Ok(Recorder {
            start,
            inner: Mutex::new(Inner {
                out: BufWriter::new(File::create(path)?),
                events: 0,
                error: None,
            }),
        })
    }

    /// Nanoseconds since the run's start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records `event` with its time set to now and returns it with that time. The time is
    /// taken under the lock, so the file is in time order. Record an invoke before sending
    /// the request and a completion after the reply: the interval then covers the request.
    pub fn record(&self, mut event: Event) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        event.time = self.now();
        let mut line = event.to_json_line();
        line.push('\n');
        if let Err(e) = inner.out.write_all(line.as_bytes()) {
            inner.error.get_or_insert(e);
        }
        inner.events += 1;
        event
    }

    /// Writes buffered events to the file.
    pub fn flush(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = inner.out.flush() {
            inner.error.get_or_insert(e);
        }
    }

    /// Flushes, then returns the number of events recorded or the first write error.
    pub fn finish(&self) -> std::io::Result<u64> {
        self.flush();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.error.take() {
            Some(e) => Err(e),
            None => Ok(inner.events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::History;

    #[test]
    fn records_a_history_the_checker_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path, Instant::now()).unwrap();
        let invoke = rec.record(Event::append(0, 0, "k", "p0-0;"));
        let ok = rec.record(invoke.ok(0).with_len(5));
        assert!(ok.time >= invoke.time);
        assert_eq!(rec.finish().unwrap(), 2);
        let history = History::parse_jsonl(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(history.operations().len(), 1);
    }
}
