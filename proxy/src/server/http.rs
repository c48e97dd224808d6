//! Answering one request on any HTTP version: CONNECT, CONNECT-UDP, or a forward request.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_http_core::handshake::{self, TunnelAsk};
use burrow_http_core::{Body, ConnectProtocol, Respond, ServerRequest};
use burrow_transport::{Error, ErrorKind, Target};
use http::header::HeaderValue;
use http::{Response, StatusCode};

use super::dial::Dial;
use super::forward::{prepare, strip_hop_by_hop, via_loops, via_protocol, Refusal};
use super::relay::relay;
use super::rules::Denied;
use super::{udp, Peer, Proxy};

fn proxy_status(error: &str, detail: Option<&str>) -> HeaderValue {
    let v = match detail {
        Some(d) => format!(
            "burrow; error={error}; details=\"{}\"",
            d.replace(['"', '\\'], "")
        ),
        None => format!("burrow; error={error}"),
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("burrow"))
}

/// A refusal: status, Proxy-Status (RFC 9209) and a short text body.
pub(crate) fn refusal(status: StatusCode, error: &str, detail: Option<&str>) -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("proxy-status", proxy_status(error, detail));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

impl Refusal {
    /// The response that says it.
    pub(crate) fn response(&self) -> Response<Body> {
        refusal(self.status, self.error, self.detail.as_deref())
    }
}

/// The status and Proxy-Status error for a failure reaching the target (RFC 9209 §2.3).
pub(crate) fn dial_failure(e: &Error) -> (StatusCode, &'static str) {
    match e.kind() {
        ErrorKind::Resolve => (StatusCode::BAD_GATEWAY, "dns_error"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "connection_timeout"),
        ErrorKind::ProxyRefused => (StatusCode::BAD_GATEWAY, "proxy_internal_response"),
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "destination_ip_prohibited"),
        _ => (StatusCode::BAD_GATEWAY, "connection_refused"),
    }
}

pub(crate) fn denied(d: Denied) -> Response<Body> {
    refusal(
        StatusCode::FORBIDDEN,
        d.proxy_status(),
        Some(&d.to_string()),
    )
}

/// The answer to a target that could not be reached: 403 when the rules refused it, else
/// the status and Proxy-Status error of the failure.
pub(crate) fn dial_refusal(d: &Dial, target: &Target) -> Response<Body> {
    match d {
        Dial::Denied(d) => denied(*d),
        Dial::DnsTimeout => refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "dns_timeout",
            Some(&target.host.to_string()),
        ),
        Dial::Failed(e) => {
            let (status, error) = dial_failure(e);
            refusal(status, error, Some(&target.to_string()))
        }
    }
}

/// Counts a refusal and sends it.
pub(crate) async fn refuse(proxy: &Proxy, respond: Box<dyn Respond>, response: Response<Body>) {
    proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
    let _ = respond.send_response(response).await;
}

/// Runs `work` unless the client gives up on the request first (an HTTP/2 RST_STREAM, an
/// HTTP/3 STOP_SENDING, the connection closing): then the work is dropped, its dial
/// cancelled, and `None` returned (the rapid-reset defence at the application level).
pub(crate) async fn unless_cancelled<T>(
    proxy: &Proxy,
    respond: &mut Box<dyn Respond>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        r = work => Some(r),
        _ = std::future::poll_fn(|cx| respond.poll_cancelled(cx)) => {
            proxy.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn too_many(what: &str) -> Refusal {
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        "proxy_internal_error",
        format!("too many {what} from this client"),
    )
}

fn busy(what: &str) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "proxy_internal_error",
        format!("too many {what}"),
    )
}

/// What a request holds while it is served (its connection's in-flight token, its slot,
/// its client's share): released when the work ends, which for a forwarded request is when
/// its response body has been sent or dropped.
pub(crate) type Guard = Box<dyn Send + Sync>;

/// A response body that holds the request's guards until it ends or is dropped.
struct Guarded {
    inner: Body,
    _guards: Vec<Guard>,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Handles one request taken from any server connection; `guard` is held until its work
/// (and a forwarded response's body) is done.
pub(crate) async fn handle(proxy: Arc<Proxy>, sr: ServerRequest, peer: Peer, guard: Guard) {
    let ServerRequest { request, respond } = sr;
    let stats = &proxy.stats;
    if let Some(creds) = &proxy.config.auth {
        let header = request.headers().get(http::header::PROXY_AUTHORIZATION);
        if !creds.check_basic(header.map(|h| h.as_bytes())) {
            let mut r = refusal(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "http_request_denied",
                Some("authentication required"),
            );
            r.headers_mut().insert(
                http::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"burrow\""),
            );
            return refuse(&proxy, respond, r).await;
        }
    }
    if via_loops(request.headers(), &proxy.pseudonym) {
        let r = Refusal::new(
            StatusCode::LOOP_DETECTED,
            "proxy_loop_detected",
            "forwarding loop (Via names this proxy)",
        );
        return refuse(&proxy, respond, r.response()).await;
    }
    let protocol = request.extensions().get::<ConnectProtocol>();
    let ask = handshake::ask(request.method(), protocol.map(|p| p.0.as_str()));
    let is_tunnel = ask.is_some();
    // Every tunnel and forwarded request takes a slot of the proxy and one of its client.
    let Some(share) = proxy.clients.work(peer.addr.ip()) else {
        let what = if is_tunnel { "tunnels" } else { "requests" };
        return refuse(&proxy, respond, too_many(what).response()).await;
    };
    if !is_tunnel {
        let Ok(slot) = proxy.request_slots.clone().try_acquire_owned() else {
            return refuse(&proxy, respond, busy("requests").response()).await;
        };
        let guards: Vec<Guard> = vec![guard, Box::new(share), Box::new(slot)];
        return forward(&proxy, request, respond, guards).await;
    }
    let Ok(_permit) = proxy.tunnel_slots.clone().try_acquire_owned() else {
        return refuse(&proxy, respond, busy("tunnels").response()).await;
    };
    // Held for the tunnel's life (this function's).
    let _held = (share, guard);
    stats.tunnels.fetch_add(1, Ordering::Relaxed);
    stats.active.fetch_add(1, Ordering::Relaxed);
    match ask {
        Some(TunnelAsk::Extended(p)) if p == "connect-udp" => {
            udp::handle(&proxy, request, respond).await
        }
        Some(TunnelAsk::Extended(p)) => {
            let msg = format!("unsupported :protocol {p}");
            let r = refusal(
                StatusCode::NOT_IMPLEMENTED,
                "proxy_internal_error",
                Some(&msg),
            );
            refuse(&proxy, respond, r).await;
        }
        _ => connect_tcp(&proxy, request, respond).await,
    }
    stats.active.fetch_sub(1, Ordering::Relaxed);
}

/// A classic CONNECT: dial (cancelled if the client gives up), answer 2xx, relay.
async fn connect_tcp(proxy: &Proxy, request: http::Request<Body>, mut respond: Box<dyn Respond>) {
    let Some(target) = request
        .uri()
        .authority()
        .filter(|a| !a.as_str().contains('@'))
        .and_then(|a| Target::parse_with_default(a.as_str(), 443).ok())
    else {
        let r = refusal(
            StatusCode::BAD_REQUEST,
            "http_request_error",
            Some("CONNECT needs host:port"),
        );
        return refuse(proxy, respond, r).await;
    };
    let Some(dialed) = unless_cancelled(proxy, &mut respond, proxy.dialer.tcp(&target)).await
    else {
        return;
    };
    let upstream = match dialed {
        Ok(s) => s,
        Err(d) => return refuse(proxy, respond, dial_refusal(&d, &target)).await,
    };
    let Ok(tunnel) = respond.accept_tunnel(Response::new(())).await else {
        return;
    };
    let limits = &proxy.config.limits;
    relay(
        tunnel,
        upstream,
        limits.tunnel_buffer,
        limits.idle_timeout,
        &proxy.stats,
    )
    .await;
}

async fn forward(
    proxy: &Proxy,
    request: http::Request<Body>,
    mut respond: Box<dyn Respond>,
    guards: Vec<Guard>,
) {
    let (parts, body) = request.into_parts();
    let version = parts.version;
    let prepared = match prepare(parts, &proxy.pseudonym) {
        Ok(p) => p,
        Err(r) => return refuse(proxy, respond, r.response()).await,
    };
    let target = prepared.target.clone();
    // Host and port rules before anything is dialed; addresses are judged by the
    // forwarding client's connector on the very addresses it dials.
    if let Err(d) = proxy.dialer.check_target(&target) {
        return refuse(proxy, respond, denied(d)).await;
    }
    let req = http::Request::from_parts(prepared.parts, body);
    // The dial, the TLS handshake and the wait for the origin's head, all within one
    // deadline, and dropped if the client gives up.
    let deadline = proxy.config.limits.response_timeout;
    let exchange = tokio::time::timeout(deadline, proxy.client.request(req));
    let Some(r) = unless_cancelled(proxy, &mut respond, exchange).await else {
        return;
    };
    let Ok(r) = r else {
        let r = Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            "http_response_timeout",
            format!("no response from {target} within {deadline:?}"),
        );
        return refuse(proxy, respond, r.response()).await;
    };
    match r {
        Ok(resp) => {
            proxy.stats.forwarded.fetch_add(1, Ordering::Relaxed);
            let (mut rp, rb) = resp.into_parts();
            strip_hop_by_hop(&mut rp.headers);
            let via = format!("{} {}", via_protocol(version), proxy.pseudonym);
            if let Ok(v) = HeaderValue::from_str(&via) {
                rp.headers.append(http::header::VIA, v);
            }
            let body = Body::wrap(Guarded {
                inner: rb,
                _guards: guards,
            });
            let _ = respond.send_response(Response::from_parts(rp, body)).await;
        }
        Err(e) => refuse(proxy, respond, dial_refusal(&Dial::Failed(e), &target)).await,
    }
}
