//! Answering one request on any HTTP version: CONNECT, CONNECT-UDP, or a forward request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_http_core::{Body, ConnectProtocol, Respond, ServerRequest};
use burrow_transport::{Error, ErrorKind, Host, Target};
use http::header::{HeaderName, HeaderValue, CONNECTION};
use http::{Method, Response, StatusCode, Version};

use super::relay::relay;
use super::rules::Denied;
use super::{udp, Dial, Proxy};

/// Header fields that concern one hop only (RFC 9110 §7.6.1) and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

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

/// The status and Proxy-Status error for a failure reaching the target (RFC 9209 §2.3).
pub(crate) fn dial_failure(e: &Error) -> (StatusCode, &'static str) {
    match e.kind() {
        ErrorKind::Resolve => (StatusCode::BAD_GATEWAY, "dns_error"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "connection_timeout"),
        ErrorKind::ProxyRefused => (StatusCode::BAD_GATEWAY, "proxy_internal_response"),
        _ => (StatusCode::BAD_GATEWAY, "connection_refused"),
    }
}

pub(crate) fn denied(d: Denied) -> Response<Body> {
    refusal(StatusCode::FORBIDDEN, d.proxy_status(), None)
}

/// The answer to a target that could not be reached: 403 when the rules refused it, else
/// the status and Proxy-Status error of the failure.
pub(crate) fn dial_refusal(d: &Dial, target: &Target) -> Response<Body> {
    match d {
        Dial::Denied(d) => denied(*d),
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

/// Handles one request taken from any server connection.
pub async fn handle(proxy: Arc<Proxy>, sr: ServerRequest) {
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
    let protocol = request.extensions().get::<ConnectProtocol>().cloned();
    let is_tunnel = request.method() == Method::CONNECT || protocol.is_some();
    if is_tunnel {
        let Some(_permit) = proxy.tunnel_slots.clone().try_acquire_owned().ok() else {
            return refuse(
                &proxy,
                respond,
                refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "proxy_internal_error",
                    Some("too many tunnels"),
                ),
            )
            .await;
        };
        stats.tunnels.fetch_add(1, Ordering::Relaxed);
        stats.active.fetch_add(1, Ordering::Relaxed);
        match protocol {
            Some(p) if p.0.eq_ignore_ascii_case("connect-udp") => {
                udp::handle(&proxy, request, respond).await
            }
            Some(p) => {
                let msg = format!("unsupported :protocol {}", p.0);
                let r = refusal(
                    StatusCode::NOT_IMPLEMENTED,
                    "proxy_internal_error",
                    Some(&msg),
                );
                refuse(&proxy, respond, r).await;
            }
            None => connect_tcp(&proxy, request, respond).await,
        }
        stats.active.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    forward(&proxy, request, respond).await;
}

async fn connect_tcp(proxy: &Proxy, request: http::Request<Body>, respond: Box<dyn Respond>) {
    let Some(target) = request
        .uri()
        .authority()
        .and_then(|a| Target::parse_with_default(a.as_str(), 443).ok())
    else {
        return refuse(
            proxy,
            respond,
            refusal(
                StatusCode::BAD_REQUEST,
                "http_request_error",
                Some("CONNECT needs host:port"),
            ),
        )
        .await;
    };
    if let Err(d) = proxy.config.rules.check_target(&target) {
        return refuse(proxy, respond, denied(d)).await;
    }
    let upstream = match proxy.dial_tcp(&target).await {
        Ok(s) => s,
        Err(d) => return refuse(proxy, respond, dial_refusal(&d, &target)).await,
    };
    let tunnel = match respond.accept_tunnel(Response::new(())).await {
        Ok(t) => t,
        Err(_) => return,
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

async fn forward(proxy: &Proxy, request: http::Request<Body>, respond: Box<dyn Respond>) {
    let (mut parts, body) = request.into_parts();
    let Some(authority) = parts.uri.authority().cloned() else {
        return refuse(
            proxy,
            respond,
            refusal(
                StatusCode::BAD_REQUEST,
                "http_request_error",
                Some("not a proxy request: absolute URI needed"),
            ),
        )
        .await;
    };
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    let default_port = if scheme == "https" { 443 } else { 80 };
    let target = match Target::parse_with_default(authority.as_str(), default_port) {
        Ok(t) => t,
        Err(_) => {
            return refuse(
                proxy,
                respond,
                refusal(StatusCode::BAD_REQUEST, "http_request_error", None),
            )
            .await;
        }
    };
    if let Err(d) = proxy.config.rules.check_target(&target) {
        return refuse(proxy, respond, denied(d)).await;
    }
    strip_hop_by_hop(&mut parts.headers);
    let via = match parts.version {
        Version::HTTP_2 => "2 burrow",
        Version::HTTP_3 => "3 burrow",
        Version::HTTP_10 => "1.0 burrow",
        _ => "1.1 burrow",
    };
    parts
        .headers
        .append(http::header::VIA, HeaderValue::from_static(via));
    parts.version = Version::HTTP_11;
    if let Host::Name(_) = &target.host {
        // Resolve here so the address rules apply to forwarded requests too.
        if let Ok(addrs) = burrow_transport::tcp::resolve(&target).await {
            if let Some(d) = addrs
                .iter()
                .find_map(|a| proxy.config.rules.check_address(a.ip()).err())
            {
                return refuse(proxy, respond, denied(d)).await;
            }
        }
    }
    let req = http::Request::from_parts(parts, body);
    match proxy.client.request(req).await {
        Ok(resp) => {
            proxy.stats.forwarded.fetch_add(1, Ordering::Relaxed);
            let (mut rp, rb) = resp.into_parts();
            strip_hop_by_hop(&mut rp.headers);
            rp.headers
                .append(http::header::VIA, HeaderValue::from_static(via));
            let _ = respond.send_response(Response::from_parts(rp, rb)).await;
        }
        Err(e) => refuse(proxy, respond, dial_refusal(&Dial::Failed(e), &target)).await,
    }
}

fn strip_hop_by_hop(h: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
}
