//! The corpus of real TIFFs (`tests/data/tiff` and `tests/data/tiff/corpus`, from libtiff,
//! image-tiff and Pillow's test images): every file converts or is refused for a reason
//! the man page lists; every output equals tifffile's reading through the documented
//! mappings (WhiteIsZero inverted, palette expanded), is valid for jpylyzer, and passes
//! `--verify` against libtiff.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;
use common::*;

/// Files refused by design, with the start of the message that says what to do.
const REFUSED: &[(&str, &str)] = &[
    ("cmyk-4c-8b.tiff", "CMYK is refused"),
    (
        "int16_zstd.tif",
        "TIFF compression 50000 (Zstandard) is not supported",
    ),
    (
        "predictor-3-gray-f32.tif",
        "floating-point samples are refused",
    ),
    ("pillow-hopper.Lab.tif", "CIELab is refused"),
    (
        "image-tiff-gradient-1c-32b.tiff",
        "32-bit integer samples are refused",
    ),
];

/// Where tifffile is not the reference, compared with libtiff (`--verify`) only: JPEG
/// (two JPEG decoders differ by a few levels), and a Predictor tag on uncompressed data
/// (libtiff, and so vips, ignore it; tifffile applies it).
const LIBTIFF_ONLY: &[&str] = &[
    "tiled-jpeg-rgb-u8.tif",
    "tiled-jpeg-ycbcr.tif",
    "image-tiff-hpredict-1c-12b.tiff",
];

/// libtiff's own bug-report files, which libtiff decodes only with errors (so `--verify`
/// cannot read them); tifffile agrees with libtiff's reference decoding (its test/refs).
const NO_VERIFY: &[&str] = &[
    "libtiff-testfax3_bug54_1dnoEOL.tif",
    "libtiff-testfax3_bug_513.tiff",
];

fn corpus() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tiff", "tiff/corpus"] {
        let dir = testkit::data(dir);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_lowercase();
            if name.ends_with(".tif") || name.ends_with(".tiff") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn real_tiffs_convert_like_tifffile_and_validate() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let files = corpus();
    assert!(files.len() >= 40, "{} files", files.len());
    let dir = testkit::tempdir();
    let out = dir.path().join("out");
    let mut args = vec!["-o".to_string(), out.to_str().unwrap().to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, _) = convert(&args);

    // Refusals: exactly the listed files, each with its message.
    let mut refused = BTreeMap::new();
    let mut by_page: BTreeMap<usize, Vec<(PathBuf, PathBuf)>> = BTreeMap::new();
    for r in &records {
        let path = PathBuf::from(r["path"].as_str().unwrap());
        if let Some(e) = r.get("error") {
            refused.insert(name(&path), e["message"].as_str().unwrap().to_string());
            continue;
        }
        assert_eq!(section(r)["status"], "ok", "{r}");
        let jp2 = output_of(r);
        let stem = jp2.file_stem().unwrap().to_str().unwrap();
        let page = stem
            .rsplit_once("_page_")
            .map_or(0, |(_, n)| n.parse::<usize>().unwrap() - 1);
        by_page.entry(page).or_default().push((path, jp2));
    }
    let want: BTreeMap<String, &str> = REFUSED.iter().map(|(n, m)| (n.to_string(), *m)).collect();
    assert_eq!(
        refused.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{refused:#?}"
    );
    for (n, m) in &refused {
        assert!(m.starts_with(want[n]), "{n}: {m}");
    }

    // Every output: tifffile's samples through the documented mappings, and jpylyzer.
    let mut compared = 0;
    for (page, pairs) in &by_page {
        let pairs: Vec<_> = pairs
            .iter()
            .filter(|(p, _)| !LIBTIFF_ONLY.contains(&name(p).as_str()))
            .collect();
        let sources: Vec<PathBuf> = pairs.iter().map(|(p, _)| p.clone()).collect();
        let want = tiff_samples_many(&py, &sources, *page);
        for ((src, jp2), (want, shape)) in pairs.iter().zip(want) {
            let (got, got_shape) = jp2_samples(jp2);
            assert_eq!(shape, got_shape, "{} page {page}", src.display());
            let diff = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert_eq!(
                diff,
                0,
                "{} page {page}: {diff} samples differ",
                src.display()
            );
            compared += 1;
        }
    }
    let outputs: usize = by_page.values().map(Vec::len).sum();
    assert!(
        compared + 3 >= outputs && compared >= 40,
        "{compared} of {outputs}"
    );
    for jp2 in by_page.values().flatten().map(|(_, j)| j) {
        if let Some((valid, xml)) = jpylyzer(jp2) {
            assert!(valid, "{}: jpylyzer says invalid:\n{xml}", jp2.display());
        }
    }

    // --verify (libtiff) on every converted file libtiff decodes without errors.
    let verified: Vec<String> = records
        .iter()
        .filter(|r| r.get("error").is_none())
        .map(|r| r["path"].as_str().unwrap().to_string())
        .filter(|p| !NO_VERIFY.iter().any(|n| p.ends_with(n)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let out2 = dir.path().join("verified");
    let mut args = vec![
        "--verify".to_string(),
        "-o".to_string(),
        out2.to_str().unwrap().to_string(),
    ];
    args.extend(verified);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, code) = convert(&args);
    assert_eq!(code, 0);
    for r in &records {
        let v = &section(r)["verification"];
        assert_eq!(v["status"], "ok", "{r}");
        assert!(
            v["reference"].as_str().unwrap().starts_with("libtiff"),
            "{r}"
        );
    }
}

/// Signed samples (image-tiff's int8 RGB and int8 gray, Pillow's int16 gray) become signed
/// JP2 components: jpylyzer reports them signed in both the ihdr box and the codestream's
/// SIZ, and OpenJPEG's own decoder (`opj_decompress` to PGX, which keeps the sign) gives
/// back tifffile's values exactly.
#[test]
fn signed_samples_are_signed_jp2_components_opj_decompress_reads_back() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "jpylyzer"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let names = [
        "corpus/image-tiff-int8_rgb.tif",
        "corpus/image-tiff-seq-1c-i8-f8446bbe.tiff",
        "corpus/pillow-16bit.s.tif",
    ];
    for n in names {
        let src = testkit::data(&format!("tiff/{n}"));
        let out = dir.path().join("out");
        let (records, code) = convert(&[
            "--verify",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{records:?}");
        let r = &records[0];
        assert_eq!(section(r)["verification"]["status"], "ok", "{r}");
        let jp2 = output_of(r);
        let (valid, xml) = jpylyzer(&jp2).unwrap();
        assert!(valid, "{n}: {xml}");
        assert_eq!(xml_value(&xml, "bPCSign").as_deref(), Some("signed"), "{n}");
        assert_eq!(
            xml_value(&xml, "ssizSign").as_deref(),
            Some("signed"),
            "{n}"
        );
        let pgx = dir.path().join("dec.pgx");
        let st = std::process::Command::new("opj_decompress")
            .args(["-i", jp2.to_str().unwrap(), "-o", pgx.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .status();
        match st {
            Ok(s) => assert!(s.success(), "opj_decompress failed on {n}"),
            Err(_) if !testkit::validators_required() => continue,
            Err(e) => panic!("opj_decompress: {e}"),
        }
        let code = r#"
import sys, re, glob, numpy as np, tifffile
src, stem = sys.argv[1], sys.argv[2]
a = tifffile.imread(src)
def pgx(p):
    d = open(p, "rb").read()
    m = re.match(rb"PG (ML|LM) ([+-]?) ?(\d+) (\d+) (\d+)\n", d)
    end, sign, bits, w, h = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
    assert sign == b"-", "unsigned component"
    t = np.dtype((">" if end == b"ML" else "<") + "i" + str(1 if bits <= 8 else 2))
    return np.frombuffer(d[m.end():], dtype=t).reshape(h, w)
comps = sorted(glob.glob(stem + "_*.pgx"), key=lambda p: int(p.rsplit("_", 1)[1][:-4]))
b = np.stack([pgx(p) for p in comps], -1).reshape(a.shape)
assert a.dtype.kind == "i", a.dtype
assert np.array_equal(a.astype(np.int32), b.astype(np.int32)), "samples differ"
print(a.dtype, a.min(), a.max())
"#;
        let stem = dir.path().join("dec");
        testkit::run_python(&py, code, &[src.to_str().unwrap(), stem.to_str().unwrap()]);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pgx") {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
}

/// CMYK TIFFs that embed their press profile: a v2 output profile written here (an
/// `mft2` A2B0 table sampled from a naive ink model into Lab), 8-bit, 8-bit with alpha
/// (Deflate) and 16-bit (tiled); and one without a profile.
const CMYK_TIFFS: &str = r#"
import sys, struct, numpy as np, tifffile
out = sys.argv[1]
def s15(v): return struct.pack(">i", int(round(v * 65536)))
def lab_of(cmyk):
    c, m, y, k = cmyk
    rgb = np.array([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    M = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]])
    X, Y, Z = M @ lin / np.array([0.9642, 1.0, 0.8249])
    f = lambda t: np.cbrt(t) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    return 116 * f(Y) - 16, 500 * (f(X) - f(Y)), 200 * (f(Y) - f(Z))
g = 9
clut = bytearray()
for i in np.ndindex(g, g, g, g):
    L, a, b = lab_of([v / (g - 1) for v in i])
    clut += struct.pack(">3H", *(int(round(min(max(v, 0), 65535))) for v in (L * 652.8, (a + 128) * 256, (b + 128) * 256)))
mft2 = b"mft2" + bytes(4) + bytes([4, 3, g, 0]) + b"".join(s15(v) for v in [1, 0, 0, 0, 1, 0, 0, 0, 1])
mft2 += struct.pack(">HH", 2, 2) + struct.pack(">8H", *([0, 65535] * 4)) + bytes(clut) + struct.pack(">6H", *([0, 65535] * 3))
text = b"naive CMYK test profile"
desc = b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(4 + 4 + 2 + 1 + 67)
wtpt = b"XYZ " + bytes(4) + s15(0.9642) + s15(1.0) + s15(0.8249)
cprt = b"text" + bytes(4) + b"public domain\0"
tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", mft2)]
table, body, off = bytearray(struct.pack(">I", len(tags))), bytearray(), 128 + 4 + 12 * len(tags)
for sig, data in tags:
    while (off + len(body)) % 4: body += b"\0"
    table += sig + struct.pack(">II", off + len(body), len(data)); body += data
size = off + len(body)
head = struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtrCMYKLab " + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48)
assert len(head) == 128
icc = head + bytes(table) + bytes(body)
rng = np.random.default_rng(5)
h, w = 37, 53
yy, xx = np.mgrid[0:h, 0:w]
base = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2), rng.integers(0, 256, (h, w))], -1)
c8 = base.astype(np.uint8)
alpha = rng.integers(0, 256, (h, w, 1)).astype(np.uint8)
tifffile.imwrite(out + "-8.tif", c8, photometric="separated", iccprofile=icc)
tifffile.imwrite(out + "-8a.tif", np.concatenate([c8, alpha], -1), photometric="separated", extrasamples=[2], iccprofile=icc, compression="zlib")
c16 = (base.astype(np.uint16) * 257 + rng.integers(0, 257, (h, w, 4))).astype(np.uint16)
tifffile.imwrite(out + "-16.tif", c16, photometric="separated", iccprofile=icc, tile=(16, 16))
tifffile.imwrite(out + "-noicc.tif", c8, photometric="separated")
open(out + ".icc", "wb").write(icc)
"#;

/// A JP2 made from a CMYK TIFF, decoded by `opj_decompress`, against Pillow's ImageCms
/// (its own lcms2) converting the TIFF's samples through the TIFF's profile to sRGB:
/// equal at 8 bits; at 16 bits within 2 levels of the 8-bit conversion of the top bytes
/// (Pillow converts 8-bit CMYK only). Alpha as stored.
const CMYK_CHECK: &str = r#"
import sys, io, subprocess, tempfile, os, numpy as np, tifffile
from PIL import Image, ImageCms
src, jp2 = sys.argv[1], sys.argv[2]
a = tifffile.imread(src)
with tifffile.TiffFile(src) as t:
    icc = t.pages[0].tags["InterColorProfile"].value
d = tempfile.mkdtemp()
subprocess.run(["opj_decompress", "-i", jp2, "-o", f"{d}/o.tif"], check=True, capture_output=True)
got = tifffile.imread(f"{d}/o.tif")
assert got.shape[:2] == a.shape[:2] and got.shape[2] == a.shape[2] - 1, (got.shape, a.shape)
if a.dtype == np.uint8:
    t = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), "CMYK", "RGB", renderingIntent=0)
    want = np.asarray(ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(a[:, :, :4]), "CMYK"), t))
    diff = np.abs(want.astype(int) - got[:, :, :3].astype(int))
else:
    # Pillow converts 8-bit CMYK only: the 16-bit output against the 8-bit conversion of the top bytes.
    t = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), "CMYK", "RGB", renderingIntent=0)
    want = np.asarray(ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray((a[:, :, :4] >> 8).astype(np.uint8)), "CMYK"), t))
    diff = np.abs(want.astype(int) * 257 - got[:, :, :3].astype(int)) / 257
print(a.dtype, "max diff", diff.max(), "mean", diff.mean())
if a.shape[2] == 5:
    assert np.array_equal(got[:, :, 3], a[:, :, 4]), "alpha changed"
assert diff.max() <= (0 if a.dtype == np.uint8 else 2), diff.max()
"#;

#[test]
fn cmyk_with_an_embedded_profile_becomes_srgb_like_pillow_imagecms() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "PIL", "jpylyzer"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let stem = dir.path().join("t");
    testkit::run_python(&py, CMYK_TIFFS, &[stem.to_str().unwrap()]);
    let out = dir.path().join("out");
    for kind in ["8", "8a", "16"] {
        let src = dir.path().join(format!("t-{kind}.tif"));
        let (records, code) = convert(&[
            "--verify",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{records:?}");
        let r = &records[0];
        let v = &section(r)["verification"];
        assert_eq!(v["status"], "ok", "{r}");
        assert!(
            v["reference"].as_str().unwrap().starts_with("libtiff"),
            "{r}"
        );
        assert!(
            section(r)["note"]
                .as_str()
                .unwrap()
                .contains("CMYK converted to sRGB"),
            "{r}"
        );
        let jp2 = output_of(r);
        let (valid, xml) = jpylyzer(&jp2).unwrap();
        assert!(valid, "{kind}: {xml}");
        assert_eq!(xml_value(&xml, "enumCS").as_deref(), Some("sRGB"), "{kind}");
        if std::process::Command::new("opj_decompress")
            .arg("-h")
            .output()
            .is_err()
            && !testkit::validators_required()
        {
            continue;
        }
        testkit::run_python(
            &py,
            CMYK_CHECK,
            &[src.to_str().unwrap(), jp2.to_str().unwrap()],
        );
    }
    let src = dir.path().join("t-noicc.tif");
    let (records, code) = convert(&["-o", out.to_str().unwrap(), src.to_str().unwrap()]);
    assert_eq!(code, 1);
    let msg = records[0]["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("CMYK is refused: the file embeds no ICC profile"),
        "{msg}"
    );
}
