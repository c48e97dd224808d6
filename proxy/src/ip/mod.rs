//! CONNECT-IP (RFC 9484) on the client: the tunnel's channels ([`IpTunnel`], shared with
//! the proxy server), the client's [`IpFlow`](burrow_transport::IpFlow) over it
//! ([`ConnectIpFlow`]), a userspace TCP/IP stack over any IP flow ([`IpStack`]), and the
//! hop that puts TCP and UDP of a route through one tunnel ([`IpHop`]).

mod connector;
mod flow;
mod hop;
pub mod stack;
mod tunnel;

pub use connector::{StackConnector, StackSource};
pub use flow::ConnectIpFlow;
pub use hop::IpHop;
pub use stack::IpStack;
pub use tunnel::{Arrived, IpTunnel, STREAM_QUEUE};
