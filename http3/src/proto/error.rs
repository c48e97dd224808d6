//! HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6) and the core's error type.

use burrow_transport::{Error, ErrorKind};

/// An HTTP/3 application error code, as sent in CONNECTION_CLOSE and RESET_STREAM: the one
/// definition in `burrow-transport`.
pub use burrow_transport::code::H3Code as Code;

/// What an error ends (RFC 9114 §8): the stream it was found on, or the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Reset the stream with the code.
    Stream,
    /// Close the connection with the code.
    Connection,
}

/// An error found by the HTTP/3 core: the code to send, whether it ends the stream or the
/// connection, and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H3Error {
    /// The wire code.
    pub code: Code,
    /// What it ends.
    pub scope: Scope,
    /// What happened.
    pub reason: &'static str,
}

impl H3Error {
    /// A stream error with `code` and `reason`.
    pub const fn new(code: Code, reason: &'static str) -> Self {
        H3Error {
            code,
            scope: Scope::Stream,
            reason,
        }
    }

    /// A connection error with `code` and `reason`.
    pub const fn connection(code: Code, reason: &'static str) -> Self {
        H3Error {
            code,
            scope: Scope::Connection,
            reason,
        }
    }

    /// The same error, ending the connection.
    pub const fn for_connection(mut self) -> Self {
        self.scope = Scope::Connection;
        self
    }
}

impl std::fmt::Display for H3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (0x{:x}): {}",
            self.code.rfc_name(),
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
        Error::peer(kind, "HTTP/3").with_code(e.code).with_source(e)
    }
}
