//! CLI plumbing written once for every tool: inputs from arguments, `-` or stdin; records
//! written one flushed line at a time; a closed pipe ends the tool quietly; exit codes;
//! shared flags; mirrored output paths and atomic outputs; progress bars and logging.
//!
//! A tool's `main.rs` is `membudget::cli::main(tool::NAME, tool::command(), tool::run)`.

mod args;
mod atomic;
mod input;
mod output;
mod signals;

pub use args::*;
pub use atomic::*;
pub use input::*;
pub use output::*;
pub use signals::*;

use clap::{ArgMatches, Command};
use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

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
    fn status_worst() {
        assert_eq!(Status::Ok.worst(Status::SomeFailed), Status::SomeFailed);
        assert_eq!(Status::Budget.worst(Status::SomeFailed), Status::Budget);
    }
}
