//! What happens to a response body on its way to the user: content decoding (gzip,
//! deflate, brotli, zstd; each a feature, all on by default) and the deadlines (the
//! request's total deadline and the per-read timeout).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use burrow_http_core::Body;
use burrow_transport::{Error, ErrorKind};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, RANGE,
};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The codings this build decodes, as sent in `Accept-Encoding` (empty: none).
pub(crate) fn accepted() -> &'static str {
    const ALL: &[(&str, bool)] = &[
        ("gzip", cfg!(feature = "gzip")),
        ("deflate", cfg!(feature = "deflate")),
        ("br", cfg!(feature = "brotli")),
        ("zstd", cfg!(feature = "zstd")),
    ];
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        ALL.iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Adds `Accept-Encoding` unless the request has one or asks for a range (a range of the
/// encoded bytes cannot be decoded alone), as reqwest does. Returns whether it did: only
/// then is the response decoded (a caller who asked for an encoding gets it as sent).
pub(crate) fn offer(headers: &mut HeaderMap) -> bool {
    let a = accepted();
    if a.is_empty() || headers.contains_key(ACCEPT_ENCODING) || headers.contains_key(RANGE) {
        return false;
    }
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(a));
    true
}

/// What content decoding took from a response ([`Response::decoded`](crate::Response::decoded)):
/// the fields that described the encoded bytes, and how many of those bytes were read.
#[derive(Clone, Debug)]
pub struct Decoded {
    headers: HeaderMap,
    encoded: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Decoded {
    /// `Content-Encoding` and `Content-Length` as they came (removed from the response's
    /// headers: they describe the encoded bytes, not the body read).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The encoded bytes read so far (curl's `size_download` with `--compressed`).
    pub fn encoded_bytes(&self) -> u64 {
        self.encoded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Decodes `resp`'s body if it has one coding this build knows; the `Content-Encoding` and
/// `Content-Length` fields go with it (they described the encoded bytes), kept in a
/// [`Decoded`] among the response's extensions.
pub(crate) fn decode(resp: http::Response<Body>) -> http::Response<Body> {
    let coding = match resp
        .headers()
        .get_all(CONTENT_ENCODING)
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [one] => one.to_str().unwrap_or("").trim().to_ascii_lowercase(),
        _ => return resp,
    };
    // No content (204, 304, an empty body) has nothing to decode: an empty gzip stream
    // is not a valid one.
    let empty = resp.status() == http::StatusCode::NO_CONTENT
        || resp.status() == http::StatusCode::NOT_MODIFIED
        || http_body::Body::is_end_stream(resp.body());
    if empty || !knows(&coding) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let mut removed = HeaderMap::new();
    for name in [CONTENT_ENCODING, CONTENT_LENGTH] {
        for v in parts.headers.get_all(&name) {
            removed.append(name.clone(), v.clone());
        }
        parts.headers.remove(name);
    }
    let encoded = std::sync::Arc::<std::sync::atomic::AtomicU64>::default();
    let counted = encoded.clone();
    let body = Body::wrap(http_body_util::BodyExt::map_frame(body, move |f| {
        if let Some(d) = f.data_ref() {
            counted.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        f
    }));
    parts.extensions.insert(Decoded {
        headers: removed,
        encoded,
    });
    http::Response::from_parts(parts, decoder(&coding, body))
}

fn knows(coding: &str) -> bool {
    let built = [
        ("gzip", cfg!(feature = "gzip")),
        ("x-gzip", cfg!(feature = "gzip")),
        ("deflate", cfg!(feature = "deflate")),
        ("br", cfg!(feature = "brotli")),
        ("zstd", cfg!(feature = "zstd")),
    ];
    built.iter().any(|(c, on)| *on && *c == coding)
}

#[cfg(any(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
))]
fn decoder(coding: &str, body: Body) -> Body {
    use futures_util::TryStreamExt;
    use tokio::io::AsyncRead;
    fn reader(body: Body) -> impl tokio::io::AsyncBufRead + Send + Sync {
        tokio_util::io::StreamReader::new(
            http_body_util::BodyDataStream::new(body).map_err(std::io::Error::from),
        )
    }
    use async_compression::tokio::bufread as d;
    let decoded: Pin<Box<dyn AsyncRead + Send + Sync>> = match coding {
        #[cfg(feature = "gzip")]
        "gzip" | "x-gzip" => Box::pin(d::GzipDecoder::new(reader(body))),
        #[cfg(feature = "deflate")]
        "deflate" => Box::pin(d::ZlibDecoder::new(reader(body))),
        #[cfg(feature = "brotli")]
        "br" => Box::pin(d::BrotliDecoder::new(reader(body))),
        #[cfg(feature = "zstd")]
        "zstd" => Box::pin(d::ZstdDecoder::new(reader(body))),
        // `decode` asked `knows` first.
        _ => return body,
    };
    let what = coding.to_owned();
    let frames = tokio_util::io::ReaderStream::new(decoded)
        .map_ok(Frame::data)
        .map_err(
            move |e| match e.get_ref().is_some_and(|i| i.is::<Error>()) {
                // The body under the decoder failed: that error, as it was.
                true => Error::from_io("the body failed", e),
                false => Error::peer(
                    ErrorKind::Decoding,
                    format!("the {what} body does not decode"),
                )
                .with_source(e),
            },
        );
    Body::wrap(http_body_util::StreamBody::new(frames))
}

#[cfg(not(any(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
)))]
fn decoder(_coding: &str, body: Body) -> Body {
    body
}

/// A body that fails with [`ErrorKind::Timeout`] when the request's deadline passes or a
/// read waits longer than the read timeout.
pub(crate) struct Timed {
    inner: Body,
    deadline: Option<Instant>,
    read_timeout: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timed {
    pub(crate) fn wrap(
        inner: Body,
        deadline: Option<Instant>,
        read_timeout: Option<Duration>,
    ) -> Body {
        if deadline.is_none() && read_timeout.is_none() {
            return inner;
        }
        Body::wrap(Timed {
            inner,
            deadline,
            read_timeout,
            sleep: None,
        })
    }

    fn next_deadline(&self) -> Instant {
        let read = self.read_timeout.map(|d| Instant::now() + d);
        match (self.deadline, read) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // `wrap` made this only with one of them.
            (None, None) => Instant::now() + Duration::from_secs(u64::from(u32::MAX)),
        }
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
            self.sleep = None;
            return Poll::Ready(f);
        }
        if self.sleep.is_none() {
            let at = self.next_deadline();
            self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
        }
        match self.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.sleep = None;
                let overall = self.deadline.is_some_and(|d| d <= Instant::now());
                Poll::Ready(Some(Err(Error::local(
                    ErrorKind::Timeout,
                    if overall {
                        "the request's deadline passed while reading the body".to_string()
                    } else {
                        format!(
                            "no body data for {:?} (the read timeout)",
                            self.read_timeout.unwrap_or_default()
                        )
                    },
                ))))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
