//! xtask as a user runs it: the measuring helper through real pipes, and the check that
//! the committed man pages and completions are current.

use std::process::Command;

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(testkit::workspace_root());
    c
}

#[test]
fn measure_child_passes_stdio_through_and_reports() {
    let dir = testkit::tempdir();
    let report = dir.path().join("report");
    let mut child = xtask()
        .arg("measure-child")
        .arg(&report)
        .args(["--", "sort"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"b\na\n").unwrap();
    let out = child.wait_with_output().unwrap();
    testkit::check(&out, "xtask measure-child sort");
    assert_eq!(out.stdout, b"a\nb\n");
    let text = std::fs::read_to_string(&report).unwrap();
    let fields: Vec<u128> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    // raw wait status 0, a peak, the floor, a wall time.
    assert_eq!(fields.len(), 4, "{text}");
    assert_eq!(fields[0], 0);
    assert!(fields[1] > 0 && fields[2] > 0 && fields[3] > 0, "{text}");
}

#[test]
fn committed_docs_are_current() {
    let out = xtask().args(["docs", "--check"]).output().unwrap();
    testkit::check(&out, "cargo xtask docs --check");
}
