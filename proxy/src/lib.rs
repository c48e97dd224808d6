//! # burrow-proxy
//!
//! Hops and routes, and the proxy server side.
//!
//! * [`server`]: a forward proxy speaking everything burrow's client speaks: HTTP/1.1 and
//!   HTTP/2 over TCP (plain or TLS), HTTP/3; CONNECT and CONNECT-UDP (RFC 9298) on every
//!   version (datagrams on HTTP/3, capsules on HTTP/2 and HTTP/1.1), absolute-form
//!   forwarding with version translation, Basic authentication, target rules answered with
//!   `Proxy-Status` (RFC 9209), bounded relays and counters; CONNECT-TCP
//!   (draft-ietf-httpbis-connect-tcp) on every version, on both sides;
//! * [`connect_ip`]: the proxy's side of a CONNECT-IP tunnel (RFC 9484), sans-I/O: address
//!   pool, assignment and routes, and the checks on every packet either way;
//! * [`template`]: CONNECT-UDP and CONNECT-TCP URI templates.
#![forbid(unsafe_code)]

pub mod connect_ip;
pub mod flows;
/// Fuzz entry points (for `fuzz/` and the property tests), behind the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ip;
pub mod route;
pub mod server;
pub mod socks;
pub mod template;

/// Locks `m`, taking the data over if a thread panicked while holding it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
