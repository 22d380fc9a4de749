//! RESP2 requests in, replies out (the client protocol of Redis).
//!
//! Request parsing follows Redis's `processMultibulkBuffer` /
//! `processInlineBuffer` (networking.c) so that clients see the same
//! behaviour and the same error texts as with a real Redis. Deliberate
//! differences are noted where they occur.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bounds on what a client may make us buffer, so one connection cannot
/// exhaust memory by declaring huge sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk string (Redis's `proto-max-bulk-len`).
    pub max_bulk_bytes: usize,
    /// Largest accepted multibulk element count.
    pub max_args: usize,
    /// Longest inline request or `*`/`$` count line without a line end
    /// (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_bytes: usize,
    /// Most bytes of arguments one multibulk request may hold. The arguments of a larger
    /// one are read and dropped, and it comes out as [`Request::TooLarge`]: memory stays
    /// bounded and the connection can go on.
    pub max_request_bytes: usize,
    /// The limits are those of a client that has not logged in: a count or a bulk length
    /// over them gets Redis 7.2's "unauthenticated" errors.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 512 * 1024 * 1024,
            max_args: 1 << 20,
            max_inline_bytes: 64 * 1024,
            max_request_bytes: usize::MAX,
            unauthenticated: false,
        }
    }
}

/// Why a byte stream is not valid RESP. Request-side errors are fatal for
/// the connection: the caller writes `-ERR <Display text>\r\n` and closes.
/// Display texts match Redis's exactly where Redis has an equivalent.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A bulk length that is not a number, negative or above the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element count that is not a number or above the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An element count above the limit for a client that has not logged in.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A bulk length above the limit for a client that has not logged in.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// The byte found where a bulk header (`$`) was due.
    #[error("Protocol error: expected '$', got '{}'", display_byte(*.0))]
    ExpectedDollar(u8),
    /// An inline request (or garbage) longer than the limit without a line end.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline request with an unclosed quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` line longer than the limit.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    /// A `$` line longer than the limit.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// Bulk data not followed by `\r\n`. Redis skips those two bytes
    /// unchecked; we reject them so a framing bug cannot go unnoticed.
    #[error("Protocol error: bulk data not terminated by CRLF")]
    BulkTerminator,
    /// Reply side only: a reply starting with none of `+ - : $ *`.
    #[error("Protocol error: unexpected reply type '{}'", display_byte(*.0))]
    UnexpectedReplyType(u8),
    /// Reply side only: a malformed line (bad integer, `\r` without `\n`).
    #[error("Protocol error: invalid reply line")]
    InvalidReplyLine,
}

/// Renders an offending byte the way Redis's `%c` would, except that line
/// breaks become spaces (as Redis does to all error texts) so the text is
/// always safe to put on the wire.
fn display_byte(b: u8) -> char {
    match b {
        b'\r' | b'\n' => ' ',
        _ => char::from(b),
    }
}

/// One request read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Its arguments, the command name first.
    Args(Vec<Bytes>),
    /// Its arguments came to more than [`Limits::max_request_bytes`]; they were dropped.
    TooLarge {
        /// The arguments' total size.
        bytes: usize,
    },
}

impl Request {
    /// Bytes of memory its arguments hold.
    pub fn held_bytes(&self) -> usize {
        match self {
            Request::Args(a) => a.iter().map(|b| b.len() + size_of::<Bytes>()).sum(),
            Request::TooLarge { .. } => 0,
        }
    }
}

/// Lower bound for the capacity we ask for while a bulk is arriving.
const MIN_BULK_RESERVE: usize = 64 * 1024;
/// Cap for pre-sizing the argument vector from a declared count.
const MAX_ARGS_PREALLOC: usize = 1024;

/// Incremental request parser for one connection.
///
/// It remembers how far it got, so feeding a 512 MiB bulk in 64 KiB pieces
/// costs O(total bytes), not O(n^2). Completed arguments and headers are
/// consumed from the buffer as soon as they are parsed; a bulk's payload
/// stays in the buffer until all of it (and its `\r\n`) has arrived and is
/// then split off without copying. Between calls the caller may only append
/// to the buffer. After an error the parser state is meaningless: close the
/// connection.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    /// Arguments of the multibulk request in progress.
    args: Vec<Bytes>,
    /// Elements of the current multibulk still to read; 0 = between requests.
    remaining: usize,
    /// Declared length of the bulk whose header has been consumed.
    bulk_len: Option<usize>,
    /// Bytes of the request's arguments so far; past the limit they are no longer kept.
    request_bytes: usize,
    /// Prefix of `buf` already searched for a line end without success.
    scanned: usize,
}

impl RequestParser {
    /// A parser for one connection.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            args: Vec::new(),
            remaining: 0,
            bulk_len: None,
            request_bytes: 0,
            scanned: 0,
        }
    }

    /// Limits for the headers read from now on (a client that logged in may send more).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// True while a multibulk request is partly consumed, i.e. an EOF now
    /// would cut a request in half even if `buf` is empty.
    pub fn in_progress(&self) -> bool {
        self.remaining > 0
    }

    /// Parses one complete request from the front of `buf`, consuming its
    /// bytes. `Ok(None)`: need more bytes; call again after appending.
    /// Empty inline lines, `*0` and `*-1` are skipped like Redis does.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    match self.parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(Request::Args(args))),
                    }
                }
                let Some(cr) = self.find_byte(buf, b'\r') else {
                    if buf.len() > self.limits.max_inline_bytes {
                        return Err(ProtocolError::TooBigMbulkCount);
                    }
                    return Ok(None);
                };
                let Some(&lf) = buf.get(cr + 1) else {
                    return Ok(None);
                };
                let count = parse_strict_int(&buf[1..cr])
                    .filter(|_| lf == b'\n')
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                if count > 0 && !fits(count, self.limits.max_args) {
                    return Err(match self.limits.unauthenticated {
                        true => ProtocolError::UnauthenticatedMultibulkLength,
                        false => ProtocolError::InvalidMultibulkLength,
                    });
                }
                self.consume(buf, cr + 2);
                if count <= 0 {
                    continue;
                }
                // `fits` above ensured count <= max_args, a usize.
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                self.remaining = count;
                self.request_bytes = 0;
                self.args = Vec::with_capacity(count.min(MAX_ARGS_PREALLOC));
            }

            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => match self.parse_bulk_header(buf)? {
                        Some(len) => len,
                        None => return Ok(None),
                    },
                };
                let needed = len.saturating_add(2);
                if buf.len() < needed {
                    // Size the buffer by what has actually arrived, never by
                    // the declared length alone: a client declaring 512 MiB
                    // and sending nothing costs us 64 KiB. Double while far
                    // from the end; once a quarter has arrived, jump to the
                    // exact end (this beats BytesMut's own doubling, so the
                    // final bytes cannot push capacity to twice the bulk).
                    let missing = needed - buf.len();
                    if buf.capacity() - buf.len() < missing.min(MIN_BULK_RESERVE) {
                        let step = buf.len().max(MIN_BULK_RESERVE);
                        buf.reserve(if missing <= step.saturating_mul(3) {
                            missing
                        } else {
                            step
                        });
                    }
                    return Ok(None);
                }
                if &buf[len..needed] != b"\r\n" {
                    return Err(ProtocolError::BulkTerminator);
                }
                let data = buf.split_to(len).freeze();
                self.consume(buf, 2);
                self.request_bytes = self.request_bytes.saturating_add(len);
                if self.request_bytes <= self.limits.max_request_bytes {
                    self.args.push(data);
                } else {
                    self.args = Vec::new();
                }
                self.bulk_len = None;
                self.remaining -= 1;
            }
            if self.request_bytes > self.limits.max_request_bytes {
                return Ok(Some(Request::TooLarge {
                    bytes: self.request_bytes,
                }));
            }
            return Ok(Some(Request::Args(std::mem::take(&mut self.args))));
        }
    }

    /// Reads a `$<len>\r\n` header; records and returns the length.
    fn parse_bulk_header(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        // Redis checks this only once the whole line is there; failing on
        // the first byte gives the same error sooner.
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(first));
        }
        let Some(cr) = self.find_byte(buf, b'\r') else {
            if buf.len() > self.limits.max_inline_bytes {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        let Some(&lf) = buf.get(cr + 1) else {
            return Ok(None);
        };
        let len = parse_strict_int(&buf[1..cr])
            .filter(|&n| lf == b'\n' && n >= 0)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|_| fits(len, self.limits.max_bulk_bytes))
            .ok_or(match self.limits.unauthenticated {
                true => ProtocolError::UnauthenticatedBulkLength,
                false => ProtocolError::InvalidBulkLength,
            })?;
        self.consume(buf, cr + 2);
        self.bulk_len = Some(len);
        Ok(Some(len))
    }

    /// One inline request; `Some(vec![])` for a blank line.
    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = self.find_byte(buf, b'\n') else {
            if buf.len() > self.limits.max_inline_bytes {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            return Ok(None);
        };
        let end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let args = split_args(&buf[..end])?;
        self.consume(buf, nl + 1);
        Ok(Some(args))
    }

    /// Position of the first `needle` in `buf`, resuming where the previous
    /// unsuccessful search stopped so slow trickles stay linear.
    fn find_byte(&mut self, buf: &BytesMut, needle: u8) -> Option<usize> {
        let start = self.scanned.min(buf.len());
        match buf[start..].iter().position(|&b| b == needle) {
            Some(i) => {
                self.scanned = start + i;
                Some(start + i)
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }

    fn consume(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.scanned = 0;
    }
}

/// Whether a non-negative parsed count is within `limit`.
fn fits(n: i64, limit: usize) -> bool {
    // usize is at most 64 bits on every Rust target, so `as u64` is lossless.
    u64::try_from(n).is_ok_and(|n| n <= limit as u64)
}

/// Integer parsing as strict as Redis's `string2ll`: optional `-`, no `+`,
/// no leading zeros, no spaces, no `-0`, at most 20 bytes, no overflow.
fn parse_strict_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// C `isspace` in the "C" locale, as used by `sdssplitargs`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: Option<u8>) -> Option<u8> {
    match b? {
        d @ b'0'..=b'9' => Some(d - b'0'),
        h @ b'a'..=b'f' => Some(h - b'a' + 10),
        h @ b'A'..=b'F' => Some(h - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request line like Redis's `sdssplitargs`: blanks
/// separate arguments; `"..."` supports `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a`
/// and `\<any>`; `'...'` supports only `\'`; a closing quote must be followed
/// by a blank or the end. Unlike C, an embedded NUL byte is ordinary data.
fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let Some(c) = at(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                let hex = if c == b'\\' && at(i + 1) == Some(b'x') {
                    hex_value(at(i + 2)).zip(hex_value(at(i + 3)))
                } else {
                    None
                };
                if let Some((hi, lo)) = hex {
                    current.push(hi * 16 + lo);
                    i += 4;
                    continue;
                }
                match (c, at(i + 1)) {
                    (b'\\', Some(e)) => {
                        current.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    }
                    (b'"', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    _ => {
                        current.push(c);
                        i += 1;
                    }
                }
            } else if in_single {
                let Some(c) = at(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                match (c, at(i + 1)) {
                    (b'\\', Some(b'\'')) => {
                        current.push(b'\'');
                        i += 2;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    _ => {
                        current.push(c);
                        i += 1;
                    }
                }
            } else {
                match at(i) {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        i += 1;
                        break;
                    }
                    Some(b'"') => {
                        in_double = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        in_single = true;
                        i += 1;
                    }
                    Some(c) => {
                        current.push(c);
                        i += 1;
                    }
                }
            }
        }
        args.push(Bytes::from(current));
    }
}

/// The reply protocol a connection speaks, chosen with `HELLO 2|3`. The types of RESP2
/// are RESP3's too; what differs is the null (`_`) and maps (`%`), which RESP2 sends as
/// `$-1`/`*-1` and as flat arrays of pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every connection's protocol until `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

/// A reply, encoded for either protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// Full text including the prefix word, e.g. `ERR unknown command 'foo'`
    /// or `TRYAGAIN ...`; encoded as `-` + text.
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` followed by the bytes.
    Bulk(Bytes),
    /// `$-1`, the missing value.
    Nil,
    /// `*n` followed by the elements.
    Array(Vec<Reply>),
    /// `*-1`, e.g. an aborted `EXEC`.
    NilArray,
    /// Key-value pairs: `%n` in RESP3, a flat array of `2n` elements in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// About the bytes it takes, encoded or in memory (whichever is more, roughly).
    pub fn approx_len(&self) -> usize {
        const HEADER: usize = 16;
        match self {
            Reply::Simple(t) | Reply::Error(t) => HEADER + t.len(),
            Reply::Bulk(b) => HEADER + b.len(),
            Reply::Array(items) => {
                HEADER + items.iter().map(|r| r.approx_len() + HEADER).sum::<usize>()
            }
            Reply::Map(pairs) => {
                HEADER
                    + pairs
                        .iter()
                        .map(|(k, v)| k.approx_len() + v.approx_len() + 2 * HEADER)
                        .sum::<usize>()
            }
            Reply::Integer(_) | Reply::Nil | Reply::NilArray => HEADER + 8,
        }
    }

    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".to_owned())
    }

    /// A generic error; prefixes `ERR ` like Redis's `addReplyError`.
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(format!("ERR {}", text.into()))
    }

    /// Appends the wire form in RESP2 (see [`Reply::encode_as`]).
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(Protocol::Resp2, out);
    }

    /// Appends the wire form in `proto`. Line breaks inside simple strings and errors
    /// become spaces (as Redis does) so the reply cannot break framing.
    pub fn encode_as(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Simple(text) => put_line(out, b'+', text),
            Reply::Error(text) => put_line(out, b'-', text),
            Reply::Integer(n) => {
                out.put_u8(b':');
                put_decimal(out, *n);
                out.put_slice(b"\r\n");
            }
            Reply::Bulk(data) => put_bulk(out, data),
            Reply::Nil | Reply::NilArray if proto == Protocol::Resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                put_header(out, b'*', items.len());
                for item in items {
                    item.encode_as(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp2 => put_header(out, b'*', 2 * pairs.len()),
                    Protocol::Resp3 => put_header(out, b'%', pairs.len()),
                }
                for (k, v) in pairs {
                    k.encode_as(proto, out);
                    v.encode_as(proto, out);
                }
            }
        }
    }
}

fn put_line(out: &mut BytesMut, kind: u8, text: &str) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    // usize -> i64 only fails above i64::MAX, which no buffer can reach.
    put_decimal(out, i64::try_from(len).unwrap_or(i64::MAX));
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    put_header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut pos = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[pos..]);
}

/// Encodes a request as a multibulk array of bulk strings, the form real
/// clients send (for our own clients and tests).
pub fn encode_request(args: &[&[u8]], out: &mut BytesMut) {
    put_header(out, b'*', args.len());
    for arg in args {
        put_bulk(out, arg);
    }
}

/// Parses one complete reply from the front of `buf` (for tools and tests).
/// `Ok(None)`: incomplete, nothing consumed. Not incremental: each call
/// re-reads the headers received so far (bulk payloads are skipped by
/// length, not scanned).
pub fn parse_reply(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    // Explicit stack instead of recursion: deep nesting cannot overflow.
    // Each open aggregate: the elements so far, how many are still to come, and whether it
    // is a map (its elements then pair up).
    let mut open: Vec<(Vec<Reply>, usize, bool)> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let start = pos + 1;
        let Some(cr) = buf[start..].iter().position(|&b| b == b'\r') else {
            return Ok(None);
        };
        let cr = start + cr;
        match buf.get(cr + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(ProtocolError::InvalidReplyLine),
        }
        let line = &buf[start..cr];
        pos = cr + 2;
        let mut value = match kind {
            b'+' => Reply::Simple(String::from_utf8_lossy(line).into_owned()),
            b'-' => Reply::Error(String::from_utf8_lossy(line).into_owned()),
            b':' => Reply::Integer(
                std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(ProtocolError::InvalidReplyLine)?,
            ),
            b'$' => match parse_strict_int(line) {
                Some(-1) => Reply::Nil,
                Some(n) if n >= 0 => {
                    let len = usize::try_from(n).map_err(|_| ProtocolError::InvalidBulkLength)?;
                    let end = pos.saturating_add(len);
                    if buf.len() < end.saturating_add(2) {
                        return Ok(None);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(ProtocolError::BulkTerminator);
                    }
                    let data = Bytes::copy_from_slice(&buf[pos..end]);
                    pos = end + 2;
                    Reply::Bulk(data)
                }
                _ => return Err(ProtocolError::InvalidBulkLength),
            },
            b'*' => match parse_strict_int(line) {
                Some(-1) => Reply::NilArray,
                Some(0) => Reply::Array(Vec::new()),
                Some(n) if n > 0 => {
                    let n =
                        usize::try_from(n).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                    open.push((Vec::with_capacity(n.min(MAX_ARGS_PREALLOC)), n, false));
                    continue;
                }
                _ => return Err(ProtocolError::InvalidMultibulkLength),
            },
            b'_' if line.is_empty() => Reply::Nil,
            b'%' => match parse_strict_int(line) {
                Some(0) => Reply::Map(Vec::new()),
                Some(n) if n > 0 => {
                    let n = usize::try_from(n)
                        .ok()
                        .and_then(|n| n.checked_mul(2))
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    open.push((Vec::with_capacity(n.min(MAX_ARGS_PREALLOC)), n, true));
                    continue;
                }
                _ => return Err(ProtocolError::InvalidMultibulkLength),
            },
            other => return Err(ProtocolError::UnexpectedReplyType(other)),
        };
        // Attach the finished value to its enclosing arrays, closing every
        // array that it completes.
        loop {
            let Some((mut items, remaining, map)) = open.pop() else {
                buf.advance(pos);
                return Ok(Some(value));
            };
            items.push(value);
            if remaining > 1 {
                open.push((items, remaining - 1, map));
                break;
            }
            value = if map {
                let mut it = items.into_iter();
                Reply::Map(std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect())
            } else {
                Reply::Array(items)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arguments of a parsed request (tests here never exceed the request limit).
    fn args(r: Option<Request>) -> Option<Vec<Bytes>> {
        r.map(|r| match r {
            Request::Args(a) => a,
            other => panic!("unexpected {other:?}"),
        })
    }

    fn req(parts: &[&str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect()
    }

    /// Parses everything `input` holds when delivered in one piece.
    fn parse_all(limits: Limits, input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        parse_chunked(limits, input, &mut |_| input.len())
    }

    /// Feeds `input` in chunks whose sizes come from `next_chunk`, draining
    /// all complete requests after each chunk.
    fn parse_chunked(
        limits: Limits,
        input: &[u8],
        next_chunk: &mut dyn FnMut(usize) -> usize,
    ) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        while fed < input.len() {
            let n = next_chunk(input.len() - fed).clamp(1, input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
            while let Some(r) = parser.parse(&mut buf).map(args)? {
                out.push(r);
            }
        }
        assert!(buf.is_empty(), "leftover bytes: {buf:?}");
        assert!(!parser.in_progress());
        Ok(out)
    }

    fn one(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        RequestParser::new(Limits::default())
            .parse(&mut BytesMut::from(input))
            .map(args)
    }

    const MIXED: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
        \r\n\n*0\r\n*-1\r\n\
        SET \"a b\" 'c\\'d' \"\\x41\\n\"\r\n\
        *3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\nv\r\nx\r\n\
        PING\n   \r\n\
        *1\r\n$4\r\nPING\r\n";

    fn mixed_expected() -> Vec<Vec<Bytes>> {
        vec![
            req(&["GET", "k"]),
            req(&["SET", "a b", "c'd", "A\n"]),
            req(&["SET", "", "v\r\nx"]),
            req(&["PING"]),
            req(&["PING"]),
        ]
    }

    #[test]
    fn pipelined_requests_in_one_buffer() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(MIXED);
        for expected in mixed_expected() {
            assert_eq!(parser.parse(&mut buf).map(args), Ok(Some(expected)));
        }
        assert_eq!(parser.parse(&mut buf).map(args), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn one_byte_at_a_time_gives_same_result() {
        let got = parse_chunked(Limits::default(), MIXED, &mut |_| 1);
        assert_eq!(got, Ok(mixed_expected()));
    }

    #[test]
    fn every_split_point_gives_same_result() {
        for split in 1..MIXED.len() {
            let mut first = true;
            let got = parse_chunked(Limits::default(), MIXED, &mut |_| {
                if std::mem::take(&mut first) {
                    split
                } else {
                    usize::MAX
                }
            });
            assert_eq!(got, Ok(mixed_expected()), "split at {split}");
        }
    }

    #[test]
    fn pseudo_random_splits_give_same_result() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let key = format!("key{i}");
            let value = "v".repeat((i as usize * 37) % 300);
            let args: [&[u8]; 3] = [b"SET", key.as_bytes(), value.as_bytes()];
            let mut out = BytesMut::new();
            encode_request(&args, &mut out);
            input.extend_from_slice(&out);
            expected.push(req(&["SET", &key, &value]));
            if i % 7 == 0 {
                input.extend_from_slice(format!("GET {key}\r\n").as_bytes());
                expected.push(req(&["GET", &key]));
            }
        }
        for seed in 1..=20u64 {
            let mut state = seed;
            let got = parse_chunked(Limits::default(), &input, &mut |_| {
                // xorshift64: deterministic, no dependency needed.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 97) as usize + 1
            });
            assert_eq!(got.as_ref(), Ok(&expected), "seed {seed}");
        }
    }

    #[test]
    fn inline_quoting_rules() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"GET k\r\n", &["GET", "k"]),
            (b"  GET \t k  \r\n", &["GET", "k"]),
            (b"SET \"\" x\r\n", &["SET", "", "x"]),
            (b"ECHO \"a\\tb\\\"c\\\\\\q\"\r\n", &["ECHO", "a\tb\"c\\q"]),
            (b"ECHO \"\\x4a\\x4B\\xZZ\"\r\n", &["ECHO", "JKxZZ"]),
            (b"ECHO 'it\\'s \\n raw'\r\n", &["ECHO", "it's \\n raw"]),
            (b"ECHO foo\"bar baz\"\r\n", &["ECHO", "foobar baz"]),
            (b"ECHO \"a\"\tb\n", &["ECHO", "a", "b"]),
            (b"ECHO a\rb\r\n", &["ECHO", "a", "b"]),
            (b"ECHO \x00\x01\n", &["ECHO", "\x00\x01"]),
        ];
        for (input, expected) in cases {
            assert_eq!(one(input), Ok(Some(req(expected))), "{input:?}");
        }
        let mut hex = BytesMut::from(&b"ECHO \"\\xff\\x00\"\r\n"[..]);
        let got = RequestParser::new(Limits::default())
            .parse(&mut hex)
            .map(args);
        assert_eq!(
            got,
            Ok(Some(vec![
                Bytes::from_static(b"ECHO"),
                Bytes::from_static(b"\xff\x00")
            ]))
        );
    }

    #[test]
    fn inline_unbalanced_quotes() {
        for input in [
            &b"GET \"abc\r\n"[..],
            b"GET 'abc\r\n",
            b"GET \"abc\"def\r\n",
            b"GET 'abc'def\r\n",
            b"GET \"abc\\\"\r\n",
        ] {
            assert_eq!(
                one(input),
                Err(ProtocolError::UnbalancedQuotes),
                "{input:?}"
            );
        }
    }

    #[test]
    fn empty_lines_and_empty_multibulks_are_skipped() {
        let got = parse_all(
            Limits::default(),
            b"\r\n\n  \r\n*0\r\n*-1\r\n*-7\r\nPING\r\n\r\n",
        );
        assert_eq!(got, Ok(vec![req(&["PING"])]));
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"\r\n*0\r\n"[..]);
        assert_eq!(parser.parse(&mut buf).map(args), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_without_newline_is_too_big_inline_request() {
        let limits = Limits::default();
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        while buf.len() <= limits.max_inline_bytes {
            buf.extend_from_slice(b"\x00\x01garbage");
            result = parser.parse(&mut buf).map(args);
            if buf.len() <= limits.max_inline_bytes {
                assert_eq!(result, Ok(None));
            }
        }
        assert_eq!(result, Err(ProtocolError::TooBigInlineRequest));
        // Short garbage with a newline is just an (unknown) inline command.
        assert_eq!(
            one(b"\x00\x01garbage\r\n"),
            Ok(Some(req(&["\x00\x01garbage"])))
        );
    }

    #[test]
    fn too_big_count_strings() {
        let limits = Limits::default();
        let mut long = b"*".to_vec();
        long.resize(limits.max_inline_bytes + 2, b'1');
        assert_eq!(one(&long), Err(ProtocolError::TooBigMbulkCount));
        let mut long = b"*1\r\n$".to_vec();
        long.resize(limits.max_inline_bytes + 10, b'1');
        assert_eq!(one(&long), Err(ProtocolError::TooBigBulkCount));
        // Long but terminated count lines are just invalid lengths.
        let mut long = b"*".to_vec();
        long.resize(100, b'1');
        long.extend_from_slice(b"\r\n");
        assert_eq!(one(&long), Err(ProtocolError::InvalidMultibulkLength));
    }

    #[test]
    fn limits_before_login_have_redis_texts() {
        let limits = Limits {
            max_bulk_bytes: 16,
            max_args: 2,
            unauthenticated: true,
            ..Limits::default()
        };
        let one = |input: &[u8]| RequestParser::new(limits).parse(&mut BytesMut::from(input));
        assert_eq!(
            one(b"*3\r\n"),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            one(b"*1\r\n$17\r\n"),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
        // A malformed length is malformed for everyone.
        assert_eq!(one(b"*1\r\n$-3\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(
            ProtocolError::UnauthenticatedBulkLength.to_string(),
            "Protocol error: unauthenticated bulk length"
        );
    }

    #[test]
    fn a_request_over_the_byte_limit_is_read_whole_and_dropped() {
        let limits = Limits {
            max_request_bytes: 10,
            ..Limits::default()
        };
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$4\r\nkey1\r\n$8\r\n12345678\r\n"[..]);
        buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$4\r\nkey1\r\n");
        assert_eq!(
            parser.parse(&mut buf),
            Ok(Some(Request::TooLarge { bytes: 15 }))
        );
        assert_eq!(parser.args.capacity(), 0, "nothing of it is held");
        // The next request on the connection is read as usual.
        assert_eq!(
            parser.parse(&mut buf).map(args),
            Ok(Some(req(&["GET", "key1"])))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn huge_declared_bulk_fails_without_waiting_for_data() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$1073741824\r\n"[..]);
        assert_eq!(
            parser.parse(&mut buf).map(args),
            Err(ProtocolError::InvalidBulkLength)
        );
        // Exactly at the limit is accepted (and nothing is preallocated).
        let limits = Limits::default();
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::from(format!("*1\r\n${}\r\nab", limits.max_bulk_bytes).as_bytes());
        assert_eq!(parser.parse(&mut buf).map(args), Ok(None));
        assert!(parser.in_progress());
        assert!(buf.capacity() <= 1024 * 1024, "capacity {}", buf.capacity());
    }

    #[test]
    fn invalid_lengths() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$-5\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$+3\r\nGET\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$03\r\nGET\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$3x\r\nGET\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$3\rxGET\r\n", ProtocolError::InvalidBulkLength),
            (b"*abc\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*-0\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\rx", ProtocolError::InvalidMultibulkLength),
            (
                b"*99999999999999999999\r\n",
                ProtocolError::InvalidMultibulkLength,
            ),
            (b"*1048577\r\n", ProtocolError::InvalidMultibulkLength),
        ];
        for (input, err) in cases {
            assert_eq!(
                one(input).as_ref(),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(one(b"*1048576\r\n"), Ok(None));
    }

    #[test]
    fn bad_framing_inside_multibulk() {
        assert_eq!(
            one(b"*1\r\n$3\r\nGETxx"),
            Err(ProtocolError::BulkTerminator)
        );
        assert_eq!(
            one(b"*2\r\n$3\r\nGET\r\nk\r\n"),
            Err(ProtocolError::ExpectedDollar(b'k'))
        );
        // Fails on the first wrong byte, before any line end arrives.
        assert_eq!(one(b"*1\r\n:"), Err(ProtocolError::ExpectedDollar(b':')));
        assert_eq!(
            one(b"*1\r\n\r\n"),
            Err(ProtocolError::ExpectedDollar(b'\r'))
        );
    }

    #[test]
    fn error_texts_match_redis() {
        let cases = [
            (
                ProtocolError::InvalidBulkLength,
                "Protocol error: invalid bulk length",
            ),
            (
                ProtocolError::InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (
                ProtocolError::ExpectedDollar(b'x'),
                "Protocol error: expected '$', got 'x'",
            ),
            (
                ProtocolError::ExpectedDollar(b'\r'),
                "Protocol error: expected '$', got ' '",
            ),
            (
                ProtocolError::TooBigInlineRequest,
                "Protocol error: too big inline request",
            ),
            (
                ProtocolError::UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (
                ProtocolError::TooBigMbulkCount,
                "Protocol error: too big mbulk count string",
            ),
            (
                ProtocolError::TooBigBulkCount,
                "Protocol error: too big bulk count string",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn large_bulk_arrives_in_pieces() {
        const LEN: usize = 16 * 1024 * 1024;
        const PIECE: usize = 64 * 1024;
        let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let mut input = BytesMut::new();
        encode_request(&[b"SET", b"big", &payload], &mut input);
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut result = None;
        for (i, piece) in input.chunks(PIECE).enumerate() {
            assert!(result.is_none(), "complete before piece {i}");
            buf.extend_from_slice(piece);
            result = parser.parse(&mut buf).map(args).expect("valid input");
            // Growth follows what arrived, never the declared size.
            assert!(buf.capacity() <= 4 * (i + 1) * PIECE + 1024 * 1024);
        }
        let args = result.expect("complete after last piece");
        assert_eq!(args.len(), 3);
        assert_eq!(&args[1][..], b"big");
        assert!(args[2][..] == payload[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn encode_request_round_trips() {
        let parts: [&[u8]; 4] = [b"SET", b"k", b"", b"\r\n\x00\xff"];
        let mut buf = BytesMut::new();
        encode_request(&parts, &mut buf);
        assert_eq!(
            &buf[..],
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$4\r\n\r\n\x00\xff\r\n"
        );
        let got = RequestParser::new(Limits::default())
            .parse(&mut buf)
            .map(args);
        let expected: Vec<Bytes> = parts.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        assert_eq!(got, Ok(Some(expected)));
    }

    fn encoded(reply: &Reply) -> Vec<u8> {
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn reply_encoding() {
        let cases: &[(Reply, &[u8])] = &[
            (Reply::ok(), b"+OK\r\n"),
            (
                Reply::err("unknown command 'foo'"),
                b"-ERR unknown command 'foo'\r\n",
            ),
            (
                Reply::Error("TRYAGAIN x\r\ny".into()),
                b"-TRYAGAIN x  y\r\n",
            ),
            (Reply::Simple("a\nb".into()), b"+a b\r\n"),
            (Reply::Integer(0), b":0\r\n"),
            (Reply::Integer(-42), b":-42\r\n"),
            (Reply::Integer(i64::MIN), b":-9223372036854775808\r\n"),
            (Reply::Integer(i64::MAX), b":9223372036854775807\r\n"),
            (
                Reply::Bulk(Bytes::from_static(b"a\r\nb")),
                b"$4\r\na\r\nb\r\n",
            ),
            (Reply::Bulk(Bytes::new()), b"$0\r\n\r\n"),
            (Reply::Nil, b"$-1\r\n"),
            (Reply::NilArray, b"*-1\r\n"),
            (Reply::Array(vec![]), b"*0\r\n"),
            (
                Reply::Array(vec![Reply::Integer(1), Reply::Array(vec![Reply::Nil])]),
                b"*2\r\n:1\r\n*1\r\n$-1\r\n",
            ),
        ];
        for (reply, wire) in cases {
            assert_eq!(encoded(reply), *wire, "{reply:?}");
        }
    }

    #[test]
    fn reply_round_trips_and_waits_when_incomplete() {
        let replies = vec![
            Reply::ok(),
            Reply::err("wrong number of arguments for 'get' command"),
            Reply::Integer(-7),
            Reply::Bulk(Bytes::from_static(b"hello\r\nworld")),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
            Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Array(vec![Reply::Array(vec![Reply::Integer(3)]), Reply::Nil]),
                Reply::NilArray,
                Reply::Simple("x".into()),
            ]),
        ];
        let mut all = BytesMut::new();
        for reply in &replies {
            reply.encode(&mut all);
        }
        // Pipelined in one buffer.
        let mut buf = all.clone();
        for reply in &replies {
            assert_eq!(parse_reply(&mut buf).as_ref(), Ok(&Some(reply.clone())));
        }
        assert_eq!(parse_reply(&mut buf), Ok(None));
        // Every strict prefix of one reply is incomplete and left untouched.
        for reply in &replies {
            let wire = encoded(reply);
            for cut in 0..wire.len() {
                let mut partial = BytesMut::from(&wire[..cut]);
                assert_eq!(parse_reply(&mut partial), Ok(None), "{reply:?} cut {cut}");
                assert_eq!(partial.len(), cut);
            }
        }
    }

    /// RESP3 differs from RESP2 only in the null and in maps, and parses back alike.
    #[test]
    fn resp3_null_and_maps() {
        let map = Reply::Map(vec![
            (Reply::Bulk("proto".into()), Reply::Integer(3)),
            (Reply::Bulk("gone".into()), Reply::Nil),
        ]);
        let cases: &[(&Reply, &[u8], &[u8])] = &[
            (&Reply::Nil, b"$-1\r\n", b"_\r\n"),
            (&Reply::NilArray, b"*-1\r\n", b"_\r\n"),
            (
                &map,
                b"*4\r\n$5\r\nproto\r\n:3\r\n$4\r\ngone\r\n$-1\r\n",
                b"%2\r\n$5\r\nproto\r\n:3\r\n$4\r\ngone\r\n_\r\n",
            ),
            (&Reply::Map(vec![]), b"*0\r\n", b"%0\r\n"),
            (&Reply::Integer(1), b":1\r\n", b":1\r\n"),
        ];
        for (reply, resp2, resp3) in cases {
            let mut two = BytesMut::new();
            reply.encode_as(Protocol::Resp2, &mut two);
            assert_eq!(&two[..], *resp2, "{reply:?}");
            let mut three = BytesMut::new();
            reply.encode_as(Protocol::Resp3, &mut three);
            assert_eq!(&three[..], *resp3, "{reply:?}");
        }
        let mut buf = BytesMut::from(&b"%2\r\n$5\r\nproto\r\n:3\r\n$4\r\ngone\r\n_\r\n_\r\n"[..]);
        assert_eq!(parse_reply(&mut buf), Ok(Some(map)));
        assert_eq!(parse_reply(&mut buf), Ok(Some(Reply::Nil)));
        assert!(buf.is_empty());
    }

    #[test]
    fn reply_parse_errors() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"?x\r\n", ProtocolError::UnexpectedReplyType(b'?')),
            (b":12a\r\n", ProtocolError::InvalidReplyLine),
            (b"+OK\rx", ProtocolError::InvalidReplyLine),
            (b"$-2\r\n", ProtocolError::InvalidBulkLength),
            (b"$2\r\nabc\r\n", ProtocolError::BulkTerminator),
            (b"*-2\r\n", ProtocolError::InvalidMultibulkLength),
        ];
        for (input, err) in cases {
            let mut buf = BytesMut::from(*input);
            assert_eq!(parse_reply(&mut buf).as_ref(), Err(err), "{input:?}");
        }
    }

    #[test]
    fn deeply_nested_reply_does_not_overflow_the_stack() {
        let depth = 100_000;
        let mut buf = BytesMut::new();
        for _ in 0..depth {
            buf.extend_from_slice(b"*1\r\n");
        }
        buf.extend_from_slice(b":1\r\n");
        let mut reply = parse_reply(&mut buf).expect("valid").expect("complete");
        let mut seen = 0;
        while let Reply::Array(mut items) = reply {
            assert_eq!(items.len(), 1);
            reply = items.pop().expect("checked len");
            seen += 1;
        }
        assert_eq!((seen, reply), (depth, Reply::Integer(1)));
    }
}
