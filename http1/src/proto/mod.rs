//! The sans-I/O HTTP/1.1 core (RFC 9112): head parsing on httparse, body framing, and the
//! connection state machine for client and server roles. No sockets, no clocks, no tasks.

mod body;
pub mod client;
mod conn;
#[cfg(test)]
mod core_tests;
mod error;
pub mod framing;
mod head;
pub mod server;
#[cfg(test)]
mod tests;

pub use conn::{Connection, Event, Role};
pub use error::ProtoError;
pub use framing::Framing;
pub(crate) use head::encode_response;
pub use head::{RequestHead, ResponseHead};

/// Default limit on the size of a header block (request or status line included): 64 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default limit on the number of header fields in one block: 100.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Longest chunk-size line, extensions included, before the message is refused: 4 KiB.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Limits on what a peer may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block (and trailer block) in bytes.
    pub max_head_bytes: usize,
    /// Most header fields in one block.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}
