//! # burrow-proxy
//!
//! Hops and routes: CONNECT and CONNECT-UDP tunnels through HTTP proxies of every version,
//! SOCKS5/4a, proxy URLs, route building, and the proxy server side. Not filled yet
//! (issues 5, 6, 7).
#![forbid(unsafe_code)]
