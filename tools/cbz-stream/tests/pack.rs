//! `pack` and `list`, checked against Python's zipfile, Pillow and `unzip -t`.

mod common;
use common::*;
use std::path::Path;

/// Pages named as scanners and people name them, out of order on disk, mixed case.
fn page_names(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            if i % 7 == 0 {
                format!("page {i}.JPG")
            } else {
                format!("Page {i}.jpg")
            }
        })
        .collect()
}

const COMICINFO_VS_PILLOW: &str = r#"
import io, json, sys, zipfile, xml.etree.ElementTree as ET
from PIL import Image
with zipfile.ZipFile(sys.argv[1]) as z:
    root = ET.fromstring(z.read("ComicInfo.xml"))
    pages = root.find("Pages").findall("Page")
    names = [n for n in z.namelist() if n != "ComicInfo.xml"]
    out = {"count": int(root.find("PageCount").text), "pages": len(pages), "mismatch": []}
    for p in pages:
        name = names[int(p.get("Image"))]
        size = Image.open(io.BytesIO(z.read(name))).size
        if (int(p.get("ImageWidth")), int(p.get("ImageHeight"))) != size or int(p.get("ImageSize")) != z.getinfo(name).file_size:
            out["mismatch"].append(name)
print(json.dumps(out))
"#;

#[test]
fn pack_sorts_naturally_renames_stores_and_describes_pages() {
    let dir = testkit::tempdir();
    let src = dir.path().join("Comic 1");
    let names = page_names(120);
    let mut pages = Vec::new();
    // Written in reverse so directory order is no help.
    for (i, name) in names.iter().enumerate().rev() {
        let bytes = jpeg(16 + i as u16, 20 + (i % 5) as u16, i as u64);
        put(&src, name, &bytes);
        pages.push((i, bytes));
    }
    pages.sort_by_key(|p| p.0);
    put(&src, "Thumbs.db", b"junk");
    put(&src, "credits.txt", &b"thanks ".repeat(200));
    let out = dir.path().join("out/c.cbz");
    let r = records(
        &["pack", src.to_str().unwrap(), "-o", out.to_str().unwrap()],
        "",
        0,
    );
    assert_eq!(r.len(), 1);
    let s = &r[0]["cbz-stream"];
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["pages"], 120);
    assert_eq!(s["comic_info"], "generated");
    assert_eq!(s["junk_skipped"], 1);
    unzip_t(&out);
    let Some(z) = python_zip(&out) else { return };
    assert_eq!(z["testzip"], serde_json::Value::Null);
    let entries = z["entries"].as_array().unwrap();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut want = vec!["ComicInfo.xml".to_string()];
    want.extend((1..=120).map(|i| format!("{i:03}.jpg")));
    want.push("credits.txt".into());
    assert_eq!(got, want);
    for (k, (_, bytes)) in pages.iter().enumerate() {
        let e = &entries[k + 1];
        assert_eq!(e["method"], 0, "images are stored");
        assert_eq!(
            &unhex(e["data"].as_str().unwrap()),
            bytes,
            "page {k} unchanged"
        );
    }
    assert_eq!(entries[0]["method"], 8, "XML deflated");
    assert_eq!(entries[121]["method"], 8, "text deflated");
    // Plain byte order of the names is the natural order.
    let mut sorted = got[1..121].to_vec();
    sorted.sort();
    assert_eq!(sorted, got[1..121]);

    let py = testkit::python(&["PIL"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&testkit::run_python(
        &py,
        COMICINFO_VS_PILLOW,
        &[out.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(v["count"], 120);
    assert_eq!(v["pages"], 120);
    assert_eq!(v["mismatch"], serde_json::json!([]));

    // list: one record per entry, dimensions from headers.
    let l = records(&["list", out.to_str().unwrap()], "", 0);
    assert_eq!(l.len(), 122);
    assert_eq!(l[1]["cbz-stream"]["entry"], "001.jpg");
    assert_eq!(l[1]["cbz-stream"]["width"], 16);
    assert_eq!(l[1]["cbz-stream"]["height"], 20);
    assert_eq!(l[1]["cbz-stream"]["method"], "stored");
    assert_eq!(l[0]["cbz-stream"]["kind"], "comic_info");

    // Existing output: skipped, then replaced with -f.
    let again = records(
        &["pack", src.to_str().unwrap(), "-o", out.to_str().unwrap()],
        "",
        0,
    );
    assert_eq!(again[0]["cbz-stream"]["status"], "skipped");
    let forced = records(
        &[
            "pack",
            src.to_str().unwrap(),
            "-f",
            "--keep-names",
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(forced[0]["cbz-stream"]["status"], "ok");
    let z = python_zip(&out).unwrap();
    let got: Vec<&str> = z["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut want = vec!["ComicInfo.xml".to_string()];
    want.extend(names.iter().cloned());
    want.push("credits.txt".into());
    assert_eq!(got, want, "--keep-names keeps names, in natural order");
}

#[test]
fn natural_order_of_tricky_names() {
    let dir = testkit::tempdir();
    let names = [
        "10.jpg", "001a.jpg", "2.jpg", "001.jpg", "A3.jpg", "a20.jpg", "B1.jpg",
    ];
    for (i, n) in names.iter().enumerate() {
        put(dir.path(), n, &jpeg(8, 8, i as u64));
    }
    let args: Vec<String> = names
        .iter()
        .map(|n| dir.path().join(n).to_string_lossy().into_owned())
        .collect();
    let out = dir.path().join("t.cbz");
    let mut a = vec![
        "pack",
        "--keep-names",
        "--no-comic-info",
        "-o",
        out.to_str().unwrap(),
    ];
    a.extend(args.iter().map(String::as_str));
    records(&a, "", 0);
    let Some(z) = python_zip(&out) else { return };
    let got: Vec<&str> = z["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["001.jpg", "001a.jpg", "2.jpg", "10.jpg", "A3.jpg", "a20.jpg", "B1.jpg"]
    );
}

#[test]
fn comic_info_kept_byte_for_byte() {
    let dir = testkit::tempdir();
    let info = b"<?xml version=\"1.0\"?>\n<ComicInfo><Title>Kept &amp; sound</Title></ComicInfo>\n";
    put(dir.path(), "p/ComicInfo.xml", info);
    put(dir.path(), "p/1.jpg", &jpeg(8, 8, 1));
    let out = dir.path().join("k.cbz");
    let r = records(
        &[
            "pack",
            dir.path().join("p").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["comic_info"], "kept");
    let Some(z) = python_zip(&out) else { return };
    let e = &z["entries"][0];
    assert_eq!(e["name"], "ComicInfo.xml");
    assert_eq!(unhex(e["data"].as_str().unwrap()), info);
}

#[test]
fn a_missing_page_writes_no_archive() {
    let dir = testkit::tempdir();
    let p = put(dir.path(), "1.jpg", &jpeg(8, 8, 1));
    let out = dir.path().join("m.cbz");
    let missing = dir.path().join("2.jpg");
    let r = records(
        &[
            "pack",
            "-o",
            out.to_str().unwrap(),
            p.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        "",
        1,
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["error"]["kind"], "not_found");
    assert!(r[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not written"));
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn each_directory_its_own_archive_mirrored() {
    let dir = testkit::tempdir();
    put(dir.path(), "in/a/1.jpg", &jpeg(8, 8, 1));
    put(dir.path(), "in/b/x/2.jpg", &jpeg(8, 8, 2));
    let out = dir.path().join("out");
    let stdin = format!(
        "{}\n{}\n",
        dir.path().join("in/a").display(),
        dir.path().join("in/b").display()
    );
    let r = records(
        &[
            "pack",
            "-o",
            out.to_str().unwrap(),
            "--base",
            dir.path().to_str().unwrap(),
        ],
        &stdin,
        0,
    );
    assert_eq!(r.len(), 2);
    assert!(out.join("in/a.cbz").is_file() && out.join("in/b.cbz").is_file());
    unzip_t(&out.join("in/b.cbz"));
}

/// unpack --emit-records | no-op stage | pack: the pages come back byte for byte, in order.
#[test]
fn unpack_records_through_a_stage_into_pack() {
    let dir = testkit::tempdir();
    let names = page_names(12);
    let mut pages = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let b = jpeg(10, 10 + i as u16, i as u64);
        put(&dir.path().join("src"), n, &b);
        pages.push(b);
    }
    let a = dir.path().join("a.cbz");
    records(
        &[
            "pack",
            dir.path().join("src").to_str().unwrap(),
            "-o",
            a.to_str().unwrap(),
        ],
        "",
        0,
    );
    let bin = testkit::bin("cbz-stream");
    let b = dir.path().join("b.cbz");
    let script = format!(
        "'{bin}' unpack --emit-records '{a}' -o '{x}' | cat | '{bin}' pack -o '{b}'",
        bin = bin.display(),
        a = a.display(),
        x = dir.path().join("x").display(),
        b = b.display()
    );
    let r = testkit::cmd("sh").arg("-c").arg(&script).ok().records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["cbz-stream"]["pages"], 12);
    let Some(z) = python_zip(&b) else { return };
    let e = z["entries"].as_array().unwrap();
    for (k, p) in pages.iter().enumerate() {
        assert_eq!(e[k + 1]["name"], format!("{:03}.jpg", k + 1));
        assert_eq!(&unhex(e[k + 1]["data"].as_str().unwrap()), p);
    }
}

/// More than 65,535 entries: the archive needs Zip64's end records, and readers see
/// every entry.
#[test]
fn zip64_past_65535_entries() {
    let dir = testkit::tempdir();
    let src = dir.path().join("many");
    std::fs::create_dir(&src).unwrap();
    let n = 66_000;
    for i in 0..n {
        std::fs::write(src.join(format!("{i}.jpg")), [i as u8]).unwrap();
    }
    let out = dir.path().join("many.cbz");
    records(
        &[
            "pack",
            "-q",
            "--no-comic-info",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    unzip_t(&out);
    let Some(py) = testkit::python(&["zipfile"]) else {
        return;
    };
    let code = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nn = z.namelist()\nprint(len(n), n[0], n[-1], z.read(n[300])[0])";
    let v = testkit::run_python(&py, code, &[out.to_str().unwrap()]);
    assert_eq!(
        v.trim(),
        format!("{n} 00001.jpg {n:05}.jpg {}", 300u32 % 256)
    );
    // The end of central directory says 0xFFFF entries: Zip64 records carry the count.
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        bytes.windows(4).any(|w| w == b"PK\x06\x06"),
        "Zip64 end of central directory"
    );
    let _ = Path::new("");
}

/// The archive's ComicInfo.xml through `unpack --emit-records | stage | pack`: kept with
/// its metadata, its PageCount and Pages redone for the pages that arrive (a stage that
/// drops a page gives 11, not the 12 the original said), checked with ElementTree and
/// Pillow.
#[test]
fn comicinfo_kept_through_unpack_records_and_pack() {
    let dir = testkit::tempdir();
    let names = page_names(12);
    for (i, n) in names.iter().enumerate() {
        put(
            &dir.path().join("src"),
            n,
            &jpeg(10 + i as u16, 20, i as u64),
        );
    }
    let info = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ComicInfo>\n  <Title>Kept &amp; sound</Title>\n  \
                <Writer>A. Writer</Writer>\n  <PageCount>12</PageCount>\n</ComicInfo>\n";
    put(&dir.path().join("src"), "ComicInfo.xml", info.as_bytes());
    let a = dir.path().join("a.cbz");
    let r = records(
        &[
            "pack",
            dir.path().join("src").to_str().unwrap(),
            "-o",
            a.to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["comic_info"], "kept");
    let Some(py) = testkit::python(&["PIL"]) else {
        return;
    };
    let check = r#"
import io, json, sys, zipfile
import xml.etree.ElementTree as ET
from PIL import Image
z = zipfile.ZipFile(sys.argv[1])
root = ET.fromstring(z.read("ComicInfo.xml"))
pages = [n for n in z.namelist() if n != "ComicInfo.xml"]
sizes = [list(Image.open(io.BytesIO(z.read(n))).size) for n in pages]
described = [[int(p.get("ImageWidth")), int(p.get("ImageHeight"))] for p in root.find("Pages")]
print(json.dumps({"title": root.findtext("Title"), "writer": root.findtext("Writer"),
                  "count": int(root.findtext("PageCount")), "pages": len(pages),
                  "described_match": described == sizes}))
"#;
    let bin = testkit::bin("cbz-stream");
    // A no-op stage, and one that drops the third page's record.
    for (k, stage) in [(0, "cat"), (1, "grep -v '\"page\":3[,}]'")] {
        let b = dir.path().join(format!("b{k}.cbz"));
        let script = format!(
            "'{bin}' unpack --emit-records '{a}' -o '{x}' | {stage} | '{bin}' pack -o '{b}'",
            bin = bin.display(),
            a = a.display(),
            x = dir.path().join(format!("x{k}")).display(),
            b = b.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        testkit::check(&out, "pipe");
        let r = testkit::ndjson(&out.stdout);
        assert_eq!(r[0]["cbz-stream"]["comic_info"], "updated", "{stage}");
        unzip_t(&b);
        let v: serde_json::Value =
            serde_json::from_str(&testkit::run_python(&py, check, &[b.to_str().unwrap()])).unwrap();
        let want = 12 - k;
        assert_eq!(v["title"], "Kept & sound", "{stage}: {v}");
        assert_eq!(v["writer"], "A. Writer", "{stage}: {v}");
        assert_eq!(
            (v["count"].as_u64(), v["pages"].as_u64()),
            (Some(want), Some(want)),
            "{stage}: {v}"
        );
        assert_eq!(v["described_match"], true, "{stage}: {v}");
    }
}
