//! The forward-proxy section (issue 18, points 2 and 3): request rates through burrow-proxy,
//! squid and nghttpx with wrk as the client (absolute-form HTTP/1.1 GETs), tunnel set-ups
//! per second, and many idle tunnels with the proxy memory each costs, next to squid and
//! dante.

use super::cases::{Case, Check};
use super::servers::BurrowProxy;
use super::Bench;
use crate::measure::field;

impl Bench {
    pub(super) fn scale(&mut self, bp: &BurrowProxy) {
        self.say("\n### Forward proxies\n");
        let e = &self.env;
        let origin = format!("127.0.0.1:{}", e.nginx_plain);
        let url = format!("http://{origin}/small.bin");
        let script = e.scratch.join("absolute-form.lua");
        let lua = format!(
            "wrk.method = \"GET\"\nwrk.path = \"{url}\"\nwrk.headers[\"Host\"] = \"{origin}\"\n"
        );
        if let Err(err) = std::fs::write(&script, lua) {
            let msg = format!("failed: writing {}: {err}", script.display());
            self.say(msg);
            return;
        }
        let script = script.display().to_string();
        let secs = self.o.rate_secs;
        let wrk = |label: &str, proxy: String| Case {
            label: label.into(),
            argv: vec![
                "wrk".into(),
                "-t1".into(),
                "-c16".into(),
                format!("-d{}s", secs.ceil() as u64),
                "-s".into(),
                script.clone(),
                proxy,
            ],
            check: Check::Wrk,
        };
        let (me, ca) = (e.me.display().to_string(), e.ca());
        let connect = |label: &str, proxy: String| Case {
            label: label.into(),
            argv: vec![
                me.clone(),
                "connect-rate".into(),
                "--proxy".into(),
                proxy,
                "--concurrency".into(),
                "16".into(),
                "--duration".into(),
                secs.to_string(),
                "--cacert".into(),
                ca.clone(),
                origin.clone(),
            ],
            check: Check::Rate,
        };
        let tables = [
            (
                "proxy-get-plain",
                "Requests/s through a forward proxy: absolute-form HTTP/1.1 GETs of 1 KiB from nginx, wrk -t1 -c16, plain HTTP to the proxy",
                vec![
                    wrk("burrow-proxy", format!("http://127.0.0.1:{}/", bp.http)),
                    wrk("squid", format!("http://127.0.0.1:{}/", e.squid)),
                ],
            ),
            (
                "proxy-get-tls",
                "Requests/s through a forward proxy: the same over TLS to the proxy (HTTP/1.1)",
                vec![
                    wrk("burrow-proxy", format!("https://127.0.0.1:{}/", bp.https1)),
                    wrk("squid", format!("https://127.0.0.1:{}/", e.squid_tls)),
                    wrk("nghttpx (→ squid)", format!("https://127.0.0.1:{}/", e.nghttpx)),
                ],
            ),
            (
                "proxy-connect-h1",
                "CONNECT set-ups/s over HTTP/1.1 (each: connection, CONNECT, one GET of 1 KiB, close), 16 at once",
                vec![
                    connect("burrow-proxy", format!("http://127.0.0.1:{}", bp.http)),
                    connect("squid", format!("http://127.0.0.1:{}", e.squid)),
                ],
            ),
            (
                "proxy-connect-h2",
                "CONNECT set-ups/s over one HTTP/2 connection (each: stream, CONNECT, one GET, close), 16 at once",
                vec![
                    connect("burrow-proxy", format!("h2://localhost:{}", bp.https)),
                    connect("nghttpx (→ squid)", format!("h2://localhost:{}", e.nghttpx)),
                ],
            ),
        ];
        for (group, title, cases) in tables {
            self.rate_table(group, title, &cases);
        }
        self.idle_tunnels();
    }

    /// `--tunnels` idle tunnels per proxy and protocol: memory each and set-ups per second.
    fn idle_tunnels(&mut self) {
        let t = self.o.tunnels;
        self.say(format!(
            "\n{t} tunnels through each proxy, 64 set up at once, each carrying one HTTP/1.1 \
             request to nginx and then held (proxy RSS from /proc; squid and dante summed over \
             their processes):\n"
        ));
        self.say("| proxy | protocol | KiB/tunnel | set-ups/s |");
        self.say("|---|---|---|---|");
        let target = format!("127.0.0.1:{}", self.env.nginx_plain);
        let rows = [
            ("burrow-proxy", "HTTP/1.1"),
            ("burrow-proxy", "HTTP/2"),
            ("burrow-proxy", "SOCKS5"),
            ("squid", "HTTP/1.1"),
            ("dante", "SOCKS5"),
        ];
        for (proxy, proto) in rows {
            // A fresh burrow-proxy per row: RSS freed by the previous row would hide growth.
            let fresh = match proxy {
                "burrow-proxy" => match BurrowProxy::start(&self.env) {
                    Ok(p) => Some(p),
                    Err(err) => {
                        self.say(format!("| {proxy} | {proto} | failed: {err} | |"));
                        continue;
                    }
                },
                _ => None,
            };
            let e = &self.env;
            let (url, watch) = match (&fresh, proto) {
                (Some(p), "HTTP/1.1") => (format!("http://127.0.0.1:{}", p.http), p.pid()),
                (Some(p), "HTTP/2") => (format!("h2://localhost:{}", p.https), p.pid()),
                (Some(p), _) => (format!("socks5://127.0.0.1:{}", p.socks), p.pid()),
                (None, "HTTP/1.1") => {
                    (format!("http://127.0.0.1:{}", e.squid), "comm:squid".into())
                }
                (None, _) => (
                    format!("socks5://127.0.0.1:{}", e.dante),
                    "comm:danted".into(),
                ),
            };
            let argv = vec![
                self.env.me.display().to_string(),
                "tunnels".into(),
                "--proxy".into(),
                url,
                "--n".into(),
                t.to_string(),
                "--concurrency".into(),
                "64".into(),
                "--cacert".into(),
                self.env.ca(),
                "--watch".into(),
                watch,
                target.clone(),
            ];
            match self.workload(argv) {
                Ok(out) => {
                    let g = |k: &str| field(&out, k).unwrap_or(f64::NAN);
                    let kib = (g("server_kib_after") - g("server_kib_before")) / t as f64;
                    let rate = g("setup_rate");
                    self.say(format!("| {proxy} | {proto} | {kib:.1} | {rate:.0} |"));
                    let key = format!("idle-{proxy}-{proto}");
                    self.record(&key, "kib", kib);
                    self.record(&key, "setup", rate);
                }
                Err(err) => self.say(format!("| {proxy} | {proto} | failed: {err} | |")),
            }
            drop(fresh);
            // Let the proxies close what the workload held before the next row measures.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }

    /// One measured figure under (`group`, `row`), for the goals.
    fn record(&mut self, group: &str, row: &str, value: f64) {
        self.results.insert(
            (group.into(), row.into()),
            super::cases::Stats {
                walls: vec![0.0],
                rates: vec![value],
                ..Default::default()
            },
        );
    }
}
