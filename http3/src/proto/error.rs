//! HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6) and the core's error type.

use burrow_transport::{Error, ErrorKind, Fault};

/// An HTTP/3 application error code, as sent in CONNECTION_CLOSE and RESET_STREAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code(pub u64);

impl Code {
    /// No error.
    pub const NO_ERROR: Code = Code(0x100);
    /// General protocol error.
    pub const GENERAL_PROTOCOL_ERROR: Code = Code(0x101);
    /// Internal error.
    pub const INTERNAL_ERROR: Code = Code(0x102);
    /// Stream creation error.
    pub const STREAM_CREATION_ERROR: Code = Code(0x103);
    /// A critical stream was closed.
    pub const CLOSED_CRITICAL_STREAM: Code = Code(0x104);
    /// A frame was not permitted where it was received.
    pub const FRAME_UNEXPECTED: Code = Code(0x105);
    /// A frame was malformed.
    pub const FRAME_ERROR: Code = Code(0x106);
    /// Excessive load.
    pub const EXCESSIVE_LOAD: Code = Code(0x107);
    /// An identifier was used wrongly.
    pub const ID_ERROR: Code = Code(0x108);
    /// SETTINGS error.
    pub const SETTINGS_ERROR: Code = Code(0x109);
    /// No SETTINGS frame at the start of the control stream.
    pub const MISSING_SETTINGS: Code = Code(0x10a);
    /// Request rejected before processing.
    pub const REQUEST_REJECTED: Code = Code(0x10b);
    /// Request cancelled.
    pub const REQUEST_CANCELLED: Code = Code(0x10c);
    /// Request stream ended early.
    pub const REQUEST_INCOMPLETE: Code = Code(0x10d);
    /// Malformed message.
    pub const MESSAGE_ERROR: Code = Code(0x10e);
    /// CONNECT target failed.
    pub const CONNECT_ERROR: Code = Code(0x10f);
    /// Retry over HTTP/1.1.
    pub const VERSION_FALLBACK: Code = Code(0x110);
    /// QPACK: a field section could not be decoded.
    pub const QPACK_DECOMPRESSION_FAILED: Code = Code(0x200);
    /// QPACK: an encoder stream instruction was invalid.
    pub const QPACK_ENCODER_STREAM_ERROR: Code = Code(0x201);
    /// QPACK: a decoder stream instruction was invalid.
    pub const QPACK_DECODER_STREAM_ERROR: Code = Code(0x202);
    /// HTTP Datagram or capsule error (RFC 9297 §5.2).
    pub const DATAGRAM_ERROR: Code = Code(0x33);

    /// The code's name as the RFCs spell it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x100 => "H3_NO_ERROR",
            0x101 => "H3_GENERAL_PROTOCOL_ERROR",
            0x102 => "H3_INTERNAL_ERROR",
            0x103 => "H3_STREAM_CREATION_ERROR",
            0x104 => "H3_CLOSED_CRITICAL_STREAM",
            0x105 => "H3_FRAME_UNEXPECTED",
            0x106 => "H3_FRAME_ERROR",
            0x107 => "H3_EXCESSIVE_LOAD",
            0x108 => "H3_ID_ERROR",
            0x109 => "H3_SETTINGS_ERROR",
            0x10a => "H3_MISSING_SETTINGS",
            0x10b => "H3_REQUEST_REJECTED",
            0x10c => "H3_REQUEST_CANCELLED",
            0x10d => "H3_REQUEST_INCOMPLETE",
            0x10e => "H3_MESSAGE_ERROR",
            0x10f => "H3_CONNECT_ERROR",
            0x110 => "H3_VERSION_FALLBACK",
            0x200 => "QPACK_DECOMPRESSION_FAILED",
            0x201 => "QPACK_ENCODER_STREAM_ERROR",
            0x202 => "QPACK_DECODER_STREAM_ERROR",
            0x33 => "H3_DATAGRAM_ERROR",
            _ => "unknown",
        }
    }
}

/// An error found by the HTTP/3 core: the code to send and what happened. Whether it closes
/// the connection or only the stream is decided by where it was found (RFC 9114 §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H3Error {
    /// The wire code.
    pub code: Code,
    /// What happened.
    pub reason: &'static str,
}

impl H3Error {
    /// An error with `code` and `reason`.
    pub const fn new(code: Code, reason: &'static str) -> Self {
        H3Error { code, reason }
    }
}

impl std::fmt::Display for H3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (0x{:x}): {}",
            self.code.name(),
            self.code.0,
            self.reason
        )
    }
}

impl std::error::Error for H3Error {}

impl From<H3Error> for Error {
    fn from(e: H3Error) -> Error {
        let kind = match e.code {
            Code::EXCESSIVE_LOAD => ErrorKind::LimitExceeded,
            Code::REQUEST_REJECTED => ErrorKind::NotProcessed,
            Code::REQUEST_CANCELLED => ErrorKind::Cancelled,
            _ => ErrorKind::Protocol,
        };
        Error::new(kind, format!("HTTP/3: {e}"))
            .with_code(e.code.0)
            .with_fault(Fault::Peer)
    }
}
