//! Exit codes in the spirit of curl's (`man curl`, EXIT CODES).

use burrow_transport::{Error, ErrorKind, WireCode};

/// A failure with the exit code curl would use.
#[derive(Debug)]
pub struct Exit {
    /// The process exit code.
    pub code: i32,
    /// What to print (without the `burrow: (N)` prefix).
    pub message: String,
}

/// Unsupported protocol.
pub const UNSUPPORTED_PROTOCOL: i32 = 1;
/// Failed to initialise (bad option).
pub const FAILED_INIT: i32 = 2;
/// URL malformed.
pub const URL_MALFORMAT: i32 = 3;
/// Could not resolve host.
pub const COULDNT_RESOLVE_HOST: i32 = 6;
/// Failed to connect.
pub const COULDNT_CONNECT: i32 = 7;
/// Weird server reply (HTTP protocol error).
pub const WEIRD_SERVER_REPLY: i32 = 8;
/// Transfer ended before the whole body arrived.
pub const PARTIAL_FILE: i32 = 18;
/// HTTP status >= 400 with `--fail`.
pub const HTTP_RETURNED_ERROR: i32 = 22;
/// Writing output failed.
pub const WRITE_ERROR: i32 = 23;
/// Reading input (a `@file`) failed.
pub const READ_ERROR: i32 = 26;
/// Operation timed out.
pub const OPERATION_TIMEDOUT: i32 = 28;
/// The server does not support the range a resume needs.
pub const RANGE_ERROR: i32 = 33;
/// More redirects than `--max-redirs`.
pub const TOO_MANY_REDIRECTS: i32 = 47;
/// The body is larger than `--max-filesize`.
pub const FILESIZE_EXCEEDED: i32 = 63;
/// TLS handshake failed.
pub const SSL_CONNECT_ERROR: i32 = 35;
/// Failure receiving network data (also: a proxy refused the tunnel).
pub const RECV_ERROR: i32 = 56;
/// A proxy handshake failed (SOCKS replies, CURLE_PROXY).
pub const PROXY: i32 = 97;
/// The peer's certificate was not trusted.
pub const PEER_FAILED_VERIFICATION: i32 = 60;
/// Problem with the local client certificate.
pub const SSL_CERTPROBLEM: i32 = 58;
/// The server's public key did not match `--pinnedpubkey`.
pub const SSL_PINNEDPUBKEYNOTMATCH: i32 = 90;
/// Problem reading the CA certificate file.
pub const SSL_CACERT_BADFILE: i32 = 77;
/// `CURLE_COULDNT_RESOLVE_PROXY`.
pub const COULDNT_RESOLVE_PROXY: i32 = 5;
/// `CURLE_BAD_CONTENT_ENCODING`.
pub const BAD_CONTENT_ENCODING: i32 = 61;

impl Exit {
    /// An exit with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for Exit {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::ProxyResolve => COULDNT_RESOLVE_PROXY,
            ErrorKind::Resolve => COULDNT_RESOLVE_HOST,
            ErrorKind::Decoding => BAD_CONTENT_ENCODING,
            ErrorKind::Connect => COULDNT_CONNECT,
            ErrorKind::Timeout => OPERATION_TIMEDOUT,
            ErrorKind::Tls => SSL_CONNECT_ERROR,
            ErrorKind::Certificate => PEER_FAILED_VERIFICATION,
            ErrorKind::Protocol | ErrorKind::LimitExceeded => WEIRD_SERVER_REPLY,
            ErrorKind::Closed => PARTIAL_FILE,
            ErrorKind::InvalidInput => FAILED_INIT,
            ErrorKind::Unsupported => UNSUPPORTED_PROTOCOL,
            ErrorKind::TooManyRedirects => TOO_MANY_REDIRECTS,
            ErrorKind::PinMismatch => SSL_PINNEDPUBKEYNOTMATCH,
            // An HTTP proxy's status is curl's 56 ("CONNECT tunnel failed"); a SOCKS
            // proxy's refusal its 97.
            ErrorKind::ProxyRefused
                if matches!(
                    e.code(),
                    Some(
                        WireCode::Socks(_)
                            | WireCode::SocksNoMethod
                            | WireCode::SocksAuth(_)
                            | WireCode::Socks4(_)
                    )
                ) =>
            {
                PROXY
            }
            _ => RECV_ERROR,
        };
        Exit::new(code, e.to_string())
    }
}
