//! The record driver through a real process: pass-through, errors, a panic caught as a
//! record, several records per input, discarded inputs, seconds and peak RSS, exit status.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn driver_passes_through_catches_and_stamps() {
    let mut child = Command::new(testkit::example("membudget", "driver_probe"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn driver_probe");
    let upstream_error =
        r#"{"path":"x.tif","schema":1,"error":{"kind":"corrupt","message":"m","tool":"up"}}"#;
    let input = format!("a\nfail\npanic\n{upstream_error}\nskip\npages\n{{bad\nhelper\nb\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let records = testkit::ndjson(&out.stdout);
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap_or("-"))
        .collect();
    // One record per input in order; three for `pages`, none for `skip`.
    assert_eq!(
        paths,
        ["a", "fail", "panic", "x.tif", "pages", "pages", "pages", "-", "helper", "b"],
        "{stderr}"
    );
    let a = &records[0]["driver-probe"];
    assert_eq!(a["sum"], 8 << 20);
    assert!(a["seconds"].as_f64().is_some());
    assert!(a["peak_rss"].as_u64().unwrap() > 8 << 20, "{a}");
    assert_eq!(records[1]["error"]["kind"], "corrupt");
    assert_eq!(records[2]["error"]["kind"], "internal");
    let msg = records[2]["error"]["message"].as_str().unwrap();
    // Its message and where: said once, on the record's stderr line, not by the hook.
    assert!(
        msg.starts_with("panic: a bug in the per-input function at ")
            && msg.contains("driver_probe.rs"),
        "{msg}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // An error record says what refusing the input cost.
    assert!(
        records[2]["driver-probe"]["peak_rss"].as_u64().is_some(),
        "{}",
        records[2]
    );
    assert!(
        records[1]["driver-probe"]["peak_rss"].as_u64().is_some(),
        "{}",
        records[1]
    );
    // The upstream error record is untouched.
    assert_eq!(
        records[3].to_string(),
        serde_json::from_str::<serde_json::Value>(upstream_error)
            .unwrap()
            .to_string()
    );
    for (i, r) in records[4..7].iter().enumerate() {
        assert_eq!(r["driver-probe"]["page"], i + 1);
        assert!(r["driver-probe"]["seconds"].is_number());
    }
    assert_eq!(records[7]["error"]["kind"], "bad_record");
    // A helper thread's panic is the input's record, with the helper's own message
    // (not the one `thread::scope` raises again).
    let msg = records[8]["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("panic: a bug in a helper thread at "),
        "{msg}"
    );
    // The run went on after the panics; the status says inputs failed.
    assert_eq!(records[9]["driver-probe"]["status"], "ok");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}
