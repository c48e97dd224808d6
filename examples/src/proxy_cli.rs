//! `burrow-proxy`: a forward proxy for every HTTP version and tunnel kind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burrow_proxy::server::{self, rules::parse_network, Credentials, Listen, Proxy, ProxyConfig};
use burrow_proxy::template::UdpTemplate;
use burrow_transport::rustls::pki_types::pem::PemObject;
use burrow_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use burrow_transport::Error;
use clap::Parser;

/// Command line of `burrow-proxy`.
#[derive(Parser, Debug)]
#[command(
    name = "burrow-proxy",
    about = "Forward proxy: HTTP/1.1, HTTP/2, HTTP/3 CONNECT and CONNECT-UDP, SOCKS5/4a"
)]
pub struct Args {
    /// Where to listen (repeatable): http://ADDR, https://ADDR, https1://ADDR (TLS, HTTP/1.1
    /// only), h3://ADDR, socks5://ADDR.
    #[arg(long = "listen", required = true)]
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
}

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
    Ok(ProxyConfig {
        listeners,
        identity: Some(identity),
        auth,
        rules,
        limits: server::Limits {
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
            ..Default::default()
        },
        udp_template: UdpTemplate::parse(&args.udp_template)?,
        pseudonym: args.pseudonym.clone(),
        ..Default::default()
    })
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
pub async fn run(args: Args) -> Result<(), Error> {
    let cfg = config(&args)?;
    let (tcp, udp) = if args.upstream.is_empty() {
        (None, None)
    } else {
        let hops = args
            .upstream
            .iter()
            .map(|u| burrow_proxy::route::ProxyUrl::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        // A socks5:// hop resolves names here, out of the rules' sight: the upstream
        // route must hand names on (socks5h://).
        if hops
            .iter()
            .any(|h| h.kind == burrow_proxy::route::ProxyKind::Socks5)
        {
            return Err(bad(
                "--upstream socks5:// would resolve targets locally; use socks5h://".into(),
            ));
        }
        let mut tls = burrow_transport::TlsConfig::default();
        tls.insecure(args.upstream_insecure);
        if let Some(ca) = &args.upstream_cacert {
            tls.add_root_pem_file(ca)?;
        }
        let opts = burrow_proxy::route::RouteOptions {
            proxy_tls: tls,
            ..Default::default()
        };
        let route = burrow_proxy::route::Route::build(&hops, &opts);
        (Some(route.stream), Some(route.datagram))
    };
    if !args.upstream.is_empty() && !args.allow_net.is_empty() {
        eprintln!(
            "burrow-proxy: warning: with --upstream, names are resolved upstream, so --allow-net \
             can only judge IP-literal targets; names are refused (use --allow-host for them)"
        );
    }
    let running = server::start(Proxy::new(cfg, tcp, udp)?).await?;
    // Status lines must not kill the proxy if whoever started it stopped reading stdout.
    let say = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    };
    for l in &running.addrs {
        let (s, a) = scheme(l);
        say(format!("burrow-proxy listening on {s}://{a}"));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::local_io("installing SIGTERM handler", e))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    say("burrow-proxy shutting down".into());
    running.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
