//! SOCKS wire pieces shared by client and server: reply codes, addresses (RFC 1928 §5),
//! the UDP request header (RFC 1928 §7).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use burrow_transport::{Host, Target, MAX_HOST_NAME_LEN};
use bytes::{Buf, BufMut};

/// A SOCKS5 reply code (RFC 1928 §6): the one definition in `burrow-transport`.
pub use burrow_transport::code::SocksReply as Reply;

/// SOCKS5 commands (RFC 1928 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// CONNECT.
    Connect,
    /// BIND (not supported by burrow).
    Bind,
    /// UDP ASSOCIATE.
    UdpAssociate,
}

/// Address type octets.
pub mod atyp {
    /// IPv4.
    pub const IPV4: u8 = 1;
    /// Domain name.
    pub const DOMAIN: u8 = 3;
    /// IPv6.
    pub const IPV6: u8 = 4;
}

/// Why an address could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// More bytes are needed.
    Incomplete,
    /// Unknown address type.
    BadType,
    /// A domain name that is empty or not a valid host name.
    BadName,
}

/// Decodes `ATYP ADDR PORT` from the front of `buf`, returning the target and its length.
pub fn decode_addr(buf: &[u8]) -> Result<(Target, usize), AddrError> {
    let ty = *buf.first().ok_or(AddrError::Incomplete)?;
    let (host, used) = match ty {
        atyp::IPV4 => {
            let b = buf.get(1..5).ok_or(AddrError::Incomplete)?;
            (
                Host::Ip(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
                5,
            )
        }
        atyp::IPV6 => {
            let b: [u8; 16] = buf
                .get(1..17)
                .ok_or(AddrError::Incomplete)?
                .try_into()
                .map_err(|_| AddrError::Incomplete)?;
            (Host::Ip(IpAddr::V6(Ipv6Addr::from(b))), 17)
        }
        atyp::DOMAIN => {
            let len = *buf.get(1).ok_or(AddrError::Incomplete)? as usize;
            let name = buf.get(2..2 + len).ok_or(AddrError::Incomplete)?;
            let name = std::str::from_utf8(name).map_err(|_| AddrError::BadName)?;
            (Host::parse(name).map_err(|_| AddrError::BadName)?, 2 + len)
        }
        _ => return Err(AddrError::BadType),
    };
    let p = buf.get(used..used + 2).ok_or(AddrError::Incomplete)?;
    Ok((
        Target::new(host, u16::from_be_bytes([p[0], p[1]])),
        used + 2,
    ))
}

/// Encodes `ATYP ADDR PORT`. Host names over 255 bytes cannot be encoded (the length is
/// one octet): the caller checks with [`MAX_HOST_NAME_LEN`] first; they are truncated here.
pub fn encode_addr(t: &Target, out: &mut impl BufMut) {
    match &t.host {
        Host::Ip(IpAddr::V4(a)) => {
            out.put_u8(atyp::IPV4);
            out.put_slice(&a.octets());
        }
        Host::Ip(IpAddr::V6(a)) => {
            out.put_u8(atyp::IPV6);
            out.put_slice(&a.octets());
        }
        Host::Name(n) => {
            let n = &n.as_bytes()[..n.len().min(MAX_HOST_NAME_LEN)];
            out.put_u8(atyp::DOMAIN);
            out.put_u8(n.len() as u8);
            out.put_slice(n);
        }
    }
    out.put_u16(t.port);
}

/// A UDP datagram as relayed by a SOCKS5 server (RFC 1928 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpPacket<'a> {
    /// Fragment number (0 = standalone; burrow drops fragments).
    pub frag: u8,
    /// Destination (client → relay) or source (relay → client).
    pub addr: Target,
    /// The payload.
    pub data: &'a [u8],
}

/// Parses a SOCKS5 UDP datagram.
pub fn decode_udp(buf: &[u8]) -> Option<UdpPacket<'_>> {
    let mut b = buf;
    if b.len() < 4 || b.get_u16() != 0 {
        return None;
    }
    let frag = b.get_u8();
    let (addr, n) = decode_addr(b).ok()?;
    Some(UdpPacket {
        frag,
        addr,
        data: &b[n..],
    })
}

/// Builds a SOCKS5 UDP datagram (FRAG 0).
pub fn encode_udp(addr: &Target, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0]);
    encode_addr(addr, out);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for t in ["192.0.2.1:80", "[2001:db8::1]:443", "example.com:8080"] {
            let t: Target = t.parse().unwrap();
            let mut out = Vec::new();
            encode_addr(&t, &mut out);
            assert_eq!(decode_addr(&out), Ok((t.clone(), out.len())));
            assert_eq!(
                decode_addr(&out[..out.len() - 1]),
                Err(AddrError::Incomplete)
            );
        }
        assert_eq!(decode_addr(&[9, 0, 0]), Err(AddrError::BadType));
        assert_eq!(decode_addr(&[3, 0, 0, 80]), Err(AddrError::BadName));
    }

    #[test]
    fn udp_header_round_trip_and_fragments() {
        let t: Target = "192.0.2.7:53".parse().unwrap();
        let mut out = Vec::new();
        encode_udp(&t, b"query", &mut out);
        let p = decode_udp(&out).unwrap();
        assert_eq!((p.frag, &p.addr, p.data), (0, &t, &b"query"[..]));
        out[2] = 1;
        assert_eq!(decode_udp(&out).unwrap().frag, 1);
        assert!(decode_udp(&[1, 0, 0, 1]).is_none());
    }
}
