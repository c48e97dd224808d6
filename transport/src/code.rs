//! Wire codes: what a peer said on the wire when something failed, typed. Each family is a
//! newtype with its named constants, defined here once; [`WireCode`] is the one enum over
//! them that an [`Error`](crate::Error) carries.

use std::fmt;

pub use http::StatusCode;

/// An HTTP/2 error code (RFC 9113 §7), as carried by RST_STREAM and GOAWAY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct H2Reason(pub u32);

/// An HTTP/3 error code (RFC 9114 §8.1; RFC 9204 §6; RFC 9297 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct H3Code(pub u64);

/// A SOCKS5 reply code (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocksReply(pub u8);

/// A SOCKS4 reply code (the SOCKS4 protocol; SOCKS4a).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Socks4Reply(pub u8);

macro_rules! named {
    ($ty:ident: $($(#[doc = $doc:literal])* $name:ident = $v:expr,)*) => {
        impl $ty {
            $($(#[doc = $doc])* pub const $name: $ty = $ty($v);)*

            /// The constant's name, if the value has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $v => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

named!(H2Reason:
    /// Not an error (graceful shutdown).
    NO_ERROR = 0x0,
    /// A protocol error.
    PROTOCOL_ERROR = 0x1,
    /// An implementation fault.
    INTERNAL_ERROR = 0x2,
    /// Flow-control limits were violated.
    FLOW_CONTROL_ERROR = 0x3,
    /// SETTINGS were not acknowledged in time.
    SETTINGS_TIMEOUT = 0x4,
    /// A frame on a half-closed stream.
    STREAM_CLOSED = 0x5,
    /// A frame of invalid size.
    FRAME_SIZE_ERROR = 0x6,
    /// The stream was refused before any processing.
    REFUSED_STREAM = 0x7,
    /// The stream is no longer needed.
    CANCEL = 0x8,
    /// The header compression context cannot be kept.
    COMPRESSION_ERROR = 0x9,
    /// A CONNECT tunnel's connection was reset or abnormally closed.
    CONNECT_ERROR = 0xa,
    /// The peer is generating excessive load.
    ENHANCE_YOUR_CALM = 0xb,
    /// The transport's security is inadequate.
    INADEQUATE_SECURITY = 0xc,
    /// HTTP/1.1 must be used for this request.
    HTTP_1_1_REQUIRED = 0xd,
);

named!(H3Code:
    /// No error.
    NO_ERROR = 0x100,
    /// A protocol error not covered by a more specific code.
    GENERAL_PROTOCOL_ERROR = 0x101,
    /// An internal error.
    INTERNAL_ERROR = 0x102,
    /// A stream was created in a way the peer did not accept.
    STREAM_CREATION_ERROR = 0x103,
    /// A critical stream was closed.
    CLOSED_CRITICAL_STREAM = 0x104,
    /// A frame not allowed in this state or on this stream.
    FRAME_UNEXPECTED = 0x105,
    /// A frame that fails its layout or is too large.
    FRAME_ERROR = 0x106,
    /// The peer generates excessive load.
    EXCESSIVE_LOAD = 0x107,
    /// A stream or push id used wrongly.
    ID_ERROR = 0x108,
    /// SETTINGS that cannot be accepted.
    SETTINGS_ERROR = 0x109,
    /// No SETTINGS at the start of the control stream.
    MISSING_SETTINGS = 0x10a,
    /// The request was rejected before any processing.
    REQUEST_REJECTED = 0x10b,
    /// The request or its response is cancelled.
    REQUEST_CANCELLED = 0x10c,
    /// The client's stream ended without a full request.
    REQUEST_INCOMPLETE = 0x10d,
    /// A malformed message.
    MESSAGE_ERROR = 0x10e,
    /// A CONNECT tunnel was reset or abnormally closed.
    CONNECT_ERROR = 0x10f,
    /// The request must be retried over HTTP/1.1.
    VERSION_FALLBACK = 0x110,
    /// QPACK could not decompress a field section.
    QPACK_DECOMPRESSION_FAILED = 0x200,
    /// An error on the QPACK encoder stream.
    QPACK_ENCODER_STREAM_ERROR = 0x201,
    /// An error on the QPACK decoder stream.
    QPACK_DECODER_STREAM_ERROR = 0x202,
    /// An HTTP Datagram could not be parsed (RFC 9297 §5.2).
    DATAGRAM_ERROR = 0x33,
);

named!(SocksReply:
    /// Succeeded.
    SUCCEEDED = 0x00,
    /// General SOCKS server failure.
    GENERAL_FAILURE = 0x01,
    /// Connection not allowed by ruleset.
    NOT_ALLOWED = 0x02,
    /// Network unreachable.
    NETWORK_UNREACHABLE = 0x03,
    /// Host unreachable.
    HOST_UNREACHABLE = 0x04,
    /// Connection refused.
    CONNECTION_REFUSED = 0x05,
    /// TTL expired.
    TTL_EXPIRED = 0x06,
    /// Command not supported.
    COMMAND_NOT_SUPPORTED = 0x07,
    /// Address type not supported.
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
);

named!(Socks4Reply:
    /// Request granted.
    GRANTED = 90,
    /// Request rejected or failed.
    REJECTED = 91,
    /// Rejected: the server cannot reach the client's identd.
    NO_IDENTD = 92,
    /// Rejected: identd reported a different user id.
    IDENTD_MISMATCH = 93,
);

impl SocksReply {
    /// What the code means, in RFC 1928's words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0 => "succeeded",
            1 => "general SOCKS server failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unassigned reply code",
        }
    }
}

impl H3Code {
    /// The code's name as the RFCs spell it (`H3_NO_ERROR`, `QPACK_DECOMPRESSION_FAILED`).
    pub fn rfc_name(self) -> String {
        match self.name() {
            Some(n) if n.starts_with("QPACK") => n.to_string(),
            Some(n) => format!("H3_{n}"),
            None => "unknown".into(),
        }
    }
}

/// What a peer said on the wire when a request, a stream, a tunnel or a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireCode {
    /// An HTTP status (a proxy's answer to a tunnel request, an origin's response).
    Http(StatusCode),
    /// An HTTP/2 error code (RST_STREAM, GOAWAY).
    H2(H2Reason),
    /// An HTTP/3 error code (stream reset, STOP_SENDING, CONNECTION_CLOSE).
    H3(H3Code),
    /// A SOCKS5 reply code.
    Socks(SocksReply),
    /// A SOCKS5 server's choice of no acceptable method (0xFF, RFC 1928 §3).
    SocksNoMethod,
    /// A SOCKS5 username/password status (RFC 1929 §2; non-zero is a failure).
    SocksAuth(u8),
    /// A SOCKS4 reply code.
    Socks4(Socks4Reply),
}

impl fmt::Display for WireCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireCode::Http(s) => write!(f, "HTTP {}", s.as_u16()),
            WireCode::H2(r) => match r.name() {
                Some(n) => write!(f, "HTTP/2 {n} (0x{:x})", r.0),
                None => write!(f, "HTTP/2 error 0x{:x}", r.0),
            },
            WireCode::H3(c) => write!(f, "HTTP/3 {} (0x{:x})", c.rfc_name(), c.0),
            WireCode::Socks(r) => write!(f, "SOCKS5 reply {} ({})", r.0, r.meaning()),
            WireCode::SocksNoMethod => f.write_str("SOCKS5 no acceptable method"),
            WireCode::SocksAuth(s) => write!(f, "SOCKS5 authentication status {s}"),
            WireCode::Socks4(r) => write!(f, "SOCKS4 reply {}", r.0),
        }
    }
}

impl From<StatusCode> for WireCode {
    fn from(s: StatusCode) -> Self {
        WireCode::Http(s)
    }
}

impl From<H2Reason> for WireCode {
    fn from(r: H2Reason) -> Self {
        WireCode::H2(r)
    }
}

impl From<H3Code> for WireCode {
    fn from(c: H3Code) -> Self {
        WireCode::H3(c)
    }
}

impl From<SocksReply> for WireCode {
    fn from(r: SocksReply) -> Self {
        WireCode::Socks(r)
    }
}

impl From<Socks4Reply> for WireCode {
    fn from(r: Socks4Reply) -> Self {
        WireCode::Socks4(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        assert_eq!(H2Reason::CONNECT_ERROR.name(), Some("CONNECT_ERROR"));
        assert_eq!(H2Reason(0x99).name(), None);
        assert_eq!(H3Code(0x10a).name(), Some("MISSING_SETTINGS"));
        assert_eq!(
            WireCode::from(H2Reason::REFUSED_STREAM).to_string(),
            "HTTP/2 REFUSED_STREAM (0x7)"
        );
        assert_eq!(
            WireCode::from(SocksReply::NOT_ALLOWED).to_string(),
            "SOCKS5 reply 2 (connection not allowed by ruleset)"
        );
        assert_eq!(
            WireCode::from(StatusCode::FORBIDDEN).to_string(),
            "HTTP 403"
        );
    }
}
