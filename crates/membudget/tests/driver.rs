//! The record driver through a real process: pass-through, errors, a panic caught as a
//! record, several records per input, discarded inputs, seconds and peak RSS, exit status.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn driver_passes_through_catches_and_stamps() {
    passes_through_catches_and_stamps(&[]);
}

/// The same with several inputs in flight: the same records in the same order.
#[test]
fn batch_driver_passes_through_catches_and_stamps() {
    passes_through_catches_and_stamps(&["-j", "3"]);
}

fn passes_through_catches_and_stamps(args: &[&str]) {
    let mut child = Command::new(testkit::example("membudget", "driver_probe"))
        .args(args)
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

fn probe(args: &[&str], stdin: &str) -> (Vec<serde_json::Value>, std::time::Duration) {
    let t = std::time::Instant::now();
    let out = testkit::run_stdin(&testkit::example("membudget", "driver_probe"), args, stdin);
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (testkit::ndjson(&out.stdout), wall)
}

fn section(r: &serde_json::Value, key: &str) -> u64 {
    r["driver-probe"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {r}"))
}

/// Inputs run side by side, records still in input order, each with its share.
#[test]
fn batch_runs_inputs_side_by_side_in_order() {
    let input = "sleep:600\nsleep:100\nsleep:100\nsleep:100\n";
    let (records, wall) = probe(&["-j", "2", "--budget", "1000"], input);
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["sleep:600", "sleep:100", "sleep:100", "sleep:100"]);
    // The three short ones ran while the long one did.
    for r in &records[1..] {
        assert!(section(r, "end_ms") < section(&records[0], "end_ms"), "{r}");
    }
    assert!(wall.as_millis() < 850, "{wall:?}: not side by side");
    // Two slots: half the budget and one of the two threads each, until the last input
    // (known as the last) gets what is free.
    assert_eq!(section(&records[0], "share_budget"), 500);
    assert_eq!(section(&records[0], "share_threads"), 1);
    assert_eq!(section(&records[0], "concurrent"), 2);
    // One at a time, the same inputs take the sum of their times.
    let (_, serial) = probe(&[], input);
    assert!(serial.as_millis() >= 900, "{serial:?}");
}

/// More inputs in flight than threads: each gets at least one thread, and gives back
/// only the threads it took, so an input admitted alone afterwards gets `-j`, not more.
#[test]
fn batch_in_flight_beyond_the_threads_shares_them_without_inflating() {
    let last = r#"{"path":"sleep:1","estimate":{"driver-probe":{"min_bytes":1000}}}"#;
    let input = format!("{}{last}\n", "sleep:300\n".repeat(4));
    let (records, _) = probe(&["-j", "2", "--in-flight", "4", "--budget", "1000"], &input);
    assert_eq!(records.len(), 5);
    for r in &records[..4] {
        assert_eq!(section(r, "share_threads"), 1, "{r}");
        assert_eq!(section(r, "concurrent"), 4, "{r}");
    }
    // Needing the whole budget, the last waited until the others were done.
    assert_eq!(section(&records[4], "concurrent"), 1, "{}", records[4]);
    assert_eq!(section(&records[4], "share_threads"), 2, "{}", records[4]);
}

/// A single input gets the whole budget and every thread.
#[test]
fn batch_single_input_gets_everything() {
    let (records, _) = probe(&["-j", "4", "--budget", "1000"], "sleep:1\n");
    assert_eq!(section(&records[0], "share_budget"), 1000);
    assert_eq!(section(&records[0], "share_threads"), 4);
    assert_eq!(section(&records[0], "concurrent"), 1);
}

/// --unordered writes each record as its input finishes.
#[test]
fn batch_unordered_writes_as_done() {
    let (records, _) = probe(
        &["-j", "2", "--unordered"],
        "sleep:500\nsleep:10\nsleep:10\n",
    );
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["sleep:10", "sleep:10", "sleep:500"]);
}

/// An input that needs more than its share (its estimate's min_bytes) waits until that
/// much is free, and takes it; what is left goes to the next ones: never more than the
/// budget in flight.
#[test]
fn batch_input_larger_than_share_waits_for_room() {
    let big = r#"{"path":"sleep:200","estimate":{"driver-probe":{"min_bytes":800}}}"#;
    let input = format!("sleep:200\n{big}\nsleep:200\n");
    let (records, _) = probe(&["-j", "2", "--budget", "1000"], &input);
    let (a, b, c) = (&records[0], &records[1], &records[2]);
    assert_eq!(section(a, "share_budget"), 500, "{a}");
    assert!(section(b, "share_budget") >= 800, "{b}");
    // Half the budget was free while `a` ran: `b` waited for it.
    assert!(section(b, "start_ms") >= section(a, "end_ms"), "{a} {b}");
    assert!(
        section(b, "share_budget") + section(c, "share_budget") <= 1000,
        "{b} {c}"
    );
}

/// Records planned by chunk-plan cap the batch at their `plan.budget_bytes`: two in
/// flight share it.
#[test]
fn batch_keeps_to_the_planned_budget() {
    let r = r#"{"path":"sleep:100","plan":{"budget_bytes":400}}"#;
    let (records, _) = probe(
        &["-j", "2", "--budget", "1000"],
        &format!("{r}\n{r}\n{r}\n"),
    );
    for r in &records[..2] {
        assert_eq!(section(r, "share_budget"), 200, "{r}");
    }
}

/// A closed stdout ends a batch quietly, even with inputs waiting for a slot (they used
/// to wait for a slot forever once the writer had stopped the batch).
#[test]
fn batch_ends_quietly_on_a_closed_pipe() {
    let probe = testkit::example("membudget", "driver_probe");
    let script = format!(
        "yes sleep:20 | head -n 400 | {} -j 2 | head -n 1; echo \"status=${{PIPESTATUS[2]}}\" >&2",
        probe.display()
    );
    let out = testkit::run_bounded(
        Path::new("bash"),
        &["-c", &script],
        "",
        std::time::Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(testkit::ndjson(&out.stdout).len(), 1);
    assert!(stderr.contains("status=0"), "{stderr}");
}

/// One input named as an argument, or one slot: the one-at-a-time driver, with no reader
/// or writer thread beside the input's (each costs a malloc arena and a stack). The
/// batch driver used to run them with its two.
#[test]
fn batch_of_one_input_or_one_slot_starts_no_thread() {
    // The one-at-a-time driver's threads (the main one and the signal watcher).
    let (records, _) = probe(&["threads"], "");
    let alone = section(&records[0], "threads");
    for args in [
        &["-j", "4", "threads"][..],
        &["-j", "4", "-r", "threads"][..],
    ] {
        let (records, _) = probe(args, "");
        assert_eq!(
            section(&records[0], "threads"),
            alone,
            "{args:?}: {}",
            records[0]
        );
    }
    let (records, _) = probe(&["-j", "1"], "threads\nthreads\n");
    assert_eq!(section(&records[1], "threads"), alone, "{}", records[1]);
}
