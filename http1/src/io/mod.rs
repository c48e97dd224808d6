//! Thin async drivers over any [`ByteStream`](burrow_transport::ByteStream): a client
//! connection implementing [`HttpConnection`](burrow_http_core::HttpConnection) and a
//! server connection implementing [`ServerConnection`](burrow_http_core::ServerConnection).

mod client;
mod server;

pub(crate) use client::connect;
pub use client::{AbsoluteForm, Http1, Http1Connection};
pub(crate) use server::serve;
pub use server::Http1Server;
