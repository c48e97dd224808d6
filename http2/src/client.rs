//! The client side: a cloneable handle over h2's `SendRequest`, a task driving the connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use burrow_http_core::{
    handshake, Body, ConnectionInfo, HttpConnection, StreamProtocol, Tunnel, TunnelRequest,
};
use burrow_transport::code::H2Reason;
use burrow_transport::{BoxStream, Error, ErrorKind};
use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request, Response, Version};
use http_body::Body as _;
use tokio::sync::watch;

use crate::body::{pump, RecvBody};
use crate::error::{from_h2_on, recorded, IoSlot};
use crate::stream::H2Stream;
use crate::Http2Config;

/// How long an extended CONNECT waits for the peer's SETTINGS before giving up.
pub const SETTINGS_TIMEOUT: Duration = Duration::from_secs(10);

struct Shared {
    closed: AtomicBool,
    /// The transport's first I/O error (a broken tunnel names its hop).
    io: IoSlot,
    /// Tunnels open on this connection (each holds a stream until it is dropped).
    tunnels: Arc<AtomicUsize>,
}

/// The client side of an HTTP/2 connection. Requests multiplex; when the peer's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` is reached, new requests wait for a free stream.
pub struct Http2Connection {
    send: h2::client::SendRequest<Bytes>,
    shared: Arc<Shared>,
    settings: watch::Receiver<bool>,
    info: ConnectionInfo,
}

/// HTTP/2 as a [`StreamProtocol`] for the [`Client`](burrow_http_core::Client).
#[derive(Clone, Debug, Default)]
pub struct Http2 {
    /// Settings for connections this protocol opens.
    pub config: Http2Config,
}

#[async_trait]
impl StreamProtocol for Http2 {
    fn alpn(&self) -> &'static [u8] {
        b"h2"
    }

    fn version(&self) -> Version {
        Version::HTTP_2
    }

    async fn handshake(
        &self,
        stream: BoxStream,
        info: ConnectionInfo,
    ) -> Result<Arc<dyn HttpConnection>, Error> {
        Ok(Arc::new(connect(stream, info, &self.config).await?))
    }
}

/// Starts the client side of HTTP/2 over `io` (TLS with ALPN `h2` already done, or h2c
/// with prior knowledge): sends the preface, spawns the connection's driver, returns its
/// handle.
pub async fn connect(
    io: BoxStream,
    info: ConnectionInfo,
    config: &Http2Config,
) -> Result<Http2Connection, Error> {
    let slot = IoSlot::default();
    let io = recorded(io, slot.clone());
    let (send, mut conn) = config
        .client()
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| from_h2_on(e, "handshake", Some(&slot)))?;
    let shared = Arc::new(Shared {
        closed: AtomicBool::new(false),
        io: slot,
        tunnels: Arc::default(),
    });
    let (settings_tx, settings) = watch::channel(false);
    // The server's SETTINGS must be its first frame (RFC 9113 §3.4), so once a PING we send
    // after the preface is answered, the peer's settings (extended CONNECT, stream limits)
    // are known. h2 itself does not wait for them.
    if let Some(mut pp) = conn.ping_pong() {
        tokio::spawn(async move {
            if pp.send_ping(h2::Ping::opaque()).is_ok()
                && std::future::poll_fn(|cx| pp.poll_pong(cx)).await.is_ok()
            {
                let _ = settings_tx.send(true);
            }
        });
    }
    let sh = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("HTTP/2 connection ended: {e}");
        }
        sh.closed.store(true, Ordering::Release);
    });
    Ok(Http2Connection {
        send,
        shared,
        settings,
        info,
    })
}

impl Http2Connection {
    /// Waits until the peer's SETTINGS have been received.
    pub async fn settings_received(&self) -> Result<(), Error> {
        let mut rx = self.settings.clone();
        let r = tokio::time::timeout(SETTINGS_TIMEOUT, async {
            rx.wait_for(|v| *v).await.map(|_| ())
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::closed(
                "HTTP/2: connection closed before the peer's SETTINGS",
            )),
            Err(_) => Err(Error::peer_timeout("HTTP/2: no SETTINGS from the peer")),
        }
    }

    /// Whether the peer allows extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441);
    /// meaningful after [`settings_received`](Self::settings_received).
    pub fn extended_connect_enabled(&self) -> bool {
        self.send.is_extended_connect_protocol_enabled()
    }

    async fn ready(&self) -> Result<h2::client::SendRequest<Bytes>, Error> {
        self.send
            .clone()
            .ready()
            .await
            .map_err(|e| self.error(e, "opening a stream"))
    }

    /// An h2 error as burrow's, the transport's own error for I/O failures.
    fn error(&self, e: h2::Error, what: &'static str) -> Error {
        from_h2_on(e, what, Some(&self.shared.io))
    }

    /// Opens a stream. With a body, it is sent (END_STREAM when empty); without one (a
    /// tunnel) the stream stays open and its send half is returned.
    async fn open(
        &self,
        req: Request<()>,
        body: Option<Body>,
    ) -> Result<(Response<h2::RecvStream>, Option<h2::SendStream<Bytes>>), Error> {
        let mut send = self.ready().await?;
        let end = body.as_ref().is_some_and(|b| b.is_end_stream());
        let (fut, stream) = send
            .send_request(req, end)
            .map_err(|e| self.error(e, "sending a request"))?;
        let mut keep = None;
        match body {
            Some(b) if !end => {
                tokio::spawn(async move {
                    if let Err(e) = pump(stream, b).await {
                        tracing::debug!("HTTP/2 request body: {e}");
                    }
                });
            }
            _ => keep = Some(stream),
        }
        let resp = fut
            .await
            .map_err(|e| self.error(e, "awaiting a response"))?;
        Ok((resp, keep))
    }
}

fn response_body(resp: Response<h2::RecvStream>, method: &Method, slot: &IoSlot) -> Response<Body> {
    let (parts, recv) = resp.into_parts();
    let len = burrow_http_core::message::response_length(method, parts.status, &parts.headers);
    Response::from_parts(
        parts,
        Body::wrap(RecvBody::new(recv, len).with_slot(slot.clone())),
    )
}

#[async_trait]
impl HttpConnection for Http2Connection {
    async fn send_request(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let (mut parts, body) = request.into_parts();
        // RFC 9113 §8.3.1: :authority, never userinfo; §8.2.2: no connection-specific
        // fields, and Host becomes :authority.
        parts.uri = burrow_http_core::target::absolute_uri(&parts, "https")?;
        burrow_http_core::message::strip_connection_specific(&mut parts.headers);
        parts.headers.remove(HOST);
        parts.version = Version::HTTP_2;
        let size = body.size_hint().exact().filter(|n| *n > 0);
        burrow_http_core::message::announce_length(&mut parts.headers, size);
        let method = parts.method.clone();
        let mut replay = body.try_clone();
        let mut attempt = (Request::from_parts(parts, ()), body);
        loop {
            let head = burrow_http_core::message::clone_head(&attempt.0);
            let before_settings = !*self.settings.borrow();
            match self.open(attempt.0, Some(attempt.1)).await {
                Ok((resp, _)) => return Ok(response_body(resp, &method, &self.shared.io)),
                // Streams opened before the peer's SETTINGS arrived may exceed its
                // SETTINGS_MAX_CONCURRENT_STREAMS and be refused (RFC 9113 §5.1.2); h2 queues
                // streams once the limit is known, so send such a request again.
                Err(e)
                    if e.kind() == ErrorKind::NotProcessed
                        && e.code() == Some(H2Reason::REFUSED_STREAM.into())
                        && before_settings =>
                {
                    let Some(b) = replay.take() else {
                        return Err(e);
                    };
                    self.settings_received().await?;
                    replay = b.try_clone();
                    attempt = (head, b);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn open_tunnel(&self, request: TunnelRequest) -> Result<Tunnel, Error> {
        // Counted from the start (before any await), so callers that check
        // `can_open_tunnel` one after another see this one; released on failure or when
        // the tunnel is dropped.
        let slot = crate::stream::TunnelSlot::new(self.shared.tunnels.clone());
        if handshake::needs_settings(&request, Version::HTTP_2) {
            self.settings_received().await?;
            let s = handshake::PeerSettings {
                extended_connect: self.extended_connect_enabled(),
                h3_datagram: false,
            };
            handshake::check_settings(&request, Version::HTTP_2, &s)?;
        }
        let th = handshake::request_head(&request, Version::HTTP_2)?;
        let mut req = Request::connect(th.uri());
        if let Some(p) = &th.protocol {
            req = req.extension(h2::ext::Protocol::from(p.as_str()));
        }
        let mut req = req
            .body(())
            .map_err(|e| Error::invalid_input(format!("tunnel request: {e}")))?;
        *req.headers_mut() = th.headers;
        let (resp, send) = self.open(req, None).await?;
        handshake::judge_answer(&request, Version::HTTP_2, resp.status(), resp.headers())?;
        let status = resp.status();
        let send =
            send.ok_or_else(|| Error::local(ErrorKind::Protocol, "HTTP/2: no send stream"))?;
        let (parts, recv) = resp.into_parts();
        Ok(Tunnel::new(
            Box::new(
                H2Stream::new(send, recv)
                    .with_slot(slot)
                    .with_io_slot(self.shared.io.clone()),
            ),
            status,
            parts.headers,
        ))
    }

    fn version(&self) -> Version {
        Version::HTTP_2
    }

    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn is_ready(&self) -> bool {
        // h2 queues streams beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS and opens them
        // as others finish, so a live connection can always take another request.
        !self.is_closed()
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.errored()
    }

    fn can_open_tunnel(&self) -> bool {
        // Streams beyond the peer's limit are queued by h2 until one closes.
        !self.is_closed()
            && self.shared.tunnels.load(Ordering::Acquire) < self.send.current_max_send_streams()
    }
}

impl Http2Connection {
    /// Whether h2 refuses new streams (GOAWAY received, connection error). Polls a clone
    /// with no pending open, which registers no waker.
    fn errored(&self) -> bool {
        let mut s = self.send.clone();
        matches!(
            s.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Err(_))
        )
    }
}
