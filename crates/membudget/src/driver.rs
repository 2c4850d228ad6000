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
//! function `FnMut(&mut Record, &mut Job) -> Result<(), Error>`; a tool that runs inputs
//! side by side flattens [`ProcessingArgs`] into its options and gives
//! [`Processing::for_each_record`] a function of the input's [`Room`] too. The driver keeps
//! the run's inputs and outputs: [`Job::claim_output`].
//!
//! ```no_run
//! # use membudget::{cli, driver, Error, Record};
//! # fn convert(r: &mut Record) -> Result<(), Error> { Ok(()) }
//! # fn run(input: &cli::InputArgs, log: &cli::LogArgs) -> anyhow::Result<cli::Status> {
//! driver::for_each_record("my-tool", input, log, |record, _job| convert(record))
//! # }
//! ```

use crate::budget::Budget;
use crate::cli::{self, BudgetArgs, Input, InputArgs, LogArgs, Output, ReadError};
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::monitor;
use crate::outputs::Destinations;
use crate::system::SystemInfo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::thread::{self, ThreadId};
use std::time::Instant;

/// One input's run, as the per-input function sees it: it may write several records
/// (one per page, as each page is done) or none.
#[derive(Debug)]
pub struct Job<'a> {
    tool: &'static str,
    sink: Sink<'a>,
    started: Instant,
    emitted: usize,
    discard: bool,
    /// Why stdout could not be written: the run ends once the function returns.
    failed_write: Option<anyhow::Error>,
    /// What this input may use when inputs run side by side ([`for_each_record_batch`]).
    share: Option<Share>,
    /// The run's inputs and outputs ([`Job::claim_output`]).
    dests: &'a Mutex<Destinations>,
}

/// Where a job's records go: straight to stdout (one input at a time), or to the writer
/// thread that puts them in input order (several at once).
#[derive(Debug)]
enum Sink<'a> {
    Direct(&'a mut Output),
    Queue {
        seq: u64,
        tx: Sender<Written>,
        ctl: &'a Control,
        /// The most inputs in flight at once since this job's peak window opened.
        flight: Arc<AtomicUsize>,
    },
}

impl Job<'_> {
    /// Write one finished record of this input now (a page of a multi-page file). It
    /// gets the `seconds` and `peak_rss` of the work since the previous one; the input's
    /// own record is then not written.
    /// An error means stdout is gone: return it, the driver then ends the run.
    pub fn emit(&mut self, mut r: Record) -> Result<(), Error> {
        stamp(self.tool, &mut r, self.started, self.concurrent());
        let closed = || Error::new(ErrorKind::Internal, "stdout closed");
        match &mut self.sink {
            Sink::Direct(out) => {
                if let Err(e) = out.write(&r) {
                    self.failed_write = Some(e.into());
                    return Err(closed());
                }
            }
            Sink::Queue { seq, tx, ctl, .. } => {
                if ctl.stop.load(Ordering::SeqCst) || tx.send(Written::Record(*seq, r)).is_err() {
                    return Err(closed());
                }
            }
        }
        self.emitted += 1;
        self.started = Instant::now();
        self.restart_peak();
        Ok(())
    }

    /// This input is not one of the tool's (a sidecar file met in a `--recursive` walk):
    /// write no record for it.
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// The share of the budget and threads this input may use when several inputs run
    /// at once ([`for_each_record_batch`]); `None` when inputs run one at a time (the
    /// tool's whole budget and `--jobs` are its own).
    pub fn share(&self) -> Option<Share> {
        self.share
    }

    /// Open a new peak-RSS window: the kernel's high-water mark is the whole process's,
    /// so it is reset only when no other input is in flight.
    fn restart_peak(&self) {
        match &self.sink {
            Sink::Direct(_) => {
                monitor::reset_peak();
            }
            Sink::Queue { ctl, flight, .. } => {
                let st = ctl.lock();
                if st.running.len() <= 1 {
                    monitor::reset_peak();
                }
                flight.store(st.running.len().max(1), Ordering::SeqCst);
            }
        }
    }

    /// Run `claim` in input order: when inputs run side by side, only once every earlier
    /// input has made its claims (or finished). For what must go to the first input in
    /// order whichever thread gets there first: claiming output names (`x.tif` and
    /// `x.tiff` both make `x.jp2`; the first input keeps it). Call it once, early (a
    /// later input waits for it); one at a time, it runs `claim` at once. An error when
    /// the batch stops (a signal, stdout closed) while waiting.
    pub fn in_turn<T>(&mut self, claim: impl FnOnce() -> T) -> Result<T, Error> {
        match &self.sink {
            Sink::Direct(_) => Ok(claim()),
            Sink::Queue { seq, ctl, .. } => {
                let (seq, ctl) = (*seq, *ctl);
                let mut st = ctl.lock();
                while st.turn < seq {
                    if ctl.stop.load(Ordering::SeqCst) || cli::interrupted() {
                        return Err(Error::new(ErrorKind::Internal, "the batch was stopped"));
                    }
                    // Timed: a stop signal notifies no one.
                    st = ctl
                        .changed
                        .wait_timeout(st, std::time::Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                ctl.register(&mut st, seq);
                drop(st);
                // Later inputs wait on `turn`, so this runs alone.
                let out = claim();
                ctl.pass_turn(seq);
                Ok(out)
            }
        }
    }

    /// Claim `dest` as the output of `input`, in input order ([`Job::in_turn`]): an
    /// error when it is an input of the run (this one and every earlier one, whether it
    /// failed or not: the inputs one at a time would have met) or the output of an
    /// earlier input ([`Destinations::check`]; the earlier input keeps it). Call it
    /// once, before writing.
    pub fn claim_output(
        &mut self,
        input: &std::path::Path,
        dest: &std::path::Path,
    ) -> Result<(), Error> {
        let dests = self.dests;
        self.in_turn(|| lock_dests(dests).check(input, dest))?
    }

    /// [`Job::claim_output`] for several outputs of `input` at once (one per page): each
    /// claim's result, in order. The error: the batch was stopped.
    pub fn claim_outputs(
        &mut self,
        input: &std::path::Path,
        dests: &[std::path::PathBuf],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let run = self.dests;
        self.in_turn(|| {
            let mut claimed = lock_dests(run);
            dests.iter().map(|d| claimed.check(input, d)).collect()
        })
    }

    /// Inputs in flight at most in this record's peak window (side by side runs only).
    fn concurrent(&self) -> Option<usize> {
        match &self.sink {
            Sink::Direct(_) => None,
            Sink::Queue { flight, .. } => Some(flight.load(Ordering::SeqCst)),
        }
    }
}

/// The run's destinations; a panic elsewhere while they were held leaves them usable
/// (each use is one check or one insert).
fn lock_dests(dests: &Mutex<Destinations>) -> MutexGuard<'_, Destinations> {
    dests.lock().unwrap_or_else(|p| p.into_inner())
}

/// `seconds` and `peak_rss` in the tool's section of a record that did work, and
/// `concurrent` (inputs in flight at most while it ran) when inputs ran side by side.
fn stamp(tool: &str, r: &mut Record, started: Instant, concurrent: Option<usize>) {
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
    if let Some(n) = concurrent {
        r.set_in(tool, "concurrent", n);
    }
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Inputs being processed inside [`boundary`] (several when inputs run side by side). A
/// counter, not a thread-local: a panic in a worker or helper thread is inside too.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// The panics seen inside, `message at file:line`, with the thread that raised them: an
/// input's own thread's panic is its own; a helper's is taken when the input's thread
/// only saw it raised again (by `thread::scope`, or a rayon join with no location).
static SEEN: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());
/// Panics kept at most: a tool that catches helper panics itself never takes them.
const SEEN_MAX: usize = 64;

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
            let message = panic_message(info.payload());
            // thread::scope raising a helper's panic again says nothing of its own.
            if message == SCOPE_PANIC {
                return;
            }
            if let Ok(mut seen) = SEEN.lock() {
                if seen.len() < SEEN_MAX {
                    let what = format!("{message}{at}");
                    seen.push((thread::current().id(), what));
                }
            }
        }));
    });
}

/// The message `std::thread::scope` panics with when a scoped thread panicked.
const SCOPE_PANIC: &str = "a scoped thread panicked";

/// Run `f` for one input; a panic in it (or in a thread it joins) becomes an `internal`
/// error naming the panic's message and location. Whatever `f` left half-done is dropped
/// during the unwind (temporary files remove themselves) and not used afterwards.
pub fn boundary<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    install_hook();
    if INSIDE.fetch_add(1, Ordering::SeqCst) == 0 {
        // No other input in flight: what is left is stale (caught by a tool itself).
        if let Ok(mut seen) = SEEN.lock() {
            seen.clear();
        }
    }
    let r = catch_unwind(AssertUnwindSafe(f));
    let me = thread::current().id();
    let mine = SEEN.lock().ok().and_then(|mut seen| {
        let own = seen.iter().position(|(t, _)| *t == me);
        match (own, &r) {
            (Some(i), _) => Some(seen.remove(i).1),
            // Raised again from a helper: the helper's panic (the oldest left; with
            // several inputs in flight it may be another's, in the rare case two panic).
            (None, Err(_)) if !seen.is_empty() => Some(seen.remove(0).1),
            _ => None,
        }
    });
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    r.unwrap_or_else(|p| {
        let what = mine.unwrap_or_else(|| panic_message(p.as_ref()));
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

/// The record an input's run ends with, if any: its error record (with what refusing it
/// cost), or its own record when it emitted none and was not discarded.
fn conclude(
    tool: &str,
    mut record: Record,
    result: Result<(), Error>,
    job: &Job,
) -> Option<Record> {
    match result {
        Err(e) => {
            record.set_error(tool, &e);
            // What refusing it cost: damaged inputs must stay in budget too.
            if let Some(p) = monitor::peak_rss() {
                record.set_in(tool, "peak_rss", p);
            }
            Some(record)
        }
        Ok(()) if job.emitted == 0 && !job.discard => {
            stamp(tool, &mut record, job.started, job.concurrent());
            Some(record)
        }
        Ok(()) => None,
    }
}

/// Run `per_input` over the inputs (arguments or stdin, see [`cli::inputs`]) one at a
/// time and write the records to stdout; returns the exit status. Only a closed stdout
/// ends it early (quietly) besides a stop signal; any other write error is returned.
/// Each record's `peak_rss` is its input's own: the peak is reset before each input.
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
    let dests = Mutex::new(Destinations::new());
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
        // An input of the run from now on, whatever becomes of it: no output replaces it.
        lock_dests(&dests).add_input(&record.path());
        monitor::reset_peak();
        let mut job = Job {
            tool,
            sink: Sink::Direct(&mut out),
            started: Instant::now(),
            emitted: 0,
            discard: false,
            failed_write: None,
            share: None,
            dests: &dests,
        };
        let result = boundary(|| per_input(&mut record, &mut job));
        if let Some(e) = job.failed_write.take() {
            return Err(e);
        }
        let last = conclude(tool, record, result, &job);
        drop(job);
        if let Some(r) = last {
            out.write(&r)?;
        }
        bar.inc(1);
        if cli::interrupted() {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(out.status())
}

/// `--unordered`, for the tools that run inputs side by side
/// ([`for_each_record_batch`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BatchArgs {
    /// With several inputs running at once (-j, the budget permitting), write each
    /// input's records as soon as it is done instead of in input order
    #[arg(long)]
    pub unordered: bool,
}

/// The flags of a tool that runs inputs side by side: the budget and threads (`-m`,
/// `-j`) and `--unordered`. With [`ProcessingArgs::resolve`] and
/// [`Processing::for_each_record`], a tool is its operation plus one per-input function
/// that plans with its [`Room`].
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessingArgs {
    #[command(flatten)]
    pub budget: BudgetArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
}

/// The flags every processing tool on the batch driver takes: budget, jobs and order
/// ([`ProcessingArgs`]), outputs and logging.
#[derive(Debug, Clone, clap::Args)]
pub struct ToolArgs {
    #[command(flatten)]
    pub processing: ProcessingArgs,
    #[command(flatten)]
    pub output: cli::OutputArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What one input may use: its share of the batch's budget and threads when inputs run
/// side by side, else the whole (the budget chunk-plan planned the record for, without
/// `--memory-limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Bytes this input may hold (its predicted peak RSS at most).
    pub budget: u64,
    /// Threads it may run.
    pub threads: usize,
    /// A budget was given: `--memory-limit`, or chunk-plan's plan in the record. Without
    /// it a tool may plan for its efficient chunk instead of the largest that fits the
    /// machine's memory.
    pub explicit: bool,
}

/// [`ProcessingArgs`] resolved against the machine: the run's budget and threads.
#[derive(Debug, Clone)]
pub struct Processing<'a> {
    args: &'a ProcessingArgs,
    /// The whole process's budget (`--memory-limit` or the default).
    pub budget: Budget,
    /// Threads at most.
    pub jobs: usize,
    /// Inputs in flight at most: `--jobs` when given (or when swap is heavily used),
    /// else twice the threads. Small inputs spend part of their time waiting (reading,
    /// the fsync before an output is renamed into place); a second input per thread
    /// computes meanwhile. 50 LAZ tiles of 60,000 points on 2 CPUs: 1.5x faster than
    /// one file at a time with 2 in flight, 1.85x with 4. The threads are still shared:
    /// an input gets at least one, so up to twice `jobs` may run at once.
    pub in_flight: usize,
}

impl ProcessingArgs {
    /// Probe the machine and resolve the budget (a bad `--memory-limit` is a usage
    /// error) and `--jobs`; warns when swap is heavily used.
    pub fn resolve(&self) -> Result<Processing<'_>, Error> {
        let sys = SystemInfo::probe();
        let budget = self.budget.budget(&sys)?;
        let jobs = self.budget.jobs(&sys);
        if sys.heavy_swap() {
            log::warn!("more than half the swap is in use: expect it to be slow (one thread unless -j says otherwise)");
        }
        let in_flight = if self.budget.jobs.is_some() || sys.heavy_swap() {
            jobs
        } else {
            jobs.saturating_mul(2)
        };
        Ok(Processing {
            args: self,
            budget,
            jobs,
            in_flight,
        })
    }

    /// [`ProcessingArgs::resolve`], then [`Processing::for_each_record`]: for a tool
    /// that needs nothing else of the machine before its first input.
    pub fn for_each_record<L, F>(
        &self,
        tool: &'static str,
        input: &InputArgs,
        log: &LogArgs,
        least: L,
        per_input: F,
    ) -> anyhow::Result<cli::Status>
    where
        L: Fn(&std::path::Path) -> Option<u64> + Sync,
        F: Fn(&mut Record, &mut Job, Room) -> Result<(), Error> + Sync,
    {
        self.resolve()?
            .for_each_record(tool, input, log, least, per_input)
    }
}

impl Processing<'_> {
    /// The room of `record`: `share` when the batch driver gave one, else the budget
    /// chunk-plan planned the record for (without `--memory-limit`) or the run's, and
    /// every thread.
    pub fn room(&self, record: &Record, share: Option<Share>) -> Room {
        let planned = self.args.budget.planned(record);
        let share = share.unwrap_or(Share {
            budget: planned.map_or(self.budget.bytes, |b| b.bytes),
            threads: self.jobs,
        });
        Room {
            budget: share.budget,
            threads: share.threads,
            explicit: self.args.budget.memory_limit.is_some() || planned.is_some(),
        }
    }

    /// Run `per_input` over the inputs through [`for_each_record_batch`]: several at
    /// once when there are several, each with its [`Room`]; a single input runs as one
    /// at a time, with all of it. `least` is an input file's least need (peak RSS with
    /// the smallest chunk, one worker; `None` when unknown), read only when the record
    /// has no `estimate.<tool>.min_bytes` ([`least_need`]).
    pub fn for_each_record<L, F>(
        &self,
        tool: &'static str,
        input: &InputArgs,
        log: &LogArgs,
        least: L,
        per_input: F,
    ) -> anyhow::Result<cli::Status>
    where
        L: Fn(&std::path::Path) -> Option<u64> + Sync,
        F: Fn(&mut Record, &mut Job, Room) -> Result<(), Error> + Sync,
    {
        let least = |r: &Record| least_need(tool, r, &least);
        let batch = Batch {
            budget: self.budget.bytes,
            jobs: self.jobs,
            in_flight: self.in_flight,
            unordered: self.args.batch.unordered,
            planned_budgets: self.args.budget.memory_limit.is_none(),
            least: &least,
        };
        for_each_record_batch(tool, input, log, &batch, |r, job| {
            let room = self.room(r, job.share());
            per_input(r, job, room)
        })
    }
}

/// How a batch runs: the whole process's budget and threads, which the inputs in flight
/// share, and the order records are written in.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    /// Peak RSS of the whole process at most, in bytes.
    pub budget: u64,
    /// Threads at most (`--jobs`).
    pub jobs: usize,
    /// Inputs in flight at most (at least `jobs`; see [`Processing::in_flight`]).
    pub in_flight: usize,
    /// Write records as inputs finish, not in input order.
    pub unordered: bool,
    /// A record's `plan.budget_bytes` (chunk-plan's budget) caps the whole batch while
    /// that record is admitted: set it when no `--memory-limit` was given, as
    /// [`crate::cli::BudgetArgs::planned`] does, so `chunk-plan -m 256MiB | tool` keeps
    /// the process within 256 MiB with several inputs in flight.
    pub planned_budgets: bool,
    /// An input's least need (peak RSS with the smallest chunk, one worker), 0 when
    /// unknown: the tool's own header read and cost model, through [`least_need`]. Not
    /// a probe of every format here: the probes and cost models of every tool linked
    /// into one (code that never runs) measured 2.2 MiB more resident text, and so peak
    /// RSS, on one TIFF in strip-convert's debug build.
    pub least: &'a (dyn Fn(&Record) -> u64 + Sync),
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("budget", &self.budget)
            .field("jobs", &self.jobs)
            .field("unordered", &self.unordered)
            .field("planned_budgets", &self.planned_budgets)
            .finish_non_exhaustive()
    }
}

/// One input's part of a [`Batch`]: the budget it plans with and the threads it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Bytes this input may hold (its predicted peak RSS at most).
    pub budget: u64,
    /// Threads it may run.
    pub threads: usize,
}

/// What the writer thread gets: a finished record of input `seq`, or the end of it.
#[derive(Debug)]
enum Written {
    Record(u64, Record),
    Done(u64),
}

/// The batch's shared books: what budget and threads are free, the inputs in flight.
#[derive(Debug)]
struct Control {
    state: Mutex<State>,
    changed: Condvar,
    /// Stdout failed: start nothing more.
    stop: AtomicBool,
    slots: usize,
    unordered: bool,
    /// The batch's budget.
    budget: u64,
    /// The run's inputs and outputs ([`Job::claim_output`]).
    dests: Mutex<Destinations>,
}

#[derive(Debug)]
struct State {
    free_budget: u64,
    free_threads: usize,
    /// Inputs in flight, each with the most in flight at once during its peak window.
    /// And the threads each took from `free_threads` (an input runs at least one even
    /// when none is free: more inputs in flight than threads).
    running: Vec<(u64, Arc<AtomicUsize>, usize)>,
    /// In input order: every input before this one is written.
    written: u64,
    /// In input order: every input before this one has made its claims
    /// ([`Job::in_turn`]) or is done.
    turn: u64,
    /// Inputs after `turn` that have passed their turn.
    passed: BTreeSet<u64>,
    /// Inputs read whose turn has not come: each becomes an input of the run (in
    /// [`Control::dests`]) when it does, so that which inputs an output claim sees does
    /// not depend on how far ahead they were read (as one at a time: the inputs so far).
    unregistered: BTreeMap<u64, std::path::PathBuf>,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock: a panic in the books' few lines, which cannot hold a bad state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until input `seq` (predicted to need `cost` bytes at least) may start, and
    /// take its share: the free budget and threads divided among the inputs that may
    /// still start now (`queued`, this one included, at most the free slots). An input
    /// that needs more than its share waits for others to finish, and runs alone with
    /// the whole budget when even that is too little (its tool then refuses it or not).
    /// In input order, inputs more than a few slots ahead of the writer wait too, so
    /// records held for order stay few. `None`: the batch is over (stdout closed, a stop
    /// signal), start nothing more.
    fn admit(
        &self,
        seq: u64,
        cost: u64,
        queued: usize,
        cap: Option<u64>,
    ) -> Option<(Share, Arc<AtomicUsize>)> {
        let mut st = self.lock();
        loop {
            if self.stop.load(Ordering::SeqCst) || cli::interrupted() {
                return None;
            }
            let running = st.running.len();
            // Under a cap, what is in flight counts against it.
            let free = match cap {
                Some(c) => c
                    .saturating_sub(self.budget - st.free_budget)
                    .min(st.free_budget),
                None => st.free_budget,
            };
            let ahead = self.unordered || seq < st.written + 4 * self.slots as u64;
            if ahead && running < self.slots {
                let open = (self.slots - running).min(queued.max(1));
                let each = free / open as u64;
                let budget = if running == 0 {
                    Some(each.max(cost).min(free))
                } else if free >= cost {
                    Some(each.max(cost))
                } else {
                    None
                };
                if let Some(budget) = budget {
                    let threads = (st.free_threads / open).max(1);
                    let taken = threads.min(st.free_threads);
                    st.free_budget -= budget;
                    st.free_threads -= taken;
                    if running == 0 {
                        // Nothing else in flight: the high-water mark can be this input's.
                        monitor::reset_peak();
                    }
                    let flight = Arc::new(AtomicUsize::new(running + 1));
                    for (_, f, _) in &st.running {
                        f.fetch_max(running + 1, Ordering::SeqCst);
                    }
                    st.running.push((seq, Arc::clone(&flight), taken));
                    return Some((Share { budget, threads }, flight));
                }
            }
            // Timed: a stop signal notifies no one.
            st = self
                .changed
                .wait_timeout(st, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Input `seq` is done: give its share back.
    fn release(&self, seq: u64, share: Share) {
        let mut st = self.lock();
        st.free_budget += share.budget;
        if let Some(i) = st.running.iter().position(|(s, _, _)| *s == seq) {
            let (_, _, taken) = st.running.swap_remove(i);
            st.free_threads += taken;
        }
        self.changed.notify_all();
    }

    /// Input `seq` has made its claims or is done (idempotent).
    fn pass_turn(&self, seq: u64) {
        let mut st = self.lock();
        if seq < st.turn {
            return;
        }
        let st = &mut *st;
        st.passed.insert(seq);
        while st.passed.remove(&st.turn) {
            self.register(st, st.turn);
            st.turn += 1;
        }
        self.changed.notify_all();
    }

    /// Input `seq`'s turn has come: it is an input of the run from now on, whatever
    /// becomes of it (no output replaces it).
    fn register(&self, st: &mut State, seq: u64) {
        if let Some(path) = st.unregistered.remove(&seq) {
            lock_dests(&self.dests).add_input(&path);
        }
    }

    fn set_written(&self, next: u64) {
        self.lock().written = next;
        self.changed.notify_all();
    }
}

/// The least an input needs (peak RSS with the smallest chunk, one worker): the
/// record's `estimate.<tool>.min_bytes` when `mem-estimate` wrote one, else `least` on
/// the file (the tool's own header read and cost model, as [`crate::cost::estimate`]
/// gives it; called for a regular file only: a FIFO would block). 0 when unknown (the
/// tool's own run then says why).
pub fn least_need(
    tool: &str,
    record: &Record,
    least: impl FnOnce(&std::path::Path) -> Option<u64>,
) -> u64 {
    if let Some(b) = record
        .get("estimate")
        .and_then(|e| e.get(tool))
        .and_then(|e| e.get("min_bytes"))
        .and_then(Value::as_u64)
    {
        return b;
    }
    let path = record.path();
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return 0;
    }
    least(&path).unwrap_or(0)
}

/// Whether the inputs are known before reading any to be at most one: a single argument
/// that is not `-` (stdin) nor a directory to walk.
fn single_input(input: &InputArgs) -> bool {
    match input.inputs.as_slice() {
        [one] => one != "-" && !(input.recursive && std::path::Path::new(one).is_dir()),
        _ => false,
    }
}

/// [`for_each_record`] with several inputs in flight at once: up to `batch.jobs`, each
/// with a [`Share`] of the budget and threads ([`Job::share`]; the per-input function
/// plans with it), so the whole process keeps to `batch.budget`. A single input, or the
/// last of a batch, gets everything. An input whose least need ([`Batch::least`]) is more
/// than its share waits for room (a record planned by chunk-plan: see
/// [`Batch::planned_budgets`]). Records are written in input order unless
/// `batch.unordered`.
///
/// `peak_rss` is then the **whole process's** peak RSS while the input ran (the kernel
/// keeps one high-water mark per process), reset only when no other input was in flight:
/// an upper bound on the input's own, the figure the budget holds. The record says
/// `concurrent`, the most inputs in flight at once in that time (1: its own peak).
pub fn for_each_record_batch<F>(
    tool: &'static str,
    input: &InputArgs,
    log: &LogArgs,
    batch: &Batch<'_>,
    per_input: F,
) -> anyhow::Result<cli::Status>
where
    F: Fn(&mut Record, &mut Job) -> Result<(), Error> + Sync,
{
    let slots = batch.in_flight.max(batch.jobs).max(1);
    // One input, or one slot: the one-at-a-time driver, with no reader or writer thread
    // (each thread that allocates gets its own malloc arena and stack).
    if slots == 1 || single_input(input) {
        return for_each_record(tool, input, log, per_input);
    }
    let ctl = Control {
        state: Mutex::new(State {
            free_budget: batch.budget,
            free_threads: batch.jobs.max(1),
            running: Vec::new(),
            written: 0,
            turn: 0,
            passed: BTreeSet::new(),
            unregistered: BTreeMap::new(),
        }),
        changed: Condvar::new(),
        stop: AtomicBool::new(false),
        slots,
        unordered: batch.unordered,
        budget: batch.budget,
        dests: Mutex::new(Destinations::new()),
    };
    let bar = cli::progress(None, log);
    // The reader runs apart and is not joined: it may be blocked on a terminal's stdin
    // when the run ends (a closed stdout, a signal).
    let (in_tx, in_rx) = mpsc::sync_channel::<Result<Input, ReadError>>(slots);
    let args = input.clone();
    thread::spawn(move || {
        for item in cli::inputs(tool, &args) {
            let last = item.is_err();
            if in_tx.send(item).is_err() || last {
                break;
            }
        }
    });
    let (out_tx, out_rx) = mpsc::channel::<Written>();
    let per_input = &per_input;
    let ctl = &ctl;
    let (written, read_error) = thread::scope(|s| {
        let writer = s.spawn({
            let bar = bar.clone();
            move || write_records(tool, out_rx, ctl, &bar)
        });
        let mut pending: VecDeque<(u64, Record)> = VecDeque::new();
        let (mut seq, mut ended, mut read_error) = (0u64, false, None);
        loop {
            if cli::interrupted() || ctl.stop.load(Ordering::SeqCst) {
                break;
            }
            // Read ahead up to a slot's worth without waiting, so the last inputs are
            // known to be the last (and get the threads the others leave).
            while pending.len() < slots && !ended {
                let item = if pending.is_empty() {
                    // Waiting for input, but not past the end of the batch.
                    match in_rx.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok(i) => Some(i),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if cli::interrupted() || ctl.stop.load(Ordering::SeqCst) {
                                break;
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                } else {
                    // A moment's wait: enough for a reader that has its inputs at hand
                    // to say it has no more (the last input then runs as one at a time).
                    // Longer for the first input: in `chunk-plan x | tool` the end of
                    // the stream comes when the upstream process exits (late on a busy
                    // machine), and a lone input admitted before it would plan with half
                    // the budget and threads. Up to a second, once, is little beside the
                    // work of a stream whose records come slower than that.
                    let wait = if seq == 1 { 1000 } else { 10 };
                    match in_rx.recv_timeout(std::time::Duration::from_millis(wait)) {
                        Ok(i) => Some(i),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                };
                let record = match item {
                    None => {
                        ended = true;
                        continue;
                    }
                    Some(Err(e)) => {
                        read_error = Some(e);
                        ended = true;
                        continue;
                    }
                    Some(Ok(Input::Bad(r))) => Err(r),
                    // Upstream failures pass through untouched.
                    Some(Ok(Input::Record(r))) if r.is_error() => Err(r),
                    Some(Ok(Input::Record(r))) => Ok(r),
                };
                match record {
                    Ok(r) => {
                        // An input of the run once its turn comes, as one at a time.
                        ctl.lock().unregistered.insert(seq, r.path());
                        pending.push_back((seq, r));
                    }
                    Err(r) => {
                        ctl.pass_turn(seq);
                        let _ = out_tx.send(Written::Record(seq, r));
                        let _ = out_tx.send(Written::Done(seq));
                    }
                }
                seq += 1;
            }
            let Some((n, mut record)) = pending.pop_front() else {
                if ended {
                    break;
                }
                continue;
            };
            // The last input with nothing else in flight gets everything: no need to
            // know its cost (a probe leaves some of what it read resident).
            let last_alone = ended && pending.is_empty() && ctl.lock().running.is_empty();
            let cost = if last_alone {
                0
            } else {
                (batch.least)(&record)
            };
            let queued = if ended { pending.len() + 1 } else { usize::MAX };
            let cap = batch
                .planned_budgets
                .then(|| record.get("plan")?.get("budget_bytes")?.as_u64())
                .flatten();
            let Some((share, flight)) = ctl.admit(n, cost, queued, cap) else {
                break;
            };
            let tx = out_tx.clone();
            let alone = flight.load(Ordering::SeqCst) == 1;
            let one = move || {
                let mut job = Job {
                    tool,
                    sink: Sink::Queue {
                        seq: n,
                        tx: tx.clone(),
                        ctl,
                        flight,
                    },
                    started: Instant::now(),
                    emitted: 0,
                    discard: false,
                    failed_write: None,
                    share: Some(share),
                    dests: &ctl.dests,
                };
                let result = boundary(|| per_input(&mut record, &mut job));
                ctl.pass_turn(n);
                if let Some(r) = conclude(tool, record, result, &job) {
                    let _ = tx.send(Written::Record(n, r));
                }
                ctl.release(n, share);
                let _ = tx.send(Written::Done(n));
            };
            if alone && ended && pending.is_empty() {
                // The last input, alone (a single record from stdin): on this thread,
                // as one at a time; a thread of its own would start its own malloc
                // arena and stack.
                one();
            } else {
                s.spawn(one);
            }
        }
        drop(out_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("{tool}: the record writer panicked")));
        (written, read_error)
    });
    bar.finish_and_clear();
    let out = written?;
    if let Some(e) = read_error {
        return Err(e.into());
    }
    Ok(out.status())
}

/// The writer thread: records to stdout as inputs finish, held back until every earlier
/// input is written unless unordered. A write error stops the batch (no new input
/// starts) and is returned once the inputs in flight are done.
fn write_records(
    tool: &'static str,
    rx: Receiver<Written>,
    ctl: &Control,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Output> {
    let mut out = Output::new(tool);
    let mut failed: Option<anyhow::Error> = None;
    let mut write = |out: &mut Output, r: &Record| {
        if failed.is_none() {
            if let Err(e) = out.write(r) {
                failed = Some(e.into());
                ctl.stop.store(true, Ordering::SeqCst);
                ctl.changed.notify_all();
            }
        }
    };
    // Input order: records of inputs after `next`, and whether each is done.
    let mut next = 0u64;
    let mut held: BTreeMap<u64, (Vec<Record>, bool)> = BTreeMap::new();
    for msg in rx {
        match msg {
            Written::Record(_, r) if ctl.unordered => write(&mut out, &r),
            Written::Done(_) if ctl.unordered => bar.inc(1),
            Written::Record(n, r) if n == next => write(&mut out, &r),
            Written::Record(n, r) => held.entry(n).or_default().0.push(r),
            Written::Done(n) => {
                held.entry(n).or_default().1 = true;
                // Write out every finished input at the head, then what the new head
                // has finished so far.
                while let Some((records, done)) = held.get_mut(&next) {
                    for r in records.drain(..) {
                        write(&mut out, &r);
                    }
                    if !*done {
                        break;
                    }
                    held.remove(&next);
                    next += 1;
                    bar.inc(1);
                }
                ctl.set_written(next);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
