//! The one driver for burrow's sans-I/O cores over a byte stream, as quinn's
//! `ConnectionDriver` is for quinn-proto: it moves bytes between the stream and a [`Core`],
//! feeds it the time, and carries events and commands between the core and an [`App`]. It
//! decides nothing: every rule lives in the core.
//!
//! One pass of [`drive`], repeated while anything moved:
//!
//! ```text
//!  app.poll_command ──► core.handle_command(now)        (every ready command)
//!  core.poll_event  ──► app.poll_deliver                (until the app says "not now")
//!  core.poll_transmit ─► stream.write, then flush
//!  core.poll_timeout ──► sleep; expired: core.handle_timeout(now)
//!  stream.read ───────► core.read_buffer, core.handle_read(n, now)
//!                       (only when the core wants_read and no event waits for the app)
//!  core.finish() ─────► Close: shut the stream down | Release: hand the stream back
//! ```
//!
//! Back-pressure runs both ways: an event the app cannot take now stays with the driver,
//! which stops reading until it is taken (commands and timers still run), and a core that
//! does not want to read is not read for.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::Error;

/// Most room made in the read buffer before a read, once reads keep filling what they get.
pub const READ_CHUNK: usize = 256 * 1024;
/// Room made before the first read and after small ones: a connection that exchanges
/// short messages (a request head, a tunnel's CONNECT) never takes [`READ_CHUNK`]. Each
/// read that fills its room doubles it, up to [`READ_CHUNK`]; a read of under a quarter
/// halves it again.
pub const FIRST_READ_CHUNK: usize = 8 * 1024;
/// Pieces smaller than this are copied together before a write; larger ones go out as they
/// are.
pub const COALESCE: usize = 16 * 1024;

/// Where a core's use of its stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Still speaking.
    Running,
    /// Done: write what is queued, shut the stream down.
    Close,
    /// Done with the protocol but not with the stream (a tunnel was opened): write what is
    /// queued and hand the stream back, with the core (which holds the bytes read past the
    /// handshake).
    Release,
}

/// A sans-I/O protocol core as the driver sees it.
///
/// Call contract: inputs are `handle_*` (bytes read, commands, timer expiry, failure of the
/// stream or of the application), each with the current time; outputs are `poll_*` and the
/// state queries, which the driver polls after every input until they are empty. No clock,
/// task, socket or sleep inside a core.
pub trait Core {
    /// What the application tells the core.
    type Command;
    /// What the core tells the application.
    type Event;
    /// The buffer the driver reads into (the core's own, so reading copies nothing).
    fn read_buffer(&mut self) -> &mut BytesMut;
    /// `n` bytes were appended to [`read_buffer`](Self::read_buffer); `0`: the peer closed
    /// its side.
    fn handle_read(&mut self, n: usize, now: Instant);
    /// A command from the application.
    fn handle_command(&mut self, command: Self::Command, now: Instant);
    /// The deadline from [`poll_timeout`](Self::poll_timeout) has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Reading or writing the stream failed.
    fn handle_io_error(&mut self, error: Error, now: Instant);
    /// The application is gone (every handle dropped).
    fn handle_app_closed(&mut self, now: Instant);
    /// The next bytes to write, in order.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When [`handle_timeout`](Self::handle_timeout) is due, if a timer runs. After
    /// `handle_timeout(now)` it is later than `now` (or `None`).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the core wants more bytes now (`false` is back-pressure on the peer).
    fn wants_read(&self) -> bool;
    /// Whether the core takes commands now (`false` is back-pressure on the application:
    /// a [`Channel`] leaves them queued until the core has written what it holds).
    fn wants_command(&self) -> bool {
        true
    }
    /// Whether the core is done with the stream.
    fn finish(&self) -> Finish;
}

/// The application side of a driven core: it takes events and gives commands, without
/// blocking.
pub trait App<C: Core> {
    /// Offers an event. `Err(event)` gives it back: the app cannot take it now and has
    /// arranged for `cx` to be woken when it can; the driver offers it again then.
    fn poll_deliver(&mut self, cx: &mut Context<'_>, event: C::Event) -> Result<(), C::Event>;
    /// The next command, if one is ready; `Ready(None)` once the application is gone.
    /// `core` may be looked at to tell what it waits for (a request body, say).
    fn poll_command(&mut self, cx: &mut Context<'_>, core: &C) -> Poll<Option<C::Command>>;
}

/// The current time as cores see it (tokio's clock, so paused test time applies).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs `core` over `io` with `app` until the core is finished. Returns the stream when the
/// core released it ([`Finish::Release`]), `None` when it was closed.
pub async fn drive<C, A, S>(io: S, core: &mut C, app: &mut A) -> Option<S>
where
    C: Core,
    A: App<C>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut d = Driver {
        io: Some(io),
        pending: None,
        out: None,
        small: BytesMut::new(),
        unflushed: false,
        read_closed: false,
        app_closed: false,
        sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        io_failed: false,
        read_room: FIRST_READ_CHUNK,
    };
    std::future::poll_fn(|cx| d.poll(cx, core, app)).await
}

struct Driver<S, E> {
    io: Option<S>,
    /// An event the app could not take yet.
    pending: Option<E>,
    /// The piece being written and how much of it is written.
    out: Option<(Bytes, usize)>,
    small: BytesMut,
    unflushed: bool,
    read_closed: bool,
    app_closed: bool,
    io_failed: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Room the next read gets (adaptive, [`FIRST_READ_CHUNK`] to [`READ_CHUNK`]).
    read_room: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin, E> Driver<S, E> {
    fn poll<C, A>(&mut self, cx: &mut Context<'_>, core: &mut C, app: &mut A) -> Poll<Option<S>>
    where
        C: Core<Event = E>,
        A: App<C>,
    {
        loop {
            let now = now();
            let mut moved = false;
            if !self.app_closed {
                while let Poll::Ready(c) = app.poll_command(cx, core) {
                    moved = true;
                    match c {
                        Some(c) => core.handle_command(c, now),
                        None => {
                            self.app_closed = true;
                            core.handle_app_closed(now);
                            break;
                        }
                    }
                }
            }
            while let Some(e) = self.pending.take().or_else(|| core.poll_event()) {
                match app.poll_deliver(cx, e) {
                    Ok(()) => moved = true,
                    Err(e) => {
                        self.pending = Some(e);
                        break;
                    }
                }
            }
            match self.poll_write(cx, core) {
                Poll::Ready(Ok(m)) => moved |= m,
                Poll::Ready(Err(e)) => {
                    self.io_failed = true;
                    self.out = None;
                    core.handle_io_error(e, now);
                    moved = true;
                }
                Poll::Pending => {}
            }
            moved |= self.poll_timer(cx, core, now);
            if self.pending.is_none() && !self.read_closed && core.wants_read() {
                if let Poll::Ready(r) = self.poll_read(cx, core) {
                    moved = true;
                    match r {
                        Ok(n) => {
                            self.read_closed = n == 0;
                            core.handle_read(n, now);
                        }
                        Err(e) => {
                            self.read_closed = true;
                            self.io_failed = true;
                            core.handle_io_error(e, now);
                        }
                    }
                }
            }
            if moved {
                continue;
            }
            let done = self.pending.is_none() && self.out.is_none() && !self.unflushed;
            return match core.finish() {
                Finish::Running => Poll::Pending,
                _ if !done && !self.io_failed => Poll::Pending,
                Finish::Release if !self.io_failed => Poll::Ready(self.io.take()),
                _ => {
                    if let (Some(io), false) = (self.io.as_mut(), self.io_failed) {
                        // Best effort: the peer learns the end; a failure changes nothing.
                        let _ = ready!(Pin::new(io).poll_shutdown(cx));
                    }
                    Poll::Ready(None)
                }
            };
        }
    }

    /// Hands the core its timeout when its deadline has passed, arming the sleep otherwise.
    fn poll_timer<C: Core>(&mut self, cx: &mut Context<'_>, core: &mut C, now: Instant) -> bool {
        let Some(t) = core.poll_timeout() else {
            return false;
        };
        if t <= now {
            core.handle_timeout(now);
            return true;
        }
        let t = tokio::time::Instant::from_std(t);
        if self.sleep.deadline() != t {
            self.sleep.as_mut().reset(t);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            // tokio's clock says the deadline passed (it is `now`'s clock).
            core.handle_timeout(self::now().max(t.into_std()));
            return true;
        }
        false
    }

    /// Writes what the core queued, coalescing small pieces, then flushes. `Ok(true)` when
    /// anything was written or flushed.
    fn poll_write<C: Core>(
        &mut self,
        cx: &mut Context<'_>,
        core: &mut C,
    ) -> Poll<Result<bool, Error>> {
        let Some(io) = self.io.as_mut().filter(|_| !self.io_failed) else {
            while core.poll_transmit().is_some() {}
            return Poll::Ready(Ok(false));
        };
        let mut moved = false;
        loop {
            if self.out.is_none() {
                while let Some(b) = core.poll_transmit() {
                    if b.len() >= COALESCE && self.small.is_empty() {
                        self.out = Some((b, 0));
                        break;
                    }
                    self.small.extend_from_slice(&b);
                    if self.small.len() >= COALESCE {
                        break;
                    }
                }
                if self.out.is_none() && !self.small.is_empty() {
                    self.out = Some((self.small.split().freeze(), 0));
                }
            }
            let Some((b, off)) = self.out.as_mut() else {
                break;
            };
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &b[*off..]))
                .map_err(|e| Error::from_io("writing to the connection", e))?;
            if n == 0 {
                return Poll::Ready(Err(Error::from_io(
                    "writing to the connection",
                    std::io::ErrorKind::WriteZero.into(),
                )));
            }
            moved = true;
            self.unflushed = true;
            *off += n;
            if *off == b.len() {
                self.out = None;
            }
        }
        if self.unflushed {
            ready!(Pin::new(&mut *io).poll_flush(cx))
                .map_err(|e| Error::from_io("writing to the connection", e))?;
            self.unflushed = false;
            moved = true;
        }
        Poll::Ready(Ok(moved))
    }

    fn poll_read<C: Core>(
        &mut self,
        cx: &mut Context<'_>,
        core: &mut C,
    ) -> Poll<Result<usize, Error>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let buf = core.read_buffer();
        buf.reserve(self.read_room);
        let room = buf.capacity() - buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(Pin::new(io), cx, buf))
            .map_err(|e| Error::from_io("reading from the connection", e))?;
        self.read_room = next_room(self.read_room, n, room);
        Poll::Ready(Ok(n))
    }
}

/// The room for the read after one of `n` bytes into `room` (the last read asked `asked`).
fn next_room(asked: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (asked * 2).min(READ_CHUNK)
    } else if n < asked / 4 {
        (asked / 2).max(FIRST_READ_CHUNK)
    } else {
        asked
    }
}

/// The handle side of [`channel`]: commands in, events out, both bounded.
pub struct Handle<C: Core> {
    /// Commands for the core.
    pub commands: mpsc::Sender<C::Command>,
    /// Events from the core; a reader that falls behind makes the driver stop reading.
    pub events: mpsc::Receiver<C::Event>,
}

/// An [`App`] that is a pair of bounded channels to a [`Handle`], for cores whose
/// application lives in another task (or in the same task, joined with the driver).
pub struct Channel<C: Core> {
    events: PollSender<C::Event>,
    commands: mpsc::Receiver<C::Command>,
}

/// A [`Channel`] app and its [`Handle`], each way holding at most `depth` items.
pub fn channel<C: Core>(depth: usize) -> (Channel<C>, Handle<C>)
where
    C::Event: Send + 'static,
{
    let (ctx, crx) = mpsc::channel(depth.max(1));
    let (etx, erx) = mpsc::channel(depth.max(1));
    (
        Channel {
            events: PollSender::new(etx),
            commands: crx,
        },
        Handle {
            commands: ctx,
            events: erx,
        },
    )
}

impl<C: Core> App<C> for Channel<C>
where
    C::Event: Send + 'static,
{
    fn poll_deliver(&mut self, cx: &mut Context<'_>, event: C::Event) -> Result<(), C::Event> {
        match self.events.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {
                // Only fails when the reader is gone: the event is then nobody's.
                let _ = self.events.send_item(event);
                Ok(())
            }
            // Nobody listens: the event is dropped, as it would be by a closed handle.
            Poll::Ready(Err(_)) => Ok(()),
            Poll::Pending => Err(event),
        }
    }

    fn poll_command(&mut self, cx: &mut Context<'_>, core: &C) -> Poll<Option<C::Command>> {
        // The driver polls again after every write, so no waker is needed here.
        if !core.wants_command() {
            return Poll::Pending;
        }
        self.commands.poll_recv(cx)
    }
}

/// An [`App`] that keeps every event and gives no commands: for a core run until it stops
/// (a handshake) before its outcome is looked at.
#[derive(Debug)]
pub struct Collect<E>(pub Vec<E>);

impl<E> Default for Collect<E> {
    fn default() -> Self {
        Collect(Vec::new())
    }
}

impl<C: Core> App<C> for Collect<C::Event> {
    fn poll_deliver(&mut self, _cx: &mut Context<'_>, event: C::Event) -> Result<(), C::Event> {
        self.0.push(event);
        Ok(())
    }

    fn poll_command(&mut self, _cx: &mut Context<'_>, _core: &C) -> Poll<Option<C::Command>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::{next_room, FIRST_READ_CHUNK, READ_CHUNK};

    #[test]
    fn read_room_grows_with_full_reads_and_shrinks_with_small_ones() {
        let mut room = FIRST_READ_CHUNK;
        let mut steps = 0;
        while room < READ_CHUNK {
            room = next_room(room, room, room);
            steps += 1;
        }
        assert_eq!(room, READ_CHUNK);
        assert_eq!(steps, 5, "8 KiB doubles to 256 KiB in five full reads");
        assert_eq!(
            next_room(room, room, room),
            READ_CHUNK,
            "never past READ_CHUNK"
        );
        // A half-full read keeps the room; small reads halve it, never below the first.
        assert_eq!(next_room(room, room / 2, room), room);
        while room > FIRST_READ_CHUNK {
            room = next_room(room, 100, room);
        }
        assert_eq!(next_room(room, 100, room), FIRST_READ_CHUNK);
    }
}
