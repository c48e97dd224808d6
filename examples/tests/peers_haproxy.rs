//! Scale-out: two `burrow-proxy` instances behind HAProxy (Debian's package) in TCP mode on
//! loopback. Both serve tunnels; stopping one breaks only its own tunnels, and new tunnels
//! go to the other. Run by `scripts/peers.sh`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{start_burrow_proxy, var};

struct Haproxy {
    child: Child,
    port: u16,
    cfg: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.cfg);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haproxy(backends: &[String]) -> Haproxy {
    let port = free_port();
    let mut cfg = format!(
        "global\n  maxconn 4096\n  nbthread 1\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 timeout tunnel 1h\n  retries 3\n  option redispatch\n\
         frontend proxies\n  bind 127.0.0.1:{port}\n  default_backend burrow\n\
         backend burrow\n  balance leastconn\n"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!(
            "  server p{i} {b} check inter 200ms fall 1 rise 1\n"
        ));
    }
    let path = std::env::temp_dir().join(format!("burrow-haproxy-{port}.cfg"));
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("haproxy not installed: run scripts/peers.sh");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Haproxy {
        child,
        port,
        cfg: path,
    }
}

/// A CONNECT tunnel through `port` to nginx, checked with one request.
struct TunnelConn {
    r: BufReader<TcpStream>,
}

impl TunnelConn {
    fn open(port: u16, nginx: &str) -> TunnelConn {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "CONNECT {nginx} HTTP/1.1\r\nHost: {nginx}\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" {
                break;
            }
        }
        TunnelConn { r }
    }

    /// A keep-alive GET of nginx's 1 MiB file inside the tunnel: its body, or an error
    /// when the tunnel is gone.
    fn get(&mut self, nginx: &str) -> std::io::Result<Vec<u8>> {
        write!(
            self.r.get_mut(),
            "GET /1m.bin HTTP/1.1\r\nHost: {nginx}\r\n\r\n"
        )?;
        let mut len = None;
        let mut first = true;
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if first {
                assert!(l.starts_with("HTTP/1.1 200"), "{l:?}");
                first = false;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
            if l == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len.unwrap()];
        self.r.read_exact(&mut body)?;
        Ok(body)
    }
}

#[test]
#[ignore = "needs haproxy and nginx: run scripts/peers.sh"]
fn two_instances_behind_haproxy_one_stopped_the_other_keeps_its_tunnels() {
    let root = var("BURROW_NGINX_ROOT");
    let nginx = format!("127.0.0.1:{}", var("BURROW_NGINX_PLAIN"));
    let want = std::fs::read(format!("{root}/1m.bin")).unwrap();
    let mut a = start_burrow_proxy(&["http"], &[]);
    let b = start_burrow_proxy(&["http"], &[]);
    let lb = haproxy(&[
        format!("127.0.0.1:{}", a.port(0)),
        format!("127.0.0.1:{}", b.port(0)),
    ]);
    // Least connections: with a tunnel open on one instance, the next goes to the other.
    let mut tunnels: Vec<TunnelConn> = (0..2).map(|_| TunnelConn::open(lb.port, &nginx)).collect();
    for t in &mut tunnels {
        assert!(t.get(&nginx).unwrap() == want);
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // Exactly one tunnel was on the stopped instance.
    let alive: Vec<bool> = tunnels.iter_mut().map(|t| t.get(&nginx).is_ok()).collect();
    assert_eq!(alive.iter().filter(|x| **x).count(), 1, "{alive:?}");
    let mut survivor = tunnels.remove(alive.iter().position(|x| *x).unwrap());
    // New tunnels all go to the instance left (HAProxy retries and redispatches, then its
    // health check takes the stopped one out).
    for _ in 0..6 {
        let mut t = TunnelConn::open(lb.port, &nginx);
        assert!(t.get(&nginx).unwrap() == want);
    }
    // The survivor still carries requests after all that.
    for _ in 0..3 {
        assert!(survivor.get(&nginx).unwrap() == want);
    }
}
