//! The goals, computed from the medians of a run.

use super::{Bench, MIB, SMALL_DOWNLOAD_MIB};
use crate::measure::median;

impl Bench {
    pub(super) fn goals(&mut self) {
        // (goal, group, burrow's row, group of the reference, reference row, at least)
        let speed: [(&str, &str, &str, &str, &str, f64); 25] = [
            (
                "HTTP/1.1 plain ≥ 1.0× curl",
                "h1-plain",
                "burrow",
                "h1-plain",
                "curl",
                1.0,
            ),
            (
                "HTTP/1.1 plain ≥ 1.0× hyper",
                "h1-plain",
                "burrow",
                "h1-plain",
                "hyper",
                1.0,
            ),
            (
                "HTTP/1.1 TLS ≥ 1.0× curl",
                "h1-tls",
                "burrow",
                "h1-tls",
                "curl",
                1.0,
            ),
            (
                "HTTP/1.1 TLS ≥ 1.0× hyper",
                "h1-tls",
                "burrow",
                "h1-tls",
                "hyper",
                1.0,
            ),
            (
                "HTTP/2 TLS ≥ 1.0× curl",
                "h2-tls",
                "burrow",
                "h2-tls",
                "curl",
                1.0,
            ),
            (
                "HTTP/2 TLS ≥ 1.0× hyper",
                "h2-tls",
                "burrow",
                "h2-tls",
                "hyper",
                1.0,
            ),
            (
                "HTTP/3 ≥ 1.0× reqwest h3 (Caddy)",
                "h3-caddy",
                "burrow h3",
                "h3-caddy",
                "reqwest h3",
                1.0,
            ),
            (
                "HTTP/3 ≥ 1.0× reqwest h3 (burrow origin)",
                "h3-burrow",
                "burrow h3",
                "h3-burrow",
                "reqwest h3",
                1.0,
            ),
            (
                "HTTP/3 ≥ 0.6× burrow h2 (Caddy)",
                "h3-caddy",
                "burrow h3",
                "h3-caddy",
                "burrow h2",
                0.6,
            ),
            (
                "HTTP/3 ≥ 0.6× burrow h2 (burrow origin)",
                "h3-burrow",
                "burrow h3",
                "h3-burrow",
                "burrow h2",
                0.6,
            ),
            (
                "CONNECT over HTTP/2 ≥ 0.9× direct",
                "tunnel",
                "burrow-proxy CONNECT h2",
                "tunnel",
                "direct",
                0.9,
            ),
            (
                "CONNECT over HTTP/3 ≥ 0.7× direct",
                "tunnel",
                "burrow-proxy CONNECT h3",
                "tunnel",
                "direct",
                0.7,
            ),
            (
                "CONNECT-TCP over HTTP/1.1 ≥ 0.9× CONNECT over HTTP/1.1",
                "connect-tcp",
                "CONNECT-TCP h1",
                "connect-tcp",
                "CONNECT h1",
                0.9,
            ),
            (
                "CONNECT-TCP over HTTP/2 ≥ 0.9× CONNECT over HTTP/2",
                "connect-tcp",
                "CONNECT-TCP h2",
                "connect-tcp",
                "CONNECT h2",
                0.9,
            ),
            (
                "CONNECT-TCP over HTTP/3 ≥ 0.9× CONNECT over HTTP/3",
                "connect-tcp",
                "CONNECT-TCP h3",
                "connect-tcp",
                "CONNECT h3",
                0.9,
            ),
            (
                "h2 in CONNECT-TCP ≥ 1.0× h3 in CONNECT-UDP (one h3 proxy)",
                "connect-tcp-udp",
                "h2 in CONNECT-TCP over h3",
                "connect-tcp-udp",
                "h3 in CONNECT-UDP over h3",
                1.0,
            ),
            (
                "HTTP/3 in CONNECT-UDP ≥ 0.5× direct HTTP/3",
                "connect-udp",
                "h3 in CONNECT-UDP over h3",
                "connect-udp",
                "direct h3",
                0.5,
            ),
            (
                "burrow-proxy ≥ 1.0× squid (CONNECT h1, burrow client)",
                "tunnel",
                "burrow-proxy CONNECT h1",
                "tunnel",
                "squid CONNECT h1",
                1.0,
            ),
            (
                "burrow-proxy ≥ 1.0× squid (CONNECT h1+TLS, burrow client)",
                "tunnel",
                "burrow-proxy CONNECT h1+TLS",
                "tunnel",
                "squid CONNECT h1+TLS",
                1.0,
            ),
            (
                "burrow-proxy ≥ 1.0× squid (CONNECT h1, curl client)",
                "tunnel-curl",
                "burrow-proxy CONNECT h1",
                "tunnel-curl",
                "squid CONNECT h1",
                1.0,
            ),
            (
                "burrow-proxy ≥ 1.0× nghttpx (CONNECT h2)",
                "tunnel",
                "burrow-proxy CONNECT h2",
                "tunnel",
                "nghttpx CONNECT h2 (→ squid)",
                1.0,
            ),
            (
                "hooks on (no hook working) ≥ 0.95× hooks off (CONNECT h1)",
                "hooks-tunnel",
                "hooks on (no hook working)",
                "hooks-tunnel",
                "hooks off",
                0.95,
            ),
            (
                "hooks on (no hook working) ≥ 0.95× hooks off (forwarded GET)",
                "hooks-forward",
                "hooks on (no hook working)",
                "hooks-forward",
                "hooks off",
                0.95,
            ),
            (
                "burrow-proxy --intercept ≥ 1.0× mitmproxy (HTTP/1.1 client)",
                "intercept",
                "burrow-proxy --intercept",
                "intercept",
                "mitmproxy (mitmdump)",
                1.0,
            ),
            (
                "burrow-proxy --intercept ≥ 1.0× mitmproxy (HTTP/2 client)",
                "intercept-h2",
                "burrow-proxy --intercept",
                "intercept-h2",
                "mitmproxy (mitmdump)",
                1.0,
            ),
        ];
        self.say("\n### Goals (throughput ratio = reference median time ÷ burrow median time)\n");
        self.say("| goal | ratio | met |");
        self.say("|---|---|---|");
        for (goal, g, b, rg, r, min) in speed {
            let row = match (self.stat(g, b), self.stat(rg, r)) {
                (Some(b), Some(r)) => {
                    let ratio = r.wall() / b.wall();
                    format!(
                        "| {goal} | {ratio:.2} | {} |",
                        if ratio >= min { "yes" } else { "**no**" }
                    )
                }
                _ => format!("| {goal} | not measured | |"),
            };
            self.say(row);
        }
        let row = match self.stat("tunnels", "kib") {
            Some(s) => {
                let k = median(&s.rates);
                format!(
                    "| burrow-proxy ≤ 16 KiB per idle tunnel (HTTP/2) | {k:.1} KiB | {} |",
                    if k <= 16.0 { "yes" } else { "**no**" }
                )
            }
            None => "| burrow-proxy ≤ 16 KiB per idle tunnel (HTTP/2) | not measured | |".into(),
        };
        self.say(row);
        self.proxy_goals();
        let small = SMALL_DOWNLOAD_MIB;
        let full = self.size / MIB;
        for v in ["h1 TLS", "h2 TLS", "h3"] {
            let a = self
                .stat("memory", &format!("{v} {small} MiB"))
                .map(|s| median(&s.rss));
            let b = self
                .stat("memory", &format!("{v} {full} MiB"))
                .map(|s| median(&s.rss));
            let row = match (a, b) {
                (Some(a), Some(b)) => {
                    let r = b / a;
                    format!(
                        "| constant memory, {v}: peak RSS {full} MiB ÷ {small} MiB download ≤ 1.25 | {r:.2} | {} |",
                        if r <= 1.25 { "yes" } else { "**no**" }
                    )
                }
                _ => format!("| constant memory, {v} | not measured | |"),
            };
            self.say(row);
        }
    }

    /// The forward-proxy section's goals: request rates against the best of the others,
    /// and memory per idle tunnel.
    fn proxy_goals(&mut self) {
        let rates: [(&str, &str, &[&str]); 4] = [
            (
                "burrow-proxy ≥ 1.0× the best of squid (absolute-form GETs, plain)",
                "proxy-get-plain",
                &["squid"],
            ),
            (
                "burrow-proxy ≥ 1.0× the best of squid, nghttpx (absolute-form GETs, TLS)",
                "proxy-get-tls",
                &["squid", "nghttpx (→ squid)"],
            ),
            (
                "burrow-proxy ≥ 1.0× squid (CONNECT set-ups, HTTP/1.1)",
                "proxy-connect-h1",
                &["squid"],
            ),
            (
                "burrow-proxy ≥ 1.0× nghttpx (CONNECT set-ups, HTTP/2)",
                "proxy-connect-h2",
                &["nghttpx (→ squid)"],
            ),
        ];
        for (goal, group, others) in rates {
            let best = others
                .iter()
                .filter_map(|o| self.stat(group, o).map(|s| s.rate()))
                .fold(f64::NAN, f64::max);
            let row = match self.stat(group, "burrow-proxy") {
                Some(b) if best.is_finite() => {
                    let ratio = b.rate() / best;
                    format!(
                        "| {goal} | {ratio:.2} | {} |",
                        if ratio >= 1.0 { "yes" } else { "**no**" }
                    )
                }
                _ => format!("| {goal} | not measured | |"),
            };
            self.say(row);
        }
        let t = self.o.tunnels;
        for proto in ["HTTP/1.1", "HTTP/2", "SOCKS5"] {
            let goal = format!("burrow-proxy ≤ 16 KiB per idle tunnel, {t} tunnels over {proto}");
            let row = match self.stat(&format!("idle-burrow-proxy-{proto}"), "kib") {
                Some(s) => {
                    let k = s.rate();
                    let met = if k <= 16.0 && t >= 10_000 {
                        "yes"
                    } else if k <= 16.0 {
                        "yes at this count (the goal is 10,000)"
                    } else {
                        "**no**"
                    };
                    format!("| {goal} | {k:.1} KiB | {met} |")
                }
                None => format!("| {goal} | not measured | |"),
            };
            self.say(row);
        }
    }
}
