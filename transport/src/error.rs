//! The one error type of the burrow crate family.
//!
//! Every burrow crate reports failures with [`Error`]: a matchable [`ErrorKind`], who is at
//! [`Fault`] (set where the error is made: [`Error::peer`], [`Error::local`],
//! [`Error::user`]), an optional [`WireCode`], and the [`Hop`] of the route that failed.
//! A core's own typed error stays reachable as [`source`](std::error::Error::source).
//! Messages never carry credentials: hop labels are built from redacted proxy URLs.

use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::code::{StatusCode, WireCode};

/// A boxed error used as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, for callers to match on (never match on `Display` text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A host name could not be resolved.
    Resolve,
    /// A TCP/UDP connection could not be established.
    Connect,
    /// The TLS handshake failed for a reason other than the peer's certificate.
    Tls,
    /// The peer's TLS certificate was not trusted (curl exit code 60).
    Certificate,
    /// A deadline expired.
    Timeout,
    /// An I/O error on an established connection.
    Io,
    /// The peer violated the protocol; [`Error::code`] carries the wire code if there is one.
    Protocol,
    /// A proxy answered a tunnel request with something other than success;
    /// [`Error::code`] carries the status (HTTP status or SOCKS reply code).
    ProxyRefused,
    /// A configured limit was exceeded (header size, header count, body, capsule length, …).
    LimitExceeded,
    /// The operation was cancelled (by us or the peer, e.g. a stream reset with CANCEL).
    Cancelled,
    /// The connection was closed before the operation completed.
    Closed,
    /// The route or peer cannot do what was asked (e.g. UDP through SOCKS4a).
    Unsupported,
    /// The caller passed something invalid (a bad URL, header, option).
    InvalidInput,
    /// The peer did not process the request (HTTP/2 or HTTP/3 GOAWAY past it, REFUSED_STREAM,
    /// or a reused HTTP/1.1 connection closed before answering): safe to retry elsewhere.
    NotProcessed,
    /// A local rule refused the target (a proxy's access rules: an address range, a port, a
    /// host that is not allowed). Nothing was sent to it.
    Denied,
    /// A client followed more redirects in a row than its policy allows (curl exit code 47).
    TooManyRedirects,
    /// The peer's certificate was valid but its public key is not a pinned one (curl exit
    /// code 90).
    PinMismatch,
    /// The content's coding (gzip, deflate, br, zstd) did not decode (curl exit code 61).
    Decoding,
    /// A proxy's own host name could not be resolved (curl exit code 5; a target's name
    /// is [`Resolve`](Self::Resolve)).
    ProxyResolve,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Resolve => "name resolution failed",
            ErrorKind::Connect => "connect failed",
            ErrorKind::Tls => "TLS failed",
            ErrorKind::Certificate => "certificate not trusted",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Io => "I/O error",
            ErrorKind::Protocol => "protocol violation",
            ErrorKind::ProxyRefused => "proxy refused",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Closed => "connection closed",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotProcessed => "request not processed",
            ErrorKind::Denied => "refused by rule",
            ErrorKind::TooManyRedirects => "too many redirects",
            ErrorKind::PinMismatch => "pinned public key mismatch",
            ErrorKind::Decoding => "content decoding failed",
            ErrorKind::ProxyResolve => "proxy name resolution failed",
        }
    }
}

/// Who is at fault for an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// burrow itself (a bug or a local resource problem).
    Local,
    /// The remote peer (origin, proxy) or the network between.
    Peer,
    /// The caller: bad input, bad configuration.
    User,
}

/// The hop of a route an error belongs to.
///
/// Hop 0 is the nearest proxy; the origin is labelled separately by the route. The label is
/// a redacted description such as `h2 proxy 127.0.0.1:8443`, never containing credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Position in the route, nearest first; `None` for the origin.
    pub index: Option<usize>,
    /// Human readable, credential-free description of the hop.
    pub label: String,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "hop {} ({})", i + 1, self.label),
            None => write!(f, "origin ({})", self.label),
        }
    }
}

/// The error type of all burrow crates.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    fault: Fault,
    message: Cow<'static, str>,
    code: Option<WireCode>,
    hop: Option<Hop>,
    detail: Option<String>,
    source: Option<BoxError>,
}

/// Errors are equal when they say the same: kind, fault, message, wire code, hop and
/// detail (the source is not compared). Tests and playbooks compare errors this way.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        let (a, b) = (&self.inner, &other.inner);
        a.kind == b.kind
            && a.fault == b.fault
            && a.message == b.message
            && a.code == b.code
            && a.hop == b.hop
            && a.detail == b.detail
    }
}

impl Error {
    /// An error of `kind` for which `fault` is to blame.
    pub fn new(kind: ErrorKind, fault: Fault, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                fault,
                message: message.into(),
                code: None,
                hop: None,
                detail: None,
                source: None,
            }),
        }
    }

    /// An error the remote peer (origin, proxy) or the network between caused.
    pub fn peer(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(kind, Fault::Peer, message)
    }

    /// An error of burrow itself or of this machine (a resource, a bug).
    pub fn local(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(kind, Fault::Local, message)
    }

    /// An error the caller caused (bad input or configuration, a rule it set).
    pub fn user(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(kind, Fault::User, message)
    }

    /// The caller passed something invalid (a user fault).
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Error::user(ErrorKind::InvalidInput, message)
    }

    /// The peer violated the protocol (a peer fault).
    pub fn protocol(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::Protocol, message)
    }

    /// A peer did not answer in time (a peer fault).
    pub fn peer_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::Timeout, message)
    }

    /// The peer or route cannot do what was asked (a peer fault).
    pub fn unsupported(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::Unsupported, message)
    }

    /// A proxy refused a tunnel (a peer fault).
    pub fn proxy_refused(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::ProxyRefused, message)
    }

    /// The peer closed the connection too early (a peer fault).
    pub fn closed(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::Closed, message)
    }

    /// The peer went past a limit (a peer fault).
    pub fn limit_exceeded(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::LimitExceeded, message)
    }

    /// A name could not be resolved (a peer fault).
    pub fn resolve(message: impl Into<Cow<'static, str>>) -> Self {
        Error::peer(ErrorKind::Resolve, message)
    }

    /// Sets who is at fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.inner.fault = fault;
        self
    }

    /// Sets the wire code (HTTP status, HTTP/2 or HTTP/3 error code, SOCKS reply).
    pub fn with_code(mut self, code: impl Into<WireCode>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Sets the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Attaches extra detail from the peer (e.g. a `Proxy-Status` header value).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    /// Attributes the error to a hop, unless it already names one (the innermost hop wins).
    pub fn at_hop(mut self, hop: Hop) -> Self {
        if self.inner.hop.is_none() {
            self.inner.hop = Some(hop);
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        self.inner.fault
    }

    /// The wire code, if any (an HTTP status for [`ErrorKind::ProxyRefused`] by an HTTP
    /// proxy, a SOCKS reply by a SOCKS proxy, an HTTP/2 or HTTP/3 code for resets).
    pub fn code(&self) -> Option<WireCode> {
        self.inner.code
    }

    /// The HTTP status the wire code is, if it is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self.inner.code {
            Some(WireCode::Http(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether a deadline expired ([`ErrorKind::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// This error as met on the way to a proxy: a name that did not resolve is the
    /// proxy's own ([`ErrorKind::ProxyResolve`]).
    pub fn reaching_proxy(mut self) -> Self {
        if self.inner.kind == ErrorKind::Resolve {
            self.inner.kind = ErrorKind::ProxyResolve;
        }
        self
    }

    /// Whether reaching the origin failed before any request was sent: resolving, connecting,
    /// TLS, the certificate, or a proxy refusing the tunnel.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Resolve
                | ErrorKind::ProxyResolve
                | ErrorKind::Connect
                | ErrorKind::Tls
                | ErrorKind::Certificate
                | ErrorKind::ProxyRefused
        )
    }

    /// The hop that failed, if known.
    pub fn hop(&self) -> Option<&Hop> {
        self.inner.hop.as_ref()
    }

    /// Extra detail reported by the peer (e.g. `Proxy-Status`).
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The message, without hop or source.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Shorthand for an I/O error on an established connection.
    pub fn io(message: impl Into<Cow<'static, str>>, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Closed,
            _ => ErrorKind::Io,
        };
        // An established connection that failed: the peer or the network between.
        Error::peer(kind, message).with_source(err)
    }

    /// Shorthand for an I/O error of this machine (binding a socket, a local address, a
    /// signal handler): burrow's or the system's, not a peer's.
    pub fn local_io(message: impl Into<Cow<'static, str>>, err: io::Error) -> Self {
        Error::io(message, err).with_fault(Fault::Local)
    }

    /// Recovers a burrow error carried inside an `io::Error` (as produced by
    /// `From<Error> for io::Error`), or wraps the `io::Error`.
    pub fn from_io(message: impl Into<Cow<'static, str>>, err: io::Error) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = err.into_inner() {
                if let Ok(e) = inner.downcast::<Error>() {
                    return *e;
                }
            }
            return Error::local(ErrorKind::Io, message);
        }
        Error::io(message, err)
    }
}

/// Cloning keeps everything but turns the source into its text (sources are not `Clone`).
impl Clone for Error {
    fn clone(&self) -> Self {
        let i = &self.inner;
        Error {
            inner: Box::new(Inner {
                kind: i.kind,
                fault: i.fault,
                message: i.message.clone(),
                code: i.code,
                hop: i.hop.clone(),
                detail: i.detail.clone(),
                source: i
                    .source
                    .as_ref()
                    .map(|s| BoxError::from(SourceText(s.to_string()))),
            }),
        }
    }
}

#[derive(Debug)]
struct SourceText(String);

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceText {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("fault", &self.inner.fault)
            .field("message", &self.inner.message);
        if let Some(c) = &self.inner.code {
            d.field("code", c);
        }
        if let Some(h) = &self.inner.hop {
            d.field("hop", h);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.inner.hop {
            write!(f, "{h}: ")?;
        }
        write!(f, "{}: {}", self.inner.kind.as_str(), self.inner.message)?;
        if let Some(d) = &self.inner.detail {
            write!(f, " [{d}]")?;
        }
        if let Some(s) = &self.inner.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind() {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Closed => io::ErrorKind::UnexpectedEof,
            ErrorKind::Cancelled => io::ErrorKind::ConnectionReset,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Result with burrow's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_hop_kind_and_detail() {
        let e = Error::proxy_refused("403 Forbidden")
            .with_code(StatusCode::FORBIDDEN)
            .with_detail("burrow; error=destination_ip_prohibited")
            .at_hop(Hop {
                index: Some(1),
                label: "h2 proxy 127.0.0.1:8443".into(),
            });
        assert_eq!(
            e.to_string(),
            "hop 2 (h2 proxy 127.0.0.1:8443): proxy refused: 403 Forbidden [burrow; error=destination_ip_prohibited]"
        );
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(e.fault(), Fault::Peer);
    }

    #[test]
    fn innermost_hop_wins() {
        let e = Error::peer(ErrorKind::Connect, "refused")
            .at_hop(Hop {
                index: Some(0),
                label: "a".into(),
            })
            .at_hop(Hop {
                index: None,
                label: "b".into(),
            });
        assert_eq!(e.hop().and_then(|h| h.index), Some(0));
    }

    #[test]
    fn round_trips_through_io_error() {
        let e = Error::limit_exceeded("too big").with_code(crate::code::SocksReply::TTL_EXPIRED);
        let io: io::Error = e.into();
        let back = Error::from_io("read", io);
        assert_eq!(back.kind(), ErrorKind::LimitExceeded);
        assert_eq!(
            back.code(),
            Some(WireCode::Socks(crate::code::SocksReply(6)))
        );
        let plain = Error::from_io("read", io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(plain.kind(), ErrorKind::Closed);
    }
}
