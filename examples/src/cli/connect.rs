//! Name resolution and sockets as the options say: `--resolve`, `-4`/`-6`,
//! `--connect-to`, `--unix-socket`, `--interface`, `--local-port`, keepalive.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{
    Connected, Error, ErrorKind, Host, Resolve, SharedResolver, StreamConnector, StreamInfo,
    Target, TcpConnector,
};

use super::exit::{self, Exit};
use super::Args;

/// Keeps the addresses of one family (`-4`, `-6`).
struct Family {
    inner: SharedResolver,
    v4: bool,
}

#[async_trait]
impl Resolve for Family {
    async fn resolve(&self, name: &str, port: u16) -> burrow_transport::Result<Vec<SocketAddr>> {
        let all = self.inner.resolve(name, port).await?;
        let kept: Vec<SocketAddr> = all.into_iter().filter(|a| a.is_ipv4() == self.v4).collect();
        if kept.is_empty() {
            return Err(Error::resolve(format!(
                "{name} has no IPv{} address",
                if self.v4 { 4 } else { 6 }
            )));
        }
        Ok(kept)
    }
}

/// The resolver: `base` (the system's, or DoH), under `--resolve` entries, filtered by
/// `-4`/`-6`.
pub fn resolver(args: &Args, base: SharedResolver) -> Result<SharedResolver, Exit> {
    let mut r = base;
    if !args.resolve.is_empty() {
        let mut s = burrow_transport::StaticResolver::new(r);
        for spec in &args.resolve {
            s.insert_curl(spec)
                .map_err(|e| Exit::new(exit::FAILED_INIT, e.to_string()))?;
        }
        r = Arc::new(s);
    }
    if args.ipv4 || args.ipv6 {
        r = Arc::new(Family {
            inner: r,
            v4: args.ipv4,
        });
    }
    Ok(r)
}

/// The TCP settings: local address and ports, keepalive.
pub fn tcp(args: &Args, mut b: burrow::ClientBuilder) -> Result<burrow::ClientBuilder, Exit> {
    let init = |m: String| Exit::new(exit::FAILED_INIT, m);
    if let Some(i) = &args.interface {
        // curl's forms: `if!NAME` an interface, `host!ADDR` an address, else either.
        b = match (i.strip_prefix("if!"), i.strip_prefix("host!")) {
            (Some(name), _) => b.interface(name),
            (_, Some(addr)) => b.local_address(Some(addr.parse().map_err(|_| {
                init(format!(
                    "--interface {i:?}: host names are not supported, only addresses"
                ))
            })?)),
            _ => match i.parse::<IpAddr>() {
                Ok(ip) => b.local_address(Some(ip)),
                Err(_) => b.interface(i),
            },
        };
    }
    if let Some(p) = &args.local_port {
        let bad = || init(format!("bad --local-port {p:?}"));
        let (a, z) = match p.split_once('-') {
            Some((a, z)) => (a.parse().map_err(|_| bad())?, z.parse().map_err(|_| bad())?),
            None => {
                let n = p.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if a > z || a == 0 {
            return Err(bad());
        }
        b = b.local_ports(a..=z);
    }
    if args.no_keepalive {
        b = b.tcp_keepalive(None);
    } else if let Some(s) = args.keepalive_time {
        b = b.tcp_keepalive(Some(std::time::Duration::from_secs(s.max(1))));
    }
    // TCP_NODELAY is on by default, as in curl since 7.50.2: --tcp-nodelay asks for it.
    Ok(b.tcp_nodelay(true))
}

/// One `--connect-to` rule: `HOST1:PORT1:HOST2:PORT2`, empty parts match or keep anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    from_host: Option<String>,
    from_port: Option<u16>,
    to_host: Option<String>,
    to_port: Option<u16>,
}

impl ConnectTo {
    /// Parses a rule.
    pub fn parse(spec: &str) -> Result<ConnectTo, Exit> {
        let bad = || Exit::new(exit::FAILED_INIT, format!("bad --connect-to {spec:?}"));
        // Split on colons outside brackets (IPv6 literals).
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut depth = 0;
        for c in spec.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ':' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        let [h1, p1, h2, p2] = &parts[..] else {
            return Err(bad());
        };
        let host =
            |h: &str| (!h.is_empty()).then(|| h.trim_matches(['[', ']']).to_ascii_lowercase());
        let port = |p: &str| -> Result<Option<u16>, Exit> {
            if p.is_empty() {
                Ok(None)
            } else {
                p.parse().map(Some).map_err(|_| bad())
            }
        };
        Ok(ConnectTo {
            from_host: host(h1),
            from_port: port(p1)?,
            to_host: host(h2),
            to_port: port(p2)?,
        })
    }

    /// Where to connect for `t`, if this rule applies.
    fn apply(&self, t: &Target) -> Option<Target> {
        let host = t.host_str().trim_matches(['[', ']']).to_ascii_lowercase();
        if self.from_host.as_ref().is_some_and(|h| *h != host)
            || self.from_port.is_some_and(|p| p != t.port)
        {
            return None;
        }
        let h = self.to_host.clone().unwrap_or(host);
        let p = self.to_port.unwrap_or(t.port);
        Some(Target::new(Host::parse(&h).ok()?, p))
    }
}

/// TCP with `--connect-to` rules: the first rule that matches picks the address; TLS and
/// `Host` still name the URL's host, as in curl.
struct Redirected {
    rules: Vec<ConnectTo>,
    tcp: TcpConnector,
}

#[async_trait]
impl StreamConnector for Redirected {
    async fn connect(&self, target: &Target) -> burrow_transport::Result<Connected> {
        let to = self.rules.iter().find_map(|r| r.apply(target));
        self.tcp.connect(to.as_ref().unwrap_or(target)).await
    }

    fn describe(&self) -> String {
        "tcp (connect-to)".into()
    }
}

/// Every connection through one Unix domain socket (`--unix-socket`).
struct UnixSocket(std::path::PathBuf);

#[async_trait]
impl StreamConnector for UnixSocket {
    async fn connect(&self, _target: &Target) -> burrow_transport::Result<Connected> {
        let s = tokio::net::UnixStream::connect(&self.0)
            .await
            .map_err(|e| {
                Error::peer(
                    ErrorKind::Connect,
                    format!("could not connect to {}", self.0.display()),
                )
                .with_source(e)
            })?;
        let now = Some(std::time::Instant::now());
        Ok(Connected {
            stream: Box::new(s),
            info: StreamInfo {
                layers: vec![format!("unix {}", self.0.display())],
                timings: burrow_transport::ConnectTimings {
                    started: now,
                    connected: now,
                    routed: now,
                    ..Default::default()
                },
                ..StreamInfo::default()
            },
        })
    }

    fn describe(&self) -> String {
        format!("unix {}", self.0.display())
    }
}

/// The transport under every route, when the options replace direct TCP.
pub fn transport(
    args: &Args,
    b: &burrow::ClientBuilder,
    resolver: &SharedResolver,
) -> Result<Option<Arc<dyn StreamConnector>>, Exit> {
    if let Some(p) = &args.unix_socket {
        return Ok(Some(Arc::new(UnixSocket(p.clone()))));
    }
    if args.connect_to.is_empty() {
        return Ok(None);
    }
    let rules = args
        .connect_to
        .iter()
        .map(|s| ConnectTo::parse(s))
        .collect::<Result<_, _>>()?;
    let tcp = TcpConnector::new(b.tcp_config().clone()).with_resolver(resolver.clone());
    Ok(Some(Arc::new(Redirected { rules, tcp })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_rules_match_and_rewrite() {
        let r = ConnectTo::parse("example.com:443:127.0.0.1:8443").unwrap();
        let t: Target = "example.com:443".parse().unwrap();
        assert_eq!(r.apply(&t).unwrap().to_string(), "127.0.0.1:8443");
        assert!(r.apply(&"example.com:80".parse().unwrap()).is_none());
        let any = ConnectTo::parse("::[::1]:").unwrap();
        assert_eq!(any.apply(&t).unwrap().to_string(), "[::1]:443");
        let port_only = ConnectTo::parse(":80::8080").unwrap();
        assert_eq!(
            port_only
                .apply(&"h:80".parse().unwrap())
                .unwrap()
                .to_string(),
            "h:8080"
        );
        assert!(ConnectTo::parse("a:b:c").is_err());
        assert!(ConnectTo::parse("a:x:c:1").is_err());
    }
}
