//! Where a connection goes: a host (name or IP) and a port.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::Error;

/// Longest host name accepted (DNS limit, and the SOCKS5 length byte).
pub const MAX_HOST_NAME_LEN: usize = 255;

/// A host: a DNS name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, stored lower-case without a trailing dot.
    Name(String),
    /// An IP address.
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as it appears in a URL authority: `example.com`, `127.0.0.1` or `[::1]`.
    ///
    /// A trailing dot is dropped (`127.0.0.1.` is the address). A name that the system
    /// resolver would read as an IPv4 address in another notation (`127.1`, `0x7f.1`,
    /// `2130706433`) is refused: it would dodge checks made on addresses.
    pub fn parse(s: &str) -> Result<Host, Error> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = bare.trim_end_matches('.').parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if bare.len() != s.len() {
            return Err(Error::invalid_input(format!("invalid IPv6 literal {s:?}")));
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if name.is_empty() {
            return Err(Error::invalid_input("empty host name"));
        }
        if name.len() > MAX_HOST_NAME_LEN {
            return Err(Error::limit_exceeded(format!(
                "host name is {} bytes, over the limit of {MAX_HOST_NAME_LEN}",
                name.len()
            ))
            .with_fault(crate::Fault::User));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(Error::invalid_input(format!(
                "invalid character in host name {name:?}"
            )));
        }
        // Every label has at least one character (no "a..b", ".a", or "a.." which would
        // be a second name for "a.").
        if name.split('.').any(str::is_empty) {
            return Err(Error::invalid_input(format!(
                "empty label in host name {name:?}"
            )));
        }
        if looks_like_ipv4(name) {
            return Err(Error::invalid_input(format!(
                "{name:?} is an IPv4 address in a non-standard notation"
            )));
        }
        Ok(Host::Name(name.to_ascii_lowercase()))
    }
}

/// Whether `inet_aton` (and so `getaddrinfo`) would take `name` for an IPv4 address: one
/// to four dot-separated numbers, decimal, octal or `0x` hexadecimal.
fn looks_like_ipv4(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() <= 4
        && labels.iter().all(|l| {
            let hex = l
                .strip_prefix("0x")
                .or_else(|| l.strip_prefix("0X"))
                .map(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            match hex {
                Some(ok) => ok,
                None => !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()),
            }
        })
}

impl fmt::Display for Host {
    /// Formats as in a URL authority: IPv6 addresses in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A destination: host and port. Only direct connectors resolve names; tunnels pass the
/// name to the proxy unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl Target {
    /// A target from a host and port.
    pub fn new(host: Host, port: u16) -> Self {
        Target { host, port }
    }

    /// Parses `host:port` (IPv6 in brackets) or a `host` with `default_port`.
    pub fn parse_with_default(s: &str, default_port: u16) -> Result<Target, Error> {
        let (host, port) = split_host_port(s)?;
        let port = port.unwrap_or(default_port);
        Ok(Target::new(Host::parse(host)?, port))
    }

    /// The host as a string without IPv6 brackets (for SNI, DNS, URI templates).
    pub fn host_str(&self) -> String {
        match &self.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The socket address when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Self {
        Target::new(Host::Ip(a.ip()), a.port())
    }
}

impl FromStr for Target {
    type Err = Error;
    /// Parses `host:port`; the port is required.
    fn from_str(s: &str) -> Result<Self, Error> {
        let (host, port) = split_host_port(s)?;
        let port = port.ok_or_else(|| Error::invalid_input(format!("no port in {s:?}")))?;
        Ok(Target::new(Host::parse(host)?, port))
    }
}

impl fmt::Display for Target {
    /// Formats as an authority, `host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), Error> {
    let bad_port = || Error::invalid_input(format!("invalid port in {s:?}"));
    if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or_else(|| Error::invalid_input(format!("unclosed '[' in {s:?}")))?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, Some(p.parse().map_err(|_| bad_port())?))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(bad_port()),
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address without brackets has more than one colon: no port.
        Some((h, _)) if h.contains(':') => Ok((s, None)),
        Some((h, p)) => Ok((h, Some(p.parse().map_err(|_| bad_port())?))),
        None => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parses_names_ipv4_ipv6() {
        let t: Target = "Example.COM:443".parse().unwrap();
        assert_eq!(t.host, Host::Name("example.com".into()));
        assert_eq!(t.port, 443);
        let t: Target = "[::1]:8443".parse().unwrap();
        assert_eq!(t.to_string(), "[::1]:8443");
        assert_eq!(t.host_str(), "::1");
        let t = Target::parse_with_default("127.0.0.1", 80).unwrap();
        assert_eq!(t.socket_addr(), Some("127.0.0.1:80".parse().unwrap()));
        let t = Target::parse_with_default("::1", 80).unwrap();
        assert_eq!(t.to_string(), "[::1]:80");
    }

    #[test]
    fn ipv4_in_other_notations_is_not_a_name() {
        assert_eq!(
            Host::parse("127.0.0.1.").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        for n in [
            "127.1",
            "0x7f.1",
            "2130706433",
            "0177.0.0.1",
            "0x7f000001",
            "1.2.3.4.5",
        ] {
            let r = Host::parse(n);
            if n == "1.2.3.4.5" {
                // Five labels: not an inet_aton form, an ordinary (if odd) name.
                assert!(r.is_ok(), "{n}");
            } else {
                assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput, "{n}");
            }
        }
        assert!(Host::parse("123.example").is_ok());
        for bad in ["m.am..", "a..b", ".a", "."] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Host::parse("m.am.").unwrap(), Host::Name("m.am".into()));
        assert!(Host::parse("0xdead.example").is_ok());
    }

    #[test]
    fn rejects_bad_input() {
        assert!("example.com".parse::<Target>().is_err());
        assert!("example.com:99999".parse::<Target>().is_err());
        assert!("[::1".parse::<Target>().is_err());
        assert!("exa mple.com:1".parse::<Target>().is_err());
    }

    #[test]
    fn host_name_limit_is_255() {
        let ok = "a".repeat(MAX_HOST_NAME_LEN);
        assert!(Host::parse(&ok).is_ok());
        let long = "a".repeat(MAX_HOST_NAME_LEN + 1);
        let e = Host::parse(&long).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    }
}
