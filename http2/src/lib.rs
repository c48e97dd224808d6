//! # burrow-http2
//!
//! HTTP/2 (RFC 9113) for burrow on the `h2` crate over any
//! [`ByteStream`](burrow_transport::ByteStream): TCP, TLS, or a tunnel.
//!
//! * [`connect`] / [`Http2Connection`]: the client side, an
//!   [`HttpConnection`](burrow_http_core::HttpConnection); requests multiplex and wait for a
//!   free stream at the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`;
//! * classic CONNECT (`:method` and `:authority` only) and extended CONNECT (RFC 8441, any
//!   `:protocol`, sent only once the peer's SETTINGS enabled it) return a
//!   [`Tunnel`](burrow_http_core::Tunnel) whose reads release flow-control credit;
//! * [`serve`] / [`Http2Server`]: the server side, accepting both kinds of CONNECT;
//! * [`Http2`]: the plug-in for the version-choosing [`Client`](burrow_http_core::Client).
//!
//! RST_STREAM and GOAWAY become errors carrying the HTTP/2 error code; requests the peer
//! provably did not process (above a GOAWAY's last stream id, `REFUSED_STREAM`) are
//! [`ErrorKind::NotProcessed`](burrow_transport::ErrorKind::NotProcessed) and retried by
//! the `Client` on a new connection.
#![forbid(unsafe_code)]

mod body;
mod client;
mod config;
mod error;
mod server;
mod stream;

pub use client::{connect, Http2, Http2Connection, SETTINGS_TIMEOUT};
pub use config::{
    Http2Config, DEFAULT_CONNECTION_WINDOW, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADER_LIST_SIZE,
    DEFAULT_MAX_SEND_BUFFER, DEFAULT_STREAM_WINDOW,
};
pub use server::{serve, Http2Server};
pub use stream::H2Stream;
