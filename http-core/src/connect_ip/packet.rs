//! The little of IPv4 and IPv6 a CONNECT-IP endpoint needs (RFC 9484 §6–7): the header
//! fields it checks (version, source, destination, the upper-layer protocol after IPv6
//! extension headers), the hop limit it decrements, and the ICMP errors it answers with.
//! Pure functions on byte slices; nothing here trusts a length it has not checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a packet says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// TTL (IPv4) or hop limit (IPv6).
    pub hop_limit: u8,
    /// Where the upper-layer header starts.
    pub upper: usize,
}

/// ICMP (IPv4) and ICMPv6 protocol numbers.
pub const ICMP: u8 = 1;
/// ICMPv6.
pub const ICMPV6: u8 = 58;

/// IPv6 extension headers walked to find the upper-layer protocol (RFC 9484 §4.6): hop-by-hop,
/// routing, destination options; a fragment header's protocol is read but not walked on.
const V6_EXTENSIONS: [u8; 3] = [0, 43, 60];
const V6_FRAGMENT: u8 = 44;
/// Most extension headers walked before the packet is taken as malformed.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Parses a packet's header; `None` for anything that is not a well-formed IPv4 or IPv6
/// header whose stated length fits the packet.
pub fn parse(p: &[u8]) -> Option<Header> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            if ihl < 20 || p.len() < ihl || total < ihl || total > p.len() {
                return None;
            }
            Some(Header {
                src: Ipv4Addr::new(p[12], p[13], p[14], p[15]).into(),
                dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]).into(),
                protocol: p[9],
                hop_limit: p[8],
                upper: ihl,
            })
        }
        6 => {
            if p.len() < 40 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if 40 + payload > p.len() {
                return None;
            }
            let addr = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&p[at..at + 16]);
                IpAddr::from(Ipv6Addr::from(b))
            };
            let (mut next, mut at) = (p[6], 40usize);
            for _ in 0..MAX_EXTENSION_HEADERS {
                if V6_EXTENSIONS.contains(&next) {
                    let len = (usize::from(*p.get(at + 1)?) + 1) * 8;
                    next = *p.get(at)?;
                    at += len;
                } else if next == V6_FRAGMENT {
                    next = *p.get(at)?;
                    at += 8;
                    break;
                } else {
                    break;
                }
            }
            if V6_EXTENSIONS.contains(&next) {
                return None;
            }
            Some(Header {
                src: addr(8),
                dst: addr(24),
                protocol: next,
                hop_limit: p[7],
                upper: at,
            })
        }
        _ => None,
    }
}

/// Decrements the TTL or hop limit in place (the IPv4 header checksum updated, RFC 1624);
/// `false` if it was already 0 or 1 and the packet must not be forwarded.
pub fn decrement_hop_limit(p: &mut [u8]) -> bool {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            if p[8] <= 1 {
                return false;
            }
            p[8] -= 1;
            // The TTL is the high byte of its 16-bit word: the sum drops by 0x0100.
            let sum = u16::from_be_bytes([p[10], p[11]]);
            let (s, carry) = sum.overflowing_add(0x0100);
            let s = s.wrapping_add(u16::from(carry));
            p[10..12].copy_from_slice(&s.to_be_bytes());
            true
        }
        Some(6) if p.len() >= 40 => {
            if p[7] <= 1 {
                return false;
            }
            p[7] -= 1;
            true
        }
        _ => false,
    }
}

/// The Internet checksum of `data` (RFC 1071), starting from `sum`.
pub fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether an IPv4 packet has Don't Fragment set (`false` for IPv6, which routers never
/// fragment).
pub fn dont_fragment(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b >> 4 == 4) && p.get(6).is_some_and(|f| f & 0x40 != 0)
}

/// Splits an IPv4 packet without Don't Fragment into fragments of at most `mtu` bytes, as
/// a router does (RFC 791 §3.2), each with its own header checksum. `None` when it may
/// not or cannot be split: DF set, an IPv6 packet, header options (which would have to be
/// sorted into copied and not copied), an MTU below 68 bytes (RFC 791's minimum), or a
/// packet that fits already.
pub fn fragment_v4(p: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    let h = parse(p)?;
    if !h.src.is_ipv4() || dont_fragment(p) || h.upper != 20 || mtu < 68 || p.len() <= mtu {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let (header, payload) = (&p[..20], &p[20..total]);
    let flags = u16::from_be_bytes([p[6], p[7]]);
    let (more, first) = (flags & 0x2000 != 0, flags & 0x1fff);
    // Every fragment but the last carries a multiple of 8 bytes.
    let step = (mtu - 20) / 8 * 8;
    let mut out = Vec::with_capacity(payload.len().div_ceil(step));
    for (i, chunk) in payload.chunks(step).enumerate() {
        let last = (i + 1) * step >= payload.len();
        let offset = first + u16::try_from(i * step / 8).ok()?;
        if offset > 0x1fff {
            return None;
        }
        let mut f = Vec::with_capacity(20 + chunk.len());
        f.extend_from_slice(header);
        f[2..4].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
        let word = offset | if more || !last { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&word.to_be_bytes());
        f[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&f, 0);
        f[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(chunk);
        out.push(f);
    }
    Some(out)
}

/// Why a packet could not be forwarded, as an ICMP error tells it (RFC 9484 §7.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// No route to the destination (Destination Unreachable, code 0).
    NoRoute,
    /// Forbidden by policy (code 13 for IPv4, 1 for IPv6).
    Prohibited,
    /// The source is not one the sender was given (code 5: source route failed / source
    /// address failed ingress policy).
    BadSource,
    /// The hop limit ran out (Time Exceeded, code 0).
    HopLimit,
    /// The packet is larger than the next link carries, `mtu` bytes (IPv4: Destination
    /// Unreachable code 4, "fragmentation needed and DF set", RFC 1191; IPv6: Packet Too
    /// Big, RFC 4443 §3.2).
    TooBig {
        /// The next link's MTU, reported to the sender.
        mtu: u16,
    },
}

/// The ICMP error to send back for `packet` from `from` (the proxy's address, of the same
/// family): the offending packet's start, as much as fits in the IPv6 minimum MTU (1280)
/// or 576 bytes for IPv4. `None` when no error may be sent (RFC 1812 §4.3.2.7, RFC 4443
/// §2.4): the packet is itself an ICMP error, or unparseable.
pub fn icmp_error(packet: &[u8], from: IpAddr, why: Unreachable) -> Option<Vec<u8>> {
    let h = parse(packet)?;
    match (h.src, from) {
        (IpAddr::V4(dst), IpAddr::V4(src)) => {
            // Only echo requests and replies among ICMP messages may be answered with one.
            if h.protocol == ICMP && !matches!(packet.get(h.upper), Some(0 | 8)) {
                return None;
            }
            let (ty, code) = match why {
                Unreachable::NoRoute => (3, 0),
                Unreachable::Prohibited => (3, 13),
                Unreachable::BadSource => (3, 5),
                Unreachable::HopLimit => (11, 0),
                Unreachable::TooBig { .. } => (3, 4),
            };
            let quote = &packet[..packet.len().min(576 - 20 - 8)];
            let mut icmp = vec![ty, code, 0, 0, 0, 0, 0, 0];
            if let Unreachable::TooBig { mtu } = why {
                // The next-hop MTU is the low half of the second word (RFC 1191 §4).
                icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
            }
            icmp.extend_from_slice(quote);
            let c = checksum(&icmp, 0);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let total = (20 + icmp.len()) as u16;
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, ICMP, 0, 0];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let c = checksum(&ip, 0);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&icmp);
            Some(ip)
        }
        (IpAddr::V6(dst), IpAddr::V6(src)) => {
            // Informational ICMPv6 messages have the high bit of the type set; errors do not.
            if h.protocol == ICMPV6 && packet.get(h.upper).is_none_or(|t| t & 0x80 == 0) {
                return None;
            }
            let (ty, code) = match why {
                Unreachable::NoRoute => (1, 0),
                Unreachable::Prohibited => (1, 1),
                Unreachable::BadSource => (1, 5),
                Unreachable::HopLimit => (3, 0),
                Unreachable::TooBig { .. } => (2, 0),
            };
            let quote = &packet[..packet.len().min(1280 - 40 - 8)];
            let mut icmp = vec![ty, code, 0, 0, 0, 0, 0, 0];
            if let Unreachable::TooBig { mtu } = why {
                // The MTU is the whole second word (RFC 4443 §3.2).
                icmp[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
            }
            icmp.extend_from_slice(quote);
            // The pseudo-header: addresses, upper-layer length, next header.
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
            let partial: u32 = pseudo
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            let c = checksum(&icmp, partial);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0, 0, 0, ICMPV6, 64];
            ip[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            ip.extend_from_slice(&icmp);
            Some(ip)
        }
        _ => None,
    }
}
