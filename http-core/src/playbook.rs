//! The playbook test kit for sans-I/O cores, in the style of mitmproxy's `Playbook`.
//!
//! A playbook is a script of inputs (`>>`) and the outputs (`<<`) the core must produce in
//! response, in order. Running it feeds each input, drains the core's outputs and compares;
//! on a mismatch it panics with a transcript of what happened and what was expected.
//! Outputs learnt at run time are matched with [`Playbook::expect_with`].
//!
//! ```
//! use burrow_http_core::playbook::{Playbook, SansIo};
//!
//! /// A core that echoes each input back, doubled.
//! #[derive(Default)]
//! struct Doubler(std::collections::VecDeque<u32>);
//! impl SansIo for Doubler {
//!     type Input = u32;
//!     type Output = u32;
//!     fn handle(&mut self, i: u32) { self.0.push_back(i * 2) }
//!     fn poll_output(&mut self) -> Option<u32> { self.0.pop_front() }
//! }
//!
//! burrow_http_core::playbook!(Doubler::default(),
//!     >> 1,
//!     << 2,
//!     >> 20,
//!     << 40,
//! );
//! ```

use std::fmt::{Debug, Write};

/// A sans-I/O core as a playbook sees it: inputs in, outputs drained.
pub trait SansIo {
    /// Something that happens to the core (bytes received, a user call, a timer).
    type Input: Debug;
    /// Something the core asks for or reports (bytes to send, an event, an error).
    type Output: Debug + PartialEq;
    /// Feeds one input.
    fn handle(&mut self, input: Self::Input);
    /// Takes the next pending output, if any.
    fn poll_output(&mut self) -> Option<Self::Output>;
}

type Matcher<O> = Box<dyn Fn(&O) -> bool>;

enum Step<C: SansIo> {
    Input(C::Input),
    Expect(C::Output),
    ExpectWith(String, Matcher<C::Output>),
}

/// A script of inputs and expected outputs for one core.
pub struct Playbook<C: SansIo> {
    core: C,
    steps: Vec<Step<C>>,
}

impl<C: SansIo> Playbook<C> {
    /// A playbook driving `core`.
    pub fn new(core: C) -> Self {
        Playbook {
            core,
            steps: Vec::new(),
        }
    }

    /// `>> input`: feed an input.
    pub fn input(&mut self, input: C::Input) -> &mut Self {
        self.steps.push(Step::Input(input));
        self
    }

    /// `<< output`: the next output must equal this.
    pub fn expect(&mut self, output: C::Output) -> &mut Self {
        self.steps.push(Step::Expect(output));
        self
    }

    /// `<< (matching)`: the next output must satisfy `f`; `what` describes it in transcripts.
    pub fn expect_with(
        &mut self,
        what: impl Into<String>,
        f: impl Fn(&C::Output) -> bool + 'static,
    ) -> &mut Self {
        self.steps.push(Step::ExpectWith(what.into(), Box::new(f)));
        self
    }

    /// Runs the script. Outputs are drained at the start and after each input; every output
    /// must be expected in order, and none may be left over at the end. Returns the core for further checks.
    ///
    /// # Panics
    /// On the first mismatch, with a transcript.
    pub fn run(self) -> C {
        let Playbook { mut core, steps } = self;
        let mut transcript = String::new();
        let mut pending: std::collections::VecDeque<C::Output> = Default::default();
        let fail = |transcript: &str, why: String| -> ! {
            panic!("playbook mismatch\n{transcript}!! {why}\n");
        };
        // A core may speak first (a client's greeting): its outputs before any input.
        while let Some(o) = core.poll_output() {
            pending.push_back(o);
        }
        for step in steps {
            match step {
                Step::Input(i) => {
                    if let Some(o) = pending.pop_front() {
                        fail(
                            &transcript,
                            format!("unexpected output before next input: << {o:?}"),
                        );
                    }
                    let _ = writeln!(transcript, ">> {i:?}");
                    core.handle(i);
                    while let Some(o) = core.poll_output() {
                        pending.push_back(o);
                    }
                }
                Step::Expect(want) => match pending.pop_front() {
                    Some(got) if got == want => {
                        let _ = writeln!(transcript, "<< {got:?}");
                    }
                    Some(got) => fail(
                        &transcript,
                        format!("expected << {want:?}\n!!      got << {got:?}"),
                    ),
                    None => fail(
                        &transcript,
                        format!("expected << {want:?}\n!!      got nothing"),
                    ),
                },
                Step::ExpectWith(what, f) => match pending.pop_front() {
                    Some(got) if f(&got) => {
                        let _ = writeln!(transcript, "<< {got:?}");
                    }
                    Some(got) => fail(
                        &transcript,
                        format!("expected << ({what})\n!!      got << {got:?}"),
                    ),
                    None => fail(
                        &transcript,
                        format!("expected << ({what})\n!!      got nothing"),
                    ),
                },
            }
        }
        if let Some(o) = pending.pop_front() {
            fail(&transcript, format!("unexpected output at end: << {o:?}"));
        }
        core
    }
}

/// Writes a playbook as `>> input,` and `<< output,` lines and runs it; returns the core.
/// `<< ?("what", |o| pattern)` matches an output with a closure.
#[macro_export]
macro_rules! playbook {
    ($core:expr, $($rest:tt)*) => {{
        let mut pb = $crate::playbook::Playbook::new($core);
        $crate::playbook!(@step pb, $($rest)*);
        pb.run()
    }};
    (@step $pb:ident, ) => {};
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

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

    #[test]
    fn matches_in_order() {
        let core = crate::playbook!(Echo::default(),
            >> "a b",
            << "a".to_string(),
            << ?("starts with b", |o: &String| o.starts_with('b')),
        );
        assert!(core.0.is_empty());
    }

    #[test]
    fn mismatch_panics_with_transcript() {
        let r = std::panic::catch_unwind(|| {
            crate::playbook!(Echo::default(), >> "a", << "b".to_string(),);
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains(">> \"a\""), "{msg}");
        assert!(msg.contains("expected << \"b\""), "{msg}");
        assert!(msg.contains("got << \"a\""), "{msg}");
    }

    #[test]
    fn leftover_output_fails() {
        let r = std::panic::catch_unwind(|| {
            crate::playbook!(Echo::default(), >> "a b", << "a".to_string(),);
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("unexpected output at end"), "{msg}");
    }
}
