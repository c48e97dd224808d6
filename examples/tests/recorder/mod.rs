//! An HTTP/1.1 origin for CLI tests that keeps every request as it arrived on the wire and
//! answers from a few routes, so tests can compare burrow's requests with curl's byte for
//! byte. Keep-alive, `Content-Length` bodies only (what both clients send here).
//!
//! Routes: `/redirect/N` (302 to `/redirect/N-1`, `/redirect/0` answers `done`),
//! `/to?URL` (302 to URL), `/303?URL`, `/307?URL`, `/range/N` (N pattern bytes, `Range`
//! honoured with 206), `/status/CODE` (with `Retry-After: 0` for 429 and 503),
//! `/flaky/N` (503 for the first N requests to it, then 200), `/setcookie?NAME=VALUE`,
//! `/gzip`, `/emptygzip`, `/spelled` (its own reason phrase and name case), `/disposition/NAME`, `/bytes/N`; anything else answers the request it got
//! (method, target, headers, body).
#![allow(dead_code)] // each test uses part of it

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use burrow_examples::origin::pattern;

/// One request as received.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Which connection it came on (0, 1, …).
    pub conn: usize,
}

impl Recorded {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running recorder.
#[derive(Clone)]
pub struct Recorder {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// The gzip encoding of `hello gzip\n`.
pub const GZIP_HELLO: [u8; 31] = [
    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 87, 72, 175, 202, 44, 224, 2, 0, 57,
    124, 99, 86, 11, 0, 0, 0,
];

impl Recorder {
    /// Starts one on a loopback port.
    pub async fn start() -> std::io::Result<Recorder> {
        Recorder::start_with(None).await
    }

    /// Starts one that speaks TLS with `tls` (HTTP/1.1 inside), or cleartext.
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Recorder> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let r = Recorder {
            addr: l.local_addr()?,
            seen: Arc::default(),
            counts: Arc::default(),
        };
        let seen = r.seen.clone();
        let counts = r.counts.clone();
        tokio::spawn(async move {
            let mut conn = 0;
            while let Ok((s, _)) = l.accept().await {
                let (seen, counts, tls) = (seen.clone(), counts.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            // A failed handshake (a client that does not trust us) is
                            // just a closed connection.
                            if let Ok((t, _)) =
                                burrow_transport::tls::accept(Box::new(s), cfg).await
                            {
                                serve(t, conn, seen, counts).await;
                            }
                        }
                        None => serve(s, conn, seen, counts).await,
                    }
                });
                conn += 1;
            }
        });
        Ok(r)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, and forgets them (and how often each `/flaky/` URL was asked
    /// for, so the next client sees the same failures).
    pub fn take(&self) -> Vec<Recorded> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    conn: usize,
    seen: Arc<Mutex<Vec<Recorded>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = burrow_test_support::wire::read_request(&mut s, &mut buf).await {
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let mut rec = Recorded {
            method: first.next().unwrap_or("").into(),
            target: first.next().unwrap_or("").into(),
            conn,
            ..Recorded::default()
        };
        for l in lines {
            if let Some((n, v)) = l.split_once(':') {
                rec.headers
                    .push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        rec.body = body;
        let (head, body) = answer(&rec, &counts, conn);
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rec.clone());
        let mut out = head.into_bytes();
        if rec.method != "HEAD" {
            out.extend_from_slice(&body);
        }
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn respond(status: &str, headers: &[(&str, String)], body: Vec<u8>) -> (String, Vec<u8>) {
    let mut h = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    (h, body)
}

fn answer(r: &Recorded, counts: &Mutex<HashMap<String, usize>>, conn: usize) -> (String, Vec<u8>) {
    let (path, query) = match r.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (r.target.as_str(), ""),
    };
    let redirect =
        |status: &str, to: String| respond(status, &[("Location", to)], b"moved\n".to_vec());
    if let Some(n) = path.strip_prefix("/redirect/") {
        let n: u32 = n.parse().unwrap_or(0);
        return match n {
            0 => respond("200 OK", &[], b"done\n".to_vec()),
            n => redirect("302 Found", format!("/redirect/{}", n - 1)),
        };
    }
    match path {
        "/to" => return redirect("302 Found", query.to_string()),
        "/301" => return redirect("301 Moved Permanently", query.to_string()),
        "/303" => return redirect("303 See Other", query.to_string()),
        "/307" => return redirect("307 Temporary Redirect", query.to_string()),
        "/gzip" => {
            return respond(
                "200 OK",
                &[("Content-Encoding", "gzip".into())],
                GZIP_HELLO.to_vec(),
            )
        }
        "/spelled" => {
            return respond(
                "200 Fine By Me",
                &[("X-Mixed-CASE", "1".into()), ("x-lower", "2".into())],
                b"ok\n".to_vec(),
            )
        }
        "/emptygzip" => return respond("200 OK", &[("Content-Encoding", "gzip".into())], vec![]),
        "/badgzip" => {
            return respond(
                "200 OK",
                &[("Content-Encoding", "gzip".into())],
                b"not gzip at all".to_vec(),
            )
        }
        "/setcookie" => {
            return respond(
                "200 OK",
                &[("Set-Cookie", format!("{query}; Path=/"))],
                b"set\n".to_vec(),
            )
        }
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/disposition/") {
        return respond(
            "200 OK",
            &[(
                "Content-Disposition",
                format!("attachment; filename=\"{name}\""),
            )],
            b"disposed\n".to_vec(),
        );
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n = n.parse().unwrap_or(0);
        return respond("200 OK", &[], pattern(0, n));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = match code {
            "404" => "404 Not Found",
            "429" => "429 Too Many Requests",
            "500" => "500 Internal Server Error",
            "503" => "503 Service Unavailable",
            _ => "400 Bad Request",
        };
        let extra = match code {
            "429" | "503" => vec![("Retry-After", "0".to_string())],
            _ => vec![],
        };
        return respond(status, &extra, format!("status {code}\n").into_bytes());
    }
    if let Some(n) = path.strip_prefix("/flaky/") {
        let n: usize = n.parse().unwrap_or(0);
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        let seen = c.entry(r.target.clone()).or_insert(0);
        *seen += 1;
        return if *seen <= n {
            respond("503 Service Unavailable", &[], b"busy\n".to_vec())
        } else {
            respond("200 OK", &[], format!("ok after {seen}\n").into_bytes())
        };
    }
    if let Some(n) = path.strip_prefix("/range/") {
        let n: u64 = n.parse().unwrap_or(0);
        let all = pattern(0, n as usize);
        let range = r
            .header("range")
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'));
        return match range {
            Some((a, b)) => {
                let a: u64 = a.parse().unwrap_or(0);
                let b: u64 = b
                    .parse()
                    .unwrap_or(n.saturating_sub(1))
                    .min(n.saturating_sub(1));
                if a >= n {
                    return respond(
                        "416 Range Not Satisfiable",
                        &[("Content-Range", format!("bytes */{n}"))],
                        Vec::new(),
                    );
                }
                respond(
                    "206 Partial Content",
                    &[("Content-Range", format!("bytes {a}-{b}/{n}"))],
                    all[a as usize..=b as usize].to_vec(),
                )
            }
            None => respond("200 OK", &[("Accept-Ranges", "bytes".into())], all),
        };
    }
    // Anything else: the request as it came.
    let mut text = format!("{} {}\n", r.method, r.target);
    for (n, v) in &r.headers {
        text.push_str(&format!("{n}: {v}\n"));
    }
    text.push('\n');
    let mut body = text.into_bytes();
    body.extend_from_slice(&r.body);
    respond("200 OK", &[("X-Conn", conn.to_string())], body)
}
