//! `tile-enhance thumbnail` against tools nobody here wrote: sizes against
//! `vipsthumbnail`, pixels against Pillow's whole-image Lanczos reduction by
//! scikit-image's SSIM, ICC profiles read back by Pillow, corrupt files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let ran = testkit::tool("tile-enhance").args(args).stdin("").run();
    (ran.status.code(), ran.records())
}

/// Run `thumbnail` with `args` on `inputs`, asserting the exit status.
fn thumbs(args: &[&str], inputs: &[&Path], code: i32) -> Vec<Value> {
    let mut a = vec!["thumbnail"];
    a.extend_from_slice(args);
    a.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let (c, r) = run(&a);
    assert_eq!(c, Some(code), "{a:?}: {r:?}");
    assert_eq!(r.len(), inputs.len());
    r
}

/// `vipsthumbnail` when installed (required when validators are).
fn vipsthumbnail() -> Option<()> {
    let ok = Command::new("vipsthumbnail")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!testkit::validators_required(), "vipsthumbnail is missing");
        eprintln!("skipped: no vipsthumbnail");
        return None;
    }
    Some(())
}

/// The size of vipsthumbnail's thumbnail of `input` (`extra` arguments added).
fn vips_size(input: &Path, size: u32, extra: &[&str], dir: &Path) -> (u64, u64) {
    let out = dir.join("vips.png");
    let st = Command::new("vipsthumbnail")
        .arg("-s")
        .arg(size.to_string())
        .args(extra)
        .arg(input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    testkit::check(&st, "vipsthumbnail");
    let h = std::fs::read(&out).unwrap();
    let be = |o: usize| u64::from(u32::from_be_bytes(h[o..o + 4].try_into().unwrap()));
    (be(16), be(20))
}

/// Generated inputs: photo-like RGB (odd sizes) as JPEG (baseline and progressive), gray JPEG, PNG, RGBA PNG, a
/// page-pyramid and a SubIFD-pyramid TIFF (written by libvips), a JPEG 2000 (by
/// OpenJPEG's opj_compress).
const GENERATE: &str = r#"
import sys, numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
def photo(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.stack([128 + 90 * np.sin(x / 37.0) * np.cos(y / 53.0),
                  128 + 90 * np.sin((x + 2 * y) / 61.0),
                  128 + 60 * np.cos(np.hypot(x - w / 3, y - h / 2) / 29.0)], -1)
    a += rng.normal(0, 6, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)
p = photo(2401, 1603)
Image.fromarray(p).save(f"{d}/photo.jpg", quality=92)
Image.fromarray(p).save(f"{d}/progressive.jpg", quality=85, progressive=True)
Image.fromarray(p[:1201, :977]).save(f"{d}/crop.png")
Image.fromarray(p[:1333, :1777, 1]).save(f"{d}/gray.jpg", quality=90)
rgba = np.dstack([p[:900, :1300], (np.arange(1300)[None, :].repeat(900, 0) % 256).astype(np.uint8)])
Image.fromarray(rgba, "RGBA").save(f"{d}/alpha.png")
Image.fromarray(p).save(f"{d}/photo.ppm")
"#;

fn generated(py: &Path, dir: &Path) -> Vec<PathBuf> {
    testkit::run_python(py, GENERATE, &[dir.to_str().unwrap()]);
    let d = |n: &str| dir.join(n);
    let sh = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        testkit::check(&out, args[0]);
    };
    let jpg = d("photo.jpg");
    let pyr = d("pyramid.tif");
    let sub = d("subifd.tif");
    sh(&[
        "vips",
        "tiffsave",
        jpg.to_str().unwrap(),
        pyr.to_str().unwrap(),
        "--tile",
        "--pyramid",
        "--compression",
        "deflate",
    ]);
    sh(&[
        "vips",
        "tiffsave",
        jpg.to_str().unwrap(),
        sub.to_str().unwrap(),
        "--tile",
        "--pyramid",
        "--subifd",
        "--compression",
        "lzw",
    ]);
    let jp2 = d("wavelet.jp2");
    sh(&[
        "opj_compress",
        "-i",
        d("photo.ppm").to_str().unwrap(),
        "-o",
        jp2.to_str().unwrap(),
        "-n",
        "6",
    ]);
    vec![
        jpg,
        d("progressive.jpg"),
        d("crop.png"),
        d("gray.jpg"),
        d("alpha.png"),
        pyr,
        sub,
        jp2,
    ]
}

fn samples() -> Vec<PathBuf> {
    [
        "images/astronaut.png",
        "images/hubble_deep_field.jpg",
        "images/page.png",
        "tiff/kodim02-lzw.tif",
        "tiff/rgb-3c-16b.tiff",
        "tiff/minisblack-2c-8b-alpha.tiff",
        "tiff/palette-1c-8b.tiff",
        "tiff/tiled-jpeg-ycbcr.tif",
        "tiff/planar-rgb-u8.tif",
    ]
    .iter()
    .map(|r| testkit::data(r))
    .collect()
}

fn size_of(r: &Value) -> (u64, u64) {
    let s = &r["tile-enhance"];
    (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap())
}

#[test]
fn sizes_equal_vipsthumbnail_and_pyramids_are_used() {
    let Some(py) = testkit::python(&["PIL", "numpy"]) else {
        return;
    };
    let Some(()) = vipsthumbnail() else { return };
    let dir = testkit::tempdir();
    let mut inputs = generated(&py, dir.path());
    inputs.extend(samples());
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    for (size, fill) in [(256, false), (100, false), (37, false), (128, true)] {
        let out = dir.path().join(format!("o{size}{fill}"));
        let mut args = vec!["-s".to_string(), size.to_string()];
        args.extend(["--format".into(), "png".into()]);
        args.extend(["-o".into(), out.to_str().unwrap().into()]);
        if fill {
            args.push("--fill".into());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let recs = thumbs(&a, &refs, 0);
        for (input, r) in inputs.iter().zip(&recs) {
            assert_eq!(r["tile-enhance"]["status"], "ok", "{r}");
            let extra: &[&str] = if fill {
                &["--smartcrop", "centre"]
            } else {
                &[]
            };
            let src = &r["tile-enhance"]["source"];
            let (w, h) = (src[0].as_u64().unwrap(), src[1].as_u64().unwrap());
            let side = if fill { w.min(h) } else { w.max(h) };
            let want = if side <= u64::from(size) {
                // Never enlarged (vipsthumbnail enlarges by default, and its `N>`
                // form picks the wrong level of a page pyramid in libvips 8.14).
                (w.min(u64::from(size)), h.min(u64::from(size)))
            } else {
                vips_size(input, size, extra, dir.path())
            };
            assert_eq!(
                size_of(r),
                want,
                "{} -s {size} fill={fill}",
                input.display()
            );
            let name = input.file_name().unwrap().to_str().unwrap();
            let loaded = r["tile-enhance"]["loaded"].as_str().unwrap();
            if size == 37 {
                // 2401x1603 to 37: a factor of 65, so 1/8 in the DCT and the smallest
                // pyramid level at least 37 pixels long (libvips stops its pyramid at 75x50).
                match name {
                    // A baseline JPEG reduced by 2 after 1/8: read from its DC terms.
                    "photo.jpg" => assert_eq!(loaded, "jpeg 1/8 dc"),
                    "gray.jpg" => assert_eq!(loaded, "jpeg 1/8 dc"),
                    // Its DC scans only: the AC scans are stepped over.
                    "progressive.jpg" => assert_eq!(loaded, "jpeg 1/8 dc"),
                    "pyramid.tif" => assert_eq!(loaded, "tiff page 6"),
                    "subifd.tif" => assert_eq!(loaded, "tiff subifd 5"),
                    "wavelet.jp2" => assert_eq!(loaded, "jp2 reduce 5"),
                    _ => {}
                }
            }
        }
    }
}

/// Pillow's whole-image Lanczos reduction of the input to the thumbnail's size, compared
/// by scikit-image's SSIM (colour channels, 8-bit data range).
const SSIM: &str = r#"
import json, sys, numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
for thumb, src in zip(sys.argv[1::2], sys.argv[2::2]):
    t = Image.open(thumb)
    s = Image.open(src)
    if s.format == "TIFF" and s.tag_v2.get(284) == 2 and s.mode in ("LA", "La"):
        # Pillow reads a planar gray+alpha TIFF with alpha 0: take tifffile's pixels.
        import tifffile
        s = Image.fromarray(np.moveaxis(tifffile.imread(src), 0, -1), "LA")
    if s.mode in ("I;16", "I;16B", "I"):
        s = Image.fromarray((np.asarray(s).astype(np.float64) / 257).round().astype(np.uint8))
    if "A" in s.mode and "A" not in t.mode:
        # Alpha dropped from a JPEG after an alpha-weighted resize, as Pillow's RGBA
        # resize weights it.
        ref = s.convert("RGBA").resize(t.size, Image.LANCZOS).convert(t.mode)
    else:
        ref = s.convert(t.mode).resize(t.size, Image.LANCZOS)
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(t, dtype=np.float64)
    kw = {"channel_axis": -1} if got.ndim == 3 else {}
    print(json.dumps({"thumb": thumb, "ssim": structural_similarity(got, ref, data_range=255, **kw)}))
"#;

#[test]
fn pixels_match_a_whole_image_pillow_lanczos() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL", "numpy", "skimage", "tifffile"])
    else {
        return;
    };
    let mut inputs = generated(&py, dir.path());
    // Pillow does not read JPEG 2000 pyramids of OpenJPEG's making by default everywhere,
    // nor SubIFDs: compare those through their full-size twin (same pixels).
    inputs.retain(|p| !p.to_str().unwrap().ends_with(".jp2"));
    inputs.extend(samples());
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    for format in ["png", "jpeg"] {
        let out = dir.path().join(format!("s{format}"));
        let recs = thumbs(
            &[
                "-s",
                "200",
                "--format",
                format,
                "--quality",
                "95",
                "-o",
                out.to_str().unwrap(),
            ],
            &refs,
            0,
        );
        let mut args = Vec::new();
        for (input, r) in inputs.iter().zip(&recs) {
            args.push(r["tile-enhance"]["output"].as_str().unwrap().to_string());
            let name = input.file_name().unwrap().to_str().unwrap();
            // The pyramids hold photo.jpg's pixels (vips decoded it at full size).
            args.push(if name.contains("pyramid") || name.contains("subifd") {
                dir.path().join("photo.jpg").to_str().unwrap().to_string()
            } else {
                input.to_str().unwrap().to_string()
            });
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        for v in testkit::ndjson(testkit::run_python(&py, SSIM, &a).as_bytes()) {
            let s = v["ssim"].as_f64().unwrap();
            assert!(s >= 0.95, "{format}: {v}");
        }
    }
}

const ICC: &str = r#"
import sys, numpy as np
from PIL import Image, ImageCms
d = sys.argv[1]
icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
p = (np.arange(600 * 400 * 3) % 251).astype(np.uint8).reshape(400, 600, 3)
im = Image.fromarray(p)
im.save(f"{d}/icc_jpg.jpg", quality=90, icc_profile=icc)
im.save(f"{d}/icc_png.png", icc_profile=icc)
im.save(f"{d}/icc_tif.tif", icc_profile=icc)
open(f"{d}/icc.icc", "wb").write(icc)
"#;

const READ_ICC: &str = r#"
import json, sys
from PIL import Image
for f in sys.argv[1:]:
    im = Image.open(f)
    print(json.dumps({"format": im.format, "icc": (im.info.get("icc_profile") or b"").hex()}))
"#;

#[test]
fn icc_profiles_pass_through() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL", "numpy"]) else {
        return;
    };
    testkit::run_python(&py, ICC, &[dir.path().to_str().unwrap()]);
    let icc = std::fs::read(dir.path().join("icc.icc")).unwrap();
    let hex: String = icc.iter().map(|b| format!("{b:02x}")).collect();
    let inputs: Vec<PathBuf> = ["icc_jpg.jpg", "icc_png.png", "icc_tif.tif"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    // -s 20 reads the JPEG at 1/8 from its DC terms (jpeg_dc's own header parser).
    for (format, size) in [("jpeg", "50"), ("png", "50"), ("png", "20")] {
        let out = dir.path().join(format!("{format}{size}"));
        let recs = thumbs(
            &["-s", size, "--format", format, "-o", out.to_str().unwrap()],
            &refs,
            0,
        );
        if size == "20" {
            assert_eq!(recs[0]["tile-enhance"]["loaded"], "jpeg 1/8 dc", "{recs:?}");
        }
        let outs: Vec<String> = recs
            .iter()
            .map(|r| {
                assert_eq!(r["tile-enhance"]["icc"].as_u64(), Some(icc.len() as u64));
                r["tile-enhance"]["output"].as_str().unwrap().to_string()
            })
            .collect();
        let a: Vec<&str> = outs.iter().map(String::as_str).collect();
        for v in testkit::ndjson(testkit::run_python(&py, READ_ICC, &a).as_bytes()) {
            assert_eq!(v["format"], if format == "jpeg" { "JPEG" } else { "PNG" });
            assert_eq!(v["icc"], hex.as_str(), "{format}");
        }
    }
}

#[test]
fn corrupt_inputs_get_error_records_and_no_output() {
    let dir = testkit::tempdir();
    // A truncated and a garbled JPEG, made from a real one.
    let good = std::fs::read(testkit::data("images/hubble_deep_field.jpg")).unwrap();
    let trunc = dir.path().join("truncated.jpg");
    std::fs::write(&trunc, &good[..good.len() / 3]).unwrap();
    let mut garbled = good.clone();
    let n = garbled.len();
    for b in &mut garbled[n / 2..n / 2 + 4000] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let garb = dir.path().join("garbled.jpg");
    std::fs::write(&garb, &garbled).unwrap();
    let png = std::fs::read(testkit::data("images/astronaut.png")).unwrap();
    let tpng = dir.path().join("truncated_png.png");
    std::fs::write(&tpng, &png[..png.len() / 2]).unwrap();
    let mut inputs = vec![trunc, garb, tpng];
    for sub in [
        "tiff/fuzz/divide_by_zero",
        "tiff/fuzz/inf_loop",
        "tiff/fuzz/oom_crash",
    ] {
        for e in std::fs::read_dir(testkit::data(sub)).unwrap() {
            inputs.push(e.unwrap().path());
        }
    }
    inputs.push(testkit::data("fuzz/strip-convert/damaged-7bit.tif"));
    inputs.push(testkit::data("tiff/cmyk-4c-8b.tiff"));
    inputs.push(testkit::data("tiff/predictor-3-gray-f32.tif"));
    inputs.sort();
    let out = dir.path().join("out");
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let recs = thumbs(&["-s", "64", "-o", out.to_str().unwrap()], &refs, 1);
    for (input, r) in inputs.iter().zip(&recs) {
        let kind = r["error"]["kind"].as_str().unwrap_or("none");
        assert!(
            ["corrupt", "hostile", "unsupported"].contains(&kind),
            "{}: {r}",
            input.display()
        );
    }
    let written = walk(&out);
    assert!(written.is_empty(), "outputs of failed inputs: {written:?}");
    // The damage is named: libjpeg's own words, not a grey image.
    assert!(
        recs.iter().any(|r| r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Premature end")),
        "{recs:?}"
    );
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(d) else {
        return Vec::new();
    };
    rd.flat_map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p)
        } else {
            vec![p]
        }
    })
    .collect()
}

#[test]
fn fill_crops_a_centred_square_and_existing_outputs_are_skipped() {
    let dir = testkit::tempdir();
    let src = testkit::data("images/page.png");
    let out = dir.path().join("o");
    let args = ["-s", "90", "--fill", "-o", out.to_str().unwrap()];
    let r = thumbs(&args, &[&src], 0);
    assert_eq!(size_of(&r[0]), (90, 90));
    let r = thumbs(&args, &[&src], 0);
    assert_eq!(r[0]["tile-enhance"]["status"], "skipped");
    let (code, _) = run(&["thumbnail", "--fit", "--fill", src.to_str().unwrap()]);
    assert_eq!(code, Some(2), "--fit and --fill conflict");
}
