//! The `burrow` crate as a user meets it: the README's program through a SOCKS5 > HTTP/2
//! proxy chain to a TLS origin, routes per request, redirects, errors. Loopback only.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use burrow::{Body, ErrorKind, Method, Proxy, RedirectPolicy, StatusCode, Version};
use burrow_proxy::server::Listen;
use burrow_test_support::Pki;
use tokio::net::TcpListener;

mod common;
use common::{origin, pem_file, proxy};

#[cfg(feature = "hyper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_and_hyper_util_send_through_a_socks5_h2_chain() {
    use tower_service::Service;
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let (_s, socks, socks_stats) = proxy(&p, Listen::Socks("127.0.0.1:0".parse().unwrap())).await;
    let (_h, h2, h2_stats) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;
    let mut client = burrow::Client::builder()
        .proxy(Proxy::parse(&format!("socks5h://127.0.0.1:{}", socks.port())).unwrap())
        .proxy(Proxy::parse(&format!("h2://localhost:{}", h2.port())).unwrap())
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();

    // hyper-util's client, burrow's route and TLS underneath; it speaks HTTP/2 to the
    // origin because the connection says ALPN chose h2.
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(client.connector());
    let resp = hyper
        .get(format!("https://localhost:{}/", o.port()).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"hello over HTTP/2.0");
    assert_eq!(socks_stats.tunnels.load(Ordering::Relaxed), 1);
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 1);

    // burrow's Client as a tower service.
    std::future::poll_fn(|cx| Service::<http::Request<Body>>::poll_ready(&mut client, cx))
        .await
        .unwrap();
    let req = http::Request::post(format!("https://localhost:{}/method", o.port()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"payload",
        )))
        .unwrap();
    let resp = client.call(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        &resp.into_body().collect(1024).await.unwrap().data[..],
        b"POST payload"
    );
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_program_through_socks5_and_h2() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let (_s, socks, socks_stats) = proxy(&p, Listen::Socks("127.0.0.1:0".parse().unwrap())).await;
    let (_h, h2, h2_stats) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;

    // The issue's program, addresses replaced.
    let client = burrow::Client::builder()
        .proxy(burrow::Proxy::parse(&format!("socks5h://127.0.0.1:{}", socks.port())).unwrap())
        .proxy(
            burrow::Proxy::parse(&format!("h2://localhost:{}", h2.port()))
                .unwrap()
                .ca_file(&ca)
                .unwrap(),
        )
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://localhost:{}/", o.port()))
        .send()
        .await
        .unwrap();
    let line = format!(
        "{} {:?} via {}",
        resp.status(),
        resp.version(),
        resp.route()
    );
    let body = resp.text().await.unwrap();

    assert_eq!(
        line,
        format!(
            "200 OK HTTP/2.0 via socks5h://127.0.0.1:{} > h2://localhost:{}",
            socks.port(),
            h2.port()
        )
    );
    assert_eq!(body, "hello over HTTP/2.0");
    // Both proxies carried it: the SOCKS proxy the tunnel to the HTTP/2 proxy, that one
    // the tunnel to the origin.
    assert_eq!(socks_stats.tunnels.load(Ordering::Relaxed), 1);
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_per_request_share_proxy_connections() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let (_h, h2, h2_stats) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;
    let (_s, socks, socks_stats) = proxy(&p, Listen::Socks("127.0.0.1:0".parse().unwrap())).await;
    let via_h2 = Proxy::parse(&format!("h2://localhost:{}", h2.port())).unwrap();
    let via = via_h2.clone();
    // `localhost` through the HTTP/2 proxy, `127.0.0.1` direct.
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .proxy_policy(move |u| {
            if u.host() == Some("localhost") {
                vec![via.clone()]
            } else {
                Vec::new()
            }
        })
        .build()
        .unwrap();
    let socks_hop = Proxy::parse(&format!("socks5://127.0.0.1:{}", socks.port())).unwrap();
    let (a, b, c, d) = tokio::join!(
        client
            .get(format!("https://localhost:{}/", o.port()))
            .send(),
        client
            .get(format!("https://127.0.0.1:{}/", o.port()))
            .send(),
        // Same first hop, another version to the origin: another pool, the same proxy
        // connection.
        client
            .get(format!("https://localhost:{}/", o.port()))
            .version(Version::HTTP_11)
            .send(),
        client
            .get(format!("https://localhost:{}/", o.port()))
            .route(vec![socks_hop.clone()])
            .send(),
    );
    let (a, b, c, d) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap());
    assert_eq!(
        a.route().to_string(),
        format!("h2://localhost:{}", h2.port())
    );
    assert!(b.route().is_direct() && b.route().to_string() == "direct");
    assert_eq!(c.route(), a.route());
    assert_eq!(
        d.route().hops(),
        [format!("socks5://127.0.0.1:{}", socks.port())]
    );
    assert_eq!(
        (a.version(), c.version()),
        (Version::HTTP_2, Version::HTTP_11)
    );
    assert_eq!(c.text().await.unwrap(), "hello over HTTP/1.1");
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 2);
    assert_eq!(
        h2_stats.connections.load(Ordering::Relaxed),
        1,
        "one HTTP/2 connection to the proxy"
    );
    assert_eq!(socks_stats.tunnels.load(Ordering::Relaxed), 1);

    // The same through an HTTP/3 (MASQUE) proxy: two routes, one QUIC connection to it.
    let (_q, h3, h3_stats) = proxy(&p, Listen::H3("127.0.0.1:0".parse().unwrap())).await;
    let via_h3 = Proxy::parse(&format!("h3://localhost:{}", h3.port())).unwrap();
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .proxy(via_h3)
        .build()
        .unwrap();
    let (a, b) = tokio::join!(
        client
            .get(format!("https://localhost:{}/", o.port()))
            .send(),
        client
            .get(format!("https://localhost:{}/", o.port()))
            .version(Version::HTTP_11)
            .send(),
    );
    assert_eq!(
        (a.unwrap().version(), b.unwrap().version()),
        (Version::HTTP_2, Version::HTTP_11)
    );
    assert_eq!(h3_stats.tunnels.load(Ordering::Relaxed), 2);
    assert_eq!(
        h3_stats.connections.load(Ordering::Relaxed),
        1,
        "one HTTP/3 connection to the proxy"
    );

    // NO_PROXY covers the client's own proxies.
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .proxy(via_h2)
        .no_proxy("example.invalid, localhost")
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/", o.port()))
        .send()
        .await
        .unwrap();
    assert!(r.route().is_direct());
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_as_curl_and_reqwest_follow_them() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let other = origin(&p, None).await;
    let o = origin(&p, Some(other.port())).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", o.port());

    let r = client
        .get(format!("{base}/to/method"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().to_string(), format!("{base}/method"));
    // The redirect followed is kept, head only: what curl -L -i shows.
    assert_eq!(r.redirects(), 1);
    let first = &r.history()[0];
    assert_eq!(first.url.to_string(), format!("{base}/to/method"));
    assert!(first.status.is_redirection(), "{first:?}");
    assert_eq!(first.headers["location"], "/method");
    assert_eq!(r.text().await.unwrap(), "GET ");
    // 303 after a POST: a GET without the body.
    let r = client
        .post(format!("{base}/303"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET ");
    // 307 keeps the method and a body that can be sent again.
    let r = client
        .put(format!("{base}/307"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT data");
    // A streaming body cannot be sent again: the 307 is the answer.
    let (mut tx, body) = Body::channel();
    tokio::spawn(async move {
        let _ = tx.send_data("streamed".into()).await;
        tx.finish();
    });
    let r = client
        .request(Method::PUT, format!("{base}/307"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);

    // Credentials stay with their origin.
    let same = client
        .get(format!("{base}/to/auth"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(same.text().await.unwrap(), "Bearer t0ken");
    let cross = client
        .get(format!("{base}/to/https://localhost:OTHER/auth"))
        .basic_auth("u", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.url().port_u16(), Some(other.port()));
    assert_eq!(cross.text().await.unwrap(), "none");

    // A loop ends at the limit; with redirects off the 302 is the answer.
    let e = client.get(format!("{base}/loop")).send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooManyRedirects, "{e}");
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .redirect(RedirectPolicy::none())
        .build()
        .unwrap();
    let r = client.get(format!("{base}/loop")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);

    // A long chain is followed whole, but only the last MAX_REDIRECT_HISTORY heads are kept.
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .redirect(RedirectPolicy::limited(100))
        .build()
        .unwrap();
    let hops = burrow::MAX_REDIRECT_HISTORY + 6;
    let url = format!("{base}/{}method", "to/".repeat(hops));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.redirects(), hops);
    assert_eq!(r.history().len(), burrow::MAX_REDIRECT_HISTORY);
    assert_eq!(
        r.history().last().unwrap().url.to_string(),
        format!("{base}/to/method")
    );
    assert_eq!(r.text().await.unwrap(), "GET ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_hop_and_say_what_happened() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    // Nothing listens on this port.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = burrow::Client::builder()
        .proxy(Proxy::parse(&format!("socks5h://u:secret@127.0.0.1:{}", dead.port())).unwrap())
        .build()
        .unwrap();
    let e = client
        .get(format!("https://localhost:{}/", o.port()))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e}");
    assert_eq!(
        e.hop().map(|h| h.to_string()),
        Some(format!("hop 1 (socks5h proxy 127.0.0.1:{})", dead.port()))
    );
    assert!(!format!("{e} {e:?}").contains("secret"));

    // Untrusted origin certificate: the client's trust is the system's only.
    let e = burrow::Client::new()
        .get(format!("https://localhost:{}/", o.port()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
    assert!(e.is_connect());

    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = client
        .get(format!("https://localhost:{}/slow", o.port()))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // A per-request timeout overrides the client's.
    let r = client
        .get(format!("https://localhost:{}/", o.port()))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);

    for bad in ["not a url", "ftp://x/", "/relative"] {
        let e = client.get(bad).send().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
    }
    let e = client
        .get(format!("https://localhost:{}/", o.port()))
        .header("bad name", "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(burrow::Client::builder()
        .user_agent("bad\nagent")
        .build()
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_what_the_builder_says() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .http1_only()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", o.port());
    let r = client
        .post(format!("{base}/method"))
        .query(&[("q", "a b"), ("n", "1")])
        .form(&[("k", "v&w")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.url().query(), Some("q=a+b&n=1"));
    assert_eq!(r.text().await.unwrap(), "POST k=v%26w");
    let mut r = client.get(format!("{base}/")).send().await.unwrap();
    let mut got = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, b"hello over HTTP/1.1");
    let r = client.get(format!("{base}/404")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e = r.error_for_status().unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
    let e = client
        .get(format!("{base}/to/https://localhost:1/x"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e}");
}

#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_in_and_out() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Info {
        name: String,
        hops: u32,
    }
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", o.port());
    let r = client
        .post(format!("{base}/method"))
        .json(&serde_json::json!({"a": [1, 2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"POST {"a":[1,2]}"#);
    let info: Info = client
        .get(format!("{base}/json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info,
        Info {
            name: "burrow".into(),
            hops: 2
        }
    );
    let e = client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json::<Info>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

#[cfg(all(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_decoded_and_reads_have_deadlines() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", o.port());
    let accept = client.get(format!("{base}/accept")).send().await.unwrap();
    assert_eq!(accept.text().await.unwrap(), "gzip, deflate, br, zstd");
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let r = client
            .get(format!("{base}/enc/{coding}"))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("content-encoding").is_none(), "{coding}");
        assert!(r.headers().get("content-length").is_none(), "{coding}");
        assert_eq!(r.text().await.unwrap(), common::ENCODED, "{coding}");
    }
    // Asked for by the caller: handed over as sent.
    let r = client
        .get(format!("{base}/enc/gzip"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let raw = r.bytes().await.unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "a gzip member");
    // Codings this client does not know pass through as they are.
    let r = client
        .get(format!("{base}/enc/bogus-gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "bogus-gzip");
    assert_eq!(r.text().await.unwrap(), "not encoded at all");
    // A body that says gzip but is not: an error, not garbage.
    let r = client.get(format!("{base}/corrupt")).send().await.unwrap();
    let e = r.text().await.unwrap_err();
    assert!(e.to_string().contains("gzip body does not decode"), "{e}");
    // The per-read timeout: the first piece arrives, the next does not.
    let mut r = client.get(format!("{base}/drip")).send().await.unwrap();
    assert_eq!(r.chunk().await.unwrap().unwrap(), "first");
    let e = r.chunk().await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
}

#[cfg(feature = "cookies")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_go_back_to_the_site_that_set_them() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .cookie_store(true)
        .build()
        .unwrap();
    let site = format!("https://localhost:{}", o.port());
    let other = format!("https://127.0.0.1:{}", o.port());
    let get = |u: String| {
        let c = client.clone();
        async move { c.get(u).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(get(format!("{site}/cookie")).await, "none");
    get(format!("{site}/set-cookie")).await;
    // Path=/only-here keeps `narrow` to that path.
    assert_eq!(get(format!("{site}/cookie")).await, "s=1");
    assert_eq!(get(format!("{other}/cookie")).await, "none", "another host");
    // Set on a redirect, sent on the request it leads to.
    let fresh = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = fresh
        .get(format!("{site}/set-cookie?then=cookie"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "s=1");
    // A shared jar; the caller's own Cookie header wins.
    let jar = std::sync::Arc::new(burrow::cookie::Jar::default());
    jar.add_cookie_str("j=7; Path=/", &site.parse().unwrap());
    let shared = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let r = shared.get(format!("{site}/cookie")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "j=7");
    let r = shared
        .get(format!("{site}/cookie"))
        .header("cookie", "mine=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "mine=1");
    assert_eq!(format!("{jar:?}"), "Jar { .. }");
    // Without a store, nothing is kept.
    let plain = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    plain
        .get(format!("{site}/set-cookie"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain
            .get(format!("{site}/cookie"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "none"
    );
}

#[cfg(feature = "multipart")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_forms_and_streaming_uploads() {
    use burrow::multipart::{Form, Part};
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", o.port());
    let form = Form::new().text("name", "burrow").part(
        "file",
        Part::bytes(&b"BYTES"[..])
            .file_name("f.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let boundary = form.boundary().to_owned();
    let r = client
        .post(format!("{base}/ctype"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let (ctype, body) = text.split_once('\n').unwrap();
    assert_eq!(ctype, format!("multipart/form-data; boundary={boundary}"));
    assert!(
        body.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nburrow\r\n"
        )),
        "{body}"
    );
    assert!(
        body.contains("filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\nBYTES\r\n"),
        "{body}"
    );
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));

    // A streaming upload from any http_body::Body, with Expect: 100-continue over HTTP/1.1.
    for client in [
        burrow::Client::builder()
            .ca_file(&ca)
            .unwrap()
            .http1_only()
            .build()
            .unwrap(),
        client,
    ] {
        let (mut tx, body) = Body::channel();
        tokio::spawn(async move {
            for piece in ["stream", "ed-", "upload"] {
                if tx.send_data(piece.into()).await.is_err() {
                    return;
                }
            }
            tx.finish();
        });
        let r = client
            .put(format!("{base}/method"))
            .header("expect", "100-continue")
            .body(body)
            .send()
            .await
            .unwrap();
        let v = r.version();
        assert_eq!(r.text().await.unwrap(), "PUT streamed-upload", "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_peer_did_not_process_are_sent_again() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An HTTP/1.1 origin that answers the first request on a connection and closes the
    // connection, unanswered, when a second one arrives on it (a keep-alive race).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                let mut answered = 0;
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&have[..end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if have.len() < end + 4 + len {
                            break;
                        }
                        have.drain(..end + 4 + len);
                        if answered == 1 {
                            return; // closed without an answer
                        }
                        answered += 1;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                }
            });
        }
    });
    let client = burrow::Client::builder().http1_only().build().unwrap();
    let url = format!("http://127.0.0.1:{}/", addr.port());
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "ok"
    );
    // Reuses the pooled connection, which the origin closes: sent again on a new one.
    assert_eq!(
        client
            .post(&url)
            .body("resendable")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(conns.load(Ordering::Relaxed), 2);
    // A streaming body cannot be sent twice: the error says the request was not processed.
    let (mut tx, body) = Body::channel();
    tokio::spawn(async move {
        let _ = tx.send_data("once".into()).await;
        tx.finish();
    });
    let e = client
        .post(&url)
        .body_stream(body)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotProcessed, "{e}");
}

/// A hand-written HTTP/1.1 proxy that records each request head it gets and answers
/// with the request line; a CONNECT is accepted and the tunnel's requests read on the same
/// connection. Returns its address, the heads, and how many connections it accepted.
async fn recording_proxy() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncWriteExt;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (h, a) = (heads.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            a.fetch_add(1, Ordering::Relaxed);
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, _)) =
                    burrow_test_support::wire::read_request(&mut s, &mut buf).await
                {
                    let line = head.lines().next().unwrap_or_default().to_string();
                    h.lock().unwrap().push(head);
                    let answer = if line.starts_with("CONNECT ") {
                        "HTTP/1.1 200 Connection established\r\n\r\n".to_string()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{line}",
                            line.len()
                        )
                    };
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads, accepted)
}

/// `http://` URLs through an HTTP proxy are forwarded to it in absolute-form with its
/// credentials, as curl and reqwest send them (a proxy that allows CONNECT to 443 only
/// serves them), over one proxy connection for every origin; `tunnel(true)` (curl's
/// `--proxytunnel`) asks for a CONNECT instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_urls_are_forwarded_to_http_proxies_as_curl_does() {
    let (addr, heads, accepted) = recording_proxy().await;
    let hop = Proxy::parse(&format!("http://user:secret@127.0.0.1:{}", addr.port())).unwrap();
    let client = burrow::Client::builder()
        .proxy(hop.clone())
        .build()
        .unwrap();
    let a = client
        .get("http://origin.test:8080/a?b=1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.route().hops(),
        [format!("http://127.0.0.1:{}", addr.port())]
    );
    assert_eq!(
        a.text().await.unwrap(),
        "GET http://origin.test:8080/a?b=1 HTTP/1.1"
    );
    let b = client.get("http://other.test/c").send().await.unwrap();
    assert_eq!(b.text().await.unwrap(), "GET http://other.test/c HTTP/1.1");
    {
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let first = heads[0].to_ascii_lowercase();
        assert!(first.contains("\r\nhost: origin.test:8080"), "{first}");
        // "user:secret" in Basic, to the proxy it belongs to.
        assert!(
            first.contains("\r\nproxy-authorization: basic dxnlcjpzzwnyzxq="),
            "{first}"
        );
        assert!(heads[1]
            .to_ascii_lowercase()
            .contains("\r\nhost: other.test"));
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one proxy connection for both origins"
    );
    // shutdown closes the forwarding connection too: the next request connects anew.
    client.shutdown().await;
    let c = client
        .get("http://origin.test:8080/a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.text().await.unwrap(),
        "GET http://origin.test:8080/a HTTP/1.1"
    );
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        2,
        "a new one after shutdown"
    );

    // --proxytunnel: CONNECT, then the request in origin-form inside the tunnel.
    heads.lock().unwrap().clear();
    let client = burrow::Client::builder()
        .proxy(hop.tunnel(true))
        .build()
        .unwrap();
    let r = client
        .get("http://origin.test:8080/a?b=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /a?b=1 HTTP/1.1");
    let heads = heads.lock().unwrap();
    assert!(
        heads[0].starts_with("CONNECT origin.test:8080 HTTP/1.1"),
        "{heads:?}"
    );
}

/// The same through burrow-proxy, which forwards in absolute-form to the origin: nothing
/// is tunnelled, and an `https://` URL through it still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_urls_through_burrow_proxy_are_forwarded_not_tunnelled() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = l.local_addr().unwrap();
    let l = std::sync::Arc::new(l);
    common::serve_h1(move || {
        let l = l.clone();
        async move { l.accept().await.ok().map(|(s, _)| s) }
    });
    let tls = origin(&p, None).await;
    let (_h, addr, stats) = proxy(&p, Listen::Http("127.0.0.1:0".parse().unwrap())).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .proxy(Proxy::parse(&format!("http://127.0.0.1:{}", addr.port())).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{}/", plain.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello over HTTP/1.1");
    assert_eq!(stats.forwarded.load(Ordering::Relaxed), 1);
    assert_eq!(stats.tunnels.load(Ordering::Relaxed), 0);
    let r = client
        .get(format!("https://localhost:{}/", tls.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(stats.tunnels.load(Ordering::Relaxed), 1);

    // An HTTPS proxy: forwarded over TLS to it (HTTP/1.1 by ALPN), verified by its CA.
    let (_t, addr, stats) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;
    let hop = Proxy::parse(&format!("https://localhost:{}", addr.port()))
        .unwrap()
        .ca_file(&ca)
        .unwrap();
    let client = burrow::Client::builder().proxy(hop).build().unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{}/", plain.port()))
        .send()
        .await
        .unwrap();
    assert!(r.route().is_forwarded());
    assert_eq!(r.text().await.unwrap(), "hello over HTTP/1.1");
    assert_eq!(
        (
            stats.forwarded.load(Ordering::Relaxed),
            stats.tunnels.load(Ordering::Relaxed)
        ),
        (1, 0)
    );
}
