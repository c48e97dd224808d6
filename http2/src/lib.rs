//! # burrow-http2
//!
//! HTTP/2 (RFC 9113) for burrow on the `h2` crate over any `ByteStream`: client and server
//! roles, CONNECT and extended CONNECT (RFC 8441). Not filled yet (issue 3).
#![forbid(unsafe_code)]
