//! The client connection: a handle, and one task per connection running the
//! [`ClientCore`] on the generic driver.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::sync::{mpsc, oneshot};

use burrow_http_core::driver::{self, drive};
use burrow_http_core::{
    Body, BodySender, ConnectionInfo, HttpConnection, StreamProtocol, Tunnel, TunnelRequest,
};
use burrow_transport::{BoxStream, Error, ErrorKind, Prefixed};

use crate::proto::client::{request_head, ClientCommand, ClientCore, ClientEvent};
use crate::Http1Config;

pub use burrow_http_core::AbsoluteForm;

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
    let (tx, rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        outstanding: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    });
    tokio::spawn(run(io, config.clone(), rx, shared.clone()));
    Http1Connection {
        jobs: tx,
        shared,
        info,
    }
}

impl Http1Connection {
    /// Hands a job to the driver and waits for its answer.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Job,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        self.jobs.send(job(tx)).await.map_err(|_| not_sent())?;
        rx.await.map_err(|_| closed())?
    }
}

#[async_trait]
impl HttpConnection for Http1Connection {
    async fn send_request(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        self.submit(|tx| Job::Request(request, tx)).await
    }

    async fn open_tunnel(&self, request: TunnelRequest) -> Result<Tunnel, Error> {
        self.submit(|tx| Job::Tunnel(request, tx)).await
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
    Error::closed("HTTP/1.1 connection closed")
}

/// A job handed over as the connection closed (the server's close or stray bytes seen
/// while idle): never sent, so it may go on another connection.
fn not_sent() -> Error {
    Error::peer(
        ErrorKind::NotProcessed,
        "HTTP/1.1: the connection closed before the request was sent",
    )
}

/// Who waits for the current job's answer.
enum Reply {
    Response(oneshot::Sender<Result<Response<Body>, Error>>),
    Tunnel(oneshot::Sender<Result<Tunnel, Error>>),
}

/// The application side of the driven [`ClientCore`]: takes jobs from the handles, feeds
/// request bodies in and response bodies out. It decides nothing.
struct App {
    jobs: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    reply: Option<Reply>,
    request_body: Option<Body>,
    response_body: Option<BodySender>,
    /// The caller dropped the response body: tell the core.
    cancel: bool,
    tunnel: Option<(StatusCode, http::HeaderMap)>,
    /// Responses carry how their heads were spelled.
    spelling: bool,
}

async fn run(io: BoxStream, config: Http1Config, jobs: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut core = ClientCore::new(config.limits.clone())
        .with_connect_version(match config.connect_http10 {
            true => Version::HTTP_10,
            false => Version::HTTP_11,
        })
        .with_spelling(config.spelling);
    let mut app = App {
        jobs,
        shared: shared.clone(),
        reply: None,
        request_body: None,
        response_body: None,
        cancel: false,
        tunnel: None,
        spelling: config.spelling,
    };
    let io = drive(io, &mut core, &mut app).await;
    shared.closed.store(true, Ordering::Release);
    app.jobs.close();
    while let Ok(job) = app.jobs.try_recv() {
        match job {
            Job::Request(_, tx) => drop(tx.send(Err(not_sent()))),
            Job::Tunnel(_, tx) => drop(tx.send(Err(not_sent()))),
        }
    }
    if let (Some(io), Some((status, headers)), Some(Reply::Tunnel(tx))) =
        (io, app.tunnel.take(), app.reply.take())
    {
        let stream = Box::new(Prefixed::new(core.take_leftover(), io));
        let _ = tx.send(Ok(Tunnel::new(stream, status, headers)));
    }
}

impl App {
    /// The next job, as a command; requests whose head cannot be built are answered here.
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientCommand>> {
        loop {
            match ready!(self.jobs.poll_recv(cx)) {
                None => return Poll::Ready(None),
                Some(Job::Tunnel(req, tx)) => {
                    self.reply = Some(Reply::Tunnel(tx));
                    return Poll::Ready(Some(ClientCommand::Tunnel(req)));
                }
                Some(Job::Request(req, tx)) => {
                    let (parts, body) = req.into_parts();
                    let absolute = parts.extensions.get::<AbsoluteForm>().is_some();
                    match request_head(&parts, body.size_hint().exact(), absolute) {
                        Ok(head) => {
                            let has_body = !body.is_end_stream();
                            self.request_body = Some(body);
                            self.reply = Some(Reply::Response(tx));
                            return Poll::Ready(Some(ClientCommand::Request {
                                head,
                                body: has_body,
                            }));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                }
            }
        }
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientCommand>> {
        let Some(body) = self.request_body.as_mut() else {
            return Poll::Pending;
        };
        let c = match ready!(Pin::new(body).poll_frame(cx)) {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => return Poll::Ready(Some(ClientCommand::Data(d))),
                Err(f) => ClientCommand::End(f.into_trailers().ok()),
            },
            None => ClientCommand::End(None),
            Some(Err(e)) => ClientCommand::BodyFailed(e),
        };
        self.request_body = None;
        Poll::Ready(Some(c))
    }
}

impl driver::App<ClientCore> for App {
    fn poll_deliver(
        &mut self,
        cx: &mut Context<'_>,
        event: ClientEvent,
    ) -> Result<(), ClientEvent> {
        match event {
            ClientEvent::Response { head, length } => {
                let (tx, body) =
                    Body::channel_with(length, burrow_http_core::DEFAULT_CHANNEL_FRAMES);
                let mut resp = Response::new(body);
                *resp.status_mut() = head.status;
                *resp.version_mut() = head.version;
                *resp.headers_mut() = head.headers;
                if self.spelling {
                    resp.extensions_mut().insert(head.spelling);
                }
                if let Some(Reply::Response(r)) = self.reply.take() {
                    let _ = r.send(Ok(resp));
                }
                self.response_body = Some(tx);
            }
            ClientEvent::Data(d) => {
                if let Some(tx) = self.response_body.as_mut() {
                    match tx.poll_ready(cx) {
                        Poll::Pending => return Err(ClientEvent::Data(d)),
                        Poll::Ready(Ok(())) => {
                            let _ = tx.send_now(d);
                        }
                        Poll::Ready(Err(_)) => {
                            // The caller dropped the body: this connection cannot be reused.
                            self.response_body = None;
                            self.cancel = true;
                        }
                    }
                }
            }
            ClientEvent::Finished { reusable } => {
                self.request_body = None;
                if !reusable {
                    self.shared.closed.store(true, Ordering::Release);
                }
                self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
            ClientEvent::End(t) => match (self.response_body.take(), t) {
                (Some(mut tx), Some(t)) => match tx.poll_ready(cx) {
                    Poll::Pending => {
                        self.response_body = Some(tx);
                        return Err(ClientEvent::End(Some(t)));
                    }
                    _ => {
                        let _ = tx.trailers_now(t);
                    }
                },
                (Some(tx), None) => tx.finish(),
                (None, _) => {}
            },
            ClientEvent::Failed(e) => {
                self.request_body = None;
                match (self.reply.take(), self.response_body.take()) {
                    (Some(Reply::Response(r)), _) => {
                        let _ = r.send(Err(e));
                    }
                    (Some(Reply::Tunnel(r)), _) => {
                        let _ = r.send(Err(e));
                    }
                    (None, Some(tx)) => tx.abort_now(e),
                    (None, None) => {}
                }
            }
            ClientEvent::Tunnel { status, headers } => self.tunnel = Some((status, headers)),
        }
        Ok(())
    }

    fn poll_command(
        &mut self,
        cx: &mut Context<'_>,
        core: &ClientCore,
    ) -> Poll<Option<ClientCommand>> {
        // The caller gave up before the response head came (its request future was
        // dropped), or dropped the response body.
        let caller_gone = match &mut self.reply {
            Some(Reply::Response(r)) => r.poll_closed(cx).is_ready(),
            // A tunnel given up before its answer: the connection, which only it could
            // have used, closes (it would otherwise wait for the answer for ever).
            Some(Reply::Tunnel(r)) => r.poll_closed(cx).is_ready(),
            None => false,
        };
        if std::mem::take(&mut self.cancel) || caller_gone {
            self.reply = None;
            return Poll::Ready(Some(ClientCommand::Cancel));
        }
        if core.wants_body() {
            if let Poll::Ready(c) = self.poll_body(cx) {
                return Poll::Ready(c);
            }
        }
        if core.is_idle() && self.reply.is_none() {
            return self.poll_job(cx);
        }
        Poll::Pending
    }
}
