//! burrow-proxy at 1 and 2 worker threads (issue 18): one download through each, over a
//! TLS CONNECT (curl) and over an HTTP/2 CONNECT (burrow's CLI).

use super::servers::BurrowProxy;
use super::{Bench, MIB};

impl Bench {
    pub(super) fn workers(&mut self) {
        let size = self.size;
        let url = format!("https://localhost:{}/big.bin", self.env.nginx_tls);
        let mut proxies = Vec::new();
        for n in [1, 2] {
            match BurrowProxy::start_with(&self.env, &["--workers".into(), n.to_string()]) {
                Ok(p) => proxies.push((n, p)),
                Err(e) => {
                    self.say(format!(
                        "\nworkers: burrow-proxy --workers {n} did not start: {e}"
                    ));
                    return;
                }
            }
        }
        let mut curl = Vec::new();
        let mut cli = Vec::new();
        for (n, p) in &proxies {
            let mut c = self.curl(
                "1.1",
                &url,
                Some(&format!("https://localhost:{}", p.https1)),
                size,
            );
            c.label = format!("{n} worker{}", if *n == 1 { "" } else { "s" });
            curl.push(c);
            let h2 = format!("h2://localhost:{}", p.https);
            let mut b = self.burrow("1.1", &url, &[&h2]);
            b.label = format!("{n} worker{}", if *n == 1 { "" } else { "s" });
            cli.push(b);
        }
        self.download_table(
            "workers-h1tls",
            &format!(
                "burrow-proxy workers: curl, CONNECT over HTTP/1.1+TLS, HTTP/1.1 over TLS to nginx, {} MiB",
                size / MIB
            ),
            &curl,
            size,
        );
        self.download_table(
            "workers-h2",
            &format!(
                "burrow-proxy workers: burrow CLI, CONNECT over HTTP/2, HTTP/1.1 over TLS to nginx, {} MiB",
                size / MIB
            ),
            &cli,
            size,
        );
    }
}
