//! Routes: proxy URLs, one connector per hop, folded nearest first (DESIGN.md).

mod build;
pub mod hop_stream;
pub mod http_hop;
pub mod socks_hop;
pub mod url;

pub use build::{Route, RouteOptions, DEFAULT_TUNNEL_TIMEOUT};
pub use url::{ProxyKind, ProxyUrl};
