//! The manifest's JSON Schema (docs/manifest.schema.json) against real records: every
//! record `mem-estimate --system` and then `chunk-plan` write for the shared sample data must
//! validate, and records that break the documented rules must not. The validator is
//! Python's `jsonschema` (draft 2020-12), code no one here wrote.

use std::io::Write;
use std::process::{Command, Stdio};

/// Reads the schema path from argv and NDJSON from stdin; prints one line per record:
/// `ok` or `bad <message>`. Also checks the schema itself against the metaschema.
const VALIDATE: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for line in sys.stdin:
    if not line.strip():
        continue
    errs = sorted(v.iter_errors(json.loads(line)), key=lambda e: list(e.path))
    print("ok" if not errs else "bad " + "; ".join(
        "/".join(map(str, e.path)) + ": " + e.message for e in errs))
"#;

fn validate(py: &std::path::Path, ndjson: &[u8]) -> Vec<String> {
    let schema = testkit::workspace_root().join("docs/manifest.schema.json");
    let mut child = Command::new(py)
        .arg("-c")
        .arg(VALIDATE)
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = ndjson.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python");
    writer.join().expect("writer").expect("write to python");
    testkit::check(&out, "jsonschema validation");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn real_records_validate() {
    let Some(py) = testkit::python(&["jsonschema"]) else {
        return;
    };
    let data = testkit::shared_data();
    assert!(data.is_dir(), "shared data missing: {}", data.display());
    let est = Command::new(testkit::bin("mem-estimate"))
        .args(["--system", "-q", "-r"])
        .arg(&data)
        .output()
        .expect("run mem-estimate");
    // 1: some inputs (licence files, fuzzed TIFFs) fail, as records.
    assert!(
        matches!(est.status.code(), Some(0 | 1)),
        "mem-estimate: {:?}",
        est.status
    );
    // The --system record is left out of chunk-plan's input: it has no path to plan.
    let files: Vec<u8> = String::from_utf8_lossy(&est.stdout)
        .lines()
        .skip(1)
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let mut child = Command::new(testkit::bin("chunk-plan"))
        .args(["--memory-limit", "64MiB", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start chunk-plan");
    let mut stdin = child.stdin.take().expect("stdin");
    let feed = std::thread::spawn(move || stdin.write_all(&files));
    let plan = child.wait_with_output().expect("run chunk-plan");
    feed.join().expect("feeder").expect("write to chunk-plan");
    assert!(
        matches!(plan.status.code(), Some(0 | 1)),
        "chunk-plan: {:?}",
        plan.status
    );

    let mut all = est.stdout.clone();
    all.extend_from_slice(&plan.stdout);
    let records = testkit::ndjson(&all);
    // The system record plus, twice, one per file (fuzz corpus, licences and README too).
    assert!(records.len() > 120, "only {} records", records.len());
    for key in ["system", "estimate", "plan", "image", "points", "error"] {
        assert!(
            records.iter().any(|r| r.get(key).is_some()),
            "no record has {key}: the test would not exercise its schema"
        );
    }
    let verdicts = validate(&py, &all);
    assert_eq!(verdicts.len(), records.len());
    let bad: Vec<String> = verdicts
        .iter()
        .zip(&records)
        .filter(|(v, _)| *v != "ok")
        .map(|(v, r)| format!("{}: {v}", r["path"]))
        .collect();
    assert!(
        bad.is_empty(),
        "records violating the schema:\n{}",
        bad.join("\n")
    );
}

#[test]
fn broken_records_are_rejected() {
    let Some(py) = testkit::python(&["jsonschema"]) else {
        return;
    };
    let cases = [
        (r#"{"path":"a.tif","schema":1}"#, true),
        (
            r#"{"path":"a.tif","schema":1,"someone-elses":{"x":[1]}}"#,
            true,
        ),
        (r#"{"path":"a.tif","schema":2}"#, false),
        (r#"{"schema":1}"#, false),
        (
            r#"{"path":"a","error":{"kind":"oops","message":"m","tool":"t"}}"#,
            false,
        ),
        (r#"{"path":"a","error":{"kind":"corrupt"}}"#, false),
        (r#"{"path":"a","format":"bmp"}"#, false),
        (
            r#"{"path":"a","image":{"width":-1,"height":1,"bands":1,"bits":8,"sample_format":"uint","pages":1,"layout":"strips","block":[1,1],"compressed":false}}"#,
            false,
        ),
        (
            r#"{"path":"a","estimate":{"strip-convert":{"min_bytes":1}}}"#,
            false,
        ),
        (
            r#"{"path":"a","plan":{"budget_bytes":1,"strip-convert":{"chunk":1,"chunk_unit":"tile_side","workers":0,"predicted_peak_bytes":1,"min_bytes":1,"whole_bytes":1}}}"#,
            false,
        ),
        (
            r#"{"path":"a","plan":{"budget_bytes":1,"strip-convert":{"error":{"kind":"budget","message":"needs 2 MiB"}}}}"#,
            true,
        ),
    ];
    let input: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    let verdicts = validate(&py, input.as_bytes());
    assert_eq!(verdicts.len(), cases.len());
    for ((line, valid), verdict) in cases.iter().zip(&verdicts) {
        assert_eq!(verdict == "ok", *valid, "{line}\n-> {verdict}");
    }
}
