//! # burrow-http-core
//!
//! HTTP semantics independent of the version (RFC 9110), for burrow's version crates to plug
//! into:
//!
//! * [`HttpConnection`]: the client side of a connection of any version: send a request, get
//!   a streamed response; open a [`Tunnel`] (CONNECT, extended CONNECT);
//! * [`ServerConnection`] and [`Respond`]: the server-side twin;
//! * [`Body`]: streaming bodies with back-pressure and trailers;
//! * [`capsule`]: the Capsule Protocol codec (RFC 9297), sans-I/O;
//! * [`connect_ip`]: CONNECT-IP's control capsules (RFC 9484), sans-I/O;
//! * [`connect_tcp`]: CONNECT-TCP's capsule stream encoding, sans-I/O, and a byte stream over it;
//! * [`Client`]: picks the version (ALPN, prior knowledge), pools connections by route and
//!   origin, retries requests the peer provably did not process;
//! * [`driver`]: the one driver for every sans-I/O core over a byte stream.
//!
//! Errors are burrow's one [`Error`] type (from `burrow-transport`), re-exported here.
//!
//! ```
//! use burrow_http_core::Body;
//! # async fn demo() -> Result<(), burrow_http_core::Error> {
//! let (mut tx, body) = Body::channel();
//! tokio::spawn(async move {
//!     tx.send_data("hello".into()).await?;
//!     tx.finish();
//!     Ok::<_, burrow_http_core::Error>(())
//! });
//! assert_eq!(&body.collect(1024).await?.data[..], b"hello");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod altsvc;
mod body;
pub mod capsule;
mod client;
pub mod connect_ip;
pub mod connect_tcp;
mod connection;
pub mod credentials;
pub mod driver;
pub mod handshake;
pub mod message;
pub mod pool;
mod protocol;
mod spelling;
pub mod target;
mod tunnel;
pub mod varint;

pub use body::{Body, BodySender, Collected, DEFAULT_CHANNEL_FRAMES};

/// Most interim (1xx) responses a client accepts before the final one; a peer sending
/// more (an endless stream of `100 Continue`) is a protocol error, not a reason to wait.
pub const MAX_INTERIM_RESPONSES: usize = 16;
pub use burrow_transport::{Error, ErrorKind, Fault, Hop, Result};
pub use client::{
    origin, Client, ClientBuilder, VersionPolicy, DEFAULT_H3_FALLBACK_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_PER_ORIGIN,
};
pub use connection::{
    AbsoluteForm, ConnectionInfo, HttpConnection, Respond, ServerConnection, ServerRequest,
};
pub use protocol::{DatagramProtocol, StreamProtocol};
pub use spelling::Spelling;
pub use tunnel::{refused, ConnectProtocol, Tunnel, TunnelDatagrams, TunnelRequest};
