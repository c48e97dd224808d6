//! The client's [`IpFlow`] over a CONNECT-IP tunnel: packets either way, and the
//! addresses and routes the proxy assigns, kept up to date as its capsules arrive.

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use burrow_http_core::connect_ip::{Address, IpCapsule, Prefix};
use burrow_transport::{Error, ErrorKind, IpAssignment, IpFlow, IpRoute, Result};

use super::tunnel::{Arrived, IpTunnel};

/// How long the client waits, once it has an address, for the proxy's routes
/// (ROUTE_ADVERTISEMENT) before it goes on without them.
pub const ROUTE_WAIT: Duration = Duration::from_millis(250);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A CONNECT-IP tunnel seen from the client (see the module docs).
pub struct ConnectIpFlow {
    tunnel: IpTunnel,
    assignment: Mutex<IpAssignment>,
    describe: String,
}

impl ConnectIpFlow {
    /// The flow of an established tunnel; returns once the proxy assigned an address
    /// (RFC 9484 §4.7.1), within `deadline`.
    pub async fn open(tunnel: IpTunnel, describe: String, deadline: Duration) -> Result<Self> {
        let flow = ConnectIpFlow {
            tunnel,
            assignment: Mutex::new(IpAssignment::default()),
            describe,
        };
        let mut buf = vec![0u8; 65_536];
        let mut routed = false;
        let mut waiting = async |stop_at_address: bool, routed: &mut bool| {
            loop {
                match flow.tunnel.arrived(&mut buf).await {
                    Ok(Arrived::Capsule(c)) => {
                        *routed |= matches!(c, IpCapsule::RouteAdvertisement(_));
                        flow.capsule(c);
                        let addressed = !lock(&flow.assignment).addresses.is_empty();
                        if addressed && (stop_at_address || *routed) {
                            return Ok(());
                        }
                    }
                    // Packets before any address are not ours yet.
                    Ok(Arrived::Packet(_)) => {}
                    Err(e) => {
                        return Err(Error::peer(
                            ErrorKind::Protocol,
                            format!("CONNECT-IP tunnel ended before an address was assigned: {e}"),
                        ))
                    }
                }
            }
        };
        tokio::time::timeout(deadline, waiting(true, &mut routed))
            .await
            .map_err(|_| {
                Error::peer_timeout(format!(
                    "the proxy assigned no address within {deadline:?} (ADDRESS_ASSIGN)"
                ))
            })??;
        if !routed {
            // The routes usually follow the assignment at once (RFC 9484 §4.7.3 makes
            // them optional).
            let _ = tokio::time::timeout(ROUTE_WAIT, waiting(false, &mut routed)).await;
        }
        Ok(flow)
    }

    fn capsule(&self, c: IpCapsule) {
        match c {
            IpCapsule::AddressAssign(list) => {
                // Rejections (all-zero addresses) answer requests; they assign nothing.
                lock(&self.assignment).addresses = list
                    .iter()
                    .filter(|a| !a.prefix.addr.is_unspecified())
                    .map(|a| (a.prefix.addr, a.prefix.len))
                    .collect();
            }
            IpCapsule::RouteAdvertisement(ranges) => {
                lock(&self.assignment).routes = ranges
                    .iter()
                    .map(|r| IpRoute {
                        start: r.start,
                        end: r.end,
                        protocol: r.protocol,
                    })
                    .collect();
            }
            IpCapsule::AddressRequest(req) => {
                // We assign the proxy nothing: each request is answered with a rejection
                // (RFC 9484 §4.7.1).
                let list = req
                    .iter()
                    .map(|a| Address {
                        request_id: a.request_id,
                        prefix: Prefix::rejection(a.prefix.addr.is_ipv6()),
                    })
                    .collect();
                self.tunnel.try_send_capsule(IpCapsule::AddressAssign(list));
            }
        }
    }
}

impl IpFlow for ConnectIpFlow {
    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        if packet.len() > self.tunnel.max_packet() {
            return Poll::Ready(Ok(()));
        }
        self.tunnel.poll_send_packet(cx, packet)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match std::task::ready!(self.tunnel.poll_arrived(cx, buf))? {
                Arrived::Packet(n) => return Poll::Ready(Ok(n)),
                Arrived::Capsule(c) => self.capsule(c),
            }
        }
    }

    fn mtu(&self) -> usize {
        self.tunnel.max_packet()
    }

    fn assignment(&self) -> IpAssignment {
        lock(&self.assignment).clone()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
