//! # burrow-http1
//!
//! HTTP/1.1 (RFC 9112) for burrow: a sans-I/O codec in [`proto`] (client and server roles,
//! Content-Length, chunked with trailers, close-delimited bodies, interim responses,
//! keep-alive, CONNECT and Upgrade), and thin async drivers over any
//! [`ByteStream`](burrow_transport::ByteStream).
//!
//! The same entry points as `burrow-http2` and `burrow-http3`: [`connect`] and [`serve`]
//! with an [`Http1Config`], [`Http1`] to plug into the version-choosing
//! [`Client`](burrow_http_core::Client).
#![forbid(unsafe_code)]

mod config;
/// Fuzz entry points (for `fuzz/` and the property tests), behind the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod io;
pub mod proto;

pub use config::Http1Config;
pub use io::{AbsoluteForm, Http1, Http1Connection, Http1Server};

use burrow_http_core::ConnectionInfo;
use burrow_transport::{BoxStream, Error};

/// Starts the client side of HTTP/1.1 over `io` (a TCP, TLS or tunnel stream): spawns the
/// connection's driver and returns its handle. Requests on it are served one at a time.
pub async fn connect(
    io: BoxStream,
    info: ConnectionInfo,
    config: &Http1Config,
) -> Result<Http1Connection, Error> {
    Ok(io::connect(io, info, config))
}

/// Serves HTTP/1.1 on `io`: spawns the driver; take requests with
/// [`ServerConnection::accept`](burrow_http_core::ServerConnection::accept).
pub async fn serve(io: BoxStream, config: &Http1Config) -> Result<Http1Server, Error> {
    Ok(io::serve(io, config))
}
