//! `burrow`: a curl-like command line client.
//!
//! Options keep curl's names, meanings, defaults and exit codes (`man curl` is the
//! reference); `burrow --help` lists them. What it adds: any chain of proxies (`-x`
//! repeated, nearest first), HTTP/3 and MASQUE hops, and `-Z` transfers multiplexed over one
//! HTTP/2 or HTTP/3 connection per route.
//!
//! The pieces: [`config`] (`-K` files), [`glob`] (URL globbing), `plan` (which URLs go where),
//! `request` (the request each transfer sends), `transfer` (sending it, retries, output),
//! [`writeout`] (`-w`), `progress` (the meter), `connect` (name resolution and sockets),
//! `proxies` (the hops), [`exit`] (curl's exit codes).

pub mod config;
pub mod exit;
pub mod glob;
pub mod writeout;

mod connect;
mod output;
mod plan;
mod progress;
mod proxies;
mod request;
mod transfer;

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

/// Command line of `burrow`.
#[derive(Parser, Clone, Default)]
#[command(
    name = "burrow",
    about = "HTTP client: any HTTP version over any chain of proxies",
    version,
    disable_help_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Help: every option by category; `--help category` lists the categories, `--help
    /// NAME` shows one.
    #[arg(
        short = 'h',
        long = "help",
        num_args = 0..=1,
        default_missing_value = "all",
        value_name = "CATEGORY",
        help_heading = "curl"
    )]
    pub help: Option<String>,

    /// Print a completion script for this shell (bash, zsh, fish, elvish, powershell).
    #[arg(long = "completions", value_name = "SHELL", help_heading = "curl")]
    pub completions: Option<clap_complete::Shell>,

    /// Print the manual page (roff), as `man/burrow.1` holds it.
    #[arg(long = "manpage", help_heading = "curl")]
    pub manpage: bool,

    /// URLs to fetch (`http://` or `https://`; no scheme means `http://`). Globbing:
    /// `{a,b}`, `[1-9]`, `[a-z]`, `[001-100:10]`.
    pub urls: Vec<String>,

    /// A URL to fetch (repeatable; same as a URL argument).
    #[arg(long = "url", help_heading = "curl")]
    pub url: Vec<String>,

    /// Read options from this file (`-` for standard input), as curl's `-K`.
    #[arg(short = 'K', long = "config", help_heading = "curl")]
    pub config: Vec<String>,

    /// Do not glob: `{}` and `[]` in URLs are literal.
    #[arg(short = 'g', long = "globoff", help_heading = "curl")]
    pub globoff: bool,

    // ---- request ------------------------------------------------------------------------
    /// Request method (default GET, POST with data, PUT with -T, HEAD with -I).
    #[arg(short = 'X', long = "request", help_heading = "http")]
    pub method: Option<String>,

    /// Extra request header, `Name: value` (repeatable). `Name:` removes a default header;
    /// `@file` reads headers from a file.
    #[arg(short = 'H', long = "header", help_heading = "http")]
    pub headers: Vec<String>,

    /// POST data (repeatable, joined with `&`); `@file` reads a file without CR and LF.
    #[arg(
        short = 'd',
        long = "data",
        visible_alias = "data-ascii",
        help_heading = "post"
    )]
    pub data: Vec<String>,

    /// POST data as is; `@file` reads a file whole, `@-` standard input.
    #[arg(long = "data-binary", help_heading = "post")]
    pub data_binary: Vec<String>,

    /// POST data with no `@` handling.
    #[arg(long = "data-raw", help_heading = "post")]
    pub data_raw: Vec<String>,

    /// POST data URL-encoded: `content`, `=content`, `name=content`, `@file`, `name@file`.
    #[arg(long = "data-urlencode", help_heading = "post")]
    pub data_urlencode: Vec<String>,

    /// JSON data (as --data-binary, with JSON `Content-Type` and `Accept`).
    #[arg(long = "json", help_heading = "post")]
    pub json: Vec<String>,

    /// Put the data in the URL's query and send a GET (HEAD with -I).
    #[arg(short = 'G', long = "get", help_heading = "post")]
    pub get: bool,

    /// A multipart form field: `name=value`, `name=@file`, `name=<file`, with `;type=`
    /// and `;filename=` (repeatable).
    #[arg(short = 'F', long = "form", help_heading = "post")]
    pub form: Vec<String>,

    /// A multipart form field taken literally (no `@`, `<` or `;type=`).
    #[arg(long = "form-string", help_heading = "post")]
    pub form_string: Vec<String>,

    /// Upload this file (PUT; `-` for standard input). A URL ending in `/` gets the name.
    #[arg(short = 'T', long = "upload-file", help_heading = "upload")]
    pub upload_file: Option<String>,

    /// Fetch the head only (HEAD request).
    #[arg(short = 'I', long = "head", help_heading = "http")]
    pub head: bool,

    /// Follow redirects.
    #[arg(short = 'L', long = "location", help_heading = "http")]
    pub location: bool,

    /// Like -L, and sends credentials to other hosts too.
    #[arg(long = "location-trusted", help_heading = "auth")]
    pub location_trusted: bool,

    /// At most this many redirects with -L (default 50; -1: no limit).
    #[arg(
        long = "max-redirs",
        default_value_t = 50,
        allow_negative_numbers = true,
        help_heading = "http"
    )]
    pub max_redirs: i64,

    /// Keep POST after a 301 with -L.
    #[arg(long = "post301", help_heading = "http")]
    pub post301: bool,

    /// Keep POST after a 302 with -L.
    #[arg(long = "post302", help_heading = "http")]
    pub post302: bool,

    /// Keep POST after a 303 with -L.
    #[arg(long = "post303", help_heading = "http")]
    pub post303: bool,

    /// The `User-Agent` to send.
    #[arg(short = 'A', long = "user-agent", help_heading = "http")]
    pub user_agent: Option<String>,

    /// The `Referer` to send; `;auto` (alone or after a URL) also sends one on redirects.
    #[arg(short = 'e', long = "referer", help_heading = "http")]
    pub referer: Option<String>,

    /// Server credentials `USER[:PASSWORD]` (Basic); asks for the password when missing.
    #[arg(short = 'u', long = "user", help_heading = "auth")]
    pub user: Option<String>,

    /// Use Basic authentication (the default).
    #[arg(long = "basic", help_heading = "auth")]
    pub basic: bool,

    /// An OAuth 2 bearer token for the server.
    #[arg(long = "oauth2-bearer", help_heading = "auth")]
    pub oauth2_bearer: Option<String>,

    /// Cookies to send: `NAME=VALUE[; ...]`, or a cookie file to read.
    #[arg(short = 'b', long = "cookie", help_heading = "http")]
    pub cookie: Vec<String>,

    /// Write every cookie to this file after the transfers (Netscape format).
    #[arg(short = 'c', long = "cookie-jar", help_heading = "http")]
    pub cookie_jar: Option<PathBuf>,

    /// Ask for a compressed response and decode it.
    #[arg(long = "compressed", help_heading = "http")]
    pub compressed: bool,

    /// Retrieve only this byte range (`0-499`, `500-`, `-500`, lists).
    #[arg(
        short = 'r',
        long = "range",
        allow_hyphen_values = true,
        help_heading = "http"
    )]
    pub range: Option<String>,

    /// Resume at this offset (`-`: from the size of the output file).
    #[arg(
        short = 'C',
        long = "continue-at",
        allow_hyphen_values = true,
        help_heading = "http"
    )]
    pub continue_at: Option<String>,

    /// Fail (exit 22) on HTTP status 400 and above, without writing the body.
    #[arg(short = 'f', long = "fail", help_heading = "http")]
    pub fail: bool,

    /// Fail (exit 22) on HTTP status 400 and above, after writing the body.
    #[arg(
        long = "fail-with-body",
        conflicts_with = "fail",
        help_heading = "http"
    )]
    pub fail_with_body: bool,

    /// Fail (exit 63) for a body larger than this (suffixes k, M, G).
    #[arg(long = "max-filesize", help_heading = "output")]
    pub max_filesize: Option<String>,

    /// At most this many bytes per second (suffixes k, M, G).
    #[arg(long = "limit-rate", help_heading = "output")]
    pub limit_rate: Option<String>,

    /// Retry transient failures this many times (timeouts, 408, 429, 500, 502, 503, 504).
    #[arg(long = "retry", default_value_t = 0, help_heading = "curl")]
    pub retry: u32,

    /// Seconds between retries (default: 1, doubling up to 10 minutes).
    #[arg(long = "retry-delay", help_heading = "curl")]
    pub retry_delay: Option<u64>,

    /// Stop retrying after this many seconds in all.
    #[arg(long = "retry-max-time", help_heading = "curl")]
    pub retry_max_time: Option<u64>,

    /// Retry on any error, not only transient ones.
    #[arg(long = "retry-all-errors", help_heading = "curl")]
    pub retry_all_errors: bool,

    /// Retry a refused connection too.
    #[arg(long = "retry-connrefused", help_heading = "curl")]
    pub retry_connrefused: bool,

    // ---- output -------------------------------------------------------------------------
    /// Write the body to this file (`-`: standard output); one per URL, in order. `#1` is
    /// the first glob's text.
    #[arg(short = 'o', long = "output", help_heading = "output")]
    pub output: Vec<String>,

    /// Write the body to a file named like the URL's last path segment (one per URL).
    #[arg(
        short = 'O',
        long = "remote-name",
        action = ArgAction::Append,
        num_args = 0,
        default_missing_value = ""
    , help_heading = "output")]
    pub remote_name: Vec<String>,

    /// -O for every URL.
    #[arg(long = "remote-name-all", help_heading = "output")]
    pub remote_name_all: bool,

    /// With -O, take the file name from `Content-Disposition`.
    #[arg(short = 'J', long = "remote-header-name", help_heading = "output")]
    pub remote_header_name: bool,

    /// The directory -o and -O files go in.
    #[arg(long = "output-dir", help_heading = "output")]
    pub output_dir: Option<PathBuf>,

    /// Create the directories an output file needs.
    #[arg(long = "create-dirs", help_heading = "output")]
    pub create_dirs: bool,

    /// Write the response heads to this file (`-`: standard output).
    #[arg(short = 'D', long = "dump-header", help_heading = "output")]
    pub dump_header: Option<String>,

    /// Include the response head in the output.
    #[arg(short = 'i', long = "include", help_heading = "output")]
    pub include: bool,

    /// What to write after each transfer (`%{http_code}`, `%{json}`, …; `@file`).
    #[arg(short = 'w', long = "write-out", help_heading = "output")]
    pub write_out: Option<String>,

    /// Silent: no progress meter, no error messages.
    #[arg(short = 's', long = "silent", help_heading = "output")]
    pub silent: bool,

    /// With -s, still show errors.
    #[arg(short = 'S', long = "show-error", help_heading = "output")]
    pub show_error: bool,

    /// No progress meter (errors still shown).
    #[arg(long = "no-progress-meter", help_heading = "output")]
    pub no_progress_meter: bool,

    /// A progress bar instead of the meter.
    #[arg(short = '#', long = "progress-bar", help_heading = "output")]
    pub progress_bar: bool,

    /// Verbose: connection details and headers on standard error.
    #[arg(short = 'v', long = "verbose", help_heading = "verbose")]
    pub verbose: bool,

    /// Write a trace of what was sent and received to this file (`-`: standard error).
    #[arg(long = "trace-ascii", help_heading = "verbose")]
    pub trace_ascii: Option<String>,

    /// Transfer the URLs in parallel.
    #[arg(short = 'Z', long = "parallel", help_heading = "curl")]
    pub parallel: bool,

    /// At most this many transfers at once with -Z (default 50, at most 300).
    #[arg(long = "parallel-max", default_value_t = 50, help_heading = "curl")]
    pub parallel_max: usize,

    /// Stop at the first transfer that fails.
    #[arg(long = "fail-early", help_heading = "curl")]
    pub fail_early: bool,

    // ---- connections --------------------------------------------------------------------
    /// Do not verify TLS certificates.
    #[arg(short = 'k', long = "insecure", help_heading = "tls")]
    pub insecure: bool,

    /// Trust the CA certificates in this PEM file.
    #[arg(long = "cacert", help_heading = "tls")]
    pub cacert: Option<PathBuf>,

    /// TLS 1.2 or later (the default: burrow speaks 1.2 and 1.3).
    #[arg(long = "tlsv1.2", help_heading = "tls")]
    pub tlsv1_2: bool,

    /// TLS 1.3 only.
    #[arg(long = "tlsv1.3", help_heading = "tls")]
    pub tlsv1_3: bool,

    /// The highest TLS version to use: 1.2, 1.3 or default.
    #[arg(long = "tls-max", value_name = "VERSION", help_heading = "tls")]
    pub tls_max: Option<String>,

    /// Client certificate (PEM chain; with its key unless --key is given) for origins.
    #[arg(short = 'E', long = "cert", help_heading = "tls")]
    pub cert: Option<PathBuf>,

    /// The private key (PEM) of --cert.
    #[arg(long = "key", help_heading = "tls")]
    pub key: Option<PathBuf>,

    /// Client certificate (PEM) for HTTPS, HTTP/2 and HTTP/3 proxies (per hop: see
    /// --proxy-cacert).
    #[arg(long = "proxy-cert", help_heading = "tls")]
    pub proxy_cert: Vec<PathBuf>,

    /// The private key (PEM) of --proxy-cert.
    #[arg(long = "proxy-key", help_heading = "tls")]
    pub proxy_key: Vec<PathBuf>,

    /// The origin's public key must be one of these: `sha256//BASE64[;…]` or a key file.
    #[arg(long = "pinnedpubkey", help_heading = "tls")]
    pub pinnedpubkey: Option<String>,

    /// Use HTTP/1.1 only.
    #[arg(
        long = "http1.1",
        conflicts_with_all = ["http2", "http2_prior_knowledge"],
        help_heading = "http"
    )]
    pub http1_1: bool,

    /// Use HTTP/2 when the server agrees (over TLS, ALPN); the default.
    #[arg(long = "http2", help_heading = "http")]
    pub http2: bool,

    /// Use HTTP/2 without negotiation: h2c over cleartext, `h2` only over TLS.
    #[arg(long = "http2-prior-knowledge", help_heading = "http")]
    pub http2_prior_knowledge: bool,

    /// Try HTTP/3 first (https only), falling back to HTTP/2 or HTTP/1.1 over TCP.
    #[arg(long = "http3", conflicts_with = "http3_only", help_heading = "http")]
    pub http3: bool,

    /// Use HTTP/3 only (https only); fail rather than fall back.
    #[arg(long = "http3-only", help_heading = "http")]
    pub http3_only: bool,

    /// Use these addresses for HOST:PORT: `HOST:PORT:ADDR[,ADDR]` (repeatable).
    #[arg(long = "resolve", help_heading = "dns")]
    pub resolve: Vec<String>,

    /// Connect to HOST2:PORT2 for HOST1:PORT1: `HOST1:PORT1:HOST2:PORT2` (repeatable; an
    /// empty part matches any).
    #[arg(long = "connect-to", help_heading = "connection")]
    pub connect_to: Vec<String>,

    /// Read and write the Alt-Svc cache (which origins speak HTTP/3) in this file, in
    /// curl's format.
    #[arg(long = "alt-svc", value_name = "FILE", help_heading = "http")]
    pub alt_svc: Option<PathBuf>,

    /// Resolve names with this DNS-over-HTTPS server (RFC 8484), reached through the same
    /// proxies as the transfer: no name is asked of the local DNS.
    #[arg(long = "doh-url", help_heading = "dns")]
    pub doh_url: Option<String>,

    /// Resolve names to IPv4 addresses only.
    #[arg(
        short = '4',
        long = "ipv4",
        conflicts_with = "ipv6",
        help_heading = "dns"
    )]
    pub ipv4: bool,

    /// Resolve names to IPv6 addresses only.
    #[arg(short = '6', long = "ipv6", help_heading = "dns")]
    pub ipv6: bool,

    /// Connect from this local address or through this interface (`if!NAME`, `host!ADDR`).
    #[arg(long = "interface", help_heading = "connection")]
    pub interface: Option<String>,

    /// Connect from this local port or range (`N` or `N-M`).
    #[arg(long = "local-port", help_heading = "connection")]
    pub local_port: Option<String>,

    /// Connect through this Unix domain socket instead of TCP.
    #[arg(long = "unix-socket", help_heading = "connection")]
    pub unix_socket: Option<PathBuf>,

    /// TCP keepalive idle time in seconds (default 60).
    #[arg(long = "keepalive-time", help_heading = "connection")]
    pub keepalive_time: Option<u64>,

    /// Turn TCP keepalive off.
    #[arg(long = "no-keepalive", help_heading = "connection")]
    pub no_keepalive: bool,

    /// Set TCP_NODELAY (the default).
    #[arg(long = "tcp-nodelay", help_heading = "connection")]
    pub tcp_nodelay: bool,

    /// Maximum time for the whole transfer, in seconds (fractions allowed).
    #[arg(short = 'm', long = "max-time", help_heading = "connection")]
    pub max_time: Option<f64>,

    /// Maximum time to connect (TCP and TLS), in seconds.
    #[arg(long = "connect-timeout", help_heading = "connection")]
    pub connect_timeout: Option<f64>,

    // ---- proxies ------------------------------------------------------------------------
    /// Proxy URL (repeatable: a chain, nearest first): http, https, h2, h3, socks5, socks5h,
    /// socks4a; credentials in userinfo. `?connect=tcp` on an HTTP proxy sends TCP through
    /// it as CONNECT-TCP (templated, draft-ietf-httpbis-connect-tcp; a template in the
    /// path, else `/.well-known/masque/tcp/{target_host}/{target_port}/`). `?connect=ip`
    /// sends TCP and UDP through one CONNECT-IP tunnel (RFC 9484) by a userspace TCP/IP
    /// stack, no privilege needed (a `{target}`/`{ipproto}` template in the path, else
    /// `/.well-known/masque/ip/{target}/{ipproto}/`).
    #[arg(short = 'x', long = "proxy", help_heading = "proxy")]
    pub proxy: Vec<String>,

    /// A proxy reached before the -x proxies (nearest hop).
    #[arg(long = "preproxy", help_heading = "proxy")]
    pub preproxy: Option<String>,

    /// A SOCKS5 proxy, names resolved here (`HOST[:PORT]`).
    #[arg(long = "socks5", help_heading = "proxy")]
    pub socks5: Option<String>,

    /// A SOCKS5 proxy that resolves names (`HOST[:PORT]`).
    #[arg(long = "socks5-hostname", help_heading = "proxy")]
    pub socks5_hostname: Option<String>,

    /// A SOCKS4a proxy (`HOST[:PORT]`).
    #[arg(long = "socks4a", help_heading = "proxy")]
    pub socks4a: Option<String>,

    /// An HTTP proxy spoken to in HTTP/1.0 for CONNECT (`HOST[:PORT]`; replaces -x).
    #[arg(long = "proxy1.0", value_name = "HOST[:PORT]", help_heading = "proxy")]
    pub proxy10: Option<String>,

    /// Tunnel `http://` URLs through the last HTTP proxy with CONNECT too (by default they
    /// are forwarded to it in absolute-form, as curl does; `https://` always tunnels).
    #[arg(short = 'p', long = "proxytunnel", help_heading = "proxy")]
    pub proxytunnel: bool,

    /// Basic authentication with proxies (the default).
    #[arg(long = "proxy-basic", help_heading = "proxy")]
    pub proxy_basic: bool,

    /// Credentials USER:PASS for the last -x proxy (unless its URL has its own).
    #[arg(short = 'U', long = "proxy-user", help_heading = "proxy")]
    pub proxy_user: Option<String>,

    /// Extra header for requests to HTTP proxies: CONNECTs, and requests forwarded to the
    /// last one (repeatable).
    #[arg(long = "proxy-header", help_heading = "proxy")]
    pub proxy_header: Vec<String>,

    /// Trust the CA certificates in this PEM file for HTTPS, HTTP/2 and HTTP/3 proxies.
    /// Per hop: after an -x it is that hop's; before any -x, every hop's.
    #[arg(long = "proxy-cacert", help_heading = "proxy")]
    pub proxy_cacert: Vec<PathBuf>,

    /// Do not verify proxies' TLS certificates (per hop, as --proxy-cacert).
    #[arg(
        long = "proxy-insecure",
        action = ArgAction::Append,
        num_args = 0,
        default_missing_value = "",
        help_heading = "proxy"
    )]
    pub proxy_insecure: Vec<String>,

    /// Per-hop TLS settings, worked out from where the options stand (not an option).
    #[arg(skip)]
    pub hop_tls: HopTlsPlan,

    /// Use HTTP/2 with HTTPS proxies when they agree (offered by default).
    #[arg(long = "proxy-http2", help_heading = "proxy")]
    pub proxy_http2: bool,

    /// Speak HTTP/3 to `https://` proxies (as if they were written `h3://`).
    #[arg(long = "proxy-http3", help_heading = "proxy")]
    pub proxy_http3: bool,

    /// CONNECT-UDP URI template for HTTP proxies (default
    /// `/.well-known/masque/udp/{target_host}/{target_port}/`).
    #[arg(long = "proxy-udp-template", help_heading = "proxy")]
    pub proxy_udp_template: Option<String>,

    /// Capsule types of CONNECT-TCP hops (`?connect=tcp`): `draft-12` (the default),
    /// `draft-08`, or `DATA,FINAL_DATA` (numbers, `0x` for hexadecimal).
    #[arg(long = "connect-tcp-codepoints", help_heading = "proxy")]
    pub connect_tcp_codepoints: Option<String>,

    /// Hosts (comma-separated, `*` for all) reached without any proxy.
    #[arg(long = "noproxy", help_heading = "proxy")]
    pub noproxy: Option<String>,
}

/// TLS settings for a proxy hop: `--proxy-cacert`, `--proxy-insecure`, `--proxy-cert`,
/// `--proxy-key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopTls {
    /// CA files.
    pub cacert: Vec<PathBuf>,
    /// No verification.
    pub insecure: bool,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

/// Which hop each proxy TLS option is for: an option after the n-th `-x` is that hop's;
/// one before any `-x` is every hop's (and the only ones for `--preproxy`, `--socks5` and
/// environment proxies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopTlsPlan {
    /// For every hop.
    pub all: HopTls,
    /// For the n-th `-x` hop (on top of `all`).
    pub per_x: Vec<HopTls>,
}

impl HopTlsPlan {
    /// The settings of the n-th `-x` hop (`None`: a hop not from `-x`).
    pub fn for_hop(&self, x: Option<usize>) -> HopTls {
        let mut t = self.all.clone();
        if let Some(own) = x.and_then(|i| self.per_x.get(i)) {
            t.cacert.extend(own.cacert.iter().cloned());
            t.insecure |= own.insecure;
            t.cert = own.cert.clone().or(t.cert);
            t.key = own.key.clone().or(t.key);
        }
        t
    }
}

/// The parsed command line: the options and the order in which URLs, outputs and data
/// pieces were given (curl pairs the n-th `-o`/`-O` with the n-th URL and joins data in
/// command-line order).
#[derive(Clone, Default)]
pub struct Cli {
    /// The options.
    pub args: Args,
    /// The URLs, in order (`--url` and plain arguments).
    pub urls: Vec<String>,
    /// The outputs, in order: `Some(name)` for `-o`, `None` for `-O`.
    pub outputs: Vec<Option<String>>,
    /// The data pieces, in order, with the option that gave each.
    pub data: Vec<request::Data>,
}

/// Parses a command line (after `-K` files are read); errors are clap's.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let m = Args::command().try_get_matches_from(args)?;
    let mut args = Args::from_arg_matches(&m)?;
    args.hop_tls = hop_tls_plan(&m, &args);
    fn ordered<'a, T: Clone + 'a>(
        m: &clap::ArgMatches,
        id: &str,
        values: impl IntoIterator<Item = T>,
    ) -> Vec<(usize, T)> {
        let idx: Vec<usize> = m.indices_of(id).map(|i| i.collect()).unwrap_or_default();
        idx.into_iter().zip(values).collect()
    }
    let mut urls = ordered(&m, "urls", args.urls.clone());
    urls.extend(ordered(&m, "url", args.url.clone()));
    urls.sort_by_key(|(i, _)| *i);
    let mut outputs = ordered(&m, "output", args.output.iter().cloned().map(Some));
    // Each -O is a value of its own (empty), so that each has its place in the order.
    let dashes: Vec<usize> = m
        .indices_of("remote_name")
        .map(|i| i.collect())
        .unwrap_or_default();
    outputs.extend(dashes.into_iter().map(|i| (i, None)));
    outputs.sort_by_key(|(i, _)| *i);
    let mut data = Vec::new();
    use request::DataKind as K;
    for (id, kind, list) in [
        ("data", K::Ascii, &args.data),
        ("data_binary", K::Binary, &args.data_binary),
        ("data_raw", K::Raw, &args.data_raw),
        ("data_urlencode", K::UrlEncode, &args.data_urlencode),
        ("json", K::Json, &args.json),
    ] {
        data.extend(
            ordered(&m, id, list.iter().cloned())
                .into_iter()
                .map(|(i, v)| (i, request::Data { kind, value: v })),
        );
    }
    data.sort_by_key(|(i, _)| *i);
    Ok(Cli {
        args,
        urls: urls.into_iter().map(|(_, u)| u).collect(),
        outputs: outputs.into_iter().map(|(_, o)| o).collect(),
        data: data.into_iter().map(|(_, d)| d).collect(),
    })
}

/// The options hold credentials (`-u`, `-U`, `--oauth2-bearer`, `-b`, `-H`, URLs with
/// userinfo): `Debug` shows none of them.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("urls", &(self.urls.len() + self.url.len()))
            .field("method", &self.method)
            .field("verbose", &self.verbose)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("args", &self.args)
            .field("urls", &self.urls.len())
            .field("outputs", &self.outputs.len())
            .field("data", &self.data.len())
            .finish()
    }
}

/// The option categories of `--help NAME`, as curl names them.
pub const CATEGORIES: [(&str, &str); 11] = [
    ("auth", "Different types of authentication methods"),
    ("connection", "Low level networking operations"),
    ("curl", "The command line tool itself"),
    ("dns", "General DNS options"),
    ("http", "HTTP and HTTPS protocol"),
    ("output", "Filesystem output"),
    ("post", "HTTP POST specific"),
    ("proxy", "Options for proxies"),
    ("tls", "TLS/SSL related"),
    ("upload", "All options for uploads"),
    (
        "verbose",
        "Options related to any kind of command line output",
    ),
];

/// What `--help TOPIC` prints: every option (`all`), the categories (`category`), or one
/// category's options; `None` for an unknown topic.
pub fn help_text(topic: &str) -> Option<String> {
    let cmd = Args::command();
    match topic {
        "all" => Some(cmd.clone().render_help().to_string()),
        "category" => Some(
            CATEGORIES
                .iter()
                .map(|(c, d)| format!(" {c:<11} {d}\n"))
                .collect(),
        ),
        t if CATEGORIES.iter().any(|(c, _)| *c == t) => {
            let cmd = cmd.disable_version_flag(true).mut_args(|a| {
                if a.is_positional() || a.get_help_heading() == Some(t) {
                    a
                } else {
                    a.hide(true)
                }
            });
            Some(cmd.clone().render_help().to_string())
        }
        _ => None,
    }
}

/// The manual page, generated from the same definitions as `--help`.
pub fn manpage() -> Vec<u8> {
    let mut out = Vec::new();
    let _ = clap_mangen::Man::new(Args::command()).render(&mut out);
    out
}

/// Answers `--help`, `--completions` and `--manpage`; `None` when none was asked for.
fn informational(args: &Args) -> Option<i32> {
    use std::io::Write as _;
    if let Some(topic) = &args.help {
        return Some(match help_text(topic) {
            Some(t) => {
                print!("{t}");
                0
            }
            None => {
                eprintln!("burrow: no help for {topic:?}; try --help category");
                exit::FAILED_INIT
            }
        });
    }
    if let Some(shell) = args.completions {
        clap_complete::generate(
            shell,
            &mut Args::command(),
            "burrow",
            &mut std::io::stdout(),
        );
        return Some(0);
    }
    if args.manpage {
        let _ = std::io::stdout().write_all(&manpage());
        return Some(0);
    }
    None
}

fn hop_tls_plan(m: &clap::ArgMatches, args: &Args) -> HopTlsPlan {
    let idx =
        |id: &str| -> Vec<usize> { m.indices_of(id).map(|i| i.collect()).unwrap_or_default() };
    let xs = idx("proxy");
    let mut plan = HopTlsPlan {
        all: HopTls::default(),
        per_x: vec![HopTls::default(); xs.len()],
    };
    let slot = |plan: &mut HopTlsPlan, at: usize, f: &dyn Fn(&mut HopTls)| match xs
        .iter()
        .rposition(|x| *x < at)
    {
        Some(j) => f(&mut plan.per_x[j]),
        None => f(&mut plan.all),
    };
    for (at, ca) in idx("proxy_cacert").into_iter().zip(&args.proxy_cacert) {
        slot(&mut plan, at, &|t| t.cacert.push(ca.clone()));
    }
    for at in idx("proxy_insecure") {
        slot(&mut plan, at, &|t| t.insecure = true);
    }
    for (at, c) in idx("proxy_cert").into_iter().zip(&args.proxy_cert) {
        slot(&mut plan, at, &|t| t.cert = Some(c.clone()));
    }
    for (at, k) in idx("proxy_key").into_iter().zip(&args.proxy_key) {
        slot(&mut plan, at, &|t| t.key = Some(k.clone()));
    }
    plan
}

/// Parses arguments and runs; returns the process exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    let argv: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let argv = match config::expand(argv, 0) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("burrow: ({}) {}", e.code, e.message);
            return e.code;
        }
    };
    let cli = match parse(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::FAILED_INIT } else { 0 };
        }
    };
    if let Some(code) = informational(&cli.args) {
        return code;
    }
    // One thread: transfers are I/O bound, and cross-thread wake-ups cost more than they
    // give (measured: 0.71 s vs 0.5x s for 1 GiB over loopback). -Z multiplexes on it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("burrow: cannot start runtime: {e}");
            return exit::FAILED_INIT;
        }
    };
    rt.block_on(plan::run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(words: &[&str]) -> Cli {
        let mut argv = vec!["burrow"];
        argv.extend_from_slice(words);
        parse(argv).unwrap()
    }

    #[test]
    fn outputs_pair_with_urls_in_order() {
        let c = cli(&["u1", "-o", "a", "-O", "--url", "u3", "u2", "-O"]);
        assert_eq!(c.urls, ["u1", "u3", "u2"]);
        assert_eq!(c.outputs, [Some("a".to_string()), None, None]);
        let c = cli(&["-OO", "u1", "u2"]);
        assert_eq!(c.outputs, [None, None]);
        assert!(cli(&["u1"]).outputs.is_empty());
    }

    #[test]
    fn help_topics_completions_and_the_man_page() {
        let dns = help_text("dns").unwrap();
        assert!(dns.contains("--resolve") && dns.contains("--ipv6"), "{dns}");
        assert!(
            !dns.contains("--proxy ") && !dns.contains("--version"),
            "{dns}"
        );
        let all = help_text("all").unwrap();
        for (c, _) in CATEGORIES {
            assert!(all.contains(&format!("{c}:")), "{c} heading in --help");
            assert!(help_text("category").unwrap().contains(c));
        }
        assert!(help_text("nope").is_none());
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Args::command(),
            "burrow",
            &mut bash,
        );
        assert!(String::from_utf8_lossy(&bash).contains("--parallel-max"));
        // The committed page is the one the definitions make; regenerate it with
        // `cargo run -p burrow-examples --bin burrow -- --manpage > examples/man/burrow.1`.
        let committed = include_bytes!("../../man/burrow.1");
        assert!(
            manpage() == committed,
            "examples/man/burrow.1 is out of date"
        );
    }

    #[test]
    fn proxy_tls_options_belong_to_the_hop_before_them() {
        let c = cli(&[
            "--proxy-cacert",
            "all.pem",
            "-x",
            "https://a",
            "--proxy-cacert",
            "a.pem",
            "--proxy-insecure",
            "-x",
            "https://b",
            "--proxy-cert",
            "b-cert.pem",
            "--proxy-key",
            "b-key.pem",
            "u",
        ]);
        let p = &c.args.hop_tls;
        let a = p.for_hop(Some(0));
        assert_eq!(a.cacert, [PathBuf::from("all.pem"), PathBuf::from("a.pem")]);
        assert!(a.insecure && a.cert.is_none());
        let b = p.for_hop(Some(1));
        assert_eq!(b.cacert, [PathBuf::from("all.pem")]);
        assert!(!b.insecure);
        assert_eq!(b.cert, Some(PathBuf::from("b-cert.pem")));
        assert_eq!(b.key, Some(PathBuf::from("b-key.pem")));
        assert_eq!(p.for_hop(None), p.all);
    }

    #[test]
    fn debug_shows_no_credentials() {
        let c = cli(&[
            "http://u:pw1@h/",
            "-u",
            "a:pw2",
            "-U",
            "b:pw3",
            "--oauth2-bearer",
            "tok4",
            "-H",
            "Authorization: Basic pw5",
            "-b",
            "s=pw6",
            "-x",
            "http://c:pw7@p/",
        ]);
        let d = format!("{c:?}");
        for s in ["pw1", "pw2", "pw3", "tok4", "pw5", "pw6", "pw7"] {
            assert!(!d.contains(s), "{s} in {d}");
        }
    }

    #[test]
    fn data_pieces_keep_their_order() {
        let c = cli(&[
            "u",
            "--data-raw",
            "r",
            "-d",
            "a",
            "--data-urlencode",
            "x y",
            "-d",
            "b",
        ]);
        let got: Vec<(request::DataKind, &str)> =
            c.data.iter().map(|d| (d.kind, d.value.as_str())).collect();
        use request::DataKind as K;
        assert_eq!(
            got,
            [
                (K::Raw, "r"),
                (K::Ascii, "a"),
                (K::UrlEncode, "x y"),
                (K::Ascii, "b")
            ]
        );
    }
}
