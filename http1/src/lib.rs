//! # burrow-http1
//!
//! HTTP/1.1 (RFC 9112) for burrow: a sans-I/O codec in [`proto`] (client and server roles,
//! Content-Length, chunked with trailers, close-delimited bodies, interim responses,
//! keep-alive, CONNECT and Upgrade), and thin async drivers over any
//! [`ByteStream`](burrow_transport::ByteStream).
#![forbid(unsafe_code)]

pub mod fuzzing;
pub mod io;
pub mod proto;
