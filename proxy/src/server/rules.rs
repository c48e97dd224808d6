//! Where clients of the proxy may go: target rules.

use std::net::IpAddr;

use burrow_transport::{Host, Target};

use crate::connect_ip::prefix_bounds;

/// Where clients may go. Every kind of rule that is given must pass; an empty list allows
/// everything of its kind, except that the special ranges of [`special_range`] (loopback,
/// link-local, unspecified, multicast, broadcast) are refused unless a network rule covers
/// them.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Host names allowed: `example.com` exactly, or `*.example.com` for subdomains. When
    /// any are given, an IP-literal target passes only if it is listed too (`192.0.2.1`,
    /// `::1` or `[::1]`).
    pub hosts: Vec<String>,
    /// Networks allowed for the addresses targets resolve to, as (address, prefix length).
    pub networks: Vec<(IpAddr, u8)>,
    /// Port ranges allowed (inclusive).
    pub ports: Vec<(u16, u16)>,
}

/// Why a target was refused, as a Proxy-Status error (RFC 9209 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The host name (or IP literal) is not among the host rules (`http_request_denied`).
    Host,
    /// The port is not allowed (`destination_ip_prohibited` is the closest registered type).
    Port,
    /// The address is not in an allowed network (`destination_ip_prohibited`).
    Address,
    /// The address is in a range refused by default (named), and no network rule covers it
    /// (`destination_ip_prohibited`).
    Special(&'static str),
    /// The target is one of the proxy's own listening addresses: a loop
    /// (`destination_ip_prohibited`).
    OwnAddress,
    /// Network rules are given but the target is a name the proxy must not resolve (it
    /// forwards through `--upstream`), so they cannot be checked (`destination_ip_prohibited`).
    Unverifiable,
}

impl Denied {
    /// The Proxy-Status error type.
    pub fn proxy_status(self) -> &'static str {
        match self {
            Denied::Host => "http_request_denied",
            Denied::Port
            | Denied::Address
            | Denied::Special(_)
            | Denied::OwnAddress
            | Denied::Unverifiable => "destination_ip_prohibited",
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Host => f.write_str("host not allowed"),
            Denied::Port => f.write_str("port not allowed"),
            Denied::Address => f.write_str("address not in an allowed network"),
            Denied::Special(range) => write!(f, "{range} address refused by default"),
            Denied::OwnAddress => f.write_str("the proxy's own address"),
            Denied::Unverifiable => {
                f.write_str("network rules cannot judge a name resolved upstream")
            }
        }
    }
}

/// The IPv4 address inside an IPv6 one that carries it: IPv4-compatible (`::a.b.c.d`,
/// deprecated), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16).
fn embedded_v4(a: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = a.segments();
    let o = a.octets();
    let low = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..6] == [0; 6] && !a.is_loopback() && !a.is_unspecified() {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// The range an address belongs to when it is one refused by default: loopback,
/// link-local (including 169.254.169.254, the cloud metadata address), unspecified
/// ("this network", 0.0.0.0/8), multicast, or the limited broadcast address; for an IPv6
/// address carrying an IPv4 one (NAT64, 6to4, IPv4-compatible), that address's range.
/// Private ranges (RFC 1918, unique local) are not special.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    if let IpAddr::V6(a) = ip.to_canonical() {
        if let Some(v4) = embedded_v4(a) {
            if let Some(r) = special_range(IpAddr::V4(v4)) {
                return Some(r);
            }
        }
    }
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_link_local() {
                Some("link-local")
            } else if a.octets()[0] == 0 {
                Some("unspecified")
            } else if a.is_multicast() {
                Some("multicast")
            } else if a.is_broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_unspecified() {
                Some("unspecified")
            } else if a.is_multicast() {
                Some("multicast")
            } else if a.segments()[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

/// Whether `ip` is in the network `(net, len)`; IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is IPv4.
pub(crate) fn in_network(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    let (first, last) = prefix_bounds(net.to_canonical(), len);
    (first..=last).contains(&ip.to_canonical())
}

fn host_rule_matches(rule: &str, host: &Host) -> bool {
    match host {
        Host::Name(n) => match rule.strip_prefix("*.") {
            Some(suffix) => n.len() > suffix.len() + 1 && n.ends_with(&format!(".{suffix}")),
            None => rule.eq_ignore_ascii_case(n),
        },
        // An IP literal passes host rules only when it is listed itself.
        Host::Ip(ip) => {
            matches!(Host::parse(rule), Ok(Host::Ip(r)) if r.to_canonical() == ip.to_canonical())
        }
    }
}

impl Rules {
    /// Rules allowing loopback targets (IPv4 and IPv6) and nothing else: for tests and
    /// set-ups where the proxy only reaches services on its own machine.
    pub fn loopback() -> Rules {
        Rules {
            networks: vec![
                (IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8),
                (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
            ],
            ..Rules::default()
        }
    }

    /// Checks the target as named, before any lookup: its port, the host rules (an IP
    /// literal must be listed among them when any are given), and an IP literal's address.
    pub fn check_target(&self, t: &Target) -> Result<(), Denied> {
        if !self.ports.is_empty() && !self.ports.iter().any(|(a, b)| (*a..=*b).contains(&t.port)) {
            return Err(Denied::Port);
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| host_rule_matches(h, &t.host)) {
            return Err(Denied::Host);
        }
        match &t.host {
            Host::Ip(ip) => self.check_address(*ip)?,
            // RFC 6761 §6.3: localhost names are loopback wherever they are resolved (an
            // upstream proxy on this machine would reach its loopback with them).
            Host::Name(n) if is_localhost(n) => {
                self.check_address(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))?
            }
            Host::Name(_) => {}
        }
        Ok(())
    }

    /// Whether a network rule covers `ip` (an explicit allow).
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| in_network(ip, *n))
    }

    /// Checks an address a target is about to be dialed at: the network rules, and the
    /// special ranges unless a network rule covers the address.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Denied> {
        let covered = self.covers(ip);
        if !self.networks.is_empty() && !covered {
            return Err(Denied::Address);
        }
        match special_range(ip) {
            Some(range) if !covered => Err(Denied::Special(range)),
            _ => Ok(()),
        }
    }
}

/// Whether a name is a localhost name (RFC 6761 §6.3), loopback wherever it is resolved.
pub fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Parses `ADDR/LEN` (or a bare address, a /32 or /128).
pub fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = a
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn host_rules_restrict_ip_literals_too() {
        let r = Rules {
            hosts: vec![
                "example.com".into(),
                "10.1.2.3".into(),
                "[2001:db8::1]".into(),
            ],
            ..Rules::default()
        };
        assert_eq!(r.check_target(&t("127.0.0.1:6379")), Err(Denied::Host));
        assert_eq!(r.check_target(&t("10.9.9.9:80")), Err(Denied::Host));
        assert_eq!(r.check_target(&t("10.1.2.3:80")), Ok(()));
        assert_eq!(r.check_target(&t("[2001:db8::1]:80")), Ok(()));
        // A mapped address is the IPv4 address it maps.
        assert_eq!(r.check_target(&t("[::ffff:10.1.2.3]:80")), Ok(()));
        assert_eq!(r.check_target(&t("example.com:443")), Ok(()));
        // "*.corp" matches subdomains only.
        let r = Rules {
            hosts: vec!["*.corp.test".into()],
            ..Rules::default()
        };
        assert_eq!(r.check_target(&t("a.corp.test:1")), Ok(()));
        assert_eq!(r.check_target(&t("corp.test:1")), Err(Denied::Host));
        assert_eq!(r.check_target(&t("evilcorp.test:1")), Err(Denied::Host));
    }

    #[test]
    fn special_ranges_are_refused_unless_a_network_rule_covers_them() {
        let open = Rules::default();
        for (a, range) in [
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(open.check_address(ip), Err(Denied::Special(range)), "{a}");
        }
        // IPv4 inside IPv6: NAT64, 6to4, IPv4-compatible.
        for a in [
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "::7f00:1",
        ] {
            assert!(
                matches!(
                    open.check_address(a.parse().unwrap()),
                    Err(Denied::Special(_))
                ),
                "{a}"
            );
        }
        assert_eq!(
            open.check_address("64:ff9b::808:808".parse().unwrap()),
            Ok(())
        );
        // localhost names are loopback before any lookup.
        assert_eq!(
            open.check_target(&t("localhost:22")),
            Err(Denied::Special("loopback"))
        );
        assert_eq!(
            open.check_target(&t("a.localhost:22")),
            Err(Denied::Special("loopback"))
        );
        // Private ranges stay allowed.
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "fd00::1",
            "8.8.8.8",
        ] {
            assert_eq!(open.check_address(a.parse().unwrap()), Ok(()), "{a}");
        }
        let lo = Rules::loopback();
        assert_eq!(lo.check_address("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(
            lo.check_address("::ffff:127.0.0.1".parse().unwrap()),
            Ok(())
        );
        assert_eq!(lo.check_address("::1".parse().unwrap()), Ok(()));
        // A network rule that does not cover a special address does not unlock it.
        let ten = Rules {
            networks: vec![parse_network("10.0.0.0/8").unwrap()],
            ..Rules::default()
        };
        assert_eq!(
            ten.check_address("169.254.169.254".parse().unwrap()),
            Err(Denied::Address)
        );
        assert_eq!(
            ten.check_target(&t("[::ffff:169.254.169.254]:80")),
            Err(Denied::Address)
        );
    }

    #[test]
    fn networks_parse_with_bounds() {
        assert_eq!(
            parse_network("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(parse_network("::1"), Some(("::1".parse().unwrap(), 128)));
        assert_eq!(
            parse_network("[::1]/128"),
            Some(("::1".parse().unwrap(), 128))
        );
        assert_eq!(parse_network("10.0.0.0/33"), None);
        assert_eq!(parse_network("x/8"), None);
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
            Err(Denied::Host)
        );
        // Host rules are given: an IP literal must be listed among them.
        assert_eq!(
            r.check_target(&"127.0.0.1:443".parse().unwrap()),
            Err(Denied::Host)
        );
        assert!(Rules::default()
            .check_target(&"anything:1".parse().unwrap())
            .is_ok());
    }
}
