//! The server side: one task accepts streams (which also drives the connection's I/O);
//! each request is answered by whoever took it from [`ServerConnection::accept`].

use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::{
    handshake, message, Body, ConnectProtocol, Respond, ServerConnection, ServerRequest, Tunnel,
};
use burrow_transport::{BoxStream, Error};
use bytes::Bytes;
use http::{Method, Request, Response, Version};
use http_body::Body as _;
use tokio::sync::{mpsc, Notify};

use crate::body::{pump, RecvBody};
use crate::error::from_h2;
use crate::stream::H2Stream;
use crate::Http2Config;

/// The server side of an HTTP/2 connection.
pub struct Http2Server {
    requests: mpsc::UnboundedReceiver<Result<ServerRequest, Error>>,
    shutdown: Arc<Notify>,
    abort: Arc<Notify>,
}

/// Serves HTTP/2 on `io` (after TLS with ALPN `h2`, or h2c with prior knowledge): spawns the
/// connection's driver; take requests with [`ServerConnection::accept`]. Extended CONNECT
/// is enabled (SETTINGS_ENABLE_CONNECT_PROTOCOL).
pub async fn serve(io: BoxStream, config: &Http2Config) -> Result<Http2Server, Error> {
    // Unbounded is bounded in practice: h2 admits at most max_concurrent_streams at a time.
    let (tx, rx) = mpsc::unbounded_channel();
    let shutdown = Arc::new(Notify::new());
    let abort = Arc::new(Notify::new());
    let builder = config.server();
    let stop = shutdown.clone();
    let kill = abort.clone();
    let deadline = config.handshake_timeout;
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + deadline;
        let mut conn = match tokio::time::timeout_at(until, builder.handshake::<_, Bytes>(io)).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let _ = tx.send(Err(from_h2(e, "server handshake")));
                return;
            }
            Err(_) => {
                let _ = tx.send(Err(Error::peer_timeout(
                    "HTTP/2: no connection preface from the client in time",
                )));
                return;
            }
        };
        // The client's SETTINGS must follow its preface (RFC 9113 §3.4), so once a PING we
        // send is answered, they have arrived; a client that sends nothing more is dropped
        // at the deadline.
        let (settled_tx, mut settled) = tokio::sync::oneshot::channel::<()>();
        if let Some(mut pp) = conn.ping_pong() {
            tokio::spawn(async move {
                if pp.send_ping(h2::Ping::opaque()).is_ok()
                    && std::future::poll_fn(|cx| pp.poll_pong(cx)).await.is_ok()
                {
                    let _ = settled_tx.send(());
                }
            });
        }
        let mut settled_done = false;
        let mut stopping = false;
        loop {
            tokio::select! {
                r = &mut settled, if !settled_done => match r {
                    Ok(()) => settled_done = true,
                    // The ping task ended without a pong: the connection is going away.
                    Err(_) => settled_done = true,
                },
                _ = tokio::time::sleep_until(until), if !settled_done => {
                    let _ = tx.send(Err(Error::peer_timeout("HTTP/2: no SETTINGS from the client in time",
                    )));
                    return;
                }
                next = conn.accept() => match next {
                    Some(Ok((req, respond))) => {
                        let _ = tx.send(Ok(request(req, respond)));
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(from_h2(e, "accepting a stream")));
                        break;
                    }
                    None => break,
                },
                _ = stop.notified(), if !stopping => {
                    stopping = true;
                    conn.graceful_shutdown();
                }
                // Dropping the connection closes its transport.
                _ = kill.notified() => break,
            }
        }
    });
    Ok(Http2Server {
        requests: rx,
        shutdown,
        abort,
    })
}

fn request(
    req: Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
) -> ServerRequest {
    let (mut parts, recv) = req.into_parts();
    let is_connect = parts.method == Method::CONNECT;
    let method = parts.method.clone();
    if let Some(p) = parts.extensions.remove::<h2::ext::Protocol>() {
        parts
            .extensions
            .insert(ConnectProtocol(p.as_str().to_string()));
    }
    // A CONNECT's stream is the tunnel: keep it for accept_tunnel, give the handler no body.
    let (body, tunnel_recv) = if is_connect {
        (Body::empty(), Some(recv))
    } else {
        let len = message::declared_length(&parts.headers);
        (Body::wrap(RecvBody::new(recv, len)), None)
    };
    ServerRequest {
        request: Request::from_parts(parts, body),
        respond: Box::new(Responder {
            respond,
            tunnel_recv,
            method,
        }),
    }
}

struct Responder {
    respond: h2::server::SendResponse<Bytes>,
    tunnel_recv: Option<h2::RecvStream>,
    method: Method,
}

#[async_trait]
impl Respond for Responder {
    async fn send_response(mut self: Box<Self>, response: Response<Body>) -> Result<(), Error> {
        let (mut parts, body) = response.into_parts();
        parts.version = Version::HTTP_2;
        burrow_http_core::message::strip_connection_specific(&mut parts.headers);
        let status = parts.status;
        let end = !message::response_has_content(&self.method, status) || body.is_end_stream();
        if message::response_announces_length(&self.method, status) {
            message::announce_length(&mut parts.headers, body.size_hint().exact());
        }
        let send = self
            .respond
            .send_response(Response::from_parts(parts, ()), end)
            .map_err(|e| from_h2(e, "sending a response"))?;
        if !end {
            tokio::spawn(async move {
                if let Err(e) = pump(send, body).await {
                    tracing::debug!("HTTP/2 response body: {e}");
                }
            });
        }
        Ok(())
    }

    async fn accept_tunnel(mut self: Box<Self>, response: Response<()>) -> Result<Tunnel, Error> {
        let recv = self
            .tunnel_recv
            .take()
            .ok_or_else(|| Error::invalid_input("only a CONNECT request can become a tunnel"))?;
        let status = response.status();
        handshake::check_accept(false, Version::HTTP_2, status)?;
        let headers = response.headers().clone();
        let send = self
            .respond
            .send_response(response, false)
            .map_err(|e| from_h2(e, "accepting a tunnel"))?;
        Ok(Tunnel::new(
            Box::new(H2Stream::new(send, recv)),
            status,
            headers,
        ))
    }

    fn poll_cancelled(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // RST_STREAM from the client, or the connection failing: either way nobody waits.
        self.respond.poll_reset(cx).map(|_| ())
    }
}

#[async_trait]
impl ServerConnection for Http2Server {
    async fn accept(&mut self) -> Option<Result<ServerRequest, Error>> {
        self.requests.recv().await
    }

    fn version(&self) -> Version {
        Version::HTTP_2
    }

    fn graceful_shutdown(&mut self) {
        self.shutdown.notify_one();
    }

    fn close(&mut self) {
        self.abort.notify_one();
    }
}
