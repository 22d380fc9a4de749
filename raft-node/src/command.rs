//! What a log entry carries (a write command) and what applying it answers.
//!
//! The encoding is ours and versioned by its first byte: a tag per command, then
//! length-prefixed fields (u32 little-endian lengths). Decoding checks every length against
//! the bytes present, so a damaged or foreign entry is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// The condition of `SET ... NX|XX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCond {
    /// Always set.
    Always,
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

/// A write, replicated through the log and applied in log order on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `SET key value [NX|XX]`.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Condition.
        cond: SetCond,
    },
    /// `DEL key...`.
    Del {
        /// Keys.
        keys: Vec<Bytes>,
    },
    /// `APPEND key value`.
    Append {
        /// Key.
        key: Bytes,
        /// Suffix.
        value: Bytes,
        /// The longest value the result may be (`max_value_bytes` of the node the client
        /// sent it to), carried in the entry so every replica decides alike. `None` in
        /// entries written before it existed.
        max_len: Option<u64>,
    },
    /// `INCRBY key delta` (and `INCR`).
    IncrBy {
        /// Key.
        key: Bytes,
        /// Increment.
        delta: i64,
    },
    /// `MSET key value [key value ...]`.
    MSet {
        /// Pairs, applied in order.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `FLUSHALL` or `FLUSHDB`: every key is deleted.
    Flush,
    /// `RENAME from to` (or `RENAMENX` with `nx`): the value moves to `to`, replacing any.
    Rename {
        /// The key that goes.
        from: Bytes,
        /// The key that gets the value.
        to: Bytes,
        /// Only if `to` does not exist (`RENAMENX`).
        nx: bool,
    },
    /// `MULTI … EXEC`: the commands, applied in order as one entry, so that no other
    /// command falls between them. Never nested.
    Multi(Vec<Command>),
}

/// The answer to an applied command, sent back to the client (possibly over the forwarding
/// stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `+OK`.
    Ok,
    /// A nil bulk (a `SET NX|XX` that did not set).
    Nil,
    /// An integer reply.
    Integer(i64),
    /// An error reply with Redis's text (e.g. `ERR value is not an integer or out of range`).
    Error(String),
    /// The outcomes of a [`Command::Multi`]'s commands, in order (EXEC's array).
    Multi(Vec<Outcome>),
}

/// An entry or forwarded frame that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed command encoding: {0}")]
pub struct DecodeError(pub &'static str);

const SET: u8 = 1;
const DEL: u8 = 2;
const APPEND: u8 = 3;
const INCRBY: u8 = 4;
const MSET: u8 = 5;
/// APPEND with the longest result allowed (tag 3 has none).
const APPEND_MAX: u8 = 6;
const FLUSH: u8 = 7;
const MULTI: u8 = 8;
const RENAME: u8 = 9;

impl Command {
    /// The bytes stored in the log entry.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Command::Set { key, value, cond } => {
                b.put_u8(SET);
                b.put_u8(match cond {
                    SetCond::Always => 0,
                    SetCond::Nx => 1,
                    SetCond::Xx => 2,
                });
                put_bytes(&mut b, key);
                put_bytes(&mut b, value);
            }
            Command::Del { keys } => {
                b.put_u8(DEL);
                b.put_u32_le(keys.len() as u32);
                for k in keys {
                    put_bytes(&mut b, k);
                }
            }
            Command::Append {
                key,
                value,
                max_len,
            } => {
                match max_len {
                    None => b.put_u8(APPEND),
                    Some(max) => {
                        b.put_u8(APPEND_MAX);
                        b.put_u64_le(*max);
                    }
                }
                put_bytes(&mut b, key);
                put_bytes(&mut b, value);
            }
            Command::IncrBy { key, delta } => {
                b.put_u8(INCRBY);
                b.put_i64_le(*delta);
                put_bytes(&mut b, key);
            }
            Command::MSet { pairs } => {
                b.put_u8(MSET);
                b.put_u32_le(pairs.len() as u32);
                for (k, v) in pairs {
                    put_bytes(&mut b, k);
                    put_bytes(&mut b, v);
                }
            }
            Command::Flush => b.put_u8(FLUSH),
            Command::Rename { from, to, nx } => {
                b.put_u8(RENAME);
                b.put_u8(u8::from(*nx));
                put_bytes(&mut b, from);
                put_bytes(&mut b, to);
            }
            Command::Multi(cmds) => {
                b.put_u8(MULTI);
                b.put_u32_le(cmds.len() as u32);
                for c in cmds {
                    put_bytes(&mut b, &c.encode());
                }
            }
        }
        b.freeze()
    }

    /// Decodes what [`Command::encode`] wrote.
    pub fn decode(data: &Bytes) -> Result<Command, DecodeError> {
        let mut r = Reader { data, pos: 0 };
        let cmd = match r.u8()? {
            SET => {
                let cond = match r.u8()? {
                    0 => SetCond::Always,
                    1 => SetCond::Nx,
                    2 => SetCond::Xx,
                    _ => return Err(DecodeError("unknown SET condition")),
                };
                Command::Set {
                    key: r.bytes()?,
                    value: r.bytes()?,
                    cond,
                }
            }
            DEL => {
                let n = r.count()?;
                let keys = (0..n).map(|_| r.bytes()).collect::<Result<_, _>>()?;
                Command::Del { keys }
            }
            APPEND => Command::Append {
                key: r.bytes()?,
                value: r.bytes()?,
                max_len: None,
            },
            APPEND_MAX => {
                let max = u64::from_le_bytes(r.array()?);
                Command::Append {
                    key: r.bytes()?,
                    value: r.bytes()?,
                    max_len: Some(max),
                }
            }
            INCRBY => {
                let delta = i64::from_le_bytes(r.array()?);
                Command::IncrBy {
                    key: r.bytes()?,
                    delta,
                }
            }
            MSET => {
                let n = r.count()?;
                let pairs = (0..n)
                    .map(|_| Ok((r.bytes()?, r.bytes()?)))
                    .collect::<Result<_, _>>()?;
                Command::MSet { pairs }
            }
            FLUSH => Command::Flush,
            RENAME => {
                let nx = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError("unknown RENAME flag")),
                };
                Command::Rename {
                    from: r.bytes()?,
                    to: r.bytes()?,
                    nx,
                }
            }
            MULTI => {
                let n = r.count()?;
                let cmds = (0..n)
                    .map(|_| match Command::decode(&r.bytes()?)? {
                        Command::Multi(_) => Err(DecodeError("nested MULTI")),
                        c => Ok(c),
                    })
                    .collect::<Result<_, _>>()?;
                Command::Multi(cmds)
            }
            _ => return Err(DecodeError("unknown command tag")),
        };
        if r.pos != data.len() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(cmd)
    }

    /// The command's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Set { .. } => "set",
            Command::Del { .. } => "del",
            Command::Append { .. } => "append",
            Command::IncrBy { .. } => "incrby",
            Command::MSet { .. } => "mset",
            Command::Flush => "flushall",
            Command::Rename { nx: false, .. } => "rename",
            Command::Rename { nx: true, .. } => "renamenx",
            Command::Multi(_) => "exec",
        }
    }
}

const O_OK: u8 = 1;
const O_NIL: u8 = 2;
const O_INT: u8 = 3;
const O_ERR: u8 = 4;
const O_MULTI: u8 = 5;

impl Outcome {
    /// Encoding for the forwarding stream.
    pub fn encode(&self, b: &mut BytesMut) {
        match self {
            Outcome::Ok => b.put_u8(O_OK),
            Outcome::Nil => b.put_u8(O_NIL),
            Outcome::Integer(i) => {
                b.put_u8(O_INT);
                b.put_i64_le(*i);
            }
            Outcome::Error(e) => {
                b.put_u8(O_ERR);
                put_bytes(b, e.as_bytes());
            }
            Outcome::Multi(outcomes) => {
                b.put_u8(O_MULTI);
                b.put_u32_le(outcomes.len() as u32);
                for o in outcomes {
                    let mut inner = BytesMut::new();
                    o.encode(&mut inner);
                    put_bytes(b, &inner);
                }
            }
        }
    }

    /// Decodes what [`Outcome::encode`] wrote, starting at `data[0]`.
    pub fn decode(data: &Bytes) -> Result<Outcome, DecodeError> {
        let mut r = Reader { data, pos: 0 };
        let o = match r.u8()? {
            O_OK => Outcome::Ok,
            O_NIL => Outcome::Nil,
            O_INT => Outcome::Integer(i64::from_le_bytes(r.array()?)),
            O_ERR => Outcome::Error(String::from_utf8_lossy(&r.bytes()?).into_owned()),
            O_MULTI => {
                let n = r.count()?;
                let outcomes = (0..n)
                    .map(|_| match Outcome::decode(&r.bytes()?)? {
                        Outcome::Multi(_) => Err(DecodeError("nested outcomes")),
                        o => Ok(o),
                    })
                    .collect::<Result<_, _>>()?;
                Outcome::Multi(outcomes)
            }
            _ => return Err(DecodeError("unknown outcome tag")),
        };
        if r.pos != data.len() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(o)
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_u32_le(v.len() as u32);
    b.put_slice(v);
}

struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(DecodeError("truncated"))?;
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let r = self.take(1)?;
        Ok(self.data[r.start])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let r = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(&self.data[r]);
        Ok(a)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        let r = self.take(n)?;
        Ok(self.data.slice(r))
    }

    /// An element count, bounded by the bytes left (each element takes at least 4), so a
    /// damaged count cannot make us allocate.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n > (self.data.len() - self.pos) / 4 {
            return Err(DecodeError("count larger than the data"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn commands_round_trip() {
        let cmds = [
            Command::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::Nx,
            },
            Command::Del {
                keys: vec![b("a"), b(""), b("c")],
            },
            Command::Append {
                key: b("k"),
                value: b("tail"),
                max_len: None,
            },
            Command::Append {
                key: b("k"),
                value: b("tail"),
                max_len: Some(4 << 20),
            },
            Command::IncrBy {
                key: b("n"),
                delta: -7,
            },
            Command::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
            },
            Command::Flush,
            Command::Rename {
                from: b("a"),
                to: b("b"),
                nx: true,
            },
            Command::Multi(vec![]),
            Command::Multi(vec![
                Command::IncrBy {
                    key: b("n"),
                    delta: 1,
                },
                Command::Flush,
                Command::Del { keys: vec![b("a")] },
            ]),
        ];
        for c in cmds {
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn outcomes_round_trip() {
        for o in [
            Outcome::Ok,
            Outcome::Nil,
            Outcome::Integer(-3),
            Outcome::Error("ERR x".into()),
            Outcome::Multi(vec![]),
            Outcome::Multi(vec![
                Outcome::Ok,
                Outcome::Nil,
                Outcome::Error("ERR y".into()),
            ]),
        ] {
            let mut buf = BytesMut::new();
            o.encode(&mut buf);
            assert_eq!(Outcome::decode(&buf.freeze()).unwrap(), o);
        }
    }

    /// A transaction never holds another: a nested one does not decode.
    #[test]
    fn nested_multi_is_refused() {
        let nested = Command::Multi(vec![Command::Multi(vec![])]).encode();
        assert_eq!(Command::decode(&nested), Err(DecodeError("nested MULTI")));
        let mut buf = BytesMut::new();
        Outcome::Multi(vec![Outcome::Multi(vec![])]).encode(&mut buf);
        assert_eq!(
            Outcome::decode(&buf.freeze()),
            Err(DecodeError("nested outcomes"))
        );
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error() {
        let full = Command::MSet {
            pairs: vec![(b("key"), b("value"))],
        }
        .encode();
        for n in 0..full.len() {
            assert!(Command::decode(&full.slice(..n)).is_err(), "prefix {n}");
        }
        let mut long = BytesMut::from(&full[..]);
        long.put_u8(0);
        assert!(Command::decode(&long.freeze()).is_err());
        // A huge count with no data behind it must not allocate.
        let mut evil = BytesMut::new();
        evil.put_u8(DEL);
        evil.put_u32_le(u32::MAX);
        assert!(Command::decode(&evil.freeze()).is_err());
        assert!(Command::decode(&Bytes::from_static(&[99])).is_err());
    }
}
