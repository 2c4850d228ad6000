//! Inputs: arguments, `-` and stdin lines (bytes), records or paths, directories walked.

use super::InputArgs;
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
pub(super) fn from_line(tool: &'static str, line: &[u8]) -> Option<Input> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match Record::parse_bytes(line) {
        Ok(Some(r)) => Some(classify(r)),
        Ok(None) => None,
        Err(e) => Some(Input::Bad(Record::bad_line(tool, line, &e))),
    }
}

/// A record from one argument, or its error record.
pub(super) fn from_arg(tool: &'static str, arg: &OsStr) -> Input {
    match Record::parse_arg(arg) {
        Ok(r) => classify(r),
        Err(e) => Input::Bad(Record::bad_line(tool, arg.as_bytes(), &e)),
    }
}

/// System records and upstream error records are written through untouched: a failure is
/// reported by the tool where it happened, and passes every later tool unchanged.
pub(super) fn classify(r: Record) -> Input {
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
pub(super) enum Line {
    /// A line (its `\n` included when it had one).
    Whole(Vec<u8>),
    /// A line longer than [`MAX_LINE`]: its first bytes.
    TooLong(Vec<u8>),
}

/// The lines of `reader`, as bytes (a path need not be UTF-8), each at most [`MAX_LINE`]
/// bytes held. Ends at end of input; a read error is returned once, then the iterator
/// ends.
pub(super) struct ByteLines<R> {
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
pub(super) fn from_stdin(tool: &'static str, line: Line) -> Option<Input> {
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
pub(super) fn walk(dir: &Path, out: &mut Vec<(PathBuf, Result<(), Error>)>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
