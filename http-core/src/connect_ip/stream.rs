//! A CONNECT-IP request stream as a [`Core`]: its capsules both ways. IP packets go as
//! DATAGRAM capsules (context ID 0) where the version has no HTTP/3 datagrams (HTTP/2,
//! HTTP/1.1), and the control capsules (ADDRESS_ASSIGN, ADDRESS_REQUEST,
//! ROUTE_ADVERTISEMENT) go on the stream on every version.
//!
//! Call contract: the [`Core`] one. Commands are [`IpCommand`]s, events [`IpEvent`]s. It
//! has no timer. Unknown capsule types and context IDs are skipped (RFC 9297 §3.2,
//! RFC 9484 §6); a malformed capsule or one over the limit ends the stream after an
//! [`IpEvent::Error`] (RFC 9297 §3.3: the stream is aborted). Capsules waiting to be
//! written are bounded by [`MAX_DATAGRAM_BACKLOG`]: beyond it the core stops taking
//! commands ([`Core::wants_command`]), and a packet given anyway is dropped; control
//! capsules are never dropped (the channel feeding the core bounds them).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{decode, encode, IpCapsule};
use crate::capsule::{
    encode_udp_datagram, split_context, CapsuleDecoder, CapsuleType, MAX_DATAGRAM_BACKLOG,
};
use crate::driver::{Core, Finish};

/// What the application asks of an [`IpStreamCore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpCommand {
    /// Send this IP packet as a DATAGRAM capsule (context ID 0).
    Packet(Bytes),
    /// Send this control capsule.
    Capsule(IpCapsule),
    /// Send this capsule, already encoded.
    Encoded(Bytes),
}

/// What an [`IpStreamCore`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpEvent {
    /// An IP packet (a DATAGRAM capsule with context ID 0).
    Packet(Bytes),
    /// A control capsule.
    Capsule(IpCapsule),
    /// The peer broke the capsule protocol; the stream ends after this.
    Error(String),
}

/// The capsules of one CONNECT-IP stream (see the module docs).
#[derive(Debug)]
pub struct IpStreamCore {
    dec: CapsuleDecoder,
    out: VecDeque<Bytes>,
    packets_waiting: usize,
    error: Option<String>,
    closing: bool,
    ended: bool,
}

impl IpStreamCore {
    /// A stream refusing capsules longer than `max` bytes.
    pub fn new(max: u64) -> Self {
        IpStreamCore {
            dec: CapsuleDecoder::new(max),
            out: VecDeque::new(),
            packets_waiting: 0,
            error: None,
            closing: false,
            ended: false,
        }
    }
}

impl Core for IpStreamCore {
    type Command = IpCommand;
    type Event = IpEvent;

    fn read_buffer(&mut self) -> &mut BytesMut {
        self.dec.read_buffer()
    }

    fn handle_read(&mut self, n: usize, _now: Instant) {
        if n == 0 {
            if self.dec.finish().is_err() && self.error.is_none() {
                self.error = Some("the stream ended inside a capsule".into());
            }
            self.ended = true;
        }
    }

    fn handle_command(&mut self, c: IpCommand, _now: Instant) {
        let mut b = BytesMut::new();
        match c {
            IpCommand::Packet(p) => {
                // A stream that does not take packets fast enough drops them, as a
                // congested link would.
                if self.packets_waiting >= MAX_DATAGRAM_BACKLOG {
                    return;
                }
                self.packets_waiting += 1;
                encode_udp_datagram(&p, &mut b);
            }
            IpCommand::Capsule(c) => {
                let mut v = Vec::new();
                encode(&c, &mut v);
                b = BytesMut::from(&v[..]);
            }
            IpCommand::Encoded(e) => b = BytesMut::from(&e[..]),
        }
        self.out.push_back(b.freeze());
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_io_error(&mut self, _error: crate::Error, _now: Instant) {
        self.ended = true;
    }

    fn handle_app_closed(&mut self, _now: Instant) {
        self.closing = true;
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        let b = self.out.pop_front()?;
        // Control capsules start with a type other than DATAGRAM's 0x00.
        if b.first() == Some(&0) {
            self.packets_waiting = self.packets_waiting.saturating_sub(1);
        }
        Some(b)
    }

    fn poll_event(&mut self) -> Option<IpEvent> {
        if let Some(e) = self.error.take() {
            self.ended = true;
            return Some(IpEvent::Error(e));
        }
        while !self.ended {
            let c = match self.dec.poll_capsule() {
                Ok(Some(c)) => c,
                Ok(None) => return None,
                Err(e) => {
                    self.ended = true;
                    return Some(IpEvent::Error(e.to_string()));
                }
            };
            if c.ty == CapsuleType::DATAGRAM {
                match split_context(c.value) {
                    Ok((0, p)) => return Some(IpEvent::Packet(p)),
                    Ok(_) => continue,
                    Err(e) => {
                        self.ended = true;
                        return Some(IpEvent::Error(e.to_string()));
                    }
                }
            }
            match decode(c.ty, &c.value) {
                Ok(Some(ip)) => return Some(IpEvent::Capsule(ip)),
                Ok(None) => continue,
                Err(e) => {
                    self.ended = true;
                    return Some(IpEvent::Error(format!("CONNECT-IP capsule: {e}")));
                }
            }
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_read(&self) -> bool {
        !self.ended
    }

    /// Commands wait in the application's channel while [`MAX_DATAGRAM_BACKLOG`]
    /// capsules wait to be written: back-pressure rather than loss.
    fn wants_command(&self) -> bool {
        self.out.len() < MAX_DATAGRAM_BACKLOG
    }

    fn finish(&self) -> Finish {
        if self.ended || self.closing {
            Finish::Close
        } else {
            Finish::Running
        }
    }
}
