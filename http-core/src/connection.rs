//! The version-independent connection traits: client side and server side.

use std::net::SocketAddr;

use async_trait::async_trait;
use http::{Request, Response, Version};

use crate::{Body, Error, Tunnel, TunnelRequest};

/// A request extension: send the request target in absolute-form, as to a forward proxy
/// (RFC 9112 §3.2.2). HTTP/1.1 honours it; the other versions always carry the whole URI.
#[derive(Clone, Copy, Debug, Default)]
pub struct AbsoluteForm;

/// What is known about an HTTP connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionInfo {
    /// The nearest socket peer (the first hop of the route, or the origin when direct).
    pub peer_addr: Option<SocketAddr>,
    /// The negotiated ALPN protocol, if TLS was used.
    pub alpn: Option<Vec<u8>>,
    /// The layers under the HTTP connection, outermost first (e.g. `tls > tcp`).
    pub route: String,
    /// The local address of the socket to the nearest hop, when known.
    pub local_addr: Option<SocketAddr>,
    /// When the steps of establishing this connection ended.
    pub timings: burrow_transport::ConnectTimings,
}

/// The client side of an HTTP connection of any version.
///
/// Object safe: a [`Client`](crate) holds `Arc<dyn HttpConnection>`. Requests on HTTP/1.1
/// connections are served one after another; HTTP/2 and HTTP/3 multiplex them.
#[async_trait]
pub trait HttpConnection: Send + Sync + 'static {
    /// Sends a request and returns the response head with a streamed body. The request URI
    /// must be absolute (scheme and authority) or carry a `Host` header.
    async fn send_request(&self, request: Request<Body>) -> Result<Response<Body>, Error>;

    /// Opens a tunnel. Any 2xx (101 for an HTTP/1.1 Upgrade) is success; anything else is an
    /// [`ErrorKind::ProxyRefused`](crate::ErrorKind::ProxyRefused) carrying the status.
    async fn open_tunnel(&self, request: TunnelRequest) -> Result<Tunnel, Error>;

    /// The HTTP version spoken.
    fn version(&self) -> Version;

    /// What is known about the connection.
    fn info(&self) -> &ConnectionInfo;

    /// Whether the connection can take another request now without waiting.
    fn is_ready(&self) -> bool;

    /// Whether the connection is closed for good (no further request will succeed).
    fn is_closed(&self) -> bool;

    /// Whether a tunnel opened now would start at once. A multiplexed connection answers
    /// `false` when the tunnels it carries already fill the peer's concurrent-stream limit:
    /// a new one would wait until another closes, which for long-lived tunnels may be never,
    /// so a caller sharing the connection should open another. Default: not closed.
    fn can_open_tunnel(&self) -> bool {
        !self.is_closed()
    }

    /// Closes the connection gracefully and waits, briefly, until the peer has been told,
    /// so it can free what it holds for us at once (HTTP/3: CONNECTION_CLOSE with
    /// H3_NO_ERROR). Default: nothing; dropping a connection closes it.
    async fn shutdown(&self) {}
}

/// How a server answers one request: with a response, or by accepting it as a tunnel.
#[async_trait]
pub trait Respond: Send + 'static {
    /// Sends the response (interim 1xx responses are sent by the connection itself).
    async fn send_response(self: Box<Self>, response: Response<Body>) -> Result<(), Error>;

    /// Accepts a CONNECT (or Upgrade, or extended CONNECT) by sending `response` (2xx, or 101
    /// on HTTP/1.1 Upgrade) and returns the tunnel. Bytes the client sent after its request
    /// head are the first bytes read from it.
    async fn accept_tunnel(self: Box<Self>, response: Response<()>) -> Result<Tunnel, Error>;

    /// `Ready` once the client has given up on this request before it was answered (an
    /// HTTP/2 RST_STREAM, an HTTP/3 STOP_SENDING, the connection closing). A handler polls
    /// it while it works for the request (dialing, waiting for an origin) and drops that
    /// work when it fires, so a client resetting streams as fast as it opens them costs the
    /// server no more than the streams themselves. Default: never.
    fn poll_cancelled(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

/// One request received by a server connection, with the means to answer it.
pub struct ServerRequest {
    /// The request; its URI is absolute when the client sent absolute-form or `:authority`,
    /// otherwise origin-form with the `Host` header kept.
    pub request: Request<Body>,
    /// How to answer it.
    pub respond: Box<dyn Respond>,
}

impl std::fmt::Debug for ServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRequest")
            .field("request", &self.request)
            .finish()
    }
}

/// The server side of an HTTP connection of any version: the twin of [`HttpConnection`].
#[async_trait]
pub trait ServerConnection: Send + 'static {
    /// Waits for the next request; `None` when the client has closed the connection cleanly.
    async fn accept(&mut self) -> Option<Result<ServerRequest, Error>>;

    /// The HTTP version spoken.
    fn version(&self) -> Version;

    /// Stops accepting requests: sends GOAWAY on HTTP/2 and HTTP/3, `Connection: close` on
    /// HTTP/1.1; in-flight requests finish.
    fn graceful_shutdown(&mut self);

    /// Closes the connection now, whatever is in flight (after a graceful shutdown found
    /// nothing left, or to drop an idle client). Default: nothing beyond dropping the
    /// connection, which ends HTTP/1.1 and HTTP/2; HTTP/3 sends CONNECTION_CLOSE.
    fn close(&mut self) {}
}
