//! The playbook kit for burrow's sans-I/O cores, after mitmproxy's `Playbook`.
//!
//! A playbook is a script of inputs (`>>`) and the outputs (`<<`) the core must produce in
//! response, in order. Running it feeds each input, drains the core's outputs and compares;
//! on a mismatch it panics with the transcript so far and a line diff of what was expected
//! against what came. Values learnt during the run (an id, a port) go into a
//! [`Placeholder`] from a matcher and come out in later inputs built with `with(..)`; a
//! blocking command is answered with `reply(..)`, an input made from the output just
//! matched. A playbook that is built and never run fails too, and so does one that leaves
//! outputs unexpected.
//!
//! Every [`Core`] speaks one vocabulary through [`Harness`]: bytes in ([`Io::Recv`],
//! [`Io::Eof`]), its own commands ([`Io::Cmd`]), virtual time ([`Io::Advance`]); bytes out
//! ([`Out::Tx`]), its own events ([`Out::Ev`]), and the end of its use of the stream
//! ([`Out::Finish`]).
//!
//! ```
//! use burrow_test_support::playbook::{Placeholder, SansIo};
//! use burrow_test_support::playbook;
//!
//! /// A core that hands out tickets and takes them back.
//! #[derive(Default)]
//! struct Tickets(Vec<String>, u32);
//! impl SansIo for Tickets {
//!     type Input = Option<u32>;
//!     type Output = String;
//!     fn handle(&mut self, i: Option<u32>) {
//!         match i {
//!             None => { self.1 += 7; self.0.push(format!("ticket {}", self.1)) }
//!             Some(t) => self.0.push(format!("returned {t}")),
//!         }
//!     }
//!     fn poll_output(&mut self) -> Option<String> { (!self.0.is_empty()).then(|| self.0.remove(0)) }
//! }
//!
//! let ticket = Placeholder::new("ticket");
//! let t = ticket.clone();
//! playbook!(Tickets::default(),
//!     >> None,
//!     << ?("a ticket", move |o: &String| t.learn(o.strip_prefix("ticket ").and_then(|n| n.parse().ok()))),
//!     >> with(move || Some(ticket.get())),
//!     << "returned 7".to_string(),
//! );
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::{Debug, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use burrow_http_core::driver::{Core, Finish};
use burrow_transport::{Error, ErrorKind};
use bytes::Bytes;

/// A sans-I/O core as a playbook sees it: inputs in, outputs drained.
pub trait SansIo {
    /// Something that happens to the core (bytes received, a command, time passing).
    type Input: Debug;
    /// Something the core asks for or reports (bytes to send, an event, a command).
    type Output: Debug;
    /// Feeds one input.
    fn handle(&mut self, input: Self::Input);
    /// Takes the next pending output, if any.
    fn poll_output(&mut self) -> Option<Self::Output>;
}

/// A value learnt during a run, used by later steps.
pub struct Placeholder<T> {
    name: &'static str,
    slot: Rc<RefCell<Option<T>>>,
}

impl<T> Clone for Placeholder<T> {
    fn clone(&self) -> Self {
        Placeholder {
            name: self.name,
            slot: self.slot.clone(),
        }
    }
}

impl<T: Clone> Placeholder<T> {
    /// An empty placeholder; `name` appears in failures.
    pub fn new(name: &'static str) -> Self {
        Placeholder {
            name,
            slot: Rc::new(RefCell::new(None)),
        }
    }

    /// Fills the placeholder from a matcher: `true` (a match) when `value` is `Some`.
    pub fn learn(&self, value: Option<T>) -> bool {
        match value {
            Some(v) => {
                *self.slot.borrow_mut() = Some(v);
                true
            }
            None => false,
        }
    }

    /// The learnt value.
    ///
    /// # Panics
    /// When nothing was learnt yet: the playbook uses it too early.
    pub fn get(&self) -> T {
        match &*self.slot.borrow() {
            Some(v) => v.clone(),
            None => panic!("placeholder {:?} used before it was learnt", self.name),
        }
    }
}

type Matcher<O> = Box<dyn Fn(&O) -> bool>;
type Answerer<O, I> = Box<dyn FnOnce(&O) -> I>;

enum Step<C: SansIo> {
    Input(C::Input),
    With(Box<dyn FnOnce() -> C::Input>),
    Reply(Answerer<C::Output, C::Input>),
    Expect(String, Matcher<C::Output>),
}

/// A script of inputs and expected outputs for one core.
pub struct Playbook<C: SansIo> {
    core: Option<C>,
    steps: Vec<Step<C>>,
}

impl<C: SansIo> Drop for Playbook<C> {
    fn drop(&mut self) {
        if self.core.is_some() && !std::thread::panicking() {
            panic!("playbook built but never run (call run(), or use playbook!)");
        }
    }
}

/// A line diff of two pretty-printed values: `-` what was expected, `+` what came.
pub fn diff(want: &str, got: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    // Longest common subsequence of lines, then walk it.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "   {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, " - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, " + {}", b[j]);
            j += 1;
        }
    }
    out
}

impl<C: SansIo> Playbook<C> {
    /// A playbook driving `core`.
    pub fn new(core: C) -> Self {
        Playbook {
            core: Some(core),
            steps: Vec::new(),
        }
    }

    /// `>> input`: feed an input.
    pub fn input(&mut self, input: C::Input) -> &mut Self {
        self.steps.push(Step::Input(input));
        self
    }

    /// `>> with(f)`: feed the input `f` builds when the step is reached (placeholders
    /// learnt by then are filled).
    pub fn input_with(&mut self, f: impl FnOnce() -> C::Input + 'static) -> &mut Self {
        self.steps.push(Step::With(Box::new(f)));
        self
    }

    /// `>> reply(f)`: answer the output matched last (a blocking command) with `f(output)`.
    pub fn reply(&mut self, f: impl FnOnce(&C::Output) -> C::Input + 'static) -> &mut Self {
        self.steps.push(Step::Reply(Box::new(f)));
        self
    }

    /// `<< output`: the next output must equal this.
    pub fn expect(&mut self, output: C::Output) -> &mut Self
    where
        C::Output: PartialEq + 'static,
    {
        let shown = format!("{output:#?}");
        self.steps
            .push(Step::Expect(shown, Box::new(move |o| *o == output)));
        self
    }

    /// `<< ?(what, f)`: the next output must satisfy `f` (which may fill placeholders);
    /// `what` describes it in transcripts.
    pub fn expect_with(
        &mut self,
        what: impl Into<String>,
        f: impl Fn(&C::Output) -> bool + 'static,
    ) -> &mut Self {
        self.steps.push(Step::Expect(what.into(), Box::new(f)));
        self
    }

    /// Runs the script. Outputs are drained at the start and after each input; every output
    /// must be expected in order, and none may be left over at the end. Returns the core.
    ///
    /// # Panics
    /// On the first mismatch, with the transcript and a diff.
    pub fn run(mut self) -> C {
        let (Some(mut core), steps) = (self.core.take(), std::mem::take(&mut self.steps)) else {
            unreachable!("a playbook runs once");
        };
        let mut transcript = String::new();
        let mut pending: VecDeque<C::Output> = VecDeque::new();
        let mut last: Option<C::Output> = None;
        let fail = |transcript: &str, why: String| -> ! {
            panic!("playbook mismatch\n{transcript}!! {why}\n");
        };
        // A core may speak first (a client's greeting): its outputs before any input.
        while let Some(o) = core.poll_output() {
            pending.push_back(o);
        }
        for step in steps {
            let input = match step {
                Step::Input(i) => i,
                Step::With(f) => f(),
                Step::Reply(f) => match &last {
                    Some(o) => f(o),
                    None => fail(&transcript, "reply() with no output matched before".into()),
                },
                Step::Expect(want, matches) => {
                    match pending.pop_front() {
                        Some(got) if matches(&got) => {
                            let _ = writeln!(transcript, "<< {got:?}");
                            last = Some(got);
                        }
                        Some(got) => fail(
                            &transcript,
                            format!(
                                "the next output differs (- expected, + got):\n{}",
                                diff(&want, &format!("{got:#?}"))
                            ),
                        ),
                        None => fail(&transcript, format!("expected << {want}\n!! got nothing")),
                    }
                    continue;
                }
            };
            if let Some(o) = pending.pop_front() {
                fail(
                    &transcript,
                    format!("unexpected output before the next input: << {o:?}"),
                );
            }
            let _ = writeln!(transcript, ">> {input:?}");
            core.handle(input);
            while let Some(o) = core.poll_output() {
                pending.push_back(o);
            }
        }
        if let Some(o) = pending.pop_front() {
            fail(
                &transcript,
                format!("unexpected output at the end: << {o:?}"),
            );
        }
        core
    }
}

/// Writes a playbook as `>> input,` and `<< output,` lines and runs it; returns the core.
/// `>> with(f)` builds an input when it is reached, `>> reply(f)` answers the output matched
/// last, `<< ?("what", |o| ..)` matches an output with a closure.
#[macro_export]
macro_rules! playbook {
    ($core:expr, $($rest:tt)*) => {{
        let mut pb = $crate::playbook::Playbook::new($core);
        $crate::playbook!(@step pb, $($rest)*);
        pb.run()
    }};
    (@step $pb:ident, ) => {};
    (@step $pb:ident, >> with($f:expr), $($rest:tt)*) => {
        $pb.input_with($f);
        $crate::playbook!(@step $pb, $($rest)*);
    };
    (@step $pb:ident, >> reply($f:expr), $($rest:tt)*) => {
        $pb.reply($f);
        $crate::playbook!(@step $pb, $($rest)*);
    };
    (@step $pb:ident, >> $e:expr, $($rest:tt)*) => {
        $pb.input($e);
        $crate::playbook!(@step $pb, $($rest)*);
    };
    (@step $pb:ident, << ?($what:expr, $f:expr), $($rest:tt)*) => {
        $pb.expect_with($what, $f);
        $crate::playbook!(@step $pb, $($rest)*);
    };
    (@step $pb:ident, << $e:expr, $($rest:tt)*) => {
        $pb.expect($e);
        $crate::playbook!(@step $pb, $($rest)*);
    };
}

/// What happens to a [`Core`] in a playbook: its vocabulary's inputs.
#[derive(Debug)]
pub enum Io<C> {
    /// Bytes from the peer.
    Recv(Bytes),
    /// The peer closed its side.
    Eof,
    /// A command from the application.
    Cmd(C),
    /// Virtual time passes; expired timers fire.
    Advance(Duration),
    /// The stream broke.
    IoError,
    /// The application went away.
    AppClosed,
}

/// Bytes from the peer, as an [`Io::Recv`].
pub fn recv<C>(b: &[u8]) -> Io<C> {
    Io::Recv(Bytes::copy_from_slice(b))
}

/// What a [`Core`] does in a playbook: its vocabulary's outputs, after each input in this
/// order: the bytes it wrote (joined), its events, then a change of [`Finish`].
#[derive(Debug, PartialEq)]
pub enum Out<E> {
    /// Bytes to the peer.
    Tx(Bytes),
    /// An event for the application.
    Ev(E),
    /// The core is done with the stream.
    Finish(Finish),
}

/// Bytes to the peer, as an [`Out::Tx`].
pub fn tx<E>(b: &[u8]) -> Out<E> {
    Out::Tx(Bytes::copy_from_slice(b))
}

/// Any [`Core`] on virtual time, as a playbook (or an operation fuzzer) drives it.
pub struct Harness<C: Core> {
    /// The core.
    pub core: C,
    now: Instant,
    out: VecDeque<Out<C::Event>>,
    finish: Finish,
}

impl<C: Core> Harness<C> {
    /// A harness around the core `make` builds at the harness's start time.
    pub fn new(make: impl FnOnce(Instant) -> C) -> Self {
        let now = Instant::now();
        let mut h = Harness {
            core: make(now),
            now,
            out: VecDeque::new(),
            finish: Finish::Running,
        };
        h.drain();
        h
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn drain(&mut self) {
        let mut tx = Vec::new();
        while let Some(b) = self.core.poll_transmit() {
            tx.extend_from_slice(&b);
        }
        if !tx.is_empty() {
            self.out.push_back(Out::Tx(Bytes::from(tx)));
        }
        while let Some(e) = self.core.poll_event() {
            self.out.push_back(Out::Ev(e));
        }
        let f = self.core.finish();
        if f != self.finish {
            self.finish = f;
            self.out.push_back(Out::Finish(f));
        }
    }

    /// Feeds one input, checking the call contract where it can be checked: a timer that
    /// fired is later than now afterwards.
    pub fn step(&mut self, input: Io<C::Command>) {
        let now = self.now;
        match input {
            Io::Recv(b) if b.is_empty() => {}
            Io::Recv(b) => {
                self.core.read_buffer().extend_from_slice(&b);
                self.core.handle_read(b.len(), now);
            }
            Io::Eof => self.core.handle_read(0, now),
            Io::Cmd(c) => self.core.handle_command(c, now),
            Io::Advance(d) => {
                self.now += d;
                while let Some(t) = self.core.poll_timeout().filter(|t| *t <= self.now) {
                    self.core.handle_timeout(self.now);
                    let again = self.core.poll_timeout();
                    assert!(
                        again.is_none_or(|a| a > self.now || a > t),
                        "handle_timeout left a timer that is still due ({again:?})"
                    );
                    if again.is_some_and(|a| a <= self.now) {
                        break;
                    }
                }
            }
            Io::IoError => self
                .core
                .handle_io_error(Error::local(ErrorKind::Io, "playbook: stream broke"), now),
            Io::AppClosed => self.core.handle_app_closed(now),
        }
        self.drain();
    }
}

impl<C: Core> SansIo for Harness<C>
where
    C::Command: Debug,
    C::Event: Debug,
{
    type Input = Io<C::Command>;
    type Output = Out<C::Event>;

    fn handle(&mut self, input: Io<C::Command>) {
        self.step(input);
    }

    fn poll_output(&mut self) -> Option<Out<C::Event>> {
        self.out.pop_front()
    }
}

/// A core driven by its own inputs and the time, without bytes (a decision core, a pool).
pub trait TimedCore {
    /// Its inputs.
    type Input: Debug;
    /// Its outputs.
    type Output: Debug;
    /// Feeds one input at `now`.
    fn handle(&mut self, input: Self::Input, now: Instant);
    /// The next output.
    fn poll_output(&mut self) -> Option<Self::Output>;
    /// When its timer is due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Its timer is due.
    fn handle_timeout(&mut self, now: Instant);
}

/// What happens to a [`TimedCore`]: one of its inputs, or virtual time passing.
#[derive(Debug)]
pub enum Tick<I> {
    /// An input.
    In(I),
    /// Virtual time passes; an expired timer fires.
    Advance(Duration),
}

/// A [`TimedCore`] on virtual time, as a playbook drives it.
pub struct Timed<C> {
    /// The core.
    pub core: C,
    now: Instant,
}

impl<C: TimedCore> Timed<C> {
    /// A harness around the core `make` builds at the harness's start time.
    pub fn new(make: impl FnOnce(Instant) -> C) -> Self {
        let now = Instant::now();
        Timed {
            core: make(now),
            now,
        }
    }
}

impl<C: TimedCore> SansIo for Timed<C> {
    type Input = Tick<C::Input>;
    type Output = C::Output;

    fn handle(&mut self, input: Tick<C::Input>) {
        match input {
            Tick::In(i) => self.core.handle(i, self.now),
            Tick::Advance(d) => {
                self.now += d;
                if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.core.handle_timeout(self.now);
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<C::Output> {
        self.core.poll_output()
    }
}

/// Arbitrary operations for a [`Core`], read from fuzz bytes (or the deterministic
/// generator in property tests): each byte picks an operation; `command` makes a command
/// from the bytes that follow. Checks the call contract as it goes: no panic, timers that
/// fired are not still due, and a core that is done with its stream stays done.
pub fn operations<C: Core>(
    h: &mut Harness<C>,
    data: &[u8],
    mut command: impl FnMut(&mut &[u8]) -> Option<C::Command>,
) {
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let input = match op % 8 {
            0 | 1 => {
                let n = (rest.first().copied().unwrap_or(0) as usize % 32).min(rest.len());
                let (b, t) = rest.split_at(n);
                rest = t;
                Io::Recv(Bytes::copy_from_slice(b))
            }
            2 => Io::Eof,
            3 | 4 => match command(&mut rest) {
                Some(c) => Io::Cmd(c),
                None => continue,
            },
            5 => Io::Advance(Duration::from_millis(
                u64::from(rest.first().copied().unwrap_or(1)) * 100,
            )),
            6 => Io::IoError,
            _ => Io::AppClosed,
        };
        let before = h.core.finish();
        h.step(input);
        while h.out.pop_front().is_some() {}
        assert!(
            before == Finish::Running || h.core.finish() != Finish::Running,
            "a core that was done ({before:?}) is running again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Echo(VecDeque<String>);
    impl SansIo for Echo {
        type Input = &'static str;
        type Output = String;
        fn handle(&mut self, i: &'static str) {
            for w in i.split(' ') {
                self.0.push_back(w.to_string());
            }
        }
        fn poll_output(&mut self) -> Option<String> {
            self.0.pop_front()
        }
    }

    fn message(r: std::thread::Result<()>) -> String {
        match r.unwrap_err().downcast::<String>() {
            Ok(s) => *s,
            Err(e) => e.downcast::<&str>().map(|s| s.to_string()).unwrap(),
        }
    }

    #[test]
    fn matches_in_order_and_learns() {
        let word = Placeholder::new("word");
        let w = word.clone();
        let core = crate::playbook!(Echo::default(),
            >> "a b",
            << "a".to_string(),
            << ?("starts with b", move |o: &String| w.learn(o.starts_with('b').then(|| o.clone()))),
            >> with(move || if word.get() == "b" { "c" } else { "x" }),
            << "c".to_string(),
            >> reply(|last: &String| if last == "c" { "d" } else { "x" }),
            << "d".to_string(),
        );
        assert!(core.0.is_empty());
    }

    #[test]
    fn mismatch_panics_with_transcript_and_diff() {
        let msg = message(std::panic::catch_unwind(|| {
            crate::playbook!(Echo::default(), >> "a", << "b".to_string(),);
        }));
        assert!(msg.contains(">> \"a\""), "{msg}");
        assert!(msg.contains(" - \"b\""), "{msg}");
        assert!(msg.contains(" + \"a\""), "{msg}");
    }

    #[test]
    fn leftover_output_fails_and_so_does_a_playbook_never_run() {
        let msg = message(std::panic::catch_unwind(|| {
            crate::playbook!(Echo::default(), >> "a b", << "a".to_string(),);
        }));
        assert!(msg.contains("unexpected output at the end"), "{msg}");
        let msg = message(std::panic::catch_unwind(|| {
            let mut pb = Playbook::new(Echo::default());
            pb.input("a");
        }));
        assert!(msg.contains("never run"), "{msg}");
    }

    #[test]
    fn diffs_show_only_what_differs() {
        let d = diff(
            "A {\n    x: 1,\n    y: 2,\n}",
            "A {\n    x: 1,\n    y: 3,\n}",
        );
        assert_eq!(
            d,
            "   A {\n       x: 1,\n -     y: 2,\n +     y: 3,\n   }\n"
        );
    }
}
