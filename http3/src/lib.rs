//! # burrow-http3
//!
//! HTTP/3 (RFC 9114) for burrow over any [`DatagramFlow`](burrow_transport::DatagramFlow):
//! QUIC comes from quinn, driven over the flow through quinn's `AsyncUdpSocket` seam, so it
//! runs unchanged over a UDP socket or inside any tunnel. HTTP/3 itself is burrow's own (the
//! `h3` crate sends `:scheme`/`:path` on CONNECT and lacks capsules; see DESIGN.md):
//!
//! * [`proto`]: the sans-I/O core (frames, SETTINGS, QPACK with static table and Huffman and
//!   no dynamic table, header validation, stream readers), with playbook tests and fuzz targets;
//! * [`connect`] / [`Http3Connection`]: the client, an
//!   [`HttpConnection`](burrow_http_core::HttpConnection) with classic CONNECT, extended
//!   CONNECT after the peer's SETTINGS, and HTTP Datagrams bound to their stream;
//! * [`serve`] / [`bind`]: the server role, with [`QuicLb`] connection IDs for QUIC-aware
//!   load balancers.
#![forbid(unsafe_code)]

/// Fuzz entry points (for `fuzz/` and the property tests), behind the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod io;
pub mod proto;
pub mod quic_lb;

pub use io::client::{connect, Http3, Http3Connection};
pub use io::config::{
    Http3Config, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_INITIAL_MTU, DEFAULT_KEEP_ALIVE,
    DEFAULT_QUIC_IDLE_TIMEOUT, DEFAULT_REQUEST_HEAD_TIMEOUT, PROXY_INITIAL_MTU,
};
pub use io::server::{bind, serve, Http3Server};
pub use quic_lb::QuicLb;
