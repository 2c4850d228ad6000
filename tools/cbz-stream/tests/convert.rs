//! `convert`: 7z archives made by 7-Zip and real RAR archives to CBZ, checked with Python's
//! zipfile and `unzip -t` against what 7-Zip was given and what bsdtar (libarchive)
//! extracts from the RAR files.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Whether `cmd` runs here; when validators are required, it must.
fn have(cmd: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !testkit::validators_required(),
        "{cmd} is required (cargo xtask test installs it)"
    );
    if !ok {
        eprintln!("skipping: no {cmd}");
    }
    ok
}

fn sevenz(args: &[&str], cwd: &Path) {
    testkit::cmd("7z").args(args).current_dir(cwd).ok();
}

fn error_of(r: &serde_json::Value) -> String {
    r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn solid_7z_converts_with_pages_unchanged() {
    if !have("7z") {
        return;
    }
    let dir = testkit::tempdir();
    let pages = dir.path().join("pages");
    let mut want = Vec::new();
    for (i, (w, h)) in [(64u16, 96u16), (80, 120), (33, 47)].iter().enumerate() {
        let name = format!("Page {}.jpg", i + 1);
        let bytes = jpeg(*w, *h, i as u64 + 7);
        put(&pages, &name, &bytes);
        want.push((name, bytes));
    }
    put(&pages, "credits.txt", b"scanned by nobody\n");
    // Solid LZMA2 (7-Zip's default): entries come out of one stream, in order.
    sevenz(&["a", "-t7z", "-ms=on", "../book.cb7", "."], &pages);
    let cb7 = dir.path().join("book.cb7");
    let r = records(&["convert", cb7.to_str().unwrap()], "", 0);
    assert_eq!(r.len(), 1);
    let s = &r[0]["cbz-stream"];
    assert_eq!(s["status"], "ok", "{r:?}");
    assert_eq!(s["from"], "7z");
    assert_eq!(s["pages"], 3);
    assert_eq!(s["comic_info_generated"], true);
    let cbz = dir.path().join("book.cbz");
    unzip_t(&cbz);
    let Some(z) = python_zip(&cbz) else {
        return;
    };
    assert!(z["testzip"].is_null());
    let entries = z["entries"].as_array().unwrap();
    for (name, bytes) in &want {
        let e = entries
            .iter()
            .find(|e| e["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {entries:?}"));
        assert_eq!(e["method"], 0, "pages are stored");
        assert_eq!(e["data"].as_str().unwrap(), hex(bytes), "{name} changed");
    }
    let credits = entries.iter().find(|e| e["name"] == "credits.txt").unwrap();
    assert_eq!(credits["method"], 8, "text is deflated");
    let info = entries
        .iter()
        .find(|e| e["name"] == "ComicInfo.xml")
        .unwrap();
    let xml = String::from_utf8(unhex(info["data"].as_str().unwrap())).unwrap();
    assert!(xml.contains("<PageCount>3</PageCount>"), "{xml}");
    assert!(xml.contains("ImageWidth=\"80\""), "{xml}");
    assert_eq!(entries.len(), 5);
    // The source is untouched and a second run skips.
    assert!(cb7.exists());
    let again = records(&["convert", cb7.to_str().unwrap()], "", 0);
    assert_eq!(again[0]["cbz-stream"]["status"], "skipped");
}

#[test]
fn encrypted_and_linked_7z_are_refused() {
    if !have("7z") {
        return;
    }
    let dir = testkit::tempdir();
    let pages = dir.path().join("pages");
    put(&pages, "001.jpg", &jpeg(16, 16, 1));
    sevenz(&["a", "-t7z", "-pSECRET", "../locked.cb7", "."], &pages);
    std::os::unix::fs::symlink("/etc/passwd", pages.join("002.jpg")).unwrap();
    // -snl: store the link as a link (p7zip's convention), as a hostile archive would.
    sevenz(&["a", "-t7z", "-snl", "../linked.cb7", "."], &pages);
    for (name, why) in [("locked", "encrypted"), ("linked", "symbolic link")] {
        let src = dir.path().join(format!("{name}.cb7"));
        let r = records(&["convert", src.to_str().unwrap()], "", 1);
        assert!(error_of(&r[0]).contains(why), "{name}: {r:?}");
        assert!(!dir.path().join(format!("{name}.cbz")).exists());
    }
    // Nothing was left behind beside the output.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

#[test]
fn real_rar_archives_convert_as_bsdtar_reads_them() {
    if !have("bsdtar") {
        return;
    }
    let dir = testkit::tempdir();
    for name in ["version", "unicode"] {
        let rar = testkit::data(&format!("rar/{name}.rar"));
        let out = dir.path().join(format!("{name}.cbz"));
        let r = records(
            &[
                "convert",
                rar.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            "",
            0,
        );
        assert_eq!(r[0]["cbz-stream"]["status"], "ok", "{r:?}");
        assert_eq!(r[0]["cbz-stream"]["from"], "rar");
        unzip_t(&out);
        let listing = testkit::cmd("bsdtar").arg("-tf").arg(&rar).ok();
        let names: Vec<String> = String::from_utf8(listing.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let Some(z) = python_zip(&out) else {
            return;
        };
        let entries = z["entries"].as_array().unwrap();
        assert_eq!(entries.len(), names.len(), "{entries:?} vs {names:?}");
        for n in &names {
            let data = testkit::cmd("bsdtar").arg("-xOf").arg(&rar).arg(n).ok();
            let e = entries
                .iter()
                .find(|e| e["name"] == n.as_str())
                .unwrap_or_else(|| panic!("{n:?} missing from {entries:?}"));
            assert_eq!(e["data"].as_str().unwrap(), hex(&data.stdout), "{n:?}");
        }
    }
}

#[test]
fn encrypted_multivolume_and_foreign_files_get_error_records() {
    let dir = testkit::tempdir();
    let text = put(dir.path(), "notes.cbr", b"not an archive at all");
    let crypted = testkit::data("rar/crypted.rar");
    let volume = testkit::data("rar/archive.part1.rar");
    let out = dir.path().join("out");
    let r = records(
        &[
            "convert",
            crypted.to_str().unwrap(),
            volume.to_str().unwrap(),
            text.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        1,
    );
    assert_eq!(r.len(), 3, "one record per input: {r:?}");
    assert!(error_of(&r[0]).contains("encrypted"), "{r:?}");
    assert!(error_of(&r[1]).contains("multi-volume"), "{r:?}");
    assert!(error_of(&r[2]).contains("not a RAR or 7z"), "{r:?}");
    let written: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{written:?}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
