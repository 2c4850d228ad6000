//! The checks every tool's batch test makes of a run on the batch driver
//! (`membudget::driver::for_each_record_batch`): a stdin of inputs with a damaged file
//! and an upstream error record among them, and what its records must say.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The upstream failure [`lines`] puts fifth, for an input named `gone`.
pub fn upstream(gone: &str) -> String {
    format!(r#"{{"path":"{gone}","error":{{"kind":"io","message":"upstream failure"}}}}"#)
}

/// A batch's stdin lines: `srcs`, with `bad` (written: not the tool's kind of file)
/// third and the [`upstream`] failure of `gone` fifth.
pub fn lines(srcs: &[PathBuf], bad: &Path, gone: &str) -> Vec<String> {
    std::fs::write(bad, b"II*\0LASF, and yet no header of any kind").unwrap();
    let mut lines: Vec<String> = srcs.iter().map(|p| p.display().to_string()).collect();
    lines.insert(2, bad.display().to_string());
    lines.insert(4, upstream(gone));
    lines
}

/// Check the records of a run of `tool` (section `tool`) over [`lines`]: in input order,
/// the upstream failure written through untouched, the damaged file an error of the
/// tool's; the process's `peak` and every record's within `budget`, an input run beside
/// another planned with at most half of it; side by side for real (the inputs' own
/// seconds add up to well over the run's `wall` time; one at a time, they add up to
/// less). Returns the records of the inputs that succeeded, one per source.
pub fn check<'a>(
    tool: &str,
    records: &'a [Value],
    lines: &[String],
    budget: u64,
    peak: u64,
    wall: f64,
) -> Vec<&'a Value> {
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    let want: Vec<String> = lines
        .iter()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(r) => r["path"].as_str().unwrap().to_string(),
            Err(_) => l.clone(),
        })
        .collect();
    assert_eq!(paths, want, "records not in input order");
    let up: Value = serde_json::from_str(&lines[4]).unwrap();
    assert_eq!(records[4], up);
    assert_eq!(records[2]["error"]["tool"], tool, "{}", records[2]);
    assert!(peak <= budget, "peak RSS {peak} over the {budget} budget");
    let ok: Vec<&Value> = records
        .iter()
        .filter(|r| r[tool]["status"] == "ok")
        .collect();
    assert_eq!(ok.len(), lines.len() - 2, "{records:?}");
    for r in &ok {
        let s = &r[tool];
        assert!(s["peak_rss"].as_u64().unwrap() <= budget, "{r}");
        if s["concurrent"] == 2 {
            assert!(s["budget_bytes"].as_u64().unwrap() <= budget / 2, "{r}");
        }
    }
    let busy: f64 = ok
        .iter()
        .map(|r| r[tool]["seconds"].as_f64().unwrap())
        .sum();
    assert!(
        busy > 1.3 * wall,
        "inputs' seconds {busy:.2} against a wall time of {wall:.2}: not side by side"
    );
    ok
}
