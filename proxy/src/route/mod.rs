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

/// Opens one tunnel through a hop inside the hop's span: `tunnel open` with the version
/// (`version` of what was opened) and the set-up time, or `tunnel refused or failed` and
/// the error tagged with `hop`.
async fn open_traced<T>(
    span: &tracing::Span,
    hop: burrow_transport::Hop,
    opening: impl std::future::Future<Output = burrow_transport::Result<T>>,
    version: impl FnOnce(&T) -> &'static str,
) -> burrow_transport::Result<T> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    match opening.instrument(span.clone()).await {
        Ok(t) => {
            let setup_ms = started.elapsed().as_millis() as u64;
            span.in_scope(|| tracing::debug!(version = version(&t), setup_ms, "tunnel open"));
            Ok(t)
        }
        Err(e) => {
            span.in_scope(|| tracing::debug!(error = %e, "tunnel refused or failed"));
            Err(e.at_hop(hop))
        }
    }
}
