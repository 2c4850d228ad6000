//! CLI plumbing written once for every tool: inputs from arguments, `-` or stdin; records
//! written one flushed line at a time; a closed pipe ends the tool quietly; exit codes;
//! shared flags; mirrored output paths and atomic outputs; progress bars and logging.
//!
//! A tool's `main.rs` is `membudget::cli::main(tool::NAME, tool::command(), tool::run)`.

use crate::budget::Budget;
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::system::SystemInfo;
use clap::{ArgAction, ArgMatches, Args, Command, FromArgMatches};
use std::collections::HashSet;
use std::io::{self, BufRead, IsTerminal, Write};
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
    pub inputs: Vec<String>,
    /// Expand directories into the files below them (sorted, hidden files skipped)
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

/// The memory budget and concurrency.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of
    /// available memory (60%). Default: 70% of the smaller of available memory and the
    /// cgroup limit
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Workers or threads at most (default: the CPUs this process may use)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
}

impl BudgetArgs {
    /// Resolve the budget against the machine.
    pub fn budget(&self, sys: &SystemInfo) -> Result<Budget, Error> {
        Budget::from_arg(self.memory_limit.as_deref(), sys)
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
    /// Overwrite existing outputs (by default they are skipped)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Say what would be done, write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

impl OutputArgs {
    /// The output path for `input`, given the output's file name (`a.jp2`).
    /// Mirrors the input's directories under `--output-dir`; refuses paths that would
    /// climb out of it.
    pub fn output_path(&self, input: &Path, file_name: &str) -> Result<PathBuf, Error> {
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
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => clean.push(p),
                Component::CurDir => {}
                _ => {
                    return Err(Error::new(
                        ErrorKind::Hostile,
                        format!("{} climbs out of the output directory", input.display()),
                    ))
                }
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
            let _ = match r.level() {
                log::Level::Error | log::Level::Info => {
                    writeln!(io::stderr().lock(), "{}: {}", self.tool, r.args())
                }
                l => writeln!(
                    io::stderr().lock(),
                    "{}: {}: {}",
                    self.tool,
                    l.as_str().to_lowercase(),
                    r.args()
                ),
            };
        }
    }
    fn flush(&self) {}
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
    /// could not be read as a record, or the machine record of `mem-estimate --system`.
    Bad(Record),
}

fn parsed(tool: &'static str, line: &str) -> Option<Input> {
    match Record::parse_line(line) {
        Ok(Some(r)) if r.is_system() => Some(Input::Bad(r)),
        Ok(Some(r)) => Some(Input::Record(r)),
        Ok(None) => None,
        Err(e) => Some(Input::Bad(Record::bad_line(tool, line, &e))),
    }
}

/// Iterate the inputs: arguments if any (each `-` reads stdin), else stdin. Directories
/// are expanded when `recursive`. Reading stdin stops quietly at end of input.
pub fn inputs(tool: &'static str, args: &InputArgs) -> impl Iterator<Item = Input> {
    let sources: Vec<String> = if args.inputs.is_empty() {
        vec!["-".to_string()]
    } else {
        args.inputs.clone()
    };
    let recursive = args.recursive;
    sources
        .into_iter()
        .flat_map(move |src| -> Box<dyn Iterator<Item = Input>> {
            if src == "-" {
                let stdin = io::stdin();
                Box::new(
                    stdin
                        .lock()
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(move |l| parsed(tool, &l)),
                )
            } else {
                Box::new(parsed(tool, &src).into_iter())
            }
        })
        .flat_map(move |input| -> Box<dyn Iterator<Item = Input>> {
            match input {
                Input::Record(r) if recursive && Path::new(r.path()).is_dir() => {
                    let mut files = Vec::new();
                    walk(Path::new(r.path()), &mut files);
                    files.sort();
                    Box::new(
                        files
                            .into_iter()
                            .map(move |f| Input::Record(r.with_path(f.to_string_lossy()))),
                    )
                }
                other => Box::new(std::iter::once(other)),
            }
        })
}

/// Files below `dir`, skipping hidden entries and not following directory symlinks
/// (loops).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out),
            Ok(_) if path.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Raised inside a tool when stdout is closed downstream: the tool ends quietly.
#[derive(Debug, thiserror::Error)]
#[error("output closed")]
pub struct ClosedPipe;

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
    /// stderr (upstream tools printed theirs). A closed stdout returns [`ClosedPipe`].
    pub fn write(&mut self, record: &Record) -> Result<(), ClosedPipe> {
        if let Some(e) = record.error() {
            let from_here = record
                .get("error")
                .and_then(|e| e.get("tool"))
                .and_then(|t| t.as_str())
                .is_none_or(|t| t == self.tool);
            if from_here {
                self.failed += 1;
                if log::max_level() >= log::LevelFilter::Error {
                    let shown = if record.path().is_empty() {
                        record
                            .get("line")
                            .and_then(|l| l.as_str())
                            .unwrap_or("-")
                            .to_string()
                    } else {
                        record.path().to_string()
                    };
                    let _ = writeln!(
                        io::stderr().lock(),
                        "{}: {}: {}",
                        self.tool,
                        shown,
                        e.message
                    );
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
        r.map_err(|_| ClosedPipe)
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

/// Temp files not yet renamed into place: removed on Ctrl-C / SIGTERM.
fn pending() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C or SIGTERM was received (tools may stop between chunks).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::Relaxed);
        if let Ok(p) = pending().lock() {
            for path in p.iter() {
                let _ = std::fs::remove_file(path);
            }
        }
        // 128 + SIGINT, as shells expect.
        std::process::exit(130);
    });
}

/// An output file written under a temporary name in its destination directory and
/// renamed into place by [`AtomicFile::commit`]. Dropped without commit (an error, a
/// panic) or interrupted, the temporary file is removed: no half-written file ever
/// appears under the final name.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
}

impl AtomicFile {
    /// Create the temporary file beside `dest` (creating directories as needed).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(dir)?;
        if let Ok(mut p) = pending().lock() {
            p.insert(tmp.path().to_path_buf());
        }
        Ok(AtomicFile {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
        })
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

    /// Flush to disk and rename into place.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("AtomicFile committed twice");
        tmp.as_file().sync_all()?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        if let Ok(mut p) = pending().lock() {
            p.remove(&tmp_path);
        }
        Ok(self.dest.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            if let Ok(mut p) = pending().lock() {
                p.remove(tmp.path());
            }
        }
    }
}

/// Run a tool: parse arguments with `command` (usage errors exit 2, `--help` 0), install
/// the Ctrl-C handler, call `run`, and turn its result into the exit status. A
/// [`ClosedPipe`] anywhere in the error chain exits quietly with 0; other errors print
/// `tool: message` and exit 2.
pub fn main<F>(tool: &'static str, command: Command, run: F) -> std::process::ExitCode
where
    F: FnOnce(&ArgMatches) -> anyhow::Result<Status>,
{
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
    if let Ok(log) = LogArgs::from_arg_matches(&matches) {
        init_logging(tool, log.level());
    } else {
        init_logging(tool, log::LevelFilter::Warn);
    }
    install_interrupt_handler();
    match run(&matches) {
        Ok(s) => s.into(),
        Err(e) => {
            if e.chain().any(|c| {
                c.is::<ClosedPipe>()
                    || c.downcast_ref::<io::Error>()
                        .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return Status::Ok.into();
            }
            let _ = writeln!(io::stderr().lock(), "{tool}: {e:#}");
            Status::Fatal.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            o.output_path(Path::new("../x/b.tif"), "b.jp2")
                .unwrap_err()
                .kind,
            ErrorKind::Hostile
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
        assert!(!tmp.exists());

        let dest2 = dir.path().join("sub/never.bin");
        let mut b = AtomicFile::create(&dest2).unwrap();
        b.file().write_all(b"x").unwrap();
        let tmp2 = b.temp_path().to_path_buf();
        drop(b);
        assert!(!tmp2.exists() && !dest2.exists());
    }
}
