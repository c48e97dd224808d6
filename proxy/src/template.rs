//! MASQUE URI templates (RFC 9298 §3 for CONNECT-UDP, draft-ietf-httpbis-connect-tcp for
//! CONNECT-TCP): expanding `{target_host}` and `{target_port}` on the client, matching a
//! request path on the proxy.

use burrow_transport::{Error, Host, Target};

pub use burrow_http_core::connect_tcp::DEFAULT_TCP_TEMPLATE;

/// The default CONNECT-UDP template (RFC 9298 §3).
pub const DEFAULT_UDP_TEMPLATE: &str = "/.well-known/masque/udp/{target_host}/{target_port}/";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(String),
    Host,
    Port,
}

/// A parsed URI template with the two MASQUE variables, `{target_host}` and
/// `{target_port}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpTemplate {
    raw: String,
    tokens: Vec<Token>,
}

impl Default for UdpTemplate {
    fn default() -> Self {
        UdpTemplate::parse(DEFAULT_UDP_TEMPLATE).unwrap_or_else(|_| UdpTemplate {
            raw: String::new(),
            tokens: Vec::new(),
        })
    }
}

/// The same template type serves CONNECT-TCP.
pub type TcpTemplate = UdpTemplate;

impl UdpTemplate {
    /// The default CONNECT-TCP template, [`DEFAULT_TCP_TEMPLATE`].
    pub fn default_tcp() -> UdpTemplate {
        UdpTemplate::parse(DEFAULT_TCP_TEMPLATE).unwrap_or_default()
    }

    /// Parses a template: a path (optionally with a query) naming both variables once.
    pub fn parse(s: &str) -> Result<UdpTemplate, Error> {
        let bad = |why: &str| Error::invalid_input(format!("URI template {s:?}: {why}"));
        if !s.starts_with('/') {
            return Err(bad("must start with /"));
        }
        let mut tokens = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| bad("unclosed {"))?;
                    tokens.push(match &rest[1..end] {
                        "target_host" => Token::Host,
                        "target_port" => Token::Port,
                        other => return Err(bad(&format!("unknown variable {other}"))),
                    });
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    tokens.push(Token::Lit(rest[..i].to_string()));
                    rest = &rest[i..];
                }
                None => {
                    tokens.push(Token::Lit(rest.to_string()));
                    rest = "";
                }
            }
        }
        let count = |t: &Token| tokens.iter().filter(|x| *x == t).count();
        if count(&Token::Host) != 1 || count(&Token::Port) != 1 {
            return Err(bad("needs {target_host} and {target_port} once each"));
        }
        if tokens
            .windows(2)
            .any(|w| !matches!(w[0], Token::Lit(_)) && !matches!(w[1], Token::Lit(_)))
        {
            return Err(bad("variables must be separated by literal text"));
        }
        Ok(UdpTemplate {
            raw: s.to_string(),
            tokens,
        })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Expands for `target` (RFC 6570 simple expansion: IPv6 colons percent-encoded).
    pub fn expand(&self, target: &Target) -> String {
        let host = match &target.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        };
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Lit(l) => out.push_str(l),
                Token::Host => out.push_str(&encode(&host)),
                Token::Port => out.push_str(&target.port.to_string()),
            }
        }
        out
    }

    /// Matches a request path (and query) against the template, returning the target.
    pub fn matches(&self, path: &str) -> Option<Target> {
        let mut rest = path;
        let mut host = None;
        let mut port = None;
        for (i, t) in self.tokens.iter().enumerate() {
            match t {
                Token::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                var => {
                    let end = match self.tokens.get(i + 1) {
                        Some(Token::Lit(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = percent_decode(&rest[..end])?;
                    rest = &rest[end..];
                    match var {
                        Token::Host => host = Some(value),
                        _ => port = Some(value.parse::<u16>().ok().filter(|p| *p != 0)?),
                    }
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Target::new(Host::parse(&host?).ok()?, port?))
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a bad escape or text that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The CONNECT-IP template (RFC 9484 §3) with its two variables, `{target}` (`*`, an
/// address, or a prefix as `address%2Flength`) and `{ipproto}` (`*` or a protocol number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpTemplate {
    raw: String,
    /// The literal text before, between and after the two variables, and whether
    /// `{target}` comes first.
    parts: [String; 3],
    target_first: bool,
}

impl Default for IpTemplate {
    fn default() -> Self {
        IpTemplate::parse(burrow_http_core::connect_ip::DEFAULT_IP_TEMPLATE).unwrap_or(IpTemplate {
            raw: String::new(),
            parts: Default::default(),
            target_first: true,
        })
    }
}

impl IpTemplate {
    /// Parses a template: a path (optionally with a query) naming both variables once,
    /// separated by literal text.
    pub fn parse(s: &str) -> Result<IpTemplate, Error> {
        let bad = |why: &str| Error::invalid_input(format!("URI template {s:?}: {why}"));
        if !s.starts_with('/') {
            return Err(bad("must start with /"));
        }
        let (t, p) = (s.find("{target}"), s.find("{ipproto}"));
        let (Some(t), Some(p)) = (t, p) else {
            return Err(bad("needs {target} and {ipproto}"));
        };
        if s.matches("{target}").count() != 1 || s.matches("{ipproto}").count() != 1 {
            return Err(bad("needs {target} and {ipproto} once each"));
        }
        let target_first = t < p;
        let (a, alen, b, blen) = match target_first {
            true => (t, 8, p, 9),
            false => (p, 9, t, 8),
        };
        let parts = [
            s[..a].to_string(),
            s[a + alen..b].to_string(),
            s[b + blen..].to_string(),
        ];
        if parts[1].is_empty() {
            return Err(bad("variables must be separated by literal text"));
        }
        if [&parts[0], &parts[1], &parts[2]]
            .iter()
            .any(|l| l.contains('{') || l.contains('}'))
        {
            return Err(bad("unknown variable"));
        }
        Ok(IpTemplate {
            raw: s.to_string(),
            parts,
            target_first,
        })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Expands for `scope`.
    pub fn expand(&self, scope: &burrow_transport::IpScope) -> String {
        let target = match scope.target {
            None => "*".to_string(),
            Some((a, len)) if len == if a.is_ipv6() { 128 } else { 32 } => encode(&a.to_string()),
            Some((a, len)) => format!("{}%2F{len}", encode(&a.to_string())),
        };
        let proto = scope.protocol.map_or("*".to_string(), |p| p.to_string());
        let (x, y) = match self.target_first {
            true => (target, proto),
            false => (proto, target),
        };
        format!("{}{x}{}{y}{}", self.parts[0], self.parts[1], self.parts[2])
    }

    /// Matches a request path against the template, returning the scope asked for;
    /// `None` when it does not match or a value is malformed.
    pub fn matches(&self, path: &str) -> Option<burrow_transport::IpScope> {
        let rest = path.strip_prefix(self.parts[0].as_str())?;
        let rest = rest.strip_suffix(self.parts[2].as_str())?;
        let (x, y) = rest.split_once(self.parts[1].as_str())?;
        let (target, proto) = match self.target_first {
            true => (x, y),
            false => (y, x),
        };
        let target = match percent_decode(target)?.as_str() {
            "*" => None,
            t => {
                let (a, len) = match t.split_once('/') {
                    Some((a, l)) => (a.parse::<std::net::IpAddr>().ok()?, l.parse::<u8>().ok()?),
                    None => {
                        let a = t.parse::<std::net::IpAddr>().ok()?;
                        (a, if a.is_ipv6() { 128 } else { 32 })
                    }
                };
                burrow_http_core::connect_ip::Prefix::new(a, len)?;
                Some((a, len))
            }
        };
        let protocol = match proto {
            "*" => None,
            p => Some(p.parse::<u8>().ok()?),
        };
        Some(burrow_transport::IpScope { target, protocol })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_round_trips_names_v4_v6() {
        let t = UdpTemplate::default();
        for target in ["example.com:443", "192.0.2.1:53", "[2001:db8::42]:8443"] {
            let target: Target = target.parse().unwrap();
            let path = t.expand(&target);
            assert_eq!(t.matches(&path), Some(target.clone()), "{path}");
        }
        let v6: Target = "[2001:db8::42]:8443".parse().unwrap();
        assert_eq!(
            t.expand(&v6),
            "/.well-known/masque/udp/2001%3Adb8%3A%3A42/8443/"
        );
    }

    #[test]
    fn default_tcp_template() {
        let t = UdpTemplate::default_tcp();
        let v6: Target = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(
            t.expand(&v6),
            "/.well-known/masque/tcp/2001%3Adb8%3A%3A1/443/"
        );
        assert_eq!(t.matches(&t.expand(&v6)), Some(v6));
        assert_eq!(t.matches("/.well-known/masque/udp/h/1/"), None);
    }

    #[test]
    fn custom_query_template() {
        let t = UdpTemplate::parse("/masque?h={target_host}&p={target_port}").unwrap();
        let target: Target = "dns.example:53".parse().unwrap();
        assert_eq!(t.expand(&target), "/masque?h=dns.example&p=53");
        assert_eq!(t.matches("/masque?h=dns.example&p=53"), Some(target));
        assert_eq!(t.matches("/masque?h=dns.example&p=0"), None);
        assert_eq!(t.matches("/other"), None);
    }

    #[test]
    fn bad_templates() {
        for bad in [
            "masque/{target_host}/{target_port}",
            "/{target_host}{target_port}",
            "/{target_host}/",
            "/{x}/{target_host}/{target_port}",
        ] {
            assert!(UdpTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
