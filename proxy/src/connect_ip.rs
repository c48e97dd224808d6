//! The proxy's side of a CONNECT-IP tunnel (RFC 9484), sans-I/O: which addresses the client
//! gets from the pool, which routes it is told of, and what happens to each packet either
//! way: forwarded, answered with an ICMP error, or dropped, with the reason.
//!
//! ```text
//!  new ──► Capsule(ADDRESS_ASSIGN), Capsule(ROUTE_ADVERTISEMENT)
//!  client capsule ──► ADDRESS_REQUEST: Capsule(ADDRESS_ASSIGN) with its request IDs
//!  client packet ──► source assigned? destination routed? ──► ToNetwork
//!                     └─ no: ToClient(ICMP error) or Dropped
//!  network packet ──► destination assigned? hop limit > 1? fits the tunnel?
//!                     ──► ToClient (hop limit − 1; IPv4 without DF fragmented to fit)
//!                     └─ no: ToNetwork(ICMP Time Exceeded / Packet Too Big) or Dropped
//! ```
//!
//! Call contract: after [`IpSession::new`] and after each `handle_*`, drain
//! [`poll_output`](IpSession::poll_output). A capsule error means the request stream must
//! be aborted. Packets come with the time they arrived (`now`, from any monotonic clock),
//! which paces the session's ICMP errors ([`ICMP_ERROR_BURST`], [`ICMP_ERRORS_PER_SEC`]);
//! the session has no timer of its own (the tunnel's idle deadline is the driver's). The
//! driver tells it the largest packet the tunnel carries now
//! ([`set_client_mtu`](IpSession::set_client_mtu): an HTTP/3 datagram's room changes with
//! the path) before handing it network packets.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use burrow_http_core::capsule::CapsuleType;
use burrow_http_core::connect_ip::packet::{self, Unreachable};
use burrow_http_core::connect_ip::{self as ip, Address, IpCapsule, IpCapsuleError, Prefix, Range};
use bytes::Bytes;

/// Most packets a session holds for its driver before it drops new ones.
pub const MAX_OUTPUT: usize = 256;

/// ICMP errors a session sends at once before they are paced (RFC 4443 §2.4(f) requires
/// a limit for ICMPv6; RFC 1812 §4.3.2.8 asks the same of IPv4 routers).
pub const ICMP_ERROR_BURST: u32 = 10;
/// ICMP errors a session sends per second once its burst is spent; past that the packet
/// is dropped without one.
pub const ICMP_ERRORS_PER_SEC: u32 = 10;

/// The token bucket pacing a session's ICMP errors.
#[derive(Debug)]
struct IcmpPace {
    tokens: u32,
    /// When the next token is due (tokens are added as time passes it).
    refilled: Option<Instant>,
}

impl IcmpPace {
    fn new() -> IcmpPace {
        IcmpPace {
            tokens: ICMP_ERROR_BURST,
            refilled: None,
        }
    }

    /// Whether an ICMP error may be sent at `now` (and takes a token if so).
    fn take(&mut self, now: Instant) -> bool {
        let every = Duration::from_secs(1) / ICMP_ERRORS_PER_SEC;
        let last = *self.refilled.get_or_insert(now);
        let due = now.saturating_duration_since(last).as_nanos() / every.as_nanos();
        let due = u32::try_from(due).unwrap_or(u32::MAX).min(ICMP_ERROR_BURST);
        if due > 0 {
            self.tokens = (self.tokens + due).min(ICMP_ERROR_BURST);
            // A full bucket starts counting afresh; otherwise the part of a token already
            // earned is kept.
            self.refilled = Some(match self.tokens == ICMP_ERROR_BURST {
                true => now,
                false => last + every * due,
            });
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Most addresses of a pool looked at for a free one: a large IPv6 pool is not walked
/// to its end.
pub const MAX_POOL_SCAN: u32 = 65_536;

/// Addresses handed to CONNECT-IP clients: one IPv4 and/or one IPv6 address each, from
/// the configured prefixes, never two clients the same one.
#[derive(Debug, Default)]
pub struct AddressPool {
    v4: Option<Prefix>,
    v6: Option<Prefix>,
    used: HashSet<IpAddr>,
}

impl AddressPool {
    /// A pool over these prefixes. The first address of each (the network's own, which
    /// the proxy's side of the TUN device takes) is never handed out.
    pub fn new(v4: Option<Prefix>, v6: Option<Prefix>) -> AddressPool {
        let mut used = HashSet::new();
        for p in [v4, v6].into_iter().flatten() {
            used.insert(p.addr);
            used.insert(first_host(&p));
        }
        AddressPool { v4, v6, used }
    }

    /// The proxy's own address in the pool's family (the first host of the prefix).
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        let p = if v6 { self.v6 } else { self.v4 };
        p.map(|p| first_host(&p))
    }

    /// A free address of the family (as a full-length prefix), the one asked for if it is
    /// free and inside the pool.
    pub fn take(&mut self, v6: bool, want: Option<IpAddr>) -> Option<Prefix> {
        let p = if v6 { self.v6? } else { self.v4? };
        let bits: u32 = if v6 { 128 } else { 32 };
        let full = bits as u8;
        if let Some(w) = want.filter(|w| p.contains(*w) && !self.used.contains(w)) {
            self.used.insert(w);
            return Prefix::new(w, full);
        }
        let size = match bits - u32::from(p.len) {
            s if s >= 32 => u32::MAX,
            s => (1u32 << s) - 1,
        };
        // The last address of an IPv4 prefix is its broadcast address.
        let last = if v6 { size } else { size.saturating_sub(1) };
        (2..=last.min(MAX_POOL_SCAN)).find_map(|i| {
            let a = offset(&p.addr, u128::from(i));
            (!self.used.contains(&a)).then(|| {
                self.used.insert(a);
                Prefix::new(a, full)
            })?
        })
    }

    /// Gives an address back.
    pub fn give_back(&mut self, a: IpAddr) {
        let reserved = [self.v4, self.v6]
            .into_iter()
            .flatten()
            .any(|p| a == p.addr || a == first_host(&p));
        if !reserved {
            self.used.remove(&a);
        }
    }
}

fn offset(a: &IpAddr, by: u128) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4((u32::from(*v).wrapping_add(by as u32)).into()),
        IpAddr::V6(v) => IpAddr::V6((u128::from(*v).wrapping_add(by)).into()),
    }
}

fn first_host(p: &Prefix) -> IpAddr {
    offset(&p.addr, 1)
}

/// What a session tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this capsule on the request stream.
    Capsule(Bytes),
    /// Send this IP packet to the client (an HTTP Datagram with context ID 0).
    ToClient(Vec<u8>),
    /// Send this IP packet to the network (the TUN device).
    ToNetwork(Vec<u8>),
    /// A packet was dropped, for this reason (for logs and counters).
    Dropped(&'static str),
}

/// The proxy's rules on a client packet's destination (address, IP protocol, and for TCP
/// and UDP the destination port): `false` refuses it.
pub type Filter = std::sync::Arc<dyn Fn(IpAddr, u8, Option<u16>) -> bool + Send + Sync>;

/// The destination port of a TCP or UDP packet whose upper-layer header starts at `upper`.
fn dst_port(pkt: &[u8], protocol: u8, upper: usize) -> Option<u16> {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    if protocol != TCP && protocol != UDP {
        return None;
    }
    let b = pkt.get(upper + 2..upper + 4)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The configured routes narrowed to what a request's scope asks for (RFC 9484 §4.6:
/// the tunnel is for `{target}` and `{ipproto}` only).
pub fn scoped(routes: &[Range], scope: &burrow_transport::IpScope) -> Vec<Range> {
    let mut out = Vec::new();
    for r in routes {
        let (mut start, mut end) = (r.start, r.end);
        if let Some((a, len)) = scope.target {
            if a.is_ipv6() != start.is_ipv6() {
                continue;
            }
            let (lo, hi) = prefix_bounds(a, len);
            start = start.max(lo);
            end = end.min(hi);
            if start > end {
                continue;
            }
        }
        let protocol = match (r.protocol, scope.protocol) {
            (0, Some(p)) => p,
            (p, None) => p,
            (p, Some(q)) if p == q => p,
            _ => continue,
        };
        out.push(Range {
            start,
            end,
            protocol,
        });
    }
    // Ranges stay ordered by version, then protocol, then address (§4.7.3).
    out.sort_by_key(|r| (r.start.is_ipv6(), r.protocol, r.start));
    out
}

/// The first and last address of a prefix.
pub fn prefix_bounds(a: IpAddr, len: u8) -> (IpAddr, IpAddr) {
    match a {
        IpAddr::V4(v) => {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let n = u32::from(v) & !host;
            (IpAddr::V4(n.into()), IpAddr::V4((n | host).into()))
        }
        IpAddr::V6(v) => {
            let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let n = u128::from(v) & !host;
            (IpAddr::V6(n.into()), IpAddr::V6((n | host).into()))
        }
    }
}

/// One CONNECT-IP tunnel on the proxy (see the module docs).
pub struct IpSession {
    assigned: Vec<Prefix>,
    routes: Vec<Range>,
    gateway_v4: Option<IpAddr>,
    gateway_v6: Option<IpAddr>,
    filter: Option<Filter>,
    out: VecDeque<Output>,
    pace: IcmpPace,
    client_mtu: usize,
}

impl std::fmt::Debug for IpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpSession")
            .field("assigned", &self.assigned)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl IpSession {
    /// A session whose client has `assigned` addresses and may reach `routes`; ICMP errors
    /// come from the gateways. It starts by telling the client both.
    pub fn new(
        assigned: Vec<Prefix>,
        routes: Vec<Range>,
        gateway_v4: Option<IpAddr>,
        gateway_v6: Option<IpAddr>,
    ) -> IpSession {
        let mut s = IpSession {
            assigned,
            routes,
            gateway_v4,
            gateway_v6,
            filter: None,
            out: VecDeque::new(),
            pace: IcmpPace::new(),
            client_mtu: usize::MAX,
        };
        let a = s.assignment(&[]);
        s.capsule(&a);
        let r = IpCapsule::RouteAdvertisement(s.routes.clone());
        s.capsule(&r);
        s
    }

    /// Applies `filter` to every client packet that has a route: a packet it refuses is
    /// answered with ICMP "administratively prohibited".
    pub fn with_filter(mut self, filter: Filter) -> IpSession {
        self.filter = Some(filter);
        self
    }

    /// The largest IP packet the tunnel carries to the client now (unlimited until told).
    /// A larger packet from the network is answered with Packet Too Big (RFC 9484 §10.1),
    /// or, for IPv4 without Don't Fragment, fragmented as a router does.
    pub fn set_client_mtu(&mut self, mtu: usize) {
        self.client_mtu = mtu;
    }

    fn push(&mut self, o: Output) {
        if self.out.len() < MAX_OUTPUT {
            self.out.push_back(o);
        }
    }

    fn capsule(&mut self, c: &IpCapsule) {
        let mut b = Vec::new();
        ip::encode(c, &mut b);
        // Capsules are never dropped: there are at most a few per request.
        self.out.push_back(Output::Capsule(b.into()));
    }

    /// The whole assignment, with `answers` (request ID, family) answered by the address
    /// of that family or refused.
    fn assignment(&self, answers: &[(u64, bool)]) -> IpCapsule {
        let mut list: Vec<Address> = self
            .assigned
            .iter()
            .map(|p| Address {
                request_id: 0,
                prefix: *p,
            })
            .collect();
        for &(id, v6) in answers {
            let prefix = self
                .assigned
                .iter()
                .find(|p| p.addr.is_ipv6() == v6)
                .copied()
                .unwrap_or_else(|| Prefix::rejection(v6));
            list.push(Address {
                request_id: id,
                prefix,
            });
        }
        IpCapsule::AddressAssign(list)
    }

    /// A capsule from the client. Unknown types are skipped; an error aborts the stream.
    pub fn handle_capsule(&mut self, ty: CapsuleType, value: &[u8]) -> Result<(), IpCapsuleError> {
        if let Some(c) = ip::decode(ty, value)? {
            self.handle_ip_capsule(c);
        }
        Ok(())
    }

    /// A decoded capsule from the client.
    pub fn handle_ip_capsule(&mut self, c: IpCapsule) {
        match c {
            IpCapsule::AddressRequest(req) => {
                // Each client has its addresses for the tunnel's life: a request is
                // answered with them (or refused for a family it has none of).
                let answers: Vec<(u64, bool)> = req
                    .iter()
                    .map(|a| (a.request_id, a.prefix.addr.is_ipv6()))
                    .collect();
                let a = self.assignment(&answers);
                self.capsule(&a);
            }
            // What the client assigns us or can route is not used: the proxy routes.
            IpCapsule::AddressAssign(_) | IpCapsule::RouteAdvertisement(_) => {}
        }
    }

    fn gateway(&self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.gateway_v6
        } else {
            self.gateway_v4
        }
    }

    fn refuse(
        &mut self,
        now: Instant,
        pkt: &[u8],
        to_client: bool,
        src_v6: bool,
        why: Unreachable,
    ) {
        let reason = match why {
            Unreachable::BadSource => "source address not assigned",
            Unreachable::NoRoute => "no route to the destination",
            Unreachable::Prohibited => "destination not allowed",
            Unreachable::HopLimit => "hop limit exceeded",
            Unreachable::TooBig { .. } => "too big for the tunnel",
        };
        let icmp = self
            .gateway(src_v6)
            .and_then(|g| packet::icmp_error(pkt, g, why))
            .filter(|_| self.pace.take(now));
        match (icmp, to_client) {
            (Some(i), true) => self.push(Output::ToClient(i)),
            (Some(i), false) => self.push(Output::ToNetwork(i)),
            (None, _) => {}
        }
        self.push(Output::Dropped(reason));
    }

    /// An IP packet from the client (context ID 0): forwarded if its source is one of the
    /// client's and its destination one of the routes (RFC 9484 §4.7, BCP 38).
    pub fn handle_client_packet(&mut self, now: Instant, pkt: Vec<u8>) {
        let Some(h) = packet::parse(&pkt) else {
            return self.push(Output::Dropped("not an IP packet"));
        };
        if !self.assigned.iter().any(|p| p.contains(h.src)) {
            return self.refuse(now, &pkt, true, h.src.is_ipv6(), Unreachable::BadSource);
        }
        // ICMP may go wherever any route goes (RFC 9484 §4.7.3).
        let icmp = h.protocol == packet::ICMP || h.protocol == packet::ICMPV6;
        let routed = self
            .routes
            .iter()
            .any(|r| r.covers(h.dst, h.protocol) || (icmp && r.covers(h.dst, r.protocol)));
        let allowed = self
            .filter
            .as_ref()
            .is_none_or(|f| f(h.dst, h.protocol, dst_port(&pkt, h.protocol, h.upper)));
        if !routed || !allowed {
            return self.refuse(now, &pkt, true, h.src.is_ipv6(), Unreachable::Prohibited);
        }
        self.push(Output::ToNetwork(pkt));
    }

    /// An IP packet from the network for this client: sent to it with the hop limit
    /// decremented (it is encapsulated here, RFC 9484 §4.3), or answered with Time
    /// Exceeded when that runs out.
    pub fn handle_network_packet(&mut self, now: Instant, mut pkt: Vec<u8>) {
        let Some(h) = packet::parse(&pkt) else {
            return self.push(Output::Dropped("not an IP packet"));
        };
        if !self.assigned.iter().any(|p| p.contains(h.dst)) {
            return self.push(Output::Dropped("not for this client"));
        }
        if h.hop_limit > 1 && pkt.len() > self.client_mtu {
            return self.too_big(now, pkt, h.src.is_ipv6());
        }
        if !packet::decrement_hop_limit(&mut pkt) {
            return self.refuse(now, &pkt, false, h.src.is_ipv6(), Unreachable::HopLimit);
        }
        self.push(Output::ToClient(pkt));
    }

    /// A network packet larger than the tunnel carries: fragmented when IPv4 allows it,
    /// else dropped with Packet Too Big to its sender (never sent as a capsule instead,
    /// which would hide the path's MTU from the sender's discovery, RFC 9484 §10.1).
    fn too_big(&mut self, now: Instant, mut pkt: Vec<u8>, v6: bool) {
        if !v6 && !packet::dont_fragment(&pkt) && packet::decrement_hop_limit(&mut pkt) {
            match packet::fragment_v4(&pkt, self.client_mtu) {
                Some(frags) => {
                    for f in frags {
                        self.push(Output::ToClient(f));
                    }
                }
                None => self.push(Output::Dropped("too big for the tunnel")),
            }
            return;
        }
        let mtu = u16::try_from(self.client_mtu).unwrap_or(u16::MAX);
        self.refuse(now, &pkt, false, v6, Unreachable::TooBig { mtu });
    }

    /// What to do next.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
