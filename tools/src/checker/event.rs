//! The events a client run records, one JSON object per line.
//!
//! Events are what a client can record without knowing the outcome in advance: an `invoke`
//! before the request is sent, then one completion (`ok`, `fail` or `unknown`).
//! [`super::History`] pairs them into operations.

use serde::{Deserialize, Serialize};

use super::history::HistoryError;

/// A client (process) of the run; it has at most one operation in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub u64);

/// What an event records: the start of an operation or one of its three possible ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The client is about to send the request.
    Invoke,
    /// The operation took effect exactly once, between its invoke and this event.
    Ok,
    /// The operation definitely did not take effect.
    Fail,
    /// The operation may or may not take effect, at any time after its invoke.
    Unknown,
}

/// The command of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// `APPEND key token`.
    Append,
    /// `GET key`.
    Get,
}

/// One line of a history file. See the module documentation of [`crate::checker`] for the
/// format; the builder methods make the common shapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client that recorded the event.
    pub process: ProcessId,
    /// Invoke or one of the completions.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The command.
    pub f: Function,
    /// The key the command touches.
    pub key: String,
    /// Monotonic nanoseconds, from one clock for the whole run.
    pub time: u64,
    /// The appended token (appends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The value a successful `GET` returned, split into tokens; `[]` for a missing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Vec<String>>,
    /// The length in bytes that a successful `APPEND` replied, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// Free text for people (the error a client saw); the checker ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// The invoke of `APPEND key token`.
    pub fn append(process: u64, time: u64, key: &str, token: &str) -> Event {
        Event::invoke(process, time, key, Function::Append, Some(token.to_owned()))
    }

    /// The invoke of `GET key`.
    pub fn get(process: u64, time: u64, key: &str) -> Event {
        Event::invoke(process, time, key, Function::Get, None)
    }

    fn invoke(process: u64, time: u64, key: &str, f: Function, token: Option<String>) -> Event {
        Event {
            process: ProcessId(process),
            kind: EventKind::Invoke,
            f,
            key: key.to_owned(),
            time,
            token,
            value: None,
            len: None,
            error: None,
        }
    }

    /// The `ok` completion of this invoke at `time`.
    pub fn ok(&self, time: u64) -> Event {
        self.completion(EventKind::Ok, time)
    }

    /// The `fail` completion of this invoke at `time`.
    pub fn fail(&self, time: u64) -> Event {
        self.completion(EventKind::Fail, time)
    }

    /// The `unknown` completion of this invoke at `time` (when the client gave up).
    pub fn unknown(&self, time: u64) -> Event {
        self.completion(EventKind::Unknown, time)
    }

    fn completion(&self, kind: EventKind, time: u64) -> Event {
        Event {
            kind,
            time,
            value: None,
            len: None,
            error: None,
            ..self.clone()
        }
    }

    /// With the value a `GET` returned.
    pub fn with_value<T: Into<String>>(mut self, value: impl IntoIterator<Item = T>) -> Event {
        self.value = Some(value.into_iter().map(Into::into).collect());
        self
    }

    /// With the length an `APPEND` replied.
    pub fn with_len(mut self, len: u64) -> Event {
        self.len = Some(len);
        self
    }

    /// With the error text the client saw.
    pub fn with_error(mut self, error: &str) -> Event {
        self.error = Some(error.to_owned());
        self
    }

    /// The event as one line of JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serializing a struct of strings, numbers and sequences cannot fail: serde_json only
        // fails on maps with non-string keys and on failing `Serialize` impls.
        serde_json::to_string(self).expect("an Event always serializes")
    }
}

/// Events as a JSON-lines text, one event per line.
pub fn to_jsonl<'a>(events: impl IntoIterator<Item = &'a Event>) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&event.to_json_line());
        out.push('\n');
    }
    out
}

/// Parses a JSON-lines text into events. Blank lines are skipped; line numbers in errors
/// count them.
pub fn parse_jsonl(text: &str) -> Result<Vec<(usize, Event)>, HistoryError> {
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(line).map_err(|source| HistoryError::Json {
            line: index + 1,
            source,
        })?;
        events.push((index + 1, event));
    }
    Ok(events)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A history file with every kind of event, and a blank line.
    pub(crate) const FILE: &str = r#"{"process":0,"type":"invoke","f":"append","key":"k","time":10,"token":"a;"}
{"process":1,"type":"invoke","f":"get","key":"k","time":12}
{"process":0,"type":"ok","f":"append","key":"k","time":20,"token":"a;","len":2}

{"process":1,"type":"ok","f":"get","key":"k","time":25,"value":["a;"]}
{"process":2,"type":"invoke","f":"append","key":"k","time":30,"token":"b;"}
{"process":2,"type":"unknown","f":"append","key":"k","time":90,"token":"b;","error":"timeout"}
{"process":3,"type":"invoke","f":"append","key":"j","time":31,"token":"c;"}
{"process":3,"type":"fail","f":"append","key":"j","time":40,"token":"c;","error":"not leader"}
{"process":4,"type":"invoke","f":"get","key":"j","time":50}
"#;

    #[test]
    fn events_round_trip_through_jsonl() {
        let events: Vec<Event> = parse_jsonl(FILE)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let text = to_jsonl(&events);
        assert_eq!(text.lines().count(), 9);
        let again: Vec<Event> = parse_jsonl(&text)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(again, events);
        let built = Event::append(0, 10, "k", "a;");
        assert_eq!(built, events[0]);
        assert_eq!(built.ok(20).with_len(2), events[2]);
        assert_eq!(Event::get(1, 12, "k").ok(25).with_value(["a;"]), events[3]);
    }
}
