//! What `cargo xtask reliability` found in cbz-stream, each as a regression test: a
//! second run into the same place skips what the first one holds (it used to fail, or
//! for unpack race the first one's rename), and the temporary directories of unpack and
//! from-pdf are removed by the next run after a SIGKILL (they were not named for their
//! owner, so no run ever removed them).

mod common;

use common::{jpeg, put, records};
use membudget::outputs::{self, Claim};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sec(r: &serde_json::Value) -> &serde_json::Value {
    &r["cbz-stream"]
}

fn held_by_us() -> String {
    format!("being written by another run (pid {})", std::process::id())
}

/// A directory of pages and, packed from it by `zip`, an archive.
fn book(dir: &Path, name: &str, pages: usize) -> std::path::PathBuf {
    let pages_dir = dir.join(name);
    for i in 0..pages {
        put(&pages_dir, &format!("{i:04}.jpg"), &jpeg(16, 16, i as u64));
    }
    let cbz = dir.join(format!("{name}.cbz"));
    let st = Command::new("zip")
        .current_dir(&pages_dir)
        .args(["-q", "-0", "-r"])
        .arg(&cbz)
        .arg(".")
        .status()
        .expect("zip");
    assert!(st.success());
    cbz
}

fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn outputs_another_run_holds_are_skipped_not_failed() {
    let dir = testkit::tempdir();
    let d = dir.path();
    let cbz = book(d, "b", 3);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let pdf = testkit::data("pdf/scanned-jpeg-4p.pdf");
    let edited = d.join("e.cbz");
    std::fs::copy(&cbz, &edited).unwrap();
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<String>, std::path::PathBuf)> = vec![
        (
            vec![
                "pack".into(),
                "-o".into(),
                o.into(),
                d.join("b").to_string_lossy().into(),
            ],
            out.join("b.cbz"),
        ),
        (
            vec![
                "unpack".into(),
                "-o".into(),
                o.into(),
                cbz.to_string_lossy().into(),
            ],
            out.join("b"),
        ),
        (
            vec![
                "from-pdf".into(),
                "-o".into(),
                o.into(),
                pdf.to_string_lossy().into(),
            ],
            out.join("scanned-jpeg-4p.cbz"),
        ),
        (
            vec![
                "edit".into(),
                "--rename".into(),
                "--insert-blank".into(),
                "1".into(),
                edited.to_string_lossy().into(),
            ],
            edited.clone(),
        ),
    ];
    for (args, dest) in cases {
        let before = std::fs::read(&edited).unwrap();
        // This test process plays the other run: it holds the destination's claim.
        let held = outputs::lock(&dest).unwrap();
        assert!(matches!(held, Claim::Mine(_)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let recs = records(&args, "", 0);
        assert_eq!(sec(&recs[0])["status"], "skipped", "{args:?}: {recs:?}");
        assert_eq!(sec(&recs[0])["reason"], held_by_us(), "{args:?}");
        if dest == edited {
            assert_eq!(std::fs::read(&edited).unwrap(), before, "edit wrote anyway");
        } else {
            assert!(!dest.exists(), "{args:?} wrote {}", dest.display());
        }
        drop(held);
        let recs = records(&args, "", 0);
        assert_eq!(sec(&recs[0])["status"], "ok", "{args:?}: {recs:?}");
    }
}

/// Start `cbz-stream args`, SIGKILL it once a hidden directory (its temporary) shows in
/// `watch`; true when it was caught at that moment.
fn kill_while_writing(args: &[&str], watch: &Path) -> bool {
    let mut child = Command::new(testkit::bin("cbz-stream"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let temp = hidden(watch)
            .iter()
            .any(|n| !n.ends_with(".lock") && watch.join(n).is_dir());
        if temp {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        if child.try_wait().unwrap().is_some() || t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_killed_unpack_leaves_nothing_after_the_next_run() {
    let dir = testkit::tempdir();
    let cbz = book(dir.path(), "big", 1500);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let args = ["unpack", "-o", out.to_str().unwrap(), cbz.to_str().unwrap()];
    let caught = (0..5).any(|_| {
        let _ = std::fs::remove_dir_all(out.join("big"));
        kill_while_writing(&args, &out)
    });
    assert!(caught, "never saw unpack's temporary directory");
    assert!(!hidden(&out).is_empty());
    let recs = records(&args, "", 0);
    assert_eq!(sec(&recs[0])["status"], "ok", "{recs:?}");
    assert_eq!(hidden(&out), Vec::<String>::new(), "left by the killed run");
    assert_eq!(std::fs::read_dir(out.join("big")).unwrap().count(), 1500);
}

#[test]
fn a_killed_from_pdf_leaves_nothing_after_the_next_run() {
    let dir = testkit::tempdir();
    // Vector pages are rendered by pdftoppm into a temporary directory beside the output.
    let pdf = dir.path().join("v.pdf");
    std::fs::copy(testkit::data("pdf/vector-2p.pdf"), &pdf).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let args = [
        "from-pdf",
        "--dpi",
        "300",
        "-o",
        out.to_str().unwrap(),
        pdf.to_str().unwrap(),
    ];
    let caught = (0..5).any(|_| {
        let _ = std::fs::remove_file(out.join("v.cbz"));
        kill_while_writing(&args, &out)
    });
    assert!(caught, "never saw from-pdf's temporary directory");
    // pdftoppm, a child of the killed run, may still finish its page.
    std::thread::sleep(Duration::from_millis(500));
    let recs = records(&args, "", 0);
    assert_eq!(sec(&recs[0])["status"], "ok", "{recs:?}");
    assert_eq!(hidden(&out), Vec::<String>::new(), "left by the killed run");
    common::unzip_t(&out.join("v.cbz"));
}
