//! The subcommands whose inputs are independent run on the batch driver: several
//! inputs under `-j 2` give the records in input order and the same outputs as `-j 1`;
//! of two inputs with one output name the first in order keeps it.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn section(r: &Value) -> &Value {
    &r["cbz-stream"]
}

/// What a record says, without what differs from run to run (time, memory, inputs in
/// flight) or names the output directory.
fn outcome(r: &Value) -> Value {
    let mut s = section(r).clone();
    if let Some(m) = s.as_object_mut() {
        for k in ["seconds", "peak_rss", "concurrent", "output", "page_path"] {
            m.remove(k);
        }
    }
    serde_json::json!({"path": r["path"], "section": s, "error": r["error"]["kind"]})
}

/// Run `cbz-stream SUB ARGS -j JOBS -o OUT INPUTS`, expecting exit `code`.
fn run_jobs(
    sub: &str,
    args: &[&str],
    jobs: &str,
    out: &Path,
    inputs: &[PathBuf],
    code: i32,
) -> Vec<Value> {
    let mut a: Vec<String> = vec![sub.into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend(["-j".into(), jobs.into()]);
    if sub != "list" {
        a.extend(["-o".into(), out.to_str().unwrap().into()]);
    }
    a.extend(inputs.iter().map(|p| p.to_str().unwrap().to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let records = records(&a, "", code);
    let order: Vec<PathBuf> = records.iter().map(testkit::record_path).collect::<Vec<_>>();
    if sub != "list" {
        assert_eq!(order, inputs, "{sub} -j {jobs}: records in input order");
    }
    records
}

/// `-j 1` and `-j 2` of one subcommand: the same records and the same files.
fn same(
    sub: &str,
    args: &[&str],
    inputs: &[PathBuf],
    tmp: &Path,
    code: i32,
) -> (Vec<Value>, PathBuf) {
    let (o1, o2) = (tmp.join(format!("{sub}-1")), tmp.join(format!("{sub}-2")));
    let one = run_jobs(sub, args, "1", &o1, inputs, code);
    let two = run_jobs(sub, args, "2", &o2, inputs, code);
    assert_eq!(
        one.iter().map(outcome).collect::<Vec<_>>(),
        two.iter().map(outcome).collect::<Vec<_>>(),
        "{sub}"
    );
    assert!(
        one.iter().all(|r| section(r).get("concurrent").is_none()),
        "{sub}: {one:?}"
    );
    if sub != "list" {
        let what = format!("{sub} -j 1 and -j 2");
        assert!(testkit::assert_same_files(&o1, &o2, &what) > 0, "{sub}");
    }
    // Side by side: the batch driver ran them.
    assert!(
        two.iter()
            .filter(|r| section(r)["status"] == "ok")
            .all(|r| section(r)["concurrent"].as_u64() >= Some(1)),
        "{sub}: {two:?}"
    );
    (one, o1)
}

#[test]
fn independent_inputs_side_by_side_equal_one_at_a_time() {
    let tmp = testkit::tempdir();
    let books = tmp.path().join("books");
    // A long book first (done last side by side), short ones after.
    let mut dirs = Vec::new();
    for (b, pages, side) in [
        ("b0", 12u64, 600u16),
        ("b1", 2, 120),
        ("b2", 3, 90),
        ("b3", 1, 200),
    ] {
        for p in 0..pages {
            put(
                &books.join(b),
                &format!("{:03}.jpg", p + 1),
                &jpeg(side, side * 4 / 3, p * 7 + 1),
            );
        }
        dirs.push(books.join(b));
    }
    let (packed, cbz) = same("pack", &[], &dirs, tmp.path(), 0);
    assert!(
        packed.iter().all(|r| section(r)["status"] == "ok"),
        "{packed:?}"
    );
    let mut archives: Vec<PathBuf> = ["b0", "b1", "b2", "b3"]
        .iter()
        .map(|b| cbz.join(format!("{b}.cbz")))
        .collect();
    for a in &archives {
        unzip_t(a);
    }
    // c.cbz and c.zip unpack to one directory `c` and make one cover `c.cover.png`.
    std::fs::copy(&archives[1], tmp.path().join("c.cbz")).unwrap();
    std::fs::copy(&archives[2], tmp.path().join("c.zip")).unwrap();
    archives.extend([tmp.path().join("c.cbz"), tmp.path().join("c.zip")]);
    let (listed, _) = same("list", &[], &archives, tmp.path(), 0);
    // Every page and each archive's ComicInfo.xml.
    assert_eq!(listed.len(), 12 + 2 + 3 + 1 + 2 + 3 + 6, "{listed:?}");
    for sub in ["unpack", "cover"] {
        let (records, _) = same(sub, &[], &archives, tmp.path(), 1);
        let kinds: Vec<&Value> = records.iter().map(|r| &r["error"]["kind"]).collect();
        assert!(kinds[..5].iter().all(|k| k.is_null()), "{sub}: {records:?}");
        assert_eq!(
            kinds[5], "bad_record",
            "{sub}: c.zip after c.cbz: {records:?}"
        );
    }
}
