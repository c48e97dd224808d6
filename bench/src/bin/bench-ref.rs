//! The reference clients the benchmark driver compares burrow with: reqwest (HTTP/1.1,
//! HTTP/2, and HTTP/3 over quinn + h3) and hyper-util's client (HTTP/1.1, HTTP/2), built
//! from crates.io with their defaults, rustls + ring, trusting one PEM CA.
//!
//! `bench-ref get` downloads a URL and discards the body; `bench-ref rate` keeps N requests
//! in flight on one client for a while and prints the rate. Both print what they counted,
//! so the driver can check that a run did the work it claims.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Reference HTTP clients (reqwest, hyper) for burrow's benchmarks")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Downloads URL once, discards the body, prints `bytes N`.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        url: String,
    },
    /// Keeps `concurrency` GETs in flight for `duration` seconds, prints `requests N secs S rate R`.
    Rate {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        url: String,
    },
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Which library.
    #[arg(long, value_enum)]
    lib: Lib,
    /// Which HTTP version: 1.1, 2 or 3.
    #[arg(long)]
    http: String,
    /// CA certificate (PEM) to trust.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lib {
    Reqwest,
    Hyper,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

struct RefClient {
    inner: Inner,
    want: http::Version,
}

enum Inner {
    Reqwest(reqwest::Client),
    Hyper(Box<HyperClient<Https, Empty<Bytes>>>),
}

impl RefClient {
    fn new(a: &ClientArgs) -> Result<RefClient, Failure> {
        let pem = match &a.cacert {
            Some(p) => Some(std::fs::read(p)?),
            None => None,
        };
        let want = match a.http.as_str() {
            "1.1" => http::Version::HTTP_11,
            "2" => http::Version::HTTP_2,
            "3" => http::Version::HTTP_3,
            v => return Err(format!("unknown HTTP version {v}").into()),
        };
        match a.lib {
            Lib::Reqwest => {
                let mut b = reqwest::Client::builder().use_rustls_tls();
                if let Some(pem) = &pem {
                    for c in reqwest::Certificate::from_pem_bundle(pem)? {
                        b = b.add_root_certificate(c);
                    }
                }
                b = match a.http.as_str() {
                    "1.1" => b.http1_only(),
                    // Over TLS, ALPN picks h2 (get() checks that it did).
                    "2" => b,
                    "3" => b.http3_prior_knowledge(),
                    v => return Err(format!("unknown HTTP version {v}").into()),
                };
                Ok(RefClient {
                    inner: Inner::Reqwest(b.build()?),
                    want,
                })
            }
            Lib::Hyper => {
                use rustls_pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                if let Some(pem) = &pem {
                    for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                        roots.add(c?)?;
                    }
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let b = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http();
                let mut cb = HyperClient::builder(TokioExecutor::new());
                let conn = match a.http.as_str() {
                    "1.1" => b.enable_http1().build(),
                    "2" => {
                        cb.http2_only(true);
                        b.enable_http2().build()
                    }
                    v => return Err(format!("hyper: no HTTP version {v}").into()),
                };
                Ok(RefClient {
                    inner: Inner::Hyper(Box::new(cb.build(conn))),
                    want,
                })
            }
        }
    }

    /// GETs `url`, drains the body, returns its length.
    async fn get(&self, url: &str) -> Result<u64, Failure> {
        let mut n = 0u64;
        match &self.inner {
            Inner::Reqwest(c) => {
                let mut req = c.get(url);
                if self.want == http::Version::HTTP_3 {
                    // reqwest sends a request over HTTP/3 only when the request asks for it.
                    req = req.version(http::Version::HTTP_3);
                }
                let mut r = req.send().await?.error_for_status()?;
                if r.version() != self.want {
                    return Err(format!("spoke {:?}, not {:?}", r.version(), self.want).into());
                }
                while let Some(chunk) = r.chunk().await? {
                    n += chunk.len() as u64;
                }
            }
            Inner::Hyper(c) => {
                let r = c.get(url.parse()?).await?;
                if !r.status().is_success() {
                    return Err(format!("status {}", r.status()).into());
                }
                if r.version() != self.want {
                    return Err(format!("spoke {:?}, not {:?}", r.version(), self.want).into());
                }
                let mut body = r.into_body();
                while let Some(frame) = body.frame().await {
                    if let Ok(d) = frame?.into_data() {
                        n += d.len() as u64;
                    }
                }
            }
        }
        Ok(n)
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        let mut msg = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        eprintln!("bench-ref: {msg}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    match args.cmd {
        Cmd::Get { client, url } => {
            let c = RefClient::new(&client)?;
            let n = c.get(&url).await?;
            println!("bytes {n}");
        }
        Cmd::Rate {
            client,
            concurrency,
            duration,
            url,
        } => {
            let c = Arc::new(RefClient::new(&client)?);
            // One request first: the connection exists before the clock starts. It is tried
            // up to three times: reqwest's HTTP/3 against Caddy now and then has this first
            // stream reset (H3_NO_ERROR), which failed the whole run.
            let mut warm = c.get(&url).await;
            for _ in 0..2 {
                if warm.is_ok() {
                    break;
                }
                warm = c.get(&url).await;
            }
            warm?;
            let done = Arc::new(AtomicU64::new(0));
            // A reference client's failed request is counted and reported, not fatal.
            let errors = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let end = start + Duration::from_secs_f64(duration);
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (c, url, done, errors) = (c.clone(), url.clone(), done.clone(), errors.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        match c.get(&url).await {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }));
            }
            for t in tasks {
                t.await?;
            }
            let secs = start.elapsed().as_secs_f64();
            let n = done.load(Ordering::Relaxed);
            let errors = errors.load(Ordering::Relaxed);
            println!(
                "requests {n} secs {secs:.3} rate {:.1} errors {errors}",
                n as f64 / secs
            );
        }
    }
    Ok(())
}
