//! The `cbz-stream` and `pdf-to-cbz` cost models against measured peak RSS (the child's
//! own high-water mark): within 20% for every archive operation and for scanned and
//! rendered PDFs.

mod common;
use common::*;
use membudget::cost::{self, CostModel, Summary};
use std::path::Path;
use std::process::Command;

/// The model's peak for `input` at its preferred chunk and one worker, as `mem-estimate`
/// and `chunk-plan` compute it.
fn predicted(model: &dyn CostModel, input: &Path) -> u64 {
    let probe = membudget::probe::probe_path(input).unwrap();
    let s = Summary::from_probe(&probe);
    assert!(model.applies(&s), "{} on {}", model.name(), input.display());
    cost::estimate(model, &s).unwrap().preferred_bytes
}

/// Peak RSS of `cbz-stream args`.
fn measured(args: &[&str]) -> u64 {
    let mut cmd = Command::new(testkit::bin("cbz-stream"));
    cmd.args(args);
    membudget::monitor::reset_peak();
    let m = membudget::monitor::run_measured_capture(&mut cmd).unwrap();
    assert!(
        m.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(m.stderr.as_deref().unwrap_or_default())
    );
    m.peak_rss_bytes
}

fn within(what: &str, predicted: u64, measured: u64) {
    let err = (predicted as f64 - measured as f64).abs() / measured as f64;
    eprintln!(
        "{what}: predicted {predicted}, measured {measured} ({:+.0}%)",
        err * 100.0
    );
    assert!(
        err <= 0.2,
        "{what}: predicted {predicted}, measured {measured}"
    );
}

#[test]
fn cbz_stream_model_within_20_percent() {
    let dir = testkit::tempdir();
    let d = dir.path();
    // 24 pages of 600 KB to 1 MB: the peak must not follow the entry sizes.
    for i in 0..24u16 {
        put(
            &d.join("src"),
            &format!("Page {i}.jpg"),
            &jpeg(1400 + 20 * i, 1900, u64::from(i)),
        );
    }
    let a = d.join("a.cbz");
    let a_s = a.to_str().unwrap();
    let pack = measured(&["-q", "pack", d.join("src").to_str().unwrap(), "-o", a_s]);
    let model = cost::model("cbz-stream").unwrap();
    let p = predicted(model.as_ref(), &a);
    within("pack", p, pack);
    within(
        "unpack",
        p,
        measured(&["-q", "unpack", a_s, "-o", d.join("x").to_str().unwrap()]),
    );
    within("list", p, measured(&["-q", "list", a_s]));
    let e = d.join("e.cbz");
    std::fs::copy(&a, &e).unwrap();
    within(
        "edit",
        p,
        measured(&["-q", "edit", "--remove", "3", e.to_str().unwrap()]),
    );
}

#[test]
fn pdf_to_cbz_model_within_20_percent() {
    let dir = testkit::tempdir();
    let model = cost::model("pdf-to-cbz").unwrap();
    for (name, pdf) in [
        ("scanned (copied)", "pdf/scanned-jpeg-4p.pdf"),
        ("vector (rendered)", "pdf/vector-2p.pdf"),
    ] {
        let pdf = testkit::data(pdf);
        let out = dir.path().join("o.cbz");
        let m = measured(&[
            "-q",
            "from-pdf",
            "-f",
            pdf.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        within(name, predicted(model.as_ref(), &pdf), m);
        unzip_t(&out);
    }
}

/// A scanned PDF of 16 MB (img2pdf, 1.3 MB pages of noise): the peak stays one page's,
/// not a share of the file. Before, the header probe and the copy loop left every page
/// of the PDF they had read mapped in, and the peak grew with the file.
#[test]
fn pdf_to_cbz_model_holds_on_a_larger_scanned_pdf() {
    let Some(py) = testkit::python(&["numpy", "PIL", "img2pdf"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let pdf = dir.path().join("big.pdf");
    let make = r#"
import sys, io, img2pdf
import numpy as np
from PIL import Image
rng = np.random.default_rng(1)
pages = []
for i in range(12):
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1400, 1000, 3)).astype(np.uint8)).save(b, "JPEG", quality=90)
    pages.append(b.getvalue())
open(sys.argv[1], "wb").write(img2pdf.convert(pages))
"#;
    testkit::run_python(&py, make, &[pdf.to_str().unwrap()]);
    assert!(std::fs::metadata(&pdf).unwrap().len() > 12 << 20);
    let out = dir.path().join("o.cbz");
    let m = measured(&[
        "-q",
        "from-pdf",
        pdf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let model = cost::model("pdf-to-cbz").unwrap();
    within("scanned 16 MB", predicted(model.as_ref(), &pdf), m);
}
