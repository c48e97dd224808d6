//! The HTTP listeners' side of a request (any version): the request goes to a
//! [`Decision`], whose answers go back through the connection's [`Respond`].

use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::{driver, Body, ConnectProtocol, Respond, ServerRequest};
use burrow_transport::{Error, ErrorKind, Target};
use http::Response;

use super::decision::{Answer, Decision, Input, ResponseHead};
use super::run::{Accepted, Guard, Run, Side};
use super::{Peer, Proxy};

/// Runs one request taken from any server connection; `guard` is held until its work
/// (and a forwarded response's body) is done.
pub(crate) async fn handle(proxy: Arc<Proxy>, sr: ServerRequest, peer: Peer, guard: Guard) {
    let ServerRequest { request, respond } = sr;
    let (head, body) = request.into_parts();
    let protocol = head
        .extensions
        .get::<ConnectProtocol>()
        .map(|p| p.0.clone());
    let state = proxy.state();
    let version = head.version;
    let inside_client = head.extensions.get::<super::InsideClient>().cloned();
    let mut d = Decision::new(state.policy.clone(), false);
    d.handle(Input::Request { head, protocol }, driver::now());
    let mut side = HttpSide {
        respond: Some(respond),
        body: Some(body),
    };
    let mut run = Run::new(proxy.clone(), state, peer.addr, Some(version), vec![guard]);
    run.client_abort = peer.abort;
    run.inside_client = inside_client;
    run.execute(&mut d, &mut side).await;
}

struct HttpSide {
    respond: Option<Box<dyn Respond>>,
    body: Option<Body>,
}

fn response(head: ResponseHead, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = head.status;
    *r.headers_mut() = head.headers;
    r
}

#[async_trait]
impl Side for HttpSide {
    async fn refuse(&mut self, answer: Answer) {
        if let (Some(r), Answer::Http(head, text)) = (self.respond.take(), answer) {
            let _ = r.send_response(response(head, Body::from(text))).await;
        }
    }

    async fn accept(&mut self, answer: Answer, _bound: Option<Target>) -> Result<Accepted, Error> {
        let (Some(r), Answer::Http(head, _)) = (self.respond.take(), answer) else {
            return Err(Error::local(ErrorKind::InvalidInput, "nothing to accept"));
        };
        let mut resp = Response::new(());
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        r.accept_tunnel(resp).await.map(Accepted::Tunnel)
    }

    async fn respond(&mut self, head: ResponseHead, body: Body) {
        if let Some(r) = self.respond.take() {
            let _ = r.send_response(response(head, body)).await;
        }
    }

    async fn cancelled(&mut self) {
        match self.respond.as_mut() {
            Some(r) => std::future::poll_fn(|cx| r.poll_cancelled(cx)).await,
            None => std::future::pending().await,
        }
    }

    fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or_default()
    }

    fn local_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }
}
