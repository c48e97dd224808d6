//! SOCKS (RFC 1928, RFC 1929, SOCKS4a): wire pieces and the sans-I/O server core.

pub mod server;
pub mod wire;
