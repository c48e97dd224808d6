//! The client driver: one task per connection owns the stream and the core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use burrow_http_core::{
    handshake, Body, BodySender, ConnectionInfo, HttpConnection, StreamProtocol, Tunnel,
    TunnelRequest,
};
use burrow_transport::{BoxStream, Error, ErrorKind, Prefixed};

use super::wire::{flush, read_more, sender_ready};
use crate::proto::{Connection, Event, RequestHead, ResponseHead, Role};
use crate::Http1Config;

/// How long to wait for `100 Continue` before sending a body anyway (curl waits 1 s).
pub const EXPECT_CONTINUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest refused-CONNECT body read before the connection is dropped.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// A request extension: send the request target in absolute-form (to an HTTP proxy).
#[derive(Clone, Copy, Debug, Default)]
pub struct AbsoluteForm;

enum Job {
    Request(
        Request<Body>,
        oneshot::Sender<Result<Response<Body>, Error>>,
    ),
    Tunnel(TunnelRequest, oneshot::Sender<Result<Tunnel, Error>>),
}

struct Shared {
    /// Requests handed to this connection and not finished yet.
    outstanding: AtomicUsize,
    closed: AtomicBool,
}

/// The client side of an HTTP/1.1 connection. Requests are served one after another.
pub struct Http1Connection {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    info: ConnectionInfo,
}

/// HTTP/1.1 as a [`StreamProtocol`] for the [`Client`](burrow_http_core::Client).
#[derive(Clone, Debug, Default)]
pub struct Http1 {
    /// Settings for connections this protocol opens.
    pub config: Http1Config,
}

#[async_trait]
impl StreamProtocol for Http1 {
    fn alpn(&self) -> &'static [u8] {
        b"http/1.1"
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }

    async fn handshake(
        &self,
        stream: BoxStream,
        info: ConnectionInfo,
    ) -> Result<Arc<dyn HttpConnection>, Error> {
        Ok(Arc::new(connect(stream, info, &self.config)))
    }
}

/// Starts HTTP/1.1 over `io`: spawns the driver task and returns the connection handle.
pub(crate) fn connect(
    io: BoxStream,
    info: ConnectionInfo,
    config: &Http1Config,
) -> Http1Connection {
    let limits = config.limits.clone();
    let (tx, rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        outstanding: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    });
    let driver = Driver {
        conn: Connection::new(Role::Client, limits),
        shared: shared.clone(),
        served: 0,
        released: false,
    };
    tokio::spawn(driver.run(io, rx));
    Http1Connection {
        jobs: tx,
        shared,
        info,
    }
}

#[async_trait]
impl HttpConnection for Http1Connection {
    async fn send_request(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let (tx, rx) = oneshot::channel();
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        self.jobs
            .send(Job::Request(request, tx))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn open_tunnel(&self, request: TunnelRequest) -> Result<Tunnel, Error> {
        let (tx, rx) = oneshot::channel();
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        self.jobs
            .send(Job::Tunnel(request, tx))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }

    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn is_ready(&self) -> bool {
        self.shared.outstanding.load(Ordering::Acquire) == 0 && !self.is_closed()
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.jobs.is_closed()
    }
}

fn closed() -> Error {
    Error::peer(ErrorKind::Closed, "HTTP/1.1 connection closed")
}

struct Driver {
    conn: Connection,
    shared: Arc<Shared>,
    /// Requests answered so far on this connection.
    served: u64,
    /// Whether the current job already gave its slot back (see [`Driver::release`]).
    released: bool,
}

impl Driver {
    async fn run(mut self, io: BoxStream, mut jobs: mpsc::Receiver<Job>) {
        let (mut rd, mut wr) = tokio::io::split(io);
        while let Some(job) = jobs.recv().await {
            self.released = false;
            match job {
                Job::Request(req, reply) => {
                    let r = self.exchange(req, reply, &mut rd, &mut wr).await;
                    self.served += 1;
                    if r.is_err() || self.conn.must_close() {
                        self.shared.closed.store(true, Ordering::Release);
                        break;
                    }
                }
                Job::Tunnel(req, reply) => {
                    self.tunnel(req, reply, rd, wr).await;
                    self.shared.closed.store(true, Ordering::Release);
                    return;
                }
            }
            self.release();
        }
        self.shared.closed.store(true, Ordering::Release);
        let mut io = rd.unsplit(wr);
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
    }

    /// Gives the connection back (or marks it closed) once per job. Called before the
    /// response body's end is delivered, so a caller that sends its next request as soon as
    /// it has read a body finds this connection free.
    fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if self.conn.must_close() {
            self.shared.closed.store(true, Ordering::Release);
        }
        self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// One request/response cycle. The request body is written while the response is read,
    /// so early responses and echoing servers work.
    async fn exchange(
        &mut self,
        req: Request<Body>,
        reply: oneshot::Sender<Result<Response<Body>, Error>>,
        rd: &mut ReadHalf<BoxStream>,
        wr: &mut WriteHalf<BoxStream>,
    ) -> Result<(), Error> {
        let (parts, mut body) = req.into_parts();
        let head = match request_head(&parts, &body) {
            Ok(h) => h,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let expect_continue = head
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let head_method = head.method.clone();
        if let Err(e) = self.conn.send_request(head) {
            let _ = reply.send(Err(e.into()));
            return Ok(());
        }
        let mut reply = Some(reply);
        let reused = self.served > 0;
        let fail = |reply: &mut Option<oneshot::Sender<_>>, e: Error| {
            if let Some(r) = reply.take() {
                // A reused connection the server closed before answering (its keep-alive
                // timeout raced our request): the request was not processed.
                let e = if reused && matches!(e.kind(), ErrorKind::Closed | ErrorKind::Io) {
                    Error::peer(
                        ErrorKind::NotProcessed,
                        "HTTP/1.1: reused connection closed before a response",
                    )
                    .with_source(e)
                } else {
                    e
                };
                let _ = r.send(Err(e.clone()));
                return e;
            }
            e
        };
        // A request without a body ends with its head; otherwise a response that arrives
        // before the (empty) body's end is noticed would look like an abandoned upload.
        let mut req_done = false;
        if body.is_end_stream() {
            if let Err(e) = self.conn.send_end(None) {
                return Err(fail(&mut reply, e.into()));
            }
            req_done = true;
        }
        if let Err(e) = flush(&mut self.conn, wr).await {
            return Err(fail(&mut reply, e));
        }
        let mut wait_continue = expect_continue;
        let continue_timer = tokio::time::sleep(EXPECT_CONTINUE_TIMEOUT);
        tokio::pin!(continue_timer);
        let mut body_tx: Option<BodySender> = None;
        let mut pending: Option<Bytes> = None;
        let mut resp_done = false;
        let mut interim = 0usize;
        loop {
            // Drain what the core already has.
            while pending.is_none() && !resp_done {
                match self.conn.poll_event() {
                    Ok(Some(Event::Response(h))) if h.status.is_informational() => {
                        interim += 1;
                        if interim > burrow_http_core::MAX_INTERIM_RESPONSES {
                            return Err(fail(&mut reply, too_many_interim()));
                        }
                        if h.status == StatusCode::CONTINUE {
                            wait_continue = false;
                        }
                    }
                    Ok(Some(Event::Response(h))) => {
                        wait_continue = false;
                        let (tx, resp) = response(h, &head_method);
                        if let Some(r) = reply.take() {
                            let _ = r.send(Ok(resp));
                        }
                        body_tx = Some(tx);
                    }
                    Ok(Some(Event::Data(d))) => pending = Some(d),
                    Ok(Some(Event::End(t))) => {
                        resp_done = true;
                        if req_done {
                            self.release();
                        }
                        if let Some(tx) = body_tx.take() {
                            match t {
                                Some(t) => {
                                    let _ = tx.send_trailers(t).await;
                                }
                                None => tx.finish(),
                            }
                        }
                    }
                    Ok(Some(Event::Switched | Event::Request(_) | Event::Closed)) => {
                        return Err(fail(
                            &mut reply,
                            Error::peer(ErrorKind::Protocol, "HTTP/1.1: unexpected switch"),
                        ));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let e: Error = e.into();
                        if let Some(tx) = body_tx.take() {
                            tx.abort(e.clone()).await;
                        }
                        return Err(fail(&mut reply, e));
                    }
                }
            }
            if resp_done && !req_done {
                // The final response came before we finished the body: stop sending.
                self.conn.abandon_body();
                return Ok(());
            }
            if resp_done && req_done {
                return Ok(());
            }
            tokio::select! {
                // The caller gave up before the response head came (its request future was
                // dropped): the answer would still arrive on this connection, which cannot
                // serve anyone else.
                _ = caller_gone(reply.as_mut()), if reply.is_some() => {
                    self.conn.abandon_body();
                    return Err(Error::local(ErrorKind::Cancelled, "request abandoned by its caller"));
                }
                r = sender_ready(body_tx.as_mut()), if pending.is_some() && body_tx.is_some() => {
                    if r.is_err() {
                        // The caller dropped the body: this connection cannot be reused.
                        self.conn.abandon_body();
                        return Err(Error::local(ErrorKind::Cancelled, "response body dropped"));
                    }
                    if let (Some(tx), Some(d)) = (body_tx.as_mut(), pending.take()) {
                        let _ = tx.send_data(d).await;
                    }
                }
                r = read_more(&mut self.conn, rd), if pending.is_none() => {
                    if let Err(e) = r {
                        if let Some(tx) = body_tx.take() {
                            tx.abort(e.clone()).await;
                        }
                        return Err(fail(&mut reply, e));
                    }
                }
                f = body.frame(), if !req_done && !wait_continue => {
                    let r = match f {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) => self.conn.send_data(d),
                            Err(f) => {
                                req_done = true;
                                self.conn.send_end(f.into_trailers().ok())
                            }
                        },
                        None => {
                            req_done = true;
                            self.conn.send_end(None)
                        }
                        Some(Err(e)) => {
                            self.conn.abandon_body();
                            return Err(fail(&mut reply, e));
                        }
                    };
                    if let Err(e) = r {
                        self.conn.abandon_body();
                        return Err(fail(&mut reply, e.into()));
                    }
                    if let Err(e) = flush(&mut self.conn, wr).await {
                        return Err(fail(&mut reply, e));
                    }
                }
                _ = &mut continue_timer, if wait_continue => wait_continue = false,
            }
        }
    }

    async fn tunnel(
        &mut self,
        req: TunnelRequest,
        reply: oneshot::Sender<Result<Tunnel, Error>>,
        mut rd: ReadHalf<BoxStream>,
        mut wr: WriteHalf<BoxStream>,
    ) {
        let r = self.tunnel_inner(req, &mut rd, &mut wr).await;
        let r = r.map(|(status, headers)| {
            let leftover = self.conn.take_leftover();
            let io = rd.unsplit(wr);
            Tunnel::new(Box::new(Prefixed::new(leftover, io)), status, headers)
        });
        let _ = reply.send(r);
    }

    async fn tunnel_inner(
        &mut self,
        req: TunnelRequest,
        rd: &mut ReadHalf<BoxStream>,
        wr: &mut WriteHalf<BoxStream>,
    ) -> Result<(StatusCode, http::HeaderMap), Error> {
        let th = handshake::request_head(&req, Version::HTTP_11)?;
        let mut head = RequestHead::new(th.method.clone(), th.h1_target().to_string());
        head.headers = th.headers;
        self.conn.send_request(head)?;
        self.conn.send_end(None)?;
        flush(&mut self.conn, wr).await?;
        let mut refusal: Option<ResponseHead> = None;
        let mut body_len = 0usize;
        let mut interim = 0usize;
        loop {
            match self.conn.poll_event()? {
                Some(Event::Response(h)) if h.status.is_informational() && h.status != 101 => {
                    interim += 1;
                    if interim > burrow_http_core::MAX_INTERIM_RESPONSES {
                        return Err(too_many_interim());
                    }
                }
                // A success is followed by Switched; anything else by its body.
                Some(Event::Response(h)) => refusal = Some(h),
                Some(Event::Switched) => {
                    let h = refusal.take().ok_or_else(|| {
                        Error::peer(ErrorKind::Protocol, "HTTP/1.1: switch without response")
                    })?;
                    handshake::judge_answer(&req, Version::HTTP_11, h.status, &h.headers)?;
                    return Ok((h.status, h.headers));
                }
                Some(Event::Data(d)) => {
                    body_len += d.len();
                    if body_len > MAX_REFUSAL_BODY {
                        break;
                    }
                }
                Some(Event::End(_)) => break,
                Some(_) => {
                    return Err(Error::peer(
                        ErrorKind::Protocol,
                        "HTTP/1.1: unexpected event",
                    ))
                }
                None => read_more(&mut self.conn, rd).await?,
            }
        }
        match refusal {
            Some(h) => Err(burrow_http_core::refused(h.status, &h.headers)),
            None => Err(Error::peer(
                ErrorKind::Protocol,
                "HTTP/1.1: no response to tunnel request",
            )),
        }
    }
}

/// Resolves when the caller waiting on `reply` has gone; never without one.
async fn caller_gone<T>(reply: Option<&mut oneshot::Sender<T>>) {
    match reply {
        Some(r) => r.closed().await,
        None => std::future::pending().await,
    }
}

fn too_many_interim() -> Error {
    Error::peer(
        ErrorKind::Protocol,
        format!(
            "HTTP/1.1: more than {} interim (1xx) responses",
            burrow_http_core::MAX_INTERIM_RESPONSES
        ),
    )
}

/// Builds the wire head for a request: target form, `Host`, framing from the body.
fn request_head(parts: &http::request::Parts, body: &Body) -> Result<RequestHead, Error> {
    let uri = &parts.uri;
    let target = if parts.extensions.get::<AbsoluteForm>().is_some() && uri.scheme().is_some() {
        burrow_http_core::target::without_userinfo(uri).to_string()
    } else if parts.method == Method::CONNECT {
        burrow_http_core::target::authority(uri)
            .ok_or_else(|| Error::user(ErrorKind::InvalidInput, "CONNECT needs an authority"))?
    } else {
        uri.path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    };
    let mut head = RequestHead::new(parts.method.clone(), target);
    head.version = if parts.version == Version::HTTP_10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if !parts.headers.contains_key(HOST) {
        let value = burrow_http_core::target::host_header(uri).ok_or_else(|| {
            Error::user(
                ErrorKind::InvalidInput,
                "request has no Host header nor authority",
            )
        })?;
        head.headers.insert(
            HOST,
            HeaderValue::from_str(&value)
                .map_err(|_| Error::user(ErrorKind::InvalidInput, "invalid Host"))?,
        );
    }
    for (k, v) in &parts.headers {
        head.headers.append(k, v.clone());
    }
    // Connection-specific fields are ours to write (RFC 9110 §7.6.1); keep the user's others.
    if !head.headers.contains_key(CONTENT_LENGTH) && !head.headers.contains_key(TRANSFER_ENCODING) {
        match body.size_hint().exact() {
            Some(0)
                if matches!(
                    parts.method,
                    Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT
                ) => {}
            Some(n) => {
                head.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
            None => {
                head.headers
                    .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            }
        }
    }
    Ok(head)
}

fn response(head: ResponseHead, method: &Method) -> (BodySender, Response<Body>) {
    let len = if !burrow_http_core::message::response_has_content(method, head.status) {
        Some(0)
    } else {
        crate::proto::framing::content_length(&head.headers)
            .ok()
            .flatten()
    };
    let (tx, body) = Body::channel_with(len, burrow_http_core::DEFAULT_CHANNEL_FRAMES);
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    *resp.headers_mut() = head.headers;
    (tx, resp)
}
