//! What hooks and TLS interception cost (issue 17): burrow-proxy with a hook that does
//! nothing next to burrow-proxy without hooks, for tunnels and forwarded requests; and
//! burrow-proxy `--intercept` next to mitmproxy on the same transfer.

use super::cases::{Case, Check};
use super::servers::{start_mitmdump, BurrowProxy};
use super::{Bench, MIB};

impl Bench {
    pub(super) fn hooks(&mut self, bp: &BurrowProxy) {
        let size = self.size;
        let hooked = match BurrowProxy::start_with(&self.env, &["--bench-noop-hook".into()]) {
            Ok(p) => p,
            Err(e) => {
                self.say(format!(
                    "\nhooks: burrow-proxy with a hook did not start: {e}"
                ));
                return;
            }
        };
        let tls = format!("https://localhost:{}/big.bin", self.env.nginx_tls);
        let plain = format!("http://127.0.0.1:{}/big.bin", self.env.nginx_plain);
        let off = format!("http://127.0.0.1:{}", bp.http);
        let on = format!("http://127.0.0.1:{}", hooked.http);
        for (group, title, url) in [
            (
                "hooks-tunnel",
                "CONNECT h1 tunnel, curl, HTTP/1.1 over TLS to nginx",
                &tls,
            ),
            (
                "hooks-forward",
                "Forwarded (absolute-form) GET, curl, plain HTTP/1.1 to nginx",
                &plain,
            ),
        ] {
            let mut a = self.curl("1.1", url, Some(&off), size);
            a.label = "hooks off".into();
            let mut b = self.curl("1.1", url, Some(&on), size);
            b.label = "hooks on (no hook working)".into();
            self.download_table(
                group,
                &format!("Hooks cost: {title}, {} MiB", size / MIB),
                &[a, b],
                size,
            );
        }
        drop(hooked);
        // Interception: burrow-proxy --intercept and mitmproxy, HTTP/1.1 and HTTP/2 clients.
        let ca_dir = self.env.scratch.join("intercept-ca");
        let init = std::process::Command::new(self.env.bin.join("burrow-proxy"))
            .args(["ca", "init", "--force", "--dir"])
            .arg(&ca_dir)
            .output();
        if !init.as_ref().is_ok_and(|o| o.status.success()) {
            self.say("\nintercept: `burrow-proxy ca init` failed");
            return;
        }
        let ca = ca_dir.join("ca.pem").display().to_string();
        let key = ca_dir.join("ca-key.pem").display().to_string();
        let args: Vec<String> = [
            "--intercept",
            "--ca-cert",
            &ca,
            "--ca-key",
            &key,
            "--origin-cacert",
        ]
        .map(String::from)
        .into_iter()
        .chain([self.env.ca()])
        .collect();
        let Ok(intercepting) = BurrowProxy::start_with(&self.env, &args) else {
            self.say("\nintercept: burrow-proxy --intercept did not start");
            return;
        };
        let confdir = self.env.scratch.join("mitmproxy");
        let mitm = match start_mitmdump(&self.env, &confdir) {
            Ok(m) => m,
            Err(e) => {
                self.say(format!("\nintercept: {e}"));
                None
            }
        };
        for http in ["1.1", "2"] {
            let via = |proxy: String, ca: &str, label: &str| {
                let version = if http == "2" { "--http2" } else { "--http1.1" };
                Case {
                    label: label.into(),
                    argv: [
                        "curl",
                        "-sS",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{size_download} %{http_version}",
                        version,
                        "--cacert",
                        ca,
                        "-x",
                        &proxy,
                        &tls,
                    ]
                    .map(String::from)
                    .into(),
                    check: Check::Curl {
                        bytes: size,
                        version: if http == "2" { "2" } else { "1.1" },
                    },
                }
            };
            let mut cases = vec![via(
                format!("http://127.0.0.1:{}", intercepting.http),
                &ca,
                "burrow-proxy --intercept",
            )];
            match &mitm {
                Some((_, port)) => cases.push(via(
                    format!("http://127.0.0.1:{port}"),
                    &confdir.join("mitmproxy-ca-cert.pem").display().to_string(),
                    "mitmproxy (mitmdump)",
                )),
                None => {
                    self.say("\n(mitmproxy is not installed: `pip install mitmproxy` adds its row)")
                }
            }
            let mut plain_tunnel = self.curl(http, &tls, Some(&off), size);
            plain_tunnel.label = "burrow-proxy CONNECT, not intercepted (for scale)".into();
            cases.push(plain_tunnel);
            let group = if http == "2" {
                "intercept-h2"
            } else {
                "intercept"
            };
            self.download_table(
                group,
                &format!(
                    "TLS interception, curl HTTP/{http} over TLS to nginx, {} MiB",
                    size / MIB
                ),
                &cases,
                size,
            );
        }
    }
}
