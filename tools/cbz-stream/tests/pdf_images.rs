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
def g4_aligned():
    # libtiff's Group 4 rows, each padded to a byte boundary (EncodedByteAlign). The
    # coding of the first k rows is a prefix of the coding of more, ended by an EOFB
    # (two 12-bit EOLs) and padding: its last 1 bit ends the EOFB, so k rows end 24
    # bits before it.
    ends, prefixes = [], []
    for k in range(1, FH + 1):
        b = io.BytesIO()
        fax.crop((0, 0, FW, k)).save(b, "TIFF", compression="group4", tiffinfo={278: k})
        t = Image.open(b); off, n = t.tag_v2[273], t.tag_v2[279]
        assert len(off) == 1
        bits = "".join(f"{x:08b}" for x in b.getvalue()[off[0]:off[0] + n[0]])
        ends.append(bits.rindex("1") + 1 - 24)
        prefixes.append(bits[:ends[-1]])
    assert all(bits.startswith(p) for p in prefixes)
    out_bits = ""
    for a, e in zip([0] + ends[:-1], ends):
        row = bits[a:e]
        assert row
        out_bits += row + "0" * (-len(row) % 8)
    out_bits += "000000000001000000000001"
    out_bits += "0" * (-len(out_bits) % 8)
    return int(out_bits, 2).to_bytes(len(out_bits) // 8, "big")
fax.save(os.path.join(out, "g4.tif"), compression="group4")
via_img2pdf(os.path.join(out, "g4.tif"), "ccitt-img2pdf-g4")
for name, comp, t4, k, extra in [
        ("ccitt-g4", "group4", None, -1, {}),
        ("ccitt-g3-1d", "group3", 0, 0, {}),
        ("ccitt-g3-2d", "group3", 1, 4, {}),
        ("ccitt-g3-eol-aligned", "group3", 4, 0, {"/EncodedByteAlign": True}),
        ("ccitt-huffman-aligned", "tiff_ccitt", None, 0, {"/EncodedByteAlign": True}),
        ("ccitt-g4-blackis1", "group4", None, -1, {"/BlackIs1": True}),
        # Two-dimensional Group 3 with fill bits: each EOL ends on a byte boundary, the
        # row's tag bit follows it.
        ("ccitt-g3-2d-aligned", "group3", 5, 4, {"/EncodedByteAlign": True, "/EndOfLine": True}),
        ("ccitt-g4-aligned", "group4-aligned", None, -1, {"/EncodedByteAlign": True})]:
    keys = dict(Filter=N.CCITTFaxDecode, ColorSpace=N.DeviceGray, BitsPerComponent=1,
                DecodeParms=pikepdf.Dictionary({"/K": k, "/Columns": FW, "/Rows": FH, **extra}))
    if name == "ccitt-g4-blackis1":
        keys["Decode"] = pikepdf.Array([1, 0])
    data = g4_aligned() if comp == "group4-aligned" else strip(comp, t4)
    via_pikepdf(name, data, FW, FH, **keys)
np.save(os.path.join(out, "fax.npy"), np.asarray(fax.convert("L")))
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
    if n.startswith("ccitt"):
        # poppler's decoding is the picture libtiff encoded, so the test data is sound;
        # with black and white swapped, as Pillow writes "1" images min-is-black and
        # the fax codes give runs of 0 bits as white.
        src = np.load(os.path.join(d, "fax.npy")).astype(np.int64)
        r["ref_is_source"] = b.shape == src.shape and bool(((b > 127) != (src > 127)).all())
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
    for n in [
        "ccitt-g4",
        "ccitt-g3-2d",
        "ccitt-g3-2d-aligned",
        "ccitt-g4-aligned",
    ] {
        assert_eq!(res[n]["ref_is_source"], true, "{n}: {}", res[n]);
    }
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

/// Pages whose one image is masked, or drawn under a soft mask, alpha or other marks:
/// made by pikepdf (qpdf) around Pillow's JPEG and raw samples. Prints `[{name,
/// expect}]`: `copy` (the page is the image, byte-identical to `pdfimages -all`) or
/// `render`.
const MAKE_MASKED: &str = r#"
import sys, os, io, json, zlib
import numpy as np
from PIL import Image
import pikepdf
N = pikepdf.Name
out = sys.argv[1]
rng = np.random.default_rng(11)
W, H = 96, 64
yy, xx = np.mgrid[:H, :W]
rgb = np.stack([xx * 255 // W, yy * 255 // H, (xx + yy) % 256], -1).astype(np.uint8)
b = io.BytesIO(); Image.fromarray(rgb).save(b, "JPEG", quality=90); jpeg = b.getvalue()
alpha = (xx * 255 // W).astype(np.uint8)
cases = []
def pdf(name, expect, image, content=None, gs=None, font=False):
    p = pikepdf.new()
    im = pikepdf.Stream(p, image.pop("data"))
    for k, v in image.items():
        im["/" + k] = v(p) if callable(v) else v
    im.Type = N.XObject; im.Subtype = N.Image; im.Width = W; im.Height = H
    page = p.add_blank_page(page_size=(W, H))
    res = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=im))
    if gs is not None:
        res.ExtGState = pikepdf.Dictionary(GS0=gs(p))
    if font:
        res.Font = pikepdf.Dictionary(F1=pikepdf.Dictionary(Type=N.Font, Subtype=N.Type1, BaseFont=N.Helvetica))
    page.Resources = res
    page.Contents = pikepdf.Stream(p, (content or f"q {W} 0 0 {H} 0 0 cm /Im0 Do Q").encode())
    p.save(os.path.join(out, name + ".pdf"))
    cases.append({"name": name, "expect": expect})
dct = lambda **k: dict(data=jpeg, Filter=N.DCTDecode, ColorSpace=N.DeviceRGB, BitsPerComponent=8, **k)
smask = lambda p: pikepdf.Stream(p, zlib.compress(alpha.tobytes()), Type=N.XObject, Subtype=N.Image, Width=W,
                                 Height=H, ColorSpace=N.DeviceGray, BitsPerComponent=8, Filter=N.FlateDecode)
stencil = lambda p: pikepdf.Stream(p, np.packbits((xx + yy) % 16 < 8, axis=1).tobytes(), Type=N.XObject,
                                   Subtype=N.Image, Width=W, Height=H, ImageMask=True, BitsPerComponent=1)
pdf("dct-smask", "render", dct(SMask=smask))
pdf("dct-stencil-mask", "render", dct(Mask=stencil))
pdf("flate-colour-key", "render", dict(data=zlib.compress(rgb.tobytes()), Filter=N.FlateDecode,
    ColorSpace=N.DeviceRGB, BitsPerComponent=8, Mask=pikepdf.Array([0, 128, 0, 255, 0, 255])))
pdf("dct-under-alpha", "render", dct(), f"q /GS0 gs {W} 0 0 {H} 0 0 cm /Im0 Do Q",
    gs=lambda p: pikepdf.Dictionary(Type=N.ExtGState, ca=0.5, CA=0.5))
pdf("dct-under-multiply", "render", dct(), f"0 0 1 rg 0 0 {W} {H} re f q /GS0 gs {W} 0 0 {H} 0 0 cm /Im0 Do Q",
    gs=lambda p: pikepdf.Dictionary(Type=N.ExtGState, BM=N.Multiply))
pdf("dct-with-text", "render", dct(), f"q {W} 0 0 {H} 0 0 cm /Im0 Do Q BT /F1 30 Tf 2 20 Td (MMM) Tj ET", font=True)
pdf("dct-clipped", "render", dct(), f"q 0 0 {W // 2} {H} re W n {W} 0 0 {H} 0 0 cm /Im0 Do Q")
# Still the image itself: an invisible OCR layer, a plain graphics state, a page clip.
pdf("dct-ocr-layer", "copy", dct(), f"q 0 0 {W} {H} re W n /GS0 gs {W} 0 0 {H} 0 0 cm /Im0 Do Q "
    "BT 3 Tr /F1 20 Tf 5 20 Td (words) Tj ET", gs=lambda p: pikepdf.Dictionary(Type=N.ExtGState, LW=2), font=True)
print(json.dumps(cases))
"#;

/// Our page against pdftoppm's render of the same page, and against the bare image.
const COMPARE_MASKED: &str = r#"
import sys, io, os, glob, json, zipfile
import numpy as np
from PIL import Image
d = sys.argv[1]; res = {}
for n in sys.argv[2:]:
    z = zipfile.ZipFile(os.path.join(d, n + ".cbz"))
    page = [x for x in z.namelist() if x != "ComicInfo.xml"][0]
    ours = np.asarray(Image.open(io.BytesIO(z.read(page))).convert("RGB")).astype(int)
    ref = np.asarray(Image.open(glob.glob(os.path.join(d, "render", n + "-*.png"))[0]).convert("RGB")).astype(int)
    bare = np.asarray(Image.open(sorted(glob.glob(os.path.join(d, "bare", n + "-*")))[0]).convert("RGB")).astype(int)
    res[n] = {"page": page, "equal": ours.shape == ref.shape and bool((ours == ref).all()),
              # How far the page is from the image alone: the mask or marks showed.
              "from_bare": float(np.abs(ours - bare).mean()) if ours.shape == bare.shape else None}
print(json.dumps(res))
"#;

/// A page whose image has a soft mask, a stencil or colour-key mask, or is painted under
/// alpha, a blend mode, a clip or visible text is not the image: it is rendered, and
/// looks as pdftoppm renders it (not as the bare image); the image with only an
/// invisible OCR layer, a page-sized clip and a plain graphics state over it is still
/// copied as it is.
#[test]
fn masked_and_overlaid_images_are_rendered_as_pdftoppm_does() {
    let Some(py) = testkit::python(&["numpy", "PIL", "pikepdf"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    for sub in ["render", "bare"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    let cases: serde_json::Value = serde_json::from_str(&testkit::run_python(
        &py,
        MAKE_MASKED,
        &[d.to_str().unwrap()],
    ))
    .unwrap();
    let mut rendered = Vec::new();
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let pdf = d.join(format!("{name}.pdf"));
        let cbz = d.join(format!("{name}.cbz"));
        let r = records(
            &[
                "from-pdf",
                pdf.to_str().unwrap(),
                "--dpi",
                "72",
                "--render-format",
                "png",
                "-o",
                cbz.to_str().unwrap(),
            ],
            "",
            0,
        );
        let s = &r[0]["cbz-stream"];
        unzip_t(&cbz);
        // The image as it is in the file.
        let st = Command::new("pdfimages")
            .arg("-all")
            .arg(&pdf)
            .arg(d.join("bare").join(name))
            .status()
            .expect("pdfimages (poppler-utils)");
        assert!(st.success());
        if c["expect"] == "copy" {
            assert_eq!(
                (s["copied"].as_u64(), s["rendered"].as_u64()),
                (Some(1), Some(0)),
                "{name}: {s}"
            );
            let z = python_zip(&cbz).unwrap();
            let page = unhex(z["entries"][0]["data"].as_str().unwrap());
            let bare = std::fs::read(d.join("bare").join(format!("{name}-000.jpg"))).unwrap();
            assert!(page == bare, "{name}: page is not pdfimages's JPEG");
            continue;
        }
        assert_eq!(
            (s["copied"].as_u64(), s["rendered"].as_u64()),
            (Some(0), Some(1)),
            "{name}: {s}"
        );
        let st = Command::new("pdftoppm")
            .args(["-r", "72", "-cropbox", "-png"])
            .arg(&pdf)
            .arg(d.join("render").join(name))
            .status()
            .expect("pdftoppm (poppler-utils)");
        assert!(st.success());
        rendered.push(name.to_string());
    }
    assert_eq!(rendered.len(), 7, "{rendered:?}");
    let mut args = vec![d.to_str().unwrap()];
    args.extend(rendered.iter().map(String::as_str));
    let res: serde_json::Value =
        serde_json::from_str(&testkit::run_python(&py, COMPARE_MASKED, &args)).unwrap();
    for name in &rendered {
        let r = &res[name.as_str()];
        assert_eq!(r["equal"], true, "{name}: {r}");
        assert!(r["page"].as_str().unwrap().ends_with(".png"), "{name}: {r}");
        // The mask or marks changed the page: copying the image would have been wrong.
        assert!(r["from_bare"].as_f64().unwrap() > 1.0, "{name}: {r}");
    }
}
