//! Every subcommand on the batch driver: a directory of several images under `-j 2`
//! gives the records in input order and the same outputs as `-j 1` (one at a time); of
//! two inputs with one output name the first in order keeps it, whichever runs first.

mod spots_util;

use serde_json::Value;
use spots_util::{scene, write_gray16, write_rgb16};
use std::path::{Path, PathBuf};

/// The inputs, in the order a `--recursive` walk gives them: a large image first (done
/// last when run side by side), small ones, a damaged file, and `c.tif` / `c.tiff`,
/// which make one output name.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut paths = Vec::new();
    let mut gray = |name: &str, seed: u64, w: u32, h: u32| {
        let p = dir.join(name);
        let sc = scene(seed, w, h, (w * h / 4000) as usize, &[]);
        write_gray16(&p, w, h, &[&sc.pixels]);
        paths.push(p);
    };
    gray("a0.tif", 1, 1400, 1100);
    gray("a1.tif", 2, 160, 120);
    gray("a2.tif", 3, 97, 211);
    let p = dir.join("a3.tif");
    let (r, g, b) = (
        scene(4, 130, 90, 3, &[]),
        scene(5, 130, 90, 3, &[]),
        scene(6, 130, 90, 3, &[]),
    );
    write_rgb16(&p, 130, 90, [&r.pixels, &g.pixels, &b.pixels]);
    paths.push(p);
    let p = dir.join("b.tif");
    std::fs::write(&p, b"II*\0garbage, not a TIFF directory").unwrap();
    paths.push(p);
    let mut gray = |name: &str, seed: u64, w: u32, h: u32| {
        let p = dir.join(name);
        let sc = scene(seed, w, h, 20, &[]);
        write_gray16(&p, w, h, &[&sc.pixels]);
        paths.push(p);
    };
    gray("c.tif", 7, 150, 100);
    gray("c.tiff", 8, 90, 140);
    paths
}

/// Run `tile-enhance SUB ARGS -j JOBS -o OUT -r DIR`: the records (exit 1: one input
/// is damaged).
fn run(sub: &str, args: &[&str], jobs: &str, out: &Path, dir: &Path) -> Vec<Value> {
    let ran = testkit::tool("tile-enhance")
        .arg(sub)
        .args(args)
        .args(["-j", jobs, "-o"])
        .arg(out)
        .arg("-r")
        .arg(dir)
        .run();
    let records = ran.records();
    assert_eq!(ran.code(), 1, "{sub} -j {jobs}: {records:?}");
    records
}

/// The section of a record: `tile-enhance`, or `spots` for spot detection.
fn section<'a>(sub: &str, r: &'a Value) -> &'a Value {
    if sub == "spots" {
        &r["spots"]
    } else {
        &r["tile-enhance"]
    }
}

fn side_by_side_equals_one_at_a_time(sub: &str, args: &[&str]) {
    let tmp = testkit::tempdir();
    let dir = tmp.path().join("in");
    let paths = inputs(&dir);
    let (o1, o2) = (tmp.path().join("o1"), tmp.path().join("o2"));
    let one = run(sub, args, "1", &o1, &dir);
    let two = run(sub, args, "2", &o2, &dir);
    for (jobs, records) in [("1", &one), ("2", &two)] {
        let order: Vec<PathBuf> = records.iter().map(testkit::record_path).collect();
        assert_eq!(order, paths, "{sub} -j {jobs}: records in input order");
    }
    let outcome = |r: &Value| {
        let s = section(sub, r);
        (s["status"].clone(), r["error"]["kind"].clone())
    };
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(outcome(a), outcome(b), "{sub}: -j 1 {a}\n-j 2 {b}");
    }
    let ok = |records: &[Value]| {
        records
            .iter()
            .filter(|r| section(sub, r)["status"] == "ok")
            .count()
    };
    // The five images, not the damaged file nor the second claim of c's name.
    assert_eq!(ok(&one), 5, "{sub}: {one:?}");
    assert_eq!(ok(&two), 5, "{sub}: {two:?}");
    for records in [&one, &two] {
        let kind = |name: &str| {
            let r = records
                .iter()
                .find(|r| testkit::record_path(r).ends_with(name))
                .unwrap();
            r["error"]["kind"].clone()
        };
        assert_eq!(
            section(sub, &records[5])["status"],
            "ok",
            "{sub}: c.tif keeps its name"
        );
        assert_eq!(kind("c.tiff"), "bad_record", "{sub}: {records:?}");
        assert_eq!(kind("b.tif"), "corrupt", "{sub}: {records:?}");
    }
    // Side by side: the batch driver ran them (one at a time says nothing of it).
    assert!(one
        .iter()
        .all(|r| section(sub, r).get("concurrent").is_none()));
    assert!(
        two.iter()
            .filter(|r| section(sub, r)["status"] == "ok")
            .all(|r| section(sub, r)["concurrent"].as_u64() >= Some(1)),
        "{sub}: {two:?}"
    );
    let what = format!("{sub} -j 1 and -j 2");
    assert_eq!(testkit::assert_same_files(&o1, &o2, &what), 5, "{sub}");
}

#[test]
fn enhance_side_by_side_equals_one_at_a_time() {
    side_by_side_equals_one_at_a_time("enhance", &["--blur", "1.5", "--autocontrast", "1"]);
}

#[test]
fn thumbnail_side_by_side_equals_one_at_a_time() {
    side_by_side_equals_one_at_a_time("thumbnail", &["--size", "64", "--format", "png"]);
}

#[test]
fn spots_side_by_side_equals_one_at_a_time() {
    side_by_side_equals_one_at_a_time("spots", &["--sigma", "1.5"]);
}
