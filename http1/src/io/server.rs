//! The server connection: one task per connection running the [`ServerCore`] on the
//! generic driver, and the handle that accepts its requests.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use burrow_http_core::driver::{self, drive};
use burrow_http_core::{
    Body, BodySender, ConnectProtocol, Respond, ServerConnection, ServerRequest, Tunnel,
};
use burrow_transport::{BoxStream, Error, Prefixed};

use crate::proto::server::{Deadlines, ServerCommand, ServerCore, ServerEvent};
use crate::proto::ResponseHead;
use crate::Http1Config;

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
            .map_err(|_| Error::closed("HTTP/1.1 connection closed"))
    }

    async fn accept_tunnel(self: Box<Self>, response: Response<()>) -> Result<Tunnel, Error> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Reply::Tunnel(response, tx))
            .map_err(|_| Error::closed("HTTP/1.1 connection closed"))?;
        rx.await
            .map_err(|_| Error::closed("HTTP/1.1 connection closed"))?
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
    shutdown: Option<oneshot::Sender<()>>,
}

/// Serves HTTP/1.1 on `io`: spawns the driver task; take requests with
/// [`ServerConnection::accept`].
pub(crate) fn serve(io: BoxStream, config: &Http1Config) -> Http1Server {
    let (tx, rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = oneshot::channel();
    let deadlines = Deadlines {
        head: config.head_timeout,
        idle: config.idle_timeout,
    };
    let core = ServerCore::new(config.limits.clone(), deadlines, driver::now());
    let app = App {
        requests: PollSender::new(tx),
        shutdown: Some(stop_rx),
        reply: None,
        request_body: None,
        response_body: None,
        tunnel: None,
        accepted: None,
        queued: None,
        gone: false,
    };
    tokio::spawn(run(io, core, app));
    Http1Server {
        requests: rx,
        shutdown: Some(stop_tx),
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
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

/// The application side of the driven [`ServerCore`]: hands requests to `accept`, feeds
/// request bodies out and answers in. It decides nothing.
struct App {
    requests: PollSender<Result<ServerRequest, Error>>,
    shutdown: Option<oneshot::Receiver<()>>,
    reply: Option<oneshot::Receiver<Reply>>,
    request_body: Option<BodySender>,
    response_body: Option<Body>,
    tunnel: Option<oneshot::Sender<Result<Tunnel, Error>>>,
    accepted: Option<(StatusCode, http::HeaderMap)>,
    queued: Option<ServerCommand>,
    /// Nobody accepts requests any more.
    gone: bool,
}

async fn run(io: BoxStream, mut core: ServerCore, mut app: App) {
    let io = drive(io, &mut core, &mut app).await;
    if let (Some(io), Some(tx), Some((status, headers))) =
        (io, app.tunnel.take(), app.accepted.take())
    {
        let stream = Box::new(Prefixed::new(core.take_leftover(), io));
        let _ = tx.send(Ok(Tunnel::new(stream, status, headers)));
    }
}

impl App {
    /// Hands a request (or a failure) to `accept`, into the room reserved there.
    fn hand_over(&mut self, event: ServerEvent) {
        let item = match event {
            ServerEvent::Request {
                head,
                uri,
                protocol,
                length,
            } => {
                // A request without a body (most, and every CONNECT) gets no channel: a
                // tunnel holds its request for its whole life, and a channel's first block
                // of frames is a few KiB.
                let (body_tx, body) = match length {
                    Some(0) => (None, Body::empty()),
                    _ => {
                        let frames = burrow_http_core::DEFAULT_CHANNEL_FRAMES;
                        let (tx, body) = Body::channel_with(length, frames);
                        (Some(tx), body)
                    }
                };
                let mut req = Request::new(body);
                if let Some(p) = protocol {
                    req.extensions_mut().insert(ConnectProtocol(p));
                }
                *req.method_mut() = head.method;
                *req.uri_mut() = uri;
                *req.version_mut() = head.version;
                *req.headers_mut() = head.headers;
                let (reply_tx, reply_rx) = oneshot::channel();
                self.reply = Some(reply_rx);
                self.request_body = body_tx;
                Ok(ServerRequest {
                    request: req,
                    respond: Box::new(Responder(reply_tx)),
                })
            }
            ServerEvent::Failed(e) => Err(e),
            _ => return,
        };
        if self.requests.send_item(item).is_err() {
            self.gone = true;
        }
    }
}

impl driver::App<ServerCore> for App {
    fn poll_deliver(
        &mut self,
        cx: &mut Context<'_>,
        event: ServerEvent,
    ) -> Result<(), ServerEvent> {
        match event {
            e @ (ServerEvent::Request { .. } | ServerEvent::Failed(_)) => {
                match self.requests.poll_reserve(cx) {
                    Poll::Pending => return Err(e),
                    Poll::Ready(Err(_)) => self.gone = true,
                    Poll::Ready(Ok(())) => self.hand_over(e),
                }
            }
            ServerEvent::Data(d) => {
                if let Some(tx) = self.request_body.as_mut() {
                    match tx.poll_ready(cx) {
                        Poll::Pending => return Err(ServerEvent::Data(d)),
                        Poll::Ready(Ok(())) => {
                            let _ = tx.send_now(d);
                        }
                        Poll::Ready(Err(_)) => {
                            // Nobody reads the request body any more.
                            self.request_body = None;
                            self.queued = Some(ServerCommand::StopBody);
                        }
                    }
                }
            }
            ServerEvent::End(t) => match (self.request_body.take(), t) {
                (Some(mut tx), Some(t)) => match tx.poll_ready(cx) {
                    Poll::Pending => {
                        self.request_body = Some(tx);
                        return Err(ServerEvent::End(Some(t)));
                    }
                    _ => {
                        let _ = tx.trailers_now(t);
                    }
                },
                (Some(tx), None) => tx.finish(),
                (None, _) => {}
            },
            ServerEvent::BodyFailed(e) => {
                if let Some(tx) = self.request_body.take() {
                    tx.abort_now(e);
                }
            }
            // Letting go of the answer's receiver tells the handler (poll_cancelled).
            ServerEvent::Cancelled => self.reply = None,
            ServerEvent::Tunnel(Ok(answer)) => self.accepted = Some(answer),
            ServerEvent::Tunnel(Err(e)) => {
                if let Some(tx) = self.tunnel.take() {
                    let _ = tx.send(Err(e));
                }
            }
        }
        Ok(())
    }

    fn poll_command(
        &mut self,
        cx: &mut Context<'_>,
        core: &ServerCore,
    ) -> Poll<Option<ServerCommand>> {
        if let Some(c) = self.queued.take() {
            return Poll::Ready(Some(c));
        }
        if self.gone {
            return Poll::Ready(None);
        }
        if let Some(s) = self.shutdown.as_mut() {
            if Pin::new(s).poll(cx).is_ready() {
                self.shutdown = None;
                return Poll::Ready(Some(ServerCommand::Shutdown));
            }
        }
        if let Some(rx) = self.reply.as_mut() {
            if let Poll::Ready(r) = Pin::new(rx).poll(cx) {
                self.reply = None;
                return Poll::Ready(Some(match r {
                    Ok(Reply::Response(resp)) => {
                        let (parts, body) = resp.into_parts();
                        let mut head = ResponseHead::new(parts.status.as_u16());
                        head.headers = parts.headers;
                        let length = body.size_hint().exact();
                        self.response_body = Some(body);
                        ServerCommand::Respond { head, length }
                    }
                    Ok(Reply::Tunnel(resp, tx)) => {
                        self.tunnel = Some(tx);
                        let (parts, ()) = resp.into_parts();
                        ServerCommand::AcceptTunnel {
                            status: parts.status,
                            headers: parts.headers,
                        }
                    }
                    // The handler dropped the request without answering.
                    Err(_) => ServerCommand::NoAnswer,
                }));
            }
        }
        if !core.takes_body() {
            self.response_body = None;
            return Poll::Pending;
        }
        if !core.wants_body() {
            return Poll::Pending;
        }
        let Some(body) = self.response_body.as_mut() else {
            return Poll::Pending;
        };
        let c = match ready!(Pin::new(body).poll_frame(cx)) {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => return Poll::Ready(Some(ServerCommand::Data(d))),
                Err(f) => ServerCommand::End(f.into_trailers().ok()),
            },
            None => ServerCommand::End(None),
            Some(Err(e)) => ServerCommand::BodyFailed(e),
        };
        self.response_body = None;
        Poll::Ready(Some(c))
    }
}
