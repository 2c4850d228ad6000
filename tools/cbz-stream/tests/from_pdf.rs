//! `from-pdf` against poppler's own tools: scanned pages byte-identical to
//! `pdfimages -all`, vector pages rendered with their shapes where the PDF draws them.

mod common;
use common::*;
use std::process::Command;

#[test]
fn scanned_pages_identical_to_pdfimages() {
    let pdf = testkit::data("pdf/scanned-jpeg-4p.pdf");
    let dir = testkit::tempdir();
    let out = dir.path().join("s.cbz");
    let r = records(
        &[
            "from-pdf",
            pdf.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    let s = &r[0]["cbz-stream"];
    assert_eq!(
        (
            s["pages"].as_u64(),
            s["copied"].as_u64(),
            s["rendered"].as_u64()
        ),
        (Some(4), Some(4), Some(0)),
        "{s}"
    );
    unzip_t(&out);
    let st = Command::new("pdfimages")
        .arg("-all")
        .arg(&pdf)
        .arg(dir.path().join("ref"))
        .status()
        .expect("pdfimages (poppler-utils)");
    assert!(st.success());
    let Some(z) = python_zip(&out) else { return };
    assert_eq!(z["testzip"], serde_json::Value::Null);
    let e = z["entries"].as_array().unwrap();
    for (k, entry) in e.iter().take(4).enumerate() {
        assert_eq!(entry["name"], format!("{:03}.jpg", k + 1));
        let want = std::fs::read(dir.path().join(format!("ref-{k:03}.jpg"))).unwrap();
        assert_eq!(
            unhex(e[k]["data"].as_str().unwrap()),
            want,
            "page {}",
            k + 1
        );
    }
    let ci = String::from_utf8(unhex(e[4]["data"].as_str().unwrap())).unwrap();
    assert!(
        ci.contains("<PageCount>4</PageCount>")
            && ci.contains("ImageWidth=\"800\" ImageHeight=\"1200\""),
        "{ci}"
    );
}

/// Pixel colours of the rendered pages at PDF points (origin bottom left).
const PIXELS: &str = r#"
import io, json, sys, zipfile
from PIL import Image
dpi = float(sys.argv[2])
z = zipfile.ZipFile(sys.argv[1])
out = []
for name in sorted(n for n in z.namelist() if n != "ComicInfo.xml"):
    im = Image.open(io.BytesIO(z.read(name))).convert("RGB")
    s = dpi / 72.0
    h = 841.8898
    at = lambda x, y: im.getpixel((int(x * s), int((h - y) * s)))
    out.append({"name": name, "size": im.size, "rect": at(222, 500), "circle": at(400, 300), "blank": at(500, 700)})
print(json.dumps(out))
"#;

#[test]
fn vector_pages_rendered_with_shapes_in_place() {
    let pdf = testkit::data("pdf/vector-2p.pdf");
    let dir = testkit::tempdir();
    for (fmt, ext, dpi) in [("jpeg", "jpg", "300"), ("png", "png", "100")] {
        let out = dir.path().join(format!("v-{fmt}.cbz"));
        let r = records(
            &[
                "from-pdf",
                "--render-format",
                fmt,
                "--dpi",
                dpi,
                pdf.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            "",
            0,
        );
        assert_eq!(r[0]["cbz-stream"]["rendered"], 2);
        let Some(py) = testkit::python(&["PIL"]) else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&testkit::run_python(
            &py,
            PIXELS,
            &[out.to_str().unwrap(), dpi],
        ))
        .unwrap();
        let near = |p: &serde_json::Value, rgb: [i64; 3]| {
            p.as_array()
                .unwrap()
                .iter()
                .zip(rgb)
                .all(|(a, b)| (a.as_i64().unwrap() - b).abs() <= 12)
        };
        for page in v.as_array().unwrap() {
            assert!(page["name"].as_str().unwrap().ends_with(ext));
            // A4 from the CropBox (= MediaBox here) at the DPI.
            let w = (595.2756 * dpi.parse::<f64>().unwrap() / 72.0).round() as i64;
            assert!((page["size"][0].as_i64().unwrap() - w).abs() <= 1, "{page}");
            assert!(near(&page["rect"], [204, 25, 25]), "red rectangle: {page}");
            assert!(near(&page["circle"], [25, 51, 204]), "blue circle: {page}");
            assert!(
                near(&page["blank"], [255, 255, 255]),
                "white elsewhere: {page}"
            );
        }
    }
}

#[test]
fn missing_pdftoppm_is_a_clear_error_and_delete_source_after_verify() {
    let dir = testkit::tempdir();
    let scanned = dir.path().join("s.pdf");
    let vector = dir.path().join("v.pdf");
    std::fs::copy(testkit::data("pdf/scanned-jpeg-4p.pdf"), &scanned).unwrap();
    std::fs::copy(testkit::data("pdf/vector-2p.pdf"), &vector).unwrap();
    let empty = dir.path().join("nobin");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(testkit::bin("cbz-stream"))
        .args(["from-pdf", "--delete-source"])
        .arg(&vector)
        .arg(&scanned)
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = testkit::ndjson(&out.stdout);
    assert_eq!(r[0]["error"]["kind"], "unsupported");
    assert!(r[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pdftoppm"));
    assert!(
        vector.exists(),
        "a failed conversion never deletes its source"
    );
    assert!(!dir.path().join("v.cbz").exists());
    // The scanned PDF needs no renderer: converted, verified, then deleted.
    assert_eq!(r[1]["cbz-stream"]["status"], "ok");
    assert_eq!(r[1]["cbz-stream"]["source_deleted"], true);
    assert!(!scanned.exists());
    unzip_t(&dir.path().join("s.cbz"));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
