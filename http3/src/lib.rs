//! # burrow-http3
//!
//! HTTP/3 (RFC 9114) for burrow over any `DatagramFlow`: QUIC from quinn with the flow as its
//! socket, burrow's own HTTP/3 framing, QPACK and HTTP Datagrams. Not filled yet (issue 4).
#![forbid(unsafe_code)]
