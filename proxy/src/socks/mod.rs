//! SOCKS (RFC 1928, RFC 1929, SOCKS4a): wire pieces and the sans-I/O client and server cores.

pub mod client;
pub mod server;
pub mod wire;
