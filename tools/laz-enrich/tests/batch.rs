//! Several clouds at once (membudget's batch driver): records in input order, or as
//! clouds finish with `--unordered`; error records through untouched; the whole process
//! within the budget, each cloud planned with its share; clouds really side by side;
//! outputs identical to one cloud at a time.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn section(r: &Value) -> &Value {
    &r["laz-enrich"]
}

fn ign(name: &str) -> PathBuf {
    testkit::data(&format!("laz/ign/{name}"))
}

/// The IGN sample tiles (56k to 84k points each).
fn tiles() -> Vec<PathBuf> {
    [
        "77050_627755",
        "77050_627760",
        "77055_627755",
        "77055_627760",
        "77060_627755",
        "77060_627760",
    ]
    .iter()
    .map(|n| ign(&format!("test_data_{n}_LA93_IGN69.laz")))
    .collect()
}

/// Run laz-enrich with `args` on `stdin`'s lines; records, exit code, wall time and the
/// process's peak RSS.
fn batch(args: &[&str], stdin: &str, dir: &Path) -> (Vec<Value>, i32, f64, u64) {
    testkit::run_stdin_file("laz-enrich", args, stdin, dir)
}

fn file_name(r: &Value) -> String {
    let p = r["path"].as_str().unwrap();
    p.rsplit('/').next().unwrap().to_string()
}

#[test]
fn a_batch_runs_clouds_side_by_side_in_input_order_within_the_budget() {
    // Peak RSS asserted: no other test of this binary decodes images meanwhile.
    let _serial = testkit::measuring();
    let dir = testkit::tempdir();
    let srcs = tiles();
    let lines = testkit::batch::lines(&srcs, &dir.path().join("bad.laz"), "gone.laz");
    let out = dir.path().join("batch");
    let budget: u64 = 64 << 20;
    let (records, code, wall, peak) = batch(
        &["-j", "2", "-m", "64MiB", "-o", out.to_str().unwrap()],
        &(lines.join("\n") + "\n"),
        dir.path(),
    );
    assert_eq!(code, 1, "{records:?}");
    let ok = testkit::batch::check("laz-enrich", &records, &lines, budget, peak, wall);
    for r in &ok {
        if section(r)["concurrent"] == 2 {
            assert_eq!(section(r)["threads"], 1, "{r}");
        }
    }
    // The same bytes as one cloud at a time with every thread.
    let one = dir.path().join("one");
    for (src, r) in srcs.iter().zip(&ok) {
        let (single, code, _, _) = batch(
            &[
                "-m",
                "64MiB",
                "-o",
                one.to_str().unwrap(),
                src.to_str().unwrap(),
            ],
            "",
            dir.path(),
        );
        assert_eq!(code, 0, "{single:?}");
        let a = std::fs::read(section(r)["output"].as_str().unwrap()).unwrap();
        let b = std::fs::read(section(&single[0])["output"].as_str().unwrap()).unwrap();
        assert!(a == b, "{}: the batch's output differs", src.display());
    }
}

#[test]
fn unordered_writes_records_as_clouds_finish() {
    let dir = testkit::tempdir();
    let big = ign("las_with_several_extra_byte_bloc.laz");
    let mut srcs = vec![big];
    srcs.extend(tiles().into_iter().take(3));
    let lines: String = srcs.iter().map(|p| format!("{}\n", p.display())).collect();
    let out = dir.path().join("out");
    let args = ["-j", "2", "-f", "-o", out.to_str().unwrap()];
    let (ordered, code, _, _) = batch(&args, &lines, dir.path());
    assert_eq!(code, 0, "{ordered:?}");
    let names: Vec<String> = srcs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ordered.iter().map(file_name).collect::<Vec<_>>(), names);
    let (unordered, code, _, _) =
        batch(&[&args[..], &["--unordered"]].concat(), &lines, dir.path());
    assert_eq!(code, 0, "{unordered:?}");
    assert_eq!(unordered.len(), 4);
    // The large cloud, first in, is done last: the small tiles ran beside it.
    assert_eq!(unordered.last().map(file_name), Some(names[0].clone()));
}
