//! Shared by the peer tests: starting the `burrow-proxy` binary and learning its ports.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `burrow-proxy` process; killed when dropped.
pub struct ProxyProcess {
    /// The process.
    pub child: Child,
    /// Its listeners as printed (`http://127.0.0.1:P`, …), in the order given.
    pub addrs: Vec<String>,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

impl ProxyProcess {
    /// The port of listener `i`.
    pub fn port(&self, i: usize) -> String {
        self.addrs[i].rsplit(':').next().unwrap().to_string()
    }
}

/// The environment variable `k`, which `scripts/peers.sh` sets.
pub fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run scripts/peers.sh"))
}

/// Starts `burrow-proxy` with `listen` (e.g. `["http", "https", "h3"]` on 127.0.0.1:0),
/// the peers' certificate, and `extra` arguments.
pub fn start_burrow_proxy(listen: &[&str], extra: &[&str]) -> ProxyProcess {
    let ca = var("BURROW_NGINX_CA");
    let pki = std::path::Path::new(&ca).parent().unwrap();
    let mut args: Vec<String> = Vec::new();
    for l in listen {
        args.push("--listen".into());
        args.push(format!("{l}://127.0.0.1:0"));
    }
    // The peers all listen on loopback, which burrow-proxy refuses unless allowed.
    args.extend(["--allow-net", "127.0.0.0/8", "--allow-net", "::1"].map(String::from));
    args.extend(["--cert".into(), pki.join("cert.pem").display().to_string()]);
    args.extend(["--key".into(), pki.join("key.pem").display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addrs = listen
        .iter()
        .map(|_| {
            lines
                .next()
                .unwrap()
                .unwrap()
                .trim_start_matches("burrow-proxy listening on ")
                .to_string()
        })
        .collect();
    ProxyProcess { child, addrs }
}
