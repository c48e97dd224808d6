//! `burrow-proxy`: a forward proxy for every HTTP version and tunnel kind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burrow_proxy::server::builtin::{
    AccessLog, BlockList, HeaderRule, HeaderRules, LogFormat, Metrics,
};
use burrow_proxy::server::{
    self, rules::parse_network, Credentials, HookChain, Listen, Pattern, Proxy, ProxyConfig,
    Routes, Upstream,
};
use burrow_proxy::template::UdpTemplate;
use burrow_transport::rustls::pki_types::pem::PemObject;
use burrow_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use burrow_transport::Error;
use clap::{Parser, Subcommand};

/// Command line of `burrow-proxy`.
#[derive(Parser)]
#[command(
    name = "burrow-proxy",
    about = "Forward proxy: HTTP/1.1, HTTP/2, HTTP/3 CONNECT and CONNECT-UDP, SOCKS5/4a",
    args_override_self = true
)]
pub struct Args {
    /// Settings from a TOML file, keys named as the long options (`listen = ["http://..."]`,
    /// `access-log = "-"`); the command line adds to its lists and overrides the rest.
    /// SIGHUP reads it again and applies the rules, routes, block lists, header rules and
    /// the access log without dropping tunnels.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to listen (repeatable): http://ADDR, https://ADDR, https1://ADDR (TLS, HTTP/1.1
    /// only), h3://ADDR, socks5://ADDR.
    #[arg(long = "listen")]
    pub listen: Vec<String>,
    /// Certificate chain (PEM) for https:// and h3:// listeners; self-signed when omitted.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Require these credentials, USER:PASS (Basic for HTTP, RFC 1929 for SOCKS5).
    #[arg(long)]
    pub auth: Option<String>,
    /// Allowed target host (repeatable; `*.example.com` for subdomains). Default: any.
    #[arg(long = "allow-host")]
    pub allow_host: Vec<String>,
    /// Allowed target network, ADDR/LEN (repeatable). Default: any address except
    /// loopback, link-local (169.254.0.0/16, fe80::/10), unspecified, multicast and
    /// broadcast, which need a rule that covers them (e.g. --allow-net 127.0.0.0/8).
    #[arg(long = "allow-net")]
    pub allow_net: Vec<String>,
    /// Allowed target ports, N or N-M (repeatable). Default: any.
    #[arg(long = "allow-port")]
    pub allow_port: Vec<String>,
    /// Most concurrent tunnels (503 beyond).
    #[arg(long, default_value_t = server::DEFAULT_MAX_TUNNELS)]
    pub max_tunnels: usize,
    /// Most concurrent forwarded (absolute-form) requests (503 beyond).
    #[arg(long, default_value_t = server::DEFAULT_MAX_REQUESTS)]
    pub max_requests: usize,
    /// Most connections from one client address.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Most tunnels and forwarded requests in flight from one client address (429 beyond).
    #[arg(long, default_value_t = server::DEFAULT_MAX_TUNNELS_PER_CLIENT)]
    pub max_tunnels_per_client: usize,
    /// Most concurrent streams per HTTP/2 or HTTP/3 client connection.
    #[arg(long, default_value_t = server::DEFAULT_MAX_STREAMS_PER_CONNECTION)]
    pub max_streams_per_connection: u32,
    /// Seconds a client has to send a whole request head.
    #[arg(long, default_value_t = server::DEFAULT_HEAD_TIMEOUT.as_secs_f64())]
    pub head_timeout: f64,
    /// Seconds for TLS, HTTP/2, QUIC/HTTP/3 and SOCKS handshakes.
    #[arg(long, default_value_t = server::DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64())]
    pub handshake_timeout: f64,
    /// Seconds to reach a target (504 beyond).
    #[arg(long, default_value_t = server::DEFAULT_DIAL_TIMEOUT.as_secs_f64())]
    pub dial_timeout: f64,
    /// Seconds an origin may take to answer a forwarded request (504 beyond).
    #[arg(long, default_value_t = server::DEFAULT_RESPONSE_TIMEOUT.as_secs_f64())]
    pub response_timeout: f64,
    /// Seconds a client connection may stay open with nothing in flight.
    #[arg(long, default_value_t = server::DEFAULT_KEEPALIVE_TIMEOUT.as_secs_f64())]
    pub keepalive_timeout: f64,
    /// Most destinations of one SOCKS5 UDP association.
    #[arg(long, default_value_t = server::DEFAULT_UDP_MAX_DESTINATIONS)]
    pub udp_max_destinations: usize,
    /// Seconds after which a SOCKS5 UDP association forgets an unused destination.
    #[arg(long, default_value_t = server::DEFAULT_UDP_IDLE_TIMEOUT.as_secs_f64())]
    pub udp_idle_timeout: f64,
    /// This proxy's name in Via headers (loop detection); default burrow-RANDOM.
    #[arg(long)]
    pub pseudonym: Option<String>,
    /// Bytes in flight per tunnel direction.
    #[arg(long, default_value_t = server::DEFAULT_TUNNEL_BUFFER)]
    pub tunnel_buffer: usize,
    /// Seconds a tunnel may stay idle.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Reach targets through these proxies (repeatable: a chain, nearest first).
    #[arg(long = "upstream")]
    pub upstream: Vec<String>,
    /// Trust this CA (PEM) for upstream HTTPS, HTTP/2 and HTTP/3 proxies.
    #[arg(long = "upstream-cacert")]
    pub upstream_cacert: Option<PathBuf>,
    /// Do not verify upstream proxies' certificates.
    #[arg(long = "upstream-insecure")]
    pub upstream_insecure: bool,
    /// CONNECT-UDP URI template served.
    #[arg(long, default_value = burrow_proxy::template::DEFAULT_UDP_TEMPLATE)]
    pub udp_template: String,
    /// CONNECT-TCP (draft-ietf-httpbis-connect-tcp) URI template served.
    #[arg(long, default_value = burrow_proxy::template::DEFAULT_TCP_TEMPLATE)]
    pub tcp_template: String,
    /// Serve CONNECT-IP (RFC 9484) with addresses from this prefix (repeatable: one IPv4
    /// and one IPv6). The proxy creates a TUN device (Linux, root or CAP_NET_ADMIN) with
    /// the prefix's first address; clients get the others. Without it, CONNECT-IP gets
    /// 501. Packets are judged by the same rules as targets (--allow-net to reach private
    /// addresses).
    #[arg(long = "ip-pool", value_name = "ADDR/LEN")]
    pub ip_pool: Vec<String>,
    /// A route CONNECT-IP clients are told of and may send to (repeatable; default:
    /// everything in the pools' families).
    #[arg(long = "ip-route", value_name = "ADDR/LEN")]
    pub ip_route: Vec<String>,
    /// The CONNECT-IP TUN device's name.
    #[arg(long, default_value = "burrow0")]
    pub tun_name: String,
    /// The CONNECT-IP TUN device's MTU.
    #[arg(long, default_value_t = burrow_proxy::server::ipnet::DEFAULT_TUN_MTU)]
    pub tun_mtu: u16,
    /// CONNECT-IP URI template served.
    #[arg(long, default_value = burrow_http_core::connect_ip::DEFAULT_IP_TEMPLATE)]
    pub ip_template: String,
    /// Capsule types of CONNECT-TCP tunnels: `draft-12` (the default), `draft-08`, or
    /// `DATA,FINAL_DATA` (numbers, `0x` for hexadecimal).
    #[arg(long, default_value = "draft-12")]
    pub connect_tcp_codepoints: String,
    /// Per-destination upstream (repeatable, first match wins): PATTERN=HOPS, where PATTERN
    /// is `*`, NAME, `*.SUFFIX`, ADDR or ADDR/LEN and HOPS is `direct` or proxy URLs
    /// separated by commas, nearest first (`*.internal=direct`,
    /// `*=socks5h://127.0.0.1:9050`). Targets no rule matches take --upstream (or direct).
    #[arg(long = "route")]
    pub route: Vec<String>,
    /// Refuse targets matching PATTERN (repeatable): 403 with Proxy-Status
    /// http_request_denied, SOCKS "not allowed".
    #[arg(long = "block")]
    pub block: Vec<String>,
    /// Refuse the targets listed in FILE, one pattern per line, `#` comments (repeatable).
    #[arg(long = "block-file")]
    pub block_file: Vec<PathBuf>,
    /// Set a field on forwarded requests, curl's -H syntax: `NAME: VALUE` sets, `NAME:`
    /// strips; `PATTERN=NAME: VALUE` only for matching targets (repeatable).
    #[arg(long = "request-header")]
    pub request_header: Vec<String>,
    /// Likewise on the responses to forwarded requests (repeatable).
    #[arg(long = "response-header")]
    pub response_header: Vec<String>,
    /// Write a line per request and per tunnel to FILE (`-`: standard output).
    #[arg(long = "access-log")]
    pub access_log: Option<PathBuf>,
    /// Access log format: json (one object per line) or common (CLF, then burrow's fields).
    #[arg(long = "access-log-format", default_value = "json")]
    pub access_log_format: String,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Seconds one hook call (and the buffering of a body for hooks) may take (502 beyond).
    #[arg(long, default_value_t = server::DEFAULT_HOOK_TIMEOUT.as_secs_f64())]
    pub hook_timeout: f64,
    /// Intercept TLS in tunnels (CONNECT and SOCKS): clients get certificates minted by
    /// the CA of --ca-cert/--ca-key (default: made by `burrow-proxy ca init`), and hooks,
    /// rules and logs see the decrypted requests. Needs the CA trusted by the clients.
    #[arg(long)]
    pub intercept: bool,
    /// With --intercept, only these targets (repeatable pattern; default: all).
    #[arg(long = "intercept-hosts")]
    pub intercept_hosts: Vec<String>,
    /// With --intercept, never these targets (repeatable pattern; they are relayed).
    #[arg(long = "ignore-hosts")]
    pub ignore_hosts: Vec<String>,
    /// The interception CA's certificate (PEM).
    #[arg(long = "ca-cert")]
    pub ca_cert: Option<PathBuf>,
    /// The interception CA's private key (PEM).
    #[arg(long = "ca-key")]
    pub ca_key: Option<PathBuf>,
    /// Trust this CA (PEM) for origins: forwarded https:// requests and intercepted
    /// tunnels. Verification is on; the system's roots are trusted too.
    #[arg(long = "origin-cacert")]
    pub origin_cacert: Option<PathBuf>,
    /// Do not verify origins' certificates.
    #[arg(long = "origin-insecure")]
    pub origin_insecure: bool,
    /// HTTP/3 listeners issue QUIC-LB connection IDs (draft-ietf-quic-load-balancers)
    /// carrying this server ID, hex, 1 to 15 octets: a QUIC-aware load balancer in front of
    /// several instances routes each connection to its instance by connection ID.
    #[arg(long = "quic-lb-server-id")]
    pub quic_lb_server_id: Option<String>,
    /// QUIC-LB config rotation codepoint, 0 to 6.
    #[arg(long = "quic-lb-rotation", default_value_t = 0)]
    pub quic_lb_rotation: u8,
    /// QUIC-LB nonce octets (default: 16 minus the server ID with a key, 8 without).
    #[arg(long = "quic-lb-nonce-len")]
    pub quic_lb_nonce_len: Option<usize>,
    /// File with the QUIC-LB key (32 hex digits): server IDs are then encrypted (the
    /// single-pass case: server ID and nonce sum to 16 octets).
    #[arg(long = "quic-lb-key-file")]
    pub quic_lb_key_file: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Install a hook that does nothing (every method its default): for measuring what
    /// hooks cost by themselves.
    #[arg(long, hide = true)]
    pub bench_noop_hook: bool,
    /// A command instead of running the proxy.
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// The command line, for reading --config again on SIGHUP.
    #[arg(skip)]
    pub argv: Vec<std::ffi::OsString>,
}

/// `--auth`'s password and the hops' credentials stay out of it.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("upstream", &self.upstream.len())
            .field("route", &self.route.len())
            .field("intercept", &self.intercept)
            .finish_non_exhaustive()
    }
}

/// Commands besides running the proxy.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The certificate authority for --intercept.
    Ca {
        /// What to do.
        #[command(subcommand)]
        action: CaCmd,
    },
}

/// What to do with the CA.
#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Makes a new CA: DIR/ca.pem (give it to clients to trust) and DIR/ca-key.pem.
    Init {
        /// Where (default: ~/.burrow-proxy).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace a CA already there.
        #[arg(long)]
        force: bool,
    },
}

mod ca;
mod config_file;
mod ip;
mod quic_lb;
pub use ip::ip_network;
pub use quic_lb::MAX_KEY_FILE;

use ca::intercept_config;
pub use ca::{ca_init, default_ca_dir};
use config_file::clap_message;
pub use config_file::{config_words, parse_args, ArgsError, MAX_CONFIG_FILE};

/// Largest `--block-file` read (block lists of a few hundred thousand names fit).
pub const MAX_BLOCK_FILE: u64 = 16 << 20;

fn bad(msg: String) -> Error {
    Error::invalid_input(msg)
}

fn secs(s: f64, flag: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| bad(format!("--{flag} wants a positive number of seconds")))
}

/// Builds the proxy configuration from the command line.
pub fn config(args: &Args) -> Result<ProxyConfig, Error> {
    if args.listen.is_empty() {
        return Err(bad("at least one --listen is needed".into()));
    }
    let listeners = args
        .listen
        .iter()
        .map(|l| Listen::parse(l))
        .collect::<Result<Vec<_>, _>>()?;
    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_file_iter(c)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("reading {}: {e}", c.display())))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| bad(format!("reading {}: {e}", k.display())))?;
            (chain, Arc::new(key))
        }
        (None, None) => {
            let pki = crate::pki::TestPki::generate(&[])
                .map_err(|e| bad(format!("self-signed certificate: {e}")))?;
            (pki.chain_der.clone(), Arc::new(pki.key()))
        }
        _ => return Err(bad("--cert and --key go together".into())),
    };
    let auth = match &args.auth {
        Some(a) => {
            let (user, pass) = a
                .split_once(':')
                .ok_or_else(|| bad("--auth wants USER:PASS".into()))?;
            Some(Credentials {
                user: user.into(),
                pass: pass.into(),
            })
        }
        None => None,
    };
    let rules = rules(args)?;
    Ok(ProxyConfig {
        origin_tls: tls(args.origin_insecure, &args.origin_cacert)?,
        intercept: intercept_config(args)?,
        listeners,
        identity: Some(identity),
        auth,
        rules,
        limits: limits(args)?,
        udp_template: UdpTemplate::parse(&args.udp_template)?,
        tcp_template: Some(UdpTemplate::parse(&args.tcp_template)?),
        tcp_codepoints: codepoints(&args.connect_tcp_codepoints)?,
        ip_template: Some(burrow_proxy::template::IpTemplate::parse(
            &args.ip_template,
        )?),
        pseudonym: args.pseudonym.clone(),
        quic_lb: quic_lb::config(args)?,
        ..Default::default()
    })
}

/// TLS for origins or upstream proxies: `insecure`, or trusting `ca` besides the system's
/// roots.
fn tls(insecure: bool, ca: &Option<PathBuf>) -> Result<burrow_transport::TlsConfig, Error> {
    let mut tls = burrow_transport::TlsConfig::default();
    tls.insecure(insecure);
    if let Some(ca) = ca {
        tls.add_root_pem_file(ca)?;
    }
    Ok(tls)
}

/// The limits and timeouts of the command line.
fn limits(args: &Args) -> Result<server::Limits, Error> {
    Ok(server::Limits {
        max_tunnels: args.max_tunnels,
        max_requests: args.max_requests,
        max_connections_per_client: args.max_connections_per_client,
        max_tunnels_per_client: args.max_tunnels_per_client,
        max_streams_per_connection: args.max_streams_per_connection,
        tunnel_buffer: args.tunnel_buffer,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        head_timeout: secs(args.head_timeout, "head-timeout")?,
        handshake_timeout: secs(args.handshake_timeout, "handshake-timeout")?,
        dial_timeout: secs(args.dial_timeout, "dial-timeout")?,
        response_timeout: secs(args.response_timeout, "response-timeout")?,
        keepalive_timeout: secs(args.keepalive_timeout, "keepalive-timeout")?,
        udp_max_destinations: args.udp_max_destinations,
        udp_idle_timeout: secs(args.udp_idle_timeout, "udp-idle-timeout")?,
        hook_timeout: secs(args.hook_timeout, "hook-timeout")?,
        ..Default::default()
    })
}

/// `--connect-tcp-codepoints`.
fn codepoints(s: &str) -> Result<burrow_http_core::connect_tcp::Codepoints, Error> {
    burrow_http_core::connect_tcp::Codepoints::parse(s).ok_or_else(|| {
        Error::invalid_input(format!(
            "--connect-tcp-codepoints {s:?}: draft-12, draft-08 or DATA,FINAL_DATA"
        ))
    })
}

/// The target rules of the command line.
fn rules(args: &Args) -> Result<server::Rules, Error> {
    let mut rules = server::Rules {
        hosts: args.allow_host.clone(),
        ..Default::default()
    };
    for n in &args.allow_net {
        rules
            .networks
            .push(parse_network(n).ok_or_else(|| bad(format!("bad network {n:?}")))?);
    }
    for p in &args.allow_port {
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        let (a, b) = (a.parse::<u16>(), b.parse::<u16>());
        match (a, b) {
            (Ok(a), Ok(b)) if a <= b => rules.ports.push((a, b)),
            _ => return Err(bad(format!("bad port range {p:?}"))),
        }
    }
    Ok(rules)
}

/// Upstream hops as given (`direct`, or proxy URLs separated by commas): the route and its
/// name (the URLs with passwords left out).
fn upstream_route(
    hops: &[String],
    opts: &burrow_proxy::route::RouteOptions,
) -> Result<Option<(String, burrow_proxy::route::Route)>, Error> {
    if hops.is_empty() || hops == ["direct"] {
        return Ok(None);
    }
    let hops = hops
        .iter()
        .map(|u| burrow_proxy::route::ProxyUrl::parse(u.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    // A socks5:// hop resolves names here, out of the rules' sight: the upstream route
    // must hand names on (socks5h://).
    if hops
        .iter()
        .any(|h| h.kind == burrow_proxy::route::ProxyKind::Socks5)
    {
        return Err(bad(
            "an upstream socks5:// would resolve targets locally; use socks5h://".into(),
        ));
    }
    let name = hops
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Ok(Some((name, burrow_proxy::route::Route::build(&hops, opts))))
}

/// A hook overriding nothing.
struct NoopHook;

impl burrow_proxy::server::Hooks for NoopHook {}

/// What a reload replaces: the target rules, the routes and the hooks. `metrics` is kept
/// across reloads (its counters go on).
pub fn reloadable(
    args: &Args,
    opts: &burrow_proxy::route::RouteOptions,
    metrics: Option<Arc<Metrics>>,
) -> Result<(server::Rules, Routes, HookChain), Error> {
    let rules = rules(args)?;
    let mut routes = Routes::default();
    // Routes are named by their hops with passwords left out; hops that differ only in a
    // password get a suffix, so that each route keeps its own credentials.
    let default_hops = args.upstream.join(",");
    let default_name = upstream_route(&args.upstream, opts)?.map(|(n, _)| n);
    let mut named: Vec<(String, String)> = Vec::new();
    for spec in &args.route {
        let (pattern, hops) = Routes::parse_rule(spec)?;
        let list: Vec<String> = hops.split(',').map(|h| h.trim().to_string()).collect();
        let name = match upstream_route(&list, opts)? {
            None => "direct".to_string(),
            Some(_) if list.join(",") == default_hops => default_name.clone().unwrap_or_default(),
            Some((name, route)) => match named.iter().find(|(h, _)| *h == list.join(",")) {
                Some((_, n)) => n.clone(),
                None => {
                    let taken = |n: &str| {
                        named.iter().any(|(_, x)| x == n) || default_name.as_deref() == Some(n)
                    };
                    let mut unique = name.clone();
                    let mut i = 2;
                    while taken(&unique) {
                        unique = format!("{name}#{i}");
                        i += 1;
                    }
                    named.push((list.join(","), unique.clone()));
                    routes.upstreams.push(Upstream {
                        name: unique.clone(),
                        tcp: Some(route.stream),
                        udp: Some(route.datagram),
                    });
                    unique
                }
            },
        };
        routes.rules.push((pattern, name));
    }
    let mut hooks = HookChain::default();
    if let Some(m) = metrics {
        hooks.push(m);
    }
    if args.bench_noop_hook {
        hooks.push(Arc::new(NoopHook));
    }
    let mut blocked = Vec::new();
    for b in &args.block {
        blocked.push(Pattern::parse(b)?);
    }
    for f in &args.block_file {
        let text = config_file::read_bounded(f, MAX_BLOCK_FILE)?;
        blocked.extend(
            BlockList::parse_file(&text).map_err(|e| bad(format!("{}: {e}", f.display())))?,
        );
    }
    if !blocked.is_empty() {
        hooks.push(Arc::new(BlockList::new(blocked)));
    }
    let mut header_rules = Vec::new();
    for h in &args.request_header {
        header_rules.push(HeaderRule::parse(h, false)?);
    }
    for h in &args.response_header {
        header_rules.push(HeaderRule::parse(h, true)?);
    }
    if !header_rules.is_empty() {
        hooks.push(Arc::new(HeaderRules::new(header_rules)));
    }
    if let Some(path) = &args.access_log {
        let format = LogFormat::parse(&args.access_log_format)?;
        hooks.push(Arc::new(AccessLog::open(path, format)?));
    }
    Ok((rules, routes, hooks))
}

fn scheme(l: &Listen) -> (String, std::net::SocketAddr) {
    match l {
        Listen::Http(a) => ("http".into(), *a),
        Listen::Https(a) => ("https".into(), *a),
        Listen::Https1(a) => ("https1".into(), *a),
        Listen::H3(a) => ("h3".into(), *a),
        Listen::Socks(a) => ("socks5".into(), *a),
    }
}

/// Runs until SIGINT or SIGTERM, then stops accepting and lets open tunnels finish (5 s).
/// SIGHUP reads the configuration file again (see [`reloadable`]).
pub async fn run(args: Args) -> Result<(), Error> {
    if let Some(Cmd::Ca {
        action: CaCmd::Init { dir, force },
    }) = args.command
    {
        let (cert, key) = ca_init(dir, force)?;
        println!(
            "burrow-proxy: CA certificate {} (clients trust this: curl --cacert {0})\n\
             burrow-proxy: CA key {} (keep it private)",
            cert.display(),
            key.display()
        );
        return Ok(());
    }
    let mut cfg = config(&args)?;
    if let Some(ip) = ip_network(&args)? {
        let net = server::IpNetwork::open(&ip)?;
        println!("burrow-proxy: CONNECT-IP on TUN device {}", net.name());
        cfg.ip = Some(net);
    }
    // Upstream CONNECT-TCP hops (`?connect=tcp`) use the codepoints this proxy serves.
    let opts = burrow_proxy::route::RouteOptions {
        proxy_tls: tls(args.upstream_insecure, &args.upstream_cacert)?,
        tcp_codepoints: cfg.tcp_codepoints,
        ..Default::default()
    };
    let (tcp, udp) = match upstream_route(&args.upstream, &opts)? {
        None => (None, None),
        Some((name, route)) => {
            cfg.upstream_name = Some(name);
            (Some(route.stream), Some(route.datagram))
        }
    };
    if !args.upstream.is_empty() && !args.allow_net.is_empty() {
        eprintln!(
            "burrow-proxy: warning: with --upstream, names are resolved upstream, so --allow-net \
             can only judge IP-literal targets; names are refused (use --allow-host for them)"
        );
    }
    let metrics = args.metrics.map(|_| Arc::new(Metrics::new()));
    let (rules, routes, hooks) = reloadable(&args, &opts, metrics.clone())?;
    cfg.rules = rules;
    cfg.routes = routes;
    cfg.hooks = hooks;
    // Status lines must not kill the proxy if whoever started it stopped reading stdout.
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    };
    let metrics_task = match (&metrics, args.metrics) {
        (Some(m), Some(addr)) => Some(m.clone().serve(addr).await?),
        _ => None,
    };
    let running = server::start(Proxy::new(cfg, tcp, udp)?).await?;
    for l in &running.addrs {
        let (s, a) = scheme(l);
        say(format!("burrow-proxy listening on {s}://{a}"));
    }
    if let Some((bound, _)) = &metrics_task {
        say(format!("burrow-proxy metrics on http://{bound}/metrics"));
    }
    let signal = |k| {
        tokio::signal::unix::signal(k)
            .map_err(|e| Error::local_io("installing a signal handler", e))
    };
    use tokio::signal::unix::SignalKind;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match reload(&args, &opts, metrics.clone(), running.proxy()) {
                Ok(()) => say("burrow-proxy reloaded its configuration".into()),
                Err(e) => eprintln!(
                    "burrow-proxy: reload refused, the running configuration stays: {e}"
                ),
            },
        }
    }
    say("burrow-proxy shutting down".into());
    running.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// Reads the command line and configuration file again and applies what can change while
/// running; says which other settings changed (they need a restart).
fn reload(
    old: &Args,
    opts: &burrow_proxy::route::RouteOptions,
    metrics: Option<Arc<Metrics>>,
    proxy: &Proxy,
) -> Result<(), Error> {
    let new = match parse_args(&old.argv) {
        Ok(a) => a,
        Err(ArgsError::Config(e)) => return Err(e),
        Err(ArgsError::Clap(e)) => return Err(bad(clap_message(&e))),
    };
    let (rules, routes, hooks) = reloadable(&new, opts, metrics)?;
    proxy.reload(rules, routes, hooks)?;
    let intercept = |a: &Args| {
        format!(
            "{} {:?} {:?} {:?} {:?} {:?} {}",
            a.intercept,
            a.intercept_hosts,
            a.ignore_hosts,
            a.ca_cert,
            a.ca_key,
            a.origin_cacert,
            a.origin_insecure
        )
    };
    let fixed = [
        ("listen", old.listen != new.listen),
        ("auth", old.auth != new.auth),
        ("cert/key", old.cert != new.cert || old.key != new.key),
        ("upstream", old.upstream != new.upstream),
        ("metrics", old.metrics != new.metrics),
        ("QUIC-LB", quic_lb::summary(old) != quic_lb::summary(&new)),
        // Limits that are not valid count as changed (they are not applied either way).
        (
            "limits and timeouts",
            format!("{:?}", limits(old).ok()) != format!("{:?}", limits(&new).ok()),
        ),
        (
            "interception and origin TLS",
            intercept(old) != intercept(&new),
        ),
        (
            "pseudonym, udp-template, tcp-template, connect-tcp-codepoints, CONNECT-IP",
            old.pseudonym != new.pseudonym
                || (
                    &old.ip_pool,
                    &old.ip_route,
                    &old.tun_name,
                    old.tun_mtu,
                    &old.ip_template,
                ) != (
                    &new.ip_pool,
                    &new.ip_route,
                    &new.tun_name,
                    new.tun_mtu,
                    &new.ip_template,
                )
                || old.udp_template != new.udp_template
                || old.tcp_template != new.tcp_template
                || old.connect_tcp_codepoints != new.connect_tcp_codepoints,
        ),
    ];
    for (what, changed) in fixed {
        if changed {
            eprintln!("burrow-proxy: {what} changed: it takes a restart");
        }
    }
    Ok(())
}
