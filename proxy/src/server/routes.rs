//! Per-destination upstream routes (`--route 'PATTERN=HOP,HOP'`): targets matching a
//! pattern go through a named upstream (a chain of proxies) or direct; hooks may choose a
//! route by name too.

use std::net::IpAddr;
use std::sync::Arc;

use burrow_transport::{DatagramConnector, Error, Host, StreamConnector, Target};

use super::rules::{in_network, is_localhost, parse_network};

/// A destination pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every target.
    Any,
    /// `example.com`: that name exactly (case-insensitive).
    Name(String),
    /// `*.example.com`: its subdomains (not the name itself).
    Suffix(String),
    /// `ADDR/LEN` (or one address): IP-literal targets in that network; `localhost`
    /// names count as the loopback address they always are.
    Net(IpAddr, u8),
}

impl Pattern {
    /// Parses `*`, `NAME`, `*.SUFFIX`, `ADDR`, `ADDR/LEN` (IPv6 with or without brackets).
    pub fn parse(s: &str) -> Result<Pattern, Error> {
        let s = s.trim();
        let bad = || Error::invalid_input(format!("bad destination pattern {s:?}"));
        if s == "*" {
            return Ok(Pattern::Any);
        }
        // A bad network (`/` is never in a name) is refused as a bad name below.
        if let Some((ip, len)) = parse_network(s) {
            return Ok(Pattern::Net(ip, len));
        }
        let name = |n: &str| {
            let ok = !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            ok.then(|| n.trim_end_matches('.').to_ascii_lowercase())
        };
        match s.strip_prefix("*.") {
            Some(suffix) => Ok(Pattern::Suffix(name(suffix).ok_or_else(bad)?)),
            None => Ok(Pattern::Name(name(s).ok_or_else(bad)?)),
        }
    }

    /// Whether `t` matches.
    pub fn matches(&self, t: &Target) -> bool {
        match (self, &t.host) {
            (Pattern::Any, _) => true,
            (Pattern::Name(p), Host::Name(n)) => p.eq_ignore_ascii_case(n),
            (Pattern::Suffix(p), Host::Name(n)) => {
                n.len() > p.len() + 1
                    && n.ends_with(p.as_str())
                    && n.as_bytes()[n.len() - p.len() - 1] == b'.'
            }
            (Pattern::Net(net, len), Host::Ip(ip)) => in_network(*ip, (*net, *len)),
            (Pattern::Net(net, len), Host::Name(n)) if is_localhost(n) => {
                in_network(IpAddr::V4([127, 0, 0, 1].into()), (*net, *len))
                    || in_network(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), (*net, *len))
            }
            _ => false,
        }
    }
}

/// A named way to reach targets: direct, or through a chain of proxies.
#[derive(Clone)]
pub struct Upstream {
    /// Its name, in logs and for hooks choosing it (`direct`, or the hops as given, with
    /// credentials left out).
    pub name: String,
    /// Byte streams through it (`None`: direct).
    pub tcp: Option<Arc<dyn StreamConnector>>,
    /// Datagram flows through it (`None`: direct).
    pub udp: Option<Arc<dyn DatagramConnector>>,
}

impl Upstream {
    /// Targets are dialed directly.
    pub fn direct() -> Upstream {
        Upstream {
            name: "direct".into(),
            tcp: None,
            udp: None,
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Upstream").field(&self.name).finish()
    }
}

/// The proxy's routes: named upstreams and the per-destination rules that pick them. A
/// target no rule matches takes the proxy's default route.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// Named upstreams (besides the default route and `direct`).
    pub upstreams: Vec<Upstream>,
    /// Rules, first match wins: a pattern and the upstream's name (`direct` is always
    /// known).
    pub rules: Vec<(Pattern, String)>,
}

impl Routes {
    /// Parses one `PATTERN=HOPS` rule into its pattern and hops (`direct`, or proxy URLs
    /// separated by commas, nearest first).
    pub fn parse_rule(s: &str) -> Result<(Pattern, String), Error> {
        let (p, hops) = s.split_once('=').ok_or_else(|| {
            Error::invalid_input(format!("--route wants PATTERN=HOPS, got {s:?}"))
        })?;
        let hops = hops.trim();
        if hops.is_empty() {
            return Err(Error::invalid_input(format!("--route {p:?} has no hops")));
        }
        Ok((Pattern::parse(p)?, hops.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_names_suffixes_and_networks() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("*").matches(&t("anything.example:1")));
        assert!(p("Example.com").matches(&t("example.com:443")));
        assert!(!p("example.com").matches(&t("www.example.com:443")));
        assert!(p("*.internal").matches(&t("db.internal:5432")));
        assert!(p("*.internal").matches(&t("a.b.internal:1")));
        assert!(!p("*.internal").matches(&t("internal:1")));
        assert!(!p("*.internal").matches(&t("notinternal:1")));
        assert!(p("10.0.0.0/8").matches(&t("10.1.2.3:80")));
        assert!(!p("10.0.0.0/8").matches(&t("11.1.2.3:80")));
        assert!(p("127.0.0.1").matches(&t("localhost:80")));
        assert!(p("::1").matches(&t("[::1]:80")));
        assert!(p("[::1]").matches(&t("[::1]:80")));
        assert!(p("fd00::/8").matches(&t("[fd12::1]:80")));
        assert!(!p("10.0.0.0/8").matches(&t("ten.example:80")));
        for bad in ["", "a b", "10.0.0.0/99", "*.", "x/y"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_parse_pattern_and_hops() {
        let (p, h) = Routes::parse_rule("*.internal=direct").unwrap();
        assert_eq!(
            (p, h.as_str()),
            (Pattern::Suffix("internal".into()), "direct")
        );
        let (_, h) = Routes::parse_rule("*=socks5h://127.0.0.1:9050,http://127.0.0.1:1").unwrap();
        assert_eq!(h, "socks5h://127.0.0.1:9050,http://127.0.0.1:1");
        assert!(Routes::parse_rule("nohops").is_err());
        assert!(Routes::parse_rule("a=").is_err());
    }
}
