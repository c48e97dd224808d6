//! An HTTP/3 connection's state outside its request streams, sans-I/O: which
//! unidirectional streams the peer may open (one control stream, QPACK streams, no push
//! streams without MAX_PUSH_ID, unknown types aborted — RFC 9114 §6.2), its control stream
//! (SETTINGS first and once, GOAWAY ids that never grow — §6.2.1, §5.2), what its QPACK
//! encoder stream may say (nothing that refers to a dynamic table we did not allow), and the
//! deadline for its SETTINGS.
//!
//! ```text
//!  AwaitingSettings --SETTINGS--> Open --GOAWAY(id)--> Open(goaway ≤ id) ...
//!     | deadline: NoSettings (+ Close(H3_MISSING_SETTINGS) on a server)
//!     any connection error: Close(code)  (then nothing more)
//! ```
//!
//! Call contract: tell the state each new unidirectional stream's type with
//! [`handle_uni_stream`](ConnState::handle_uni_stream) and act on its [`UniVerdict`];
//! feed the control stream to [`handle_control`](ConnState::handle_control) (its end to
//! [`handle_control_end`](ConnState::handle_control_end)) and the QPACK encoder stream to
//! [`handle_qpack_encoder`](ConnState::handle_qpack_encoder); run
//! [`handle_timeout`](ConnState::handle_timeout) at [`poll_timeout`](ConnState::poll_timeout);
//! after each input drain [`poll_event`](ConnState::poll_event).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use burrow_transport::Error;
use bytes::Bytes;

use super::error::{Code, H3Error};
use super::settings::Settings;
use super::stream::{uni, ControlEvent, ControlReader};

/// What to do with a unidirectional stream the peer opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UniVerdict {
    /// Its control stream: read it into [`ConnState::handle_control`].
    Control,
    /// Its QPACK encoder stream: read it into [`ConnState::handle_qpack_encoder`].
    QpackEncoder,
    /// Read and drop (its QPACK decoder stream: we never refer to its dynamic table).
    Drain,
    /// Abort reading it with this code (an unknown type, RFC 9114 §6.2).
    Stop(Code),
    /// A connection error: a [`ConnEvent::Close`] is queued.
    Refused,
}

/// What the connection state tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// The peer's SETTINGS, once.
    Settings(Settings),
    /// The peer's GOAWAY: streams from this id on will not be processed.
    GoAway(u64),
    /// The peer's SETTINGS did not come within this time (what waits for them fails with
    /// [`no_settings`]).
    NoSettings(Duration),
    /// Close the connection with this error; nothing follows.
    Close(H3Error),
}

/// The error for what waited for SETTINGS that did not come within `waited`.
pub fn no_settings(waited: Duration) -> Error {
    Error::peer_timeout(format!(
        "HTTP/3: no SETTINGS from the peer within {waited:?}"
    ))
}

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We opened it: a peer without SETTINGS fails what needs them.
    Client,
    /// We accepted it: a peer without SETTINGS is closed with H3_MISSING_SETTINGS.
    Server,
}

/// The state (see the module docs for the call contract).
#[derive(Debug)]
pub struct ConnState {
    side: Side,
    control_seen: bool,
    control: ControlReader,
    settings_until: Option<(Instant, Duration)>,
    events: VecDeque<ConnEvent>,
    closed: bool,
}

impl ConnState {
    /// A connection's state from `now`, waiting at most `settings_timeout` for SETTINGS.
    pub fn new(side: Side, now: Instant, settings_timeout: Duration) -> Self {
        ConnState {
            side,
            control_seen: false,
            control: ControlReader::default(),
            settings_until: Some((now + settings_timeout, settings_timeout)),
            events: VecDeque::new(),
            closed: false,
        }
    }

    fn close(&mut self, e: H3Error) {
        if !self.closed {
            self.closed = true;
            self.settings_until = None;
            self.events.push_back(ConnEvent::Close(e));
        }
    }

    /// A new unidirectional stream of type `ty`.
    pub fn handle_uni_stream(&mut self, ty: u64) -> UniVerdict {
        match ty {
            uni::CONTROL if self.control_seen => {
                self.close(H3Error::connection(
                    Code::STREAM_CREATION_ERROR,
                    "second control stream",
                ));
                UniVerdict::Refused
            }
            uni::CONTROL => {
                self.control_seen = true;
                UniVerdict::Control
            }
            uni::QPACK_ENCODER => UniVerdict::QpackEncoder,
            uni::QPACK_DECODER => UniVerdict::Drain,
            uni::PUSH => {
                self.close(H3Error::connection(
                    Code::ID_ERROR,
                    "push stream without MAX_PUSH_ID",
                ));
                UniVerdict::Refused
            }
            _ => UniVerdict::Stop(Code::STREAM_CREATION_ERROR),
        }
    }

    /// Bytes of the peer's control stream.
    pub fn handle_control(&mut self, data: Bytes) {
        if self.closed {
            return;
        }
        self.control.push(data);
        loop {
            match self.control.poll_event() {
                Ok(Some(ControlEvent::Settings(s))) => {
                    self.settings_until = None;
                    self.events.push_back(ConnEvent::Settings(s));
                }
                Ok(Some(ControlEvent::GoAway(id))) => {
                    self.events.push_back(ConnEvent::GoAway(id));
                }
                Ok(None) => return,
                Err(e) => return self.close(e),
            }
        }
    }

    /// The peer's control stream ended: a connection error (RFC 9114 §6.2.1).
    pub fn handle_control_end(&mut self) {
        let e = self.control.closed();
        self.close(e);
    }

    /// Bytes of the peer's QPACK encoder stream.
    pub fn handle_qpack_encoder(&mut self, data: Bytes) {
        if let Err(e) = super::qpack::check_encoder_stream(data) {
            self.close(e);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.settings_until.map(|(t, _)| t)
    }

    /// The SETTINGS deadline passed without them.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((until, waited)) = self.settings_until else {
            return;
        };
        if until > now {
            return;
        }
        self.settings_until = None;
        self.events.push_back(ConnEvent::NoSettings(waited));
        if self.side == Side::Server {
            self.close(H3Error::connection(Code::MISSING_SETTINGS, "no SETTINGS"));
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{self, FrameType};
    use burrow_test_support::playbook;
    use burrow_test_support::playbook::{Tick, Timed, TimedCore};

    /// The connection state's vocabulary: new peer streams and their bytes in; verdicts and
    /// events out.
    #[derive(Debug)]
    enum In {
        Uni(u64),
        Control(Vec<(FrameType, Vec<u8>)>),
        ControlEnd,
        Qpack(&'static [u8]),
    }

    #[derive(Debug, PartialEq)]
    enum Out {
        Verdict(UniVerdict),
        Ev(ConnEvent),
    }

    struct S(ConnState, Vec<Out>);

    impl TimedCore for S {
        type Input = In;
        type Output = Out;
        fn handle(&mut self, i: In, _now: Instant) {
            match i {
                In::Uni(ty) => {
                    let v = self.0.handle_uni_stream(ty);
                    self.1.push(Out::Verdict(v));
                }
                In::Control(frames) => {
                    let mut wire = Vec::new();
                    for (t, p) in frames {
                        frame::encode(t, &p, &mut wire);
                    }
                    self.0.handle_control(Bytes::from(wire));
                }
                In::ControlEnd => self.0.handle_control_end(),
                In::Qpack(b) => self.0.handle_qpack_encoder(Bytes::from_static(b)),
            }
            self.collect();
        }
        fn poll_output(&mut self) -> Option<Out> {
            (!self.1.is_empty()).then(|| self.1.remove(0))
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.0.poll_timeout()
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.0.handle_timeout(now);
            self.collect();
        }
    }

    impl S {
        fn collect(&mut self) {
            while let Some(e) = self.0.poll_event() {
                self.1.push(Out::Ev(e));
            }
        }
    }

    fn state(side: Side) -> Timed<S> {
        Timed::new(|now| {
            S(
                ConnState::new(side, now, Duration::from_secs(10)),
                Vec::new(),
            )
        })
    }

    fn settings() -> (FrameType, Vec<u8>) {
        let mut s = Vec::new();
        Settings {
            h3_datagram: true,
            ..Settings::default()
        }
        .encode(&mut s);
        (FrameType::SETTINGS, s)
    }

    fn goaway(id: u64) -> (FrameType, Vec<u8>) {
        let mut g = Vec::new();
        super::super::varint::encode(id, &mut g);
        (FrameType::GOAWAY, g)
    }

    fn close(code: Code, why: &'static str) -> Out {
        Out::Ev(ConnEvent::Close(H3Error::connection(code, why)))
    }

    #[test]
    fn settings_then_goaways_that_never_grow() {
        playbook!(state(Side::Client),
            >> Tick::In(In::Uni(uni::CONTROL)),
            << Out::Verdict(UniVerdict::Control),
            >> Tick::In(In::Control(vec![settings(), goaway(8)])),
            << ?("SETTINGS", |o| matches!(o, Out::Ev(ConnEvent::Settings(s)) if s.h3_datagram)),
            << Out::Ev(ConnEvent::GoAway(8)),
            >> Tick::In(In::Control(vec![goaway(4)])),
            << Out::Ev(ConnEvent::GoAway(4)),
            >> Tick::In(In::Control(vec![goaway(12)])),
            << close(Code::ID_ERROR, "GOAWAY id increased"),
            // Nothing after a close.
            >> Tick::In(In::Control(vec![goaway(0)])),
        );
    }

    #[test]
    fn peer_stream_kinds() {
        playbook!(state(Side::Server),
            >> Tick::In(In::Uni(uni::QPACK_ENCODER)),
            << Out::Verdict(UniVerdict::QpackEncoder),
            >> Tick::In(In::Uni(uni::QPACK_DECODER)),
            << Out::Verdict(UniVerdict::Drain),
            >> Tick::In(In::Uni(0x21)),
            << Out::Verdict(UniVerdict::Stop(Code::STREAM_CREATION_ERROR)),
            >> Tick::In(In::Uni(uni::CONTROL)),
            << Out::Verdict(UniVerdict::Control),
            >> Tick::In(In::Uni(uni::CONTROL)),
            << Out::Verdict(UniVerdict::Refused),
            << close(Code::STREAM_CREATION_ERROR, "second control stream"),
        );
        playbook!(state(Side::Client),
            >> Tick::In(In::Uni(uni::PUSH)),
            << Out::Verdict(UniVerdict::Refused),
            << close(Code::ID_ERROR, "push stream without MAX_PUSH_ID"),
        );
        playbook!(state(Side::Client),
            >> Tick::In(In::Uni(uni::CONTROL)),
            << Out::Verdict(UniVerdict::Control),
            >> Tick::In(In::ControlEnd),
            << close(Code::CLOSED_CRITICAL_STREAM, "control stream closed"),
        );
    }

    #[test]
    fn the_settings_deadline_closes_a_server_and_fails_a_clients_waiters() {
        playbook!(state(Side::Server),
            >> Tick::Advance(Duration::from_secs(9)),
            >> Tick::Advance(Duration::from_secs(1)),
            << Out::Ev(ConnEvent::NoSettings(Duration::from_secs(10))),
            << close(Code::MISSING_SETTINGS, "no SETTINGS"),
        );
        playbook!(state(Side::Client),
            >> Tick::Advance(Duration::from_secs(10)),
            << Out::Ev(ConnEvent::NoSettings(Duration::from_secs(10))),
        );
        // SETTINGS in time: no deadline any more.
        playbook!(state(Side::Server),
            >> Tick::In(In::Uni(uni::CONTROL)),
            << Out::Verdict(UniVerdict::Control),
            >> Tick::In(In::Control(vec![settings()])),
            << ?("SETTINGS", |o| matches!(o, Out::Ev(ConnEvent::Settings(_)))),
            >> Tick::Advance(Duration::from_secs(60)),
        );
    }

    #[test]
    fn qpack_encoder_instructions_we_did_not_allow_close_the_connection() {
        playbook!(state(Side::Server),
            >> Tick::In(In::Qpack(&[0x3f, 0xe1, 0x1f])),
            << ?("QPACK_ENCODER_STREAM_ERROR", |o| matches!(o, Out::Ev(ConnEvent::Close(e)) if e.code == Code::QPACK_ENCODER_STREAM_ERROR)),
        );
    }

    #[test]
    fn survives_arbitrary_operation_orders() {
        let mut next = burrow_test_support::rng(0x4833);
        for _ in 0..3000 {
            let ops: Vec<u8> = (0..48).map(|_| next()).collect();
            crate::fuzzing::conn_state_operations(&ops);
        }
    }
}
