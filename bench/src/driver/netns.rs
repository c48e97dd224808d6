//! A network namespace for the CONNECT-IP rows: the proxy's TUN device and an origin off
//! loopback (packets from a TUN device cannot reach 127.0.0.1), with every process of
//! those rows inside it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::servers::{Env, Server};
use crate::load::Failure;
use crate::measure::field;

/// The origin's address, on the namespace's loopback device.
pub(super) const ORIGIN: &str = "10.77.0.1";
/// The proxy's CONNECT-IP pool.
const POOL: &str = "10.88.0.0/24";

/// A namespace, deleted when dropped.
pub(super) struct Netns {
    name: String,
}

/// burrow-proxy inside the namespace, serving CONNECT-IP.
pub(super) struct IpProxy {
    _server: Server,
    pub(super) h3: u16,
    pub(super) https: u16,
}

fn run(args: &[&str]) -> Result<(), String> {
    let s = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    match s.success() {
        true => Ok(()),
        false => Err(format!("`{}` failed", args.join(" "))),
    }
}

impl Netns {
    /// Creates the namespace with its loopback up and [`ORIGIN`] on it; needs root.
    pub(super) fn create(name: &str) -> Result<Netns, String> {
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name]).map_err(|e| format!("needs root and iproute2: {e}"))?;
        let ns = Netns { name: name.into() };
        for cmd in [
            vec!["ip", "link", "set", "lo", "up"],
            vec!["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"],
        ] {
            let mut argv = ns.exec();
            argv.extend(cmd.iter().map(|s| s.to_string()));
            let a: Vec<&str> = argv.iter().map(String::as_str).collect();
            run(&a)?;
        }
        Ok(ns)
    }

    /// The prefix that runs a command inside.
    pub(super) fn exec(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// burrow's origin (`burrow-bench serve`) on [`ORIGIN`].
    pub(super) fn start_origin(&self, env: &Env) -> Result<(Server, u16), Failure> {
        let mut child = self
            .command(&env.me)
            .arg("serve")
            .arg("--cert")
            .arg(&env.cert)
            .arg("--key")
            .arg(&env.key)
            .args(["--host", ORIGIN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("origin stdout")?;
        let server = Server { child };
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let port = field(&line, "port").ok_or_else(|| format!("origin said {line:?}"))? as u16;
        Ok((server, port))
    }

    /// burrow-proxy with an HTTP/3 and an HTTPS listener and a CONNECT-IP pool.
    pub(super) fn start_proxy(&self, env: &Env) -> Result<IpProxy, Failure> {
        let mut child = self
            .command(&env.bin.join("burrow-proxy"))
            .args([
                "--listen",
                "h3://127.0.0.1:0",
                "--listen",
                "https://127.0.0.1:0",
            ])
            .args(["--ip-pool", POOL, "--tun-name", "bb0"])
            .args(["--allow-net", "10.77.0.0/16"])
            .arg("--cert")
            .arg(&env.cert)
            .arg("--key")
            .arg(&env.key)
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("proxy stdout")?;
        let server = Server { child };
        let mut ports = Vec::new();
        for line in BufReader::new(out).lines() {
            let line = line?;
            if line.contains("://") {
                ports.push(
                    line.rsplit(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .parse::<u16>()?,
                );
            }
            if ports.len() == 2 {
                break;
            }
        }
        if ports.len() < 2 {
            return Err("burrow-proxy ended before listening (TUN device?)".into());
        }
        Ok(IpProxy {
            _server: server,
            h3: ports[0],
            https: ports[1],
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}
