//! The record driver: the routine around every processing tool's per-input function,
//! written once. For each input it passes bad lines and upstream error records through
//! untouched, resets the peak-RSS mark, times the work, catches a panic as that input's
//! error record (the run goes on), adds `seconds` and `peak_rss` to the tool's section
//! (`peak_rss` to an error record too: refusing a file must stay in budget), writes the
//! record, and stops early on a signal.
//!
//! A panic while an input is processed, in any thread (the calling one, a rayon worker,
//! a [`crate::readahead`] helper), is not printed by the default hook: its message and
//! location become the record's error message, which stderr then says once. A tool is then its operation plus one
//! function `FnMut(&mut Record, &mut Job) -> Result<(), Error>`.
//!
//! ```no_run
//! # use membudget::{cli, driver, Error, Record};
//! # fn convert(r: &mut Record) -> Result<(), Error> { Ok(()) }
//! # fn run(input: &cli::InputArgs, log: &cli::LogArgs) -> anyhow::Result<cli::Status> {
//! driver::for_each_record("my-tool", input, log, |record, _job| convert(record))
//! # }
//! ```

use crate::cli::{self, Input, InputArgs, LogArgs, Output};
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::monitor;
use serde_json::Value;
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Instant;

/// One input's run, as the per-input function sees it: it may write several records
/// (one per page, as each page is done) or none.
#[derive(Debug)]
pub struct Job<'a> {
    tool: &'static str,
    out: &'a mut Output,
    started: Instant,
    emitted: usize,
    discard: bool,
    /// Why stdout could not be written: the run ends once the function returns.
    failed_write: Option<anyhow::Error>,
}

impl Job<'_> {
    /// Write one finished record of this input now (a page of a multi-page file). It
    /// gets the `seconds` and `peak_rss` of the work since the previous one; the input's
    /// own record is then not written.
    /// An error means stdout is gone: return it, the driver then ends the run.
    pub fn emit(&mut self, mut r: Record) -> Result<(), Error> {
        stamp(self.tool, &mut r, self.started);
        if let Err(e) = self.out.write(&r) {
            self.failed_write = Some(e.into());
            return Err(Error::new(ErrorKind::Internal, "stdout closed"));
        }
        self.emitted += 1;
        self.started = Instant::now();
        monitor::reset_peak();
        Ok(())
    }

    /// This input is not one of the tool's (a sidecar file met in a `--recursive` walk):
    /// write no record for it.
    pub fn discard(&mut self) {
        self.discard = true;
    }
}

/// `seconds` and `peak_rss` in the tool's section of a record that did work.
fn stamp(tool: &str, r: &mut Record, started: Instant) {
    let status = r
        .get(tool)
        .and_then(|s| s.get("status"))
        .and_then(Value::as_str);
    if matches!(status, Some("skipped" | "dry_run")) {
        return;
    }
    r.set_in(
        tool,
        "seconds",
        (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    );
    if let Some(p) = monitor::peak_rss() {
        r.set_in(tool, "peak_rss", p);
    }
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Inputs being processed inside [`boundary`] (0 or 1: inputs run one at a time). A
/// counter, not a thread-local: a panic in a worker or helper thread is inside too.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// The first panic seen inside, `message at file:line`: the first, as a scoped thread's
/// panic is raised again by `thread::scope` with a message of its own.
static FIRST: Mutex<Option<String>> = Mutex::new(None);

/// Install the panic hook that keeps panics inside [`boundary`] for the record (once per
/// process); outside, panics print as usual.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if INSIDE.load(Ordering::SeqCst) == 0 {
                return default(info);
            }
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut first) = FIRST.lock() {
                first.get_or_insert_with(|| format!("{}{at}", panic_message(info.payload())));
            }
        }));
    });
}

/// Run `f` for one input; a panic in it (or in a thread it joins) becomes an `internal`
/// error naming the panic's message and location. Whatever `f` left half-done is dropped
/// during the unwind (temporary files remove themselves) and not used afterwards.
pub fn boundary<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    install_hook();
    if let Ok(mut first) = FIRST.lock() {
        *first = None;
    }
    INSIDE.fetch_add(1, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(f));
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    r.unwrap_or_else(|p| {
        let seen = FIRST.lock().ok().and_then(|mut l| l.take());
        let what = seen.unwrap_or_else(|| panic_message(p.as_ref()));
        Err(Error::new(ErrorKind::Internal, format!("panic: {what}")))
    })
}

/// Debug builds only: panic here when `MEMBUDGET_FAILPOINT` is `NAME@TEXT` and the
/// input's path contains TEXT, so a tool's tests can check that a real panic anywhere in
/// its pipeline (a helper thread, a rayon worker) becomes that input's record.
#[track_caller]
pub fn failpoint(name: &str, input: &std::path::Path) {
    if cfg!(debug_assertions) {
        if let Ok(v) = std::env::var("MEMBUDGET_FAILPOINT") {
            if let Some((n, text)) = v.split_once('@') {
                if n == name && input.to_string_lossy().contains(text) {
                    panic!("failpoint {name}");
                }
            }
        }
    }
}

/// Run `per_input` over the inputs (arguments or stdin, see [`cli::inputs`]) and write
/// the records to stdout; returns the exit status. Only a closed stdout ends it early
/// (quietly) besides a stop signal; any other write error is returned.
pub fn for_each_record<F>(
    tool: &'static str,
    input: &InputArgs,
    log: &LogArgs,
    mut per_input: F,
) -> anyhow::Result<cli::Status>
where
    F: FnMut(&mut Record, &mut Job) -> Result<(), Error>,
{
    let mut out = Output::new(tool);
    let bar = cli::progress(None, log);
    for item in cli::inputs(tool, input) {
        let mut record = match item? {
            Input::Bad(r) => {
                out.write(&r)?;
                continue;
            }
            // Upstream failures pass through untouched.
            Input::Record(r) if r.is_error() => {
                out.write(&r)?;
                continue;
            }
            Input::Record(r) => r,
        };
        monitor::reset_peak();
        let mut job = Job {
            tool,
            out: &mut out,
            started: Instant::now(),
            emitted: 0,
            discard: false,
            failed_write: None,
        };
        let result = boundary(|| per_input(&mut record, &mut job));
        let (emitted, discard, started) = (job.emitted, job.discard, job.started);
        if let Some(e) = job.failed_write {
            return Err(e);
        }
        match result {
            Err(e) => {
                record.set_error(tool, &e);
                // What refusing it cost: damaged inputs must stay in budget too.
                if let Some(p) = monitor::peak_rss() {
                    record.set_in(tool, "peak_rss", p);
                }
                out.write(&record)?;
            }
            Ok(()) if emitted == 0 && !discard => {
                stamp(tool, &mut record, started);
                out.write(&record)?;
            }
            Ok(()) => {}
        }
        bar.inc(1);
        if cli::interrupted() {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(out.status())
}
