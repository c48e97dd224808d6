//! The client's [`IpFlow`] over a CONNECT-IP tunnel: packets either way, and the
//! addresses and routes the proxy assigns, kept up to date as its capsules arrive.

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use burrow_http_core::connect_ip::{Address, IpCapsule, Prefix};
use burrow_transport::{Error, ErrorKind, IpAssignment, IpFlow, IpRoute, Result};

use crate::lock;

use super::tunnel::{Arrived, IpTunnel};

/// How long the client waits, once it has an address, for the proxy's routes
/// (ROUTE_ADVERTISEMENT) before it goes on without them.
pub const ROUTE_WAIT: Duration = Duration::from_millis(250);

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

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_http_core::connect_ip::{encode, Range};
    use tokio::io::AsyncWriteExt;

    /// A flow over a capsule stream whose proxy end the test writes.
    fn tunnel() -> (IpTunnel, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let t = burrow_http_core::Tunnel::new(
            Box::new(ours),
            http::StatusCode::OK,
            http::HeaderMap::new(),
        );
        (IpTunnel::new(t, 65_536), theirs)
    }

    fn assign() -> Vec<u8> {
        let mut b = Vec::new();
        let prefix = Prefix::new("10.0.0.2".parse().unwrap(), 32).unwrap();
        encode(
            &IpCapsule::AddressAssign(vec![Address {
                request_id: 0,
                prefix,
            }]),
            &mut b,
        );
        b
    }

    /// Without ROUTE_ADVERTISEMENT the flow opens after ROUTE_WAIT, with no routes; with
    /// it right after the address, at once and with the routes.
    #[tokio::test(start_paused = true)]
    async fn the_flow_waits_route_wait_for_routes_after_its_address() {
        let (t, mut proxy) = tunnel();
        proxy.write_all(&assign()).await.unwrap();
        let started = tokio::time::Instant::now();
        let flow = ConnectIpFlow::open(t, "test".into(), Duration::from_secs(10))
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= ROUTE_WAIT && took < ROUTE_WAIT + Duration::from_millis(50),
            "{took:?}"
        );
        let a = flow.assignment();
        assert_eq!(a.addresses, vec![("10.0.0.2".parse().unwrap(), 32)]);
        assert!(a.routes.is_empty());

        let (t, mut proxy) = tunnel();
        let mut both = assign();
        encode(
            &IpCapsule::RouteAdvertisement(vec![Range {
                start: "192.0.2.0".parse().unwrap(),
                end: "192.0.2.255".parse().unwrap(),
                protocol: 0,
            }]),
            &mut both,
        );
        proxy.write_all(&both).await.unwrap();
        let started = tokio::time::Instant::now();
        let flow = ConnectIpFlow::open(t, "test".into(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(started.elapsed() < ROUTE_WAIT, "{:?}", started.elapsed());
        assert_eq!(flow.assignment().routes.len(), 1);
    }

    /// No address within the deadline: a timeout that says what was missing.
    #[tokio::test(start_paused = true)]
    async fn no_address_within_the_deadline_is_a_timeout() {
        let (t, _proxy) = tunnel();
        let e = ConnectIpFlow::open(t, "test".into(), Duration::from_secs(3))
            .await
            .err()
            .unwrap();
        assert!(e.is_timeout(), "{e}");
        assert!(e.to_string().contains("ADDRESS_ASSIGN"), "{e}");
    }
}

#[cfg(test)]
mod queue_tests {
    use super::super::tunnel::STREAM_QUEUE;
    use super::*;
    use burrow_http_core::capsule::MAX_DATAGRAM_BACKLOG;

    /// A stream-carried tunnel whose proxy reads nothing takes STREAM_QUEUE packets and
    /// what its core and the stream hold, then waits (back-pressure, never loss or
    /// unbounded memory); once the proxy reads, it takes packets again.
    #[tokio::test]
    async fn packets_wait_once_stream_queue_is_full() {
        use tokio::io::AsyncReadExt;
        let (ours, mut proxy) = tokio::io::duplex(4096);
        let t = burrow_http_core::Tunnel::new(
            Box::new(ours),
            http::StatusCode::OK,
            http::HeaderMap::new(),
        );
        let tunnel = IpTunnel::new(t, 65_536);
        let packet = [0x45u8; 1000];
        let mut taken = 0;
        loop {
            let sent = tokio::time::timeout(
                Duration::from_millis(200),
                std::future::poll_fn(|cx| tunnel.poll_send_packet(cx, &packet)),
            )
            .await;
            match sent {
                Ok(r) => {
                    r.unwrap();
                    taken += 1;
                }
                Err(_) => break,
            }
            assert!(taken <= 10 * STREAM_QUEUE, "never waits");
        }
        // Beyond the queue: the core's MAX_DATAGRAM_BACKLOG, the driver's write in hand and
        // the stream's 4 KiB (337 in all when this was written).
        assert!(taken >= STREAM_QUEUE, "{taken}");
        assert!(taken <= STREAM_QUEUE + MAX_DATAGRAM_BACKLOG + 32, "{taken}");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while proxy.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| tunnel.poll_send_packet(cx, &packet)),
        )
        .await
        .expect("room again once the proxy reads")
        .unwrap();
    }
}
