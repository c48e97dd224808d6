//! The codec's typed errors.

use burrow_transport::{Error, ErrorKind, Fault};

/// What went wrong in the HTTP/1.1 codec. Peer errors come from bytes received; misuse errors
/// from calls in the wrong state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The header block is larger than the configured limit.
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The header block has more fields than the configured limit.
    TooManyHeaders {
        /// The limit in fields.
        limit: usize,
    },
    /// The start line or a header field is malformed (httparse's reason).
    InvalidHead(&'static str),
    /// An HTTP/1.1 request without `Host`, with more than one, or with an invalid one
    /// (RFC 9112 §3.2: the server MUST answer 400); says which.
    InvalidHost(&'static str),
    /// A header line starts with whitespace (obsolete line folding, RFC 9112 §5.2).
    ObsFold,
    /// A CR not followed by LF (RFC 9112 §2.2).
    BareCr,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3, request smuggling).
    ContentLengthWithTransferEncoding,
    /// `Content-Length` values that disagree, or one that is not a number.
    InvalidContentLength,
    /// A `Transfer-Encoding` we cannot decode in a request, or chunked applied twice.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message (RFC 9112 §6.1: faulty framing).
    TransferEncodingInHttp10,
    /// A chunk-size line that is not hexadecimal or is empty.
    InvalidChunkSize,
    /// A chunk size beyond 64 bits.
    ChunkSizeTooLarge,
    /// A chunk-size line (with extensions) longer than [`MAX_CHUNK_LINE`](super::MAX_CHUNK_LINE).
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF.
    MissingChunkCrlf,
    /// The connection closed in the middle of a message.
    UnexpectedEof(&'static str),
    /// A 101 response to a request that asked for no upgrade.
    UnexpectedSwitch,
    /// A response arrived with no request outstanding.
    UnsolicitedResponse,
    /// Misuse by the caller: a call in the wrong state (says which).
    Misuse(&'static str),
    /// Misuse: more or fewer body bytes than the declared `Content-Length`.
    BodyLengthMismatch {
        /// Declared length.
        declared: u64,
        /// Bytes actually sent (so far).
        sent: u64,
    },
}

impl ProtoError {
    /// Whether the caller (not the peer) caused it.
    pub fn is_misuse(&self) -> bool {
        matches!(
            self,
            ProtoError::Misuse(_) | ProtoError::BodyLengthMismatch { .. }
        )
    }

    /// The status a server answers with when a request fails to parse with this error.
    pub fn status(&self) -> u16 {
        match self {
            ProtoError::HeadTooLarge { .. } | ProtoError::TooManyHeaders { .. } => 431,
            ProtoError::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::HeadTooLarge { limit } => {
                write!(f, "header block larger than {limit} bytes")
            }
            ProtoError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
            ProtoError::InvalidHead(why) => write!(f, "malformed message head: {why}"),
            ProtoError::InvalidHost(why) => write!(f, "request {why}"),
            ProtoError::ObsFold => f.write_str("obsolete line folding in header block"),
            ProtoError::BareCr => f.write_str("bare CR in message head"),
            ProtoError::ContentLengthWithTransferEncoding => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            ProtoError::InvalidContentLength => {
                f.write_str("invalid or conflicting Content-Length")
            }
            ProtoError::UnsupportedTransferEncoding => f.write_str("unsupported Transfer-Encoding"),
            ProtoError::TransferEncodingInHttp10 => {
                f.write_str("Transfer-Encoding in an HTTP/1.0 message")
            }
            ProtoError::InvalidChunkSize => f.write_str("invalid chunk size"),
            ProtoError::ChunkSizeTooLarge => f.write_str("chunk size too large"),
            ProtoError::ChunkLineTooLong => f.write_str("chunk size line too long"),
            ProtoError::MissingChunkCrlf => f.write_str("chunk data not followed by CRLF"),
            ProtoError::UnexpectedEof(during) => write!(f, "connection closed during {during}"),
            ProtoError::UnexpectedSwitch => f.write_str("101 Switching Protocols without Upgrade"),
            ProtoError::UnsolicitedResponse => f.write_str("response without a request"),
            ProtoError::Misuse(what) => write!(f, "misuse: {what}"),
            ProtoError::BodyLengthMismatch { declared, sent } => write!(
                f,
                "body length mismatch: Content-Length {declared}, {sent} bytes sent"
            ),
        }
    }
}

impl std::error::Error for ProtoError {}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Error {
        let kind = match &e {
            ProtoError::HeadTooLarge { .. }
            | ProtoError::TooManyHeaders { .. }
            | ProtoError::ChunkLineTooLong => ErrorKind::LimitExceeded,
            ProtoError::UnexpectedEof(_) => ErrorKind::Closed,
            ProtoError::Misuse(_) | ProtoError::BodyLengthMismatch { .. } => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Protocol,
        };
        let fault = if e.is_misuse() {
            Fault::User
        } else {
            Fault::Peer
        };
        Error::new(kind, fault, format!("HTTP/1.1: {e}")).with_source(e)
    }
}
