//! `cover`: the thumbnail against Pillow's box-filter resize of the same page.

mod common;
use common::*;

/// Exact area averaging, written with numpy's einsum as matrices of overlaps (Pillow's
/// BOX filter differs from it by up to 12 levels on sharp edges, so it is no reference
/// for exactness).
const EXACT: &str = r#"
import io, json, sys, zipfile
import numpy as np
from PIL import Image
t = np.asarray(Image.open(sys.argv[1])).astype(np.float64)
src = np.asarray(Image.open(io.BytesIO(zipfile.ZipFile(sys.argv[2]).read(sys.argv[3]))).convert("RGB")).astype(np.float64)
def overlaps(n, m):
    s = n / m
    a = np.zeros((m, n))
    for i in range(m):
        lo, hi = i * s, (i + 1) * s
        for k in range(int(lo), min(n, int(np.ceil(hi)))):
            a[i, k] = max(0.0, min(hi, k + 1) - max(lo, k))
        a[i] /= a[i].sum()
    return a
ref = np.einsum("ij,jkc,lk->ilc", overlaps(src.shape[0], t.shape[0]), src, overlaps(src.shape[1], t.shape[1]))
print(json.dumps({"size": [t.shape[1], t.shape[0]], "max": float(np.abs(t - ref).max())}))
"#;

const COMPARE: &str = r#"
import io, json, sys, zipfile
from PIL import Image, ImageChops, ImageStat
thumb = Image.open(sys.argv[1])
page = Image.open(io.BytesIO(zipfile.ZipFile(sys.argv[2]).read(sys.argv[3])))
if page.format == "JPEG":
    # libjpeg's DCT scaling, as the tool decodes: the same reduced image to box from.
    page.draft("RGB", thumb.size)
page = page.convert(thumb.mode)
ref = page.resize(thumb.size, Image.BOX)
diff = ImageChops.difference(thumb, ref)
print(json.dumps({"size": thumb.size, "mode": thumb.mode, "max": max(b[1] for b in diff.getextrema()) if thumb.mode != "L" else diff.getextrema()[1], "mean": sum(ImageStat.Stat(diff).mean) / len(thumb.getbands())}))
"#;

#[test]
fn cover_matches_pillow_box_resize() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL"]) else {
        return;
    };
    let src = dir.path().join("p");
    // A smooth JPEG page: sharp edges would measure chroma upsampling, not the scaler.
    std::fs::create_dir_all(&src).unwrap();
    testkit::run_python(
        &py,
        "import sys, math\nfrom PIL import Image\nim = Image.new('RGB', (800, 1200))\nim.putdata([(int(128 + 100 * math.sin(x / 40.0)), int(y * 200 / 1200), 90) for y in range(1200) for x in range(800)])\nim.save(sys.argv[1], quality=90)",
        &[src.join("001.jpg").to_str().unwrap()],
    );
    // A PNG page (lossless: the box filter must match Pillow's to rounding).
    testkit::run_python(
        &py,
        "import sys\nfrom PIL import Image\nim = Image.new('RGB', (640, 480))\nim.putdata([((x * 7) % 256, (y * 3) % 256, (x ^ y) % 256) for y in range(480) for x in range(640)])\nim.save(sys.argv[1])",
        &[src.join("002.png").to_str().unwrap()],
    );
    let a = dir.path().join("c.cbz");
    records(
        &["pack", src.to_str().unwrap(), "-o", a.to_str().unwrap()],
        "",
        0,
    );
    let out = dir.path().join("o");
    let r = records(
        &[
            "cover",
            "--size",
            "150",
            a.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["entry"], "001.jpg");
    assert_eq!(
        (
            r[0]["cbz-stream"]["width"].as_u64(),
            r[0]["cbz-stream"]["height"].as_u64()
        ),
        (Some(100), Some(150))
    );
    let thumb = out.join("c.cover.png");
    let v: serde_json::Value = serde_json::from_str(&testkit::run_python(
        &py,
        COMPARE,
        &[thumb.to_str().unwrap(), a.to_str().unwrap(), "001.jpg"],
    ))
    .unwrap();
    assert_eq!(v["size"], serde_json::json!([100, 150]));
    // JPEG decoded at 1/4 scale by its IDCT, then boxed, as Pillow's draft mode does.
    assert!(
        v["mean"].as_f64().unwrap() < 2.0 && v["max"].as_i64().unwrap() <= 12,
        "{v}"
    );
    let r = records(
        &[
            "cover",
            "--size",
            "100",
            "--page",
            "2",
            "-f",
            a.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["entry"], "002.png");
    let py = testkit::python(&["PIL", "numpy"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&testkit::run_python(
        &py,
        EXACT,
        &[thumb.to_str().unwrap(), a.to_str().unwrap(), "002.png"],
    ))
    .unwrap();
    assert_eq!(v["size"], serde_json::json!([100, 75]));
    assert!(
        v["max"].as_f64().unwrap() <= 0.5 + 1e-3,
        "PNG thumbnail is exact area averaging, rounded: {v}"
    );
    let r = records(
        &[
            "cover",
            "--page",
            "3",
            "-f",
            a.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        1,
    );
    assert_eq!(r[0]["error"]["kind"], "bad_record");
}
