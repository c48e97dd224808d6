//! The SOCKS listener's side: the negotiation runs in the sans-I/O [`SocksServer`] on the
//! generic driver (within the handshake deadline), the request goes to a [`Decision`], and
//! its answers become SOCKS replies.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::driver::{self, drive, Collect};
use burrow_http_core::Body;
use burrow_transport::tcp::AbortableTcp;
use burrow_transport::{Error, ErrorKind, Prefixed, Target};
use tokio::net::TcpStream;

use super::decision::{Answer, Decision, Input, ResponseHead};
use super::run::{Accepted, Run, Side};
use super::{Hold, Proxy};
use crate::socks::server::{self, Event, SocksError, SocksServer};
use crate::socks::wire::Reply;

/// Serves one SOCKS client connection.
pub(crate) async fn serve(proxy: Arc<Proxy>, s: TcpStream, from: SocketAddr, hold: Hold) {
    proxy.stats.connections.fetch_add(1, Ordering::Relaxed);
    let local = s.local_addr().ok();
    let limits = &proxy.config.limits;
    // The connection is the tunnel: when the tunnel fails it ends with a RST.
    let (s, abort) = AbortableTcp::new(s);
    let mut core = SocksServer::new(proxy.config.auth.clone())
        .deadline(driver::now(), limits.handshake_timeout);
    let mut events = Collect::default();
    let stream = drive(s, &mut core, &mut events).await;
    let (command, target, stream) = match (events.0.pop(), stream) {
        (
            Some(Ok(Event::Request {
                command, target, ..
            })),
            Some(s),
        ) => (command, target, s),
        // A client that went away or was too slow was not refused.
        (Some(Err(SocksError::Timeout | SocksError::Closed)), _) | (None, _) => return,
        _ => {
            proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let state = proxy.state();
    if state.hooks.client_connected(from).await.is_err() {
        return;
    }
    let mut d = Decision::new(state.policy.clone(), true);
    d.handle(Input::Socks(command, target), driver::now());
    let mut side = SocksSide {
        core,
        stream: Some(stream),
        local,
    };
    let hooks = state.hooks.clone();
    let mut run = Run::new(proxy.clone(), state, from, None, vec![Box::new(hold)]);
    run.client_abort = Some(abort);
    run.execute(&mut d, &mut side).await;
    hooks.client_closed(from).await;
}

struct SocksSide {
    core: SocksServer,
    stream: Option<AbortableTcp>,
    local: Option<SocketAddr>,
}

impl SocksSide {
    /// Sends the reply; the stream comes back after a success.
    async fn reply(&mut self, reply: Reply, bound: Option<Target>) -> Option<AbortableTcp> {
        let s = self.stream.take()?;
        let core = &mut self.core;
        driver::Core::handle_command(core, server::Answer { reply, bound }, driver::now());
        drive(s, core, &mut Collect::default()).await
    }
}

#[async_trait]
impl Side for SocksSide {
    async fn refuse(&mut self, answer: Answer) {
        let reply = match answer {
            Answer::Socks(r) => r,
            Answer::Http(..) => Reply::GENERAL_FAILURE,
        };
        self.reply(reply, None).await;
    }

    async fn accept(&mut self, answer: Answer, bound: Option<Target>) -> Result<Accepted, Error> {
        let Answer::Socks(reply) = answer else {
            return Err(Error::local(ErrorKind::InvalidInput, "not a SOCKS answer"));
        };
        let bound = bound.or_else(|| self.local.map(Target::from));
        let s = self
            .reply(reply, bound)
            .await
            .ok_or_else(|| Error::closed("SOCKS client went away"))?;
        let leftover = self.core.take_leftover();
        Ok(Accepted::Stream(Box::new(Prefixed::new(leftover, s))))
    }

    async fn respond(&mut self, _head: ResponseHead, _body: Body) {}

    async fn cancelled(&mut self) {
        // Not watched while dialing (the stream is the core's until it is answered).
        std::future::pending().await
    }

    fn take_body(&mut self) -> Body {
        Body::empty()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}
