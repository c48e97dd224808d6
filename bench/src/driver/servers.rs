//! The servers the driver starts itself (burrow's origin, burrow-proxy), where the peers
//! listen, and the content they serve.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::MIB;
use crate::load::Failure;
use crate::measure::field;

/// Where the peers listen (exported by scripts/peers-up.sh) and where the binaries are.
pub(super) struct Env {
    pub(super) bin: PathBuf,
    pub(super) me: PathBuf,
    pub(super) reference: PathBuf,
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) root: PathBuf,
    pub(super) scratch: PathBuf,
    pub(super) nginx_plain: u16,
    pub(super) nginx_tls: u16,
    pub(super) caddy: u16,
    pub(super) squid: u16,
    pub(super) squid_tls: u16,
    pub(super) nghttpx: u16,
    pub(super) dante: u16,
}

pub(super) fn var(name: &str) -> Result<String, Failure> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run scripts/bench.sh").into())
}

pub(super) fn port(name: &str) -> Result<u16, Failure> {
    Ok(var(name)?.parse()?)
}

impl Env {
    pub(super) fn from_env() -> Result<Env, Failure> {
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

    pub(super) fn ca(&self) -> String {
        self.ca.display().to_string()
    }
}

/// A child process killed when dropped.
pub(super) struct Server {
    pub(super) child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port(udp_too: bool) -> Result<u16, Failure> {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if !udp_too || UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
    Err("no free port".into())
}

pub(super) fn wait_port(p: u16) -> Result<(), Failure> {
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
pub(super) struct BurrowProxy {
    pub(super) server: Server,
    pub(super) http: u16,
    pub(super) https: u16,
    pub(super) https1: u16,
    pub(super) h3: u16,
    pub(super) socks: u16,
}

impl BurrowProxy {
    pub(super) fn start(env: &Env) -> Result<BurrowProxy, Failure> {
        BurrowProxy::start_with(env, &[])
    }

    /// With `extra` arguments (hooks, interception).
    pub(super) fn start_with(env: &Env, extra: &[String]) -> Result<BurrowProxy, Failure> {
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
            // Every target here is on loopback, which burrow-proxy refuses by default; and
            // the tunnel workloads open more tunnels from one address than a client gets.
            .args(["--allow-net", "127.0.0.0/8", "--allow-net", "::1"])
            .args(["--max-tunnels-per-client", "65536"])
            .args(["--max-connections-per-client", "65536"])
            .args(["--max-tunnels", "65536", "--max-requests", "65536"])
            .arg("--cert")
            .arg(&env.cert)
            .arg("--key")
            .arg(&env.key)
            .args(extra)
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

    pub(super) fn pid(&self) -> String {
        self.server.child.id().to_string()
    }
}

/// burrow's origin (`burrow-bench serve`): TLS h1/h2 and h3 on one port number.
pub(super) fn start_origin(env: &Env) -> Result<(Server, u16), Failure> {
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
pub(super) fn content(path: &Path, bytes: u64) -> Result<(), Failure> {
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

/// mitmproxy's `mitmdump`, streaming bodies (as burrow-proxy does), trusting the peers' CA
/// for origins; `None` when it is not installed. Its CA is `confdir/mitmproxy-ca-cert.pem`.
pub(super) fn start_mitmdump(env: &Env, confdir: &Path) -> Result<Option<(Server, u16)>, Failure> {
    let port = free_port(false)?;
    let child = Command::new("mitmdump")
        .args([
            "-q",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
        ])
        .arg("--set")
        .arg(format!("confdir={}", confdir.display()))
        .arg("--set")
        .arg(format!("ssl_verify_upstream_trusted_ca={}", env.ca()))
        .args(["--set", "stream_large_bodies=1m"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else { return Ok(None) };
    let server = Server { child };
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            return Err("mitmdump did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Some((server, port)))
}
