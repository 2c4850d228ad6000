//! The NDJSON manifest: one JSON object per line, passed from tool to tool.
//!
//! A record is read from a plain path line (as `find` prints them) or from a JSON object
//! with a `path`. Every field a tool does not know is kept untouched, in its original order,
//! so tools chain in any order. A tool adds its own section (named after the tool) and
//! writes the record back as one `\n`-terminated line. A failure is a record too: an
//! `error` object with `kind`, `message` and `tool`.
//!
//! The schema is documented in `docs/manifest.md` and `docs/manifest.schema.json`;
//! [`SCHEMA_VERSION`] is written in the `schema` field of every record a tool creates.

use crate::error::{Error, ErrorKind};
use serde_json::{Map, Value};

/// The version of the record schema (`schema` field). Bumped on incompatible changes.
pub const SCHEMA_VERSION: u64 = 1;

/// One manifest record: a JSON object that always has a string `path`
/// (except error records for input lines that were not records at all).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    fields: Map<String, Value>,
}

impl Record {
    /// A fresh record for `path`, with the schema version.
    pub fn new(path: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("path".into(), Value::String(path.into()));
        fields.insert("schema".into(), Value::from(SCHEMA_VERSION));
        Record { fields }
    }

    /// Parses one input line: a JSON object with a string `path`, or else a plain path.
    /// Returns `Ok(None)` for a blank line. A line that starts with `{` but is not a valid
    /// object with a `path` is an error ([`ErrorKind::BadRecord`]).
    pub fn parse_line(line: &str) -> Result<Option<Record>, Error> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(None);
        }
        if line.trim_start().starts_with('{') {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| Error::new(ErrorKind::BadRecord, format!("not a JSON record: {e}")))?;
            return Self::from_value(value).map(Some);
        }
        Ok(Some(Record::new(line)))
    }

    /// A record from a JSON value, which must be an object with a string `path`.
    pub fn from_value(value: Value) -> Result<Record, Error> {
        match value {
            Value::Object(fields) => match fields.get("path") {
                Some(Value::String(_)) => Ok(Record { fields }),
                // The machine record of `mem-estimate --system` is about no file.
                None if fields.contains_key("system") => Ok(Record { fields }),
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

    /// An error record for an input line that could not be read as a record at all.
    pub fn bad_line(tool: &str, line: &str, error: &Error) -> Record {
        let mut fields = Map::new();
        fields.insert("path".into(), Value::Null);
        fields.insert("schema".into(), Value::from(SCHEMA_VERSION));
        fields.insert("line".into(), Value::String(line.to_string()));
        let mut r = Record { fields };
        r.set_error(tool, error);
        r
    }

    /// A record about the machine (`mem-estimate --system`), not about a file: tools
    /// write it through untouched.
    pub fn is_system(&self) -> bool {
        !self.fields.contains_key("path") && self.fields.contains_key("system")
    }

    /// The input path (empty for a system record).
    pub fn path(&self) -> &str {
        self.fields
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Replaces the input path (used when a directory is expanded into files).
    pub fn with_path(&self, path: impl Into<String>) -> Record {
        let mut r = self.clone();
        r.fields.insert("path".into(), Value::String(path.into()));
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_line() {
        let r = Record::parse_line("scans/a b.tif\n").unwrap().unwrap();
        assert_eq!(r.path(), "scans/a b.tif");
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
}
