//! The server driver: one task per connection reads requests and writes answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, Notify};

use burrow_http_core::{
    handshake, message, Body, BodySender, ConnectProtocol, Respond, ServerConnection,
    ServerRequest, Tunnel,
};
use burrow_transport::{BoxStream, Error, ErrorKind, Prefixed};

use super::wire::{flush, next_frame, read_more, sender_ready};
use crate::proto::{
    encode_response, Connection, Event, ProtoError, RequestHead, ResponseHead, Role,
};
use crate::Http1Config;

/// Request body bytes a server reads and discards after answering early, before it gives up
/// on the connection instead.
pub const MAX_DISCARD: usize = 1024 * 1024;
/// Bytes a server reads ahead (pipelined requests) while a handler works, watching for the
/// client closing the connection; beyond this it stops reading until the answer is sent.
pub const MAX_READ_AHEAD: usize = 64 * 1024;

enum Reply {
    Response(Response<Body>),
    Tunnel(Response<()>, oneshot::Sender<Result<Tunnel, Error>>),
}

struct Responder(oneshot::Sender<Reply>);

#[async_trait]
impl Respond for Responder {
    async fn send_response(self: Box<Self>, response: Response<Body>) -> Result<(), Error> {
        self.0
            .send(Reply::Response(response))
            .map_err(|_| Error::peer(ErrorKind::Closed, "HTTP/1.1 connection closed"))
    }

    async fn accept_tunnel(self: Box<Self>, response: Response<()>) -> Result<Tunnel, Error> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Reply::Tunnel(response, tx))
            .map_err(|_| Error::peer(ErrorKind::Closed, "HTTP/1.1 connection closed"))?;
        rx.await
            .map_err(|_| Error::peer(ErrorKind::Closed, "HTTP/1.1 connection closed"))?
    }

    fn poll_cancelled(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // The driver lets go of the answer's receiver when the client closes the
        // connection before it was sent.
        self.0.poll_closed(cx)
    }
}

/// The server side of an HTTP/1.1 connection.
pub struct Http1Server {
    requests: mpsc::Receiver<Result<ServerRequest, Error>>,
    shutdown: Arc<(AtomicBool, Notify)>,
}

/// Serves HTTP/1.1 on `io`: spawns the driver task; take requests with
/// [`ServerConnection::accept`].
pub(crate) fn serve(io: BoxStream, config: &Http1Config) -> Http1Server {
    let (tx, rx) = mpsc::channel(1);
    let shutdown = Arc::new((AtomicBool::new(false), Notify::new()));
    let driver = Driver {
        conn: Connection::new(Role::Server, config.limits.clone()),
        requests: tx,
        shutdown: shutdown.clone(),
        timeouts: config.clone(),
    };
    tokio::spawn(driver.run(io));
    Http1Server {
        requests: rx,
        shutdown,
    }
}

#[async_trait]
impl ServerConnection for Http1Server {
    async fn accept(&mut self) -> Option<Result<ServerRequest, Error>> {
        self.requests.recv().await
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }

    fn graceful_shutdown(&mut self) {
        self.shutdown.0.store(true, Ordering::Release);
        self.shutdown.1.notify_one();
    }
}

struct Driver {
    conn: Connection,
    requests: mpsc::Sender<Result<ServerRequest, Error>>,
    shutdown: Arc<(AtomicBool, Notify)>,
    timeouts: Http1Config,
}

/// Why no request head came.
enum NoHead {
    /// The peer sent something that is not one: answer with its status.
    Bad(Error, Option<ProtoError>),
    /// A head was started but not finished in time: answer 408.
    TooSlow,
}

enum Next {
    KeepGoing,
    Stop,
    Tunnel(Response<()>, oneshot::Sender<Result<Tunnel, Error>>),
}

impl Driver {
    async fn run(mut self, io: BoxStream) {
        let (mut rd, mut wr) = tokio::io::split(io);
        loop {
            let head = match self.read_head(&mut rd).await {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(NoHead::TooSlow) => {
                    self.send_status(408, "request head not received in time", &mut wr)
                        .await;
                    break;
                }
                Err(NoHead::Bad(e, p)) => {
                    if let Some(p) = p {
                        self.send_error(&p, &mut wr).await;
                    }
                    let _ = self.requests.send(Err(e)).await;
                    break;
                }
            };
            match self.exchange(head, &mut rd, &mut wr).await {
                Ok(Next::KeepGoing) if !self.conn.must_close() => continue,
                Ok(Next::Tunnel(resp, reply)) => {
                    let r = self.accept_tunnel(resp, &mut wr).await;
                    let r = r.map(|head| {
                        let leftover = self.conn.take_leftover();
                        let io = rd.unsplit(wr);
                        Tunnel::new(Box::new(Prefixed::new(leftover, io)), head.0, head.1)
                    });
                    let _ = reply.send(r);
                    return;
                }
                _ => break,
            }
        }
        let mut io = rd.unsplit(wr);
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
    }

    /// Waits for the next request head: within the idle deadline for its first byte, and
    /// the head deadline from there for the rest.
    async fn read_head(
        &mut self,
        rd: &mut ReadHalf<BoxStream>,
    ) -> Result<Option<RequestHead>, NoHead> {
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        let idle_until = self
            .timeouts
            .idle_timeout
            .map_or_else(far, |d| tokio::time::Instant::now() + d);
        let mut head_until = None;
        loop {
            match self.conn.poll_event() {
                Ok(Some(Event::Request(h))) => return Ok(Some(h)),
                Ok(Some(Event::Closed)) => return Ok(None),
                Ok(Some(_)) => {
                    return Err(NoHead::Bad(
                        Error::peer(ErrorKind::Protocol, "HTTP/1.1: unexpected event"),
                        None,
                    ))
                }
                Ok(None) => {}
                Err(p) => return Err(NoHead::Bad(p.clone().into(), Some(p))),
            }
            let started = !self.conn.read_buffer().is_empty();
            if self.shutdown.0.load(Ordering::Acquire) && !started {
                return Ok(None);
            }
            if started && head_until.is_none() {
                head_until = Some(
                    self.timeouts
                        .head_timeout
                        .map_or_else(far, |d| tokio::time::Instant::now() + d),
                );
            }
            let until = head_until.unwrap_or(idle_until);
            let notify = &self.shutdown.1;
            tokio::select! {
                r = read_more(&mut self.conn, rd) => r.map_err(|e| NoHead::Bad(e, None))?,
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(until) => {
                    return if head_until.is_some() { Err(NoHead::TooSlow) } else { Ok(None) };
                }
            }
        }
    }

    async fn send_status(&mut self, status: u16, why: &str, wr: &mut WriteHalf<BoxStream>) {
        let msg = format!("{why}\n");
        let head = ResponseHead::new(status)
            .header("content-type", "text/plain")
            .header("connection", "close")
            .header("content-length", &msg.len().to_string());
        let mut wire = encode_response(&head).to_vec();
        wire.extend_from_slice(msg.as_bytes());
        let _ = tokio::io::AsyncWriteExt::write_all(wr, &wire).await;
        let _ = tokio::io::AsyncWriteExt::flush(wr).await;
    }

    async fn send_error(&mut self, e: &ProtoError, wr: &mut WriteHalf<BoxStream>) {
        self.send_status(e.status(), &e.to_string(), wr).await;
    }

    async fn exchange(
        &mut self,
        head: RequestHead,
        rd: &mut ReadHalf<BoxStream>,
        wr: &mut WriteHalf<BoxStream>,
    ) -> Result<Next, Error> {
        let uri = match request_uri(&head) {
            Some(u) => u,
            None => {
                self.send_error(&ProtoError::InvalidHead("invalid request target"), wr)
                    .await;
                return Ok(Next::Stop);
            }
        };
        if self.conn.expects_continue() {
            self.conn.send_response(ResponseHead::new(100))?;
            flush(&mut self.conn, wr).await?;
        }
        let len = crate::proto::framing::content_length(&head.headers)
            .ok()
            .flatten()
            .or(if head.headers.contains_key(TRANSFER_ENCODING) {
                None
            } else {
                Some(0)
            });
        let (body_tx, body) = Body::channel_with(len, burrow_http_core::DEFAULT_CHANNEL_FRAMES);
        let method = head.method.clone();
        // An Upgrade request (e.g. CONNECT-UDP over HTTP/1.1, RFC 9298 §3.2) names its
        // protocol the way :protocol does on HTTP/2 and HTTP/3.
        let upgrade =
            crate::proto::framing::has_token(&head.headers, http::header::CONNECTION, "upgrade")
                .then(|| head.headers.get(http::header::UPGRADE))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(|v| ConnectProtocol(v.trim().to_ascii_lowercase()));
        let mut req = Request::new(body);
        if let Some(p) = upgrade {
            req.extensions_mut().insert(p);
        }
        *req.method_mut() = head.method;
        *req.uri_mut() = uri;
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers;
        let (reply_tx, mut reply_rx) = oneshot::channel();
        let sr = ServerRequest {
            request: req,
            respond: Box::new(Responder(reply_tx)),
        };
        if self.requests.send(Ok(sr)).await.is_err() {
            return Ok(Next::Stop);
        }
        let mut body_tx: Option<BodySender> = Some(body_tx);
        let mut pending: Option<Bytes> = None;
        let mut discarded = 0usize;
        let mut req_done = false;
        let mut replied = false;
        let mut resp_body: Option<Body> = None;
        loop {
            while pending.is_none() && !req_done {
                match self.conn.poll_event()? {
                    Some(Event::Data(d)) => pending = Some(d),
                    Some(Event::End(t)) => {
                        req_done = true;
                        if let Some(tx) = body_tx.take() {
                            match t {
                                Some(t) => {
                                    let _ = tx.send_trailers(t).await;
                                }
                                None => tx.finish(),
                            }
                        }
                    }
                    Some(_) => {
                        return Err(Error::peer(
                            ErrorKind::Protocol,
                            "HTTP/1.1: unexpected event",
                        ))
                    }
                    None => break,
                }
            }
            // Nobody reads the request body any more: discard a bounded amount.
            if body_tx.as_ref().is_some_and(|t| t.is_closed()) {
                body_tx = None;
            }
            if body_tx.is_none() {
                if let Some(d) = pending.take() {
                    discarded += d.len();
                    if discarded > MAX_DISCARD {
                        return Ok(Next::Stop);
                    }
                }
            }
            if replied && resp_body.is_none() && req_done {
                return Ok(Next::KeepGoing);
            }
            let watching = req_done
                && !replied
                && !self.conn.peer_closed()
                && self.conn.read_buffer().len() < MAX_READ_AHEAD;
            tokio::select! {
                r = sender_ready(body_tx.as_mut()), if pending.is_some() && body_tx.is_some() => {
                    match r {
                        Ok(()) => if let (Some(tx), Some(d)) = (body_tx.as_mut(), pending.take()) {
                            let _ = tx.send_data(d).await;
                        },
                        Err(_) => body_tx = None,
                    }
                }
                // The request body; or, once it is read and while the handler works, a watch
                // for the client going away (which cancels the handler's work; pipelined
                // bytes wait in the buffer, up to a bound).
                r = read_more(&mut self.conn, rd), if (pending.is_none() && !req_done) || watching => {
                    if !req_done {
                        r?;
                    } else if r.is_err() || self.conn.peer_closed() {
                        return Ok(Next::Stop);
                    }
                }
                reply = &mut reply_rx, if !replied => {
                    replied = true;
                    match reply {
                        Ok(Reply::Response(resp)) => {
                            let (parts, body) = resp.into_parts();
                            let no_body = !message::response_has_content(&method, parts.status);
                            let head = response_head(parts, &body, &method);
                            self.conn.send_response(head)?;
                            if no_body {
                                // The handler's body is not sent (RFC 9110 §9.3.2).
                                self.conn.send_end(None)?;
                            } else {
                                resp_body = Some(body);
                            }
                            flush(&mut self.conn, wr).await?;
                        }
                        Ok(Reply::Tunnel(resp, tx)) => return Ok(Next::Tunnel(resp, tx)),
                        Err(_) => {
                            // The handler dropped the request without answering.
                            let head = ResponseHead::new(500).header("content-length", "0");
                            self.conn.send_response(head)?;
                            self.conn.send_end(None)?;
                            flush(&mut self.conn, wr).await?;
                        }
                    }
                }
                f = next_frame(resp_body.as_mut()), if resp_body.is_some() => {
                    match f {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) => self.conn.send_data(d)?,
                            Err(f) => {
                                resp_body = None;
                                self.conn.send_end(f.into_trailers().ok())?;
                            }
                        },
                        None => {
                            resp_body = None;
                            self.conn.send_end(None)?;
                        }
                        Some(Err(e)) => return Err(e),
                    }
                    flush(&mut self.conn, wr).await?;
                }
            }
        }
    }

    async fn accept_tunnel(
        &mut self,
        resp: Response<()>,
        wr: &mut WriteHalf<BoxStream>,
    ) -> Result<(StatusCode, http::HeaderMap), Error> {
        let (parts, ()) = resp.into_parts();
        let upgrade = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        handshake::check_accept(upgrade, Version::HTTP_11, parts.status)?;
        let mut head = ResponseHead::new(parts.status.as_u16());
        head.headers = parts.headers.clone();
        self.conn.send_response(head)?;
        flush(&mut self.conn, wr).await?;
        if !self.conn.is_switched() {
            return Err(Error::user(
                ErrorKind::InvalidInput,
                "request cannot become a tunnel",
            ));
        }
        Ok((parts.status, parts.headers))
    }
}

fn request_uri(head: &RequestHead) -> Option<Uri> {
    if head.method == Method::CONNECT {
        // authority-form (RFC 9112 §3.2.3)
        return Uri::builder().authority(head.target.as_str()).build().ok();
    }
    head.target.parse::<Uri>().ok()
}

fn response_head(parts: http::response::Parts, body: &Body, method: &Method) -> ResponseHead {
    let mut head = ResponseHead::new(parts.status.as_u16());
    head.headers = parts.headers;
    if message::response_announces_length(method, parts.status)
        && !head.headers.contains_key(CONTENT_LENGTH)
        && !head.headers.contains_key(TRANSFER_ENCODING)
    {
        match body.size_hint().exact() {
            Some(n) => {
                head.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
            None => {
                head.headers
                    .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            }
        }
    }
    head
}
