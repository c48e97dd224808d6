//! burrow: an HTTP client whose HTTP version to the origin (HTTP/1.1, HTTP/2, HTTP/3) and
//! path to it (direct, or any chain of HTTP CONNECT, MASQUE CONNECT-UDP, SOCKS5 and SOCKS4a
//! proxies) are chosen independently — per request.
//!
//! This crate is the one dependency to add; it is shaped like reqwest:
//!
//! ```no_run
//! # async fn run() -> burrow::Result<()> {
//! let client = burrow::Client::builder()
//!     .proxy(burrow::Proxy::parse("socks5h://127.0.0.1:1080")?)
//!     .proxy(burrow::Proxy::parse("h2://localhost:8443")?.ca_file("ca.pem")?)
//!     .ca_file("ca.pem")?
//!     .build()?;
//! let resp = client.get("https://localhost:443/").send().await?;
//! println!("{} {:?} via {}", resp.status(), resp.version(), resp.route());
//! let body = resp.text().await?;
//! # let _ = body; Ok(()) }
//! ```
//!
//! * [`Client::builder`] sets the hops ([`ClientBuilder::proxy`], nearest first), `NO_PROXY`
//!   ([`ClientBuilder::no_proxy`]), curl's proxy environment variables
//!   ([`ClientBuilder::env_proxies`]), a per-URL policy ([`ClientBuilder::proxy_policy`]),
//!   trust, versions, timeouts, redirects and name resolution.
//! * A request may take its own route ([`RequestBuilder::route`]); one client serves many
//!   routes at once, each with its own connection pool, and routes that start with the same
//!   hops share those hops' HTTP/2 and HTTP/3 proxy connections.
//! * Every error is a [`burrow::Error`](Error): [`kind`](Error::kind),
//!   [`hop`](Error::hop) (which proxy, if one is to blame), [`status`](Error::status),
//!   [`is_timeout`](Error::is_timeout), [`is_connect`](Error::is_connect). Credentials never
//!   appear in errors, `Display` or `Debug`.
//!
//! # Examples
//!
//! In `burrow/examples/`, each run by `cargo test` against loopback peers
//! (`tests/examples.rs`) and by hand with `cargo run -p burrow --example NAME -- ARGS`:
//!
//! | example | what it shows |
//! |---|---|
//! | `get` | a GET |
//! | `proxy_chain` | a two-hop chain (SOCKS5, then an HTTP/2 proxy through it) and `route()` |
//! | `masque_h3` | HTTP/3 to the origin inside CONNECT-UDP through an HTTP/3 (MASQUE) proxy |
//! | `download` | streaming a large download to a file in constant memory, with progress |
//! | `proxy_server` | a proxy server (HTTP CONNECT + SOCKS5) in ten lines |
//! | `custom_transport` | HTTP over a Unix socket: a `StreamConnector` of your own under burrow |
//!
//! # Features
//!
//! `gzip`, `deflate`, `brotli`, `zstd` (response decoding; on by default), `json`,
//! `cookies`, `multipart`, `hyper` (a connector for hyper-util's client), `hickory` (DNS
//! by hickory-resolver).
//!
//! The lower layers are published too, for those who need them: `burrow-transport`
//! (connectors, TLS, resolvers), `burrow-http-core` (the version-independent connection
//! interface, bodies, tunnels), `burrow-http1`, `burrow-http2`, `burrow-http3`, and
//! `burrow-proxy` (hops, routes and the `burrow-proxy` server).
#![forbid(unsafe_code)]

mod client;
#[cfg(feature = "cookies")]
pub mod cookie;
mod decode;
#[cfg(feature = "doh")]
pub mod doh;
#[cfg(feature = "multipart")]
pub mod multipart;
mod proxy;
mod redirect;
mod request;
mod response;
mod service;

pub use client::{Client, ClientBuilder, DEFAULT_USER_AGENT, MAX_ROUTES};
pub use decode::Decoded;
#[cfg(feature = "doh")]
pub use doh::DohResolver;
pub use proxy::{Codepoints, EnvProxies, NoProxy, Proxy};
pub use redirect::{RedirectPolicy, DEFAULT_MAX_REDIRECTS, MAX_REDIRECT_HISTORY};
pub use request::RequestBuilder;
pub use response::{Redirected, Response, RouteInfo};
pub use service::ResponseFuture;
#[cfg(feature = "hyper")]
pub use service::{Connector, HyperStream};

pub use burrow_http_core::{Body, ConnectionInfo, Spelling};
/// The proxy server (`burrow-proxy`'s engine), to run one in a few lines.
pub use burrow_proxy::server;
/// The transport layer: `ByteStream`, `StreamConnector`, `Target`, TLS settings, resolvers.
pub use burrow_transport as transport;
#[cfg(feature = "hickory")]
pub use burrow_transport::HickoryResolver;
pub use burrow_transport::{
    Error, ErrorKind, Fault, Hop, Resolve, SharedResolver, StaticResolver, SystemResolver,
};
pub use http::{header, HeaderMap, Method, StatusCode, Uri, Version};

/// `Result` with [`burrow::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;
