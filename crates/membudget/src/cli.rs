//! CLI plumbing written once for every tool: inputs from arguments, `-` or stdin; records
//! written one flushed line at a time; a closed pipe ends the tool quietly; exit codes;
//! shared flags; mirrored output paths and atomic outputs; progress bars and logging.
//!
//! A tool's `main.rs` is `membudget::cli::main(tool::NAME, tool::command(), tool::run)`.

use crate::budget::Budget;
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::outputs::{self, Claim, Lock};
use crate::system::SystemInfo;
use clap::{ArgAction, ArgMatches, Args, Command};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The exit status of a tool. Never a count of failures: counts wrap at 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: every input done.
    Ok = 0,
    /// 1: some inputs failed; each has an error record.
    SomeFailed = 1,
    /// 2: usage error or fatal error (no records could be processed).
    Fatal = 2,
    /// 3: the memory budget cannot be met for some input.
    Budget = 3,
}

impl Status {
    /// The worse of two statuses (budget > fatal > failed > ok, as a script wants to know
    /// the most specific reason).
    pub fn worst(self, other: Status) -> Status {
        let rank = |s: Status| match s {
            Status::Ok => 0,
            Status::SomeFailed => 1,
            Status::Fatal => 2,
            Status::Budget => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Status> for std::process::ExitCode {
    fn from(s: Status) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}

/// Inputs: paths or manifest records, as arguments or on stdin.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Input files or manifest lines; `-` or nothing reads paths or NDJSON records from stdin
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<OsString>,
    /// Expand directories into the files below them (sorted, hidden files skipped)
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

/// The memory budget and concurrency.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of
    /// available memory (60%). Default: 70% of the smallest of available memory, the
    /// cgroup limit and the room left under it (the limit less what other processes in
    /// the cgroup hold, page cache not counted)
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = memory_limit)]
    pub memory_limit: Option<String>,
    /// Workers or threads at most (default: the CPUs this process may use); fewer run
    /// when the budget holds fewer, and the record says how many ran
    #[arg(short = 'j', long, value_name = "N", value_parser = at_least_one)]
    pub jobs: Option<usize>,
}

/// `--memory-limit` is checked as clap parses it: a budget that does not parse is a usage
/// error before any input is read (a share like `60%` is resolved later, per machine).
fn memory_limit(s: &str) -> Result<String, String> {
    s.parse::<crate::budget::BudgetSpec>()
        .map(|_| s.to_string())
        .map_err(|e| e.message)
}

/// A usage error found by a tool's own checks of its options (those clap cannot check
/// alone, e.g. two options that must agree): `return Err(cli::usage("..."))` from `run`
/// **before the first input is read** (before `cli::inputs`), and [`main`] prints
/// `tool: message` and exits 2, with no record written. A bad option is never a
/// per-record error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Error::new(ErrorKind::Usage, message).into()
}

/// A clap value parser for a finite number in `min..=max` (`--min-ssim`: 0 to 1), so a
/// value out of range is a usage error (exit 2) before any input is read:
/// `#[arg(long, value_parser = cli::number_in(0.0, 1.0))]`.
pub fn number_in(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        if v.is_finite() && v >= min && v <= max {
            Ok(v)
        } else {
            Err(format!("must be from {min} to {max}"))
        }
    }
}

/// A clap value parser for a finite number above zero (a radius, a compression ratio):
/// `#[arg(long, value_parser = cli::positive_number)]`.
pub fn positive_number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a number above 0".into())
    }
}

/// `--jobs 0` would plan no work at all: refuse it as a usage error rather than quietly
/// running one worker.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl BudgetArgs {
    /// Resolve the budget against the machine.
    pub fn budget(&self, sys: &SystemInfo) -> Result<Budget, Error> {
        Budget::from_arg(self.memory_limit.as_deref(), sys)
    }
    /// The budget an upstream `chunk-plan` planned `record` for (`plan.budget_bytes`),
    /// when `--memory-limit` was not given: `chunk-plan -m 256MiB | tool` keeps to
    /// 256 MiB. `None` when `--memory-limit` was given or the record has no plan.
    pub fn planned(&self, record: &Record) -> Option<Budget> {
        if self.memory_limit.is_some() {
            return None;
        }
        let bytes = record.get("plan")?.get("budget_bytes")?.as_u64()?;
        Some(Budget::bytes(bytes))
    }

    /// Workers at most: `--jobs` or the usable CPUs (one when swap is heavily used).
    pub fn jobs(&self, sys: &SystemInfo) -> usize {
        let cpus = if sys.heavy_swap() { 1 } else { sys.cpus.max(1) };
        self.jobs.unwrap_or(cpus).max(1)
    }
}

/// Where outputs go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write outputs under this directory, mirroring the input tree (see --base);
    /// default: beside each input
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// The part of input paths not mirrored under --output-dir (default: none for
    /// relative paths, the parent directory for absolute ones)
    #[arg(long, value_name = "DIR", requires = "output_dir")]
    pub base: Option<PathBuf>,
    /// Overwrite existing outputs (by default they are skipped); an input of the run is
    /// never overwritten
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Say what would be done, write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

impl OutputArgs {
    /// The output path for `input`, given the output's file name (`a.jp2`).
    /// Mirrors the input's directories under `--output-dir`, never outside it (leading
    /// `..` components are dropped).
    pub fn output_path(
        &self,
        input: &Path,
        file_name: impl AsRef<OsStr>,
    ) -> Result<PathBuf, Error> {
        let file_name = file_name.as_ref();
        let parent = input.parent().unwrap_or(Path::new(""));
        let Some(out) = &self.output_dir else {
            return Ok(parent.join(file_name));
        };
        let rel: PathBuf = match &self.base {
            Some(base) => parent
                .strip_prefix(base)
                .map_err(|_| {
                    Error::new(
                        ErrorKind::BadRecord,
                        format!("{} is not under --base {}", input.display(), base.display()),
                    )
                })?
                .to_path_buf(),
            None if parent.is_absolute() => PathBuf::new(),
            None => parent.to_path_buf(),
        };
        // Resolve `.` and `dir/..` lexically; `..` left over at the start (`../scans/a.tif`)
        // is dropped, as tar does, so an output never lands outside --output-dir.
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => clean.push(p),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Ok(out.join(clean).join(file_name))
    }
}

/// Logging verbosity.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Less on stderr: -q hides warnings and progress, -qq hides per-input errors too
    #[arg(short = 'q', long, action = ArgAction::Count, global = true)]
    pub quiet: u8,
    /// More on stderr: -v explains decisions, -vv traces
    #[arg(short = 'v', long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl LogArgs {
    /// The log level these flags select.
    pub fn level(&self) -> log::LevelFilter {
        match i16::from(self.verbose) - i16::from(self.quiet) {
            i16::MIN..=-2 => log::LevelFilter::Off,
            -1 => log::LevelFilter::Error,
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }
}

/// A stderr logger printing `tool: message`, written here because env_logger's format
/// and environment handling are more than a Unix tool's stderr wants.
#[derive(Debug)]
struct StderrLogger {
    tool: &'static str,
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = match r.level() {
                log::Level::Error | log::Level::Info => format!("{}: {}", self.tool, r.args()),
                l => format!("{}: {}: {}", self.tool, l.as_str().to_lowercase(), r.args()),
            };
            stderr_line(&line);
        }
    }
    fn flush(&self) {}
}

/// Write one line to stderr in a single write, so the lines of tools sharing a terminal
/// or a pipe (`a | b 2>log`) never interleave mid-line (pipe writes up to PIPE_BUF bytes
/// are atomic; `writeln!` on unbuffered stderr makes one write per piece). Control
/// characters (an escape sequence in a file name, a newline in a message) are shown
/// escaped (`\x1b`): a name must not drive the terminal or split a line.
pub fn stderr_line(line: &str) {
    let mut buf = escape(line.as_bytes());
    buf.push('\n');
    let _ = io::stderr().lock().write_all(buf.as_bytes());
}

/// `bytes` for a terminal: valid UTF-8 as it is, except control characters (C0, DEL,
/// C1); those and bytes that are not UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                // Every control character is below U+0100.
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Install the stderr logger at `level`.
pub fn init_logging(tool: &'static str, level: log::LevelFilter) {
    static LOGGER: OnceLock<StderrLogger> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| StderrLogger { tool });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// One input: a record to process, or one to write through untouched.
#[derive(Debug)]
pub enum Input {
    /// A record about a file, to process.
    Record(Record),
    /// A record to write through untouched and go on: the error record of a line that
    /// could not be read as a record, an upstream tool's error record, or the machine
    /// record of `mem-estimate --system`.
    Bad(Record),
}

/// Stdin could not be read (not its end: an error, as `tool < /` gives): fatal, exit 2,
/// after the records read so far. Input must never end silently.
#[derive(Debug, thiserror::Error)]
#[error("stdin: read error: {0}")]
pub struct ReadError(pub io::Error);

/// A record from one stdin line, or its error record; `None` for a blank line.
fn from_line(tool: &'static str, line: &[u8]) -> Option<Input> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match Record::parse_bytes(line) {
        Ok(Some(r)) => Some(classify(r)),
        Ok(None) => None,
        Err(e) => Some(Input::Bad(Record::bad_line(tool, line, &e))),
    }
}

/// A record from one argument, or its error record.
fn from_arg(tool: &'static str, arg: &OsStr) -> Input {
    match Record::parse_arg(arg) {
        Ok(r) => classify(r),
        Err(e) => Input::Bad(Record::bad_line(tool, arg.as_bytes(), &e)),
    }
}

/// System records and upstream error records are written through untouched: a failure is
/// reported by the tool where it happened, and passes every later tool unchanged.
fn classify(r: Record) -> Input {
    if r.is_system() || r.is_error() {
        Input::Bad(r)
    } else {
        Input::Record(r)
    }
}

/// The longest stdin line read: a path or a record is far shorter. A longer line is not
/// held, only counted: `head -c 600M /dev/zero | tool` costs no memory.
pub const MAX_LINE: usize = 1 << 20;

/// One stdin line.
#[derive(Debug)]
enum Line {
    /// A line (its `\n` included when it had one).
    Whole(Vec<u8>),
    /// A line longer than [`MAX_LINE`]: its first bytes.
    TooLong(Vec<u8>),
}

/// The lines of `reader`, as bytes (a path need not be UTF-8), each at most [`MAX_LINE`]
/// bytes held. Ends at end of input; a read error is returned once, then the iterator
/// ends.
struct ByteLines<R> {
    reader: R,
    failed: bool,
}

impl<R: BufRead> ByteLines<R> {
    fn read(&mut self) -> io::Result<Option<Line>> {
        let mut line = Vec::new();
        // One byte more than allowed, to tell a line of MAX_LINE bytes from a longer one.
        // std's read_until and skip_until retry on EINTR.
        let cap = MAX_LINE as u64 + 1;
        if self
            .reader
            .by_ref()
            .take(cap)
            .read_until(b'\n', &mut line)?
            == 0
        {
            return Ok(None);
        }
        if line.len() <= MAX_LINE || line.ends_with(b"\n") {
            return Ok(Some(Line::Whole(line)));
        }
        // The rest of the line is skipped through the reader's buffer, never held.
        self.reader.skip_until(b'\n')?;
        // One byte past the echo, so the echo says it was cut.
        line.truncate(crate::manifest::ECHO_BYTES + 1);
        Ok(Some(Line::TooLong(line)))
    }
}

impl<R: BufRead> Iterator for ByteLines<R> {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<io::Result<Line>> {
        if self.failed {
            return None;
        }
        let r = self.read().transpose();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}

/// The input of one stdin line: a record, an error record, or nothing (a blank line).
fn from_stdin(tool: &'static str, line: Line) -> Option<Input> {
    match line {
        Line::Whole(l) => from_line(tool, &l),
        Line::TooLong(head) => {
            let e = Error::new(
                ErrorKind::BadRecord,
                format!(
                    "line longer than the {} MiB a path or record may take: skipped",
                    MAX_LINE >> 20
                ),
            );
            Some(Input::Bad(Record::bad_line(tool, &head, &e)))
        }
    }
}

/// Iterate the inputs: arguments if any (each `-` reads stdin), else stdin. Directories
/// are expanded when `recursive`. Reading stdin stops at end of input; a read error is
/// an `Err` ([`ReadError`]) after the inputs read so far: the tool ends with it (`?`),
/// exit 2, never quietly as if the input had ended.
pub fn inputs(
    tool: &'static str,
    args: &InputArgs,
) -> impl Iterator<Item = Result<Input, ReadError>> {
    let sources: Vec<OsString> = if args.inputs.is_empty() {
        vec!["-".into()]
    } else {
        args.inputs.clone()
    };
    let recursive = args.recursive;
    sources
        .into_iter()
        .flat_map(
            move |src| -> Box<dyn Iterator<Item = Result<Input, ReadError>>> {
                if src == "-" {
                    let lines = ByteLines {
                        reader: io::stdin().lock(),
                        failed: false,
                    };
                    Box::new(lines.filter_map(move |l| match l {
                        Ok(l) => from_stdin(tool, l).map(Ok),
                        Err(e) => Some(Err(ReadError(e))),
                    }))
                } else {
                    Box::new(std::iter::once(Ok(from_arg(tool, &src))))
                }
            },
        )
        .flat_map(
            move |input| -> Box<dyn Iterator<Item = Result<Input, ReadError>>> {
                match input {
                    Ok(Input::Record(r)) if recursive && r.path().is_dir() => {
                        let mut found = Vec::new();
                        walk(&r.path(), &mut found);
                        found.sort_by(|a, b| a.0.cmp(&b.0));
                        Box::new(found.into_iter().map(move |(path, listed)| {
                            let mut rec = r.with_path(&path);
                            Ok(match listed {
                                Ok(()) => Input::Record(rec),
                                // Written through as an error record: a directory we cannot
                                // list must not vanish from the run silently.
                                Err(e) => {
                                    rec.set_error(tool, &e);
                                    Input::Bad(rec)
                                }
                            })
                        }))
                    }
                    other => Box::new(std::iter::once(other)),
                }
            },
        )
}

/// Files below `dir` (`Ok`), and directories that could not be listed (`Err`), skipping
/// hidden entries and not following directory symlinks (they can loop; `find` does not
/// follow them either). Symlinks to files are followed.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, Result<(), Error>)>) {
    let unlisted = |e: io::Error| {
        let e = Error::from(e);
        let message = format!("cannot list directory: {}", e.message);
        (dir.to_path_buf(), Err(Error::new(e.kind, message)))
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return out.push(unlisted(e)),
    };
    for entry in rd {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.push(unlisted(e));
                continue;
            }
        };
        if entry.file_name().as_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out),
            Ok(_) if path.is_file() => out.push((path, Ok(()))),
            _ => {}
        }
    }
}

/// Raised inside a tool when stdout is closed downstream: the tool ends quietly.
#[derive(Debug, thiserror::Error)]
#[error("output closed")]
pub struct ClosedPipe;

/// Writing a record failed. Only a closed pipe ends a tool quietly; any other failure
/// (a full disk, `> /dev/full`, EIO) is fatal: `tool: write error: ...`, exit 2, so a
/// truncated manifest is never taken for a complete one.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Stdout is closed downstream (`| head`): end quietly, status 0.
    #[error(transparent)]
    Closed(#[from] ClosedPipe),
    /// Any other write error.
    #[error("write error: {0}")]
    Failed(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> WriteError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            WriteError::Closed(ClosedPipe)
        } else {
            WriteError::Failed(e)
        }
    }
}

/// The record writer: block-buffered stdout, flushed after every record so a downstream
/// tool sees each as soon as it is done. Also tracks the exit status.
#[derive(Debug)]
pub struct Output {
    tool: &'static str,
    out: io::BufWriter<io::Stdout>,
    status: Status,
    /// Records written, errors included.
    pub written: u64,
    /// Records with an error.
    pub failed: u64,
}

impl Output {
    /// A writer for `tool`.
    pub fn new(tool: &'static str) -> Output {
        Output {
            tool,
            out: io::BufWriter::with_capacity(64 << 10, io::stdout()),
            status: Status::Ok,
            written: 0,
            failed: 0,
        }
    }

    /// Write one record. An error record raises the exit status (to 3 for a budget error,
    /// else 1); when the error is this tool's own it also prints `tool: path: message` on
    /// stderr (upstream tools printed theirs). A closed stdout returns
    /// [`WriteError::Closed`], any other write error [`WriteError::Failed`].
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        if let Some(e) = record.error() {
            // Reported where it happened, once: an error read from upstream (this very
            // tool's, too, in `a | b | a`) was reported by the tool that set it.
            if record.error_is_new() {
                self.failed += 1;
                if log::max_level() >= log::LevelFilter::Error {
                    let shown = match record.get("path") {
                        Some(serde_json::Value::String(_)) if record.path_str().is_empty() => {
                            "\"\"".to_string()
                        }
                        // The real bytes, escaped: `\xe9` says more than U+FFFD.
                        Some(serde_json::Value::String(_)) => {
                            escape(record.path().as_os_str().as_bytes())
                        }
                        _ => match record.get("line").and_then(|l| l.as_str()) {
                            Some("") => "\"\"".to_string(),
                            Some(line) => line.to_string(),
                            None => "-".to_string(),
                        },
                    };
                    stderr_line(&format!("{}: {}: {}", self.tool, shown, e.message));
                }
                self.status = self.status.worst(if e.kind == ErrorKind::Budget {
                    Status::Budget
                } else {
                    Status::SomeFailed
                });
            } else {
                // An upstream tool already reported it on stderr; the input still failed,
                // so the status says so (a Makefile or `set -e` script sees it).
                self.failed += 1;
                self.status = self.status.worst(Status::SomeFailed);
            }
        }
        let line = record.to_line();
        let r = self
            .out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"))
            .and_then(|_| self.out.flush());
        self.written += 1;
        Ok(r?)
    }

    /// Raise the exit status (e.g. to [`Status::Budget`]).
    pub fn raise(&mut self, s: Status) {
        self.status = self.status.worst(s);
    }

    /// The exit status so far.
    pub fn status(&self) -> Status {
        self.status
    }
}

/// A progress bar on stderr when it is a terminal and not `-q`; hidden otherwise.
pub fn progress(len: Option<u64>, log: &LogArgs) -> indicatif::ProgressBar {
    if log.quiet > 0 || !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// Temp files not yet renamed into place: removed on Ctrl-C, SIGTERM and SIGHUP.
fn pending() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Scratch directories: removed with their contents on Ctrl-C, SIGTERM and SIGHUP.
fn pending_dirs() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Have the scratch directory `dir` removed, with everything in it, when Ctrl-C,
/// SIGTERM or SIGHUP ends the run; [`unregister_temp_dir`] once it is gone.
pub fn register_temp_dir(dir: &Path) {
    if let Ok(mut p) = pending_dirs().lock() {
        p.insert(dir.to_path_buf());
    }
}

/// Undo [`register_temp_dir`].
pub fn unregister_temp_dir(dir: &Path) {
    if let Ok(mut p) = pending_dirs().lock() {
        p.remove(dir);
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C, SIGTERM or SIGHUP was received. The process ends by that signal as
/// soon as pending temporary files are removed, so this is rarely seen true.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// The signals that end a run early. Each removes the pending temporary files, then the
/// process dies of that same signal, so the shell, `make` or `xargs` sees how it ended
/// (status 130 for Ctrl-C, 143 for SIGTERM).
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A signal set holding `signals`.
fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Whether `sig` is ignored, as `nohup` (SIGHUP) or a non-interactive shell's `&`
/// (SIGINT) leave it: such a signal must stay ignored.
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: querying the current action only (no new action is installed).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Take SIGINT, SIGTERM and SIGHUP on a dedicated thread (`sigwait`), where removing
/// files and taking a lock is safe, unlike in an asynchronous signal handler. Written
/// with libc because the `ctrlc` crate does not say which signal came, and the exit
/// status must. Must run before the tool starts threads: they inherit the blocked mask.
/// Child processes do not (Rust's `Command` resets the mask in the child).
fn install_interrupt_handler() {
    let wanted: Vec<libc::c_int> = STOP_SIGNALS.into_iter().filter(|&s| !ignored(s)).collect();
    if wanted.is_empty() {
        return;
    }
    let set = signal_set(&wanted);
    // SAFETY: `set` is initialised; blocking signals in this thread has no other effect.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let waiter = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` and `sig` are valid for the call.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            if let Ok(p) = pending().lock() {
                for path in p.iter() {
                    let _ = std::fs::remove_file(path);
                }
            }
            if let Ok(p) = pending_dirs().lock() {
                for dir in p.iter() {
                    // Renamed first: the tool's threads still create files in it by
                    // path, and one created after remove_dir_all listed the directory
                    // would leave it behind; after the rename their creates fail. A
                    // file already being created may still land: try again until gone.
                    let mut aside = dir.clone().into_os_string();
                    aside.push(".removing");
                    let gone = match std::fs::rename(dir, &aside) {
                        Ok(()) => PathBuf::from(aside),
                        Err(_) => dir.clone(),
                    };
                    for _ in 0..100 {
                        if std::fs::remove_dir_all(&gone).is_ok() || !gone.exists() {
                            break;
                        }
                    }
                }
            }
            die_of(sig);
        });
    if waiter.is_err() {
        // No thread to take them: let the signals act as they would have.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// End the process by `sig` with its default action (terminate), as if never caught.
fn die_of(sig: libc::c_int) -> ! {
    let _ = io::stderr().flush();
    // SAFETY: restoring the default action and unblocking `sig` in this thread, then
    // sending it to this thread, which terminates the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let one = signal_set(&[sig]);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
        libc::raise(sig);
    }
    // Not reached when the signal's default action terminates; the shell's convention
    // otherwise.
    std::process::exit(128 + sig)
}

/// Register a path for removal when a stop signal ends the run.
pub(crate) fn add_pending(path: &Path) {
    if let Ok(mut p) = pending().lock() {
        p.insert(path.to_path_buf());
    }
}

/// The path was removed or renamed into place: nothing to remove on a signal.
pub(crate) fn forget_pending(path: &Path) {
    if let Ok(mut p) = pending().lock() {
        p.remove(path);
    }
}

/// An output file written under a temporary name in its destination directory and
/// renamed into place by [`AtomicFile::commit`]. Dropped without commit (an error, a
/// panic) or interrupted, the temporary file is removed: no half-written file ever
/// appears under the final name.
///
/// The destination is claimed first ([`crate::outputs::lock`]): while this run writes it,
/// another run gets "being written by another run (pid N)". The temporary is named
/// `.<name>.<pid>-<boot>-<random>.part`, so a later run removes it if this process is
/// killed (see [`crate::outputs::sweep`]).
#[derive(Debug)]
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
    // Dropped after the temporary is renamed or removed.
    _lock: Lock,
}

impl AtomicFile {
    /// Claim `dest` and create the temporary file beside it (creating directories as
    /// needed). A destination another live run holds is an error of kind `WouldBlock`
    /// whose message says so ([`AtomicFile::claim`] tells it apart).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        Self::claim(dest)?.map_err(|reason| io::Error::new(io::ErrorKind::WouldBlock, reason))
    }

    /// Claim `dest` and create the temporary file: `Ok(Err(reason))` when another live
    /// run is writing `dest` (the reason names its pid), for a record that skips it.
    pub fn claim(dest: &Path) -> io::Result<Result<AtomicFile, String>> {
        let lock = match outputs::lock(dest)? {
            Claim::Mine(l) => l,
            Claim::Busy(pid) => return Ok(Err(Claim::busy_reason(pid))),
        };
        let dir = outputs::parent_dir(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&outputs::temp_prefix(&name))
            .suffix(outputs::PART_SUFFIX)
            .tempfile_in(dir)?;
        add_pending(tmp.path());
        Ok(Ok(AtomicFile {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
            _lock: lock,
        }))
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp
            .as_mut()
            .expect("AtomicFile used after commit")
            .as_file_mut()
    }

    /// The temporary file's path (for libraries that want a path).
    pub fn temp_path(&self) -> &Path {
        self.tmp
            .as_ref()
            .expect("AtomicFile used after commit")
            .path()
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Empty the temporary file and go back to its start, to write it again (the claim
    /// is kept).
    pub fn restart(&mut self) -> io::Result<()> {
        use std::io::Seek;
        let f = self.file();
        f.set_len(0)?;
        f.rewind()
    }

    /// Flush to disk and rename into place.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("AtomicFile committed twice");
        // tempfile creates 0600 files; an output should get the mode any new file gets
        // (0666 less the umask), or keep the mode of the file it replaces (--force).
        let mode = match std::fs::metadata(&self.dest) {
            Ok(m) => m.permissions(),
            Err(_) => new_file_permissions(),
        };
        tmp.as_file().set_permissions(mode)?;
        tmp.as_file().sync_all()?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        forget_pending(&tmp_path);
        Ok(self.dest.clone())
    }
}

/// The permissions a newly created file gets: 0666 less the process's umask, read from
/// /proc (reading it with umask(2) would briefly change it for every thread).
fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    std::fs::Permissions::from_mode(0o666 & !umask)
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            forget_pending(tmp.path());
        }
    }
}

/// Run a tool: set the allocator to return freed chunk buffers
/// ([`crate::monitor::return_freed_memory`]), parse arguments with `command` (usage
/// errors exit 2, `--help` 0), install the Ctrl-C handler, call `run`, and turn its result into the exit status. A
/// [`ClosedPipe`] (or a `BrokenPipe` I/O error) anywhere in the error chain exits quietly
/// with 0; other errors, write errors included, print `tool: message` and exit 2.
/// Call it first in `main`, before any thread is started.
pub fn main<F>(tool: &'static str, command: Command, run: F) -> std::process::ExitCode
where
    F: FnOnce(&ArgMatches) -> anyhow::Result<Status>,
{
    // SAFETY: a tool's `main` calls this first: nothing before it (building the clap
    // command) starts a thread, and the signal thread starts below.
    unsafe { crate::monitor::return_freed_memory() };
    let matches = match command.try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Status::Fatal.into()
            } else {
                Status::Ok.into()
            };
        }
    };
    // try_get_one, not LogArgs::from_arg_matches: a command without -q/-v (a small
    // helper tool) must get the default level, and from_arg_matches panics on unknown ids.
    let count = |id: &str| {
        matches
            .try_get_one::<u8>(id)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(0)
    };
    let log = LogArgs {
        quiet: count("quiet"),
        verbose: count("verbose"),
    };
    init_logging(tool, log.level());
    install_interrupt_handler();
    match run(&matches) {
        Ok(s) => s.into(),
        Err(e) => {
            if e.chain().any(|c| {
                c.is::<ClosedPipe>()
                    || matches!(c.downcast_ref::<WriteError>(), Some(WriteError::Closed(_)))
                    || c.downcast_ref::<io::Error>()
                        .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return Status::Ok.into();
            }
            stderr_line(&format!("{tool}: {e:#}"));
            Status::Fatal.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_budget_unless_given() {
        let mut r = Record::new("a.tif");
        r.set_in("plan", "budget_bytes", 1234u64);
        let none = BudgetArgs {
            memory_limit: None,
            jobs: None,
        };
        assert_eq!(none.planned(&r), Some(Budget::bytes(1234)));
        assert_eq!(none.planned(&Record::new("b.tif")), None);
        let given = BudgetArgs {
            memory_limit: Some("1G".into()),
            jobs: None,
        };
        assert_eq!(given.planned(&r), None);
    }

    #[test]
    fn lines_are_capped_at_max_line_and_reading_goes_on() {
        let mut input = vec![b'a'; MAX_LINE];
        input.push(b'\n');
        input.extend(vec![b'b'; MAX_LINE + 1]);
        input.extend_from_slice(b"\nc\xff\nlast");
        let lines = ByteLines {
            reader: io::BufReader::with_capacity(4096, &input[..]),
            failed: false,
        };
        let got: Vec<Line> = lines.map(Result::unwrap).collect();
        assert_eq!(got.len(), 4);
        assert!(matches!(&got[0], Line::Whole(l) if l.len() == MAX_LINE + 1));
        assert!(matches!(&got[1], Line::TooLong(h) if h.len() <= MAX_LINE && h[0] == b'b'));
        assert!(matches!(&got[2], Line::Whole(l) if l == b"c\xff\n"));
        assert!(matches!(&got[3], Line::Whole(l) if l == b"last"));
    }

    #[test]
    fn option_value_parsers_refuse_out_of_range_values() {
        let ssim = number_in(0.0, 1.0);
        assert_eq!(ssim("0.95"), Ok(0.95));
        for bad in ["2", "-0.1", "nan", "inf", "x"] {
            assert!(ssim(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_number("4"), Ok(4.0));
        for bad in ["0", "-1", "nan", "inf", ""] {
            assert!(positive_number(bad).is_err(), "{bad}");
        }
        assert!(memory_limit("18446744073709551616").is_err());
        assert_eq!(memory_limit("60%").as_deref(), Ok("60%"));
        let e = usage("--codeblock 48: sides must be powers of two");
        assert_eq!(
            e.downcast_ref::<Error>().map(|e| e.kind),
            Some(ErrorKind::Usage)
        );
    }

    #[test]
    fn status_worst() {
        assert_eq!(Status::Ok.worst(Status::SomeFailed), Status::SomeFailed);
        assert_eq!(Status::Budget.worst(Status::SomeFailed), Status::Budget);
    }

    #[test]
    fn output_paths_mirror_and_refuse_escape() {
        let o = OutputArgs {
            output_dir: Some("out".into()),
            base: None,
            force: false,
            dry_run: false,
        };
        assert_eq!(
            o.output_path(Path::new("scans/a/b.tif"), "b.jp2").unwrap(),
            Path::new("out/scans/a/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("/abs/b.tif"), "b.jp2").unwrap(),
            Path::new("out/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("../x/b.tif"), "b.jp2").unwrap(),
            Path::new("out/x/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("a/../../../x/./b.tif"), "b.jp2")
                .unwrap(),
            Path::new("out/x/b.jp2")
        );
        let o = OutputArgs {
            base: Some("/data/in".into()),
            ..o
        };
        assert_eq!(
            o.output_path(Path::new("/data/in/y/b.tif"), "b.jp2")
                .unwrap(),
            Path::new("out/y/b.jp2")
        );
        let here = OutputArgs {
            output_dir: None,
            base: None,
            force: false,
            dry_run: false,
        };
        assert_eq!(
            here.output_path(Path::new("d/b.tif"), "b.jp2").unwrap(),
            Path::new("d/b.jp2")
        );
    }

    #[test]
    fn atomic_file_commits_or_vanishes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.bin");
        let mut a = AtomicFile::create(&dest).unwrap();
        a.file().write_all(b"hello").unwrap();
        let tmp = a.temp_path().to_path_buf();
        assert!(tmp.exists() && !dest.exists());
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, new_file_permissions().mode() & 0o777);
        }
        assert!(!tmp.exists());

        let dest2 = dir.path().join("sub/never.bin");
        let mut b = AtomicFile::create(&dest2).unwrap();
        b.file().write_all(b"x").unwrap();
        let tmp2 = b.temp_path().to_path_buf();
        drop(b);
        assert!(!tmp2.exists() && !dest2.exists());
    }
}
