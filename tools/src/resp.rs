//! A small RESP2 client: encode a command, parse a reply, and a tokio connection that does
//! one request at a time.
//!
//! Why our own: the tools speak a handful of commands to `raft-node` and need to tell
//! exactly when a request was sent and what came back (the chaos run classifies every
//! outcome), which a full Redis client library hides behind retries and pools.
//!
//! The parser is sans-IO: [`parse_reply`] takes the bytes received so far and says whether
//! they hold a whole reply yet, so it is tested without sockets and reused by any transport.
//!
//! A [`Connection`] is plain TCP or TLS (rustls, verifying the server against a given CA,
//! optionally presenting a client certificate), and may log in with `AUTH` before its
//! first command: see [`ConnectOptions`] and [`Connection::connect_with`].
//!
//! ```
//! use tools::resp::{encode_command, parse_reply, Reply};
//!
//! assert_eq!(encode_command(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
//! assert_eq!(parse_reply(b"$3\r\nab"), Ok(None)); // not all there yet
//! assert_eq!(parse_reply(b":42\r\n"), Ok(Some((Reply::Integer(42), 5))));
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The longest bulk string accepted (Redis's own limit): a corrupt length must not make us
/// allocate gigabytes.
const MAX_BULK: usize = 512 * 1024 * 1024;
/// The deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 32;

/// One RESP2 reply.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...` / `-TRYAGAIN ...`: the text after the `-`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`.
    Bulk(Vec<u8>),
    /// `$-1` (and the null array `*-1`).
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Reply>),
}

impl fmt::Debug for Reply {
    /// Bulk strings as text where they are text, so logs and test failures read well.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s}"),
            Reply::Error(s) => write!(f, "-{s}"),
            Reply::Integer(i) => write!(f, ":{i}"),
            Reply::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Nil => write!(f, "nil"),
            Reply::Array(items) => f.debug_list().entries(items).finish(),
        }
    }
}

/// The bytes are not RESP2.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("RESP protocol error: {0}")]
pub struct ProtocolError(pub String);

/// A command as a RESP2 array of bulk strings, as clients send them.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    encode_command_into(&mut out, args);
    out
}

/// [`encode_command`] appended to `out`: a pipeline's commands go into one buffer, sent
/// with one write.
pub fn encode_command_into<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let arg = arg.as_ref();
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` if `buf` holds only part of one,
/// else the reply and how many bytes it took.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some((line, after)) = line_at(buf, at) else {
        return Ok(None);
    };
    let Some((&kind, body)) = line.split_first() else {
        return Err(ProtocolError("empty line".into()));
    };
    let text = || String::from_utf8_lossy(body).into_owned();
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), after))),
        b'-' => Ok(Some((Reply::Error(text()), after))),
        b':' => Ok(Some((Reply::Integer(number(body)?), after))),
        b'$' => {
            let len = number(body)?;
            if len == -1 {
                return Ok(Some((Reply::Nil, after)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_BULK)
                .ok_or_else(|| ProtocolError(format!("bad bulk length {len}")))?;
            let end = after + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not ended by CRLF".into()));
            }
            Ok(Some((Reply::Bulk(buf[after..end].to_vec()), end + 2)))
        }
        b'*' => {
            let len = number(body)?;
            if len == -1 {
                return Ok(Some((Reply::Nil, after)));
            }
            if depth >= MAX_DEPTH {
                return Err(ProtocolError("arrays nested too deep".into()));
            }
            let len = usize::try_from(len)
                .map_err(|_| ProtocolError(format!("bad array length {len}")))?;
            // No `with_capacity(len)`: the length is the peer's word, the elements are not
            // here yet.
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..len {
                match parse_at(buf, pos, depth + 1)? {
                    None => return Ok(None),
                    Some((item, next)) => {
                        items.push(item);
                        pos = next;
                    }
                }
            }
            Ok(Some((Reply::Array(items), pos)))
        }
        other => Err(ProtocolError(format!(
            "unknown reply type {:?}",
            char::from(other)
        ))),
    }
}

/// The line starting at `at` without its CRLF, and the position after the CRLF.
fn line_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn number(body: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("not a number: {:?}", String::from_utf8_lossy(body))))
}

/// Resolves `HOST:PORT` (a name or an IP) to its first socket address.
pub async fn resolve(addr: &str) -> Result<SocketAddr, std::io::Error> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address"))
}

/// An I/O error as a person reads it: "connection refused", not "Connection refused (os
/// error 111)".
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why a request on a [`Connection`] got no reply.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("{}", io_reason(.0))]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a whole reply arrived.
    #[error("connection closed by the server")]
    Closed,
    /// The server sent something that is not RESP2; the connection is unusable.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The TLS handshake failed: the server's certificate is not trusted or not for this
    /// name, the server does not speak TLS, or it refused ours.
    #[error("TLS handshake with {addr} failed: {reason}")]
    TlsHandshake {
        /// The server.
        addr: SocketAddr,
        /// rustls's reason (or the I/O error's).
        reason: String,
    },
    /// TLS failed after the handshake (with TLS 1.3 a server that refuses the client's
    /// certificate says so only then).
    #[error("TLS error from {addr}: {reason}")]
    Tls {
        /// The server.
        addr: SocketAddr,
        /// rustls's reason.
        reason: String,
    },
    /// `AUTH` was not answered `+OK`: the server's reply (WRONGPASS ...).
    #[error("authentication failed: {0}")]
    Auth(String),
}

/// A user name and password sent with `AUTH` after connecting. Its `Debug` hides the
/// password.
#[derive(Clone)]
pub struct Credentials {
    /// The user (`AUTH user password`); `None` sends `AUTH password`, the `default` user.
    pub user: Option<String>,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why TLS could not be set up from the given files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read or parsed.
    #[error("{}: cannot read the {what}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The CA file holds no certificate.
    #[error("{}: no certificate in it (PEM expected)", .0.display())]
    NoCaCert(PathBuf),
    /// A CA certificate was refused as a trust anchor.
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// The client certificate and key do not make a usable identity.
    #[error("the client certificate and key: {0}")]
    ClientCert(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("{0:?} is not a DNS name or an IP address")]
    ServerName(String),
}

/// TLS settings for connecting: the CA that must have signed the server's certificate,
/// an optional client certificate, and the name to check the server's certificate
/// against. Cheap to clone (the rustls configuration is shared).
#[derive(Clone)]
pub struct TlsOptions {
    config: Arc<rustls::ClientConfig>,
    /// `None`: the IP address connected to.
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// Trusts the certificates in `ca` (PEM), presents `client` (certificate chain and
    /// private key, PEM) if given, and checks the server's certificate against
    /// `server_name`, or else the IP address connected to.
    pub fn new(
        ca: &Path,
        client: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> Result<TlsOptions, TlsConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(pem(ca, "CA certificate"))? {
            roots
                .add(cert.map_err(pem(ca, "CA certificate"))?)
                .map_err(|e| TlsConfigError::BadCa {
                    path: ca.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        if roots.is_empty() {
            return Err(TlsConfigError::NoCaCert(ca.to_owned()));
        }
        // ring, as the nodes use: no second crypto library to build, and no dependence on
        // a process-wide default provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::ClientCert(e.to_string()))?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(pem(cert, "client certificate"))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(pem(cert, "client certificate"))?;
                if chain.is_empty() {
                    return Err(TlsConfigError::Pem {
                        path: cert.to_owned(),
                        what: "client certificate",
                        reason: "no certificate in it (PEM expected)".into(),
                    });
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(pem(key, "private key"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsConfigError::ClientCert(e.to_string()))?
            }
        };
        let server_name = server_name
            .map(|n| {
                ServerName::try_from(n.to_owned())
                    .map_err(|_| TlsConfigError::ServerName(n.to_owned()))
            })
            .transpose()?;
        Ok(TlsOptions {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// The error for a PEM file that cannot be read: the file, what it should hold, and why,
/// as a person reads it (an I/O error without its "(os error N)").
fn pem<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsConfigError + 'a {
    move |e| TlsConfigError::Pem {
        path: path.to_owned(),
        what,
        reason: match e {
            rustls::pki_types::pem::Error::Io(io) => io_reason(&io),
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM section of that kind".into(),
            other => other.to_string(),
        },
    }
}

/// How [`Connection::connect_with`] connects: plain or TLS, with or without `AUTH`. The
/// default is plain TCP without `AUTH`, as [`Connection::connect`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// TLS, if set.
    pub tls: Option<TlsOptions>,
    /// Sent with `AUTH` after connecting, if set.
    pub credentials: Option<Credentials>,
}

/// The byte stream under a connection. An enum, not a boxed trait object: the plain path
/// (raft-bench's load) costs one branch, not a virtual call and an allocation.
enum Stream {
    Plain(TcpStream),
    // Boxed: a TLS session is a few hundred bytes, a TcpStream a few words.
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Plain",
            Stream::Tls(_) => "Tls",
        })
    }
}

/// The rustls error inside an I/O error from a TLS stream, if it is one.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// One client connection, one request at a time. Timeouts are the caller's (wrap the
/// futures in `tokio::time::timeout`); after a timeout or any error the connection may hold
/// a late reply, so drop it instead of sending again.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`, plain TCP, no `AUTH`.
    pub async fn connect(addr: SocketAddr) -> Result<Connection, ClientError> {
        Connection::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects to `addr` as `options` say: the TLS handshake, then `AUTH`, which must be
    /// answered `+OK` ([`ClientError::Auth`] otherwise).
    pub async fn connect_with(
        addr: SocketAddr,
        options: &ConnectOptions,
    ) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(addr).await?;
        // Requests are small and one at a time: send each at once.
        tcp.set_nodelay(true)?;
        let stream = match &options.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
                let stream = TlsConnector::from(tls.config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::TlsHandshake {
                        addr,
                        reason: rustls_error(&e).map_or_else(|| io_reason(&e), ToString::to_string),
                    })?;
                Stream::Tls(Box::new(stream))
            }
        };
        let mut conn = Connection {
            stream,
            addr,
            buf: Vec::new(),
        };
        if let Some(c) = &options.credentials {
            let reply = match &c.user {
                Some(user) => {
                    conn.call(&["AUTH", user.as_str(), c.password.as_str()])
                        .await?
                }
                None => conn.call(&["AUTH", c.password.as_str()]).await?,
            };
            match reply {
                Reply::Simple(ok) if ok == "OK" => {}
                Reply::Error(text) => return Err(ClientError::Auth(text)),
                other => return Err(ClientError::Auth(format!("AUTH replied {other:?}"))),
            }
        }
        Ok(conn)
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one command.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), ClientError> {
        self.send_encoded(&encode_command(args)).await
    }

    /// Sends commands already encoded with [`encode_command`], several back to back for a
    /// pipeline: one write, then one [`Connection::read_reply`] per command.
    pub async fn send_encoded(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let written = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).await,
            // rustls may keep the records it made until flushed.
            Stream::Tls(s) => match s.write_all(bytes).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
        };
        written.map_err(|e| self.io_error(e))
    }

    /// Reads the next reply.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            // 16 KiB: a pipeline's replies mostly arrive in one read.
            let mut chunk = [0u8; 16 * 1024];
            let read = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await,
                Stream::Tls(s) => s.read(&mut chunk).await,
            };
            let n = read.map_err(|e| self.io_error(e))?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command and reads its reply.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// An I/O error, or the TLS error it carries.
    fn io_error(&self, e: std::io::Error) -> ClientError {
        match rustls_error(&e) {
            Some(tls) => ClientError::Tls {
                addr: self.addr,
                reason: tls.to_string(),
            },
            None => ClientError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Reply {
        let (reply, used) = parse_reply(input).unwrap().expect("a whole reply");
        assert_eq!(used, input.len());
        reply
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Simple("OK".into()));
        assert_eq!(
            whole(b"-TRYAGAIN no leader\r\n"),
            Reply::Error("TRYAGAIN no leader".into())
        );
        assert_eq!(whole(b":-7\r\n"), Reply::Integer(-7));
        assert_eq!(
            whole(b"$5\r\na\r\nb;\r\n"),
            Reply::Bulk(b"a\r\nb;".to_vec())
        );
        assert_eq!(whole(b"$0\r\n\r\n"), Reply::Bulk(Vec::new()));
        assert_eq!(whole(b"$-1\r\n"), Reply::Nil);
        assert_eq!(whole(b"*-1\r\n"), Reply::Nil);
        assert_eq!(whole(b"*0\r\n"), Reply::Array(vec![]));
        assert_eq!(
            whole(b"*3\r\n:1\r\n$-1\r\n*1\r\n+x\r\n"),
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Nil,
                Reply::Array(vec![Reply::Simple("x".into())])
            ])
        );
    }

    #[test]
    fn a_split_reply_is_incomplete_at_every_cut() {
        let input: &[u8] = b"*2\r\n$4\r\np1;x\r\n-ERR no\r\n";
        for cut in 0..input.len() {
            assert_eq!(parse_reply(&input[..cut]), Ok(None), "cut at {cut}");
        }
        let (reply, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"p1;x".to_vec()),
                Reply::Error("ERR no".into())
            ])
        );
    }

    #[test]
    fn parses_back_to_back_replies() {
        let input = b":1\r\n:2\r\n";
        let (first, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!((first, used), (Reply::Integer(1), 4));
        assert_eq!(
            parse_reply(&input[used..]),
            Ok(Some((Reply::Integer(2), 4)))
        );
    }

    #[test]
    fn rejects_what_is_not_resp() {
        for bad in [
            &b"?x\r\n"[..],
            b"\r\n",
            b":x\r\n",
            b"$-2\r\n",
            b"$99999999999\r\n",
            b"$1\r\nab\r\n",
            b"*-5\r\n",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse_reply(deep.as_bytes()).is_err());
    }

    #[test]
    fn io_errors_read_well() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_reason(&e), "connection refused");
        assert_eq!(ClientError::Io(e).to_string(), "connection refused");
    }

    #[test]
    fn encodes_a_command() {
        assert_eq!(
            encode_command(&["APPEND", "k1", "p3-17;"]),
            b"*3\r\n$6\r\nAPPEND\r\n$2\r\nk1\r\n$6\r\np3-17;\r\n".to_vec()
        );
        let (reply, _) = parse_reply(&encode_command(&[b"a\r\n".as_slice()]))
            .unwrap()
            .unwrap();
        assert_eq!(reply, Reply::Array(vec![Reply::Bulk(b"a\r\n".to_vec())]));
    }
}
