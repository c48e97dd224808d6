//! Hooks that come with the proxy: an access log, Prometheus metrics, header rules and
//! block lists. `burrow-proxy` builds them from its flags and configuration file; a
//! library user adds them to a [`HookChain`](super::HookChain) like any other hook.

mod access_log;
mod block;
mod headers;
mod metrics;

pub use access_log::{AccessLog, LogFormat};
pub use block::BlockList;
pub use headers::{HeaderRule, HeaderRules};
pub use metrics::Metrics;

use super::forward::scheme_port;
use super::hooks::Request;
use burrow_transport::Target;

/// The target a forwarded request goes to, from its URI.
fn request_target(r: &Request) -> Option<Target> {
    let a = r.head.uri.authority()?;
    Target::parse_with_default(a.as_str(), scheme_port(r.head.uri.scheme_str())).ok()
}
