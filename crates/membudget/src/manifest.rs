//! The NDJSON manifest: one JSON object per line, passed from tool to tool.
//!
//! A record is read from a plain path line (as `find` prints them) or from a JSON object
//! with a `path`. Every field a tool does not know is kept untouched, in its original order,
//! so tools chain in any order. A tool adds its own section (named after the tool) and
//! writes the record back as one `\n`-terminated line. A failure is a record too: an
//! `error` object with `kind`, `message` and `tool`.
//!
//! Paths are bytes on Unix: `path` is always a readable string (lossy for a name that is
//! not UTF-8, for display and `jq`), and such a name's exact bytes are carried beside it in
//! `path_bytes` (base64). [`Record::path`] gives the real path back.
//!
//! The schema is documented in `docs/manifest.md` and `docs/manifest.schema.json`;
//! [`SCHEMA_VERSION`] is written in the `schema` field of every record a tool creates.

use crate::error::{Error, ErrorKind};
use serde_json::{Map, Value};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The version of the record schema (`schema` field). Bumped on incompatible changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Bytes of an input line echoed in a `bad_record` error record (`line`) and on stderr:
/// enough to find the line, never megabytes.
pub const ECHO_BYTES: usize = 200;

/// One manifest record: a JSON object that always has a string `path`
/// (except error records for input lines that were not records at all).
#[derive(Debug, Clone)]
pub struct Record {
    fields: Map<String, Value>,
    /// The error was set by this process ([`Record::set_error`]), not read from upstream:
    /// only such an error is reported on stderr, so a failure is reported once per pipeline.
    new_error: bool,
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.fields == other.fields
    }
}

impl Record {
    /// A fresh record for `path`, with the schema version. A path that is not UTF-8 keeps
    /// its bytes in `path_bytes`.
    pub fn new(path: impl AsRef<OsStr>) -> Self {
        let mut r = Record {
            fields: Map::new(),
            new_error: false,
        };
        r.set_path(path.as_ref());
        r.fields
            .insert("schema".into(), Value::from(SCHEMA_VERSION));
        r
    }

    /// Parses one input line: a JSON object with a string `path`, or else a plain path.
    /// Returns `Ok(None)` for a blank line. A line that starts with `{` but is not a valid
    /// object with a `path` is an error ([`ErrorKind::BadRecord`]).
    pub fn parse_line(line: &str) -> Result<Option<Record>, Error> {
        Self::parse_bytes(line.as_bytes())
    }

    /// As [`Record::parse_line`], for a line read as bytes: a plain path need not be UTF-8
    /// (its bytes are kept, see [`Record::path`]); a JSON record must be.
    pub fn parse_bytes(line: &[u8]) -> Result<Option<Record>, Error> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return Ok(None);
        }
        if line.trim_ascii_start().starts_with(b"{") {
            return Self::parse_json(line).map(Some);
        }
        Ok(Some(Record::new(OsStr::from_bytes(line))))
    }

    /// Parses one command-line argument: a JSON object with a `path`, or else a path,
    /// taken verbatim (an argument is never blank-skipped or trimmed: `" "` is a name).
    /// The empty argument is no path at all: an error ([`ErrorKind::BadRecord`]).
    pub fn parse_arg(arg: &OsStr) -> Result<Record, Error> {
        let bytes = arg.as_bytes();
        if bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::BadRecord,
                "empty argument: not a path",
            ));
        }
        if bytes.trim_ascii_start().starts_with(b"{") {
            return Self::parse_json(bytes);
        }
        Ok(Record::new(arg))
    }

    fn parse_json(line: &[u8]) -> Result<Record, Error> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| Error::new(ErrorKind::BadRecord, format!("not a JSON record: {e}")))?;
        Self::from_value(value)
    }

    /// A record from a JSON value, which must be an object with a string `path`.
    pub fn from_value(value: Value) -> Result<Record, Error> {
        let record = |fields| {
            Ok(Record {
                fields,
                new_error: false,
            })
        };
        match value {
            Value::Object(fields) => match fields.get("path") {
                Some(Value::String(_)) => record(fields),
                // The machine record of `mem-estimate --system` is about no file.
                None if fields.contains_key("system") => record(fields),
                // An upstream tool's error record for a line that was no record: passed
                // through as it is, not wrapped in another error.
                Some(Value::Null) if fields.get("error").is_some_and(Value::is_object) => {
                    record(fields)
                }
                _ => Err(Error::new(
                    ErrorKind::BadRecord,
                    "record has no string \"path\"",
                )),
            },
            _ => Err(Error::new(
                ErrorKind::BadRecord,
                "record is not a JSON object",
            )),
        }
    }

    /// An error record for an input line that could not be read as a record at all. The
    /// line is echoed in `line`: its first [`ECHO_BYTES`] bytes, lossy UTF-8.
    pub fn bad_line(tool: &str, line: &[u8], error: &Error) -> Record {
        let mut fields = Map::new();
        fields.insert("path".into(), Value::Null);
        fields.insert("schema".into(), Value::from(SCHEMA_VERSION));
        fields.insert("line".into(), Value::String(echo(line)));
        let mut r = Record {
            fields,
            new_error: false,
        };
        r.set_error(tool, error);
        r
    }

    /// A record about the machine (`mem-estimate --system`), not about a file: tools
    /// write it through untouched.
    pub fn is_system(&self) -> bool {
        !self.fields.contains_key("path") && self.fields.contains_key("system")
    }

    /// The input path, exactly: the bytes of `path_bytes` when the record has them (a
    /// name that is not UTF-8), else `path`. Empty for a system record. Every tool opens
    /// and names files from this, never from [`Record::path_str`].
    pub fn path(&self) -> PathBuf {
        path_field(&self.fields, "path")
    }

    /// The input path as a readable string (lossy for a name that is not UTF-8): for
    /// messages and display only. Empty for a system record.
    pub fn path_str(&self) -> &str {
        self.fields
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Replaces the input path (used when a directory is expanded into files).
    pub fn with_path(&self, path: impl AsRef<OsStr>) -> Record {
        let mut r = self.clone();
        r.set_path(path.as_ref());
        r
    }

    fn set_path(&mut self, path: &OsStr) {
        set_path_field(&mut self.fields, "path", path);
    }

    /// Sets `section.key` to a path, losslessly: a readable string under `key`, and the
    /// exact bytes (base64) under `key_bytes` when the path is not UTF-8, as for `path`.
    /// For a tool's output paths.
    pub fn set_path_in(&mut self, section: &str, key: &str, path: &Path) {
        self.set_in(section, key, Value::Null);
        if let Some(Value::Object(map)) = self.fields.get_mut(section) {
            set_path_field(map, key, path.as_os_str());
        }
    }

    /// A field, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Sets (or replaces) a field.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.fields.insert(key.into(), value.into());
    }

    /// Removes a field and returns it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.fields.shift_remove(key)
    }

    /// Deserializes a field into `T`, if present and well formed.
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.fields
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Sets `section.key = value` in an object field, creating the section if needed
    /// (e.g. `estimate.strip-convert`).
    pub fn set_in(&mut self, section: &str, key: &str, value: impl Into<Value>) {
        let entry = self
            .fields
            .entry(section.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(map) = entry {
            map.insert(key.to_string(), value.into());
        }
    }

    /// Marks the record as failed: `"error": {"kind", "message", "tool"}`.
    pub fn set_error(&mut self, tool: &str, error: &Error) {
        self.new_error = true;
        let mut e = Map::new();
        e.insert("kind".into(), Value::String(error.kind.as_str().into()));
        e.insert("message".into(), Value::String(error.message.clone()));
        e.insert("tool".into(), Value::String(tool.into()));
        self.fields.insert("error".into(), Value::Object(e));
    }

    /// The record's error, if it has one (from this tool or an upstream one).
    pub fn error(&self) -> Option<Error> {
        let e = self.fields.get("error")?.as_object()?;
        let kind = e
            .get("kind")
            .and_then(|k| serde_json::from_value::<ErrorKind>(k.clone()).ok())
            .unwrap_or(ErrorKind::Internal);
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some(Error { kind, message })
    }

    /// Whether the record carries an error.
    pub fn is_error(&self) -> bool {
        self.fields.contains_key("error")
    }

    /// Whether the record's error was set in this process ([`Record::set_error`]), rather
    /// than read from an upstream tool's record: the one to report on stderr.
    pub fn error_is_new(&self) -> bool {
        self.new_error && self.is_error()
    }

    /// The fields, in order.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The record as one JSON line, without the trailing newline.
    pub fn to_line(&self) -> String {
        // A Map of Values always serializes.
        serde_json::to_string(&self.fields).unwrap_or_else(|_| "{}".into())
    }

    /// The record as a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }
}

/// The exact path in `fields[key]`, using `fields[key_bytes]` when it holds the bytes of
/// this very name. A `key_bytes` that does not decode, or whose lossy form is not
/// `fields[key]` (someone edited `path` with `jq` and left `path_bytes`), is ignored:
/// the readable field wins.
fn path_field(fields: &Map<String, Value>, key: &str) -> PathBuf {
    let shown = fields.get(key).and_then(Value::as_str).unwrap_or("");
    let exact = fields
        .get(&format!("{key}_bytes"))
        .and_then(Value::as_str)
        .and_then(base64_decode)
        .filter(|b| String::from_utf8_lossy(b) == shown);
    match exact {
        Some(bytes) => PathBuf::from(OsString::from_vec(bytes)),
        None => PathBuf::from(shown),
    }
}

/// Writes `path` under `key` (lossy string) and, when it is not UTF-8, its bytes under
/// `key_bytes` (removed otherwise, so a stale value never lingers).
fn set_path_field(fields: &mut Map<String, Value>, key: &str, path: &OsStr) {
    let bytes_key = format!("{key}_bytes");
    let shown = path.to_string_lossy();
    let utf8 = matches!(shown, std::borrow::Cow::Borrowed(_));
    fields.insert(key.to_string(), Value::String(shown.into_owned()));
    if utf8 {
        fields.shift_remove(&bytes_key);
    } else {
        let encoded = Value::String(base64_encode(path.as_bytes()));
        // Right after the readable field, where a reader looks for it.
        match fields.keys().position(|k| k == key) {
            Some(i) if !fields.contains_key(&bytes_key) => {
                fields.shift_insert(i + 1, bytes_key, encoded);
            }
            _ => {
                fields.insert(bytes_key, encoded);
            }
        }
    }
}

/// The first [`ECHO_BYTES`] bytes of `line`, lossy UTF-8, with `...` when cut.
pub fn echo(line: &[u8]) -> String {
    if line.len() <= ECHO_BYTES {
        return String::from_utf8_lossy(line).into_owned();
    }
    let mut s = String::from_utf8_lossy(&line[..ECHO_BYTES]).into_owned();
    s.push_str("...");
    s
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, padded): what `base64 -d` reads back. A few lines here
/// rather than a dependency for one field.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = BASE64.iter().position(|&b| b == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_line() {
        let r = Record::parse_line("scans/a b.tif\n").unwrap().unwrap();
        assert_eq!(r.path(), Path::new("scans/a b.tif"));
        assert_eq!(r.path_str(), "scans/a b.tif");
        assert!(r.get("path_bytes").is_none());
        assert_eq!(r.get("schema"), Some(&Value::from(SCHEMA_VERSION)));
    }

    #[test]
    fn blank_line_is_skipped() {
        assert_eq!(Record::parse_line("  \n").unwrap(), None);
    }

    #[test]
    fn json_record_keeps_unknown_fields_in_order() {
        let line = r#"{"zeta":1,"path":"x.tif","alpha":{"k":[1,2]}}"#;
        let mut r = Record::parse_line(line).unwrap().unwrap();
        r.set_in("estimate", "tool", 5);
        assert_eq!(
            r.to_line(),
            r#"{"zeta":1,"path":"x.tif","alpha":{"k":[1,2]},"estimate":{"tool":5}}"#
        );
    }

    #[test]
    fn bad_json_is_bad_record() {
        let e = Record::parse_line("{not json").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRecord);
        let e = Record::parse_line(r#"{"nopath":1}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRecord);
    }

    #[test]
    fn system_record_is_not_a_file() {
        let r = Record::parse_line(r#"{"schema":1,"system":{"cpus":2}}"#)
            .unwrap()
            .unwrap();
        assert!(r.is_system());
        assert!(!Record::new("a").is_system());
    }

    #[test]
    fn error_round_trip() {
        let mut r = Record::new("a");
        r.set_error("mem-estimate", &Error::corrupt("bad IFD"));
        let back = Record::parse_line(&r.to_line()).unwrap().unwrap();
        assert!(back.is_error());
        let e = back.error().unwrap();
        assert_eq!(e.kind, ErrorKind::Corrupt);
        assert_eq!(e.message, "bad IFD");
    }

    #[test]
    fn non_utf8_paths_round_trip_through_a_line() {
        let r = Record::parse_bytes(b"./b_\xe9.tif\n").unwrap().unwrap();
        assert_eq!(r.path().as_os_str().as_bytes(), b"./b_\xe9.tif");
        assert_eq!(r.path_str(), "./b_\u{fffd}.tif");
        let line = r.to_line();
        assert!(
            line.starts_with("{\"path\":\"./b_\u{fffd}.tif\",\"path_bytes\":\"Li9iX+kudGlm\""),
            "{line}"
        );
        let back = Record::parse_line(&line).unwrap().unwrap();
        assert_eq!(back.path().as_os_str().as_bytes(), b"./b_\xe9.tif");
        // A UTF-8 name drops a stale path_bytes.
        assert!(back.with_path("x.tif").get("path_bytes").is_none());
        // path edited downstream (jq) without path_bytes: the readable field wins.
        let edited = line.replace("./b_\u{fffd}.tif", "other.tif");
        let e = Record::parse_line(&edited).unwrap().unwrap();
        assert_eq!(e.path(), Path::new("other.tif"));
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n)
                .map(|i| i.wrapping_mul(37).wrapping_add(200))
                .collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), Some(b"fo".to_vec()));
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm8*"), None);
    }

    #[test]
    fn output_paths_keep_their_bytes() {
        let mut r = Record::new("a");
        r.set_path_in(
            "tool",
            "output",
            Path::new(OsStr::from_bytes(b"out/\xff.jp2")),
        );
        let sec = r.get("tool").unwrap();
        assert_eq!(sec["output"], "out/\u{fffd}.jp2");
        assert_eq!(
            path_field(sec.as_object().unwrap(), "output")
                .as_os_str()
                .as_bytes(),
            b"out/\xff.jp2"
        );
    }
}
