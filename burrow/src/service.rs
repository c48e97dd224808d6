//! The tower and hyper ecosystem: [`Client`] is a `tower::Service<http::Request<B>>`, and
//! [`Connector`] (feature `hyper`) is a `tower::Service<Uri>` whose connections implement
//! hyper's `rt::Read`/`rt::Write` and hyper-util's `Connection`, so hyper-util's client can
//! send through any burrow route.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_http_core::Body;
use burrow_transport::{BoxError, Error, ErrorKind};
use bytes::Bytes;

use crate::Client;

/// The future a [`Client`] returns as a tower service.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>>;

impl<B> tower_service::Service<http::Request<B>> for Client
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Error;
    type Future = ResponseFuture;

    /// Always ready: connections are made (and pooled) per request.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    /// Sends the request as [`Client::execute`] does (route, redirects, timeout).
    fn call(&mut self, req: http::Request<B>) -> ResponseFuture {
        let client = self.clone();
        Box::pin(async move {
            let req = req.map(|b| {
                Body::wrap(http_body_util::BodyExt::map_err(b, |e| {
                    Error::local(ErrorKind::Io, "the request body failed").with_source(e)
                }))
            });
            let resp = client.execute(req).await?;
            Ok(resp.into_http())
        })
    }
}

#[cfg(feature = "hyper")]
pub use self::hyper_connector::{Connector, HyperStream};

#[cfg(feature = "hyper")]
mod hyper_connector {
    use std::io;

    use burrow_http_core::origin;
    use burrow_transport::{tls, BoxStream};
    use http::Uri;
    use hyper_util::client::legacy::connect::{Connected, Connection};
    use hyper_util::rt::TokioIo;
    use tracing::Instrument;

    use super::*;

    /// Opens byte streams to origins over the client's routes (its proxies, `NO_PROXY`,
    /// policy and resolver), with TLS for `https` URIs (ALPN `h2`, `http/1.1`; the client's
    /// trust), for hyper-util's `Client`:
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let burrow = burrow::Client::builder()
    ///     .proxy(burrow::Proxy::parse("socks5h://127.0.0.1:1080")?)
    ///     .build()?;
    /// let hyper = hyper_util::client::legacy::Client::builder(
    ///     hyper_util::rt::TokioExecutor::new(),
    /// )
    /// .build::<_, http_body_util::Empty<bytes::Bytes>>(burrow.connector());
    /// let resp = hyper.get("https://example.com/".parse()?).await?;
    /// # let _ = resp; Ok(()) }
    /// ```
    #[derive(Clone, Debug)]
    pub struct Connector {
        client: Client,
    }

    impl Client {
        /// A connector for hyper-util's client over this client's routes.
        pub fn connector(&self) -> Connector {
            Connector {
                client: self.clone(),
            }
        }
    }

    /// A connection [`Connector`] made: hyper's I/O traits over a burrow stream.
    pub struct HyperStream {
        io: TokioIo<BoxStream>,
        h2: bool,
    }

    impl std::fmt::Debug for HyperStream {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HyperStream").field("h2", &self.h2).finish()
        }
    }

    impl Connection for HyperStream {
        fn connected(&self) -> Connected {
            let c = Connected::new();
            if self.h2 {
                c.negotiated_h2()
            } else {
                c
            }
        }
    }

    impl hyper::rt::Read for HyperStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl hyper::rt::Write for HyperStream {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }

        fn is_write_vectored(&self) -> bool {
            self.io.is_write_vectored()
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
        }
    }

    /// The future of [`Connector`]'s `call`.
    pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<HyperStream, Error>> + Send>>;

    impl tower_service::Service<Uri> for Connector {
        type Response = HyperStream;
        type Error = Error;
        type Future = ConnectFuture;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, uri: Uri) -> ConnectFuture {
            let inner = self.client.inner.clone();
            let hops = inner.choice.hops(&uri);
            let span = tracing::debug_span!("connect", route = %crate::RouteInfo::of(&hops, false));
            Box::pin(
                async move {
                    let (scheme, target) = origin(&uri)?;
                    let route = inner.route_for(&hops);
                    let stream = route.stream.connect(&target).await?.stream;
                    if scheme != "https" {
                        return Ok(HyperStream {
                            io: TokioIo::new(stream),
                            h2: false,
                        });
                    }
                    let cfg = inner.tls.client_config(&[b"h2", b"http/1.1"])?;
                    let (t, alpn) =
                        tls::handshake(stream, &target.host, cfg)
                            .await
                            .map_err(|e| {
                                e.at_hop(burrow_transport::Hop {
                                    index: None,
                                    label: target.to_string(),
                                })
                            })?;
                    let h2 = alpn.as_deref() == Some(b"h2");
                    if alpn.is_some() && !h2 && alpn.as_deref() != Some(b"http/1.1") {
                        return Err(Error::protocol(
                            "the origin chose an ALPN protocol not offered",
                        ));
                    }
                    Ok(HyperStream {
                        io: TokioIo::new(Box::new(t) as BoxStream),
                        h2,
                    })
                }
                .instrument(span),
            )
        }
    }
}
