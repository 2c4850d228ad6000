//! Several inputs at once (membudget's batch driver): records in input order, or as
//! inputs finish with `--unordered`; error records through untouched; the whole
//! process within the budget, each input planned with its share; inputs really side by
//! side. Pixels checked with tifffile and the `jpeg2k` crate.

use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::*;

/// RGB TIFFs of the given sizes (width, height): gradients with seeded grain.
fn tiffs(py: &Path, dir: &Path, sizes: &[(u32, u32)]) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = (0..sizes.len())
        .map(|i| dir.join(format!("scan-{i}.tif")))
        .collect();
    let spec: Vec<String> = sizes
        .iter()
        .zip(&paths)
        .map(|((w, h), p)| format!("{w}x{h}={}", p.display()))
        .collect();
    let mut args: Vec<&str> = vec![];
    args.extend(spec.iter().map(String::as_str));
    testkit::run_python(
        py,
        r#"
import sys, numpy as np, tifffile
rng = np.random.default_rng(5)
for a in sys.argv[1:]:
    size, path = a.split("=", 1)
    w, h = map(int, size.split("x"))
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x + y) % 256, (x // 2) % 256, (y // 3) % 256], -1)
    img = np.clip(img + rng.integers(0, 24, img.shape), 0, 255).astype(np.uint8)
    tifffile.imwrite(path, img, photometric="rgb", rowsperstrip=32)
"#,
        &args,
    );
    paths
}

/// Run strip-convert with `args` on `stdin`'s lines; records, exit code, wall time and the
/// process's peak RSS.
fn batch(args: &[&str], stdin: &str, dir: &Path) -> (Vec<Value>, i32, f64, u64) {
    testkit::run_stdin_file("strip-convert", args, stdin, dir)
}

#[test]
fn a_batch_runs_files_side_by_side_in_input_order_within_the_budget() {
    // Peak RSS asserted: no other test of this binary decodes images meanwhile.
    let _serial = testkit::measuring();
    let Some(py) = testkit::python(&["tifffile", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let sizes = [
        (900, 700),
        (700, 900),
        (1000, 600),
        (640, 960),
        (800, 800),
        (960, 640),
    ];
    let srcs = tiffs(&py, dir.path(), &sizes);
    let lines = testkit::batch::lines(&srcs, &dir.path().join("bad.tif"), "gone.tif");
    let out_dir = dir.path().join("out");
    let budget: u64 = 64 << 20;
    let (records, code, wall, peak) = batch(
        &["-j", "2", "-m", "64MiB", "-o", out_dir.to_str().unwrap()],
        &(lines.join("\n") + "\n"),
        dir.path(),
    );
    // One input failed: exit 1, every record there.
    assert_eq!(code, 1, "{records:?}");
    let ok = testkit::batch::check("strip-convert", &records, &lines, budget, peak, wall);
    assert!(ok.iter().any(|r| section(r)["concurrent"] == 2));
    // Every output holds its source's samples.
    let want = tiff_samples_many(&py, &srcs, 0);
    for (r, (samples, shape)) in ok.iter().zip(want) {
        let got = jp2_samples(&output_of(r));
        assert_eq!(got.1, shape, "{r}");
        assert!(got.0 == samples, "{r}: samples differ");
    }
}

#[test]
fn unordered_writes_records_as_inputs_finish() {
    let Some(py) = testkit::python(&["tifffile", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let srcs = tiffs(
        &py,
        dir.path(),
        &[(3000, 2000), (200, 150), (150, 200), (180, 180)],
    );
    let lines: String = srcs.iter().map(|p| format!("{}\n", p.display())).collect();
    let names = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .map(|r| {
                r["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let out = dir.path().join("out");
    let args = ["-j", "2", "-f", "-o", out.to_str().unwrap()];
    let (ordered, code, _, _) = batch(&args, &lines, dir.path());
    assert_eq!(code, 0);
    assert_eq!(
        names(&ordered),
        ["scan-0.tif", "scan-1.tif", "scan-2.tif", "scan-3.tif"]
    );
    let (unordered, code, _, _) =
        batch(&[&args[..], &["--unordered"]].concat(), &lines, dir.path());
    assert_eq!(code, 0);
    // The large scan, first in, is done last: the small ones ran beside it.
    assert_eq!(
        names(&unordered).last().map(String::as_str),
        Some("scan-0.tif")
    );
    assert_eq!(unordered.len(), 4);
    assert!(
        unordered.iter().all(|r| section(r)["status"] == "ok"),
        "{unordered:?}"
    );
}

/// One input, on the batch driver, costs what it did on the one-at-a-time driver: the
/// driver used to link every format's probe and cost model (2.2 MiB more resident text
/// in this debug build), which put one wide scan over a 24 MiB budget. From stdin too,
/// where the driver cannot know it is alone until the stream ends: the input still gets
/// the whole budget.
#[test]
fn one_input_from_stdin_gets_the_whole_budget_and_keeps_to_it() {
    // Peak RSS asserted: no other test of this binary decodes images meanwhile.
    let _serial = testkit::measuring();
    let Some(py) = testkit::python(&["tifffile", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let src = &tiffs(&py, dir.path(), &[(6000, 1500)])[0];
    let budget: u64 = 24 << 20;
    let out = dir.path().join("out");
    let (records, code, _, peak) = batch(
        &["-j", "2", "-m", "24MiB", "-o", out.to_str().unwrap()],
        &format!("{}\n", src.display()),
        dir.path(),
    );
    assert_eq!(code, 0, "{records:?}");
    let s = section(&records[0]);
    assert_eq!(s["budget_bytes"].as_u64(), Some(budget), "{s}");
    assert!(peak <= budget, "peak RSS {peak} over the budget: {s}");
}
