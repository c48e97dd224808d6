//! CONNECT-IP on the proxy: the network side (a TUN device the proxy owns, Linux only),
//! the address pool, and the driver of each tunnel's [`IpSession`]. Every decision on a
//! packet is the session's; this moves packets and capsules.
//!
//! ```text
//!  client ──capsules/datagrams──► IpSession ──► TUN device ──► the kernel routes it
//!  TUN device ──► dispatch by destination address ──► that client's session ──► client
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use burrow_http_core::connect_ip::{Prefix, Range};
use burrow_transport::{Error, IpScope};
use tokio::sync::mpsc;

use crate::connect_ip::{prefix_bounds, scoped, AddressPool, IpSession, Output};
use crate::ip::{Arrived, IpTunnel};
use crate::lock;

use super::dial::Judge;
use super::relay::Stats;

/// Default TUN device MTU: Ethernet's, as the clients' stacks use
/// ([`STACK_MTU`](crate::ip::stack::STACK_MTU)).
pub const DEFAULT_TUN_MTU: u16 = 1500;
/// Packets queued from the TUN device to one client before new ones are dropped.
pub const CLIENT_QUEUE: usize = 512;
/// Failed reads of the TUN device in a row after which it is given up.
pub const DEVICE_ERRORS: u32 = 20;
/// The pause after a failed read of the TUN device.
pub const DEVICE_RETRY: Duration = Duration::from_millis(100);
/// Largest IP packet read from the TUN device.
const MAX_PACKET: usize = 65_535;

/// How the CONNECT-IP network is set up.
#[derive(Clone, Debug)]
pub struct IpNetConfig {
    /// The TUN device's name (`burrow0` by default).
    pub tun_name: String,
    /// The IPv4 pool: the device takes its first host address, clients the rest.
    pub pool_v4: Option<Prefix>,
    /// The IPv6 pool, likewise.
    pub pool_v6: Option<Prefix>,
    /// The routes advertised to every client (narrowed to each request's scope); empty:
    /// everything, in each family the pool has.
    pub routes: Vec<Range>,
    /// The device's MTU.
    pub mtu: u16,
}

impl Default for IpNetConfig {
    fn default() -> Self {
        IpNetConfig {
            tun_name: "burrow0".into(),
            pool_v4: None,
            pool_v6: None,
            routes: Vec::new(),
            mtu: DEFAULT_TUN_MTU,
        }
    }
}

/// Every address of both families, as routes.
fn everything(v4: bool, v6: bool) -> Vec<Range> {
    let all = |unspecified: IpAddr| {
        let (start, end) = prefix_bounds(unspecified, 0);
        Range {
            start,
            end,
            protocol: 0,
        }
    };
    let v4 = v4.then(|| all(IpAddr::V4(0.into())));
    v4.into_iter()
        .chain(v6.then(|| all(IpAddr::V6(0.into()))))
        .collect()
}

/// The configured routes in the order ROUTE_ADVERTISEMENT needs (RFC 9484 §4.7.3), or why
/// they cannot be advertised: a range that ends before it starts, or two that overlap.
fn ordered_routes(routes: &[Range]) -> Result<Vec<Range>, Error> {
    let mut r = routes.to_vec();
    if let Some(bad) = r
        .iter()
        .find(|r| r.start.is_ipv6() != r.end.is_ipv6() || r.end < r.start)
    {
        return Err(Error::invalid_input(format!(
            "CONNECT-IP route {}-{} is not a range",
            bad.start, bad.end
        )));
    }
    r.sort_by_key(|r| (r.start.is_ipv6(), r.protocol, r.start));
    let same =
        |a: &Range, b: &Range| a.start.is_ipv6() == b.start.is_ipv6() && a.protocol == b.protocol;
    if r.windows(2)
        .any(|w| same(&w[0], &w[1]) && w[1].start <= w[0].end)
    {
        return Err(Error::invalid_input("CONNECT-IP routes overlap"));
    }
    Ok(r)
}

/// The proxy's CONNECT-IP network: its TUN device, pool and clients.
pub struct IpNetwork {
    #[cfg(target_os = "linux")]
    dev: tun_rs::AsyncDevice,
    /// Whether the device speaks virtio-net headers (TSO/GSO offloads).
    #[cfg(target_os = "linux")]
    offload: bool,
    pool: Mutex<AddressPool>,
    clients: Mutex<HashMap<IpAddr, mpsc::Sender<Vec<u8>>>>,
    routes: Vec<Range>,
    gateways: (Option<IpAddr>, Option<IpAddr>),
    /// The address pools.
    pools: Vec<Prefix>,
    name: String,
    /// Why the device can no longer be read, once it cannot.
    failed: Mutex<Option<String>>,
}

impl std::fmt::Debug for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpNetwork")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl IpNetwork {
    /// Creates the TUN device with the pools' first host addresses and starts reading it.
    /// Needs `CAP_NET_ADMIN` (root) and Linux; the error says which is missing.
    pub fn open(cfg: &IpNetConfig) -> Result<Arc<IpNetwork>, Error> {
        if cfg.pool_v4.is_none() && cfg.pool_v6.is_none() {
            return Err(Error::invalid_input("CONNECT-IP needs an address pool"));
        }
        let pool = AddressPool::new(cfg.pool_v4, cfg.pool_v6);
        let gateways = (pool.gateway(false), pool.gateway(true));
        let routes = match cfg.routes.is_empty() {
            true => everything(cfg.pool_v4.is_some(), cfg.pool_v6.is_some()),
            false => ordered_routes(&cfg.routes)?,
        };
        #[cfg(target_os = "linux")]
        {
            let builder = |offload: bool| {
                let mut b = tun_rs::DeviceBuilder::new()
                    .name(cfg.tun_name.clone())
                    .mtu(cfg.mtu)
                    .offload(offload);
                if let (Some(p), Some(IpAddr::V4(g))) = (cfg.pool_v4, gateways.0) {
                    b = b.ipv4(g, p.len, None);
                }
                if let (Some(p), Some(IpAddr::V6(g))) = (cfg.pool_v6, gateways.1) {
                    b = b.ipv6(g, p.len);
                }
                b
            };
            // With offloads the kernel hands over up to 64 KiB of a TCP flow in one read
            // (split into packets here), rather than one packet per read.
            let (dev, offload) = match builder(true).build_async() {
                Ok(d) => (Ok(d), true),
                Err(e) => {
                    tracing::debug!("CONNECT-IP: TUN offloads unavailable ({e}), without them");
                    (builder(false).build_async(), false)
                }
            };
            let dev = dev.map_err(|e| {
                Error::local_io(
                    format!(
                        "creating the TUN device {} (CONNECT-IP needs root or CAP_NET_ADMIN)",
                        cfg.tun_name
                    ),
                    e,
                )
            })?;
            if cfg.pool_v4.is_some() {
                accept_own_source(&cfg.tun_name);
            }
            let net = Arc::new(IpNetwork {
                dev,
                offload,
                pool: Mutex::new(pool),
                clients: Mutex::new(HashMap::new()),
                routes,
                gateways,
                pools: cfg.pool_v4.into_iter().chain(cfg.pool_v6).collect(),
                name: cfg.tun_name.clone(),
                failed: Mutex::new(None),
            });
            tokio::spawn(read_device(Arc::downgrade(&net), cfg.mtu));
            Ok(net)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (pool, gateways, routes);
            Err(Error::unsupported(
                "CONNECT-IP's TUN device is only supported on Linux",
            ))
        }
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Addresses for one client (one per family the pool has), and its queue of packets
    /// from the network; given back when the lease is dropped.
    pub(crate) fn lease(self: &Arc<Self>, scope: IpScope) -> Result<Lease, Error> {
        if let Some(why) = lock(&self.failed).clone() {
            return Err(Error::closed(format!(
                "the CONNECT-IP device {} failed: {why}",
                self.name
            )));
        }
        let mut pool = lock(&self.pool);
        let mut assigned = Vec::new();
        for v6 in [false, true] {
            if let Some(p) = pool.take(v6, None) {
                assigned.push(p);
            }
        }
        if assigned.is_empty() {
            return Err(Error::limit_exceeded(
                "no free address in the CONNECT-IP pool",
            ));
        }
        drop(pool);
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let mut clients = lock(&self.clients);
        for p in &assigned {
            clients.insert(p.addr, tx.clone());
        }
        Ok(Lease {
            net: self.clone(),
            routes: scoped(&self.routes, &scope),
            assigned,
            rx,
        })
    }

    async fn send(&self, packet: &[u8]) {
        #[cfg(target_os = "linux")]
        {
            let sent = match self.offload {
                // An all-zero virtio-net header: one packet, checksums already done;
                // written with it in one call, without copying the packet.
                true => {
                    const NO_OFFLOAD: [u8; tun_rs::VIRTIO_NET_HDR_LEN] =
                        [0; tun_rs::VIRTIO_NET_HDR_LEN];
                    let parts = [
                        std::io::IoSlice::new(&NO_OFFLOAD),
                        std::io::IoSlice::new(packet),
                    ];
                    self.dev.send_vectored(&parts).await
                }
                false => self.dev.send(packet).await,
            };
            if let Err(e) = sent {
                tracing::debug!("CONNECT-IP: writing to {}: {e}", self.name);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = packet;
    }
}

/// Lets the kernel take IPv4 packets from the device whose source is its own address on
/// it: the proxy's ICMP errors (Time Exceeded, Fragmentation Needed) come from that
/// address, and are otherwise dropped as martians before the sender sees them. Clients
/// cannot use this to spoof it: their packets must come from their own addresses.
#[cfg(target_os = "linux")]
fn accept_own_source(device: &str) {
    let knob = format!("/proc/sys/net/ipv4/conf/{device}/accept_local");
    if let Err(e) = std::fs::write(&knob, "1") {
        tracing::warn!(
            "CONNECT-IP: cannot set {knob} ({e}): ICMP errors from the proxy will not reach \
             senders on this host"
        );
    }
}

/// Failed reads of the device in a row: each is retried after [`DEVICE_RETRY`], and the
/// device is given up at [`DEVICE_ERRORS`]; a read that works starts the count again.
#[derive(Debug, Default)]
struct ReadErrors(u32);

impl ReadErrors {
    /// A read failed: the pause before the next one, or `None` to give up.
    fn failed(&mut self) -> Option<Duration> {
        self.0 += 1;
        (self.0 < DEVICE_ERRORS).then_some(DEVICE_RETRY)
    }

    /// Whether the last failure was the first in a row (the one worth a warning).
    fn first(&self) -> bool {
        self.0 == 1
    }

    fn succeeded(&mut self) {
        self.0 = 0;
    }
}

/// Whether a failed read is the device's (the system call failed) rather than its batch's
/// (tun-rs could not split what it read, which it reports without an OS error code).
fn device_failed(e: &std::io::Error) -> bool {
    e.raw_os_error().is_some()
}

impl IpNetwork {
    /// Hands a packet from the device to the client whose address it is for; `false`
    /// when it is dropped: no such client, or one whose queue ([`CLIENT_QUEUE`]) is full,
    /// as a congested link drops.
    fn dispatch(&self, packet: &[u8]) -> bool {
        let Some(h) = burrow_http_core::connect_ip::packet::parse(packet) else {
            return false;
        };
        let to = lock(&self.clients).get(&h.dst).cloned();
        to.is_some_and(|tx| tx.try_send(packet.to_vec()).is_ok())
    }
}

/// Reads the TUN device and hands each packet to the client whose address it is for;
/// others are dropped. Ends with the network.
#[cfg(target_os = "linux")]
async fn read_device(net: std::sync::Weak<IpNetwork>, mtu: u16) {
    let mut buf = vec![0u8; tun_rs::VIRTIO_NET_HDR_LEN + MAX_PACKET];
    // One read's packets once the device's offloads are split: each at most the MTU.
    let mut packets = vec![vec![0u8; usize::from(mtu).max(1280)]; tun_rs::IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; tun_rs::IDEAL_BATCH_SIZE];
    let mut errors = ReadErrors::default();
    loop {
        let Some(n) = net.upgrade() else { return };
        let read = async {
            match n.offload {
                true => {
                    n.dev
                        .recv_multiple(&mut buf, &mut packets, &mut sizes, 0)
                        .await
                }
                false => n.dev.recv(&mut packets[0]).await.map(|len| {
                    sizes[0] = len;
                    1
                }),
            }
        };
        let got = tokio::time::timeout(Duration::from_secs(1), read).await;
        match got {
            Ok(Ok(count)) => {
                errors.succeeded();
                for (p, len) in packets.iter().zip(&sizes).take(count) {
                    n.dispatch(&p[..*len]);
                }
            }
            // The read worked but its offloaded batch could not be split (more segments
            // than IDEAL_BATCH_SIZE: a flow with a tiny MSS): that batch is lost, as on a
            // congested link, and the device is fine.
            Ok(Err(e)) if !device_failed(&e) => {
                errors.succeeded();
                tracing::debug!("CONNECT-IP: a batch from {} dropped: {e}", n.name);
            }
            Ok(Err(e)) => {
                // Retried (a read can fail for a moment); a device that keeps failing
                // is given up, and new tunnels are refused rather than left without
                // packets.
                let Some(pause) = errors.failed() else {
                    tracing::error!("CONNECT-IP: giving up on {}: {e}", n.name);
                    *lock(&n.failed) = Some(e.to_string());
                    return;
                };
                if errors.first() {
                    tracing::warn!("CONNECT-IP: reading {}: {e}", n.name);
                }
                drop(n);
                tokio::time::sleep(pause).await;
            }
            Err(_) => {}
        }
    }
}

/// One client's addresses and its packets from the network.
pub(crate) struct Lease {
    net: Arc<IpNetwork>,
    assigned: Vec<Prefix>,
    routes: Vec<Range>,
    rx: mpsc::Receiver<Vec<u8>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut clients = lock(&self.net.clients);
        let mut pool = lock(&self.net.pool);
        for p in &self.assigned {
            clients.remove(&p.addr);
            pool.give_back(p.addr);
        }
    }
}

/// The rules on a client's packets: the pools' addresses (the proxy's own on the device,
/// and the other clients') are refused unless a network rule names them, so that no
/// client reaches another through the proxy; every other destination is judged as a
/// dial is, the proxy's own listeners (a loop) by the packet's destination port.
fn packet_filter(pools: Vec<Prefix>, judge: Arc<Judge>) -> crate::connect_ip::Filter {
    Arc::new(move |dst: IpAddr, _proto: u8, port: Option<u16>| {
        if pools.iter().any(|p| p.contains(dst)) && !judge.rules().covers(dst) {
            return false;
        }
        judge
            .check_addr(SocketAddr::new(dst, port.unwrap_or(0)))
            .is_ok()
    })
}

/// Serves one CONNECT-IP tunnel until it ends or nothing moves for `idle`; returns the
/// bytes moved each way and whether it went idle.
pub(crate) async fn serve(
    tunnel: burrow_http_core::Tunnel,
    mut lease: Lease,
    judge: Arc<Judge>,
    max_capsule: u64,
    idle: Duration,
    stats: &Stats,
) -> (u64, u64, bool) {
    let tunnel = IpTunnel::new(tunnel, max_capsule);
    let (gw4, gw6) = lease.net.gateways;
    let filter = packet_filter(lease.net.pools.clone(), judge);
    let mut session =
        IpSession::new(lease.assigned.clone(), lease.routes.clone(), gw4, gw6).with_filter(filter);
    let (mut up, mut down) = (0u64, 0u64);
    let mut buf = vec![0u8; MAX_PACKET];
    let mut last = tokio::time::Instant::now();
    // A packet for the client waiting for room in the tunnel. Meanwhile the client is
    // still read (it may be waiting for room itself) and the network is not.
    let mut pending: Option<Vec<u8>> = None;
    loop {
        while pending.is_none() {
            let Some(o) = session.poll_output() else {
                break;
            };
            match o {
                Output::Capsule(c) => {
                    // A client that reads nothing for `idle` is gone.
                    if !matches!(
                        tokio::time::timeout(idle, tunnel.send_encoded(c)).await,
                        Ok(Ok(()))
                    ) {
                        return (up, down, false);
                    }
                }
                Output::ToClient(p) => {
                    down += p.len() as u64;
                    stats
                        .bytes_down
                        .fetch_add(p.len() as u64, Ordering::Relaxed);
                    stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    let waker = futures_util::task::noop_waker();
                    match tunnel.poll_send_packet(&mut Context::from_waker(&waker), &p) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return (up, down, false),
                        Poll::Pending => pending = Some(p),
                    }
                }
                Output::ToNetwork(p) => {
                    up += p.len() as u64;
                    stats.bytes_up.fetch_add(p.len() as u64, Ordering::Relaxed);
                    stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    lease.net.send(&p).await;
                }
                Output::Dropped(why) => {
                    stats.datagrams_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("CONNECT-IP: packet dropped: {why}");
                }
            }
        }
        let quiet = tokio::time::sleep_until(last + idle);
        let room = async {
            match &pending {
                Some(p) => std::future::poll_fn(|cx| tunnel.poll_send_packet(cx, p)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = room => match r {
                Ok(()) => pending = None,
                Err(_) => return (up, down, false),
            },
            a = tunnel.arrived(&mut buf) => match a {
                Ok(Arrived::Packet(n)) => {
                    session.handle_client_packet(std::time::Instant::now(), buf[..n].to_vec())
                }
                Ok(Arrived::Capsule(c)) => session.handle_ip_capsule(c),
                Err(e) => {
                    tracing::debug!("CONNECT-IP tunnel ended: {e}");
                    return (up, down, false);
                }
            },
            p = lease.rx.recv(), if pending.is_none() => match p {
                Some(p) => {
                    // An HTTP/3 datagram's room follows the path; 0 would carry nothing.
                    let mtu = tunnel.max_packet();
                    if mtu > 0 {
                        session.set_client_mtu(mtu);
                    }
                    session.handle_network_packet(std::time::Instant::now(), p)
                }
                None => return (up, down, false),
            },
            _ = quiet => return (up, down, true),
        }
        last = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::dial::OwnAddresses;
    use crate::server::Rules;

    #[test]
    fn the_filter_refuses_other_clients_and_the_proxys_listeners() {
        let own = Arc::new(OwnAddresses::default());
        own.set(vec!["1.2.3.4:8443".parse().unwrap()]);
        let pool = Prefix::new("2a00:1::".parse().unwrap(), 64).unwrap();
        let f = packet_filter(
            vec![pool],
            Arc::new(Judge::new(Rules::default(), own, false)),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The proxy's listener, by its port: a loop. Its other ports and other hosts pass.
        assert!(!f(ip("1.2.3.4"), 6, Some(8443)));
        assert!(!f(ip("1.2.3.4"), 17, Some(8443)));
        assert!(f(ip("1.2.3.4"), 6, Some(80)));
        assert!(f(ip("1.2.3.5"), 6, Some(8443)));
        // Another client's address (the pool is public here): refused; elsewhere passes.
        assert!(!f(ip("2a00:1::7"), 58, None));
        assert!(f(ip("2a00:2::7"), 58, None));
        // Special ranges, as for a dial.
        assert!(!f(ip("127.0.0.1"), 6, Some(80)));
        // A network rule naming the pool lets clients reach each other.
        let mut rules = Rules::default();
        rules.networks.push((ip("2a00:1::"), 64));
        let own = Arc::new(OwnAddresses::default());
        let f = packet_filter(vec![pool], Arc::new(Judge::new(rules, own, false)));
        assert!(f(ip("2a00:1::7"), 58, None));
    }

    #[test]
    fn device_errors_are_retried_then_the_device_is_given_up() {
        let mut e = ReadErrors::default();
        for i in 1..DEVICE_ERRORS {
            assert_eq!(e.failed(), Some(DEVICE_RETRY), "failure {i} is retried");
            assert_eq!(e.first(), i == 1);
        }
        // A read that works starts the count again.
        e.succeeded();
        for _ in 1..DEVICE_ERRORS {
            assert!(e.failed().is_some());
        }
        assert_eq!(
            e.failed(),
            None,
            "failure {DEVICE_ERRORS} in a row gives up"
        );
    }

    #[test]
    fn only_failed_system_calls_count_against_the_device() {
        assert!(device_failed(&std::io::Error::from_raw_os_error(5)));
        // What tun-rs says of a batch with more segments than there are buffers.
        let split = std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many segments");
        assert!(!device_failed(&split));
    }

    /// A client that reads nothing holds at most CLIENT_QUEUE packets from the network;
    /// packets for addresses nobody leased are dropped.
    #[tokio::test]
    async fn a_clients_queue_from_the_network_is_bounded() {
        if !burrow_test_support::netns::enter(
            "server::ipnet::tests::a_clients_queue_from_the_network_is_bounded",
        ) {
            return;
        }
        let net = IpNetwork::open(&IpNetConfig {
            tun_name: "bq0".into(),
            pool_v4: Prefix::new("10.91.0.0".parse().unwrap(), 24),
            ..Default::default()
        })
        .unwrap();
        let mut lease = net.lease(IpScope::default()).unwrap();
        let me = lease.assigned[0].addr;
        let IpAddr::V4(me4) = me else { panic!() };
        let packet = |dst: std::net::Ipv4Addr| {
            let mut p = vec![0x45, 0, 0, 21, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 9];
            p.extend_from_slice(&dst.octets());
            p.push(0);
            p
        };
        assert!(
            !net.dispatch(&packet("10.91.0.77".parse().unwrap())),
            "nobody's"
        );
        let taken = (0..CLIENT_QUEUE + 10)
            .filter(|_| net.dispatch(&packet(me4)))
            .count();
        assert_eq!(taken, CLIENT_QUEUE);
        let mut queued = 0;
        while lease.rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, CLIENT_QUEUE);
        // Read, it takes packets again.
        assert!(net.dispatch(&packet(me4)));
    }

    #[test]
    fn routes_are_ordered_and_must_not_overlap() {
        let r = |a: &str, b: &str, protocol: u8| Range {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
            protocol,
        };
        let got = ordered_routes(&[
            r("2001:db8::", "2001:db8::ff", 0),
            r("192.0.2.0", "192.0.2.255", 0),
            r("10.0.0.0", "10.0.0.255", 0),
        ])
        .unwrap();
        assert_eq!(got[0].start, "10.0.0.0".parse::<IpAddr>().unwrap());
        assert!(got[2].start.is_ipv6());
        let e = ordered_routes(&[
            r("10.0.0.0", "10.0.0.255", 0),
            r("10.0.0.128", "10.0.1.0", 0),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = ordered_routes(&[r("10.0.0.9", "10.0.0.1", 0)]).unwrap_err();
        assert!(e.to_string().contains("not a range"), "{e}");
        // Different protocols may cover the same addresses.
        assert!(ordered_routes(&[
            r("10.0.0.0", "10.0.0.255", 6),
            r("10.0.0.0", "10.0.0.255", 17)
        ])
        .is_ok());
    }
}
