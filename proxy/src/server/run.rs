//! Running a [`Decision`]'s commands for any listener: the listener's side (answering its
//! client, accepting its tunnel, noticing it give up) is a [`Side`]; reserving, dialing,
//! forwarding and relaying are the same for all. Nothing here decides: every refusal,
//! status and deadline comes from the decision core.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use burrow_http_core::{driver, Body};
use burrow_transport::{BoxFlow, BoxStream, Error, Target};

use super::decision::{Answer, Command, Decision, Full, Input, ResponseHead, Transport, Work};
use super::{association, relay::relay, Proxy};
use crate::flows;

/// What a request holds while it is served (its connection's in-flight token, its slot,
/// its client's share): released when the work ends, which for a forwarded request is when
/// its response body has been sent or dropped.
pub(crate) type Guard = Box<dyn Send + Sync>;

/// The client's end of an accepted tunnel.
pub(crate) enum Accepted {
    /// A byte stream: a CONNECT tunnel, or a SOCKS connection past its reply.
    Stream(BoxStream),
    /// An HTTP tunnel that may carry datagrams (CONNECT-UDP).
    Tunnel(burrow_http_core::Tunnel),
}

/// What was reached for the client.
pub(crate) enum Reached {
    Stream(BoxStream),
    Flow(BoxFlow),
    Relay(tokio::net::UdpSocket),
}

/// A listener's side of a request.
#[async_trait]
pub(crate) trait Side: Send {
    /// Answers the client with a refusal.
    async fn refuse(&mut self, answer: Answer);
    /// Accepts the tunnel; `bound` is the relay's address for a SOCKS UDP association.
    async fn accept(&mut self, answer: Answer, bound: Option<Target>) -> Result<Accepted, Error>;
    /// Gives the client a forwarded response.
    async fn respond(&mut self, head: ResponseHead, body: Body);
    /// Resolves when the client gives up on the request.
    async fn cancelled(&mut self);
    /// The request body, for forwarding.
    fn take_body(&mut self) -> Body;
    /// The address the client reached the proxy at.
    fn local_addr(&self) -> Option<std::net::SocketAddr>;
}

/// A request's work in progress: what it holds, reached and accepted.
pub(crate) struct Run<'a> {
    pub proxy: &'a Proxy,
    pub peer: std::net::SocketAddr,
    pub guards: Vec<Guard>,
    reached: Option<Reached>,
    accepted: Option<Accepted>,
    response: Option<Body>,
    tunnel: bool,
}

impl<'a> Run<'a> {
    /// Work for a request from `peer`, holding `guards` until it ends.
    pub fn new(proxy: &'a Proxy, peer: std::net::SocketAddr, guards: Vec<Guard>) -> Self {
        Run {
            proxy,
            peer,
            guards,
            reached: None,
            accepted: None,
            response: None,
            tunnel: false,
        }
    }

    /// Runs the decision's commands until it is done.
    pub async fn execute(mut self, d: &mut Decision, side: &mut impl Side) {
        let stats = &self.proxy.stats;
        while let Some(c) = d.poll_command() {
            let input = match c {
                Command::Refuse(a) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    side.refuse(a).await;
                    continue;
                }
                Command::Reserve(w) => Input::Reserved(self.reserve(w)),
                Command::Dial(t, how) => match self.wait(d, Wait::Dial(t, how), side).await {
                    Some(i) => i,
                    None => continue,
                },
                Command::Forward(head, _) => match self.wait(d, Wait::Forward(head), side).await {
                    Some(i) => i,
                    None => continue,
                },
                Command::Accept(a) => Input::Accepted(self.accept(a, side).await),
                Command::Relay => {
                    self.relay().await;
                    Input::Relayed
                }
                Command::Respond(head) => {
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    let body = Body::wrap(Guarded {
                        inner: self.response.take().unwrap_or_default(),
                        _guards: std::mem::take(&mut self.guards),
                    });
                    side.respond(*head, body).await;
                    continue;
                }
                // The work that waited was dropped when the wait ended.
                Command::Abandon => continue,
                Command::Done => break,
            };
            d.handle(input, driver::now());
        }
        if self.tunnel {
            stats.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn reserve(&mut self, w: Work) -> Result<(), Full> {
        let p = self.proxy;
        let share = p.clients.work(self.peer.ip()).ok_or(Full::Client)?;
        let slots = match w {
            Work::Tunnel => &p.tunnel_slots,
            Work::Request => &p.request_slots,
        };
        let slot = slots.clone().try_acquire_owned().map_err(|_| Full::Proxy)?;
        self.guards.push(Box::new(share));
        self.guards.push(Box::new(slot));
        if w == Work::Tunnel {
            self.tunnel = true;
            p.stats.tunnels.fetch_add(1, Ordering::Relaxed);
            p.stats.active.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Runs a command that waits (a dial, a forwarded exchange) unless the client gives up
    /// or the decision's deadline passes first; `None` when the deadline passed (the
    /// decision was told).
    async fn wait(&mut self, d: &mut Decision, w: Wait, side: &mut impl Side) -> Option<Input> {
        let body = matches!(w, Wait::Forward(_)).then(|| side.take_body());
        let local = side.local_addr();
        let until = d.poll_timeout();
        let deadline = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let step = tokio::select! {
            s = start(self.proxy, w, body, local) => s,
            _ = side.cancelled() => {
                self.proxy.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return Some(Input::Cancelled);
            }
            _ = deadline => {
                d.handle_timeout(until.map_or_else(driver::now, |t| t.max(driver::now())));
                return None;
            }
        };
        Some(match step {
            Step::Dialed(r) => Input::Dialed(r.map(|x| self.reached = Some(x))),
            Step::Forwarded(r) => Input::Forwarded(r.map(|resp| {
                let (parts, body) = resp.into_parts();
                self.response = Some(body);
                ResponseHead {
                    status: parts.status,
                    headers: parts.headers,
                }
            })),
        })
    }

    async fn accept(&mut self, a: Answer, side: &mut impl Side) -> Result<(), Error> {
        let bound = match &self.reached {
            Some(Reached::Relay(s)) => s.local_addr().ok().map(Target::from),
            _ => None,
        };
        self.accepted = Some(side.accept(a, bound).await?);
        Ok(())
    }

    async fn relay(&mut self) {
        let (p, limits) = (self.proxy, &self.proxy.config.limits);
        let (buffer, idle, stats) = (limits.tunnel_buffer, limits.idle_timeout, &p.stats);
        match (self.accepted.take(), self.reached.take()) {
            (Some(Accepted::Tunnel(t)), Some(Reached::Stream(s))) => {
                relay(t, s, buffer, idle, stats).await;
            }
            (Some(Accepted::Stream(c)), Some(Reached::Stream(s))) => {
                relay(c, s, buffer, idle, stats).await;
            }
            (Some(Accepted::Tunnel(t)), Some(Reached::Flow(f))) => {
                // The client's side as a datagram flow, exactly as burrow's client sees it.
                let c = flows::tunnel_flow(t, limits.max_capsule, "CONNECT-UDP client".into());
                flows::relay_datagrams(&*c, &*f, idle, |up, n| {
                    stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    let bytes = if up {
                        &stats.bytes_up
                    } else {
                        &stats.bytes_down
                    };
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                })
                .await;
            }
            (Some(Accepted::Stream(control)), Some(Reached::Relay(sock))) => {
                association::run(p, control, sock, self.peer).await;
            }
            _ => {}
        }
    }
}

/// A command that waits.
pub(crate) enum Wait {
    Dial(Target, Transport),
    Forward(Box<super::decision::Head>),
}

enum Step {
    Dialed(Result<Reached, super::Dial>),
    Forwarded(Result<http::Response<Body>, Error>),
}

async fn start(
    proxy: &Proxy,
    w: Wait,
    body: Option<Body>,
    local: Option<std::net::SocketAddr>,
) -> Step {
    use super::Dial;
    match w {
        Wait::Dial(t, Transport::Tcp) => {
            Step::Dialed(proxy.dialer.tcp(&t).await.map(Reached::Stream))
        }
        Wait::Dial(t, Transport::Udp) => {
            Step::Dialed(proxy.dialer.udp(&t).await.map(Reached::Flow))
        }
        // The relay listens on the address the client reached us at (RFC 1928 §7).
        Wait::Dial(_, Transport::SocksRelay) => Step::Dialed(match local {
            Some(l) => tokio::net::UdpSocket::bind(std::net::SocketAddr::new(l.ip(), 0))
                .await
                .map(Reached::Relay)
                .map_err(|e| Dial::Failed(Error::local_io("binding the UDP relay", e))),
            None => Err(Dial::Failed(Error::local(
                burrow_transport::ErrorKind::Io,
                "no local address for the UDP relay",
            ))),
        }),
        Wait::Forward(head) => {
            let mut req = http::Request::new(body.unwrap_or_default());
            *req.method_mut() = head.method;
            *req.uri_mut() = head.uri;
            *req.version_mut() = head.version;
            *req.headers_mut() = head.headers;
            Step::Forwarded(proxy.client.request(req).await)
        }
    }
}

/// A response body that holds the request's guards until it ends or is dropped.
struct Guarded {
    inner: Body,
    _guards: Vec<Guard>,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
