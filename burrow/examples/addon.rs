//! A mitmproxy-style addon in Rust: a proxy that logs every request and tunnel, rewrites
//! the `User-Agent` of forwarded requests, answers `/burrow/hello` itself and blocks one
//! host. `cargo run -p burrow --example addon`, then for example
//! `curl -x http://127.0.0.1:8080 http://example.com/burrow/hello`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use burrow::server::hooks::{
    async_trait, Flow, HookResult, Hooks, LocalResponse, Request, Summary, Tunnel, Verdict,
};
use burrow::server::{self, HookChain, Listen, ProxyConfig, Rules};
use burrow::StatusCode;

/// The addon: what it blocks, and the lines it logged.
pub struct Addon {
    /// The host refused (requests and tunnels).
    pub blocked: String,
    /// Every line logged, in order (also printed).
    pub log: Mutex<Vec<String>>,
}

impl Addon {
    fn say(&self, line: String) {
        println!("{line}");
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

#[async_trait]
impl Hooks for Addon {
    fn name(&self) -> &str {
        "addon"
    }

    async fn request_headers(&self, flow: &Flow, r: &mut Request) -> HookResult {
        self.say(format!("{} {} {}", flow.client, r.head.method, r.head.uri));
        if r.head.uri.host() == Some(self.blocked.as_str()) {
            return Ok(Verdict::Respond(LocalResponse::new(
                StatusCode::FORBIDDEN,
                "blocked by the addon\n",
            )));
        }
        if r.head.uri.path() == "/burrow/hello" {
            let hello = LocalResponse::new(StatusCode::OK, "hello from the addon\n")
                .header("content-type", "text/plain");
            return Ok(Verdict::Respond(hello));
        }
        r.head.headers.insert(
            burrow::header::USER_AGENT,
            burrow::header::HeaderValue::from_static("burrow-addon/1.0"),
        );
        Ok(Verdict::Continue)
    }

    async fn tunnel_requested(&self, flow: &Flow, t: &mut Tunnel) -> HookResult {
        self.say(format!("{} {} {}", flow.client, t.kind.as_str(), t.target));
        if let burrow::transport::Host::Name(n) = &t.target.host {
            if n == &self.blocked {
                return Ok(Verdict::Respond(LocalResponse::new(
                    StatusCode::FORBIDDEN,
                    "",
                )));
            }
        }
        Ok(Verdict::Continue)
    }

    async fn request_closed(&self, _flow: &Flow, s: &Summary) {
        let status = s.status.map_or(0, |c| c.as_u16());
        self.say(format!(
            "  -> {status}, {} bytes, {:?}",
            s.bytes_down, s.duration
        ));
    }
}

/// Starts a proxy on `listen` with the addon (blocking `blocked`).
pub async fn run(
    listen: SocketAddr,
    rules: Rules,
    blocked: &str,
) -> burrow::Result<(server::Running, Arc<Addon>)> {
    let addon = Arc::new(Addon {
        blocked: blocked.to_string(),
        log: Mutex::default(),
    });
    let config = ProxyConfig {
        listeners: vec![Listen::Http(listen)],
        rules,
        hooks: HookChain::new(vec![addon.clone()]),
        ..ProxyConfig::default()
    };
    let running = server::start(server::Proxy::new(config, None, None)?).await?;
    Ok((running, addon))
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let (running, _addon) = run(listen, Rules::default(), "blocked.example").await?;
    println!("listening on {:?}; Ctrl-C stops", running.addrs);
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}
