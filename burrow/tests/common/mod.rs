//! Loopback peers for the `burrow` crate's tests: a TLS origin, burrow-proxy listeners, a
//! CA file.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use burrow::{Body, StatusCode};
use burrow_http_core::ServerRequest;
use burrow_proxy::server::{self, Listen, ProxyConfig, Rules, SharedStats};
use burrow_test_support::Pki;
use http::Response;
use tokio::net::TcpListener;

pub fn pem_file(p: &Pki) -> (tempdir::Dir, PathBuf) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(p.ca.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let dir = tempdir::Dir::new();
    let path = dir.0.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    (dir, path)
}

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let d = std::env::temp_dir().join(format!("burrow-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What the origin answers: `/` its version, `/to/<path>` a 302 to it, `/303` a 303 to
/// `/method`, `/method` the method and the body, `/auth` the Authorization header,
/// `/slow` nothing for 10 s.
async fn answer(sr: ServerRequest, other: Option<u16>) {
    let (parts, body) = sr.request.into_parts();
    let path = parts.uri.path().to_string();
    let mut resp = Response::new(Body::empty());
    if path == "/" {
        *resp.body_mut() = Body::from(format!("hello over {:?}", parts.version));
    } else if let Some(to) = path.strip_prefix("/to/") {
        *resp.status_mut() = StatusCode::FOUND;
        // `/to/auth` redirects to `/auth`; `/to/https://…` elsewhere.
        let to = to.replace("OTHER", &other.unwrap_or(0).to_string());
        let to = if to.contains("://") {
            to
        } else {
            format!("/{to}")
        };
        resp.headers_mut().insert("location", to.parse().unwrap());
    } else if path == "/303" {
        *resp.status_mut() = StatusCode::SEE_OTHER;
        resp.headers_mut()
            .insert("location", "/method".parse().unwrap());
    } else if path == "/307" {
        *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        resp.headers_mut()
            .insert("location", "/method".parse().unwrap());
    } else if path == "/loop" {
        *resp.status_mut() = StatusCode::FOUND;
        resp.headers_mut()
            .insert("location", "/loop".parse().unwrap());
    } else if path == "/method" {
        let b = body
            .collect(1 << 20)
            .await
            .map(|c| c.data)
            .unwrap_or_default();
        *resp.body_mut() = Body::from(format!("{} {}", parts.method, String::from_utf8_lossy(&b)));
    } else if path == "/auth" {
        let a = parts
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        *resp.body_mut() = Body::from(a.unwrap_or_else(|| "none".into()));
    } else if path == "/json" {
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        *resp.body_mut() = Body::from(r#"{"name": "burrow", "hops": 2}"#);
    } else if let Some(coding) = path.strip_prefix("/enc/") {
        resp.headers_mut()
            .insert("content-encoding", coding.parse().unwrap());
        *resp.body_mut() = Body::from(encode(coding, ENCODED.as_bytes()).await);
    } else if path == "/set-cookie" {
        resp.headers_mut()
            .append("set-cookie", "s=1; Path=/".parse().unwrap());
        resp.headers_mut()
            .append("set-cookie", "narrow=2; Path=/only-here".parse().unwrap());
        if parts.uri.query() == Some("then=cookie") {
            *resp.status_mut() = StatusCode::FOUND;
            resp.headers_mut()
                .insert("location", "/cookie".parse().unwrap());
        }
    } else if path == "/cookie" {
        let c = parts
            .headers
            .get("cookie")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        *resp.body_mut() = Body::from(c.unwrap_or_else(|| "none".into()));
    } else if path == "/ctype" {
        let b = body
            .collect(1 << 20)
            .await
            .map(|c| c.data)
            .unwrap_or_default();
        let t = parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let mut s = t.unwrap_or_else(|| "none".into()).into_bytes();
        s.push(b'\n');
        s.extend_from_slice(&b);
        *resp.body_mut() = Body::from(s);
    } else if path == "/corrupt" {
        resp.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        *resp.body_mut() = Body::from("definitely not gzip");
    } else if path == "/ua" {
        let a = parts
            .headers
            .get("user-agent")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        *resp.body_mut() = Body::from(a.unwrap_or_else(|| "none".into()));
    } else if path == "/accept" {
        let a = parts
            .headers
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        *resp.body_mut() = Body::from(a.unwrap_or_else(|| "none".into()));
    } else if path == "/drip" {
        let (mut tx, body) = Body::channel();
        tokio::spawn(async move {
            let _ = tx.send_data("first".into()).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.finish();
        });
        *resp.body_mut() = body;
    } else if path == "/big" {
        // 1 MiB in 64 KiB pieces, with its length.
        let (mut tx, body) = Body::channel_with(Some(BIG as u64), 4);
        tokio::spawn(async move {
            for i in 0..BIG / 65536 {
                let piece = vec![(i % 251) as u8; 65536];
                if tx.send_data(piece.into()).await.is_err() {
                    return;
                }
            }
            tx.finish();
        });
        *resp.body_mut() = body;
    } else if path == "/404" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let _ = sr.respond.send_response(resp).await;
}

/// The length of `/big`.
pub const BIG: usize = 1 << 20;

/// What `/enc/<coding>` sends, encoded.
pub const ENCODED: &str = "burrow decodes this; burrow decodes this; burrow decodes this.";

async fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread as enc;
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = match coding {
        "gzip" => enc::GzipEncoder::new(data).read_to_end(&mut out).await,
        "deflate" => enc::ZlibEncoder::new(data).read_to_end(&mut out).await,
        "br" => enc::BrotliEncoder::new(data).read_to_end(&mut out).await,
        "zstd" => enc::ZstdEncoder::new(data).read_to_end(&mut out).await,
        _ => {
            out.extend_from_slice(b"not encoded at all");
            Ok(0)
        }
    };
    out
}

/// A TLS origin (ALPN h2, http/1.1) on loopback.
pub async fn origin(p: &Pki, other: Option<u16>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = p.server(&[b"h2", b"http/1.1"]);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok((t, alpn)) = burrow_transport::tls::accept(Box::new(s), cfg).await else {
                    return;
                };
                let mut conn: Box<dyn burrow_http_core::ServerConnection> =
                    if alpn.as_deref() == Some(b"h2") {
                        Box::new(
                            burrow_http2::serve(Box::new(t), &Default::default())
                                .await
                                .unwrap(),
                        )
                    } else {
                        Box::new(
                            burrow_http1::serve(Box::new(t), &Default::default())
                                .await
                                .unwrap(),
                        )
                    };
                while let Some(Ok(req)) = conn.accept().await {
                    tokio::spawn(answer(req, other));
                }
            });
        }
    });
    addr
}

/// A burrow-proxy with one listener, allowed to reach loopback.
pub async fn proxy(p: &Pki, listen: Listen) -> (server::Running, SocketAddr, SharedStats) {
    let cfg = ProxyConfig {
        listeners: vec![listen],
        identity: Some((p.chain.clone(), Arc::new(p.key()))),
        rules: Rules::loopback(),
        ..ProxyConfig::default()
    };
    let running = server::start(server::Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let addr = running.addrs[0].addr();
    let stats = running.stats();
    (running, addr, stats)
}

/// Serves HTTP/1.1 (cleartext) on connections from `accept`.
pub fn serve_h1<S, F>(mut accept: impl FnMut() -> F + Send + 'static)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    F: std::future::Future<Output = Option<S>> + Send,
{
    tokio::spawn(async move {
        while let Some(s) = accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = burrow_http1::serve(Box::new(s), &Default::default()).await
                else {
                    return;
                };
                while let Some(Ok(req)) =
                    burrow_http_core::ServerConnection::accept(&mut conn).await
                {
                    tokio::spawn(answer(req, None));
                }
            });
        }
    });
}

/// An HTTP/3 origin on loopback UDP.
pub async fn origin_h3(p: &Pki) -> SocketAddr {
    let ep = burrow_http3::bind(
        "127.0.0.1:0".parse().unwrap(),
        p.server(&[b"h3"]),
        &burrow_http3::Http3Config::default(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok(mut srv) = burrow_http3::serve(conn, &Default::default()).await else {
                    return;
                };
                while let Some(Ok(req)) = burrow_http_core::ServerConnection::accept(&mut srv).await
                {
                    tokio::spawn(answer(req, None));
                }
            });
        }
    });
    addr
}
