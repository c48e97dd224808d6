//! Routes: proxy URLs, one connector per hop, folded nearest first (DESIGN.md).

mod build;
pub mod hop_stream;
pub mod http_hop;
pub mod socks_hop;
pub mod url;

pub use build::{Route, RouteOptions, DEFAULT_TUNNEL_TIMEOUT};
pub use url::{ProxyKind, ProxyUrl};

/// The span of one tunnel through one hop: `hop` with the hop's number (1 = nearest), its
/// credential-free label and the tunnel's target. Events in it: `tunnel open` (version,
/// set-up time), `tunnel refused or failed`, `tunnel closed` (bytes each way, time open).
fn hop_span(index: usize, url: &ProxyUrl, target: &burrow_transport::Target) -> tracing::Span {
    tracing::debug_span!("hop", n = index + 1, proxy = %url.label(), target = %target)
}
