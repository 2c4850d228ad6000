//! `mem-estimate | chunk-plan --for spot-detect | tile-enhance spots` through real pipes,
//! and the measured peak RSS against the `spot-detect` cost model.

mod spots_util;

use spots_util::*;

#[test]
fn estimate_plan_detect_through_pipes() {
    let dir = testkit::tempdir();
    let sc = scene(5, 300, 200, 60, &[]);
    let img = dir.path().join("p.tif");
    write_gray16(&img, 300, 200, &[&sc.pixels]);
    let recs = testkit::pipe([
        testkit::tool("mem-estimate").arg(&img),
        testkit::tool("chunk-plan").args(["--for", "spot-detect", "-m", "40MiB"]),
        testkit::tool("tile-enhance")
            .args(["spots", "--sigma", "1.5", "-o"])
            .arg(dir.path().join("o")),
    ])
    .check()
    .records();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    // Upstream sections pass through; ours is added.
    assert_eq!(r["plan"]["budget_bytes"], 40 << 20, "{r}");
    assert!(r["estimate"]["spot-detect"].is_object(), "{r}");
    assert_eq!(r["spots"]["status"], "ok", "{r}");
    assert!(r["spots"]["count"].as_u64().unwrap() > 40, "{r}");
    assert!(r["spots"]["peak_rss"].as_u64().unwrap() <= 40 << 20, "{r}");
    // The same spots as a direct run.
    let direct = spots_ok(&[
        "--sigma",
        "1.5",
        "-o",
        dir.path().join("d").to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert_eq!(csv_of(r), csv_of(&direct));
}

#[test]
fn peak_rss_is_within_the_cost_model() {
    let dir = testkit::tempdir();
    let (w, h) = (2000u32, 1200u32);
    let sc = scene(9, w, h, 300, &[]);
    let img = dir.path().join("m.tif");
    write_gray16(&img, w, h, &[&sc.pixels]);
    let rec = spots_ok(&[
        "--sigma",
        "2",
        "-t",
        "60",
        "-j",
        "2",
        "-m",
        "40MiB",
        "--readout",
        "mean:2",
        "-o",
        dir.path().to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    let s = &rec["spots"];
    let (peak, predicted) = (
        s["peak_rss"].as_u64().unwrap(),
        s["predicted_peak"].as_u64().unwrap(),
    );
    eprintln!(
        "tile {}, workers {}: peak {peak}, predicted {predicted}",
        s["tile"], s["workers"]
    );
    assert!(peak <= 40 << 20, "{rec}");
    // The bound: the model within 20% of the measured peak (the budget itself is
    // checked above).
    assert!(
        peak as f64 <= 1.2 * predicted as f64,
        "the model under-predicts by more than 20%: {rec}"
    );
    assert!(
        predicted as f64 <= 1.6 * peak as f64,
        "the model over-predicts by far: {rec}"
    );
}
