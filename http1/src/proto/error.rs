//! The codec's typed errors.

use burrow_transport::{Error, ErrorKind, Fault};

/// What went wrong in the HTTP/1.1 codec. Peer errors come from bytes received; misuse errors
/// from calls in the wrong state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The header block is larger than the configured limit.
    #[error("header block larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The header block has more fields than the configured limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit in fields.
        limit: usize,
    },
    /// The start line or a header field is malformed (httparse's reason).
    #[error("malformed message head: {0}")]
    InvalidHead(&'static str),
    /// An HTTP/1.1 request without `Host`, with more than one, or with an invalid one
    /// (RFC 9112 §3.2: the server MUST answer 400); says which.
    #[error("request {0}")]
    InvalidHost(&'static str),
    /// A header line starts with whitespace (obsolete line folding, RFC 9112 §5.2).
    #[error("obsolete line folding in header block")]
    ObsFold,
    /// A CR not followed by LF (RFC 9112 §2.2).
    #[error("bare CR in message head")]
    BareCr,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3, request smuggling).
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    /// `Content-Length` values that disagree, or one that is not a number.
    #[error("invalid or conflicting Content-Length")]
    InvalidContentLength,
    /// A `Transfer-Encoding` we cannot decode in a request, or chunked applied twice.
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message (RFC 9112 §6.1: faulty framing).
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
    /// A chunk-size line that is not hexadecimal or is empty.
    #[error("invalid chunk size")]
    InvalidChunkSize,
    /// A chunk size beyond 64 bits.
    #[error("chunk size too large")]
    ChunkSizeTooLarge,
    /// A chunk-size line (with extensions) longer than [`MAX_CHUNK_LINE`](super::MAX_CHUNK_LINE).
    #[error("chunk size line too long")]
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingChunkCrlf,
    /// The connection closed in the middle of a message.
    #[error("connection closed during {0}")]
    UnexpectedEof(&'static str),
    /// A 101 response to a request that asked for no upgrade.
    #[error("101 Switching Protocols without Upgrade")]
    UnexpectedSwitch,
    /// Misuse by the caller: a call in the wrong state (says which).
    #[error("misuse: {0}")]
    Misuse(&'static str),
    /// Misuse: more or fewer body bytes than the declared `Content-Length`.
    #[error("body length mismatch: Content-Length {declared}, {sent} bytes sent")]
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
        // What went wrong is the source (shown after the message): said once.
        Error::new(kind, fault, "HTTP/1.1").with_source(e)
    }
}
