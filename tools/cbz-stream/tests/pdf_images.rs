//! `from-pdf` on pages that are one Flate, CCITT fax or JBIG2 image: decoded to PNG
//! without rendering, with the pixels poppler's `pdfimages -png` writes. The PDFs are
//! made by img2pdf and pikepdf (qpdf) from Pillow's images and libtiff's fax strips; the
//! JBIG2 ones are SerenityOS's test files (through pdf.js's test suite).

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Writes the test PDFs into argv[1]; prints `[{name, expect}]` where expect is `png`
/// (decoded) or `render` (refused: the page is rendered).
const MAKE: &str = r#"
import sys, os, io, json, zlib
import numpy as np
from PIL import Image, ImageCms
import img2pdf, pikepdf
out = sys.argv[1]
rng = np.random.default_rng(7)
W, H = 61, 37
cases = []
def add(name, expect="png"):
    cases.append({"name": name, "expect": expect})
def png(im, name, **kw):
    p = os.path.join(out, name + ".png"); im.save(p, **kw); return p
def via_img2pdf(path, name):
    with open(os.path.join(out, name + ".pdf"), "wb") as f:
        f.write(img2pdf.convert([path]))
    add(name)
def via_pikepdf(name, data, w, h, expect="png", **keys):
    p = pikepdf.new()
    im = pikepdf.Stream(p, data)
    im.Type = pikepdf.Name.XObject; im.Subtype = pikepdf.Name.Image
    im.Width = w; im.Height = h
    for k, v in keys.items():
        im["/" + k] = v(p) if callable(v) else v
    page = p.add_blank_page(page_size=(w, h))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=im))
    page.Contents = pikepdf.Stream(p, f"q {w} 0 0 {h} 0 0 cm /Im0 Do Q".encode())
    p.save(os.path.join(out, name + ".pdf"))
    add(name, expect)
N = pikepdf.Name
g = rng.integers(0, 256, (H, W)).astype(np.uint8)
rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
g16 = rng.integers(0, 65536, (H, W)).astype(np.uint16)
np.save(os.path.join(out, "gray16.npy"), g16)
srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
open(os.path.join(out, "srgb.icc"), "wb").write(srgb)
# img2pdf: Flate with PNG predictors (the PNG's own IDAT), palettes, ICC, Group 4.
via_img2pdf(png(Image.fromarray(g), "gray8"), "gray8")
via_img2pdf(png(Image.fromarray(rgb), "rgb8"), "rgb8")
via_img2pdf(png(Image.fromarray(g16), "gray16"), "gray16")
via_img2pdf(png(Image.fromarray(g > 128).convert("1"), "bw1"), "bw1")
via_img2pdf(png(Image.fromarray(rgb).quantize(16), "pal4", bits=4), "pal4")
via_img2pdf(png(Image.fromarray(rgb).quantize(200), "pal8"), "pal8")
via_img2pdf(png(Image.fromarray(rgb), "icc", icc_profile=srgb), "icc")
# pikepdf: what img2pdf does not write.
flate = lambda b: dict(Filter=N.FlateDecode, **b)
via_pikepdf("rgb-nopredictor", zlib.compress(rgb.tobytes()), W, H,
            **flate(dict(ColorSpace=N.DeviceRGB, BitsPerComponent=8)))
diff = rgb.astype(np.int16).copy(); diff[:, 1:] -= rgb[:, :-1].astype(np.int16)
via_pikepdf("rgb-tiff-predictor", zlib.compress((diff % 256).astype(np.uint8).tobytes()), W, H,
            **flate(dict(ColorSpace=N.DeviceRGB, BitsPerComponent=8,
                         DecodeParms=pikepdf.Dictionary(Predictor=2, Colors=3, BitsPerComponent=8, Columns=W))))
via_pikepdf("gray-decode-inverted", zlib.compress(g.tobytes()), W, H,
            **flate(dict(ColorSpace=N.DeviceGray, BitsPerComponent=8, Decode=pikepdf.Array([1, 0]))))
lut = bytes(rng.integers(0, 256, 40).astype(np.uint8))
via_pikepdf("indexed-gray", zlib.compress((g % 40).astype(np.uint8).tobytes()), W, H,
            **flate(dict(BitsPerComponent=8,
                         ColorSpace=pikepdf.Array([N.Indexed, N.DeviceGray, 39, pikepdf.String(lut)]))))
# Refused, so rendered: a soft mask, CMYK, a /Decode that is not an inversion.
via_pikepdf("smask", zlib.compress(rgb.tobytes()), W, H, "render",
            **flate(dict(ColorSpace=N.DeviceRGB, BitsPerComponent=8,
                         SMask=lambda p: pikepdf.Stream(p, zlib.compress(g.tobytes()), Type=N.XObject, Subtype=N.Image,
                                                        Width=W, Height=H, ColorSpace=N.DeviceGray, BitsPerComponent=8, Filter=N.FlateDecode))))
via_pikepdf("cmyk", zlib.compress(rng.integers(0, 256, W * H * 4).astype(np.uint8).tobytes()), W, H, "render",
            **flate(dict(ColorSpace=N.DeviceCMYK, BitsPerComponent=8)))
via_pikepdf("decode-range", zlib.compress(g.tobytes()), W, H, "render",
            **flate(dict(ColorSpace=N.DeviceGray, BitsPerComponent=8, Decode=pikepdf.Array([0, 0.5]))))
# CCITT: libtiff's encoders (through Pillow), one strip each.
FW, FH = 203, 150
a = np.zeros((FH, FW), bool)
yy, xx = np.ogrid[:FH, :FW]
for _ in range(40):
    y, x, r = rng.integers(0, FH), rng.integers(0, FW), rng.integers(2, 15)
    a |= (yy - y) ** 2 + (xx - x) ** 2 < r * r
fax = Image.fromarray(~a).convert("1")
def strip(compression, t4=None):
    b = io.BytesIO(); info = {278: FH}
    if t4 is not None: info[292] = t4
    fax.save(b, "TIFF", compression=compression, tiffinfo=info)
    t = Image.open(b); off, n = t.tag_v2[273], t.tag_v2[279]
    assert len(off) == 1
    return b.getvalue()[off[0]:off[0] + n[0]]
fax.save(os.path.join(out, "g4.tif"), compression="group4")
via_img2pdf(os.path.join(out, "g4.tif"), "ccitt-img2pdf-g4")
for name, comp, t4, k, extra in [
        ("ccitt-g4", "group4", None, -1, {}),
        ("ccitt-g3-1d", "group3", 0, 0, {}),
        ("ccitt-g3-2d", "group3", 1, 4, {}),
        ("ccitt-g3-eol-aligned", "group3", 4, 0, {"/EncodedByteAlign": True}),
        ("ccitt-huffman-aligned", "tiff_ccitt", None, 0, {"/EncodedByteAlign": True}),
        ("ccitt-g4-blackis1", "group4", None, -1, {"/BlackIs1": True})]:
    keys = dict(Filter=N.CCITTFaxDecode, ColorSpace=N.DeviceGray, BitsPerComponent=1,
                DecodeParms=pikepdf.Dictionary({"/K": k, "/Columns": FW, "/Rows": FH, **extra}))
    if name == "ccitt-g4-blackis1":
        keys["Decode"] = pikepdf.Array([1, 0])
    via_pikepdf(name, strip(comp, t4), FW, FH, **keys)
print(json.dumps(cases))
"#;

/// Compares each case's page with pdfimages's; prints `{name: {equal, mode, ...}}`.
const COMPARE: &str = r#"
import sys, io, os, json, glob, zipfile
import numpy as np
from PIL import Image
d = sys.argv[1]; names = sys.argv[2:]
def pixels(im):
    if im.mode == "P":
        im = im.convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    return np.asarray(im).astype(np.int64)
res = {}
for n in names:
    z = zipfile.ZipFile(os.path.join(d, n + ".cbz"))
    page = [x for x in z.namelist() if x != "ComicInfo.xml"][0]
    ours = Image.open(io.BytesIO(z.read(page)))
    ref = Image.open(sorted(glob.glob(os.path.join(d, "ref", n + "-*.png")))[0])
    a, b = pixels(ours), pixels(ref)
    r = {"page": page, "mode": ours.mode, "icc": "icc_profile" in ours.info}
    if ours.mode.startswith("I;16"):
        # pdfimages writes 16-bit samples as their high byte; the source is the truth.
        r["source_equal"] = bool((a == np.load(os.path.join(d, n + ".npy"))).all())
        a = a >> 8
    r["equal"] = a.shape == b.shape and bool((a == b).all())
    r["distinct_values"] = int(len(np.unique(b)))
    if r["icc"]:
        r["icc_equal"] = ours.info["icc_profile"] == open(os.path.join(d, "srgb.icc"), "rb").read()
    res[n] = r
print(json.dumps(res))
"#;

fn pdfimages_png(pdf: &Path, prefix: &Path) {
    let st = Command::new("pdfimages")
        .arg("-png")
        .arg(pdf)
        .arg(prefix)
        .status()
        .expect("pdfimages (poppler-utils)");
    assert!(st.success(), "pdfimages -png {}", pdf.display());
}

#[test]
fn flate_and_ccitt_images_have_pdfimages_pixels() {
    let Some(py) = testkit::python(&["numpy", "PIL", "img2pdf", "pikepdf"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("ref")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&testkit::run_python(&py, MAKE, &[d.to_str().unwrap()])).unwrap();
    let mut decoded = Vec::new();
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let pdf = d.join(format!("{name}.pdf"));
        let r = records(
            &[
                "from-pdf",
                pdf.to_str().unwrap(),
                "-o",
                d.join(format!("{name}.cbz")).to_str().unwrap(),
            ],
            "",
            0,
        );
        let s = &r[0]["cbz-stream"];
        if c["expect"] == "png" {
            assert_eq!(
                (s["copied"].as_u64(), s["rendered"].as_u64()),
                (Some(1), Some(0)),
                "{name}: {s}"
            );
            pdfimages_png(&pdf, &d.join("ref").join(name));
            decoded.push(name.to_string());
        } else {
            // Refused: rendered, and the record says why.
            assert_eq!(
                (s["copied"].as_u64(), s["rendered"].as_u64()),
                (Some(0), Some(1)),
                "{name}: {s}"
            );
            assert_eq!(s["rendered_images"][0]["page"], 1, "{name}: {s}");
        }
        unzip_t(&d.join(format!("{name}.cbz")));
    }
    assert!(decoded.len() >= 18, "{decoded:?}");
    let mut args = vec![d.to_str().unwrap()];
    args.extend(decoded.iter().map(String::as_str));
    let res: serde_json::Value =
        serde_json::from_str(&testkit::run_python(&py, COMPARE, &args)).unwrap();
    for name in &decoded {
        let r = &res[name.as_str()];
        assert_eq!(r["equal"], true, "{name}: {r}");
        assert!(r["page"].as_str().unwrap().ends_with(".png"), "{name}: {r}");
        // Not a blank page that would match anything.
        assert!(r["distinct_values"].as_u64().unwrap() >= 2, "{name}: {r}");
    }
    // Lossless beyond what pdfimages keeps: 16 bits stay 16 bits, palettes stay
    // palettes, ICC profiles are carried.
    assert_eq!(res["gray16"]["mode"], "I;16", "{}", res["gray16"]);
    assert_eq!(res["gray16"]["source_equal"], true);
    assert_eq!(res["pal4"]["mode"], "P");
    assert_eq!(res["ccitt-g4"]["mode"], "1");
    assert_eq!(res["icc"]["icc_equal"], true, "{}", res["icc"]);
}

/// SerenityOS's JBIG2 test files all encode one picture, through generic, refinement,
/// symbol/text and halftone regions, MMR, stripes and JBIG2Globals. Every page must equal
/// poppler's decoding of the plainest one; the two where poppler 25 decodes a different
/// picture (its Huffman text and TPGRON refinement paths) are compared with that only.
#[test]
fn jbig2_images_decode_to_the_picture_poppler_decodes() {
    let Some(py) = testkit::python(&["numpy", "PIL"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("ref")).unwrap();
    let src = testkit::data("pdf/jbig2");
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".pdf").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    for n in &names {
        let pdf = src.join(format!("{n}.pdf"));
        let r = records(
            &[
                "from-pdf",
                pdf.to_str().unwrap(),
                "-o",
                d.join(format!("{n}.cbz")).to_str().unwrap(),
            ],
            "",
            0,
        );
        let s = &r[0]["cbz-stream"];
        assert_eq!(
            (s["copied"].as_u64(), s["rendered"].as_u64()),
            (Some(1), Some(0)),
            "{n}: {s}"
        );
        pdfimages_png(&pdf, &d.join("ref").join(n));
    }
    let mut args = vec![d.to_str().unwrap()];
    args.extend(names.iter().map(String::as_str));
    let res: serde_json::Value =
        serde_json::from_str(&testkit::run_python(&py, COMPARE, &args)).unwrap();
    let poppler_differs = ["bitmap-symbol-symhuff-texthuff", "bitmap-refine-tpgron"];
    for n in &names {
        let r = &res[n.as_str()];
        assert_eq!(r["mode"], "1", "{n}: {r}");
        assert_eq!(
            r["equal"],
            !poppler_differs.contains(&n.as_str()),
            "{n}: {r}"
        );
    }
    // Every page is the same picture: poppler's decoding of bitmap-template1.
    let same = r#"
import sys, io, os, glob, zipfile
import numpy as np
from PIL import Image
d = sys.argv[1]
ref = np.asarray(Image.open(glob.glob(os.path.join(d, "ref", "bitmap-template1-*.png"))[0]).convert("L"))
for n in sys.argv[2:]:
    z = zipfile.ZipFile(os.path.join(d, n + ".cbz"))
    page = [x for x in z.namelist() if x != "ComicInfo.xml"][0]
    a = np.asarray(Image.open(io.BytesIO(z.read(page))).convert("L"))
    print(n, a.shape == ref.shape and bool((a == ref).all()))
"#;
    let out = testkit::run_python(&py, same, &args);
    for line in out.lines() {
        assert!(line.ends_with(" True"), "{line}");
    }
    assert_eq!(out.lines().count(), names.len());
}
