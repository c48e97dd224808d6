//! The `IpFlow` seam: a flow of whole IP packets through a tunnel (CONNECT-IP, RFC 9484),
//! with the addresses and routes the far end gave this side.

use std::io;
use std::net::IpAddr;
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::Result;

/// Smallest IP packet a flow must carry: IPv6's minimum link MTU (RFC 8200 §5), which
/// RFC 9484 §10.1 asks of every CONNECT-IP tunnel that carries IPv6.
pub const IPV6_MIN_MTU: usize = 1280;

/// One range of destinations a tunnel routes (a ROUTE_ADVERTISEMENT entry): every address
/// from `start` to `end`, for one IP protocol (`0`: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRoute {
    /// The first address.
    pub start: IpAddr,
    /// The last address.
    pub end: IpAddr,
    /// The IP protocol number, `0` for any.
    pub protocol: u8,
}

impl IpRoute {
    /// Whether a packet to `dst` with this protocol may take this route.
    pub fn covers(&self, dst: IpAddr, protocol: u8) -> bool {
        let family = dst.is_ipv4() == self.start.is_ipv4();
        family
            && (self.protocol == 0 || self.protocol == protocol)
            && self.start <= dst
            && dst <= self.end
    }
}

/// What the far end of an IP tunnel gave this side: its addresses (each a prefix) and the
/// routes it accepts packets for. Each ADDRESS_ASSIGN or ROUTE_ADVERTISEMENT replaces
/// the list before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAssignment {
    /// This side's addresses, with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    /// The destinations the tunnel carries.
    pub routes: Vec<IpRoute>,
}

/// What part of the network an IP tunnel asks for (the `{target}` and `{ipproto}` of
/// CONNECT-IP's URI template, RFC 9484 §3): `None` for all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpScope {
    /// A prefix (address, length) the tunnel is for.
    pub target: Option<(IpAddr, u8)>,
    /// The one IP protocol the tunnel is for.
    pub protocol: Option<u8>,
}

/// A flow of IP packets to and from a network through a tunnel. Poll-based like
/// [`DatagramFlow`](crate::DatagramFlow): a packet larger than [`mtu`](Self::mtu) is
/// dropped by `poll_send` (which still returns `Ok`), as a link would drop it.
pub trait IpFlow: Send + Sync + 'static {
    /// Sends one IP packet. `Pending` applies back-pressure.
    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>>;

    /// Receives one IP packet into `buf`, returning its length. An error ends the flow.
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// The largest IP packet the flow carries.
    fn mtu(&self) -> usize;

    /// The addresses and routes as the far end last gave them.
    fn assignment(&self) -> IpAssignment;

    /// Short description of the flow's layers, outermost first.
    fn describe(&self) -> String;
}

/// A type-erased [`IpFlow`].
pub type BoxIpFlow = std::sync::Arc<dyn IpFlow>;

/// Opens IP tunnels.
#[async_trait]
pub trait IpConnector: Send + Sync + 'static {
    /// Opens an IP tunnel for `scope`; it returns once the far end assigned an address.
    async fn connect_ip(&self, scope: &IpScope) -> Result<BoxIpFlow>;

    /// Describes this level of the route.
    fn describe(&self) -> String;
}

/// Sends one packet.
pub async fn send(flow: &dyn IpFlow, packet: &[u8]) -> io::Result<()> {
    std::future::poll_fn(|cx| flow.poll_send(cx, packet)).await
}

/// Receives one packet.
pub async fn recv(flow: &dyn IpFlow, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| flow.poll_recv(cx, buf)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_covers_family_range_and_protocol() {
        let r = IpRoute {
            start: "10.0.0.0".parse().unwrap(),
            end: "10.0.0.255".parse().unwrap(),
            protocol: 6,
        };
        assert!(r.covers("10.0.0.7".parse().unwrap(), 6));
        assert!(!r.covers("10.0.0.7".parse().unwrap(), 17));
        assert!(!r.covers("10.0.1.0".parse().unwrap(), 6));
        assert!(!r.covers("::a00:7".parse().unwrap(), 6));
        let any = IpRoute { protocol: 0, ..r };
        assert!(any.covers("10.0.0.0".parse().unwrap(), 17));
    }
}
