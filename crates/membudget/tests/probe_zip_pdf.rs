//! The ZIP/CBZ probe against Python's zipfile (archives made by the `zip` tool and by
//! zipfile itself), the PDF probe against poppler's `pdfimages -list` and `pdfinfo`, and
//! damaged or hostile copies of a PDF, a LAZ and a FITS file, which must give errors.

use membudget::probe::{probe_path, Detail, Format};
use membudget::ErrorKind;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether an external command exists; when it does not, the test is skipped unless
/// validators are required.
fn have(cmd: &str, arg: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if !ok {
        assert!(
            !testkit::validators_required(),
            "{cmd} is required (apt-get install zip poppler-utils)"
        );
        eprintln!("skipped: {cmd} not installed");
    }
    ok
}

/// Deterministic pseudo-random bytes, so damaged files are the same each run.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(n)
}

/// Python's zipfile view of an archive.
const ZIPFILE: &str = r#"
import json, sys, zipfile, collections
IMAGES = ("jpg", "jpeg", "png", "gif", "webp", "avif", "jxl", "bmp", "tif", "tiff")
METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma"}
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        largest = max(infos, key=lambda i: i.file_size)
        def unsafe(n):
            return n.startswith("/") or ".." in n.replace("\\", "/").split("/")
        print(json.dumps({
            "path": path,
            "entries": len(infos),
            "directories": sum(i.is_dir() for i in infos),
            "uncompressed": sum(i.file_size for i in infos),
            "compressed": sum(i.compress_size for i in infos),
            "largest": [largest.filename, largest.file_size],
            "images": sum(1 for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")
                          and i.filename.rsplit(".", 1)[-1].lower() in IMAGES and "." in i.filename),
            "comic_info": any(i.filename.lower() == "comicinfo.xml" for i in infos),
            "methods": collections.Counter(METHODS.get(i.compress_type, str(i.compress_type)) for i in infos),
            "unsafe": sorted(i.filename for i in infos if unsafe(i.filename)),
            "bombs": sorted(i.filename for i in infos if i.file_size > 100 * max(i.compress_size, 1)),
        }))
"#;

/// Builds a CBZ with zipfile: page images, ComicInfo.xml, a zip-slip name, an absolute
/// name, a highly compressible "bomb" entry and a stored entry.
const MAKE_ZIPFILE: &str = r#"
import sys, zipfile, random
rnd = random.Random(7)
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("ComicInfo.xml", "<ComicInfo><Title>t</Title></ComicInfo>")
    for n in range(3):
        z.writestr(f"pages/{n:03}.jpg", bytes(rnd.getrandbits(8) for _ in range(5000 + n)))
    z.writestr("pages/cover.webp", bytes(rnd.getrandbits(8) for _ in range(3000)), zipfile.ZIP_STORED)
    z.writestr("../../evil.txt", "zip-slip")
    z.writestr("/etc/abs.txt", "absolute")
    z.writestr("zeros.bin", b"\0" * 2_000_000)
"#;

fn check_zip_against_python(py: &Path, path: &Path) -> Value {
    let out = testkit::run_python(py, ZIPFILE, &[path.to_str().expect("utf-8")]);
    let want = testkit::ndjson(out.as_bytes()).remove(0);
    let probe = probe_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(probe.format, Format::Zip);
    let Detail::Zip(info) = &probe.detail else {
        panic!("not a ZIP detail")
    };
    let ctx = path.display();
    assert_eq!(info.entries, want["entries"].as_u64().unwrap(), "{ctx}");
    assert_eq!(
        info.directories,
        want["directories"].as_u64().unwrap(),
        "{ctx}"
    );
    assert_eq!(
        info.uncompressed_bytes,
        want["uncompressed"].as_u64().unwrap(),
        "{ctx}"
    );
    assert_eq!(
        info.compressed_bytes,
        want["compressed"].as_u64().unwrap(),
        "{ctx}"
    );
    let largest = info.largest_entry.as_ref().expect("largest");
    assert_eq!(largest.name, want["largest"][0].as_str().unwrap(), "{ctx}");
    assert_eq!(largest.bytes, want["largest"][1].as_u64().unwrap(), "{ctx}");
    assert_eq!(
        info.image_entries,
        want["images"].as_u64().unwrap(),
        "{ctx}"
    );
    assert_eq!(
        info.comic_info,
        want["comic_info"].as_bool().unwrap(),
        "{ctx}"
    );
    let methods: serde_json::Map<String, Value> = info
        .methods
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(*v)))
        .collect();
    assert_eq!(Value::Object(methods), want["methods"], "{ctx}");
    let mut unsafe_names: Vec<&str> = info
        .warnings
        .iter()
        .filter(|w| w.issue == "parent_dir" || w.issue == "absolute_path")
        .map(|w| w.entry.as_str())
        .collect();
    unsafe_names.sort();
    assert_eq!(Value::from(unsafe_names), want["unsafe"], "{ctx}");
    let mut bombs: Vec<&str> = info
        .warnings
        .iter()
        .filter(|w| w.issue == "ratio")
        .map(|w| w.entry.as_str())
        .collect();
    bombs.sort();
    assert_eq!(Value::from(bombs), want["bombs"], "{ctx}");
    let a = probe.archive.as_ref().expect("archive summary");
    assert_eq!(a.entries, info.entries);
    assert_eq!(a.uncompressed_bytes, info.uncompressed_bytes);
    assert_eq!(a.largest_entry_bytes, largest.bytes);
    assert_eq!(a.image_entries, info.image_entries);
    want
}

#[test]
fn zip_made_by_zip_tool_matches_zipfile() {
    let Some(py) = testkit::python(&[]) else {
        return;
    };
    if !have("zip", "-v") {
        return;
    }
    let dir = testkit::tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("notes")).unwrap();
    std::fs::write(
        src.join("ComicInfo.xml"),
        "<ComicInfo><Series>s</Series></ComicInfo>",
    )
    .unwrap();
    std::fs::write(src.join("001.jpg"), noise(1, 40_000)).unwrap();
    std::fs::write(src.join("002.PNG"), noise(2, 30_000)).unwrap();
    std::fs::write(src.join("notes/readme.txt"), "hello ".repeat(500)).unwrap();
    for (name, level) in [("book.cbz", "-6"), ("stored.cbz", "-0")] {
        let out = dir.path().join(name);
        let st = Command::new("zip")
            .current_dir(&src)
            .args(["-q", "-r", level])
            .arg(&out)
            .args(["ComicInfo.xml", "001.jpg", "002.PNG", "notes"])
            .status()
            .expect("run zip");
        assert!(st.success());
        let want = check_zip_against_python(&py, &out);
        assert_eq!(want["images"], 2);
        assert_eq!(want["comic_info"], true);
        assert_eq!(want["largest"][0], "001.jpg");
    }
}

#[test]
fn zip_made_by_zipfile_flags_zip_slip_and_bombs() {
    let Some((py, dir)) = testkit::python_and_tempdir(&[]) else {
        return;
    };
    let path = dir.path().join("hostile.cbz");
    testkit::run_python(&py, MAKE_ZIPFILE, &[path.to_str().unwrap()]);
    let want = check_zip_against_python(&py, &path);
    // The checks above compared with zipfile; these say the fixture holds what it should.
    assert_eq!(
        want["unsafe"],
        serde_json::json!(["../../evil.txt", "/etc/abs.txt"])
    );
    assert_eq!(want["bombs"], serde_json::json!(["zeros.bin"]));
    assert_eq!(want["images"], 4);
}

/// A central directory claiming an entry no DEFLATE stream can produce is hostile.
#[test]
fn impossible_zip_claims_are_hostile() {
    let Some((py, dir)) = testkit::python_and_tempdir(&[]) else {
        return;
    };
    let path = dir.path().join("ok.zip");
    testkit::run_python(
        &py,
        "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    z.writestr('a.txt', 'hello world ' * 10)\n",
        &[path.to_str().unwrap()],
    );
    assert!(probe_path(&path).is_ok());
    let bytes = std::fs::read(&path).unwrap();
    let cd = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    // Uncompressed size (offset 24 of the central header): ~4 GB from a few bytes.
    let mut bad = bytes.clone();
    bad[cd + 24..cd + 28].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let p = dir.path().join("claims.zip");
    std::fs::write(&p, &bad).unwrap();
    assert_eq!(probe_path(&p).unwrap_err().kind, ErrorKind::Hostile);
    // Compressed size (offset 20) larger than the file.
    let mut bad = bytes.clone();
    bad[cd + 20..cd + 24].copy_from_slice(&0x7FFF_FF00u32.to_le_bytes());
    let p = dir.path().join("csize.zip");
    std::fs::write(&p, &bad).unwrap();
    assert_eq!(probe_path(&p).unwrap_err().kind, ErrorKind::Hostile);
}

/// One row of `pdfimages -list`: page, width, height, enc, object.
fn pdfimages(path: &Path) -> Vec<(u64, u64, u64, String, u64)> {
    let out = Command::new("pdfimages")
        .arg("-list")
        .arg(path)
        .output()
        .expect("pdfimages");
    testkit::check(&out, "pdfimages -list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().expect("number");
            (n(0), n(3), n(4), f[8].to_string(), n(10))
        })
        .collect()
}

fn pdfinfo_pages(path: &Path) -> u64 {
    let out = Command::new("pdfinfo").arg(path).output().expect("pdfinfo");
    testkit::check(&out, "pdfinfo");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Pages:")
                .map(|v| v.trim().parse().expect("pages"))
        })
        .expect("Pages line")
}

/// poppler's `enc` column for a PDF filter.
fn poppler_enc(filter: Option<&str>) -> &'static str {
    match filter {
        Some("DCTDecode") => "jpeg",
        Some("JPXDecode") => "jpx",
        Some("CCITTFaxDecode") => "ccitt",
        Some("JBIG2Decode") => "jbig2",
        _ => "image",
    }
}

#[test]
fn pdf_pages_match_poppler() {
    if !have("pdfimages", "-v") || !have("pdfinfo", "-v") {
        return;
    }
    for name in ["pdf/scanned-jpeg-4p.pdf", "pdf/vector-2p.pdf"] {
        let path = testkit::data(name);
        let probe = probe_path(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(probe.format, Format::Pdf);
        let Detail::Pdf(info) = &probe.detail else {
            panic!("not a PDF detail")
        };
        let pages = pdfinfo_pages(&path);
        assert_eq!(info.pages.len() as u64, pages, "{name}: page count");
        let doc = probe.document.as_ref().expect("document summary");
        assert_eq!(doc.pages, pages);
        let listed = pdfimages(&path);
        // Every page: the images poppler lists on it are the ones the probe found.
        for page in &info.pages {
            let on_page: Vec<_> = listed.iter().filter(|r| r.0 == page.page).collect();
            match &page.image {
                Some(img) if page.scan => {
                    assert_eq!(on_page.len(), 1, "{name} page {}", page.page);
                    let (_, w, h, enc, obj) = on_page[0];
                    assert_eq!(
                        (img.width, img.height),
                        (*w, *h),
                        "{name} page {}",
                        page.page
                    );
                    assert_eq!(
                        poppler_enc(img.encoding()),
                        enc,
                        "{name} page {}",
                        page.page
                    );
                    assert_eq!(img.object, *obj, "{name} page {}", page.page);
                }
                _ => assert!(
                    on_page.len() != 1 || page.image_xobjects != 1,
                    "{name} page {}: poppler sees one image, the probe no scan",
                    page.page
                ),
            }
        }
        assert_eq!(
            doc.image_pages,
            info.pages.iter().filter(|p| p.scan).count() as u64
        );
    }
    // What the two samples are, so the comparison above is not vacuous.
    let scanned = probe_path(&testkit::data("pdf/scanned-jpeg-4p.pdf")).unwrap();
    let doc = scanned.document.unwrap();
    assert_eq!(
        (doc.pages, doc.image_pages, doc.largest_image),
        (4, 4, Some([800, 1200]))
    );
    let Detail::Pdf(info) = scanned.detail else {
        panic!()
    };
    let img = info.pages[0].image.as_ref().unwrap();
    assert_eq!(img.color_space.as_deref(), Some("DeviceRGB"));
    assert_eq!((img.bits, img.components), (Some(8), Some(3)));
    let vector = probe_path(&testkit::data("pdf/vector-2p.pdf")).unwrap();
    let doc = vector.document.unwrap();
    assert_eq!(
        (doc.pages, doc.image_pages, doc.largest_image),
        (2, 0, None)
    );
}

/// Runs the probe on another thread and waits for it: a hang guard, not a speed check
/// (the bound is minutes while a probe takes milliseconds).
fn probe_bounded(path: &Path) -> membudget::error::Result<membudget::probe::Probe> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p: PathBuf = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(probe_path(&p));
    });
    rx.recv_timeout(Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("{}: probe hung or panicked", path.display()))
}

/// Writes damaged variants of `src` into `dir`: cut in half, and garbage over `range`.
fn damaged(dir: &Path, src: &Path, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    let bytes = std::fs::read(src).unwrap();
    let name = src.file_name().unwrap().to_string_lossy();
    let half = dir.join(format!("half-{name}"));
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let mut g = bytes.clone();
    let end = range.end.min(g.len());
    g[range.start..end].copy_from_slice(&noise(range.start as u64 + 99, end - range.start));
    let garbage = dir.join(format!("garbage-{name}"));
    std::fs::write(&garbage, &g).unwrap();
    vec![half, garbage]
}

#[test]
fn damaged_files_give_errors() {
    let dir = testkit::tempdir();
    let mut cases = Vec::new();
    // PDF: garbage over the end (trailer, startxref) and cut in half.
    let pdf = testkit::data("pdf/scanned-jpeg-4p.pdf");
    let len = std::fs::metadata(&pdf).unwrap().len() as usize;
    cases.extend(damaged(dir.path(), &pdf, len - 400..len));
    // Garbage over the cross-reference stream/table of the small vector PDF too.
    let vpdf = testkit::data("pdf/vector-2p.pdf");
    let vlen = std::fs::metadata(&vpdf).unwrap().len() as usize;
    cases.extend(damaged(dir.path(), &vpdf, vlen - 600..vlen - 30));
    // LAZ: garbage over the header fields after the signature, and cut in half.
    cases.extend(damaged(
        dir.path(),
        &testkit::data("laz/ign/test_data_77050_627755_LA93_IGN69.laz"),
        90..400,
    ));
    // FITS: garbage over the mandatory cards, and cut in half.
    cases.extend(damaged(
        dir.path(),
        &testkit::data("fits/o4sp040b0_raw.fits"),
        90..400,
    ));
    for path in &cases {
        match probe_bounded(path) {
            Ok(p) => panic!(
                "{}: probed as {:?} despite the damage",
                path.display(),
                p.format
            ),
            Err(e) => {
                eprintln!("{}: {}: {e}", path.display(), e.kind);
                assert!(
                    matches!(
                        e.kind,
                        ErrorKind::Corrupt | ErrorKind::Hostile | ErrorKind::Unsupported
                    ),
                    "{}: unexpected error kind {:?}: {e}",
                    path.display(),
                    e.kind
                )
            }
        }
    }
}

/// A minimal PDF with the given objects (bodies without `obj`/`endobj`), a correct xref
/// table and a trailer whose root is object 1.
fn build_pdf(objects: &[&str]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

#[test]
fn hostile_pdfs_give_errors() {
    let dir = testkit::tempdir();
    let good = build_pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] >>",
    ]);
    let p = dir.path().join("good.pdf");
    std::fs::write(&p, &good).unwrap();
    let probe = probe_bounded(&p).expect("the well-formed control PDF probes");
    assert_eq!(probe.document.unwrap().pages, 1);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "self-loop",
            build_pdf(&[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
            ]),
        ),
        (
            "two-node loop",
            build_pdf(&[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                "<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
            ]),
        ),
        (
            "page listed twice",
            build_pdf(&[
                "<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [3 0 R 3 0 R] /Count 2 >>",
                "<< /Type /Page /Parent 2 0 R >>",
            ]),
        ),
        ("broken startxref", {
            let mut b = good.clone();
            let at = b.windows(9).rposition(|w| w == b"startxref").unwrap();
            b.truncate(at);
            b.extend(b"startxref\n7\n%%EOF\n");
            b
        }),
        ("no catalog", {
            let s = String::from_utf8(good.clone()).unwrap();
            s.replace("/Root 1 0 R", "/Root 9 0 R").into_bytes()
        }),
    ];
    for (what, bytes) in cases {
        let p = dir.path().join(format!("{}.pdf", what.replace(' ', "-")));
        std::fs::write(&p, bytes).unwrap();
        let e = probe_bounded(&p).map(|_| ()).expect_err(what);
        eprintln!("{what}: {}: {e}", e.kind);
        assert!(
            matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Hostile),
            "{what}: {:?} {e}",
            e.kind
        );
    }
}

/// Writes `head`, leaves a hole of `gap` bytes (sparse: no disk used), then `tail`.
fn write_sparse(path: &Path, head: &[u8], gap: u64, tail: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(head).unwrap();
    f.seek(SeekFrom::Current(gap as i64)).unwrap();
    f.write_all(tail).unwrap();
    // A seek past the end without a write does not extend the file.
    f.set_len(head.len() as u64 + gap + tail.len() as u64)
        .unwrap();
}

/// Probing a 1 GiB PDF (one page, one raw 32768 x 32768 gray image) and a 1 GiB FITS
/// file touches headers only: the probing tool's peak RSS stays a few MiB.
#[test]
fn large_files_probe_in_small_memory() {
    const GAP: u64 = 1 << 30;
    let dir = testkit::tempdir();

    // PDF: objects 1-4 before the image data, the xref after it.
    let mut head = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for body in [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 600] /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>".to_string(),
        "<< /Length 31 >>\nstream\nq 600 0 0 600 0 0 cm /Im0 Do Q\nendstream".to_string(),
    ] {
        offsets.push(head.len());
        head.extend(format!("{} 0 obj\n{body}\nendobj\n", offsets.len()).bytes());
    }
    offsets.push(head.len());
    head.extend(
        format!("5 0 obj\n<< /Type /XObject /Subtype /Image /Width 32768 /Height 32768 /BitsPerComponent 8 /ColorSpace /DeviceGray /Length {GAP} >>\nstream\n")
            .bytes(),
    );
    let xref = head.len() as u64 + GAP + "\nendstream\nendobj\n".len() as u64;
    let mut tail = b"\nendstream\nendobj\n".to_vec();
    tail.extend(b"xref\n0 6\n0000000000 65535 f \n");
    for o in &offsets {
        tail.extend(format!("{o:010} 00000 n \n").bytes());
    }
    tail.extend(format!("trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").bytes());
    let pdf = dir.path().join("big.pdf");
    write_sparse(&pdf, &head, GAP, &tail);

    // FITS: a 32768 x 32768 uint8 primary image.
    let mut fits = Vec::new();
    for card in [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                32768",
        "NAXIS2  =                32768",
        "END",
    ] {
        fits.extend(format!("{card:<80}").bytes());
    }
    fits.resize(2880, b' ');
    let fits_path = dir.path().join("big.fits");
    write_sparse(&fits_path, &fits, GAP, &[]);

    let tool = testkit::bin("mem-estimate");
    for path in [&pdf, &fits_path] {
        let m = membudget::monitor::run_measured_capture(Command::new(&tool).arg(path))
            .expect("run mem-estimate");
        let stdout = m.stdout.as_deref().unwrap_or_default();
        let rec = testkit::ndjson(stdout).remove(0);
        assert!(rec.get("error").is_none(), "{}: {rec}", path.display());
        if path == &pdf {
            assert_eq!(
                rec["document"]["largest_image"],
                serde_json::json!([32768, 32768])
            );
            assert_eq!(rec["document"]["image_pages"], 1);
        } else {
            assert_eq!(rec["image"]["width"], 32768);
        }
        assert!(
            m.peak_rss_bytes < 48 << 20,
            "{}: peak RSS {} bytes probing a {GAP}-byte file",
            path.display(),
            m.peak_rss_bytes
        );
        eprintln!(
            "{}: peak RSS {} KiB",
            path.display(),
            m.peak_rss_bytes >> 10
        );
    }
}
