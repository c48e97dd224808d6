//! Thin async drivers over any [`ByteStream`](burrow_transport::ByteStream): a client
//! connection implementing [`HttpConnection`](burrow_http_core::HttpConnection) and a
//! server connection implementing [`ServerConnection`](burrow_http_core::ServerConnection).

mod client;
mod server;
mod wire;

pub use client::{handshake, AbsoluteForm, Http1, Http1Connection};
pub use server::{serve, serve_with, Http1Server, ServerTimeouts};
