//! What strip-convert writes and where, what it reads, and how many threads it runs:
//! inputs never overwritten, one output per name, destinations claimed against other
//! runs, stale temporaries removed, options and metadata files checked before the first
//! input, `-j` an upper bound the budget trims, multi-page files in linear time.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strip_convert::NAME;

fn run(dir: &Path, args: &[&str]) -> (Vec<Value>, i32, String) {
    testkit::run_in(NAME, dir, args)
}

fn sec(r: &Value) -> &Value {
    &r[NAME]
}

fn small_tiff(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    testkit::sparse_tiff(&p, (64, 48), 1, 16, 1);
    p
}

#[test]
fn an_input_is_never_written_over_whatever_the_flags() {
    use std::os::unix::fs::PermissionsExt;
    let dir = testkit::tempdir();
    // A TIFF named .jp2: its output name is its own name.
    let src = dir.path().join("x.jp2");
    testkit::sparse_tiff(&src, (64, 48), 1, 16, 1);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&src).unwrap();
    let (recs, code, _) = run(dir.path(), &["-f", "x.jp2"]);
    assert_eq!(code, 1, "{recs:?}");
    assert_eq!(recs.len(), 1);
    let msg = recs[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("is an input of this run"), "{recs:?}");
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

#[test]
fn inputs_with_one_output_name_are_refused_after_the_first() {
    let dir = testkit::tempdir();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for n in ["x.tif", "x.tiff", "x.TIF"] {
        small_tiff(&dir.path().join("in"), n);
    }
    // One at a time and side by side (the first in input order keeps the name whichever
    // thread gets there first: repeated, as a race would show only sometimes), with and
    // without --force.
    let mut runs = vec![("1", false), ("1", true)];
    runs.extend(std::iter::repeat_n([("3", false), ("3", true)], 4).flatten());
    for (jobs, force) in runs {
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let mut args = vec!["-j", jobs, "-o", "out", "in/x.tif", "in/x.tiff", "in/x.TIF"];
        if force {
            args.insert(0, "-f");
        }
        let (recs, code, err) = run(dir.path(), &args);
        assert_eq!(code, 1, "{recs:?}");
        assert_eq!(recs.len(), 3);
        assert!(
            sec(&recs[0])["status"] == "ok" || sec(&recs[0])["status"] == "skipped",
            "{recs:?} {err}"
        );
        for r in &recs[1..] {
            let msg = r["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("already the output of in/x.tif"), "{r}");
        }
        assert_eq!(err.lines().count(), 2, "{err}");
    }
}

#[test]
fn a_destination_another_run_writes_is_skipped_and_says_who() {
    let dir = testkit::tempdir();
    small_tiff(dir.path(), "a.tif");
    // This test process plays the other run: it holds a.jp2's claim.
    let held = membudget::outputs::lock(&dir.path().join("a.jp2")).unwrap();
    assert!(matches!(held, membudget::outputs::Claim::Mine(_)));
    let (recs, code, _) = run(dir.path(), &["a.tif"]);
    assert_eq!(code, 0, "{recs:?}");
    let r = sec(&recs[0]);
    assert_eq!(r["status"], "skipped", "{r}");
    assert_eq!(
        r["reason"],
        format!("being written by another run (pid {})", std::process::id())
    );
    assert!(!dir.path().join("a.jp2").exists());
    drop(held);
    let (recs, code, _) = run(dir.path(), &["a.tif"]);
    assert_eq!((code, &sec(&recs[0])["status"]), (0, &Value::from("ok")));
    // No lock file or temporary is left.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a.jp2", "a.tif"]);
}

#[test]
fn temporaries_of_a_killed_run_are_removed_by_the_next() {
    let dir = testkit::tempdir();
    small_tiff(dir.path(), "a.tif");
    let mut child = testkit::tool(NAME)
        .current_dir(dir.path())
        .args(["--xml", "/dev/null", "a.tif"])
        .spawn();
    let pid = child.id();
    child.wait().unwrap();
    // What a SIGKILLed run leaves: its .part file and its claim, named for the dead pid.
    let boot = membudget::outputs::boot_id();
    let part = dir.path().join(format!(".b.jp2.{pid}-{boot}-AbC123.part"));
    std::fs::write(&part, b"half").unwrap();
    let lock = dir.path().join(".b.jp2.lock");
    std::fs::write(&lock, format!("membudget-lock {pid} {boot}\n")).unwrap();
    let unrelated = dir.path().join(".notes.part");
    std::fs::write(&unrelated, b"mine").unwrap();
    std::fs::remove_file(dir.path().join("a.jp2")).unwrap();
    let (recs, code, _) = run(dir.path(), &["a.tif"]);
    assert_eq!(code, 0, "{recs:?}");
    assert!(!part.exists() && !lock.exists());
    assert!(unrelated.exists());
}

#[test]
fn bad_options_and_metadata_files_are_usage_errors_before_any_input() {
    let dir = testkit::tempdir();
    small_tiff(dir.path(), "a.tif");
    let big = dir.path().join("big.xml");
    std::fs::write(&big, vec![b' '; 5 << 20]).unwrap();
    let big = big.to_str().unwrap();
    for args in [
        &["--min-ssim", "2", "a.tif"][..],
        &["--rates", "0", "a.tif"],
        &["--rates", "40,0", "a.tif"],
        &["--codeblock", "48", "a.tif"],
        &["--precincts", "100", "a.tif"],
        &["--xml", big, "a.tif"],
        &["--xmp", "/dev/zero", "a.tif"],
    ] {
        let started = Instant::now();
        let (recs, code, err) = run(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {recs:?} {err}");
        assert!(recs.is_empty(), "{args:?}: {recs:?}");
        assert!(!err.is_empty());
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?}");
    }
    assert!(!dir.path().join("a.jp2").exists());
}

#[test]
fn without_a_memory_limit_the_default_budget_applies_to_huge_images() {
    let dir = testkit::tempdir();
    // 100000 x 100000 grey: more than 65,535 tiles of 256, so the tiles are widened.
    let src = dir.path().join("huge.tif");
    testkit::sparse_tiff(&src, (100_000, 100_000), 1, 1000, 1);
    let (recs, code, err) = run(dir.path(), &["-n", "huge.tif"]);
    assert_eq!(code, 0, "{recs:?} {err}");
    let r = sec(&recs[0]);
    assert_eq!(r["status"], "dry_run", "{r}");
    assert!(r["predicted_peak_rss"].as_u64().unwrap() <= r["budget_bytes"].as_u64().unwrap());
}

#[test]
fn jobs_is_an_upper_bound_the_budget_trims() {
    let dir = testkit::tempdir();
    // -j 100000 runs (no thread per job) and says what ran: kodim02 is 768x512, six
    // 256-pixel tiles.
    let src = testkit::data("tiff/kodim02-lzw.tif");
    let (recs, code, err) = run(
        dir.path(),
        &["-j", "100000", "-o", ".", src.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{recs:?} {err}");
    let r = sec(&recs[0]);
    assert_eq!(r["status"], "ok");
    assert!(r["threads"].as_u64().unwrap() <= 6, "{r}");

    // -j 16 under 64 MiB: a wide image, whose band takes a quarter of the budget, with
    // every thread's tile on top. Measured from outside (the kernel's peak), not by
    // the tool's own record.
    let Some(py) = testkit::python(&["tifffile", "numpy"]) else {
        return;
    };
    let wide = dir.path().join("wide.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:600, 0:8400]
a = np.stack([(x // 3 + y // 5) % 256, (x * y // 97) % 256, (x ^ y) % 256], -1)
tifffile.imwrite(sys.argv[1], a.astype(np.uint8), rowsperstrip=64)
"#,
        &[wide.to_str().unwrap()],
    );
    let m = testkit::tool(NAME)
        .current_dir(dir.path())
        .args(["-f", "-j", "16", "-m", "64MiB", "wide.tif"])
        .run();
    let recs = m.records();
    let r = sec(&recs[0]);
    assert_eq!(r["status"], "ok", "{r}");
    assert!(
        m.peak_rss <= 64 << 20,
        "peak {:.1} MiB over 64 MiB: {r}",
        m.peak_rss as f64 / 1048576.0
    );
    assert!(r["threads"].as_u64().unwrap() <= 16);
}

#[test]
fn pages_open_at_their_offset_without_rereading_the_chain() {
    let dir = testkit::tempdir();
    let src = dir.path().join("pages.tif");
    testkit::sparse_tiff(&src, (16, 16), 1, 16, 50);
    let offsets = raster::tiff::page_offsets(&src).unwrap();
    assert_eq!(offsets.len(), 50);
    // Wreck the first IFD's entries (the header still points at it): a page opened by
    // walking the chain from the start would fail, one opened at its offset does not.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
        f.write_all_at(&[0xff; 60], offsets[0] + 2).unwrap();
    }
    let page = raster::tiff::TiffPage::open_at(&src, 42, offsets[42]).unwrap();
    assert_eq!((page.info.width, page.info.height), (16, 16));
    assert!(raster::tiff::TiffPage::open_at(&src, 0, offsets[0]).is_err());
}

#[test]
fn each_page_record_is_written_when_its_page_is_done() {
    let dir = testkit::tempdir();
    // Pages 1 and 2 are tiny, page 3 takes seconds: the first record arrives while the
    // tool still runs.
    let big = dir.path().join("mixed.tif");
    write_mixed(&big);
    let mut child = testkit::tool(NAME)
        .current_dir(dir.path())
        .args(["-j", "1", "mixed.tif"])
        .spawn_piped();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    let first: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(sec(&first)["page"], 1, "{first}");
    assert_eq!(sec(&first)["status"], "ok", "{first}");
    let rest: Vec<String> = std::io::BufRead::lines(out).map(Result::unwrap).collect();
    child.wait().unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        still_running,
        "the first page's record came only at the end"
    );
}

/// A 3-page TIFF: pages 1 and 2 are 16x16, page 3 is 3000x3000 (seconds to encode in a
/// debug build).
fn write_mixed(path: &Path) {
    let dir = path.parent().unwrap();
    let small = dir.join("mixed-small.tif");
    let large = dir.join("mixed-large.tif");
    testkit::sparse_tiff(&small, (16, 16), 1, 16, 2);
    testkit::sparse_tiff(&large, (3000, 3000), 1, 3000, 1);
    // Chain: small page 1 -> small page 2 -> the large page, appended with its offsets
    // shifted by the small file's length.
    let mut s = std::fs::read(&small).unwrap();
    let l = std::fs::read(&large).unwrap();
    let shift = s.len() as u32;
    let rd = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // Second small IFD's next pointer: IFD at rd(s, 4) then chained once.
    let ifd1 = rd(&s, 4) as usize;
    let n1 = u16::from_le_bytes([s[ifd1], s[ifd1 + 1]]) as usize;
    let ifd2 = rd(&s, ifd1 + 2 + 12 * n1) as usize;
    let n2 = u16::from_le_bytes([s[ifd2], s[ifd2 + 1]]) as usize;
    let large_ifd = rd(&l, 4);
    let next_at = ifd2 + 2 + 12 * n2;
    s[next_at..next_at + 4].copy_from_slice(&(large_ifd + shift).to_le_bytes());
    let mut l = l;
    let nl = u16::from_le_bytes([l[large_ifd as usize], l[large_ifd as usize + 1]]) as usize;
    for e in 0..nl {
        let at = large_ifd as usize + 2 + 12 * e;
        let tag = u16::from_le_bytes([l[at], l[at + 1]]);
        let count = rd(&l, at + 4);
        // StripOffsets (a single value) and BitsPerSample beyond 4 bytes point into the
        // file: shift them.
        if tag == 273 || (tag == 258 && count > 2) {
            let v = rd(&l, at + 8) + shift;
            l[at + 8..at + 12].copy_from_slice(&v.to_le_bytes());
        }
    }
    s.extend_from_slice(&l);
    std::fs::write(path, s).unwrap();
}

#[test]
fn chunk_plan_and_the_tool_agree_on_single_strip_uncompressed_tiffs() {
    let dir = testkit::tempdir();
    // 16000 x 16000 grey in one uncompressed strip: the tool reads it a few rows at a
    // time, so it fits 64 MiB; the model once counted the whole strip (498 MiB, exit 3).
    let src = dir.path().join("one-strip.tif");
    testkit::sparse_tiff(&src, (16_000, 16_000), 1, 16_000, 1);
    let plan = testkit::pipe([
        testkit::tool("mem-estimate")
            .current_dir(dir.path())
            .arg("one-strip.tif"),
        testkit::tool("chunk-plan").current_dir(dir.path()).args([
            "--for",
            "strip-convert",
            "-m",
            "64MiB",
            "-j",
            "2",
        ]),
    ]);
    assert_eq!(plan.code(), 0, "{plan:?}");
    let planned = &plan.records()[0];
    let p = &planned["plan"]["strip-convert"];
    assert!(
        p["predicted_peak_bytes"].as_u64().unwrap() <= 64 << 20,
        "{p}"
    );
    // The tool, fed that record, plans the same.
    let conv = testkit::tool(NAME)
        .current_dir(dir.path())
        .args(["-n", "-j", "2"])
        .stdin(format!("{planned}\n"))
        .run();
    let r = sec(&conv.records()[0]).clone();
    assert_eq!(r["status"], "dry_run", "{r}");
    assert_eq!(
        r["predicted_peak_rss"], p["predicted_peak_bytes"],
        "{r} vs {p}"
    );
    assert_eq!(r["tile"][1], p["tile"][1], "{r} vs {p}");
}
