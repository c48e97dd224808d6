//! CONNECT-UDP (RFC 9298) on the proxy: HTTP Datagrams (HTTP/3) or DATAGRAM capsules
//! (HTTP/2, HTTP/1.1) on one side, a UDP socket to the target on the other.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_http_core::capsule::{self, CapsuleDecoder, CapsuleType};
use burrow_http_core::{Body, Respond, TunnelDatagrams};
use burrow_transport::{datagram, BoxFlow};
use bytes::{BufMut, BytesMut};
use http::{HeaderValue, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::{dial_refusal, refusal, refuse};
use super::Proxy;

/// Largest UDP payload relayed.
const MAX_UDP: usize = 65_535;

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
    let mut resp = Response::new(());
    if request.version() == Version::HTTP_11 || request.version() == Version::HTTP_10 {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(
            http::header::UPGRADE,
            HeaderValue::from_static("connect-udp"),
        );
        resp.headers_mut().insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
    }
    resp.headers_mut()
        .insert("capsule-protocol", HeaderValue::from_static("?1"));
    let Ok(tunnel) = respond.accept_tunnel(resp).await else {
        return;
    };
    let (stream, dgrams) = tunnel.into_parts();
    relay(proxy, stream, dgrams.map(Arc::from), flow).await;
}

async fn relay(
    proxy: &Proxy,
    stream: burrow_transport::BoxStream,
    dgrams: Option<Arc<dyn TunnelDatagrams>>,
    flow: BoxFlow,
) {
    let stats = &proxy.stats;
    let idle = proxy.config.limits.idle_timeout;
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Client → target: capsules from the stream (any version), datagrams (HTTP/3).
    let from_stream = async {
        let mut dec = CapsuleDecoder::new(proxy.config.limits.max_capsule);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(idle, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => n,
            };
            dec.push(&buf[..n]);
            loop {
                match dec.poll_capsule() {
                    Ok(Some(c)) if c.ty == CapsuleType::DATAGRAM => {
                        if let Ok((0, udp)) = capsule::split_context(c.value) {
                            stats.datagrams.fetch_add(1, Ordering::Relaxed);
                            stats
                                .bytes_up
                                .fetch_add(udp.len() as u64, Ordering::Relaxed);
                            let _ = datagram::send(&*flow, &udp).await;
                        }
                    }
                    // Unknown capsule types are skipped (RFC 9297 §3.2).
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    // A capsule longer than allowed: abort the stream (RFC 9297 §3.3).
                    Err(_) => return,
                }
            }
        }
    };
    let from_datagrams = async {
        let Some(d) = &dgrams else {
            return std::future::pending::<()>().await;
        };
        let mut buf = vec![0u8; MAX_UDP + 16];
        loop {
            let n = match std::future::poll_fn(|cx| d.poll_recv(cx, &mut buf)).await {
                Ok(n) => n,
                Err(_) => return,
            };
            if let Ok((0, udp)) = capsule::split_context(bytes::Bytes::copy_from_slice(&buf[..n])) {
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes_up
                    .fetch_add(udp.len() as u64, Ordering::Relaxed);
                let _ = datagram::send(&*flow, &udp).await;
            }
        }
    };
    // Target → client.
    let to_client = async {
        let mut buf = vec![0u8; MAX_UDP];
        let mut out = BytesMut::new();
        loop {
            let n = match tokio::time::timeout(idle, datagram::recv(&*flow, &mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            stats.datagrams.fetch_add(1, Ordering::Relaxed);
            stats.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
            match &dgrams {
                Some(d) => {
                    out.clear();
                    out.put_u8(0); // context id 0
                    out.put_slice(&buf[..n]);
                    // Too large for a QUIC DATAGRAM frame: dropped, never a capsule on HTTP/3.
                    if out.len() <= d.max_payload() {
                        let _ = std::future::poll_fn(|cx| d.poll_send(cx, &out)).await;
                    }
                }
                None => {
                    out.clear();
                    capsule::encode_udp_datagram(&buf[..n], &mut out);
                    if wr.write_all(&out).await.is_err() {
                        return;
                    }
                    let _ = wr.flush().await;
                }
            }
        }
    };
    tokio::select! {
        _ = from_stream => {}
        _ = from_datagrams => {}
        _ = to_client => {}
    }
}
