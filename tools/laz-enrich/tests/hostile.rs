//! laz-enrich on damaged and unusual files (the shared fuzz cases of issue 18), panics
//! and signals: an error record, no output, no temporary left, memory within the model.

use membudget::cost::laz_features::LazFeatures;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tool() -> testkit::Cmd {
    testkit::tool("laz-enrich")
}

fn fuzz(name: &str) -> PathBuf {
    testkit::data(&format!("fuzz/laz-enrich/{name}"))
}

/// Every entry of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The least the cost model predicts for any cloud (its fixed part, no points held):
/// refusing a file must not cost more.
fn least_predicted() -> u64 {
    LazFeatures::default().predicted_peak(0, 20, 0, 0)
}

#[test]
fn damaged_files_give_a_clear_error_no_output_and_stay_in_the_model() {
    let dir = testkit::tempdir();
    // File, and what the message must name.
    let cases = [
        ("chunk-size-4gib.copc.laz", "layers of 4278124868 bytes"),
        ("chunk-table-huge.laz", "header size 0"),
        ("evlr-capacity-overflow.laz", "header size 0"),
        ("evlr-length-huge.laz", "header size 0"),
        ("no-laz-items.laz", "LASzip VLR lists no items"),
        ("record-length-mismatch.laz", "header size 0"),
        ("return-bits-flipped.las", "header size 0"),
    ];
    for (name, says) in cases {
        let input = fuzz(name);
        let out_dir = dir.path().join(name);
        let m = tool()
            .args(["-R", "1", "-f", "-o"])
            .arg(&out_dir)
            .arg(&input)
            .run();
        let recs = m.records();
        let stderr = m.stderr_text();
        assert_eq!(m.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(recs.len(), 1, "{name}");
        let e = &recs[0]["error"];
        assert_eq!(e["kind"], "corrupt", "{name}: {}", recs[0]);
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{name}: {}",
            recs[0]
        );
        assert!(
            entries(&out_dir).is_empty(),
            "{name}: left {:?}",
            entries(&out_dir)
        );
        // The tool's own figure (VmHWM since it started this input): wait4's would
        // include this test process's peak, which Linux folds into a child's.
        let peak = recs[0]["laz-enrich"]["peak_rss"].as_u64().unwrap();
        assert!(
            peak <= least_predicted(),
            "{name}: peak {peak} above the model's least estimate {}",
            least_predicted()
        );
    }
}

#[test]
fn returns_6_and_7_in_las_1_2_are_kept_exactly() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs"]) else {
        return;
    };
    let input = fuzz("return-6-of-7-las12.las");
    for format in ["laz", "las"] {
        let out_dir = dir.path().join(format);
        let m = tool()
            .args(["-F", "planarity,number_of_neighbors", "--format", format])
            .arg("-o")
            .arg(&out_dir)
            .arg(&input)
            .run();
        let recs = m.records();
        let stderr = m.stderr_text();
        assert_eq!(m.status.code(), Some(0), "{stderr}");
        let s = &recs[0]["laz-enrich"];
        assert_eq!(s["status"], "ok", "{}", recs[0]);
        assert_eq!(s["returns_above_5"], true, "{s}");
        assert!(
            s["peak_rss"].as_u64().unwrap() <= s["predicted_peak"].as_u64().unwrap(),
            "peak over the prediction: {s}"
        );
        let output = s["output"].as_str().unwrap();
        assert_eq!(entries(&out_dir).len(), 1, "{:?}", entries(&out_dir));
        // laspy reads it: same version, every input field of every point unchanged (the
        // 3-bit return fields included), the per-return counters those of the points.
        let code = r#"
import sys, numpy as np, laspy
a, b = laspy.read(sys.argv[1]), laspy.read(sys.argv[2])
assert str(b.header.version) == str(a.header.version) == "1.2", (a.header.version, b.header.version)
assert len(a.points) == len(b.points)
for d in a.point_format.dimension_names:
    assert np.array_equal(np.asarray(a[d]), np.asarray(b[d])), d
rn = np.asarray(b.return_number)
assert (rn == 6).sum() >= 1 and (np.asarray(b.number_of_returns) == 7).sum() >= 1
counts = [int((rn == r).sum()) for r in range(1, 6)]
assert list(b.header.number_of_points_by_return[:5]) == counts, (b.header.number_of_points_by_return, counts)
assert "planarity" in list(b.point_format.extra_dimension_names)
"#;
        testkit::run_python(&py, code, &[input.to_str().unwrap(), output]);
    }
}

#[test]
fn a_panic_in_one_input_is_its_error_record_and_the_run_goes_on() {
    let dir = testkit::tempdir();
    let first = testkit::data("laz/autzen.laz");
    let second = testkit::data("laz/32-1-472-150-76.laz");
    // In the decoding helper thread, in the merge helper (the writer open), on the
    // main thread between tiles.
    for point in ["decode", "merge", "tile"] {
        let out_dir = dir.path().join(point);
        let m = tool()
            .env("MEMBUDGET_FAILPOINT", format!("{point}@autzen.laz"))
            .args(["-F", "planarity", "-o"])
            .arg(&out_dir)
            .arg(&first)
            .arg(&second)
            .run();
        let recs = m.records();
        let stderr = m.stderr_text();
        assert_eq!(m.status.code(), Some(1), "{point}: {stderr}");
        assert_eq!(recs.len(), 2, "{point}: {stderr}");
        assert_eq!(recs[0]["error"]["kind"], "internal", "{}", recs[0]);
        let msg = recs[0]["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("panic: failpoint {point}")) && msg.contains("enrich.rs"),
            "{msg}"
        );
        // Said once, on the record's line, not by the default panic hook.
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(recs[1]["laz-enrich"]["status"], "ok", "{}", recs[1]);
        assert_eq!(
            entries(&out_dir),
            vec!["32-1-472-150-76.enriched.laz".to_string()],
            "{point}: no temporary left"
        );
    }
}

#[test]
fn a_signal_mid_run_removes_the_scratch_directory() {
    let dir = testkit::tempdir();
    let input = testkit::data("laz/ign/test_data_77050_627755_LA93_IGN69.laz");
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
    ] {
        let scratch = dir.path().join(format!("scratch-{name}"));
        let out_dir = dir.path().join(format!("out-{name}"));
        std::fs::create_dir_all(&scratch).unwrap();
        // Small tiles and every feature: long enough to be caught mid-run.
        let mut child = tool()
            .default_signals()
            .args(["-F", "all", "--tile-points", "30000", "--temp-dir"])
            .arg(&scratch)
            .arg("-o")
            .arg(&out_dir)
            .arg(&input)
            .spawn();
        // Wait until the feature passes have started (their file is in the scratch
        // directory), then signal.
        let start = Instant::now();
        let busy = loop {
            let started = std::fs::read_dir(&scratch)
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.path().join("features").exists());
            if started {
                break true;
            }
            if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(120) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(busy, "{name}: the run ended before it could be signalled");
        // SAFETY: kill only sends a signal to the child we started.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sig), "{name}: {status}");
        assert!(
            entries(&scratch).is_empty(),
            "{name}: scratch left {:?}",
            entries(&scratch)
        );
        assert!(
            entries(&out_dir).iter().all(|e| !e.ends_with(".part")),
            "{name}: {:?}",
            entries(&out_dir)
        );
    }
}
