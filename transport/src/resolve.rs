//! Name resolution, pluggable: the [`Resolve`] trait, the system resolver (the default),
//! and static overrides (curl's `--resolve`).
//!
//! Only direct connectors and the proxy server resolve names; tunnels hand names to the
//! proxy, so a route through proxies makes no local lookup at all.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Error, Host, Result, Target};

/// Default deadline for one name lookup.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns a host name into socket addresses.
///
/// Implementations return at least one address or an error: of kind
/// [`ErrorKind::Resolve`](crate::ErrorKind::Resolve) when the name has no address, [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the
/// lookup took too long; callers never see an empty list as success.
#[async_trait]
pub trait Resolve: Send + Sync + 'static {
    /// Resolves `name` (lower-case, no trailing dot) for `port`.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>>;
}

/// A shared resolver.
pub type SharedResolver = Arc<dyn Resolve>;

/// The operating system's resolver (`getaddrinfo`), run on tokio's blocking pool, with a
/// deadline of [`DEFAULT_RESOLVE_TIMEOUT`].
#[derive(Clone, Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>> {
        let lookup = async {
            tokio::net::lookup_host((name, port))
                .await
                .map(Iterator::collect)
        };
        within_deadline(name, lookup).await
    }
}

/// Runs a lookup under [`DEFAULT_RESOLVE_TIMEOUT`] and turns its failure, its deadline and
/// an empty answer into [`ErrorKind::Resolve`](crate::ErrorKind::Resolve) errors naming `name`.
async fn within_deadline<E: Into<crate::BoxError>>(
    name: &str,
    lookup: impl std::future::Future<Output = std::result::Result<Vec<SocketAddr>, E>>,
) -> Result<Vec<SocketAddr>> {
    let addrs = match tokio::time::timeout(DEFAULT_RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(Error::resolve(format!("could not resolve {name}")).with_source(e))
        }
        Err(_) => {
            return Err(Error::resolve(format!(
                "resolving {name} took longer than {DEFAULT_RESOLVE_TIMEOUT:?}"
            )))
        }
    };
    if addrs.is_empty() {
        return Err(Error::resolve(format!("{name} has no addresses")));
    }
    Ok(addrs)
}

/// Resolution by hickory-resolver (feature `hickory`): DNS spoken from Rust, with its own
/// cache, instead of the system's `getaddrinfo` on the blocking pool.
#[cfg(feature = "hickory")]
#[derive(Clone)]
pub struct HickoryResolver(Arc<hickory_resolver::TokioResolver>);

#[cfg(feature = "hickory")]
impl HickoryResolver {
    /// From the system's configuration (`/etc/resolv.conf` and the hosts file on Unix).
    pub fn from_system_conf() -> Result<Self> {
        let b = hickory_resolver::TokioResolver::builder_tokio().map_err(|e| {
            Error::local(crate::ErrorKind::Resolve, "the system's DNS configuration").with_source(e)
        })?;
        Ok(HickoryResolver(Arc::new(b.build())))
    }

    /// Asking these name servers over UDP (and TCP when an answer is truncated).
    pub fn with_servers(servers: &[SocketAddr]) -> Self {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig};
        use hickory_resolver::proto::xfer::Protocol;
        let mut cfg = ResolverConfig::new();
        for s in servers {
            cfg.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
            cfg.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
        }
        let r = hickory_resolver::Resolver::builder_with_config(
            cfg,
            hickory_resolver::name_server::TokioConnectionProvider::default(),
        )
        .build();
        HickoryResolver(Arc::new(r))
    }

    /// A resolver built with hickory's own API.
    pub fn new(resolver: hickory_resolver::TokioResolver) -> Self {
        HickoryResolver(Arc::new(resolver))
    }
}

#[cfg(feature = "hickory")]
impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver").finish_non_exhaustive()
    }
}

#[cfg(feature = "hickory")]
#[async_trait]
impl Resolve for HickoryResolver {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>> {
        // A trailing dot: the name is absolute, no search domains are tried.
        let lookup = async {
            let ips = self.0.lookup_ip(format!("{name}.")).await?;
            Ok::<_, hickory_resolver::ResolveError>(
                ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            )
        };
        within_deadline(name, lookup).await
    }
}

/// Fixed answers for some names (curl's `--resolve HOST:PORT:ADDR`), everything else from
/// an inner resolver. An entry without a port answers for every port.
#[derive(Clone)]
pub struct StaticResolver {
    entries: HashMap<(String, Option<u16>), Vec<IpAddr>>,
    fallback: SharedResolver,
}

impl fmt::Debug for StaticResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticResolver")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl StaticResolver {
    /// Overrides in front of `fallback`.
    pub fn new(fallback: SharedResolver) -> Self {
        StaticResolver {
            entries: HashMap::new(),
            fallback,
        }
    }

    /// Answers `name` (for `port`, or any port with `None`) with `addrs`.
    pub fn insert(&mut self, name: &str, port: Option<u16>, addrs: Vec<IpAddr>) -> &mut Self {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.entries.insert((name, port), addrs);
        self
    }

    /// Parses curl's `HOST:PORT:ADDR[,ADDR]...` (`*` as the port: any port; IPv6 in
    /// brackets) and adds it.
    pub fn insert_curl(&mut self, spec: &str) -> Result<&mut Self> {
        let bad = || Error::invalid_input(format!("--resolve wants HOST:PORT:ADDR, got {spec:?}"));
        let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
        let (port, addrs) = rest.split_once(':').ok_or_else(bad)?;
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| bad())?),
        };
        let addrs = addrs
            .split(',')
            .map(|a| {
                let a = a.trim().trim_start_matches('[').trim_end_matches(']');
                a.parse::<IpAddr>().map_err(|_| bad())
            })
            .collect::<Result<Vec<_>>>()?;
        if host.is_empty() || addrs.is_empty() {
            return Err(bad());
        }
        Ok(self.insert(host, port, addrs))
    }
}

#[async_trait]
impl Resolve for StaticResolver {
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>> {
        let key = name.to_ascii_lowercase();
        let hit = self
            .entries
            .get(&(key.clone(), Some(port)))
            .or_else(|| self.entries.get(&(key, None)));
        match hit {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => self.fallback.resolve(name, port).await,
        }
    }
}

/// Resolves a target with `resolver`; an IP literal is returned as it is, without a lookup.
pub async fn resolve_target(resolver: &dyn Resolve, target: &Target) -> Result<Vec<SocketAddr>> {
    match &target.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port)]),
        Host::Name(name) => {
            let addrs = resolver.resolve(name, target.port).await?;
            if addrs.is_empty() {
                return Err(Error::resolve(format!("{name} has no addresses")));
            }
            Ok(addrs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A resolver that fails every lookup.
    struct Failing;

    #[async_trait]
    impl Resolve for Failing {
        async fn resolve(&self, name: &str, _port: u16) -> Result<Vec<SocketAddr>> {
            Err(Error::resolve(format!("no {name}")))
        }
    }

    #[tokio::test]
    async fn static_overrides_win_and_the_rest_falls_through() {
        let mut r = StaticResolver::new(Arc::new(Failing));
        r.insert_curl("Example.com:443:192.0.2.1,[2001:db8::1]")
            .unwrap()
            .insert_curl("any.test:*:198.51.100.7")
            .unwrap();
        let a = r.resolve("example.com", 443).await.unwrap();
        assert_eq!(
            a,
            vec![
                "192.0.2.1:443".parse().unwrap(),
                "[2001:db8::1]:443".parse().unwrap()
            ]
        );
        // Another port of a port-specific entry is not overridden.
        let e = r.resolve("example.com", 80).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Resolve);
        assert_eq!(
            r.resolve("any.test", 8080).await.unwrap(),
            vec!["198.51.100.7:8080".parse().unwrap()]
        );
        for bad in [
            "nocolon",
            "h:p:1.2.3.4",
            "h:80:",
            "h:80:notanip",
            ":80:1.2.3.4",
        ] {
            assert!(r.insert_curl(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn ip_literals_are_not_looked_up() {
        let t: Target = "[::1]:9".parse().unwrap();
        let a = resolve_target(&Failing, &t).await.unwrap();
        assert_eq!(a, vec!["[::1]:9".parse().unwrap()]);
        let t: Target = "name.test:9".parse().unwrap();
        assert!(resolve_target(&Failing, &t).await.is_err());
    }

    #[tokio::test]
    async fn system_resolver_finds_localhost() {
        let a = SystemResolver.resolve("localhost", 80).await.unwrap();
        assert!(a.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    }
}
