//! `edit`, checked with Python's zipfile and Pillow; SIGKILL at random moments never
//! harms the original.

mod common;
use common::*;
use std::path::Path;

/// Makes argv[1]: ComicInfo (with a title), pages p1..p10 (JPEG, sizes differ), junk,
/// and a text entry deflated at level 9 (so a re-compression would show).
const MAKE: &str = r#"
import io, sys, zipfile
from PIL import Image
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("ComicInfo.xml", '<?xml version="1.0"?>\n<ComicInfo>\n  <Title>Kept</Title>\n  <PageCount>10</PageCount>\n</ComicInfo>\n', zipfile.ZIP_DEFLATED)
    for i in range(10, 0, -1):
        b = io.BytesIO()
        Image.new("RGB", (40 + i, 60 + i), (i * 20, 0, 0)).save(b, "JPEG")
        z.writestr("p%d.jpg" % i, b.getvalue())
    z.writestr("x-credits.jpg", b.getvalue())
    for j in (".DS_Store", "Thumbs.db", "__MACOSX/._p1.jpg", "rel.nfo"):
        z.writestr(j, b"junk")
    z.writestr("notes.txt", b"some notes " * 500, zipfile.ZIP_DEFLATED, 9)
"#;

/// Per entry: name, raw compressed bytes (hex) and data; testzip; ComicInfo.
const READ: &str = r#"
import json, struct, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    f = z.fp
    out = {"testzip": z.testzip(), "entries": []}
    for i in z.infolist():
        f.seek(i.header_offset)
        h = f.read(30)
        n, e = struct.unpack("<HH", h[26:30])
        f.seek(i.header_offset + 30 + n + e)
        out["entries"].append({"name": i.filename, "raw": f.read(i.compress_size).hex(), "data": z.read(i).hex()})
print(json.dumps(out))
"#;

const BLANK: &str = r#"
import io, json, sys, zipfile
from PIL import Image
z = zipfile.ZipFile(sys.argv[1])
im = Image.open(io.BytesIO(z.read(sys.argv[2])))
print(json.dumps({"size": im.size, "extrema": im.convert("L").getextrema()}))
"#;

fn read(py: &Path, a: &Path) -> serde_json::Value {
    serde_json::from_str(&testkit::run_python(py, READ, &[a.to_str().unwrap()])).unwrap()
}

fn entry<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn edit_removes_moves_inserts_drops_junk_and_copies_raw() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL"]) else {
        return;
    };
    let a = dir.path().join("c.cbz");
    testkit::run_python(&py, MAKE, &[a.to_str().unwrap()]);
    let before = read(&py, &a);
    let r = records(
        &[
            "edit",
            "--drop-junk",
            "--remove",
            "2,*credits*",
            "--move",
            "9:1",
            "--insert-blank",
            "3",
            a.to_str().unwrap(),
        ],
        "",
        0,
    );
    let s = &r[0]["cbz-stream"];
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["pages_before"], 11);
    assert_eq!(s["removed"], 2);
    assert_eq!(s["junk_dropped"], 4);
    unzip_t(&a);
    let after = read(&py, &a);
    assert_eq!(after["testzip"], serde_json::Value::Null);
    let names: Vec<&str> = after["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    // Pages in natural order p1..p10 and credits; minus p2 and credits: p1 p3 .. p10;
    // p10 (9th) moved first; a blank becomes page 3.
    assert_eq!(
        names,
        [
            "ComicInfo.xml",
            "001.jpg",
            "002.jpg",
            "003.png",
            "004.jpg",
            "005.jpg",
            "006.jpg",
            "007.jpg",
            "008.jpg",
            "009.jpg",
            "010.jpg",
            "notes.txt"
        ]
    );
    let order = [
        "p10.jpg", "p1.jpg", "", "p3.jpg", "p4.jpg", "p5.jpg", "p6.jpg", "p7.jpg", "p8.jpg",
        "p9.jpg",
    ];
    for (k, src) in order.iter().enumerate() {
        if src.is_empty() {
            continue;
        }
        let new = &after["entries"][k + 1];
        assert_eq!(
            new["data"],
            entry(&before, src)["data"],
            "page {} is {src}",
            k + 1
        );
    }
    // Raw copy: the level-9 deflate stream is the same bytes.
    assert_eq!(
        entry(&after, "notes.txt")["raw"],
        entry(&before, "notes.txt")["raw"]
    );
    // The blank page: white, the size of the page it goes before (p3: 43x63).
    let b: serde_json::Value = serde_json::from_str(&testkit::run_python(
        &py,
        BLANK,
        &[a.to_str().unwrap(), "003.png"],
    ))
    .unwrap();
    assert_eq!(b["size"], serde_json::json!([43, 63]));
    assert_eq!(b["extrema"], serde_json::json!([255, 255]));
    let ci = String::from_utf8(unhex(
        entry(&after, "ComicInfo.xml")["data"].as_str().unwrap(),
    ))
    .unwrap();
    assert!(
        ci.contains("<Title>Kept</Title>") && ci.contains("<PageCount>10</PageCount>"),
        "{ci}"
    );
    assert!(
        ci.contains("<Page Image=\"0\" Type=\"FrontCover\" ImageSize=")
            && ci.contains("ImageWidth=\"50\" ImageHeight=\"70\""),
        "{ci}"
    );
    // Nothing to do the second time: unchanged, not rewritten.
    let r = records(&["edit", "--drop-junk", a.to_str().unwrap()], "", 0);
    assert_eq!(r[0]["cbz-stream"]["status"], "unchanged");
    // An out-of-range page is an error record; the archive is untouched.
    let bytes = std::fs::read(&a).unwrap();
    let r = records(&["edit", "--remove", "99", a.to_str().unwrap()], "", 1);
    assert_eq!(r[0]["error"]["kind"], "bad_record");
    assert_eq!(std::fs::read(&a).unwrap(), bytes);
}

fn parts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// SIGKILL at 20 random moments: the archive is always either the original or the
/// complete edit, opens and verifies; the next run leaves no temporary file.
#[test]
fn sigkill_never_harms_the_original() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["zipfile"]) else {
        return;
    };
    let src = dir.path().join("pages");
    // Big enough that an edit takes a while (about 40 MB).
    for i in 0..40 {
        let mut b = jpeg(64, 64, i);
        b.extend(testkit::Rng::new(i).bytes(1 << 20));
        put(&src, &format!("{i}.jpg"), &b);
    }
    let original = dir.path().join("orig.cbz");
    records(
        &[
            "pack",
            "--no-comic-info",
            src.to_str().unwrap(),
            "-o",
            original.to_str().unwrap(),
        ],
        "",
        0,
    );
    let orig_bytes = std::fs::read(&original).unwrap();
    let a = dir.path().join("a.cbz");
    let bin = testkit::bin("cbz-stream");
    // How long one edit takes.
    std::fs::copy(&original, &a).unwrap();
    let t = std::time::Instant::now();
    records(&["edit", "--remove", "1", a.to_str().unwrap()], "", 0);
    let full = t.elapsed();
    let mut rng = testkit::Rng::new(13);
    let check = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(len(z.namelist()))";
    let mut outcomes = [0usize; 2];
    let mut leftovers = 0usize;
    for round in 0..20 {
        std::fs::copy(&original, &a).unwrap();
        let mut child = std::process::Command::new(&bin)
            .args(["edit", "--remove", "1", a.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = full.mul_f64(rng.f64() * 1.1);
        std::thread::sleep(wait);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !parts(dir.path()).is_empty() {
            leftovers += 1;
        }
        let n: usize = testkit::run_python(&py, check, &[a.to_str().unwrap()])
            .trim()
            .parse()
            .unwrap();
        let now = std::fs::read(&a).unwrap();
        if now == orig_bytes {
            outcomes[0] += 1;
        } else {
            assert_eq!(
                n, 39,
                "round {round}: neither the original nor the complete edit"
            );
            outcomes[1] += 1;
        }
    }
    eprintln!(
        "original intact {} times, edit complete {} times, killed mid-write {leftovers} times",
        outcomes[0], outcomes[1]
    );
    assert!(
        leftovers > 0,
        "no kill landed while the new archive was written: the test proves nothing"
    );
    std::fs::copy(&original, &a).unwrap();
    records(&["edit", "--remove", "1", a.to_str().unwrap()], "", 0);
    assert_eq!(
        parts(dir.path()),
        Vec::<String>::new(),
        "temporary files left"
    );
}
