//! The server side: requests arrive on client-initiated bidirectional streams.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::{
    handshake, message, Body, ConnectProtocol, Respond, ServerConnection, ServerRequest, Tunnel,
};
use burrow_transport::{Error, ErrorKind};
use http::{Method, Request, Response, Version};
use http_body::Body as _;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, EndpointConfig, ServerConfig, TokioRuntime};
use tokio::sync::mpsc;

use super::config::{Http3Config, MAX_FIELD_SECTION_SIZE};
use super::conn::Shared;
use super::stream::{body, code, next_event, write_body, H3Stream};
use crate::proto::error::Code;
use crate::proto::headers::response_fields;
use crate::proto::headers_frame;
use crate::proto::settings::Settings;
use crate::proto::stream::{MessageEvent, MessageReader, Reading};

/// Binds a QUIC server endpoint on a real UDP socket (path MTU discovery on), with TLS from
/// `tls` (its ALPN list should contain `h3`), issuing QUIC-LB connection IDs when the config
/// has a [`QuicLb`](crate::QuicLb).
pub fn bind(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    config: &Http3Config,
) -> Result<Endpoint, Error> {
    let quic = QuicServerConfig::try_from(tls)
        .map_err(|e| Error::user(ErrorKind::Tls, "TLS config unusable for QUIC").with_source(e))?;
    let mut sc = ServerConfig::with_crypto(Arc::new(quic));
    let mut cfg = config.clone();
    cfg.mtu_discovery(true);
    sc.transport_config(cfg.transport()?);
    let mut ec = EndpointConfig::default();
    if let Some(lb) = &config.quic_lb {
        let lb = lb.clone();
        ec.cid_generator(move || lb.generator());
    }
    let bind_err = |e| Error::local_io(format!("binding UDP {addr}"), e);
    let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
    Endpoint::new(ec, Some(sc), socket, Arc::new(TokioRuntime)).map_err(bind_err)
}

/// The server side of an HTTP/3 connection.
pub struct Http3Server {
    requests: mpsc::UnboundedReceiver<Result<ServerRequest, Error>>,
    shared: Arc<Shared>,
    stopping: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
}

/// Serves HTTP/3 on an accepted QUIC connection: sends our SETTINGS (extended CONNECT and
/// HTTP Datagrams enabled) and starts accepting request streams. A peer whose SETTINGS do
/// not arrive within the config's handshake timeout is closed with H3_MISSING_SETTINGS; a
/// request stream whose head is not complete within the request-head timeout is reset with
/// H3_REQUEST_INCOMPLETE.
pub async fn serve(conn: quinn::Connection, config: &Http3Config) -> Result<Http3Server, Error> {
    let ours = Settings {
        max_field_section_size: Some(MAX_FIELD_SECTION_SIZE),
        enable_connect_protocol: true,
        h3_datagram: true,
        ..Settings::default()
    };
    let side = crate::proto::conn::Side::Server;
    let shared = Shared::start(conn.clone(), ours, side, config.handshake_timeout).await?;
    let head_deadline = config.request_head_timeout;
    let (tx, rx) = mpsc::unbounded_channel();
    let stopping = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(0));
    let (sh, stop, next) = (shared.clone(), stopping.clone(), next_id.clone());
    tokio::spawn(async move {
        while let Ok((mut send, recv)) = conn.accept_bi().await {
            let id = send.id().index() * 4;
            next.fetch_max(id + 4, Ordering::AcqRel);
            if stop.load(Ordering::Acquire) {
                let _ = send.reset(code(Code::REQUEST_REJECTED));
                continue;
            }
            let (tx, sh) = (tx.clone(), sh.clone());
            tokio::spawn(async move {
                if let Some(r) = request(sh, send, recv, id, head_deadline).await {
                    let _ = tx.send(r);
                }
            });
        }
    });
    Ok(Http3Server {
        requests: rx,
        shared,
        stopping,
        next_id,
    })
}

async fn request(
    shared: Arc<Shared>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    id: u64,
    head_deadline: std::time::Duration,
) -> Option<Result<ServerRequest, Error>> {
    let now = burrow_http_core::driver::now();
    let mut reader = MessageReader::new(Reading::Request).head_deadline(now + head_deadline);
    let head = next_event(&mut reader, &mut recv, "reading a request head").await;
    let head = match head {
        Ok(MessageEvent::Request(h)) => h,
        Ok(_) => return None,
        // RFC 9114 §4.1.2: H3_REQUEST_INCOMPLETE for a request that did not arrive whole
        // (in time), the code of a malformed one otherwise.
        Err(e) => {
            let c = match e.code() {
                Some(burrow_transport::WireCode::H3(c)) => c,
                _ => Code::MESSAGE_ERROR,
            };
            let _ = send.reset(quinn::VarInt::from_u64(c.0).unwrap_or(code(Code::MESSAGE_ERROR)));
            return None;
        }
    };
    let uri = match head.uri() {
        Ok(u) => u,
        Err(_) => {
            let _ = send.reset(code(Code::MESSAGE_ERROR));
            return None;
        }
    };
    let is_connect = head.method == Method::CONNECT;
    let len = message::declared_length(&head.headers);
    let (b, tunnel) = if is_connect {
        (Body::empty(), Some((reader, recv)))
    } else {
        (body(reader, recv, len), None)
    };
    let mut req = Request::new(b);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_3;
    *req.headers_mut() = head.headers;
    if let Some(p) = head.protocol {
        req.extensions_mut().insert(ConnectProtocol(p));
    }
    let extended = req.extensions().get::<ConnectProtocol>().is_some();
    Some(Ok(ServerRequest {
        request: req,
        respond: Box::new(Responder {
            send,
            tunnel,
            method: head.method,
            shared,
            id,
            extended,
            stopped: None,
        }),
    }))
}

type Stopped = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

struct Responder {
    send: quinn::SendStream,
    tunnel: Option<(MessageReader, quinn::RecvStream)>,
    method: Method,
    shared: Arc<Shared>,
    id: u64,
    extended: bool,
    /// Resolves when the client stops the stream (STOP_SENDING) or the connection ends.
    stopped: Option<Stopped>,
}

#[async_trait]
impl Respond for Responder {
    async fn send_response(mut self: Box<Self>, response: Response<Body>) -> Result<(), Error> {
        let (mut parts, b) = response.into_parts();
        let status = parts.status;
        // RFC 9114 §4.2: no connection-specific fields.
        message::strip_connection_specific(&mut parts.headers);
        let no_body = !message::response_has_content(&self.method, status);
        if message::response_announces_length(&self.method, status) {
            message::announce_length(&mut parts.headers, b.size_hint().exact());
        }
        let frame = headers_frame(&response_fields(status, &parts.headers));
        self.send
            .write_all(&frame)
            .await
            .map_err(|e| Error::closed("HTTP/3: writing a response head").with_source(e))?;
        if no_body || b.is_end_stream() {
            let _ = self.send.finish();
            return Ok(());
        }
        let mut send = self.send;
        tokio::spawn(async move {
            if let Err(e) = write_body(&mut send, b).await {
                tracing::debug!("HTTP/3 response body: {e}");
            }
        });
        Ok(())
    }

    async fn accept_tunnel(mut self: Box<Self>, response: Response<()>) -> Result<Tunnel, Error> {
        let (reader, recv) = self
            .tunnel
            .take()
            .ok_or_else(|| Error::invalid_input("only a CONNECT request can become a tunnel"))?;
        let status = response.status();
        handshake::check_accept(false, Version::HTTP_3, status)?;
        let headers = response.headers().clone();
        let frame = headers_frame(&response_fields(status, &headers));
        self.send
            .write_all(&frame)
            .await
            .map_err(|e| Error::closed("HTTP/3: accepting a tunnel").with_source(e))?;
        let datagrams = self.extended.then(|| self.shared.datagrams(self.id));
        let mut t = Tunnel::new(
            Box::new(H3Stream::new(reader, recv, self.send)),
            status,
            headers,
        );
        if let Some(d) = datagrams {
            t = t.with_datagrams(Box::new(d));
        }
        Ok(t)
    }

    fn poll_cancelled(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let send = &self.send;
        let stopped = self.stopped.get_or_insert_with(|| {
            let f = send.stopped();
            Box::pin(async move {
                let _ = f.await;
            })
        });
        stopped.as_mut().poll(cx)
    }
}

#[async_trait]
impl ServerConnection for Http3Server {
    async fn accept(&mut self) -> Option<Result<ServerRequest, Error>> {
        tokio::select! {
            r = self.requests.recv() => r,
            _ = self.shared.conn.closed() => None,
        }
    }

    fn version(&self) -> Version {
        Version::HTTP_3
    }

    fn close(&mut self) {
        self.shared.conn.close(code(Code::NO_ERROR), b"idle");
    }

    fn graceful_shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let shared = self.shared.clone();
        let id = self.next_id.load(Ordering::Acquire);
        tokio::spawn(async move { shared.send_goaway(id).await });
    }
}
