//! The memory model holds in fact: across image sizes, tile sizes and worker counts, the
//! cost model's predicted peak RSS (membudget's `StripConvert`, written in the record as
//! `predicted_peak_rss`) is within 20% of the peak RSS measured while converting, and a
//! budget given with `--memory-limit` is never exceeded.

#[test]
fn predicted_peak_is_within_20_percent_of_measured() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let rgb = dir.path().join("rgb.tif");
    let gray = dir.path().join("gray16.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
rng = np.random.default_rng(11)
y, x = np.mgrid[0:3000, 0:4000]
a = np.stack([(x // 3 + y // 5) % 256, (x * y // 97) % 256, rng.integers(0, 40, x.shape)], -1)
tifffile.imwrite(sys.argv[1], a.astype(np.uint8), rowsperstrip=32)
g = ((x * 7 + y * 3) % 4096 + rng.integers(0, 64, x.shape))[:2400, :2400]
tifffile.imwrite(sys.argv[2], g.astype(np.uint16), tile=(128, 128))
"#,
        &[rgb.to_str().unwrap(), gray.to_str().unwrap()],
    );
    let mut worst: f64 = 0.0;
    for (src, tile, jobs) in [
        (&rgb, "256", "1"),
        (&rgb, "512", "2"),
        (&rgb, "1024", "2"),
        (&gray, "512", "1"),
        (&gray, "1024", "2"),
    ] {
        let out = testkit::tool("strip-convert")
            .arg(src)
            .args(["--force", "--tile", tile, "-j", jobs])
            .ok();
        let r = &out.records()[0]["strip-convert"];
        let measured = r["peak_rss"].as_f64().expect("peak_rss");
        let predicted = r["predicted_peak_rss"].as_f64().expect("predicted");
        let err = (predicted - measured).abs() / measured;
        eprintln!(
            "{} tile {tile} jobs {jobs}: measured {:.1} MiB, predicted {:.1} MiB ({:+.0}%)",
            src.file_name().unwrap().to_string_lossy(),
            measured / 1048576.0,
            predicted / 1048576.0,
            (predicted / measured - 1.0) * 100.0
        );
        worst = worst.max(err);
    }
    assert!(worst <= 0.20, "model off by {:.0}%", worst * 100.0);
}

#[test]
fn budget_holds() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let src = dir.path().join("wide.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:1500, 0:6000]
a = np.stack([(x + y) % 256, (x // 2) % 256, (y // 3) % 256], -1).astype(np.uint8)
tifffile.imwrite(sys.argv[1], a, rowsperstrip=16)
"#,
        &[src.to_str().unwrap()],
    );
    let budget: u64 = 24 << 20;
    let out = testkit::tool("strip-convert")
        .arg(&src)
        .args(["--force", "--memory-limit", "24MiB", "--verify"])
        .ok();
    let r = &out.records()[0]["strip-convert"];
    assert_eq!(r["verification"]["status"], "ok");
    let peak = r["peak_rss"].as_u64().unwrap();
    assert!(peak <= budget, "peak {peak} over the budget {budget}: {r}");
    // The plan had to shrink the tiles below the 1024 default to fit.
    assert!(r["tile"][0].as_u64().unwrap() < 1024, "{r}");
}

#[test]
fn without_a_budget_the_plan_takes_the_efficient_tile_with_every_thread() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let src = dir.path().join("rgb.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:1200, 0:1600]
a = np.stack([(x + y) % 256, (x // 2) % 256, (y // 3) % 256], -1).astype(np.uint8)
tifffile.imwrite(sys.argv[1], a, rowsperstrip=64)
"#,
        &[src.to_str().unwrap()],
    );
    let out = testkit::tool("strip-convert")
        .arg(&src)
        .args(["--force", "-j", "2"])
        .ok();
    let r = &out.records()[0]["strip-convert"];
    // Not the largest tile the machine's memory allows (1024): the efficient one, on both
    // threads, so the default run stays small and parallel.
    assert_eq!(r["tile"], serde_json::json!([256, 256]), "{r}");
    assert_eq!(r["threads"], 2, "{r}");
}
