//! The hook steps of a decision: what the hooks are asked, and what their replies do.

use std::time::Instant;

use burrow_transport::Target;
use http::header::{HeaderValue, HOST};
use http::{HeaderMap, StatusCode};

use super::super::forward::scheme_port;
use super::super::hooks::{self, End, LocalResponse, TunnelKind, What};
use super::{
    no_target, refusal, Answer, Command, Decision, HookCall, Hooked, Plan, ResponseHead, Stage,
};
use crate::socks::wire::Reply;

impl Decision {
    pub(super) fn hook_failed(&mut self, m: &str, now: Instant) {
        self.summary.end = End::Failed;
        let a = if self.socks {
            Answer::Socks(Reply::GENERAL_FAILURE)
        } else {
            refusal(StatusCode::BAD_GATEWAY, "proxy_internal_error", Some(m))
        };
        self.refuse(a, now)
    }

    /// A hook's answer as this client's answer: a SOCKS client gets "not allowed", a
    /// tunnel refused with a success status is 403.
    pub(super) fn local_answer(&self, r: LocalResponse) -> Answer {
        if self.socks {
            return Answer::Socks(Reply::NOT_ALLOWED);
        }
        let tunnel = !matches!(self.summary.what, What::Request { .. });
        let status = if tunnel && r.status.as_u16() < 400 {
            StatusCode::FORBIDDEN
        } else {
            r.status
        };
        let head = ResponseHead {
            status,
            headers: r.headers,
        };
        Answer::Http(head, r.body)
    }

    /// The plan is known: its target picks the route; the hooks see it, or it goes on.
    pub(super) fn planned(&mut self, plan: Plan) {
        let target = plan.target().cloned();
        // Inside an intercepted tunnel, the tunnel's route.
        self.route = match (&self.inside, &target) {
            (Some(i), _) => i.route,
            (None, Some(t)) => self.policy.pick(t),
            (None, None) => 0,
        };
        self.summary.target = target.clone();
        if !self.policy.hooks {
            return self.reserve(plan);
        }
        let call = match &plan {
            // A WebSocket's handshake is a request to the hooks (as mitmproxy shows it):
            // they may change its fields, choose its route, or answer it.
            Plan::Forward(head, ..) | Plan::Upgrade(head, ..) => {
                HookCall::Request(Box::new(hooks::Request {
                    head: (**head).clone(),
                    route: None,
                    buffer_body: false,
                }))
            }
            _ => {
                let kind = match self.summary.what {
                    What::Tunnel(k) => k,
                    What::Request { .. } => TunnelKind::Connect,
                };
                let target = target.unwrap_or_else(no_target);
                HookCall::Tunnel(Box::new(hooks::Tunnel {
                    kind,
                    target,
                    route: None,
                }))
            }
        };
        self.stage = Stage::Hooking(plan);
        self.commands.push_back(Command::Hook(call));
    }

    /// The request or tunnel hooks replied.
    pub(super) fn hooked(&mut self, plan: Plan, h: Hooked, now: Instant) {
        let (plan, route, buffer) = match (plan, h) {
            (Plan::Forward(_, old, v), Hooked::Request(r)) => {
                let hooks::Request {
                    mut head,
                    route,
                    buffer_body,
                } = *r;
                // A new authority is a new target, and the Host that names it.
                let target = match head.uri.authority() {
                    Some(a) if a.as_str() != old.to_string() => {
                        let port = scheme_port(head.uri.scheme_str());
                        match Target::parse_with_default(a.as_str(), port) {
                            Ok(t) if !a.as_str().contains('@') => {
                                if let Ok(h) = HeaderValue::from_str(a.as_str()) {
                                    head.headers.insert(HOST, h);
                                }
                                t
                            }
                            _ => return self.hook_failed("a hook set an invalid URI", now),
                        }
                    }
                    Some(_) => old,
                    None => return self.hook_failed("a hook set a URI without authority", now),
                };
                (Plan::Forward(Box::new(head), target, v), route, buffer_body)
            }
            // A WebSocket goes to the origin its request names: a hook may change its
            // fields and route, not its URI (it has no body to buffer).
            (Plan::Upgrade(_, old, v), Hooked::Request(r)) => {
                let hooks::Request { head, route, .. } = *r;
                let port = scheme_port(head.uri.scheme_str());
                let same = head
                    .uri
                    .authority()
                    .and_then(|a| Target::parse_with_default(a.as_str(), port).ok());
                if same.as_ref() != Some(&old) {
                    return self.hook_failed("a hook cannot send a WebSocket elsewhere", now);
                }
                (Plan::Upgrade(Box::new(head), old, v), route, false)
            }
            (
                plan @ (Plan::Tcp(_)
                | Plan::ConnectTcp(..)
                | Plan::ConnectUdp(..)
                | Plan::ConnectIp(..)
                | Plan::SocksUdp),
                Hooked::Tunnel(t),
            ) => {
                let plan = match plan {
                    Plan::Tcp(_) => Plan::Tcp(t.target.clone()),
                    Plan::ConnectTcp(_, v) => Plan::ConnectTcp(t.target.clone(), v),
                    Plan::ConnectUdp(_, v) => Plan::ConnectUdp(t.target.clone(), v),
                    other => other,
                };
                (plan, t.route, false)
            }
            (_, Hooked::Failed(m)) => return self.hook_failed(&m, now),
            // A reply of another kind: fail closed.
            _ => return self.hook_failed("hooks replied out of turn", now),
        };
        if let Some(inside) = &self.inside {
            // The requests inside an intercepted tunnel go where the tunnel goes.
            let same = matches!(&plan, Plan::Forward(_, t, _) | Plan::Upgrade(_, t, _)
                if Some(t) == self.summary.target.as_ref());
            if !same || route.is_some() {
                let m = "inside an intercepted tunnel a hook cannot send a request elsewhere";
                return self.hook_failed(m, now);
            }
            self.route = inside.route;
        } else if let Some(t) = plan.target() {
            self.summary.target = Some(t.clone());
            self.route = self.policy.pick(t);
        }
        if let Some(name) = route {
            match self.policy.named(&name) {
                Some(r) => self.route = r,
                None => {
                    let m = format!("a hook chose the unknown route {name:?}");
                    return self.hook_failed(&m, now);
                }
            }
        }
        self.buffer_body = buffer;
        self.reserve(plan);
    }
}

/// A buffered body is sent with its length (it may have changed), not chunked.
pub(super) fn set_length(headers: &mut HeaderMap, n: u64) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
}
