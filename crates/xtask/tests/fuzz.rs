//! `cargo xtask fuzz`: the harness tells every kind of failure apart (on a fake tool that
//! fails in each way on purpose), is deterministic, reproduces a case by its id, and the
//! real tools survive a few hundred mutants each with a fixed seed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(testkit::workspace_root());
    c
}

/// A stand-in for mem-estimate (and chunk-plan, which the harness runs to make record
/// seeds) that, for one input file, fails in the way the file's checksum picks.
const FAKE: &str = r#"#!/bin/bash
last="${@: -1}"
if [ "$last" = "-" ] || [ $# -ne 1 ]; then
    # Seed records: describe every path given, or echo the records on stdin.
    if [ "$last" = "-" ]; then cat; exit 0; fi
    for p in "$@"; do printf '{"path":"%s"}\n' "$p"; done
    exit 0
fi
f="$last"
h=$(cksum < "$f" | cut -d' ' -f1)
case $((h % 8)) in
0) printf '{"path":"%s"}\n' "$f" ;;
1) printf '{"path":"%s","error":{"kind":"corrupt","message":"bad"}}\n' "$f"
   echo "fake: $f: bad" >&2; exit 1 ;;
2) echo "thread 'main' panicked at src/fake.rs:1:2:" >&2; echo "boom" >&2; exit 101 ;;
3) kill -ABRT $$ ;;
4) sleep 30 ;;
5) touch "$TMPDIR/.fake.part"; printf '{"path":"%s"}\n' "$f" ;;
6) echo x >> "$f"; printf '{"path":"%s"}\n' "$f" ;;
7) kill -SEGV $$ ;;
esac
"#;

fn fake_bin_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["mem-estimate", "chunk-plan"] {
        let p = bin.join(name);
        std::fs::write(&p, FAKE).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn fuzz(args: &[&str]) -> Output {
    xtask().arg("fuzz").args(args).output().unwrap()
}

/// The report without the timing columns (which differ from run to run).
fn findings(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The summary row of `tool`: class name -> count.
fn row(out: &Output, tool: &str) -> std::collections::BTreeMap<String, u64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.starts_with("seed "));
    let header: Vec<&str> = lines
        .next()
        .expect("summary table")
        .split_whitespace()
        .collect();
    let line = lines
        .find(|l| l.starts_with(tool))
        .unwrap_or_else(|| panic!("no row for {tool}:\n{text}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    // header: "seed" S "cases" classes...; row: tool cases counts...
    header[3..]
        .iter()
        .zip(&cells[2..])
        .map(|(h, c)| (h.to_string(), c.parse().unwrap_or(0)))
        .collect()
}

#[test]
fn every_class_is_told_apart_and_cases_reproduce() {
    let dir = testkit::tempdir();
    let bin = fake_bin_dir(dir.path());
    let out_dir = dir.path().join("found");
    let common = [
        "mem-estimate",
        "--no-shared",
        "--cases",
        "64",
        "--seed",
        "3",
        "--timeout",
        "1",
        "--bin-dir",
        bin.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let a = fuzz(&[&common[..], &["--jobs", "2"]].concat());
    let text = String::from_utf8_lossy(&a.stdout).into_owned();
    assert_eq!(a.status.code(), Some(1), "bad cases make exit 1:\n{text}");
    let counts = row(&a, "mem-estimate");
    for class in [
        "ok",
        "clean-error",
        "panic",
        "abort-oom",
        "signal",
        "hang",
        "partial-output",
        "source-changed",
    ] {
        assert!(counts[class] > 0, "no {class} case:\n{text}");
        if !matches!(class, "ok" | "clean-error") {
            let saved = out_dir.join("mem-estimate").join(class);
            assert!(
                std::fs::read_dir(&saved).is_ok_and(|mut d| d.next().is_some()),
                "nothing saved in {}",
                saved.display()
            );
        }
    }
    assert_eq!(counts.values().sum::<u64>(), 64, "{text}");
    assert!(text.contains("panicked at src/fake.rs:1:2: boom"), "{text}");
    assert!(text.contains("left behind: tmp/.fake.part"), "{text}");

    // The same seed gives the same findings, one job or two.
    let b = fuzz(&[&common[..], &["--jobs", "1"]].concat());
    assert_eq!(findings(&a), findings(&b));

    // A reported case runs again alone, with the same verdict.
    let panic_line = text
        .lines()
        .find(|l| l.starts_with("mem-estimate case ") && l.contains(" panic: "))
        .expect("a panic line");
    let id = panic_line.split_whitespace().nth(2).unwrap();
    let again = fuzz(&[&common[..], &["--case", id]].concat());
    let again_text = String::from_utf8_lossy(&again.stdout);
    assert!(
        again_text.lines().next().unwrap_or("") == panic_line,
        "case {id} again:\n{again_text}\nfirst:\n{panic_line}"
    );
    assert_eq!(row(&again, "mem-estimate")["panic"], 1);
}

/// A few hundred mutants of the corpus through the real tool (this build's binaries),
/// seed fixed: no panic, abort, signal, hang, partial output or changed source.
fn no_bad_case(tool: &str, cases: u32) {
    let bin = testkit::bin(tool);
    // The harness also runs mem-estimate and chunk-plan to make record seeds.
    testkit::bin("mem-estimate");
    testkit::bin("chunk-plan");
    let dir = testkit::tempdir();
    let out = fuzz(&[
        tool,
        "--cases",
        &cases.to_string(),
        "--seed",
        "20261201",
        "--bin-dir",
        bin.parent().unwrap().to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "cargo xtask fuzz {tool} found bad cases (mutants in target/fuzz after running it \
         again with --out left out):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fuzz_mem_estimate() {
    no_bad_case("mem-estimate", 300);
}

#[test]
fn fuzz_chunk_plan() {
    no_bad_case("chunk-plan", 300);
}

#[test]
fn fuzz_strip_convert() {
    no_bad_case("strip-convert", 300);
}

#[test]
fn fuzz_laz_enrich() {
    no_bad_case("laz-enrich", 200);
}
