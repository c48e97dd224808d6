//! Who may use the proxy, and where to: Basic credentials and target rules.

use std::net::IpAddr;

use burrow_transport::{Host, Target};

/// Username and password a client must present (Basic for HTTP, RFC 1929 for SOCKS5).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// Whether a `Proxy-Authorization` value carries these credentials (Basic, RFC 7617).
    pub fn check_basic(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let Some((scheme, b64)) = h.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.pass);
        // Constant-time in the length of the expected value.
        raw.len() == expected.len()
            && raw
                .iter()
                .zip(expected.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Where clients may go. An empty list allows everything of its kind.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Host names allowed: `example.com` exactly, or `*.example.com` for subdomains.
    pub hosts: Vec<String>,
    /// Networks allowed for the addresses targets resolve to, as (address, prefix length).
    pub networks: Vec<(IpAddr, u8)>,
    /// Port ranges allowed (inclusive).
    pub ports: Vec<(u16, u16)>,
}

/// Why a target was refused, as a Proxy-Status error (RFC 9209 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The host name is not allowed (`http_request_denied`).
    Host,
    /// The port is not allowed (`destination_ip_prohibited` is the closest registered type).
    Port,
    /// The address is not in an allowed network (`destination_ip_prohibited`).
    Address,
}

impl Denied {
    /// The Proxy-Status error type.
    pub fn proxy_status(self) -> &'static str {
        match self {
            Denied::Host => "http_request_denied",
            Denied::Port | Denied::Address => "destination_ip_prohibited",
        }
    }
}

fn in_network(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Rules {
    /// Checks the target's name and port (before resolving).
    pub fn check_target(&self, t: &Target) -> Result<(), Denied> {
        if !self.ports.is_empty() && !self.ports.iter().any(|(a, b)| (*a..=*b).contains(&t.port)) {
            return Err(Denied::Port);
        }
        if let (Host::Name(n), false) = (&t.host, self.hosts.is_empty()) {
            let ok = self.hosts.iter().any(|h| match h.strip_prefix("*.") {
                Some(suffix) => n.ends_with(&format!(".{suffix}")),
                None => h == n,
            });
            if !ok {
                return Err(Denied::Host);
            }
        }
        if let Host::Ip(ip) = t.host {
            self.check_address(ip)?;
        }
        Ok(())
    }

    /// Checks an address a target resolved to.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Denied> {
        if self.networks.is_empty() || self.networks.iter().any(|n| in_network(ip, *n)) {
            Ok(())
        } else {
            Err(Denied::Address)
        }
    }
}

/// Parses `ADDR/LEN` (or a bare address, a /32 or /128).
pub fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((a, l)) => Some((a.parse().ok()?, l.parse().ok()?)),
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let c = Credentials {
            user: "alice".into(),
            pass: "s3cret".into(),
        };
        // base64("alice:s3cret")
        assert!(c.check_basic(Some(b"Basic YWxpY2U6czNjcmV0")));
        assert!(c.check_basic(Some(b"basic YWxpY2U6czNjcmV0")));
        assert!(!c.check_basic(Some(b"Basic YWxpY2U6d3Jvbmc=")));
        assert!(!c.check_basic(Some(b"Bearer x")));
        assert!(!c.check_basic(None));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn target_rules() {
        let r = Rules {
            hosts: vec!["example.com".into(), "*.corp.test".into()],
            networks: vec![parse_network("127.0.0.0/8").unwrap()],
            ports: vec![(443, 443), (8000, 8999)],
        };
        assert_eq!(r.check_target(&"example.com:443".parse().unwrap()), Ok(()));
        assert_eq!(r.check_target(&"a.corp.test:8080".parse().unwrap()), Ok(()));
        assert_eq!(
            r.check_target(&"corp.test:443".parse().unwrap()),
            Err(Denied::Host)
        );
        assert_eq!(
            r.check_target(&"example.com:22".parse().unwrap()),
            Err(Denied::Port)
        );
        assert_eq!(
            r.check_target(&"10.0.0.1:443".parse().unwrap()),
            Err(Denied::Address)
        );
        assert_eq!(r.check_target(&"127.0.0.1:443".parse().unwrap()), Ok(()));
        assert!(Rules::default()
            .check_target(&"anything:1".parse().unwrap())
            .is_ok());
    }
}
