//! A hop through a SOCKS5 or SOCKS4a proxy.

use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::driver;
use burrow_transport::{Connected, Error, Host, Prefixed, Result, StreamConnector, Target};

use super::url::{ProxyKind, ProxyUrl};
use super::RouteOptions;
use crate::socks::client::{Dialect, Outcome, SocksClient};
use crate::socks::wire::Command;

/// One SOCKS hop. `socks5` resolves names here (the client's resolver), `socks5h` and
/// `socks4a` hand them to the proxy.
pub struct SocksHop {
    url: ProxyUrl,
    index: usize,
    lower: Arc<dyn StreamConnector>,
    lower_udp: Option<Arc<dyn burrow_transport::DatagramConnector>>,
    timeout: std::time::Duration,
    resolver: burrow_transport::SharedResolver,
}

impl SocksHop {
    /// A hop to `url` (a SOCKS kind), `index` in the route, reached through `lower`; it
    /// carries UDP (SOCKS5 UDP ASSOCIATE) when given `lower_udp`, the way to the proxy's
    /// relay. The negotiation and its reply get the tunnel deadline of `options`;
    /// `socks5://` targets are resolved with its resolver (default: the system's).
    pub fn new(
        url: ProxyUrl,
        index: usize,
        lower: Arc<dyn StreamConnector>,
        lower_udp: Option<Arc<dyn burrow_transport::DatagramConnector>>,
        options: &RouteOptions,
    ) -> Self {
        let resolver = options.resolver.clone();
        SocksHop {
            url,
            index,
            lower,
            lower_udp,
            timeout: options.tunnel_timeout,
            resolver: resolver.unwrap_or_else(|| Arc::new(burrow_transport::SystemResolver)),
        }
    }

    /// The target as the proxy is told it: `socks5` resolves names here.
    async fn resolved(&self, target: &Target) -> Result<Target> {
        match (self.url.kind, &target.host) {
            (ProxyKind::Socks5, Host::Name(_)) => {
                // The name that did not resolve is the target's, not this proxy's (curl's
                // "could not resolve host"): the error names the target, not this hop.
                let theirs = |e: Error| {
                    e.at_hop(burrow_transport::Hop {
                        index: None,
                        label: target.to_string(),
                    })
                };
                let a = burrow_transport::resolve::resolve_target(&*self.resolver, target)
                    .await
                    .map_err(theirs)?;
                let first = a.first().copied();
                Ok(Target::from(first.ok_or_else(|| {
                    theirs(Error::resolve(format!("{target}: no address")))
                })?))
            }
            _ => Ok(target.clone()),
        }
    }

    /// Runs a SOCKS handshake for `command`; returns the stream and the bound address.
    async fn handshake_for(
        &self,
        command: Command,
        target: &Target,
    ) -> Result<(Connected, Target)> {
        let target = self.resolved(target).await?;
        let dialect = match self.url.kind {
            ProxyKind::Socks4a => Dialect::V4a,
            _ => Dialect::V5(self.url.credentials.clone()),
        };
        // Checks the 255-byte host limit before anything is sent.
        let core = SocksClient::new(dialect, command, target)?;
        let Connected { stream, mut info } = self
            .lower
            .connect(&self.url.target)
            .await
            .map_err(Error::reaching_proxy)?;
        let mut core = core.deadline(driver::now(), self.timeout);
        let mut outcome = driver::Collect::default();
        let stream = driver::drive(stream, &mut core, &mut outcome).await;
        let (stream, bound) = match (stream, outcome.0.pop()) {
            (Some(s), Some(Outcome::Granted(bound))) => (s, bound),
            (_, Some(Outcome::Failed(e))) => return Err(e),
            _ => {
                return Err(Error::closed(
                    "SOCKS proxy closed the connection during the handshake",
                ))
            }
        };
        let leftover = core.take_leftover();
        info.timings.routed = Some(std::time::Instant::now());
        info.layers
            .insert(0, format!("{}@{}", self.url.kind.scheme(), self.url.target));
        Ok((
            Connected {
                stream: Box::new(Prefixed::new(leftover, stream)),
                info,
            },
            bound,
        ))
    }

    async fn associate(&self, target: &Target) -> Result<burrow_transport::BoxFlow> {
        let lower_udp = self
            .lower_udp
            .clone()
            .ok_or_else(|| Error::unsupported("SOCKS4a cannot carry UDP"))?;
        // RFC 1928 §7: the client may not know its address yet; send zeros.
        let any = Target::new(Host::Ip(std::net::Ipv4Addr::UNSPECIFIED.into()), 0);
        let (control, bound) = self.handshake_for(Command::UdpAssociate, &any).await?;
        // A relay bound to the unspecified address is reached at the proxy's own address.
        let relay = match bound.host {
            Host::Ip(ip) if ip.is_unspecified() => {
                Target::new(self.url.target.host.clone(), bound.port)
            }
            _ => bound,
        };
        let flow = lower_udp
            .connect_datagram(&relay)
            .await
            .map_err(Error::reaching_proxy)?;
        let target = self.resolved(target).await?;
        let describe = format!(
            "{}-udp@{} > {}",
            self.url.kind.scheme(),
            self.url.target,
            flow.describe()
        );
        Ok(Arc::new(crate::flows::SocksUdpFlow::new(
            control.stream,
            flow,
            target,
            describe,
        )))
    }
}

#[async_trait]
impl StreamConnector for SocksHop {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let span = super::hop_span(self.index, &self.url, target);
        let opening = async { Ok(self.handshake_for(Command::Connect, target).await?.0) };
        let mut c =
            super::open_traced(&span, self.url.hop(self.index), opening, |_| "socks").await?;
        c.stream = super::hop_stream::counted(
            super::hop_stream::tag(c.stream, self.url.hop(self.index)),
            span,
        );
        Ok(c)
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} > {}",
            self.url.kind.scheme(),
            self.url.target,
            self.lower.describe()
        )
    }
}

#[async_trait]
impl burrow_transport::DatagramConnector for SocksHop {
    async fn connect_datagram(&self, target: &Target) -> Result<burrow_transport::BoxFlow> {
        self.associate(target)
            .await
            .map_err(|e| e.at_hop(self.url.hop(self.index)))
    }

    fn describe(&self) -> String {
        format!(
            "{}-udp@{} > {}",
            self.url.kind.scheme(),
            self.url.target,
            self.lower.describe()
        )
    }
}
