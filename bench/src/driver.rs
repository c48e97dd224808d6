//! The A/B driver: starts burrow's own servers next to the peers `scripts/bench.sh`
//! started, runs every comparison in alternating rounds (the case order rotates each
//! round), and prints medians, ratios and the goals as Markdown.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::Failure;
use crate::measure::{field, median, timed, Sample};

const MIB: u64 = 1 << 20;
/// Size of the download the memory-scaling rows use, to compare with the full-size ones.
const SMALL_DOWNLOAD_MIB: u64 = 64;
/// Size of the small response the request-rate rows fetch.
const SMALL_RESPONSE: usize = 1024;

/// What to run.
#[derive(clap::Args, Clone)]
pub struct Options {
    /// Download size for the throughput rows, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds of every download comparison.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Rounds of every request-rate comparison.
    #[arg(long, default_value_t = 3)]
    rate_rounds: usize,
    /// Seconds each request-rate run lasts.
    #[arg(long, default_value_t = 5.0)]
    rate_secs: f64,
    /// Idle connections per memory row.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Tunnels over one HTTP/2 proxy connection in the memory row.
    #[arg(long, default_value_t = 1000)]
    tunnels: usize,
    /// Only these sections: throughput, h3, tunnel, rate, memory (default: all).
    #[arg(long)]
    only: Vec<String>,
    /// Also write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Where the peers listen (exported by scripts/peers-up.sh) and where the binaries are.
struct Env {
    bin: PathBuf,
    me: PathBuf,
    reference: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    root: PathBuf,
    scratch: PathBuf,
    nginx_plain: u16,
    nginx_tls: u16,
    caddy: u16,
    squid: u16,
    squid_tls: u16,
    nghttpx: u16,
    dante: u16,
}

fn var(name: &str) -> Result<String, Failure> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run scripts/bench.sh").into())
}

fn port(name: &str) -> Result<u16, Failure> {
    Ok(var(name)?.parse()?)
}

impl Env {
    fn from_env() -> Result<Env, Failure> {
        let me = std::env::current_exe()?;
        let dir = me.parent().ok_or("no exe dir")?.to_path_buf();
        let ca = PathBuf::from(var("BURROW_NGINX_CA")?);
        let pki = ca.parent().ok_or("CA without dir")?.to_path_buf();
        let scratch = std::env::temp_dir().join(format!("burrow-bench.{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        Ok(Env {
            bin: PathBuf::from(var("BURROW_BIN_DIR")?),
            reference: dir.join("bench-ref"),
            me,
            cert: pki.join("cert.pem"),
            key: pki.join("key.pem"),
            ca,
            root: PathBuf::from(var("BURROW_NGINX_ROOT")?),
            scratch,
            nginx_plain: port("BURROW_NGINX_PLAIN")?,
            nginx_tls: port("BURROW_NGINX_TLS")?,
            caddy: port("BURROW_CADDY")?,
            squid: port("BURROW_SQUID")?,
            squid_tls: port("BURROW_SQUID_TLS")?,
            nghttpx: port("BURROW_NGHTTPX")?,
            dante: port("BURROW_DANTE")?,
        })
    }

    fn ca(&self) -> String {
        self.ca.display().to_string()
    }
}

/// A child process killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(udp_too: bool) -> Result<u16, Failure> {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if !udp_too || UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
    Err("no free port".into())
}

fn wait_port(p: u16) -> Result<(), Failure> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", p)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on {p}").into())
}

/// burrow-proxy with every listener kind.
struct BurrowProxy {
    server: Server,
    http: u16,
    https: u16,
    https1: u16,
    h3: u16,
    socks: u16,
}

impl BurrowProxy {
    fn start(env: &Env) -> Result<BurrowProxy, Failure> {
        let (http, https, https1, h3, socks) = (
            free_port(false)?,
            free_port(false)?,
            free_port(false)?,
            free_port(true)?,
            free_port(false)?,
        );
        let child = Command::new(env.bin.join("burrow-proxy"))
            .args(["--listen", &format!("http://127.0.0.1:{http}")])
            .args(["--listen", &format!("https://127.0.0.1:{https}")])
            .args(["--listen", &format!("https1://127.0.0.1:{https1}")])
            .args(["--listen", &format!("h3://127.0.0.1:{h3}")])
            .args(["--listen", &format!("socks5://127.0.0.1:{socks}")])
            .arg("--cert")
            .arg(&env.cert)
            .arg("--key")
            .arg(&env.key)
            .stdout(Stdio::null())
            .spawn()?;
        let p = BurrowProxy {
            server: Server { child },
            http,
            https,
            https1,
            h3,
            socks,
        };
        for port in [http, https, https1, socks] {
            wait_port(port)?;
        }
        Ok(p)
    }

    fn pid(&self) -> String {
        self.server.child.id().to_string()
    }
}

/// burrow's origin (`burrow-bench serve`): TLS h1/h2 and h3 on one port number.
fn start_origin(env: &Env) -> Result<(Server, u16), Failure> {
    let mut child = Command::new(&env.me)
        .arg("serve")
        .arg("--cert")
        .arg(&env.cert)
        .arg("--key")
        .arg(&env.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().ok_or("origin stdout")?;
    let server = Server { child };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let port = field(&line, "port").ok_or_else(|| format!("origin said {line:?}"))? as u16;
    wait_port(port)?;
    Ok((server, port))
}

/// Writes `mib` MiB of pseudo-random bytes to `path` unless it already has that size.
fn content(path: &Path, bytes: u64) -> Result<(), Failure> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
        return Ok(());
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB as usize];
    let mut left = bytes;
    while left > 0 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(MIB) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// How a run's output proves it did the work.
#[derive(Clone)]
enum Check {
    /// Exit status only (burrow's CLI fails on a short body).
    Status,
    /// curl's `-w '%{size_download} %{http_version}'`.
    Curl { bytes: u64, version: &'static str },
    /// bench-ref's `bytes N`.
    Bytes(u64),
    /// A rate line (`requests N … rate R`) from burrow-bench or bench-ref.
    Rate,
    /// h2load's summary.
    H2load,
}

#[derive(Clone)]
struct Case {
    label: String,
    argv: Vec<String>,
    check: Check,
}

/// The result of one case over its rounds.
#[derive(Default, Clone)]
struct Stats {
    walls: Vec<f64>,
    cpus: Vec<f64>,
    machine: Vec<f64>,
    rss: Vec<f64>,
    rates: Vec<f64>,
    cpu_per_req_us: Vec<f64>,
    /// Failed requests a reference client reported (it goes on after one).
    errors: f64,
    failures: usize,
}

impl Stats {
    fn wall(&self) -> f64 {
        median(&self.walls)
    }
    fn rate(&self) -> f64 {
        median(&self.rates)
    }
}

/// Requests and rate from a run's output, checked.
fn check(c: &Check, s: &Sample) -> Result<Option<(f64, f64)>, Failure> {
    let out = s.stdout.trim();
    match c {
        Check::Status => Ok(None),
        Check::Curl { bytes, version } => {
            let mut f = out.split_whitespace();
            let (got, v) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            if got != bytes.to_string() || v != *version {
                return Err(format!("curl got {got} bytes over HTTP/{v}").into());
            }
            Ok(None)
        }
        Check::Bytes(want) => match field(out, "bytes") {
            Some(n) if n as u64 == *want => Ok(None),
            _ => Err(format!("reference client printed {out:?}").into()),
        },
        Check::Rate => {
            let n = field(out, "requests").ok_or_else(|| format!("rate printed {out:?}"))?;
            let r = field(out, "rate").ok_or_else(|| format!("rate printed {out:?}"))?;
            Ok(Some((n, r)))
        }
        Check::H2load => {
            // "finished in 5.00s, 29736.40 req/s, 3.46MB/s" and
            // "requests: 148682 total, 148746 started, 148682 done, 148682 succeeded, 0 failed, …"
            let fin = out
                .lines()
                .find(|l| l.starts_with("finished in"))
                .ok_or("h2load did not finish")?;
            let rate: f64 = fin
                .split(", ")
                .find_map(|p| p.strip_suffix(" req/s"))
                .ok_or("no req/s")?
                .parse()?;
            let req = out
                .lines()
                .find(|l| l.starts_with("requests:"))
                .ok_or("no requests line")?;
            let num_before = |w: &str| -> Option<f64> {
                let t: Vec<&str> = req.split_whitespace().collect();
                let i = t.iter().position(|x| x.trim_end_matches(',') == w)?;
                t.get(i.checked_sub(1)?)?.parse().ok()
            };
            let ok = num_before("succeeded").ok_or("no succeeded count")?;
            let failed = num_before("failed").unwrap_or(0.0) + num_before("errored").unwrap_or(0.0);
            if failed > 0.0 || ok == 0.0 {
                return Err(format!("h2load: {req}").into());
            }
            Ok(Some((ok, rate)))
        }
    }
}

struct Bench {
    env: Env,
    o: Options,
    size: u64,
    results: HashMap<(String, String), Stats>,
    md: String,
}

impl Bench {
    fn want(&self, section: &str) -> bool {
        self.o.only.is_empty() || self.o.only.iter().any(|s| s == section)
    }

    fn say(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.md.push_str(s.as_ref());
        self.md.push('\n');
    }

    /// Runs `cases` for `rounds` rounds, rotating which case goes first each round.
    fn ab(&mut self, group: &str, cases: &[Case], rounds: usize) -> Vec<Stats> {
        let mut stats = vec![Stats::default(); cases.len()];
        for r in 0..rounds {
            for i in 0..cases.len() {
                let k = (i + r) % cases.len();
                let c = &cases[k];
                let res = timed(&c.argv, &self.env.scratch).and_then(|s| {
                    let rate = check(&c.check, &s)?;
                    Ok((s, rate))
                });
                let st = &mut stats[k];
                match res {
                    Ok((s, rate)) => {
                        eprintln!(
                            "  [{group} r{r}] {:<28} {:>7.2} s  cpu {:>6.2} s  rss {:>7} KiB{}",
                            c.label,
                            s.wall,
                            s.cpu,
                            s.rss_kib,
                            rate.map_or(String::new(), |(_, r)| format!("  {r:.0} req/s"))
                        );
                        st.walls.push(s.wall);
                        st.cpus.push(s.cpu);
                        st.machine.push(s.machine_cpu);
                        st.rss.push(s.rss_kib as f64);
                        st.errors += field(&s.stdout, "errors").unwrap_or(0.0);
                        if let Some((n, r)) = rate {
                            st.rates.push(r);
                            if n > 0.0 {
                                st.cpu_per_req_us.push(s.cpu / n * 1e6);
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("  [{group} r{r}] {} FAILED: {e}", c.label);
                        st.failures += 1;
                    }
                }
            }
        }
        for (c, s) in cases.iter().zip(&stats) {
            self.results
                .insert((group.to_string(), c.label.clone()), s.clone());
        }
        stats
    }

    /// A download comparison table; ratios are throughput relative to the first case.
    fn download_table(&mut self, group: &str, title: &str, cases: &[Case], size: u64) {
        self.say(format!("\n### {title}\n"));
        let cmds: Vec<String> = cases
            .iter()
            .map(|c| format!("- {}: `{}`", c.label, shown(&c.argv)))
            .collect();
        let stats = self.ab(group, cases, self.o.rounds);
        self.say("| client | median s | MiB/s | CPU s | CPU s/GiB | machine CPU s | peak RSS MiB | first row ÷ this (speed) | runs (s) |");
        self.say("|---|---|---|---|---|---|---|---|---|");
        let base = stats.first().map_or(f64::NAN, Stats::wall);
        for (c, s) in cases.iter().zip(&stats) {
            let w = s.wall();
            let cpu = median(&s.cpus);
            let row = format!(
                "| {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2}× | {}{} |",
                c.label,
                w,
                size as f64 / MIB as f64 / w,
                cpu,
                cpu / (size as f64 / (1u64 << 30) as f64),
                median(&s.machine),
                median(&s.rss) / 1024.0,
                w / base,
                s.walls
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if s.failures > 0 {
                    format!(" ({} failed)", s.failures)
                } else {
                    String::new()
                }
            );
            self.say(row);
        }
        self.say("\nCommands:\n");
        for c in cmds {
            self.say(c);
        }
    }

    fn rate_table(&mut self, group: &str, title: &str, cases: &[Case]) {
        self.say(format!("\n### {title}\n"));
        let cmds: Vec<String> = cases
            .iter()
            .map(|c| format!("- {}: `{}`", c.label, shown(&c.argv)))
            .collect();
        let stats = self.ab(group, cases, self.o.rate_rounds);
        self.say("| client | median req/s | CPU µs/request | first row ÷ this | failed requests | runs (req/s) |");
        self.say("|---|---|---|---|---|---|");
        let base = stats.first().map_or(f64::NAN, Stats::rate);
        for (c, s) in cases.iter().zip(&stats) {
            let row = format!(
                "| {} | {:.0} | {:.1} | {:.2}× | {} | {}{} |",
                c.label,
                s.rate(),
                median(&s.cpu_per_req_us),
                base / s.rate(),
                s.errors,
                s.rates
                    .iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if s.failures > 0 {
                    format!(" ({} failed)", s.failures)
                } else {
                    String::new()
                }
            );
            self.say(row);
        }
        self.say("\nCommands:\n");
        for c in cmds {
            self.say(c);
        }
    }

    fn burrow(&self, http: &str, url: &str, proxy: &[&str]) -> Case {
        let mut a = vec![
            self.env.bin.join("burrow").display().to_string(),
            "-sS".into(),
            "-o".into(),
            "/dev/null".into(),
            "--cacert".into(),
            self.env.ca(),
        ];
        a.push(
            match http {
                "1.1" => "--http1.1",
                "2" => "--http2",
                _ => "--http3-only",
            }
            .into(),
        );
        for p in proxy {
            a.extend(["-x".into(), p.to_string()]);
        }
        if !proxy.is_empty() {
            a.extend(["--proxy-cacert".into(), self.env.ca()]);
        }
        a.push(url.into());
        Case {
            label: "burrow".into(),
            argv: a,
            check: Check::Status,
        }
    }

    fn curl(&self, http: &'static str, url: &str, proxy: Option<&str>, bytes: u64) -> Case {
        let mut a: Vec<String> = vec![
            "curl".into(),
            "-sS".into(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{size_download} %{http_version}".into(),
            "--cacert".into(),
            self.env.ca(),
            if http == "2" { "--http2" } else { "--http1.1" }.into(),
        ];
        if let Some(p) = proxy {
            a.extend([
                "-x".into(),
                p.into(),
                "--proxy-cacert".into(),
                self.env.ca(),
            ]);
        }
        a.push(url.into());
        Case {
            label: "curl".into(),
            argv: a,
            check: Check::Curl {
                bytes,
                version: if http == "2" { "2" } else { "1.1" },
            },
        }
    }

    fn reference(&self, lib: &str, http: &str, url: &str, bytes: u64) -> Case {
        Case {
            label: format!("{lib}{}", if http == "3" { " h3" } else { "" }),
            argv: vec![
                self.env.reference.display().to_string(),
                "get".into(),
                "--lib".into(),
                lib.into(),
                "--http".into(),
                http.into(),
                "--cacert".into(),
                self.env.ca(),
                url.into(),
            ],
            check: Check::Bytes(bytes),
        }
    }

    fn throughput(&mut self) {
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

    fn h3(&mut self, origin_port: u16) {
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

    fn tunnel(&mut self, bp: &BurrowProxy, origin_port: u16) {
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
    }

    fn rate_case(&self, label: &str, http: &str, conns: usize, conc: usize, url: &str) -> Case {
        Case {
            label: label.into(),
            argv: vec![
                self.env.me.display().to_string(),
                "rate".into(),
                "--http".into(),
                http.into(),
                "--connections".into(),
                conns.to_string(),
                "--concurrency".into(),
                conc.to_string(),
                "--duration".into(),
                self.o.rate_secs.to_string(),
                "--cacert".into(),
                self.env.ca(),
                url.into(),
            ],
            check: Check::Rate,
        }
    }

    fn h2load(&self, h1: bool, conns: usize, streams: usize, url: &str) -> Case {
        let mut a: Vec<String> = vec!["h2load".into()];
        if h1 {
            a.push("--h1".into());
        }
        a.extend([
            format!("-c{conns}"),
            format!("-m{streams}"),
            "-t1".into(),
            "-D".into(),
            format!("{}", self.o.rate_secs.ceil() as u64),
            url.into(),
        ]);
        Case {
            label: "h2load".into(),
            argv: a,
            check: Check::H2load,
        }
    }

    fn ref_rate(&self, conc: usize, url: &str) -> Case {
        Case {
            label: "reqwest h3".into(),
            argv: vec![
                self.env.reference.display().to_string(),
                "rate".into(),
                "--lib".into(),
                "reqwest".into(),
                "--http".into(),
                "3".into(),
                "--cacert".into(),
                self.env.ca(),
                "--concurrency".into(),
                conc.to_string(),
                "--duration".into(),
                self.o.rate_secs.to_string(),
                url.into(),
            ],
            check: Check::Rate,
        }
    }

    fn rate(&mut self, origin_port: u16) {
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

    fn workload(&self, argv: Vec<String>) -> Result<String, Failure> {
        let s = timed(&argv, &self.env.scratch)?;
        Ok(s.stdout)
    }

    fn memory(&mut self, bp: &BurrowProxy, origin: &Server, origin_port: u16) {
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
            }
            Err(e) => self.say(format!("failed: {e}")),
        }
    }

    fn stat(&self, group: &str, label: &str) -> Option<&Stats> {
        self.results
            .get(&(group.to_string(), label.to_string()))
            .filter(|s| !s.walls.is_empty())
    }

    fn goals(&mut self) {
        // (goal, group, burrow's row, group of the reference, reference row, at least)
        let speed: [(&str, &str, &str, &str, &str, f64); 16] = [
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
}

fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a = a
                .rsplit('/')
                .next()
                .filter(|_| a.starts_with('/') && !a.starts_with("/dev/") && !a.contains(' '))
                .unwrap_or(a);
            if a.contains(' ') || a.contains('%') {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs everything `o` selects and prints the report.
pub fn run(o: Options) -> Result<(), Failure> {
    let env = Env::from_env()?;
    let size = o.size_mib * MIB;
    eprintln!("preparing content ({} MiB)…", o.size_mib);
    content(&env.root.join("big.bin"), size)?;
    content(&env.root.join("mid.bin"), SMALL_DOWNLOAD_MIB * MIB)?;
    content(&env.root.join("small.bin"), SMALL_RESPONSE as u64)?;
    let (origin, origin_port) = start_origin(&env)?;
    let bp = BurrowProxy::start(&env)?;
    let mut b = Bench {
        env,
        o: o.clone(),
        size,
        results: HashMap::new(),
        md: String::new(),
    };
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    b.say(format!(
        "## Run: {} MiB downloads, {} rounds; request rates {} s × {} rounds; {cores} CPUs ({host})",
        o.size_mib, o.rounds, o.rate_secs, o.rate_rounds
    ));
    b.say(
        "\nSpeed ratios compare medians. *CPU s* is the measured client's user+system time; \
         *machine CPU s* is what every process on the machine (client, servers, proxies) \
         spent during the run, from /proc/stat; peak RSS is the client's.",
    );
    let started = Instant::now();
    if b.want("throughput") {
        b.throughput();
    }
    if b.want("h3") {
        b.h3(origin_port);
    }
    if b.want("tunnel") {
        b.tunnel(&bp, origin_port);
    }
    if b.want("rate") {
        b.rate(origin_port);
    }
    if b.want("memory") {
        b.memory(&bp, &origin, origin_port);
    }
    b.goals();
    b.say(format!(
        "\n(total {:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    if let Some(p) = &o.report {
        std::fs::write(p, &b.md)?;
    }
    let _ = std::fs::remove_dir_all(&b.env.scratch);
    let mut failed = 0;
    for s in b.results.values() {
        failed += s.failures;
    }
    if failed > 0 {
        return Err(format!("{failed} runs failed (see FAILED lines above)").into());
    }
    let _ = writeln!(String::new());
    Ok(())
}
