//! Proxies, `NO_PROXY` lists and the proxy environment variables, as curl reads them.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use burrow_http_core::connect_tcp::Codepoints;
use burrow_proxy::route::{ProxyKind, ProxyUrl};
use burrow_proxy::template::{TcpTemplate, UdpTemplate};
use burrow_transport::{Error, Result, TlsConfig};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

/// One hop of a route: a proxy URL with its own settings.
///
/// Every scheme burrow knows parses: `http://`, `https://` (HTTP/2 or HTTP/1.1 by ALPN),
/// `h2://`, `h3://` (HTTP/3, MASQUE), `socks5://`, `socks5h://`, `socks4a://`.
/// A URL without a scheme is `http://`, as in curl. Credentials in the URL
/// (`socks5h://user:pass@host`) go to this hop only and never appear in [`Display`](std::fmt::Display),
/// `Debug` or errors.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) url: ProxyUrl,
    ca_files: Vec<PathBuf>,
    pub(crate) tls: Option<TlsConfig>,
    insecure: bool,
    client_cert: Option<PathBuf>,
    pub(crate) headers: HeaderMap,
    pub(crate) tcp_codepoints: Option<Codepoints>,
    pub(crate) tunnel: bool,
}

impl PartialEq for Proxy {
    /// Two proxies are the same hop when they have the same URL, credentials and settings.
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.ca_files == other.ca_files
            && self.insecure == other.insecure
            && self.client_cert == other.client_cert
            && self.headers == other.headers
            && self.tcp_codepoints == other.tcp_codepoints
            && self.tunnel == other.tunnel
    }
}

fn hop_of(url: &ProxyUrl) -> burrow_transport::Hop {
    burrow_transport::Hop {
        index: None,
        label: url.label(),
    }
}

impl From<ProxyUrl> for Proxy {
    /// A hop with no settings of its own.
    fn from(url: ProxyUrl) -> Proxy {
        Proxy {
            url,
            ca_files: Vec::new(),
            tls: None,
            insecure: false,
            client_cert: None,
            headers: HeaderMap::new(),
            tcp_codepoints: None,
            tunnel: false,
        }
    }
}

impl Proxy {
    /// The parsed URL, for the lower layers (`burrow_proxy::route::Route::build`).
    pub fn proxy_url(&self) -> &ProxyUrl {
        &self.url
    }

    /// Parses a proxy URL (see the type's docs for the schemes).
    pub fn parse(url: &str) -> Result<Proxy> {
        ProxyUrl::parse(url).map(Proxy::from)
    }

    /// Trusts the CA certificates in this PEM file for this hop (HTTPS, HTTP/2 and HTTP/3
    /// proxies). Without `ca_file` or [`insecure`](Self::insecure) the hop is verified with
    /// the client's trust ([`ClientBuilder::ca_file`](crate::ClientBuilder::ca_file)).
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Proxy> {
        let path = path.as_ref();
        self.tls
            .get_or_insert_with(TlsConfig::default)
            .add_root_pem_file(path)
            .map_err(|e| e.at_hop(hop_of(&self.url)))?;
        self.ca_files.push(path.to_owned());
        Ok(self)
    }

    /// Turns off certificate verification for this hop only (curl's `--proxy-insecure`).
    /// Either way the hop then has TLS settings of its own: the system's trust (and its
    /// [`ca_file`](Self::ca_file)s), not the client's, as curl verifies proxies.
    pub fn insecure(mut self, on: bool) -> Proxy {
        self.insecure = on;
        self.tls.get_or_insert_with(TlsConfig::default).insecure(on);
        self
    }

    /// Presents this client certificate (PEM chain in `cert`, its key in `key` or in `cert`)
    /// to this hop (curl's `--proxy-cert`, `--proxy-key`).
    pub fn client_cert(mut self, cert: impl AsRef<Path>, key: Option<&Path>) -> Result<Proxy> {
        let cert = cert.as_ref();
        self.tls
            .get_or_insert_with(TlsConfig::default)
            .client_cert_pem_files(cert, key)
            .map_err(|e| e.at_hop(hop_of(&self.url)))?;
        self.client_cert = Some(cert.to_owned());
        Ok(self)
    }

    /// `http://` URLs through this hop (the last one, an `http://` or `https://` proxy) in a
    /// CONNECT tunnel rather than forwarded in absolute-form (curl's `--proxytunnel`). By
    /// default they are forwarded, as curl and reqwest do: a proxy that allows CONNECT only
    /// to port 443 (squid's default) still serves them. `https://` URLs, HTTP/2 and HTTP/3
    /// proxies, SOCKS and `?connect=` hops always tunnel.
    pub fn tunnel(mut self, on: bool) -> Proxy {
        self.tunnel = on;
        self
    }

    /// Whether a request for `uri` through this hop, the route's last, is forwarded to it
    /// in absolute-form rather than tunnelled (see [`tunnel`](Self::tunnel)).
    pub(crate) fn forwards(&self, uri: &Uri, version: Option<http::Version>) -> bool {
        let plain = uri.scheme() == Some(&http::uri::Scheme::HTTP);
        let h1 = matches!(self.url.kind, ProxyKind::Http | ProxyKind::Https);
        let templated = self.url.connect_tcp.is_some() || self.url.connect_ip.is_some();
        // HTTP/2 prior knowledge or HTTP/3 to the origin needs the origin itself.
        let any_version = matches!(version, None | Some(http::Version::HTTP_11));
        plain && h1 && !templated && !self.tunnel && !self.url.http10 && any_version
    }

    /// This hop as a forward proxy: its URI and the headers forwarded requests carry to it
    /// (its `--proxy-header`s and credentials).
    pub(crate) fn forward_to(&self) -> Result<(Uri, HeaderMap)> {
        let scheme = match self.url.kind {
            ProxyKind::Https => "https",
            _ => "http",
        };
        let uri = format!("{scheme}://{}/", self.url.target)
            .parse()
            .map_err(|_| Error::invalid_input("proxy address").at_hop(hop_of(&self.url)))?;
        let mut headers = self.headers.clone();
        if let Some(c) = &self.url.credentials {
            if let Some(v) = burrow_http_core::credentials::basic(&c.user, &c.pass) {
                headers.insert(http::header::PROXY_AUTHORIZATION, v);
            }
        }
        Ok((uri, headers))
    }

    /// Adds a header to this hop's CONNECT requests, and to the requests forwarded to it
    /// when it is the last hop (curl's `--proxy-header`).
    pub fn header(mut self, name: &str, value: &str) -> Result<Proxy> {
        let bad = || {
            Error::invalid_input(format!("bad proxy header name {name:?}"))
                .at_hop(hop_of(&self.url))
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| Error::invalid_input(format!("bad value for proxy header {n}")))?;
        if n == http::header::PROXY_AUTHORIZATION {
            v.set_sensitive(true);
        }
        self.headers.append(n, v);
        Ok(self)
    }

    /// This hop's CONNECT-UDP URI template (RFC 9298): a path naming both variables, e.g.
    /// `/masque?h={target_host}&p={target_port}` (default
    /// `/.well-known/masque/udp/{target_host}/{target_port}/`).
    pub fn udp_template(mut self, template: &str) -> Result<Proxy> {
        self.url.udp_template = Some(UdpTemplate::parse(template)?);
        Ok(self)
    }

    /// TCP through this hop (an HTTP proxy) as CONNECT-TCP (draft-ietf-httpbis-connect-tcp)
    /// rather than classic CONNECT, with this URI template (`None`: the default,
    /// `/.well-known/masque/tcp/{target_host}/{target_port}/`). The same as `?connect=tcp`
    /// in the URL.
    pub fn connect_tcp(mut self, template: Option<&str>) -> Result<Proxy> {
        if !self.url.kind.is_http() {
            return Err(
                Error::invalid_input("CONNECT-TCP needs an HTTP proxy").at_hop(hop_of(&self.url))
            );
        }
        self.url.connect_tcp = Some(match template {
            Some(t) => TcpTemplate::parse(t)?,
            None => TcpTemplate::default_tcp(),
        });
        Ok(self)
    }

    /// The capsule types of this hop's CONNECT-TCP tunnels (default
    /// [`Codepoints::default`], the draft's -12 values); both ends must agree.
    pub fn connect_tcp_codepoints(mut self, codepoints: Codepoints) -> Self {
        self.tcp_codepoints = Some(codepoints);
        self
    }
}

impl fmt::Display for Proxy {
    /// The hop as a URL without credentials, e.g. `h2://localhost:8443`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.url.kind.scheme(), self.url.target)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.to_string())
            .field(
                "credentials",
                &self.url.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_files", &self.ca_files)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// One entry of a [`NoProxy`] list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    All,
    Name(String),
    Net(IpAddr, u8),
}

/// Hosts reached directly whatever the proxies, in curl's `NO_PROXY` syntax: a comma
/// separated list of `*` (everything), host names (which also match their subdomains; a
/// leading dot is ignored), IP addresses (with or without brackets) and CIDR ranges
/// (`10.0.0.0/8`, `fd00::/8`). Names are compared without case; a name never matches an
/// address, and nothing is resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn same_prefix(a: IpAddr, b: IpAddr, bits: u8) -> bool {
    let (a, b, width) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = u32::from(bits).min(width);
    bits == 0 || (a ^ b) >> (width - bits) == 0
}

impl NoProxy {
    /// Parses a list; entries that are neither names, addresses nor ranges are ignored, as
    /// curl ignores them.
    pub fn parse(list: &str) -> NoProxy {
        let entries = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .filter_map(|e| {
                if e == "*" {
                    return Some(Entry::All);
                }
                if let Some((ip, bits)) = e.split_once('/') {
                    let ip = parse_ip(ip)?;
                    let bits = bits
                        .parse()
                        .ok()
                        .filter(|b| *b <= if ip.is_ipv4() { 32 } else { 128 })?;
                    return Some(Entry::Net(ip, bits));
                }
                if let Some(ip) = parse_ip(e) {
                    return Some(Entry::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
                }
                let name = e.trim_start_matches('.').trim_end_matches('.');
                (!name.is_empty()).then(|| Entry::Name(name.to_ascii_lowercase()))
            })
            .collect();
        NoProxy { entries }
    }

    /// Whether requests to `host` (a name or an IP literal, brackets allowed) go direct.
    pub fn matches(&self, host: &str) -> bool {
        let ip = parse_ip(host);
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|e| match (e, ip) {
            (Entry::All, _) => true,
            (Entry::Net(net, bits), Some(ip)) => same_prefix(*net, ip, *bits),
            (Entry::Name(n), None) => {
                name == *n
                    || name
                        .strip_suffix(n.as_str())
                        .is_some_and(|p| p.ends_with('.'))
            }
            _ => false,
        })
    }

    pub(crate) fn extend(&mut self, other: NoProxy) {
        self.entries.extend(other.entries);
    }
}

/// The proxies the environment asks for, as curl reads them (see [`EnvProxies::read`]).
/// [`ClientBuilder::env_proxies`](crate::ClientBuilder::env_proxies) reads them once, when
/// the client is built.
#[derive(Clone, Debug, Default)]
pub struct EnvProxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    all: Option<Proxy>,
    no_proxy: NoProxy,
}

impl EnvProxies {
    /// curl's variables: `http_proxy` in lower case only (a CGI program's `HTTP_PROXY` can
    /// be set by its client), `https_proxy`/`HTTPS_PROXY`, `all_proxy`/`ALL_PROXY`,
    /// `no_proxy`/`NO_PROXY`; lower case first. A variable that is set but does not parse
    /// is an error naming it: going direct instead would bypass the proxy the user chose.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<EnvProxies> {
        let var = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let proxy = |names: &[&'static str]| -> Result<Option<Proxy>> {
            match var(names) {
                None => Ok(None),
                Some((name, v)) => Proxy::parse(v.trim())
                    .map(Some)
                    .map_err(|_| Error::invalid_input(format!("{name} is not a proxy URL"))),
            }
        };
        Ok(EnvProxies {
            http: proxy(&["http_proxy"])?,
            https: proxy(&["https_proxy", "HTTPS_PROXY"])?,
            all: proxy(&["all_proxy", "ALL_PROXY"])?,
            no_proxy: var(&["no_proxy", "NO_PROXY"])
                .map_or_else(NoProxy::default, |(_, v)| NoProxy::parse(&v)),
        })
    }

    /// [`read`](Self::read) from this process's environment.
    pub fn from_env() -> Result<EnvProxies> {
        EnvProxies::read(|n| std::env::var(n).ok())
    }

    /// The proxy for `uri` (`https_proxy` for `https`, `http_proxy` otherwise, then
    /// `all_proxy`), without looking at `NO_PROXY`.
    pub fn proxy_for(&self, uri: &Uri) -> Option<&Proxy> {
        match uri.scheme_str() {
            Some("https") => self.https.as_ref(),
            _ => self.http.as_ref(),
        }
        .or(self.all.as_ref())
    }

    /// The `NO_PROXY` list (empty when unset).
    pub fn no_proxy(&self) -> &NoProxy {
        &self.no_proxy
    }
}

/// A function from a request's URL to the hops to use, nearest first (empty: direct), like
/// reqwest's `Proxy::custom`. It overrides the client's proxies, `NO_PROXY` and the
/// environment.
pub type ProxyPolicy = Arc<dyn Fn(&Uri) -> Vec<Proxy> + Send + Sync>;

/// How the client picks a request's route.
#[derive(Clone, Default)]
pub(crate) struct RouteChoice {
    pub(crate) proxies: Vec<Proxy>,
    pub(crate) no_proxy: NoProxy,
    pub(crate) env: Option<EnvProxies>,
    pub(crate) policy: Option<ProxyPolicy>,
}

impl RouteChoice {
    /// Adds the environment's proxies; its `NO_PROXY` applies unless the client has its own
    /// list (as curl's `--noproxy` overrides the variable).
    pub(crate) fn with_env(mut self, env: EnvProxies) -> Self {
        if self.no_proxy == NoProxy::default() {
            self.no_proxy = env.no_proxy.clone();
        }
        self.env = Some(env);
        self
    }

    /// The hops for `uri`: the policy's answer if there is one; direct when `NO_PROXY`
    /// matches the host; else the client's proxies; else the environment's; else direct.
    pub(crate) fn hops(&self, uri: &Uri) -> Vec<Proxy> {
        if let Some(p) = &self.policy {
            return p(uri);
        }
        if self.no_proxy.matches(uri.host().unwrap_or("")) {
            return Vec::new();
        }
        if !self.proxies.is_empty() {
            return self.proxies.clone();
        }
        self.env
            .as_ref()
            .and_then(|e| e.proxy_for(uri))
            .map(|p| vec![p.clone()])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_transport::ErrorKind;

    #[test]
    fn no_proxy_follows_curl() {
        let l = NoProxy::parse(" example.com, .internal ,10.0.0.0/8, [::1], 192.168.1.7 ,fd00::/8");
        for h in [
            "example.com",
            "EXAMPLE.com.",
            "www.example.com",
            "a.internal",
            "internal",
        ] {
            assert!(l.matches(h), "{h}");
        }
        for h in ["10.1.2.3", "::1", "[::1]", "192.168.1.7", "fd12::1"] {
            assert!(l.matches(h), "{h}");
        }
        for h in [
            "notexample.com",
            "example.org",
            "11.0.0.1",
            "192.168.1.8",
            "::2",
            "fe80::1",
        ] {
            assert!(!l.matches(h), "{h}");
        }
        assert!(NoProxy::parse("*").matches("anything.example"));
        assert!(!NoProxy::parse("").matches("x"));
        // Garbage entries are ignored, the others still apply.
        let g = NoProxy::parse("10.0.0.0/99,/,x.test");
        assert!(!g.matches("10.0.0.1") && g.matches("x.test"));
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8"));
        assert!(!NoProxy::parse("0.0.0.0/0").matches("::1"));
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_as_curl_reads_it() {
        let e = EnvProxies::read(env(&[
            ("HTTP_PROXY", "http://upper:1"),
            ("HTTPS_PROXY", "socks5h://s:1080"),
            ("ALL_PROXY", "h2://all:443"),
            ("NO_PROXY", "skip.test"),
        ]))
        .unwrap();
        let c = RouteChoice::default().with_env(e);
        let labels = |u: &str| -> Vec<String> {
            c.hops(&u.parse().unwrap())
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        // HTTP_PROXY in upper case is ignored; ALL_PROXY covers http.
        assert_eq!(labels("http://a.test/"), ["h2://all:443"]);
        assert_eq!(labels("https://a.test/"), ["socks5h://s:1080"]);
        assert!(labels("https://www.skip.test/").is_empty());
        // The client's own list replaces the environment's.
        let e = EnvProxies::read(env(&[
            ("all_proxy", "h2://all:443"),
            ("no_proxy", "skip.test"),
        ]))
        .unwrap();
        let own = RouteChoice {
            no_proxy: NoProxy::parse("other.test"),
            ..Default::default()
        }
        .with_env(e);
        assert_eq!(own.hops(&"http://skip.test/".parse().unwrap()).len(), 1);
        assert!(own.hops(&"http://other.test/".parse().unwrap()).is_empty());
        let bad = EnvProxies::read(env(&[("https_proxy", "ftp://x:1")])).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput);
        assert!(bad.to_string().contains("https_proxy"), "{bad}");
    }

    #[test]
    fn policy_overrides_everything_and_no_proxy_covers_client_proxies() {
        let p = Proxy::parse("socks5h://127.0.0.1:1080").unwrap();
        let mut c = RouteChoice {
            proxies: vec![p.clone()],
            no_proxy: NoProxy::parse("direct.test"),
            ..Default::default()
        };
        assert_eq!(c.hops(&"http://x.test/".parse().unwrap()), vec![p.clone()]);
        assert!(c.hops(&"http://direct.test/".parse().unwrap()).is_empty());
        let q = Proxy::parse("h3://127.0.0.1:4433").unwrap();
        let q2 = q.clone();
        c.policy = Some(Arc::new(move |u: &Uri| {
            if u.host() == Some("direct.test") {
                vec![q2.clone()]
            } else {
                Vec::new()
            }
        }));
        assert_eq!(c.hops(&"http://direct.test/".parse().unwrap()), vec![q]);
        assert!(c.hops(&"http://x.test/".parse().unwrap()).is_empty());
    }

    #[test]
    fn credentials_never_shown() {
        let p = Proxy::parse("socks5h://alice:s3cret@127.0.0.1:1080").unwrap();
        let shown = format!("{p} {p:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:1080"));
        let e = Proxy::parse("socks5h://alice:s3cret@[::1").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cret"));
    }

    #[test]
    fn per_hop_settings_make_a_different_hop() {
        let a = Proxy::parse("h2://p:443").unwrap();
        let b = a.clone().header("x-tenant", "7").unwrap();
        let c = a.clone().insecure(true);
        assert!(a != b && a != c && b != c);
        assert_eq!(a, Proxy::parse("h2://p:443").unwrap());
        assert!(a.clone().header("bad name", "v").is_err());
        assert!(a
            .clone()
            .udp_template("/p/{target_host}/{target_port}")
            .is_ok());
        assert!(a.clone().udp_template("/p/no-variables").is_err());
        assert!(a
            .udp_template("https://p/{target_host}/{target_port}")
            .is_err());
    }
}
