//! [`Response`] and the [`RouteInfo`] it came over.

use std::fmt;

use burrow_http_core::Body;
use burrow_transport::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderMap, StatusCode, Uri, Version};
use tokio::time::Instant;

use crate::proxy::Proxy;

/// The hops a response came through, nearest first. `Display` shows `direct` or the hops'
/// credential-free labels joined by ` > `.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteInfo {
    hops: Vec<String>,
    forwarded: bool,
}

impl RouteInfo {
    pub(crate) fn of(hops: &[Proxy], forwarded: bool) -> RouteInfo {
        RouteInfo {
            hops: hops.iter().map(|h| h.to_string()).collect(),
            forwarded,
        }
    }

    /// Whether the request went to the last hop, an HTTP proxy, in absolute-form (an
    /// `http://` URL; see [`Proxy::tunnel`](crate::Proxy::tunnel)) rather than through a
    /// tunnel to the origin.
    pub fn is_forwarded(&self) -> bool {
        self.forwarded
    }

    /// The hops' labels, nearest first (empty when direct).
    pub fn hops(&self) -> &[String] {
        &self.hops
    }

    /// Whether the origin was reached directly.
    pub fn is_direct(&self) -> bool {
        self.hops.is_empty()
    }
}

impl fmt::Display for RouteInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hops.is_empty() {
            return f.write_str("direct");
        }
        f.write_str(&self.hops.join(" > "))
    }
}

/// A response whose head has arrived; the body is read with [`bytes`](Self::bytes),
/// [`text`](Self::text), [`chunk`](Self::chunk), [`bytes_stream`](Self::bytes_stream) or
/// taken whole with [`into_body`](Self::into_body). Every way of reading it obeys the
/// request's timeout and the client's read timeout, and sees the decoded bytes (the
/// `Content-Encoding` and `Content-Length` of an encoded body are removed).
pub struct Response {
    inner: http::Response<Body>,
    url: Uri,
    route: RouteInfo,
    pub(crate) history: Vec<Redirected>,
    pub(crate) redirects: usize,
}

/// A redirect that was followed on the way to a [`Response`]: its head and the URL it
/// answered (its body was discarded).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Redirected {
    /// The URL of the request that was redirected.
    pub url: Uri,
    /// The redirect's status.
    pub status: StatusCode,
    /// The HTTP version it came in.
    pub version: Version,
    /// Its headers (`Location` among them).
    pub headers: HeaderMap,
    /// How its reason phrase and field names were spelled (HTTP/1.x only).
    pub spelling: Option<burrow_http_core::Spelling>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status())
            .field("version", &self.version())
            .field("url", &self.url)
            .field("route", &self.route.to_string())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// `inner`'s body is read under the request's `deadline` and the `read_timeout`.
    pub(crate) fn new(
        inner: http::Response<Body>,
        url: Uri,
        route: RouteInfo,
        deadline: Option<Instant>,
        read_timeout: Option<std::time::Duration>,
    ) -> Self {
        Response {
            inner: inner.map(|b| crate::decode::Timed::wrap(b, deadline, read_timeout)),
            url,
            route,
            history: Vec::new(),
            redirects: 0,
        }
    }

    /// How many redirects were followed to get here.
    pub fn redirects(&self) -> usize {
        self.redirects
    }

    /// The redirects followed to get here, first first (curl `-L -i` shows their heads);
    /// the last [`MAX_REDIRECT_HISTORY`](crate::MAX_REDIRECT_HISTORY) of them.
    pub fn history(&self) -> &[Redirected] {
        &self.history
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The HTTP version spoken to the origin.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The URL this response is for (the last one, after redirects).
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// What is known about the connection it came on: the nearest peer's address, the
    /// ALPN protocol, the layers under HTTP (e.g. `tls > CONNECT@h2 proxy:443 > tcp`).
    pub fn connection_info(&self) -> Option<&burrow_http_core::ConnectionInfo> {
        self.inner.extensions().get()
    }

    /// What content decoding took away when the body is decoded: the encoded body's
    /// `Content-Encoding` and `Content-Length`, and how many encoded bytes were read.
    pub fn decoded(&self) -> Option<&crate::decode::Decoded> {
        self.inner.extensions().get()
    }

    /// How an HTTP/1.x response spelled its reason phrase and field names, which
    /// [`headers`](Self::headers) does not keep (HTTP/2 and HTTP/3 have no reason and
    /// lowercase names: `None`).
    pub fn spelling(&self) -> Option<&burrow_http_core::Spelling> {
        self.inner.extensions().get()
    }

    /// The hops it came through.
    pub fn route(&self) -> &RouteInfo {
        &self.route
    }

    /// An error carrying the status when it is 4xx or 5xx, the response otherwise.
    pub fn error_for_status(self) -> Result<Response> {
        let s = self.status();
        if s.is_client_error() || s.is_server_error() {
            return Err(Error::protocol(format!("the origin answered {s}")).with_code(s));
        }
        Ok(self)
    }

    /// The next piece of the body, `None` at its end (trailers are skipped).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.inner.body_mut().chunk().await.transpose()
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes> {
        let mut pieces = Vec::new();
        while let Some(c) = self.chunk().await? {
            pieces.push(c);
        }
        if pieces.len() == 1 {
            return Ok(pieces.swap_remove(0));
        }
        let mut out = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
        pieces.iter().for_each(|p| out.extend_from_slice(p));
        Ok(out.freeze())
    }

    /// The whole body as text; bytes that are not UTF-8 become U+FFFD.
    pub async fn text(self) -> Result<String> {
        let b = self.bytes().await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// The whole body parsed as JSON.
    #[cfg(feature = "json")]
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let b = self.bytes().await?;
        serde_json::from_slice(&b)
            .map_err(|e| Error::protocol("the body is not the JSON expected").with_source(e))
    }

    /// The body as a stream of pieces.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes>> + Send {
        http_body_util::BodyDataStream::new(self.inner.into_body())
    }

    /// The body, to read as an `http_body::Body` (the deadlines still apply).
    pub fn into_body(self) -> Body {
        self.inner.into_body()
    }

    /// The `http::Response`, body included.
    pub fn into_http(self) -> http::Response<Body> {
        self.inner
    }
}
