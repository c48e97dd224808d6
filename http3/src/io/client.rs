//! The client side: QUIC over any datagram flow, requests on bidirectional streams.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::{handshake, Body, ConnectionInfo, HttpConnection, Tunnel, TunnelRequest};
use burrow_transport::{BoxFlow, Error, ErrorKind};
use http::header::HOST;
use http::{Request, Response, Version};
use http_body::Body as _;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ClientConfig, Endpoint, EndpointConfig, TokioRuntime};

use super::config::{check_flow, Http3Config, MAX_FIELD_SECTION_SIZE};
use super::conn::{conn_error, Shared};
use super::socket::{FlowSocket, FLOW_PEER};
use super::stream::{body, next_event, write_body, H3Stream};
use crate::proto::headers::RequestHead;
use crate::proto::headers_frame;
use crate::proto::settings::Settings;
use crate::proto::stream::{MessageEvent, MessageReader, Reading};

/// The client side of an HTTP/3 connection. Requests multiplex on QUIC streams; when the
/// peer's stream limit is reached, new requests wait for a free stream.
pub struct Http3Connection {
    shared: Arc<Shared>,
    _endpoint: Endpoint,
    info: ConnectionInfo,
    /// A stream opened by [`HttpConnection::can_open_tunnel`] to learn whether the peer's
    /// stream limit allows another (quinn does not tell the limit); the next request uses it.
    spare: std::sync::Mutex<Option<(quinn::SendStream, quinn::RecvStream)>>,
}

fn handshake_error(e: quinn::ConnectionError, server: &str) -> Error {
    if let quinn::ConnectionError::TransportError(t) = &e {
        let code = u64::from(t.code);
        if (0x100..0x200).contains(&code) {
            // TLS alerts (RFC 9001 §4.8): certificate problems are 42..=49.
            let kind = if (0x12a..=0x131).contains(&code) {
                ErrorKind::Certificate
            } else {
                ErrorKind::Tls
            };
            return Error::peer(kind, format!("QUIC TLS handshake with {server} failed"))
                .with_source(e);
        }
    }
    if let quinn::ConnectionError::TimedOut = e {
        return Error::peer_timeout(format!("QUIC handshake with {server} timed out"));
    }
    conn_error(e, "QUIC handshake")
}

/// Longest [`HttpConnection::shutdown`] waits, after letting the connection's tasks run,
/// for the close to be sent (the driver sends it within microseconds when it gets to run).
pub const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// Times [`HttpConnection::shutdown`] yields to the connection's tasks first.
const SHUTDOWN_YIELDS: usize = 4;

/// Starts the client side of HTTP/3 over `flow` (a UDP socket or any tunnel): QUIC to
/// `server_name` with TLS from `tls` (its ALPN is set to `h3`), then our control stream;
/// returns the connection's handle.
pub async fn connect(
    flow: BoxFlow,
    mut info: ConnectionInfo,
    config: &Http3Config,
    tls: &burrow_transport::TlsConfig,
    server_name: &str,
) -> Result<Http3Connection, Error> {
    check_flow(flow.max_datagram_size(), config.initial_mtu)?;
    info.route = flow.describe();
    let crypto = tls.client_config(&[b"h3"])?;
    let quic = QuicClientConfig::try_from(crypto)
        .map_err(|e| Error::user(ErrorKind::Tls, "TLS config unusable for QUIC").with_source(e))?;
    let mut cc = ClientConfig::new(Arc::new(quic));
    cc.transport_config(config.transport()?);
    let describe = flow.describe();
    let socket = FlowSocket::new(flow);
    let failure = socket.failure();
    let endpoint = Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        None,
        socket,
        Arc::new(TokioRuntime),
    )
    .map_err(|e| Error::local_io("creating a QUIC endpoint", e))?;
    let connecting = endpoint
        .connect_with(cc, FLOW_PEER, server_name)
        .map_err(|e| {
            Error::invalid_input(format!("QUIC connect to {server_name}")).with_source(e)
        })?;
    let flow_failed = |why: String| {
        Error::peer(
            ErrorKind::Connect,
            format!("QUIC to {server_name} over {describe} failed: {why}"),
        )
    };
    let conn = tokio::select! {
        r = connecting => match r {
            Ok(c) => c,
            // The endpoint stops when its flow fails; say why rather than "closed".
            Err(e) => return Err(failure.get().map_or_else(|| handshake_error(e, server_name), flow_failed)),
        },
        why = failure.wait() => return Err(flow_failed(why)),
    };
    info.alpn = Some(b"h3".to_vec());
    let ours = Settings {
        max_field_section_size: Some(MAX_FIELD_SECTION_SIZE),
        h3_datagram: true,
        ..Settings::default()
    };
    let side = crate::proto::conn::Side::Client;
    let shared = Shared::start(conn.clone(), ours, side, config.handshake_timeout).await?;
    // quinn's endpoint stops when its flow fails (a killed peer's ICMP port unreachable, a
    // tunnel that ended) but the connection would linger until its idle timeout: close it
    // now, so every stream on it fails at once.
    tokio::spawn(async move {
        tokio::select! {
            why = failure.wait() => {
                tracing::debug!("HTTP/3 to {describe}: the path failed: {why}");
                conn.close(super::stream::code(crate::proto::error::Code::NO_ERROR), why.as_bytes());
            }
            _ = conn.closed() => {}
        }
    });
    Ok(Http3Connection {
        shared,
        _endpoint: endpoint,
        info,
        spare: std::sync::Mutex::new(None),
    })
}

impl Http3Connection {
    /// The peer's SETTINGS, once received (waits at most the configured handshake timeout
    /// from the connection's start).
    pub async fn peer_settings(&self) -> Result<Settings, Error> {
        self.shared.peer_settings().await
    }

    /// Largest HTTP Datagram payload the connection can carry now.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.shared.conn.max_datagram_size()
    }

    /// Closes the connection with H3_NO_ERROR.
    pub fn close(&self) {
        self.shared.conn.close(
            super::stream::code(crate::proto::error::Code::NO_ERROR),
            b"",
        );
    }

    async fn open(
        &self,
        head: &RequestHead,
        body: Option<Body>,
    ) -> Result<
        (
            MessageReader,
            quinn::RecvStream,
            Option<quinn::SendStream>,
            u64,
        ),
        Error,
    > {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (mut send, recv) = match spare {
            Some(s) => s,
            None => self
                .shared
                .conn
                .open_bi()
                .await
                .map_err(|e| conn_error(e, "opening a request stream"))?,
        };
        let id = send.id().index() * 4; // client-initiated bidirectional: id = 4 * index
        let goaway = self.shared.goaway.load(Ordering::Acquire);
        if id >= goaway {
            let _ = send.reset(super::stream::code(
                crate::proto::error::Code::REQUEST_CANCELLED,
            ));
            return Err(Error::peer(
                ErrorKind::NotProcessed,
                "HTTP/3: the server sent GOAWAY",
            ));
        }
        let frame = headers_frame(&head.fields());
        send.write_all(&frame)
            .await
            .map_err(|e| Error::closed("HTTP/3: writing a request head").with_source(e))?;
        let keep = match body {
            Some(b) if b.is_end_stream() => {
                let _ = send.finish();
                None
            }
            Some(b) => {
                tokio::spawn(async move {
                    if let Err(e) = write_body(&mut send, b).await {
                        tracing::debug!("HTTP/3 request body: {e}");
                    }
                });
                None
            }
            None => Some(send),
        };
        Ok((MessageReader::new(Reading::Response), recv, keep, id))
    }
}

/// Reads the final response head, skipping at most
/// [`MAX_INTERIM_RESPONSES`](super::config::MAX_INTERIM_RESPONSES) interim (1xx) ones (more
/// is the peer's protocol error).
async fn final_head(
    reader: &mut MessageReader,
    recv: &mut quinn::RecvStream,
    what: &'static str,
) -> Result<(http::StatusCode, http::HeaderMap), Error> {
    let mut interim = 0;
    loop {
        match next_event(reader, recv, what).await? {
            MessageEvent::Response(s, _) if s.is_informational() => {
                interim += 1;
                if interim > super::config::MAX_INTERIM_RESPONSES {
                    return Err(Error::protocol(format!(
                        "HTTP/3: more than {} interim (1xx) responses",
                        super::config::MAX_INTERIM_RESPONSES
                    )));
                }
            }
            MessageEvent::Response(status, headers) => return Ok((status, headers)),
            _ => return Err(Error::protocol(format!("HTTP/3: {what}: no response head"))),
        }
    }
}

fn request_head(parts: &http::request::Parts) -> Result<RequestHead, Error> {
    // RFC 9114 §4.3.1: :authority without userinfo (or from Host); §4.2: no
    // connection-specific fields.
    let uri = burrow_http_core::target::absolute_uri(parts, "https")?;
    let mut headers = parts.headers.clone();
    burrow_http_core::message::strip_connection_specific(&mut headers);
    headers.remove(HOST);
    Ok(RequestHead {
        method: parts.method.clone(),
        scheme: uri.scheme_str().map(str::to_string),
        authority: burrow_http_core::target::authority(&uri),
        path: Some(uri.path_and_query().map_or("/", |p| p.as_str()).to_string()),
        protocol: None,
        headers,
    })
}

#[async_trait]
impl HttpConnection for Http3Connection {
    async fn send_request(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let (parts, b) = request.into_parts();
        let mut head = request_head(&parts)?;
        let size = b.size_hint().exact().filter(|n| *n > 0);
        burrow_http_core::message::announce_length(&mut head.headers, size);
        let (mut reader, mut recv, _, _) = self.open(&head, Some(b)).await?;
        let (status, headers) = final_head(&mut reader, &mut recv, "awaiting a response").await?;
        let len = burrow_http_core::message::response_length(&parts.method, status, &headers);
        let mut resp = Response::new(body(reader, recv, len));
        *resp.status_mut() = status;
        *resp.version_mut() = Version::HTTP_3;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    async fn open_tunnel(&self, request: TunnelRequest) -> Result<Tunnel, Error> {
        if handshake::needs_settings(&request, Version::HTTP_3) {
            let s = self.peer_settings().await?;
            let allowed = handshake::PeerSettings {
                extended_connect: s.enable_connect_protocol,
                h3_datagram: s.h3_datagram,
            };
            handshake::check_settings(&request, Version::HTTP_3, &allowed)?;
        }
        let th = handshake::request_head(&request, Version::HTTP_3)?;
        let head = RequestHead {
            method: th.method,
            scheme: th.scheme.map(str::to_string),
            authority: Some(th.authority),
            path: th.path,
            protocol: th.protocol,
            headers: th.headers,
        };
        let (mut reader, mut recv, send, id) = self.open(&head, None).await?;
        let send = send.ok_or_else(|| Error::protocol("HTTP/3: no send stream"))?;
        let what = "awaiting a tunnel response";
        let (status, headers) = final_head(&mut reader, &mut recv, what).await?;
        handshake::judge_answer(&request, Version::HTTP_3, status, &headers)?;
        let mut t = Tunnel::new(Box::new(H3Stream::new(reader, recv, send)), status, headers);
        if request.protocol().is_some() {
            t = t.with_datagrams(Box::new(self.shared.datagrams(id)));
        }
        Ok(t)
    }

    fn version(&self) -> Version {
        Version::HTTP_3
    }

    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn is_ready(&self) -> bool {
        !self.is_closed() && self.shared.goaway.load(Ordering::Acquire) == u64::MAX
    }

    fn is_closed(&self) -> bool {
        self.shared.conn.close_reason().is_some()
    }

    fn can_open_tunnel(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.is_some() {
            return true;
        }
        // A stream is opened at once when the peer's MAX_STREAMS allows one more, and
        // waits otherwise: try once, keep what it gives for the next request.
        let mut open = std::pin::pin!(self.shared.conn.open_bi());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match open.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Ok(pair)) => {
                *spare = Some(pair);
                true
            }
            _ => false,
        }
    }

    async fn shutdown(&self) {
        self.close();
        // The connection's driver task sends CONNECTION_CLOSE the next time it runs: let
        // it run before the caller goes on (and perhaps exits), with a short bound rather
        // than the whole draining period (3 PTOs) that `wait_idle` would wait for.
        for _ in 0..SHUTDOWN_YIELDS {
            tokio::task::yield_now().await;
        }
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, self._endpoint.wait_idle()).await;
    }
}

/// HTTP/3 as a [`DatagramProtocol`](burrow_http_core::DatagramProtocol) for the
/// [`Client`](burrow_http_core::Client).
#[derive(Clone, Debug, Default)]
pub struct Http3 {
    /// Settings for connections this protocol opens.
    pub config: Http3Config,
}

#[async_trait]
impl burrow_http_core::DatagramProtocol for Http3 {
    fn alpn(&self) -> &'static [u8] {
        b"h3"
    }

    async fn handshake(
        &self,
        flow: BoxFlow,
        server_name: &str,
        tls: &burrow_transport::TlsConfig,
        info: ConnectionInfo,
    ) -> Result<Arc<dyn HttpConnection>, Error> {
        let route = info.route.clone();
        let mut c = connect(flow, info, &self.config, tls, server_name).await?;
        c.info.route = route;
        Ok(Arc::new(c))
    }
}
