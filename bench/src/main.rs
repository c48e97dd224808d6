//! `burrow-bench`: the A/B benchmark driver (issue 9), and the burrow-side workloads it
//! starts as child processes (`serve`, `rate`, `idle`, `tunnels`, `connect-rate`).
//!
//! Run it through `scripts/bench.sh`, which installs and starts the peers (nginx, Caddy,
//! squid, nghttpx, dante), builds burrow's binaries and exports where everything listens.

#![forbid(unsafe_code)]

mod driver;
mod load;
mod measure;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "burrow's A/B benchmarks against curl, h2load, hyper, reqwest and proxies")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the benchmark rounds against the servers scripts/bench.sh started.
    Run(driver::Options),
    /// burrow's origin: HTTP/1.1 and HTTP/2 over TLS on PORT/tcp, HTTP/3 on PORT/udp.
    Serve {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
    },
    /// Request-rate load generator on burrow's Client (one thread, like h2load's default).
    Rate {
        /// HTTP version: 1.1, 2 or 3.
        #[arg(long)]
        http: String,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long)]
        cacert: Option<PathBuf>,
        url: String,
    },
    /// Opens N connections, one request each, holds them and prints RSS before and after.
    Idle {
        #[arg(long)]
        http: String,
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Also report this process's RSS (the server's pid).
        #[arg(long)]
        watch: Option<String>,
        url: String,
    },
    /// Opens N tunnels through a proxy chain to TARGET and prints RSS before and after.
    Tunnels {
        /// Proxy URL (repeatable: a chain, nearest first).
        #[arg(long = "proxy", required = true)]
        proxies: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Tunnels being set up at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// The proxy's pid, or `comm:NAME` for every process of that name.
        #[arg(long)]
        watch: Option<String>,
        target: String,
    },
    /// Tunnel set-ups per second through a proxy chain: open, one GET, close, repeat.
    ConnectRate {
        /// Proxy URL (repeatable: a chain, nearest first).
        #[arg(long = "proxy", required = true)]
        proxies: Vec<String>,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long)]
        cacert: Option<PathBuf>,
        target: String,
    },
}

fn main() {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Run(o) => driver::run(o),
        // The workloads run on one thread, as curl and h2load's default do.
        cmd => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(workload(cmd))),
    };
    if let Err(e) = r {
        eprintln!("burrow-bench: {e}");
        std::process::exit(1);
    }
}

async fn workload(cmd: Cmd) -> Result<(), load::Failure> {
    match cmd {
        Cmd::Run(_) => Ok(()),
        Cmd::Serve { cert, key, host } => serve(&cert, &key, host).await,
        Cmd::Rate {
            http,
            connections,
            concurrency,
            duration,
            cacert,
            url,
        } => {
            load::rate(
                &url,
                &http,
                connections,
                concurrency,
                Duration::from_secs_f64(duration),
                cacert.as_deref(),
            )
            .await
        }
        Cmd::Idle {
            http,
            n,
            cacert,
            watch,
            url,
        } => load::idle(&url, &http, n, cacert.as_deref(), watch.as_deref()).await,
        Cmd::Tunnels {
            proxies,
            n,
            concurrency,
            cacert,
            watch,
            target,
        } => {
            let (c, w) = (cacert.as_deref(), watch.as_deref());
            load::tunnels(&proxies, &target, n, concurrency, c, w).await
        }
        Cmd::ConnectRate {
            proxies,
            concurrency,
            duration,
            cacert,
            target,
        } => {
            let d = Duration::from_secs_f64(duration);
            load::connect_rate(&proxies, &target, concurrency, d, cacert.as_deref()).await
        }
    }
}

async fn serve(
    cert: &std::path::Path,
    key: &std::path::Path,
    host: std::net::IpAddr,
) -> Result<(), load::Failure> {
    use burrow_examples::origin::{self, Versions};
    let (cert, key) = (std::fs::read(cert)?, std::fs::read(key)?);
    let tcp = burrow_transport::tls::server_config_from_pem(
        &cert,
        &key,
        origin::alpn(Versions::Negotiate),
    )?;
    let o = origin::start_at(host, Versions::Negotiate, Some(tcp), None).await?;
    let h3 = burrow_transport::tls::server_config_from_pem(&cert, &key, &[b"h3"])?;
    origin::start_h3_at((host, o.addr.port()).into(), h3).await?;
    println!("port {}", o.addr.port());
    // Stop when the driver closes our stdin (or kills us).
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    Ok(())
}
