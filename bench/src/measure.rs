//! Running one command under `/usr/bin/time` and the statistics over rounds.

use std::path::Path;
use std::process::Command;

use crate::load::Failure;

/// What one run of a command cost.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Wall-clock seconds.
    pub wall: f64,
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set, KiB.
    pub rss_kib: u64,
    /// CPU seconds the whole machine spent meanwhile (client, servers, proxies), from
    /// `/proc/stat`.
    pub machine_cpu: f64,
    /// What the command printed on stdout.
    pub stdout: String,
}

/// Busy CPU seconds of the whole machine since boot (all cores), from `/proc/stat`.
pub fn machine_busy() -> f64 {
    // user nice system idle iowait irq softirq steal, in USER_HZ (100 on Linux).
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return f64::NAN;
    };
    let Some(line) = s.lines().next() else {
        return f64::NAN;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return f64::NAN;
    }
    (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / 100.0
}

/// Runs `argv` under GNU time; fails when the command fails.
pub fn timed(argv: &[String], scratch: &Path) -> Result<Sample, Failure> {
    let out_file = scratch.join("time.out");
    let busy = machine_busy();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&out_file)
        .args(argv)
        .output()?;
    let machine_cpu = machine_busy() - busy;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let t = std::fs::read_to_string(&out_file)?;
    let f: Vec<&str> = t.split_whitespace().collect();
    let num = |i: usize| -> Result<f64, Failure> {
        Ok(f.get(i)
            .ok_or_else(|| format!("time printed {t:?}"))?
            .parse::<f64>()?)
    };
    Ok(Sample {
        wall: num(0)?,
        cpu: num(1)? + num(2)?,
        rss_kib: num(3)? as u64,
        machine_cpu,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The number after `key` in a line of `key value` pairs.
pub fn field(out: &str, key: &str) -> Option<f64> {
    let mut it = out.split_whitespace();
    while let Some(k) = it.next() {
        if k == key {
            return it.next()?.trim_end_matches(',').parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn fields_are_found_by_key() {
        let l = "requests 120 secs 5.002 rate 23.9 connections 1";
        assert_eq!(field(l, "rate"), Some(23.9));
        assert_eq!(field(l, "connections"), Some(1.0));
        assert_eq!(field(l, "missing"), None);
    }
}
