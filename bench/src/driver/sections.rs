//! The sections of a run: throughput, HTTP/3, tunnels, request rates, memory.

use super::cases::{Case, Stats};
use super::servers::{BurrowProxy, Server};
use super::{Bench, MIB, SMALL_DOWNLOAD_MIB, SMALL_RESPONSE};
use crate::load::Failure;
use crate::measure::{field, median, timed};

impl Bench {
    pub(super) fn throughput(&mut self) {
        let size = self.size;
        let plain = format!("http://127.0.0.1:{}/big.bin", self.env.nginx_plain);
        let tls = format!("https://localhost:{}/big.bin", self.env.nginx_tls);
        for (group, title, http, url) in [
            ("h1-plain", "HTTP/1.1, plain, nginx", "1.1", &plain),
            ("h1-tls", "HTTP/1.1, TLS, nginx", "1.1", &tls),
            ("h2-tls", "HTTP/2, TLS, nginx", "2", &tls),
        ] {
            let cases = vec![
                self.burrow(http, url, &[]),
                self.curl(if http == "2" { "2" } else { "1.1" }, url, None, size),
                self.reference("hyper", http, url, size),
                self.reference("reqwest", http, url, size),
            ];
            self.download_table(group, &format!("{title}: {} MiB", size / MIB), &cases, size);
        }
    }

    pub(super) fn h3(&mut self, origin_port: u16) {
        let size = self.size;
        let caddy = format!("https://localhost:{}/big.bin", self.env.caddy);
        let own = format!("https://localhost:{origin_port}/fill/{size}");
        for (group, title, url) in [
            ("h3-caddy", "HTTP/3, Caddy (quic-go)", &caddy),
            ("h3-burrow", "HTTP/3, burrow's origin", &own),
        ] {
            let mut h2 = self.burrow("2", url, &[]);
            h2.label = "burrow h2".into();
            let mut h3 = self.burrow("3", url, &[]);
            h3.label = "burrow h3".into();
            let cases = vec![h3, self.reference("reqwest", "3", url, size), h2];
            self.download_table(group, &format!("{title}: {} MiB", size / MIB), &cases, size);
        }
    }

    pub(super) fn tunnel(&mut self, bp: &BurrowProxy, origin_port: u16) {
        let size = self.size;
        let (squid, squid_tls, nghttpx, dante) = (
            self.env.squid,
            self.env.squid_tls,
            self.env.nghttpx,
            self.env.dante,
        );
        let url = format!("https://localhost:{}/big.bin", self.env.nginx_tls);
        let routes: Vec<(&str, String)> = vec![
            ("direct", String::new()),
            (
                "burrow-proxy CONNECT h1",
                format!("http://127.0.0.1:{}", bp.http),
            ),
            (
                "burrow-proxy CONNECT h1+TLS",
                format!("https://localhost:{}", bp.https1),
            ),
            (
                "burrow-proxy CONNECT h2",
                format!("h2://localhost:{}", bp.https),
            ),
            (
                "burrow-proxy CONNECT h3",
                format!("h3://localhost:{}", bp.h3),
            ),
            (
                "burrow-proxy SOCKS5h",
                format!("socks5h://127.0.0.1:{}", bp.socks),
            ),
            ("squid CONNECT h1", format!("http://127.0.0.1:{squid}")),
            (
                "squid CONNECT h1+TLS",
                format!("https://localhost:{squid_tls}"),
            ),
            (
                "nghttpx CONNECT h2 (→ squid)",
                format!("h2://localhost:{nghttpx}"),
            ),
            ("dante SOCKS5h", format!("socks5h://127.0.0.1:{dante}")),
        ];
        let cases: Vec<Case> = routes
            .iter()
            .map(|(label, p)| {
                let proxies: Vec<&str> = if p.is_empty() { vec![] } else { vec![p] };
                let mut c = self.burrow("1.1", &url, &proxies);
                c.label = label.to_string();
                c
            })
            .collect();
        self.download_table(
            "tunnel",
            &format!(
                "Tunnel cost: burrow CLI, HTTP/1.1 over TLS to nginx, {} MiB",
                size / MIB
            ),
            &cases,
            size,
        );
        let curl_routes = [
            ("direct", None),
            (
                "burrow-proxy CONNECT h1",
                Some(format!("http://127.0.0.1:{}", bp.http)),
            ),
            (
                "squid CONNECT h1",
                Some(format!("http://127.0.0.1:{squid}")),
            ),
            (
                "burrow-proxy CONNECT h1+TLS",
                Some(format!("https://localhost:{}", bp.https1)),
            ),
            (
                "squid CONNECT h1+TLS",
                Some(format!("https://localhost:{squid_tls}")),
            ),
            (
                "burrow-proxy SOCKS5h",
                Some(format!("socks5h://127.0.0.1:{}", bp.socks)),
            ),
            (
                "dante SOCKS5h",
                Some(format!("socks5h://127.0.0.1:{dante}")),
            ),
        ];
        let cases: Vec<Case> = curl_routes
            .iter()
            .map(|(label, p)| {
                let mut c = self.curl("1.1", &url, p.as_deref(), size);
                c.label = label.to_string();
                c
            })
            .collect();
        self.download_table(
            "tunnel-curl",
            &format!(
                "Proxies with curl as the client: HTTP/1.1 over TLS to nginx, {} MiB",
                size / MIB
            ),
            &cases,
            size,
        );
        let own = format!("https://localhost:{origin_port}/fill/{size}");
        let via = format!("h3://localhost:{}", bp.h3);
        let mut direct = self.burrow("3", &own, &[]);
        direct.label = "direct h3".into();
        let mut udp = self.burrow("3", &own, &[&via]);
        udp.label = "h3 in CONNECT-UDP over h3".into();
        let mut h2 = self.burrow("2", &own, &[]);
        h2.label = "direct h2 (for scale)".into();
        self.download_table(
            "connect-udp",
            &format!(
                "HTTP/3 inside CONNECT-UDP (burrow-proxy h3) to burrow's origin, {} MiB",
                size / MIB
            ),
            &[direct, udp, h2],
            size,
        );
        self.connect_tcp(bp, origin_port);
        self.connect_ip();
    }

    /// CONNECT-IP: TCP (an HTTP/2 origin) and UDP (an HTTP/3 origin) through a userspace
    /// stack over one CONNECT-IP tunnel, against classic CONNECT and CONNECT-UDP through
    /// the same proxy. It needs a TUN device and an origin off loopback, so everything
    /// (burrow's origin on 10.77.0.1, a burrow-proxy with `--ip-pool`, every client) runs in
    /// a network namespace of the bench's own; without root it says so and skips.
    fn connect_ip(&mut self) {
        let ns = super::netns::Netns::create("burrow-bench-ip");
        let ns = match ns {
            Ok(ns) => ns,
            Err(e) => {
                self.say(format!("\n### CONNECT-IP: skipped ({e})\n"));
                return;
            }
        };
        let started = ns.start_origin(&self.env).and_then(|(o, port)| {
            let bp = ns.start_proxy(&self.env)?;
            Ok((o, port, bp))
        });
        let (_origin, port, bp) = match started {
            Ok(x) => x,
            Err(e) => {
                self.say(format!("\n### CONNECT-IP: skipped ({e})\n"));
                return;
            }
        };
        let size = self.size;
        // The bench's certificate names localhost, not the namespace's address: the
        // origin is not verified here, in every row alike.
        let url = format!("https://{}:{port}/fill/{size}", super::netns::ORIGIN);
        let case = |b: &Bench, http: &str, proxy: &str, label: &str| {
            let mut c = b.burrow(http, &url, &[proxy]);
            c.argv.insert(1, "-k".to_string());
            c.argv.splice(0..0, ns.exec());
            c.label = label.into();
            c
        };
        let (h3, h2) = (
            format!("h3://localhost:{}", bp.h3),
            format!("h2://localhost:{}", bp.https),
        );
        let cases = [
            case(self, "2", &h3, "h2 in CONNECT h3"),
            case(
                self,
                "2",
                &format!("{h3}?connect=ip"),
                "h2 in TCP over CONNECT-IP h3",
            ),
            case(self, "2", &h2, "h2 in CONNECT h2"),
            case(
                self,
                "2",
                &format!("{h2}?connect=ip"),
                "h2 in TCP over CONNECT-IP h2",
            ),
        ];
        self.download_table(
            "connect-ip",
            &format!(
                "TCP over CONNECT-IP (a userspace stack) and classic CONNECT through burrow-proxy, \
                 burrow CLI, HTTP/2 to burrow's origin, in a network namespace, {} MiB",
                size / MIB
            ),
            &cases,
            size,
        );
        let cases = [
            case(self, "3", &h3, "h3 in CONNECT-UDP h3"),
            case(
                self,
                "3",
                &format!("{h3}?connect=ip"),
                "h3 in UDP over CONNECT-IP h3",
            ),
            case(
                self,
                "3",
                &format!("{h2}?connect=ip"),
                "h3 in UDP over CONNECT-IP h2",
            ),
        ];
        self.download_table(
            "connect-ip-udp",
            &format!(
                "UDP over CONNECT-IP and CONNECT-UDP through burrow-proxy, burrow CLI, HTTP/3 to \
                 burrow's origin, in a network namespace, {} MiB",
                size / MIB
            ),
            &cases,
            size,
        );
    }

    /// CONNECT-TCP against classic CONNECT on each version to the same proxy, and an
    /// HTTP/2 origin in CONNECT-TCP against an HTTP/3 origin in CONNECT-UDP over one
    /// HTTP/3 proxy.
    fn connect_tcp(&mut self, bp: &BurrowProxy, origin_port: u16) {
        let size = self.size;
        let url = format!("https://localhost:{}/big.bin", self.env.nginx_tls);
        let hops = [
            ("h1", format!("http://127.0.0.1:{}", bp.http)),
            ("h2", format!("h2://localhost:{}", bp.https)),
            ("h3", format!("h3://localhost:{}", bp.h3)),
        ];
        let mut cases = Vec::new();
        for (v, hop) in &hops {
            let mut classic = self.burrow("1.1", &url, &[hop]);
            classic.label = format!("CONNECT {v}");
            let tcp = format!("{hop}?connect=tcp");
            let mut templated = self.burrow("1.1", &url, &[&tcp]);
            templated.label = format!("CONNECT-TCP {v}");
            cases.extend([classic, templated]);
        }
        self.download_table(
            "connect-tcp",
            &format!(
                "CONNECT-TCP and classic CONNECT through burrow-proxy: burrow CLI, HTTP/1.1 \
                 over TLS to nginx, {} MiB",
                size / MIB
            ),
            &cases,
            size,
        );
        let own = format!("https://localhost:{origin_port}/fill/{size}");
        let h3 = format!("h3://localhost:{}", bp.h3);
        let tcp = format!("{h3}?connect=tcp");
        let mut over_tcp = self.burrow("2", &own, &[&tcp]);
        over_tcp.label = "h2 in CONNECT-TCP over h3".into();
        let mut over_udp = self.burrow("3", &own, &[&h3]);
        over_udp.label = "h3 in CONNECT-UDP over h3".into();
        let mut classic = self.burrow("2", &own, &[&h3]);
        classic.label = "h2 in CONNECT over h3".into();
        self.download_table(
            "connect-tcp-udp",
            &format!(
                "TCP and UDP through one HTTP/3 proxy (burrow-proxy) to burrow's origin, {} MiB",
                size / MIB
            ),
            &[over_tcp, over_udp, classic],
            size,
        );
    }

    pub(super) fn rate(&mut self, origin_port: u16) {
        let nginx = format!("https://localhost:{}/small.bin", self.env.nginx_tls);
        let cases = [
            self.rate_case("burrow", "1.1", 16, 16, &nginx),
            self.h2load(true, 16, 1, &nginx),
        ];
        self.rate_table(
            "rate-h1-16",
            "Requests/s, HTTP/1.1 over TLS, 16 connections, 1 KiB, nginx",
            &cases,
        );
        for m in [1, 64] {
            let cases = [
                self.rate_case("burrow", "2", 1, m, &nginx),
                self.h2load(false, 1, m, &nginx),
            ];
            self.rate_table(
                &format!("rate-h2-{m}"),
                &format!(
                    "Requests/s, HTTP/2 over TLS, 1 connection × {m} concurrent, 1 KiB, nginx"
                ),
                &cases,
            );
        }
        let caddy = format!("https://localhost:{}/small.bin", self.env.caddy);
        let own = format!("https://localhost:{origin_port}/fill/{SMALL_RESPONSE}");
        for (name, url) in [("Caddy", &caddy), ("burrow's origin", &own)] {
            for m in [1, 64] {
                let mut b3 = self.rate_case("burrow h3", "3", 1, m, url);
                b3.label = "burrow h3".into();
                let mut b2 = self.rate_case("burrow h2", "2", 1, m, url);
                b2.label = "burrow h2 (for scale)".into();
                let cases = [b3, self.ref_rate(m, url), b2];
                let key = if name == "Caddy" { "caddy" } else { "burrow" };
                self.rate_table(
                    &format!("rate-h3-{key}-{m}"),
                    &format!("Requests/s, HTTP/3, 1 connection × {m} concurrent, 1 KiB, {name}"),
                    &cases,
                );
            }
        }
    }

    pub(super) fn workload(&self, argv: Vec<String>) -> Result<String, Failure> {
        let s = timed(&argv, &self.env.scratch)?;
        Ok(s.stdout)
    }

    pub(super) fn memory(&mut self, bp: &BurrowProxy, origin: &Server, origin_port: u16) {
        self.say("\n### Memory\n");
        // Constant memory: the same downloads at 64 MiB and at full size.
        let small = SMALL_DOWNLOAD_MIB * MIB;
        let e = &self.env;
        let mid = format!("https://localhost:{}/mid.bin", e.nginx_tls);
        let big = format!("https://localhost:{}/big.bin", e.nginx_tls);
        let own_small = format!("https://localhost:{origin_port}/fill/{small}");
        let own_big = format!("https://localhost:{origin_port}/fill/{}", self.size);
        let mut cases = Vec::new();
        for (label, http, url) in [
            (format!("h1 TLS {SMALL_DOWNLOAD_MIB} MiB"), "1.1", &mid),
            (format!("h1 TLS {} MiB", self.size / MIB), "1.1", &big),
            (format!("h2 TLS {SMALL_DOWNLOAD_MIB} MiB"), "2", &mid),
            (format!("h2 TLS {} MiB", self.size / MIB), "2", &big),
            (format!("h3 {SMALL_DOWNLOAD_MIB} MiB"), "3", &own_small),
            (format!("h3 {} MiB", self.size / MIB), "3", &own_big),
        ] {
            let mut c = self.burrow(http, url, &[]);
            c.label = label;
            cases.push(c);
        }
        let stats = self.ab("memory", &cases, self.o.rounds.min(3));
        self.say("Peak RSS of the burrow CLI (median of rounds), by download size:\n");
        self.say("| download | peak RSS MiB |");
        self.say("|---|---|");
        for (c, s) in cases.iter().zip(&stats) {
            self.say(format!("| {} | {:.1} |", c.label, median(&s.rss) / 1024.0));
        }

        let n = self.o.idle;
        self.say(format!("\nIdle connections: {n} connections, one 1 KiB request each, then held (RSS from /proc, KiB):\n"));
        self.say("| connections | client KiB/connection | server KiB/connection | server |");
        self.say("|---|---|---|---|");
        let me = self.env.me.display().to_string();
        let ca = self.env.ca();
        let opid = origin.child.id().to_string();
        let rows = [
            (
                "HTTP/1.1 plain",
                "1.1",
                format!("http://127.0.0.1:{}/small.bin", self.env.nginx_plain),
                None,
                "nginx",
            ),
            (
                "HTTP/1.1 TLS",
                "1.1",
                format!("https://localhost:{origin_port}/fill/{SMALL_RESPONSE}"),
                Some(&opid),
                "burrow origin",
            ),
            (
                "HTTP/2 TLS",
                "2",
                format!("https://localhost:{origin_port}/fill/{SMALL_RESPONSE}"),
                Some(&opid),
                "burrow origin",
            ),
            (
                "HTTP/3",
                "3",
                format!("https://localhost:{origin_port}/fill/{SMALL_RESPONSE}"),
                Some(&opid),
                "burrow origin",
            ),
        ];
        for (label, http, url, watch, server) in rows {
            let mut argv = vec![
                me.clone(),
                "idle".into(),
                "--http".into(),
                http.into(),
                "--n".into(),
                n.to_string(),
                "--cacert".into(),
                ca.clone(),
            ];
            if let Some(w) = watch {
                argv.extend(["--watch".into(), w.clone()]);
            }
            argv.push(url);
            match self.workload(argv) {
                Ok(out) => {
                    let per = |a: &str, b: &str| match (field(&out, a), field(&out, b)) {
                        (Some(x), Some(y)) => format!("{:.1}", (y - x) / n as f64),
                        _ => "–".into(),
                    };
                    let row = format!(
                        "| {label} | {} | {} | {server} |",
                        per("client_kib_before", "client_kib_after"),
                        per("server_kib_before", "server_kib_after")
                    );
                    self.say(row);
                }
                Err(e) => self.say(format!("| {label} | failed: {e} | | |")),
            }
        }

        let t = self.o.tunnels;
        let argv = vec![
            me,
            "tunnels".into(),
            "--proxy".into(),
            format!("h2://localhost:{}", bp.https),
            "--n".into(),
            t.to_string(),
            "--cacert".into(),
            ca,
            "--watch".into(),
            bp.pid(),
            format!("127.0.0.1:{}", self.env.nginx_plain),
        ];
        self.say(format!("\n{t} tunnels over one HTTP/2 connection to burrow-proxy (each carried one HTTP/1.1 request to nginx, then held):\n"));
        match self.workload(argv) {
            Ok(out) => {
                let g = |k: &str| field(&out, k).unwrap_or(f64::NAN);
                let c = g("client_kib_after") - g("client_kib_before");
                let s = g("server_kib_after") - g("server_kib_before");
                self.say("| side | RSS growth MiB | KiB/tunnel |");
                self.say("|---|---|---|");
                self.say(format!(
                    "| client (burrow route) | {:.1} | {:.1} |",
                    c / 1024.0,
                    c / t as f64
                ));
                self.say(format!(
                    "| burrow-proxy | {:.1} | {:.1} |",
                    s / 1024.0,
                    s / t as f64
                ));
                self.results.insert(
                    ("tunnels".into(), "count".into()),
                    Stats {
                        rates: vec![g("tunnels")],
                        ..Default::default()
                    },
                );
                // `stat` wants a wall time to count a row as measured.
                self.results.insert(
                    ("tunnels".into(), "kib".into()),
                    Stats {
                        walls: vec![0.0],
                        rates: vec![s / t as f64],
                        ..Default::default()
                    },
                );
            }
            Err(e) => self.say(format!("failed: {e}")),
        }
    }
}
