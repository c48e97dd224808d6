//! Reaching targets, fail-closed: the address that was checked is the address that is
//! dialed. Names are resolved once, every answer is judged by the rules, and only the
//! addresses that passed are connected to; a failed lookup is an error, never a skipped
//! check. Through `--upstream`, names are never resolved here.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use burrow_transport::resolve::resolve_target;
use burrow_transport::tcp::{Abort, AbortableTcp};
use burrow_transport::{
    BoxFlow, BoxStream, Connected, DatagramConnector, Error, ErrorKind, Host, SharedResolver,
    StreamConnector, StreamInfo, Target, TcpConfig, TcpConnector, UdpFlow,
};

use super::rules::{Denied, Rules};

/// Why a target could not be reached.
#[derive(Debug, PartialEq)]
pub enum Dial {
    /// The rules refused it.
    Denied(Denied),
    /// The name lookup took longer than the dial deadline (504 `dns_timeout`).
    DnsTimeout,
    /// Looking it up or connecting failed.
    Failed(Error),
}

impl Dial {
    /// As an [`Error`]: a denial is [`ErrorKind::Denied`].
    pub fn into_error(self, target: &Target) -> Error {
        match self {
            Dial::Denied(d) => Error::user(ErrorKind::Denied, format!("{target}: {d}")),
            Dial::DnsTimeout => {
                Error::peer_timeout(format!("looking up {} took too long", target.host))
            }
            Dial::Failed(e) => e,
        }
    }
}

/// The proxy's own listening sockets: a target equal to one of them is a loop.
#[derive(Debug, Default)]
pub struct OwnAddresses(RwLock<Vec<SocketAddr>>);

impl OwnAddresses {
    /// Records the bound listeners.
    pub fn set(&self, addrs: Vec<SocketAddr>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = addrs;
    }

    /// Whether `a` reaches one of our listeners: the same address and port, or the port of
    /// a listener bound to the unspecified address on an address of this machine.
    pub fn contains(&self, a: SocketAddr) -> bool {
        let ip = a.ip().to_canonical();
        let own = self.0.read().unwrap_or_else(|p| p.into_inner());
        own.iter().any(|l| {
            l.port() == a.port()
                && (l.ip().to_canonical() == ip || (l.ip().is_unspecified() && is_local(ip)))
        })
    }
}

/// Whether `ip` is an address of this machine: only those can be bound.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Judges targets, sans-I/O: as named (before any lookup) and by the addresses they
/// resolve to; the proxy's own listeners are refused unless a network rule allows their
/// address explicitly (as for every special range).
pub struct Judge {
    rules: Rules,
    own: Arc<OwnAddresses>,
    /// Names are resolved past an upstream route, where network rules cannot follow.
    upstream: bool,
}

impl Judge {
    /// A judge applying `rules` and refusing the `own` listeners; `upstream`: targets are
    /// reached through an upstream route.
    pub fn new(rules: Rules, own: Arc<OwnAddresses>, upstream: bool) -> Judge {
        Judge {
            rules,
            own,
            upstream,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The rules on an address to dial.
    pub fn check_addr(&self, a: SocketAddr) -> Result<(), Denied> {
        self.rules.check_address(a.ip())?;
        if self.own.contains(a) && !self.rules.covers(a.ip()) {
            return Err(Denied::OwnAddress);
        }
        Ok(())
    }

    /// Checks the target as named (before any lookup).
    pub fn check(&self, t: &Target) -> Result<(), Denied> {
        self.rules.check_target(t)?;
        match (&t.host, t.socket_addr()) {
            (_, Some(a)) => self.check_addr(a),
            // Through an upstream route the name is resolved far away: network rules
            // cannot be checked, so they refuse it (a localhost name was judged as the
            // loopback address it always is).
            (Host::Name(n), None)
                if self.upstream
                    && !self.rules.networks.is_empty()
                    && !super::rules::is_localhost(n) =>
            {
                Err(Denied::Unverifiable)
            }
            _ => Ok(()),
        }
    }
}

/// Resolves, checks and connects, for every kind of tunnel and for forwarded requests.
pub struct Dialer {
    judge: Arc<Judge>,
    resolver: SharedResolver,
    tcp: TcpConnector,
    timeout: Duration,
    upstream_tcp: Option<Arc<dyn StreamConnector>>,
    upstream_udp: Option<Arc<dyn DatagramConnector>>,
}

impl Dialer {
    /// A dialer applying `rules` (and refusing `own` listeners), resolving with `resolver`,
    /// giving up on a dial after `timeout`; through the upstream connectors when given.
    pub fn new(
        rules: Rules,
        own: Arc<OwnAddresses>,
        resolver: SharedResolver,
        timeout: Duration,
        upstream_tcp: Option<Arc<dyn StreamConnector>>,
        upstream_udp: Option<Arc<dyn DatagramConnector>>,
    ) -> Dialer {
        let mut cfg = TcpConfig::default();
        cfg.connect_timeout(Some(timeout));
        Dialer {
            judge: Arc::new(Judge::new(rules, own, upstream_tcp.is_some())),
            resolver,
            tcp: TcpConnector::new(cfg),
            timeout,
            upstream_tcp,
            upstream_udp,
        }
    }

    /// The judge of targets.
    pub fn judge(&self) -> &Arc<Judge> {
        &self.judge
    }

    #[cfg(test)]
    async fn resolve_checked(&self, t: &Target) -> Result<Vec<SocketAddr>, Dial> {
        let until = tokio::time::Instant::now() + self.timeout;
        self.resolve_checked_until(t, until).await
    }

    /// Resolves `t` by `until` and keeps the addresses the rules allow; a refusal when
    /// every one was refused, a `dns_error` when the lookup failed.
    async fn resolve_checked_until(
        &self,
        t: &Target,
        until: tokio::time::Instant,
    ) -> Result<Vec<SocketAddr>, Dial> {
        self.judge.check(t).map_err(Dial::Denied)?;
        let addrs = tokio::time::timeout_at(until, resolve_target(&*self.resolver, t))
            .await
            .map_err(|_| Dial::DnsTimeout)?
            .map_err(|e| match e.kind() {
                ErrorKind::Timeout => Dial::DnsTimeout,
                _ => Dial::Failed(e),
            })?;
        let mut refused = None;
        let ok: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.judge.check_addr(*a) {
                Ok(()) => true,
                Err(d) => {
                    refused = Some(d);
                    false
                }
            })
            .collect();
        match (ok.is_empty(), refused) {
            (true, Some(d)) => Err(Dial::Denied(d)),
            (true, None) => Err(Dial::Failed(Error::resolve(format!(
                "{} has no addresses",
                t.host
            )))),
            _ => Ok(ok),
        }
    }

    /// A byte stream to `t`: through the upstream route, or to an address that passed the
    /// rules, within the dial deadline; with the handle that makes the close of the TCP
    /// connection under it abortive, when the stream has one of its own (a direct
    /// connection, or an upstream HTTP/1.1 CONNECT or SOCKS tunnel; not an HTTP/2 or
    /// HTTP/3 stream, which resets by itself).
    pub async fn tcp(&self, t: &Target) -> Result<(BoxStream, Option<Abort>), Dial> {
        self.tcp_connected(t)
            .await
            .map(|c| (c.stream, c.info.abort))
    }

    async fn tcp_connected(&self, t: &Target) -> Result<Connected, Dial> {
        if let Some(up) = &self.upstream_tcp {
            self.judge.check(t).map_err(Dial::Denied)?;
            return burrow_transport::tcp::connect_within(self.timeout, t, up.connect(t))
                .await
                .map_err(Dial::Failed);
        }
        // One deadline for the lookup and the connect together.
        let until = tokio::time::Instant::now() + self.timeout;
        let addrs = self.resolve_checked_until(t, until).await?;
        let s = tokio::time::timeout_at(until, self.tcp.connect_addrs(addrs, t))
            .await
            .map_err(|_| {
                Dial::Failed(Error::peer_timeout(format!(
                    "connect to {t} took longer than {:?}",
                    self.timeout
                )))
            })?
            .map_err(Dial::Failed)?;
        let (peer_addr, local_addr) = (s.peer_addr().ok(), s.local_addr().ok());
        let (stream, abort) = AbortableTcp::new(s);
        Ok(Connected {
            info: StreamInfo {
                peer_addr,
                local_addr,
                layers: vec!["tcp".into()],
                abort: Some(abort),
                ..StreamInfo::default()
            },
            stream: Box::new(stream),
        })
    }

    /// A datagram flow to `t`, likewise.
    pub async fn udp(&self, t: &Target) -> Result<BoxFlow, Dial> {
        if let Some(up) = &self.upstream_udp {
            self.judge.check(t).map_err(Dial::Denied)?;
            return burrow_transport::tcp::connect_within(self.timeout, t, up.connect_datagram(t))
                .await
                .map_err(Dial::Failed);
        }
        let until = tokio::time::Instant::now() + self.timeout;
        let addrs = self.resolve_checked_until(t, until).await?;
        let none = || Error::peer(ErrorKind::Connect, format!("no UDP flow to {t}"));
        match UdpFlow::connect_first(addrs, none).await {
            Ok(f) => Ok(Arc::new(f)),
            Err(e) => Err(Dial::Failed(e)),
        }
    }
}

/// The dialer as the forwarding client's connector: every connection it opens to an
/// origin went through the same checks as a tunnel.
pub struct GuardedConnector {
    /// The dialer.
    pub dialer: Arc<Dialer>,
    /// The target every connection goes to, whatever target it is asked for: the origin
    /// of an intercepted tunnel, whose requests may name another authority.
    pub fixed: Option<Target>,
}

#[async_trait]
impl StreamConnector for GuardedConnector {
    async fn connect(&self, asked: &Target) -> burrow_transport::Result<Connected> {
        let target = self.fixed.as_ref().unwrap_or(asked);
        self.dialer
            .tcp_connected(target)
            .await
            .map_err(|d| d.into_error(target))
    }

    fn describe(&self) -> String {
        match (&self.fixed, &self.dialer.upstream_tcp) {
            (Some(target), _) => format!("tcp to {target}"),
            (None, Some(up)) => up.describe(),
            (None, None) => "tcp".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_transport::Resolve;

    /// Answers every name with the addresses it was given, counting lookups.
    struct Fixed(Vec<IpAddr>, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Resolve for Fixed {
        async fn resolve(&self, _: &str, port: u16) -> burrow_transport::Result<Vec<SocketAddr>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
        }
    }

    fn dialer(rules: Rules, answers: &[&str]) -> (Dialer, Arc<Fixed>) {
        let r = Arc::new(Fixed(
            answers.iter().map(|a| a.parse().unwrap()).collect(),
            Default::default(),
        ));
        let d = Dialer::new(
            rules,
            Arc::default(),
            r.clone(),
            Duration::from_secs(1),
            None,
            None,
        );
        (d, r)
    }

    #[tokio::test]
    async fn only_checked_addresses_survive_and_one_lookup_is_made() {
        let (d, r) = dialer(
            Rules::default(),
            &["127.0.0.1", "192.0.2.7", "169.254.169.254"],
        );
        let a = d
            .resolve_checked(&"rebind.test:80".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(a, vec!["192.0.2.7:80".parse().unwrap()]);
        assert_eq!(r.1.load(std::sync::atomic::Ordering::Relaxed), 1);
        let (d, _) = dialer(Rules::default(), &["127.0.0.1"]);
        let e = d
            .resolve_checked(&"rebind.test:80".parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(e, Dial::Denied(Denied::Special("loopback"))),
            "{e:?}"
        );
    }

    fn with_own(rules: Rules, own: &[&str]) -> Dialer {
        let o = Arc::new(OwnAddresses::default());
        o.set(own.iter().map(|a| a.parse().unwrap()).collect());
        Dialer::new(
            rules,
            o,
            Arc::new(burrow_transport::SystemResolver),
            Duration::from_secs(1),
            None,
            None,
        )
    }

    #[test]
    fn own_listeners_are_refused_unless_a_network_rule_allows_them() {
        // A public address the proxy listens on: refused by default, as a loop.
        let d = with_own(Rules::default(), &["192.0.2.10:3128", "[2001:db8::5]:443"]);
        assert_eq!(
            d.judge().check(&"192.0.2.10:3128".parse().unwrap()),
            Err(Denied::OwnAddress)
        );
        assert_eq!(
            d.judge()
                .check(&"[::ffff:192.0.2.10]:3128".parse().unwrap()),
            Err(Denied::OwnAddress)
        );
        assert_eq!(
            d.judge().check(&"[2001:db8::5]:443".parse().unwrap()),
            Err(Denied::OwnAddress)
        );
        assert_eq!(d.judge().check(&"192.0.2.10:3129".parse().unwrap()), Ok(()));
        // Behind a wildcard listener, loopback is refused as loopback first.
        let d = with_own(Rules::default(), &["0.0.0.0:1080"]);
        assert_eq!(
            d.judge().check(&"127.0.0.5:1080".parse().unwrap()),
            Err(Denied::Special("loopback"))
        );
        let d = with_own(
            Rules {
                networks: vec![super::super::rules::parse_network("192.0.2.0/24").unwrap()],
                ..Rules::default()
            },
            &["192.0.2.10:3128"],
        );
        // A network rule that covers the listener's address allows it explicitly.
        assert_eq!(d.judge().check(&"192.0.2.10:3128".parse().unwrap()), Ok(()));
        // A local address (loopback is always local) on a wildcard listener's port.
        let own = OwnAddresses::default();
        own.set(vec!["0.0.0.0:1080".parse().unwrap()]);
        assert!(own.contains("127.0.0.5:1080".parse().unwrap()));
        assert!(!own.contains("127.0.0.5:1081".parse().unwrap()));
        assert!(!own.contains("192.0.2.99:1080".parse().unwrap()));
    }
}
