//! Error kinds shared by every tool: each maps to a manifest error record and to an exit code.

use serde::{Deserialize, Serialize};

/// What went wrong with one input, as written in the record's `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The path does not exist or cannot be opened.
    NotFound,
    /// Reading or writing failed (permissions, disk full, short read).
    Io,
    /// The format is not recognised, or a feature of it is not supported.
    Unsupported,
    /// The file claims to be a known format but its structure is broken.
    Corrupt,
    /// The file's header asks for something absurd or hostile (dimensions, counts,
    /// decompression bombs, zip-slip paths).
    Hostile,
    /// The input line is neither a path nor a JSON object with a `path`.
    BadRecord,
    /// Even the smallest chunk does not fit the memory budget.
    Budget,
    /// Verification of an output failed.
    Verify,
    /// A bug or unexpected state in the tool itself.
    Internal,
    /// A bad option or option value: never in a record; the tool exits 2 before reading
    /// any input (`membudget::cli::usage`).
    Usage,
}

impl ErrorKind {
    /// The snake_case name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Io => "io",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Hostile => "hostile",
            ErrorKind::BadRecord => "bad_record",
            ErrorKind::Budget => "budget",
            ErrorKind::Verify => "verify",
            ErrorKind::Internal => "internal",
            ErrorKind::Usage => "usage",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error about one input: a kind and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The category, written as `error.kind`.
    pub kind: ErrorKind,
    /// The message, written as `error.message` and on stderr.
    pub message: String,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Shorthand for [`ErrorKind::Hostile`].
    pub fn hostile(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Hostile, message)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::UnexpectedEof => ErrorKind::Corrupt,
            _ => ErrorKind::Io,
        };
        // std's text for a short read ("failed to fill whole buffer") says nothing to a
        // user looking at a file.
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::new(kind, "truncated: the file ends early");
        }
        Error::new(kind, e.to_string())
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
