//! The record writer on stdout: one flushed line a record, a closed pipe ends quietly.

use super::{escape, stderr_line, Status};
use crate::error::ErrorKind;
use crate::manifest::Record;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

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
