//! CONNECT-UDP (RFC 9298) on the proxy: the client's tunnel as a datagram flow (HTTP
//! Datagrams on HTTP/3, DATAGRAM capsules on HTTP/2 and HTTP/1.1, the same flows burrow's
//! client uses) relayed to a UDP flow to the target.

use std::sync::atomic::Ordering;

use burrow_http_core::{handshake, Body, Respond};
use http::{HeaderValue, StatusCode};

use super::http::{dial_refusal, refusal, refuse};
use super::Proxy;
use crate::flows;

pub(crate) async fn handle(proxy: &Proxy, request: http::Request<Body>, respond: Box<dyn Respond>) {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let Some(target) = proxy.config.udp_template.matches(path) else {
        return refuse(
            proxy,
            respond,
            refusal(
                StatusCode::BAD_REQUEST,
                "http_request_error",
                Some("path does not match the CONNECT-UDP template"),
            ),
        )
        .await;
    };
    let mut respond = respond;
    let dialed = super::http::unless_cancelled(proxy, &mut respond, proxy.dialer.udp(&target));
    let flow = match dialed.await {
        None => return,
        Some(Ok(f)) => f,
        Some(Err(d)) => return refuse(proxy, respond, dial_refusal(&d, &target)).await,
    };
    // RFC 9298 §3.3 (HTTP/1.1: 101 with Upgrade), §3.4/3.5 (HTTP/2 and HTTP/3: 2xx);
    // Capsule-Protocol: ?1 either way (RFC 9297 §3.4).
    let ask = handshake::TunnelAsk::Extended("connect-udp".into());
    let mut resp = handshake::accept_head(&ask, request.version());
    resp.headers_mut()
        .insert("capsule-protocol", HeaderValue::from_static("?1"));
    let Ok(tunnel) = respond.accept_tunnel(resp).await else {
        return;
    };
    // The client's side as a datagram flow, exactly as burrow's client sees its tunnel.
    let limits = &proxy.config.limits;
    let client = flows::tunnel_flow(tunnel, limits.max_capsule, "CONNECT-UDP client".into());
    let stats = &proxy.stats;
    flows::relay_datagrams(&*client, &*flow, limits.idle_timeout, |up, n| {
        stats.datagrams.fetch_add(1, Ordering::Relaxed);
        let bytes = if up {
            &stats.bytes_up
        } else {
            &stats.bytes_down
        };
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    })
    .await;
}
