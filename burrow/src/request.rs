//! [`RequestBuilder`]: a request being put together, and sending it (redirects included).

use std::time::Duration;

use base64::Engine as _;
use burrow_http_core::Body;
use burrow_transport::{Error, ErrorKind, Result};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use tokio::time::Instant;
use tracing::Instrument;

use crate::proxy::Proxy;
use crate::response::{Response, RouteInfo};
use crate::{redirect, Client};

/// A request being built; nothing is sent before [`send`](Self::send). Errors in what is
/// given (a bad URL or header) are reported by `send`.
#[must_use = "a request is sent only by send()"]
pub struct RequestBuilder {
    client: Client,
    method: Method,
    url: Result<Uri>,
    headers: HeaderMap,
    /// Bytes can be sent again after a 307 or 308 ([`Body::try_clone`]); a stream cannot.
    body: Body,
    timeout: Option<Duration>,
    version: Option<Version>,
    hops: Option<Vec<Proxy>>,
    /// Redirects are followed as a request of this method would be; `method` is sent.
    redirect_as: Option<Method>,
    error: Option<Error>,
}

fn bad_url(url: &str) -> Error {
    Error::invalid_input("not an absolute http or https URL")
        .with_detail(url.chars().take(200).collect::<String>())
}

fn parse_url(url: &str) -> Result<Uri> {
    let u: Uri = url.parse().map_err(|_| bad_url(url))?;
    match u.scheme_str() {
        Some("http") | Some("https") if u.host().is_some() => Ok(u),
        _ => Err(bad_url(url)),
    }
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, url: &str) -> Self {
        RequestBuilder {
            client,
            method,
            url: parse_url(url),
            headers: HeaderMap::new(),
            body: Body::empty(),
            timeout: None,
            version: None,
            hops: None,
            redirect_as: None,
            error: None,
        }
    }

    /// Follows redirects as a `semantic` request would (which ones drop the body and turn
    /// into `GET`), while sending this request's own method on each: curl's `-X` with
    /// `-L`, where `curl -X PUT -d x -L` sends `PUT` again after a 302, without the body
    /// (a POST's would be dropped), and `-X DELETE` stays `DELETE` after a 303.
    pub fn redirect_as(mut self, semantic: Method) -> Self {
        self.redirect_as = Some(semantic);
        self
    }

    pub(crate) fn from_request(client: Client, request: http::Request<Body>) -> Self {
        let (parts, body) = request.into_parts();
        let mut b = RequestBuilder::new(client, parts.method, &parts.uri.to_string());
        b.headers = parts.headers;
        b.body = body;
        b
    }

    fn fail(mut self, e: Error) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Adds a header (appended to any of the same name).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
                self
            }
            _ => self.fail(Error::invalid_input("invalid header name or value")),
        }
    }

    /// Adds headers (appended to any of the same names).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (n, v) in &headers {
            self.headers.append(n, v.clone());
        }
        self
    }

    /// Appends `query` (anything serde serialises as pairs, e.g. `&[("q", "rust")]`) to the
    /// URL's query string, form-encoded.
    pub fn query<T: serde::Serialize + ?Sized>(mut self, query: &T) -> Self {
        let encoded = match serde_urlencoded::to_string(query) {
            Ok(q) => q,
            Err(e) => return self.fail(Error::invalid_input(format!("query: {e}"))),
        };
        if let Ok(u) = &self.url {
            if !encoded.is_empty() {
                let s = u.to_string();
                let sep = if u.query().is_some() { "&" } else { "?" };
                self.url = parse_url(&format!("{s}{sep}{encoded}"));
            }
        }
        self
    }

    /// The body: bytes, a string, or a [`Body`] (any `http_body::Body` through
    /// [`Body::wrap`]) streamed as it is produced.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// A streaming body from any `http_body::Body` (a file reader, a channel, another
    /// client's response body), sent as it is produced; its errors end the request.
    pub fn body_stream<B>(self, body: B) -> Self
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
        B::Error: Into<burrow_transport::BoxError>,
    {
        let body = http_body_util::BodyExt::map_err(body, |e| {
            Error::local(ErrorKind::Io, "the request body failed").with_source(e)
        });
        self.body(Body::wrap(body))
    }

    /// A form-encoded body (`application/x-www-form-urlencoded`).
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        let body = serde_urlencoded::to_string(form);
        self.encoded(body, "application/x-www-form-urlencoded", "form")
    }

    /// A JSON body (`application/json`).
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> Self {
        self.encoded(serde_json::to_vec(json), "application/json", "json")
    }

    /// The body `encoded` (with `content_type` unless one was set), or `what`'s error.
    fn encoded<B: Into<Body>>(
        mut self,
        encoded: std::result::Result<B, impl std::fmt::Display>,
        content_type: &'static str,
        what: &str,
    ) -> Self {
        match encoded {
            Ok(b) => {
                self.set_default(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                self.body = b.into();
                self
            }
            Err(e) => self.fail(Error::invalid_input(format!("{what}: {e}"))),
        }
    }

    /// A `multipart/form-data` body (feature `multipart`).
    #[cfg(feature = "multipart")]
    pub fn multipart(mut self, form: crate::multipart::Form) -> Self {
        match form.body() {
            Ok(b) => {
                self.headers
                    .insert(header::CONTENT_TYPE, form.content_type());
                self.body = Body::from(b);
                self
            }
            Err(e) => self.fail(e),
        }
    }

    fn set_default(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.entry(name).or_insert(value);
    }

    fn authorization(mut self, value: String) -> Self {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.insert(header::AUTHORIZATION, v);
                self
            }
            Err(_) => self.fail(Error::invalid_input(
                "credentials are not a valid header value",
            )),
        }
    }

    /// `Authorization: Bearer <token>` (never shown in logs or `Debug`).
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.authorization(format!("Bearer {token}"))
    }

    /// `Authorization: Basic` (RFC 7617; never shown in logs or `Debug`).
    pub fn basic_auth(
        self,
        user: impl std::fmt::Display,
        password: Option<impl std::fmt::Display>,
    ) -> Self {
        let pass = password.map(|p| p.to_string()).unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        self.authorization(format!("Basic {b64}"))
    }

    /// A deadline for this request as a whole, instead of the client's.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Speaks this HTTP version to the origin, whatever the client's policy: `HTTP_11` (or
    /// older) is HTTP/1.1 only, `HTTP_2` is HTTP/2 with prior knowledge (only `h2` offered
    /// over TLS), `HTTP_3` is HTTP/3 only.
    pub fn version(mut self, v: Version) -> Self {
        self.version = Some(v);
        self
    }

    /// Sends this request through `hops` (nearest first; empty for direct) instead of the
    /// route the client would choose. Redirects keep these hops.
    pub fn route(mut self, hops: Vec<Proxy>) -> Self {
        self.hops = Some(hops);
        self
    }

    /// Sends the request, follows redirects as the client's policy says, and returns the
    /// response once its head has arrived.
    pub async fn send(self) -> Result<Response> {
        let timeout = self.timeout.or(self.client.inner.timeout);
        let deadline = timeout.map(|d| Instant::now() + d);
        match deadline {
            Some(at) => match tokio::time::timeout_at(at, self.send_inner(Some(at))).await {
                Ok(r) => r,
                Err(_) => Err(timed_out(timeout.unwrap_or_default())),
            },
            None => self.send_inner(None).await,
        }
    }

    async fn send_inner(self, deadline: Option<Instant>) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let shown = self.url.as_ref().map(shown_url).unwrap_or_default();
        let span = tracing::debug_span!("request", method = %self.method, url = %shown);
        self.exchange(deadline).instrument(span).await
    }

    async fn exchange(self, deadline: Option<Instant>) -> Result<Response> {
        let inner = self.client.inner.clone();
        let mut url = self.url?;
        // What is sent, when it is not what redirects follow.
        let sent = self.redirect_as.as_ref().map(|_| self.method.clone());
        let mut method = self.redirect_as.unwrap_or(self.method);
        let mut headers = self.headers;
        for (n, v) in &inner.headers {
            if !headers.contains_key(n) {
                headers.insert(n.clone(), v.clone());
            }
        }
        let mut body = self.body;
        let mut history = std::collections::VecDeque::new();
        let mut followed = 0;
        let decoding = inner.decompress && crate::decode::offer(&mut headers);
        loop {
            let hops = match &self.hops {
                Some(h) => h.clone(),
                None => inner.choice.hops(&url),
            };
            // An `http://` URL through an HTTP/1.1 proxy is forwarded to it, as curl does.
            let forward = hops.last().is_some_and(|h| h.forwards(&url, self.version));
            let http = match forward {
                true => inner.forwarder_for(&hops)?,
                false => inner.client_for(&hops, self.version)?,
            };
            let route = RouteInfo::of(&hops, forward);
            let started = Instant::now();
            // A body that can be sent again is kept for a 307 or 308; a stream goes once.
            let again = body.try_clone();
            let mut req = http::Request::new(std::mem::take(&mut body));
            *req.method_mut() = sent.clone().unwrap_or_else(|| method.clone());
            *req.uri_mut() = url.clone();
            *req.headers_mut() = headers.clone();
            // The jar's cookies for this URL, unless the caller set `Cookie` (and kept it:
            // a redirect to another origin drops it), as reqwest does.
            #[cfg(feature = "cookies")]
            if let (Some(jar), false) = (&inner.jar, headers.contains_key(header::COOKIE)) {
                if let Some(v) = jar.cookies(&url) {
                    req.headers_mut().insert(header::COOKIE, v);
                }
            }
            let resp = http.request(req).await.map_err(|e| {
                tracing::debug!(%route, error = %e, "request failed");
                // A forward proxy not reached is that hop's failure, not the origin's.
                let reaching = matches!(
                    e.kind(),
                    ErrorKind::Resolve
                        | ErrorKind::Connect
                        | ErrorKind::Tls
                        | ErrorKind::Certificate
                );
                match (forward && reaching, hops.last()) {
                    (true, Some(p)) => e.reaching_proxy().at_hop(p.url.hop(hops.len() - 1)),
                    _ => e,
                }
            })?;
            #[cfg(feature = "cookies")]
            if let Some(jar) = &inner.jar {
                jar.store(resp.headers(), &url);
            }
            tracing::debug!(
                %route,
                status = resp.status().as_u16(),
                version = ?resp.version(),
                head_ms = started.elapsed().as_millis() as u64,
                "response"
            );
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let next = match inner.redirect.follows(followed) {
                true => redirect::next(&inner.redirect, resp.status(), location, &method, &url)?,
                false => None,
            };
            let Some(next) = next.filter(|n| !n.keep_body || again.is_some()) else {
                let head = *sent.as_ref().unwrap_or(&method) == Method::HEAD;
                let resp = match decoding && !head {
                    true => crate::decode::decode(resp),
                    false => resp,
                };
                let mut r = Response::new(resp, url, route, deadline, inner.read_timeout);
                r.history = history.into();
                r.redirects = followed;
                return Ok(r);
            };
            if let Some(e) = inner.redirect.check(followed) {
                return Err(e);
            }
            followed += 1;
            if history.len() == redirect::MAX_REDIRECT_HISTORY {
                history.pop_front();
            }
            history.push_back(crate::response::Redirected {
                url: url.clone(),
                status: resp.status(),
                version: resp.version(),
                headers: resp.headers().clone(),
                spelling: resp.extensions().get().cloned(),
            });
            tracing::debug!(status = resp.status().as_u16(), to = %shown_url(&next.url), "following a redirect");
            redirect::strip(
                &inner.redirect,
                &mut headers,
                &url,
                &next.url,
                next.keep_body,
            );
            body = match (next.keep_body, again) {
                (true, Some(b)) => b,
                _ => Body::empty(),
            };
            method = next.method;
            url = next.url;
        }
    }
}

/// The URL as logs show it: no userinfo, no query (either may carry a secret).
fn shown_url(u: &Uri) -> String {
    let authority = burrow_http_core::target::authority(u).unwrap_or_default();
    format!(
        "{}://{authority}{}",
        u.scheme_str().unwrap_or("http"),
        u.path()
    )
}

fn timed_out(d: Duration) -> Error {
    Error::local(
        ErrorKind::Timeout,
        format!("the request took longer than {d:?}"),
    )
}
