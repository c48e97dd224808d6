//! Proxy URLs, one per hop (DESIGN.md): `http://`, `https://`, `h2://`, `h3://`,
//! `socks5://`, `socks5h://`, `socks4a://`, credentials in userinfo.

use std::fmt;

use burrow_transport::{Error, Hop, Target};

use burrow_http_core::credentials::Credentials;

use crate::template::percent_decode;

/// What kind of proxy a hop is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP/1.1 over TCP.
    Http,
    /// TLS to the proxy, ALPN `h2` then `http/1.1`.
    Https,
    /// TLS, HTTP/2 only.
    H2,
    /// HTTP/3 over QUIC.
    H3,
    /// SOCKS5, names resolved by the client.
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
    /// SOCKS4a (names resolved by the proxy; no UDP).
    Socks4a,
}

impl ProxyKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::H2 => "h2",
            ProxyKind::H3 => "h3",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
            ProxyKind::Socks4a => "socks4a",
        }
    }

    /// Whether it is an HTTP proxy (CONNECT), as opposed to SOCKS.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            ProxyKind::Http | ProxyKind::Https | ProxyKind::H2 | ProxyKind::H3
        )
    }

    fn default_port(self) -> u16 {
        match self {
            // curl's default proxy port.
            ProxyKind::Http => 1080,
            ProxyKind::Https | ProxyKind::H2 | ProxyKind::H3 => 443,
            _ => 1080,
        }
    }
}

/// One hop of a route.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The kind of proxy.
    pub kind: ProxyKind,
    /// Where it is.
    pub target: Target,
    /// Credentials for this hop only.
    pub credentials: Option<Credentials>,
    /// This hop's CONNECT-UDP URI template, from the URL's path when it names
    /// `{target_host}` and `{target_port}` (e.g. `h3://p:443/masque?h={target_host}&p={target_port}`).
    pub udp_template: Option<crate::template::UdpTemplate>,
    /// An `http://` hop asked for CONNECT in HTTP/1.0 (curl's `--proxy1.0`).
    pub http10: bool,
    /// TCP through this hop is CONNECT-TCP (draft-ietf-httpbis-connect-tcp) with this
    /// template, rather than classic CONNECT: the URL's `?connect=tcp`. With it, a template
    /// in the URL's path is the CONNECT-TCP one (default:
    /// [`DEFAULT_TCP_TEMPLATE`](crate::template::DEFAULT_TCP_TEMPLATE)).
    pub connect_tcp: Option<crate::template::TcpTemplate>,
    /// TCP and UDP through this hop go over one CONNECT-IP tunnel (RFC 9484) with this
    /// template, carried by a userspace TCP/IP stack: the URL's `?connect=ip`. With it, a
    /// template in the URL's path naming `{target}` and `{ipproto}` is the CONNECT-IP one
    /// (default: [`DEFAULT_IP_TEMPLATE`](burrow_http_core::connect_ip::DEFAULT_IP_TEMPLATE)).
    pub connect_ip: Option<crate::template::IpTemplate>,
}

/// Takes the `connect=` parameter out of a path's query: `(path without it, its value)`.
fn take_connect_param(path: &str) -> (String, Option<String>) {
    let Some((p, query)) = path.split_once('?') else {
        return (path.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("connect=") {
            Some(v) => {
                value = Some(v.to_ascii_lowercase());
                false
            }
            None => true,
        })
        .collect();
    match kept.is_empty() {
        true => (p.to_string(), value),
        false => (format!("{p}?{}", kept.join("&")), value),
    }
}

impl ProxyUrl {
    /// Parses a proxy URL. A missing scheme means `http://`, as curl does.
    pub fn parse(s: &str) -> Result<ProxyUrl, Error> {
        // Never echo the input back: it may hold a password.
        let bad = |why: &str| Error::invalid_input(format!("invalid proxy URL: {why}"));
        let (scheme, rest) = s.split_once("://").unwrap_or(("http", s));
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "h2" => ProxyKind::H2,
            "h3" => ProxyKind::H3,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            "socks4a" => ProxyKind::Socks4a,
            _ => return Err(bad("unknown scheme")),
        };
        // Userinfo runs to the last '@': a password may hold '#', '/' or '?' unencoded
        // (a path with '@' must encode it as %40).
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (path, connect) = take_connect_param(&rest[hostport.len()..]);
        let (tcp, ip) = match connect.as_deref() {
            None | Some("classic") => (false, false),
            Some("tcp") if kind.is_http() => (true, false),
            Some("ip") if kind.is_http() => (false, true),
            Some(c @ ("tcp" | "ip")) => {
                return Err(bad(&format!("connect={c} only applies to HTTP proxies")))
            }
            Some(_) => return Err(bad("connect= takes tcp, ip or classic")),
        };
        let connect_ip = match (ip, path.contains("{target}")) {
            (true, true) => Some(
                crate::template::IpTemplate::parse(&path)
                    .map_err(|_| bad("invalid CONNECT-IP URI template"))?,
            ),
            (true, false) => Some(crate::template::IpTemplate::default()),
            (false, _) => None,
        };
        let template = if path.contains("{target_host}") && !ip {
            if !kind.is_http() {
                return Err(bad("a URI template only applies to HTTP proxies"));
            }
            Some(
                crate::template::UdpTemplate::parse(&path)
                    .map_err(|_| bad("invalid MASQUE URI template"))?,
            )
        } else {
            None
        };
        let (udp_template, connect_tcp) = match tcp {
            true => (
                None,
                Some(template.unwrap_or_else(crate::template::TcpTemplate::default_tcp)),
            ),
            false => (template, None),
        };
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some(Credentials {
                    user: percent_decode(user).ok_or_else(|| bad("bad user name encoding"))?,
                    pass: percent_decode(pass).ok_or_else(|| bad("bad password encoding"))?,
                })
            }
            None => None,
        };
        if hostport.is_empty() {
            return Err(bad("no host"));
        }
        let target = Target::parse_with_default(hostport, kind.default_port())
            .map_err(|_| bad("invalid host or port"))?;
        Ok(ProxyUrl {
            kind,
            target,
            credentials,
            udp_template,
            http10: false,
            connect_tcp,
            connect_ip,
        })
    }

    /// A label for logs and errors, without credentials: `h2 proxy proxy.example:443`.
    pub fn label(&self) -> String {
        format!("{} proxy {}", self.kind.scheme(), self.target)
    }

    /// This proxy as hop `index` of a route, for errors.
    pub fn hop(&self, index: usize) -> Hop {
        Hop {
            index: Some(index),
            label: self.label(),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ProxyUrl {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(c) = &self.credentials {
            write!(f, "{}:***@", c.user)?;
        }
        write!(f, "{}", self.target)?;
        if self.connect_tcp.is_some() {
            f.write_str("?connect=tcp")?;
        }
        if self.connect_ip.is_some() {
            f.write_str("?connect=ip")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme_with_defaults() {
        let p = ProxyUrl::parse("h3://proxy.example").unwrap();
        assert_eq!(
            (p.kind, p.target.to_string()),
            (ProxyKind::H3, "proxy.example:443".into())
        );
        let p = ProxyUrl::parse("127.0.0.1:3128").unwrap();
        assert_eq!((p.kind, p.target.port), (ProxyKind::Http, 3128));
        let p = ProxyUrl::parse("socks5h://[::1]").unwrap();
        assert_eq!(
            (p.kind, p.target.to_string()),
            (ProxyKind::Socks5h, "[::1]:1080".into())
        );
        assert_eq!(
            ProxyUrl::parse("socks4a://h:1").unwrap().kind,
            ProxyKind::Socks4a
        );
        assert!(ProxyUrl::parse("ftp://h").is_err());
    }

    #[test]
    fn per_hop_udp_template_from_the_path() {
        let p = ProxyUrl::parse("h3://p.example/masque?h={target_host}&p={target_port}").unwrap();
        let t = p.udp_template.unwrap();
        assert_eq!(
            t.expand(&"192.0.2.1:53".parse().unwrap()),
            "/masque?h=192.0.2.1&p=53"
        );
        assert!(ProxyUrl::parse("h2://p.example/")
            .unwrap()
            .udp_template
            .is_none());
        assert!(ProxyUrl::parse("socks5://p/{target_host}/{target_port}").is_err());
    }

    #[test]
    fn connect_tcp_from_the_query() {
        let p = ProxyUrl::parse("h3://p.example:443?connect=tcp").unwrap();
        let t = p.connect_tcp.clone().unwrap();
        let target = "192.0.2.1:22".parse().unwrap();
        assert_eq!(t.expand(&target), "/.well-known/masque/tcp/192.0.2.1/22/");
        assert_eq!(p.udp_template, None);
        assert_eq!(p.to_string(), "h3://p.example:443?connect=tcp");
        // A template in the path is then the CONNECT-TCP one; the parameter may come
        // anywhere in the query and is not part of the template.
        let p = ProxyUrl::parse("https://u:pw@p/t?h={target_host}&connect=TCP&p={target_port}")
            .unwrap();
        let t = p.connect_tcp.unwrap();
        assert_eq!(t.expand(&target), "/t?h=192.0.2.1&p=22");
        assert_eq!(p.credentials.unwrap().pass, "pw");
        // classic is the default; the parameter is refused where it cannot apply.
        let p = ProxyUrl::parse("http://p:3128/?connect=classic").unwrap();
        assert_eq!((p.connect_tcp, p.udp_template), (None, None));
        for bad in [
            "socks5://p?connect=tcp",
            "h2://p?connect=udp",
            "socks5://p?connect=ip",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_ip_from_the_query() {
        use burrow_transport::IpScope;
        let p = ProxyUrl::parse("h3://p.example:443?connect=ip").unwrap();
        let t = p.connect_ip.clone().unwrap();
        assert_eq!(t.expand(&IpScope::default()), "/.well-known/masque/ip/*/*/");
        let scope = IpScope {
            target: Some(("2001:db8::".parse().unwrap(), 32)),
            protocol: Some(17),
        };
        assert_eq!(
            t.expand(&scope),
            "/.well-known/masque/ip/2001%3Adb8%3A%3A%2F32/17/"
        );
        assert_eq!(t.matches(&t.expand(&scope)), Some(scope));
        assert_eq!(p.to_string(), "h3://p.example:443?connect=ip");
        assert_eq!((p.connect_tcp, p.udp_template), (None, None));
        // A template in the path is the CONNECT-IP one, the variables in either order.
        let p = ProxyUrl::parse("h2://p/vpn?proto={ipproto}&to={target}&connect=ip").unwrap();
        let t = p.connect_ip.unwrap();
        let one = IpScope {
            target: Some(("192.0.2.7".parse().unwrap(), 32)),
            protocol: None,
        };
        assert_eq!(t.expand(&one), "/vpn?proto=*&to=192.0.2.7");
        assert_eq!(t.matches("/vpn?proto=*&to=192.0.2.7"), Some(one));
        // Host bits set, a bad protocol, or a path that does not fit: no match.
        for bad in [
            "/vpn?proto=*&to=192.0.2.7%2F24",
            "/vpn?proto=300&to=*",
            "/vpn?to=*",
        ] {
            assert_eq!(t.matches(bad), None, "{bad}");
        }
        assert!(ProxyUrl::parse("h2://p/vpn/{target}?connect=ip").is_err());
        assert!(ProxyUrl::parse("https://p?connect=IP")
            .unwrap()
            .connect_ip
            .is_some());
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = ProxyUrl::parse("https://al%40ice:p%3Ass@proxy:8443/").unwrap();
        let c = p.credentials.clone().unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("al@ice", "p:ss"));
        assert_eq!(p.to_string(), "https://al@ice:***@proxy:8443");
        assert!(!format!("{p:?}").contains("p:ss"));
        assert_eq!(p.label(), "https proxy proxy:8443");
        let e = ProxyUrl::parse("http://u:secret@").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        // An unencoded '#' (or '/', '?') in the password is still the password.
        let p = ProxyUrl::parse("http://user:pa#ss/w?rd@proxy.test:3128").unwrap();
        assert_eq!(p.credentials.unwrap().pass, "pa#ss/w?rd");
        assert_eq!(p.target.to_string(), "proxy.test:3128");
        // No error ever repeats any part of the URL.
        for bad in [
            "http://user:hunter2#x@proxy:notaport",
            "http://user:hunter2@pro xy:1",
            "http://user:hunter2@[::1:1",
            "gopher://user:hunter2@proxy:1",
            "socks5://user:hunter2@p/{target_host}/{target_port}",
            "http://user:hunter2%zz@proxy:1",
        ] {
            let e = ProxyUrl::parse(bad).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
        }
    }
}
