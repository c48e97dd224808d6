//! Mapping h2's errors onto burrow's.

use std::io;
use std::sync::{Arc, Mutex};

use burrow_transport::{Error, ErrorKind, Fault};
use h2::Reason;

/// The first I/O error of a connection's transport, as burrow's error (with the hop of a
/// tunnel that broke): h2 keeps only the text of I/O errors, and shares it between streams.
#[derive(Clone, Default)]
pub(crate) struct IoSlot(Arc<Mutex<Option<Error>>>);

impl IoSlot {
    fn record(&self, e: &Error) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e.clone());
        }
    }

    fn get(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Like [`from_h2`], but an I/O error is the transport's own error when one was recorded.
pub(crate) fn from_h2_on(e: h2::Error, what: &'static str, slot: Option<&IoSlot>) -> Error {
    if e.is_io() {
        if let Some(recorded) = slot.and_then(IoSlot::get) {
            return recorded;
        }
    }
    from_h2(e, what)
}

/// A connection's transport, recording its first I/O error in `slot`.
pub(crate) fn recorded(
    inner: burrow_transport::BoxStream,
    slot: IoSlot,
) -> burrow_transport::BoxStream {
    Box::new(burrow_transport::MapIoErr::new(
        inner,
        move |e: io::Error| {
            let be = Error::from_io("HTTP/2: the connection's transport failed", e);
            slot.record(&be);
            io::Error::from(be)
        },
    ))
}

/// Converts an h2 error, keeping the HTTP/2 error code (RFC 9113 §7) as the wire code.
pub(crate) fn from_h2(e: h2::Error, what: &'static str) -> Error {
    if e.is_io() {
        let io = e
            .into_io()
            .unwrap_or_else(|| std::io::Error::other("HTTP/2 I/O error"));
        return Error::from_io(format!("HTTP/2: {what}"), io);
    }
    let reason = e.reason();
    let code = reason.map(u32::from).unwrap_or(0);
    let remote = e.is_remote();
    let kind = if e.is_go_away() && remote {
        // h2 fails streams above the GOAWAY's last stream id: the peer never saw them.
        ErrorKind::NotProcessed
    } else {
        match reason {
            Some(Reason::REFUSED_STREAM) if remote => ErrorKind::NotProcessed,
            Some(Reason::CANCEL) => ErrorKind::Cancelled,
            Some(Reason::NO_ERROR) if e.is_reset() => ErrorKind::Cancelled,
            _ => ErrorKind::Protocol,
        }
    };
    let who = if e.is_go_away() {
        "GOAWAY"
    } else if e.is_reset() {
        "RST_STREAM"
    } else {
        "error"
    };
    let name = reason
        .map(|r| format!("{r:?}"))
        .unwrap_or_else(|| "unknown".into());
    // The peer's reset or GOAWAY is the peer's doing; h2 finding fault with what we sent,
    // or our own reset, is ours.
    let fault = if remote && !e.is_library() {
        Fault::Peer
    } else {
        Fault::Local
    };
    Error::new(
        kind,
        fault,
        format!("HTTP/2: {what}: {who} {name} (0x{code:x})"),
    )
    .with_code(burrow_transport::code::H2Reason(code))
    .with_source(e)
}
