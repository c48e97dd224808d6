//! CONNECT-IP's control capsules (RFC 9484 §4.7), sans-I/O: ADDRESS_ASSIGN,
//! ADDRESS_REQUEST and ROUTE_ADVERTISEMENT, decoded from a capsule's value with every
//! MUST of the RFC checked, and encoded back.
//!
//! ```text
//! ADDRESS_ASSIGN (0x01)       { Assigned Address (..) ... }        zero or more
//! ADDRESS_REQUEST (0x02)      { Requested Address (..) ... }       one or more
//!   Address { Request ID (i), IP Version (8), IP Address (32/128), IP Prefix Length (8) }
//! ROUTE_ADVERTISEMENT (0x03)  { IP Address Range (..) ... }        zero or more
//!   Range { IP Version (8), Start IP Address (32/128), End IP Address (32/128), IP Protocol (8) }
//! ```
//!
//! A capsule that breaks a rule is an error: the caller aborts the request stream
//! (RFC 9297 §3.3, RFC 9484 §4.7). Each ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT carries the
//! whole current list, replacing the one before.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BufMut};

use crate::capsule::CapsuleType;
use crate::varint;

pub mod packet;
mod stream;

pub use stream::{IpCommand, IpEvent, IpStreamCore};

/// The upgrade token and `:protocol` value (RFC 9484 §3).
pub const PROTOCOL: &str = "connect-ip";

/// The default URI template (RFC 9484 §3).
pub const DEFAULT_IP_TEMPLATE: &str = "/.well-known/masque/ip/{target}/{ipproto}/";

/// ADDRESS_ASSIGN (RFC 9484 §4.7.1).
pub const ADDRESS_ASSIGN: CapsuleType = CapsuleType(0x01);
/// ADDRESS_REQUEST (RFC 9484 §4.7.2).
pub const ADDRESS_REQUEST: CapsuleType = CapsuleType(0x02);
/// ROUTE_ADVERTISEMENT (RFC 9484 §4.7.3).
pub const ROUTE_ADVERTISEMENT: CapsuleType = CapsuleType(0x03);

/// Most entries accepted in one capsule: a peer cannot make us hold an unbounded list.
pub const MAX_ENTRIES: usize = 256;

/// An address with a prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (≤ 32 or ≤ 128).
    pub len: u8,
}

impl Prefix {
    /// A prefix, if `len` fits the family and no host bit is set.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let bits = bits(&addr);
        if u32::from(len) > bits {
            return None;
        }
        let host = match len {
            0 => u128::MAX,
            l => (1u128 << (bits - u32::from(l))).wrapping_sub(1),
        };
        (to_u128(&addr) & host == 0).then_some(Prefix { addr, len })
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let bits = bits(&ip);
        let shift = bits - u32::from(self.len);
        let (a, b) = (to_u128(&ip), to_u128(&self.addr));
        shift >= 128 || (a >> shift) == (b >> shift)
    }

    /// The all-zero address with the full length: how a request is refused (§4.7.1).
    pub fn rejection(v6: bool) -> Prefix {
        match v6 {
            false => Prefix {
                addr: Ipv4Addr::UNSPECIFIED.into(),
                len: 32,
            },
            true => Prefix {
                addr: Ipv6Addr::UNSPECIFIED.into(),
                len: 128,
            },
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn bits(a: &IpAddr) -> u32 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn to_u128(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

/// One address of an ADDRESS_ASSIGN or ADDRESS_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// The request it answers (0: not requested) or is (never 0 in a request).
    pub request_id: u64,
    /// The address or prefix.
    pub prefix: Prefix,
}

/// One range of a ROUTE_ADVERTISEMENT: destinations `start..=end`, for `protocol`
/// (0: every protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Range {
    /// The first address.
    pub start: IpAddr,
    /// The last address (same family, not below `start`).
    pub end: IpAddr,
    /// The IP protocol number, 0 for all.
    pub protocol: u8,
}

impl Range {
    /// Whether a packet to `dst` with protocol `proto` is inside the range.
    pub fn covers(&self, dst: IpAddr, proto: u8) -> bool {
        dst.is_ipv4() == self.start.is_ipv4()
            && (self.protocol == 0 || self.protocol == proto)
            && (to_u128(&self.start)..=to_u128(&self.end)).contains(&to_u128(&dst))
    }
}

/// A decoded CONNECT-IP control capsule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpCapsule {
    /// The peer's whole current list of addresses for us.
    AddressAssign(Vec<Address>),
    /// Addresses the peer asks for.
    AddressRequest(Vec<Address>),
    /// The peer's whole current list of routes.
    RouteAdvertisement(Vec<Range>),
}

/// Why a CONNECT-IP capsule is refused: the request stream is aborted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpCapsuleError {
    /// The value ends inside an entry.
    #[error("capsule value ends inside an entry")]
    Truncated,
    /// An IP Version other than 4 or 6.
    #[error("IP version {0}")]
    BadVersion(u8),
    /// A prefix length beyond the family, or host bits set.
    #[error("prefix length too long, or host bits set")]
    BadPrefix,
    /// An ADDRESS_REQUEST with no address, or with Request ID 0.
    #[error("ADDRESS_REQUEST without addresses, or with request ID 0")]
    BadRequest,
    /// A range whose start is above its end.
    #[error("route range starts after it ends")]
    BadRange,
    /// Ranges out of order, or overlapping (§4.7.3).
    #[error("route ranges out of order or overlapping")]
    Unordered,
    /// More than [`MAX_ENTRIES`] entries.
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
}

impl From<IpCapsuleError> for crate::Error {
    fn from(e: IpCapsuleError) -> crate::Error {
        crate::Error::peer(crate::ErrorKind::Protocol, "CONNECT-IP capsule").with_source(e)
    }
}

fn ip(version: u8, buf: &mut &[u8]) -> Result<IpAddr, IpCapsuleError> {
    match version {
        4 if buf.len() >= 4 => {
            let mut b = [0u8; 4];
            buf.copy_to_slice(&mut b);
            Ok(Ipv4Addr::from(b).into())
        }
        6 if buf.len() >= 16 => {
            let mut b = [0u8; 16];
            buf.copy_to_slice(&mut b);
            Ok(Ipv6Addr::from(b).into())
        }
        4 | 6 => Err(IpCapsuleError::Truncated),
        v => Err(IpCapsuleError::BadVersion(v)),
    }
}

fn byte(buf: &mut &[u8]) -> Result<u8, IpCapsuleError> {
    if buf.is_empty() {
        return Err(IpCapsuleError::Truncated);
    }
    Ok(buf.get_u8())
}

fn addresses(mut buf: &[u8]) -> Result<Vec<Address>, IpCapsuleError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if out.len() == MAX_ENTRIES {
            return Err(IpCapsuleError::TooMany);
        }
        let request_id = varint::decode(&mut buf).ok_or(IpCapsuleError::Truncated)?;
        let version = byte(&mut buf)?;
        let addr = ip(version, &mut buf)?;
        let len = byte(&mut buf)?;
        let prefix = Prefix::new(addr, len).ok_or(IpCapsuleError::BadPrefix)?;
        out.push(Address { request_id, prefix });
    }
    Ok(out)
}

/// Decodes a capsule of type `ty`; `Ok(None)` for a type that is not CONNECT-IP's.
pub fn decode(ty: CapsuleType, value: &[u8]) -> Result<Option<IpCapsule>, IpCapsuleError> {
    Ok(Some(match ty {
        ADDRESS_ASSIGN => IpCapsule::AddressAssign(addresses(value)?),
        ADDRESS_REQUEST => {
            let a = addresses(value)?;
            if a.is_empty() || a.iter().any(|a| a.request_id == 0) {
                return Err(IpCapsuleError::BadRequest);
            }
            IpCapsule::AddressRequest(a)
        }
        ROUTE_ADVERTISEMENT => {
            let mut buf = value;
            let mut out: Vec<Range> = Vec::new();
            while !buf.is_empty() {
                if out.len() == MAX_ENTRIES {
                    return Err(IpCapsuleError::TooMany);
                }
                let version = byte(&mut buf)?;
                let start = ip(version, &mut buf)?;
                let end = ip(version, &mut buf)?;
                let protocol = byte(&mut buf)?;
                if to_u128(&start) > to_u128(&end) {
                    return Err(IpCapsuleError::BadRange);
                }
                let r = Range {
                    start,
                    end,
                    protocol,
                };
                if let Some(prev) = out.last() {
                    if !in_order(prev, &r) {
                        return Err(IpCapsuleError::Unordered);
                    }
                }
                out.push(r);
            }
            IpCapsule::RouteAdvertisement(out)
        }
        _ => return Ok(None),
    }))
}

/// §4.7.3: by IP version, then protocol, then address, without overlap.
fn in_order(a: &Range, b: &Range) -> bool {
    let (va, vb) = (a.start.is_ipv6(), b.start.is_ipv6());
    if va != vb {
        return !va;
    }
    if a.protocol != b.protocol {
        return a.protocol < b.protocol;
    }
    to_u128(&a.end) < to_u128(&b.start)
}

fn put_ip(a: &IpAddr, out: &mut impl BufMut) {
    match a {
        IpAddr::V4(v) => out.put_slice(&v.octets()),
        IpAddr::V6(v) => out.put_slice(&v.octets()),
    }
}

fn version(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

/// Encodes a capsule (type, length and value).
pub fn encode(c: &IpCapsule, out: &mut impl BufMut) {
    let mut value = Vec::new();
    let ty = match c {
        IpCapsule::AddressAssign(a) | IpCapsule::AddressRequest(a) => {
            for a in a {
                varint::encode(a.request_id, &mut value);
                value.put_u8(version(&a.prefix.addr));
                put_ip(&a.prefix.addr, &mut value);
                value.put_u8(a.prefix.len);
            }
            match c {
                IpCapsule::AddressAssign(_) => ADDRESS_ASSIGN,
                _ => ADDRESS_REQUEST,
            }
        }
        IpCapsule::RouteAdvertisement(r) => {
            for r in r {
                value.put_u8(version(&r.start));
                put_ip(&r.start, &mut value);
                put_ip(&r.end, &mut value);
                value.put_u8(r.protocol);
            }
            ROUTE_ADVERTISEMENT
        }
    };
    crate::capsule::encode(ty, &value, out);
}

#[cfg(test)]
mod tests;
