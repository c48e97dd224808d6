//! Cases (a command and how to check its output), the alternating rounds that run them,
//! and the tables they become.

use super::{shown, Bench, MIB};
use crate::load::Failure;
use crate::measure::{field, median, timed, Sample};

#[derive(Clone)]
pub(super) enum Check {
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
    /// wrk's summary (`N requests in Ss`, `Requests/sec: R`); any non-2xx response or
    /// socket error fails the run.
    Wrk,
}

#[derive(Clone)]
pub(super) struct Case {
    pub(super) label: String,
    pub(super) argv: Vec<String>,
    pub(super) check: Check,
}

/// The result of one case over its rounds.
#[derive(Default, Clone)]
pub(super) struct Stats {
    pub(super) walls: Vec<f64>,
    pub(super) cpus: Vec<f64>,
    pub(super) machine: Vec<f64>,
    pub(super) rss: Vec<f64>,
    pub(super) rates: Vec<f64>,
    pub(super) cpu_per_req_us: Vec<f64>,
    /// Failed requests a reference client reported (it goes on after one).
    pub(super) errors: f64,
    pub(super) failures: usize,
}

impl Stats {
    pub(super) fn wall(&self) -> f64 {
        median(&self.walls)
    }
    pub(super) fn rate(&self) -> f64 {
        median(&self.rates)
    }
}

/// Requests and rate from a run's output, checked.
pub(super) fn check(c: &Check, s: &Sample) -> Result<Option<(f64, f64)>, Failure> {
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
        Check::Wrk => {
            if let Some(l) = out
                .lines()
                .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
            {
                return Err(format!("wrk: {}", l.trim()).into());
            }
            let n = out
                .lines()
                .find_map(|l| l.trim().split_once(" requests in "))
                .and_then(|(n, _)| n.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("wrk printed {out:?}"))?;
            let r = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                .and_then(|r| r.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("wrk printed {out:?}"))?;
            if n == 0.0 {
                return Err("wrk made no requests".into());
            }
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

impl Bench {
    /// Runs `cases` for `rounds` rounds, rotating which case goes first each round.
    pub(super) fn ab(&mut self, group: &str, cases: &[Case], rounds: usize) -> Vec<Stats> {
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

    /// Lists the command line of every case under its table.
    fn commands(&mut self, cases: &[Case]) {
        self.say("\nCommands:\n");
        for c in cases {
            self.say(format!("- {}: `{}`", c.label, shown(&c.argv)));
        }
    }

    /// A download comparison table; ratios are throughput relative to the first case.
    pub(super) fn download_table(&mut self, group: &str, title: &str, cases: &[Case], size: u64) {
        self.say(format!("\n### {title}\n"));
        let stats = self.ab(group, cases, self.o.rounds);
        self.say("| client | median s | MiB/s | CPU s | CPU s/GiB | machine CPU s | peak RSS MiB | first row ÷ this (speed) | runs (s) |");
        self.say("|---|---|---|---|---|---|---|---|---|");
        let base = stats.first().map_or(f64::NAN, Stats::wall);
        for (c, s) in cases.iter().zip(&stats) {
            let w = s.wall();
            let cpu = median(&s.cpus);
            let row = format!(
                "| {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2}× | {} |",
                c.label,
                w,
                size as f64 / MIB as f64 / w,
                cpu,
                cpu / (size as f64 / (1u64 << 30) as f64),
                median(&s.machine),
                median(&s.rss) / 1024.0,
                w / base,
                runs(&s.walls, 2, s.failures),
            );
            self.say(row);
        }
        self.commands(cases);
    }

    pub(super) fn rate_table(&mut self, group: &str, title: &str, cases: &[Case]) {
        self.say(format!("\n### {title}\n"));
        let stats = self.ab(group, cases, self.o.rate_rounds);
        self.say("| client | median req/s | CPU µs/request | first row ÷ this | failed requests | runs (req/s) |");
        self.say("|---|---|---|---|---|---|");
        let base = stats.first().map_or(f64::NAN, Stats::rate);
        for (c, s) in cases.iter().zip(&stats) {
            let row = format!(
                "| {} | {:.0} | {:.1} | {:.2}× | {} | {} |",
                c.label,
                s.rate(),
                median(&s.cpu_per_req_us),
                base / s.rate(),
                s.errors,
                runs(&s.rates, 0, s.failures),
            );
            self.say(row);
        }
        self.commands(cases);
    }

    pub(super) fn burrow(&self, http: &str, url: &str, proxy: &[&str]) -> Case {
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

    pub(super) fn curl(
        &self,
        http: &'static str,
        url: &str,
        proxy: Option<&str>,
        bytes: u64,
    ) -> Case {
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

    pub(super) fn reference(&self, lib: &str, http: &str, url: &str, bytes: u64) -> Case {
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

    pub(super) fn rate_case(
        &self,
        label: &str,
        http: &str,
        conns: usize,
        conc: usize,
        url: &str,
    ) -> Case {
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

    pub(super) fn h2load(&self, h1: bool, conns: usize, streams: usize, url: &str) -> Case {
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

    pub(super) fn ref_rate(&self, conc: usize, url: &str) -> Case {
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
}

/// The runs column: every value, then how many runs failed.
fn runs(values: &[f64], decimals: usize, failures: usize) -> String {
    let mut s = values
        .iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" ");
    if failures > 0 {
        s.push_str(&format!(" ({failures} failed)"));
    }
    s
}
