//! The A/B driver: starts burrow's own servers next to the peers `scripts/bench.sh`
//! started, runs every comparison in alternating rounds (the case order rotates each
//! round), and prints medians, ratios and the goals as Markdown.

mod cases;
mod goals;
mod hooks;
mod netns;
mod scale;
mod sections;
mod servers;
mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::load::Failure;

use cases::Stats;
use servers::{content, start_origin, BurrowProxy, Env};

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
    /// Tunnels over one HTTP/2 proxy connection in the memory row, and through each proxy
    /// in the proxies section.
    #[arg(long, default_value_t = 1000)]
    tunnels: usize,
    /// Only these sections: throughput, h3, tunnel, hooks, workers, rate, memory, proxies
    /// (default: all).
    #[arg(long)]
    only: Vec<String>,
    /// Also write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
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

    fn stat(&self, group: &str, label: &str) -> Option<&Stats> {
        self.results
            .get(&(group.to_string(), label.to_string()))
            .filter(|s| !s.walls.is_empty())
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
    if b.want("hooks") {
        b.hooks(&bp);
    }
    if b.want("workers") {
        b.workers();
    }
    if b.want("rate") {
        b.rate(origin_port);
    }
    if b.want("memory") {
        b.memory(&bp, &origin, origin_port);
    }
    if b.want("proxies") {
        b.scale(&bp);
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
    Ok(())
}
