//! A decision's tunnel steps: a SOCKS request, the rules and the dial once reserved, the
//! acceptance once dialed.

use std::time::Instant;

use burrow_http_core::handshake::{self, TunnelAsk};
use burrow_transport::Target;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, StatusCode};

use super::super::answers::denied;
use super::super::dial::Dial;
use super::super::hooks::{End, TunnelKind, What};
use super::{
    dial_refusal, no_target, refusal, socks_reply, Answer, Command, Decision, Framing, HookCall,
    InterceptRules, Plan, ResponseHead, Stage, Transport,
};
use crate::socks::wire::{Command as SocksCommand, Reply};

impl Decision {
    pub(super) fn socks(&mut self, command: SocksCommand, target: Target, now: Instant) {
        // The SOCKS core checked the credentials.
        self.summary.user = self.policy.auth.as_ref().map(|c| c.user.clone());
        self.summary.what = What::Tunnel(TunnelKind::Socks);
        self.summary.target = Some(target.clone());
        let plan = match command {
            SocksCommand::Connect => match self.policy.judge.check(&target) {
                Ok(()) => Plan::Tcp(target),
                Err(d) => {
                    self.summary.error = Some(d.proxy_status().into());
                    return self.refuse(Answer::Socks(Reply::NOT_ALLOWED), now);
                }
            },
            // Each datagram's destination is judged, not the client's expected source
            // in the request (RFC 1928 §7).
            SocksCommand::UdpAssociate => {
                self.summary.what = What::Tunnel(TunnelKind::SocksUdp);
                Plan::SocksUdp
            }
            SocksCommand::Bind => {
                return self.refuse(Answer::Socks(Reply::COMMAND_NOT_SUPPORTED), now)
            }
        };
        self.planned(plan);
    }

    pub(super) fn reserved(&mut self, plan: Plan, now: Instant) {
        let route = self.route;
        self.summary.route = self.policy.route_name(route).to_string();
        let judge = self.policy.judge_of(route);
        let dial = match &plan {
            Plan::Forward(..) if self.buffer_body => {
                // The body is buffered only now that the request holds its share.
                self.buffer_body = false;
                self.stage = Stage::HookingBody(plan);
                self.commands
                    .push_back(Command::Hook(HookCall::RequestBody));
                return;
            }
            Plan::Forward(..) | Plan::Upgrade(..) => return self.send_on(plan, now),
            Plan::Tcp(t) | Plan::ConnectTcp(t, _) | Plan::ConnectUdp(t, _) => {
                // The rules on the target as named before anything is dialed (the dialer
                // judges every address again).
                if let Err(d) = judge.check(t) {
                    self.summary.error = Some(d.proxy_status().into());
                    let a = match self.socks {
                        true => Answer::Socks(Reply::NOT_ALLOWED),
                        false => denied(d),
                    };
                    return self.refuse(a, now);
                }
                let wants = |r: &InterceptRules| r.wants(t);
                if let (Plan::Tcp(t), Some(true)) =
                    (&plan, self.policy.intercept.as_ref().map(wants))
                {
                    // Accepted at once; the origin is reached for each request inside.
                    self.intercept = Some(t.clone());
                    return self.accept(self.success());
                }
                let how = match plan {
                    Plan::Tcp(_) | Plan::ConnectTcp(..) => Transport::Tcp,
                    _ => Transport::Udp,
                };
                Command::Dial(t.clone(), how, route)
            }
            Plan::SocksUdp => Command::Dial(no_target(), Transport::SocksRelay, route),
            // Each packet's destination is judged, not the scope asked for.
            Plan::ConnectIp(scope, _) => Command::Dial(no_target(), Transport::Ip(*scope), route),
        };
        self.commands.push_back(dial);
        self.stage = Stage::Dialing(plan);
    }

    pub(super) fn dialed(&mut self, plan: Plan, r: Result<(), Dial>, now: Instant) {
        if let Err(d) = r {
            self.summary.end = match d {
                Dial::Denied(_) => End::Refused,
                _ => End::Failed,
            };
            let a = match (&plan, self.socks) {
                (_, true) => Answer::Socks(socks_reply(&d)),
                (Plan::Tcp(t) | Plan::ConnectTcp(t, _) | Plan::ConnectUdp(t, _), false) => {
                    dial_refusal(&d, t)
                }
                // No free address in the pool (or no TUN device): RFC 9484 §4.7.1 lets
                // the proxy refuse; 503, as for any exhausted resource.
                (Plan::ConnectIp(..), false) => {
                    let why = match &d {
                        Dial::Failed(e) => e.to_string(),
                        other => format!("{other:?}"),
                    };
                    refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "proxy_internal_error",
                        Some(&why),
                    )
                }
                _ => refusal(StatusCode::BAD_GATEWAY, "proxy_internal_error", None),
            };
            return self.refuse(a, now);
        }
        let accept = match plan {
            // RFC 9298 §3.3 (HTTP/1.1: 101 with Upgrade), §3.4/3.5 (HTTP/2 and HTTP/3:
            // 2xx); Capsule-Protocol: ?1 either way (RFC 9297 §3.4).
            // draft-ietf-httpbis-connect-tcp: the same, after the TCP connection is made.
            Plan::ConnectUdp(_, version)
            | Plan::ConnectTcp(_, version)
            | Plan::ConnectIp(_, version)
                if !self.socks =>
            {
                self.framing = match plan {
                    Plan::ConnectTcp(..) => Framing::TcpCapsules,
                    Plan::ConnectIp(..) => Framing::Ip,
                    _ => Framing::Raw,
                };
                let ask = TunnelAsk::Extended(
                    match self.framing {
                        Framing::TcpCapsules => burrow_http_core::connect_tcp::PROTOCOL,
                        Framing::Ip => burrow_http_core::connect_ip::PROTOCOL,
                        Framing::Raw => "connect-udp",
                    }
                    .into(),
                );
                let (parts, ()) = handshake::accept_head(&ask, version).into_parts();
                let mut headers = parts.headers;
                headers.insert("capsule-protocol", HeaderValue::from_static("?1"));
                let head = ResponseHead {
                    status: parts.status,
                    headers,
                };
                Answer::Http(head, Bytes::new())
            }
            _ => self.success(),
        };
        self.accept(accept);
    }

    /// A tunnel's plain acceptance: SOCKS success, or an empty 200.
    fn success(&self) -> Answer {
        let ok = ResponseHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        };
        match self.socks {
            true => Answer::Socks(Reply::SUCCEEDED),
            false => Answer::Http(ok, Bytes::new()),
        }
    }

    /// Accepts the tunnel with `a`: from now on it ends when the client goes.
    pub(super) fn accept(&mut self, a: Answer) {
        self.answered(&a);
        self.summary.end = End::ClientGone;
        self.stage = Stage::Accepting;
        self.commands.push_back(Command::Accept(a));
    }
}
