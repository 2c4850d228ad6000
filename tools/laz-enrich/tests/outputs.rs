//! What laz-enrich writes and where, what it refuses before reading, and how many threads
//! it runs: inputs never overwritten, one output per name, `--suffix` a name part,
//! destinations claimed against other runs, `-j` an upper bound the budget trims,
//! damaged headers named as such.

use laz_enrich::NAME;
use serde_json::Value;
use std::path::Path;

fn run(dir: &Path, args: &[&str]) -> (Vec<Value>, i32, String) {
    testkit::run_in(NAME, dir, args)
}

fn sec(r: &Value) -> &Value {
    &r[NAME]
}

fn copy(dir: &Path, from: &str, to: &str) {
    std::fs::copy(testkit::data(from), dir.join(to)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(to), std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn an_empty_suffix_never_replaces_the_input() {
    let dir = testkit::tempdir();
    copy(dir.path(), "laz/autzen.laz", "a.laz");
    let before = std::fs::read(dir.path().join("a.laz")).unwrap();
    let (recs, code, _) = run(dir.path(), &["-f", "--suffix", "", "a.laz"]);
    assert_eq!(code, 1, "{recs:?}");
    let msg = recs[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("is an input of this run"), "{recs:?}");
    assert_eq!(std::fs::read(dir.path().join("a.laz")).unwrap(), before);
}

#[test]
fn suffixes_and_tile_points_are_checked_before_any_input() {
    let dir = testkit::tempdir();
    copy(dir.path(), "laz/autzen.laz", "a.laz");
    for args in [
        &["--suffix", "/../../../escaped", "-o", "out", "a.laz"][..],
        &["--suffix", "..", "a.laz"],
        &["--tile-points", "0", "a.laz"],
    ] {
        let (recs, code, err) = run(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {recs:?} {err}");
        assert!(recs.is_empty());
    }
    assert!(!dir.path().join("escaped.laz").exists());
    assert!(!dir.path().parent().unwrap().join("escaped.laz").exists());
}

#[test]
fn inputs_with_one_output_name_are_refused_after_the_first() {
    let dir = testkit::tempdir();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    copy(&dir.path().join("in"), "laz/autzen.laz", "x.laz");
    copy(&dir.path().join("in"), "laz/autzen.las", "x.las");
    let (recs, code, _) = run(dir.path(), &["-f", "-o", "out", "in/x.laz", "in/x.las"]);
    assert_eq!(code, 1, "{recs:?}");
    assert_eq!(sec(&recs[0])["status"], "ok", "{recs:?}");
    let msg = recs[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("already the output of in/x.laz"), "{recs:?}");
}

#[test]
fn a_destination_another_run_writes_is_skipped_and_says_who() {
    let dir = testkit::tempdir();
    copy(dir.path(), "laz/autzen.laz", "a.laz");
    let held = membudget::outputs::lock(&dir.path().join("a.enriched.laz")).unwrap();
    assert!(matches!(held, membudget::outputs::Claim::Mine(_)));
    let (recs, code, _) = run(dir.path(), &["a.laz"]);
    assert_eq!(code, 0, "{recs:?}");
    assert_eq!(sec(&recs[0])["status"], "skipped");
    assert_eq!(
        sec(&recs[0])["reason"],
        format!("being written by another run (pid {})", std::process::id())
    );
    assert!(!dir.path().join("a.enriched.laz").exists());
}

#[test]
fn damaged_headers_are_corrupt_not_io_errors() {
    let dir = testkit::tempdir();
    // A LAS 1.4 file whose EVLR offset is past any file (a seek there is EINVAL).
    let mut laz = std::fs::read(testkit::data(
        "laz/ign/test_data_77050_627755_LA93_IGN69.laz",
    ))
    .unwrap();
    laz[235..243].copy_from_slice(&((1u64 << 63) + 100).to_le_bytes());
    laz[243..247].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(dir.path().join("evlr.laz"), &laz).unwrap();
    // A header size of 0.
    let mut las = std::fs::read(testkit::data("laz/autzen.las")).unwrap();
    las[94..96].copy_from_slice(&0u16.to_le_bytes());
    std::fs::write(dir.path().join("h0.las"), &las).unwrap();
    let (recs, code, _) = run(dir.path(), &["evlr.laz", "h0.las"]);
    assert_eq!(code, 1, "{recs:?}");
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["error"]["kind"], "corrupt", "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(!msg.contains("os error"), "{r}");
    }
    assert!(recs[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("header size 0"));
}

#[test]
fn jobs_is_an_upper_bound_the_budget_trims() {
    let dir = testkit::tempdir();
    copy(
        dir.path(),
        "laz/ign/las_with_several_extra_byte_bloc.laz",
        "big.laz",
    );
    let m = testkit::tool(NAME)
        .current_dir(dir.path())
        .args(["-f", "-j", "32", "-m", "48MiB", "big.laz"])
        .run();
    let recs = m.records();
    let r = sec(&recs[0]);
    assert_eq!(r["status"], "ok", "{recs:?}");
    let threads = r["threads"].as_u64().unwrap();
    assert!((1..32).contains(&threads), "{r}");
    assert!(
        m.peak_rss <= 48 << 20,
        "peak {:.1} MiB over 48 MiB with {threads} threads: {r}",
        m.peak_rss as f64 / 1048576.0
    );
}

#[test]
fn a_killed_runs_scratch_directory_is_removed_by_the_next_run() {
    use std::time::{Duration, Instant};
    let dir = testkit::tempdir();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let input = testkit::data("laz/ign/test_data_77050_627755_LA93_IGN69.laz");
    let scratch_dirs = || -> Vec<String> {
        std::fs::read_dir(&scratch)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    // SIGKILL once the feature passes have started: nothing can clean up.
    let mut child = testkit::tool(NAME)
        .args(["-F", "all", "--tile-points", "30000", "--temp-dir"])
        .arg(&scratch)
        .arg("-o")
        .arg(dir.path().join("out"))
        .arg(&input)
        .spawn();
    let start = Instant::now();
    while !std::fs::read_dir(&scratch)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.path().join("features").exists())
    {
        assert!(
            child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = scratch_dirs();
    assert_eq!(left.len(), 1, "{left:?}");
    // Named for its dead owner, so the next run knows it may remove it.
    assert!(
        left[0].starts_with(".laz-enrich.") && left[0].ends_with(".scratch"),
        "{left:?}"
    );
    let (recs, code, err) = run(
        dir.path(),
        &[
            "--temp-dir",
            "scratch",
            "-o",
            "out2",
            "-f",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(sec(&recs[0])["status"], "ok", "{recs:?}");
    assert!(scratch_dirs().is_empty(), "{:?}", scratch_dirs());
}

#[test]
fn scratch_files_go_under_tmpdir_and_need_room_there() {
    let dir = testkit::tempdir();
    copy(dir.path(), "laz/autzen.laz", "a.laz");
    // TMPDIR names a directory that does not exist yet: the scratch directory's parent
    // is made there, so its existence after the run shows where the pass files went.
    let scratch = dir.path().join("scratch-disk");
    testkit::tool(NAME)
        .current_dir(dir.path())
        .env("TMPDIR", &scratch)
        .args(["-o", "out", "a.laz"])
        .ok();
    assert!(scratch.is_dir(), "TMPDIR was not used");
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch left"
    );
    assert!(dir.path().join("out/a.enriched.laz").exists());
    // --temp-dir wins over TMPDIR.
    let elsewhere = dir.path().join("elsewhere");
    testkit::tool(NAME)
        .current_dir(dir.path())
        .env("TMPDIR", dir.path().join("unused"))
        .args(["-f", "-o", "out", "--temp-dir"])
        .arg(&elsewhere)
        .arg("a.laz")
        .ok();
    assert!(elsewhere.is_dir() && !dir.path().join("unused").exists());
}
