//! The progress meter, drawn with indicatif on standard error: curl's columns by default,
//! a bar with `-#`. Shown only when standard error is a terminal and the body does not go
//! to a terminal on standard output; never with `-s` or `--no-progress-meter`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Args;

/// Whether a meter is drawn for a transfer whose body goes to standard output when
/// `to_stdout`.
pub fn wanted(args: &Args, to_stdout: bool) -> bool {
    !args.silent
        && !args.no_progress_meter
        && !args.verbose
        && !args.parallel
        && std::io::stderr().is_terminal()
        && (!to_stdout || !std::io::stdout().is_terminal())
}

/// A meter for one transfer (or nothing).
pub struct Meter(Option<ProgressBar>);

impl Meter {
    /// A meter for a body of `total` bytes when known; nothing when `show` is false.
    pub fn new(show: bool, bar: bool, total: Option<u64>) -> Meter {
        if !show {
            return Meter(None);
        }
        let pb = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = match (bar, total.is_some()) {
            (true, true) => "{wide_bar:.} {percent:>3}.0%",
            (true, false) => "{spinner} {bytes}",
            (false, true) => {
                "{percent:>3}% {total_bytes:>10}  {bytes:>10}  {bytes_per_sec:>12}  \
                 {elapsed_precise} {eta_precise}"
            }
            (false, false) => "  -- {bytes:>10}  {bytes_per_sec:>12}  {elapsed_precise}",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#> ");
        pb.set_style(style);
        if !bar {
            pb.println("  %      Total   Received   Average Speed    Elapsed     Left");
        }
        Meter(Some(pb))
    }

    /// `n` more bytes arrived.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n);
        }
    }

    /// The transfer ended: the last state stays on screen, as curl leaves it.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.abandon();
        }
    }
}
