//! `tile-enhance enhance` end to end, checked against code no one here wrote: Pillow
//! (the default chain's script, ImageOps.autocontrast, Lanczos resize), scipy.ndimage
//! (Gaussian, unsharp built on it, median), tifffile (reading outputs back).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `tile-enhance enhance ARGS`: records and exit code.
fn enhance(args: &[&str]) -> (Vec<Value>, i32) {
    let ran = testkit::tool("tile-enhance")
        .arg("enhance")
        .args(args)
        .run();
    (ran.records(), ran.code())
}

fn section(r: &Value) -> &Value {
    &r["tile-enhance"]
}

fn output_of(r: &Value) -> PathBuf {
    PathBuf::from(section(r)["output"].as_str().expect("output"))
}

fn script() -> PathBuf {
    testkit::workspace_root().join("tools/tile-enhance/scripts/pillow_chain.py")
}

/// Generated inputs (seeded, photo-like gradients and noise), odd sizes, every layout.
const GEN: &str = r#"
import sys, numpy as np, tifffile
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
def img(h, w, c, hi):
    y, x = np.mgrid[0:h, 0:w]
    chans = [((x * (0.6 + 0.2 * k) + y * (0.3 + 0.1 * k)) % (hi * 0.7)) + hi * 0.1 for k in range(c)]
    a = np.stack(chans, -1) + rng.normal(0, hi * 0.04, (h, w, c))
    return np.clip(a, 0, hi)
icc = bytes(range(256)) * 3
tifffile.imwrite(f'{d}/rgb8.tif', img(301, 257, 3, 255).astype(np.uint8))
tifffile.imwrite(f'{d}/gray8.tif', img(131, 97, 1, 255)[..., 0].astype(np.uint8))
tifffile.imwrite(f'{d}/rgba8.tif', img(67, 83, 4, 255).astype(np.uint8), extrasamples=[2])
tifffile.imwrite(f'{d}/gray16.tif', img(71, 59, 1, 65535)[..., 0].astype(np.uint16))
tifffile.imwrite(f'{d}/rgb16.tif', img(53, 61, 3, 65535).astype(np.uint16))
tifffile.imwrite(f'{d}/la8.tif', img(45, 37, 2, 255).astype(np.uint8), photometric='minisblack',
                 extrasamples=[2], resolution=(300, 300), resolutionunit='INCH', iccprofile=icc)
tifffile.imwrite(f'{d}/uniform.tif', np.full((20, 30, 3), 77, np.uint8))
full = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
tifffile.imwrite(f'{d}/full.tif', full)
Image.fromarray(img(40, 50, 4, 255).astype(np.uint8), 'RGBA').save(f'{d}/rgba.png', icc_profile=icc, dpi=(150, 150))
"#;

fn generate(py: &Path, dir: &Path) {
    testkit::run_python(py, GEN, &[dir.to_str().unwrap()]);
}

/// Max and mean absolute difference between two images as numpy reads them.
const DIFF: &str = r#"
import sys, numpy as np, tifffile
from PIL import Image
def load(p):
    if p.endswith('.tif') or p.endswith('.tiff'):
        return tifffile.imread(p)
    return np.asarray(Image.open(p))
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.shape == b.shape, (a.shape, b.shape)
assert a.dtype == b.dtype, (a.dtype, b.dtype)
d = np.abs(a.astype(np.int64) - b.astype(np.int64))
print(int(d.max()), float(d.mean()))
"#;

fn diff(py: &Path, a: &Path, b: &Path) -> (i64, f64) {
    let out = testkit::run_python(py, DIFF, &[a.to_str().unwrap(), b.to_str().unwrap()]);
    let mut it = out.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

#[test]
fn default_chain_and_each_point_step_match_pillow() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL"]) else {
        return;
    };
    generate(&py, dir.path());
    let inputs = [
        dir.path().join("rgb8.tif"),
        dir.path().join("gray8.tif"),
        testkit::data("images/astronaut.png"),
        testkit::data("tiff/kodim02-lzw.tif"),
    ];
    // (our flags, the script's steps)
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["--curve"], &["curve"]),
        (&["--gamma", "0.9"], &["gamma=0.9"]),
        (&["--brightness", "1.2"], &["brightness=1.2"]),
        (&["--contrast", "1.3"], &["contrast=1.3"]),
        (&["--autocontrast", "2"], &["autocontrast=2"]),
        (&["--autocontrast", "0"], &["autocontrast=0"]),
        (&["--levels", "20,230,1.2"], &["levels=20,230,1.2"]),
        // Order matters: contrast after autocontrast needs its own statistics pass.
        (
            &["--autocontrast", "0.5", "--contrast", "0.7", "--curve"],
            &["autocontrast=0.5", "contrast=0.7", "curve"],
        ),
    ];
    for (k, (flags, steps)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out{k}"));
        let ref_dir = dir.path().join(format!("ref{k}"));
        std::fs::create_dir_all(&ref_dir).unwrap();
        for input in &inputs {
            let mut args = vec!["-o", out.to_str().unwrap(), input.to_str().unwrap()];
            args.extend_from_slice(flags);
            let (records, code) = enhance(&args);
            assert_eq!(code, 0, "{records:?}");
            assert_eq!(section(&records[0])["status"], "ok", "{:?}", records[0]);
            let ours = output_of(&records[0]);
            let theirs = ref_dir.join(ours.file_name().unwrap());
            let mut sargs = vec![
                script().to_str().unwrap().to_string(),
                input.to_str().unwrap().to_string(),
                theirs.to_str().unwrap().to_string(),
            ];
            sargs.extend(steps.iter().map(|s| s.to_string()));
            let st = Command::new(&py).args(&sargs).status().unwrap();
            assert!(st.success());
            let (max, _) = diff(&py, &ours, &theirs);
            assert!(
                max <= 1,
                "{flags:?} on {}: max error {max} against Pillow",
                input.display()
            );
        }
    }
}

#[test]
fn default_chain_uses_one_statistics_pass() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL"]) else {
        return;
    };
    generate(&py, dir.path());
    let out = dir.path().join("o");
    let (r, code) = enhance(&[
        "-o",
        out.to_str().unwrap(),
        dir.path().join("rgb8.tif").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(section(&r[0])["passes"], 2, "{:?}", r[0]);
    assert!(section(&r[0])["statistics"][0]["gray_mean"].is_u64());
}

#[test]
fn tiled_equals_untiled_bit_for_bit() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL"]) else {
        return;
    };
    generate(&py, dir.path());
    let inputs = [
        "gray8.tif",
        "rgb8.tif",
        "rgba8.tif",
        "gray16.tif",
        "rgb16.tif",
        "la8.tif",
        "rgba.png",
    ];
    let ops: &[&[&str]] = &[
        &[],
        &["--blur", "1.7"],
        &["--blur", "1.1", "--edge", "mirror"],
        &["--unsharp", "1.2,1.5,2"],
        &["--median", "2"],
        &["--resize", "37%"],
        &["--resize", "160%"],
        &["--resize", "50x40", "--fill"],
        &["--max-pixels", "900"],
        // Statistics gathered after neighbourhood steps.
        &[
            "--blur",
            "1",
            "--contrast",
            "1.3",
            "--autocontrast",
            "1",
            "--resize",
            "61%",
            "--unsharp",
            "0.8,1,0",
        ],
    ];
    for input in inputs {
        let src = dir.path().join(input);
        for (k, op) in ops.iter().enumerate() {
            let mut outs = Vec::new();
            for band in ["1", "3", "100000"] {
                let out = dir.path().join(format!("t{k}-{band}"));
                let mut args = vec![
                    "-o",
                    out.to_str().unwrap(),
                    "--band-rows",
                    band,
                    src.to_str().unwrap(),
                ];
                args.extend_from_slice(op);
                let (r, code) = enhance(&args);
                assert_eq!(code, 0, "{input} {op:?}: {r:?}");
                outs.push(std::fs::read(output_of(&r[0])).unwrap());
            }
            assert!(
                outs[0] == outs[2] && outs[1] == outs[2],
                "{input} {op:?}: bands of 1 or 3 rows differ from the whole image"
            );
        }
    }
}

/// Zstd and tiled TIFF outputs hold the same pixels as the striped Deflate output, read
/// back by tifffile (imagecodecs' libzstd), with libtiff's tags, whatever the band height.
#[test]
fn zstd_and_tiled_outputs_hold_the_same_pixels() {
    let Some(py) = testkit::python(&["numpy", "tifffile", "PIL", "imagecodecs"]) else {
        return;
    };
    let dir = testkit::tempdir();
    generate(&py, dir.path());
    for input in ["rgb8.tif", "gray16.tif", "la8.tif"] {
        let src = dir.path().join(input);
        let run = |name: &str, extra: &[&str]| -> PathBuf {
            let out = dir.path().join(name);
            let mut args = vec!["-o", out.to_str().unwrap(), src.to_str().unwrap()];
            args.extend_from_slice(&["--unsharp", "1,1", "--band-rows"]);
            args.extend_from_slice(extra);
            let (r, code) = enhance(&args);
            assert_eq!(code, 0, "{input} {extra:?}: {r:?}");
            output_of(&r[0])
        };
        let base = run("deflate", &["7", "--compression", "deflate"]);
        for (k, extra) in [
            &["1", "--compression", "zstd"][..],
            &["5", "--compression", "zstd", "--tile", "32x16"],
            &["100000", "--compression", "lzw", "--tile", "16x48"],
            &["3", "--compression", "none", "--tile", "256x256"],
        ]
        .iter()
        .enumerate()
        {
            let out = run(&format!("o{k}"), extra);
            assert_eq!(diff(&py, &base, &out), (0, 0.0), "{input} {extra:?}");
            let tags = testkit::run_python(
                &py,
                "import sys, tifffile\n\
                 p = tifffile.TiffFile(sys.argv[1]).pages[0]\n\
                 print(int(p.compression), int(p.predictor), p.tilewidth, p.tilelength)",
                &[out.to_str().unwrap()],
            );
            let tile = extra
                .iter()
                .position(|a| *a == "--tile")
                .map(|i| extra[i + 1].replace('x', " "))
                .unwrap_or_else(|| "0 0".into());
            let (code, pred) = match extra[2] {
                "zstd" => (50000, 2),
                "lzw" => (5, 2),
                _ => (1, 1),
            };
            assert_eq!(
                tags.trim(),
                format!("{code} {pred} {tile}"),
                "{input} {extra:?}"
            );
        }
    }
}

/// The same operations in scipy.ndimage and Pillow, whole image.
const REFERENCE: &str = r#"
import sys, numpy as np, tifffile
from scipy import ndimage
from PIL import Image
op, src, ours = sys.argv[1], sys.argv[2], sys.argv[3]
a = tifffile.imread(src)
o = tifffile.imread(ours)
hi = 65535 if a.dtype == np.uint16 else 255
f = a.astype(np.float64)
colour = 3 if a.ndim == 3 and a.shape[2] >= 3 else 1
def per(fn):
    if a.ndim == 2:
        return fn(f)
    out = f.copy()
    for c in range(colour):
        out[..., c] = fn(f[..., c])
    return out
def rnd(x):
    return np.clip(np.floor(x + 0.5), 0, hi)
if op.startswith('blur'):
    _, s, mode = op.split(':')
    r = rnd(per(lambda p: ndimage.gaussian_filter(p, float(s), mode=mode)))
elif op.startswith('unsharp'):
    _, s, amt, t = op.split(':')
    def us(p):
        d = p - ndimage.gaussian_filter(p, float(s), mode='nearest')
        return np.where(np.abs(d) >= float(t), p + float(amt) * d, p)
    r = rnd(per(us))
elif op.startswith('median'):
    _, rad, mode = op.split(':')
    k = 2 * int(rad) + 1
    r = per(lambda p: ndimage.median_filter(p.astype(a.dtype), size=k, mode=mode).astype(np.float64))
elif op.startswith('resize'):
    im = Image.open(src)
    r = np.asarray(im.resize((o.shape[1], o.shape[0]), Image.LANCZOS)).astype(np.float64)
d = np.abs(o.astype(np.float64) - r)
print(int(d.max()), float(d.mean()))
"#;

#[test]
fn filters_match_scipy_and_resize_matches_pillow() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL", "scipy"])
    else {
        return;
    };
    generate(&py, dir.path());
    // (input, our flags, reference op, max error allowed, mean error allowed)
    let cases: &[(&str, &[&str], &str, i64, f64)] = &[
        ("rgb8.tif", &["--blur", "2"], "blur:2:nearest", 1, 0.5),
        (
            "rgb8.tif",
            &["--blur", "1.3", "--edge", "mirror"],
            "blur:1.3:mirror",
            1,
            0.5,
        ),
        ("gray16.tif", &["--blur", "1.5"], "blur:1.5:nearest", 1, 0.5),
        ("rgba8.tif", &["--blur", "0.8"], "blur:0.8:nearest", 1, 0.5),
        (
            "rgb8.tif",
            &["--unsharp", "1.5,1.2,3"],
            "unsharp:1.5:1.2:3",
            1,
            0.5,
        ),
        (
            "rgb16.tif",
            &["--unsharp", "2,0.5,0"],
            "unsharp:2:0.5:0",
            1,
            0.5,
        ),
        ("rgb8.tif", &["--median", "2"], "median:2:nearest", 0, 0.0),
        (
            "gray16.tif",
            &["--median", "1", "--edge", "mirror"],
            "median:1:mirror",
            0,
            0.0,
        ),
        ("rgba8.tif", &["--median", "3"], "median:3:nearest", 0, 0.0),
        ("rgb8.tif", &["--resize", "37%"], "resize", 255, 1.0),
        ("rgb8.tif", &["--resize", "150%"], "resize", 255, 1.0),
        ("gray8.tif", &["--resize", "40x40"], "resize", 255, 1.0),
    ];
    for (k, (input, flags, op, max_err, mean_err)) in cases.iter().enumerate() {
        let src = dir.path().join(input);
        let out = dir.path().join(format!("f{k}"));
        let mut args = vec!["-o", out.to_str().unwrap(), src.to_str().unwrap()];
        args.extend_from_slice(flags);
        let (r, code) = enhance(&args);
        assert_eq!(code, 0, "{r:?}");
        let ours = output_of(&r[0]);
        let res = testkit::run_python(
            &py,
            REFERENCE,
            &[op, src.to_str().unwrap(), ours.to_str().unwrap()],
        );
        let mut it = res.split_whitespace();
        let max: i64 = it.next().unwrap().parse().unwrap();
        let mean: f64 = it.next().unwrap().parse().unwrap();
        assert!(
            max <= *max_err && mean <= *mean_err,
            "{input} {flags:?}: max {max}, mean {mean} against {op}"
        );
    }
}

#[test]
fn metadata_depth_and_alpha_survive() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL", "imagecodecs"])
    else {
        return;
    };
    generate(&py, dir.path());
    let d = dir.path();
    let o = d.join("m");
    let o = o.to_str().unwrap();
    let run = |args: &[&str]| {
        let (r, code) = enhance(args);
        assert_eq!(code, 0, "{r:?}");
        output_of(&r[0])
    };
    let la = run(&["-o", o, d.join("la8.tif").to_str().unwrap(), "--curve"]);
    let la_png = run(&[
        "-o",
        &format!("{o}/png"),
        "--format",
        "png",
        d.join("la8.tif").to_str().unwrap(),
        "--curve",
    ]);
    let png = run(&["-o", o, d.join("rgba.png").to_str().unwrap(), "--blur", "1"]);
    let g16 = run(&["-o", o, d.join("rgb16.tif").to_str().unwrap()]);
    let lzw = run(&[
        "-o",
        &format!("{o}/lzw"),
        "--compression",
        "lzw",
        d.join("rgb16.tif").to_str().unwrap(),
    ]);
    let defl = run(&[
        "-o",
        &format!("{o}/deflate"),
        "--compression",
        "deflate",
        d.join("rgb8.tif").to_str().unwrap(),
        "--blur",
        "1",
    ]);
    let none = run(&[
        "-o",
        &format!("{o}/none"),
        "--compression",
        "none",
        d.join("rgb8.tif").to_str().unwrap(),
        "--blur",
        "1",
    ]);
    let check = r#"
import sys, numpy as np, tifffile
from PIL import Image
d, la, la_png, png, g16, lzw, defl, none = sys.argv[1:]
icc = bytes(range(256)) * 3
src = tifffile.imread(f'{d}/la8.tif')
with tifffile.TiffFile(la) as t:
    p = t.pages[0]
    a = p.asarray()
    assert p.tags['InterColorProfile'].value == icc
    x = p.tags['XResolution'].value; u = p.tags['ResolutionUnit'].value
    dpi = x[0] / x[1] * (2.54 if u == 3 else 1)
    assert abs(dpi - 300) < 0.01, (x, u)
    assert p.tags['ExtraSamples'].value in (2, (2,)), p.tags['ExtraSamples'].value
    assert a.shape == src.shape and a.dtype == np.uint8
    assert (a[..., 1] == src[..., 1]).all(), 'alpha changed'
im = Image.open(la_png)
assert im.mode == 'LA', im.mode
assert im.info.get('icc_profile') == icc
assert abs(im.info['dpi'][0] - 300) < 0.5, im.info.get('dpi')
assert (np.asarray(im) == a).all()
im = Image.open(png)
s = Image.open(f'{d}/rgba.png')
assert im.mode == 'RGBA' and im.info.get('icc_profile') == icc
assert abs(im.info['dpi'][0] - 150) < 0.5
assert (np.asarray(im)[..., 3] == np.asarray(s)[..., 3]).all(), 'alpha changed'
a = tifffile.imread(g16)
assert a.dtype == np.uint16 and a.max() > 255
assert (tifffile.imread(lzw) == a).all()
assert (tifffile.imread(defl) == tifffile.imread(none)).all()
print('ok')
"#;
    let args: Vec<String> = std::iter::once(d.to_path_buf())
        .chain([la, la_png, png, g16, lzw, defl, none])
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(testkit::run_python(&py, check, &args).trim(), "ok");
}

#[test]
fn uniform_and_full_range_images() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL"]) else {
        return;
    };
    generate(&py, dir.path());
    let o = dir.path().join("u");
    for (input, flags) in [
        ("uniform.tif", vec!["--autocontrast", "1"]),
        ("full.tif", vec!["--autocontrast", "0"]),
        ("full.tif", vec!["--levels", "0,255"]),
    ] {
        let src = dir.path().join(input);
        let mut args = vec!["-o", o.to_str().unwrap(), "-f", src.to_str().unwrap()];
        args.extend(flags.iter().copied());
        let (r, code) = enhance(&args);
        assert_eq!(code, 0, "{r:?}");
        assert_eq!(
            diff(&py, &src, &output_of(&r[0])).0,
            0,
            "{input} {flags:?} changed the image"
        );
    }
}

#[test]
fn corrupt_and_unsupported_inputs_get_error_records_and_no_output() {
    let dir = testkit::tempdir();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(testkit::data("tiff/fuzz"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    for f in [
        "tiff/cmyk-4c-8b.tiff",
        "tiff/predictor-3-gray-f32.tif",
        "tiff/12bit.cropped.tiff",
        "tiff/int16_zstd.tif",
    ] {
        inputs.push(testkit::data(f));
    }
    let mut args = vec!["-o".to_string(), dir.path().to_string_lossy().into_owned()];
    args.extend(inputs.iter().map(|p| p.to_string_lossy().into_owned()));
    args.push(
        testkit::data("tiff/rgb-3c-8b.tiff")
            .to_string_lossy()
            .into_owned(),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, code) = enhance(&args);
    assert_eq!(code, 1, "{records:#?}");
    assert_eq!(records.len(), inputs.len() + 1);
    for r in &records[..inputs.len()] {
        assert!(r["error"]["kind"].is_string(), "not an error record: {r}");
    }
    assert_eq!(section(&records[inputs.len()])["status"], "ok");
    // Only the good input's output exists.
    let written: Vec<_> = walk(dir.path());
    assert_eq!(written.len(), 1, "{written:?}");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[test]
fn planned_through_real_pipes() {
    let dir = testkit::tempdir();
    let bins = testkit::bin("mem-estimate").parent().unwrap().to_path_buf();
    testkit::bin("chunk-plan");
    testkit::bin("tile-enhance");
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r = testkit::cmd("bash")
        .arg("-c")
        .arg(
            r#"set -o pipefail; mem-estimate "$IN" | chunk-plan --for tile-enhance -m 64MiB | tile-enhance enhance -o "$OUT""#,
        )
        .env("PATH", path)
        .env("IN", testkit::data("tiff/kodim02-lzw.tif"))
        .env("OUT", dir.path())
        .ok()
        .records();
    assert_eq!(r.len(), 1);
    assert_eq!(section(&r[0])["status"], "ok", "{:?}", r[0]);
    assert_eq!(section(&r[0])["budget_bytes"], 64u64 << 20);
    assert!(r[0]["plan"]["tile-enhance"].is_object() || r[0]["plan"].is_object());
    assert!(output_of(&r[0]).exists());
}

/// JPEG output, read back by Pillow (its own libjpeg): within JPEG's loss of the TIFF
/// output of the same steps (PSNR at least 40 dB at quality 95), byte for byte the same
/// whatever the band height, ICC profile and density carried from TIFF and JPEG inputs;
/// a JPEG input is the default for JPEG output and decodes as Pillow decodes it; 16-bit
/// and alpha inputs are refused with an error record and no output.
#[test]
fn jpeg_output_matches_the_tiff_output_and_carries_icc_and_density() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "PIL"]) else {
        return;
    };
    generate(&py, dir.path());
    let d = dir.path();
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
from PIL import Image
d, photo = sys.argv[1:]
icc = bytes(range(256)) * 3
# A photograph at odd sizes (generated noise is what JPEG keeps worst).
p = Image.open(photo).convert('RGB')
a = np.asarray(p)[100:401, 50:307]
tifffile.imwrite(f'{d}/rgbicc.tif', a, resolution=(300, 300), resolutionunit='INCH',
                 iccprofile=icc)
tifffile.imwrite(f'{d}/grayphoto.tif', np.asarray(p.convert('L'))[:131, :97])
Image.fromarray(a).save(f'{d}/in.jpg', quality=92, icc_profile=icc, dpi=(300, 300))
# What Pillow decodes, as a TIFF: the JPEG input's steps must match this one's.
tifffile.imwrite(f'{d}/decoded.tif', np.asarray(Image.open(f'{d}/in.jpg')))
Image.fromarray(tifffile.imread(f'{d}/gray8.tif')).save(f'{d}/gray.jpg', quality=90,
                                                        dpi=(72, 72))
"#,
        &[
            d.to_str().unwrap(),
            testkit::data("images/astronaut.png").to_str().unwrap(),
        ],
    );
    let psnr = r#"
import sys, numpy as np, tifffile
from PIL import Image
j, t, icc_want, dpi_want = sys.argv[1:]
im = Image.open(j)
assert im.format == 'JPEG', im.format
a = np.asarray(im).astype(np.float64)
b = tifffile.imread(t).astype(np.float64)
assert a.shape == b.shape, (a.shape, b.shape)
mse = ((a - b) ** 2).mean()
icc = im.info.get('icc_profile')
assert icc == (bytes(range(256)) * 3 if icc_want == '1' else None), icc and len(icc)
assert dpi_want == '-' or tuple(im.info['dpi']) == (int(dpi_want),) * 2, im.info.get('dpi')
# Pillow's own encoding of the TIFF at the same quality, chroma at full resolution.
import io
f = io.BytesIO()
Image.fromarray(tifffile.imread(t)).save(f, 'JPEG', quality=95, subsampling=0)
c = np.asarray(Image.open(f)).astype(np.float64)
db = lambda e: 10 * np.log10(255 ** 2 / max(e, 1e-12))
print(db(mse), db(((c - b) ** 2).mean()))
"#;
    let run = |args: &[&str]| -> PathBuf {
        let (r, code) = enhance(args);
        assert_eq!(code, 0, "{r:?}");
        assert_eq!(section(&r[0])["status"], "ok", "{:?}", r[0]);
        output_of(&r[0])
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // (steps, PSNR floor): the default chain's contrast stretch and unsharp's sharpening
    // leave more texture for JPEG to lose (Pillow's own q95 of them: 39.2 and 37.1 dB
    // on the photograph); the smoothing steps keep it above 40 dB.
    let ops: &[(&[&str], f64)] = &[
        (&[], 38.5),
        (&["--blur", "1.7"], 40.0),
        (&["--unsharp", "1.2,1.5,2"], 36.5),
        (&["--resize", "61%", "--median", "1"], 40.0),
    ];
    for (input, icc, dpi) in [("rgbicc.tif", "1", "300"), ("grayphoto.tif", "0", "-")] {
        let src = s(&d.join(input));
        for (k, &(op, floor)) in ops.iter().enumerate() {
            let o = |tag: &str| s(&d.join(format!("j{k}-{tag}")));
            fn with<'a>(mut a: Vec<&'a str>, op: &[&'a str]) -> Vec<&'a str> {
                a.extend_from_slice(op);
                a
            }
            let tif = run(&with(vec!["-o", &o("t"), &src], op));
            let mut jpegs = Vec::new();
            for band in ["1", "7", "100000"] {
                let j = run(&with(
                    vec![
                        "-o",
                        &o(band),
                        "--format",
                        "jpeg",
                        "--quality",
                        "95",
                        "--band-rows",
                        band,
                        &src,
                    ],
                    op,
                ));
                assert_eq!(j.extension().unwrap(), "jpg");
                jpegs.push(std::fs::read(&j).unwrap());
                if band == "1" {
                    let out = testkit::run_python(&py, psnr, &[&s(&j), &s(&tif), icc, dpi]);
                    let v: Vec<f64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
                    let (db, pillow) = (v[0], v[1]);
                    assert!(
                        db >= floor && db >= pillow - 0.1,
                        "{input} {op:?}: PSNR {db} dB against the TIFF, Pillow's {pillow}"
                    );
                }
            }
            assert!(
                jpegs[0] == jpegs[2] && jpegs[1] == jpegs[2],
                "{input} {op:?}: bands of 1 or 7 rows give another JPEG than one band"
            );
        }
    }
    // A JPEG input: JPEG out by default, ICC and density carried, and the steps on what
    // libjpeg-turbo decodes equal (within a level) the steps on Pillow's decoding.
    let j = run(&[
        "-o",
        &s(&d.join("ji")),
        &s(&d.join("in.jpg")),
        "--blur",
        "1.5",
    ]);
    assert_eq!(j.extension().unwrap(), "jpg");
    let t = run(&[
        "-o",
        &s(&d.join("ji")),
        "--format",
        "tiff",
        &s(&d.join("in.jpg")),
        "--blur",
        "1.5",
    ]);
    let t2 = run(&[
        "-o",
        &s(&d.join("jd")),
        &s(&d.join("decoded.tif")),
        "--blur",
        "1.5",
    ]);
    let (max, _) = diff(&py, &t, &t2);
    assert!(
        max <= 1,
        "JPEG input decoded otherwise than by Pillow: {max}"
    );
    let out = testkit::run_python(&py, psnr, &[&s(&j), &s(&t), "1", "300"]);
    let db: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(db >= 40.0, "{out}");
    let g = run(&["-o", &s(&d.join("ji")), &s(&d.join("gray.jpg")), "--curve"]);
    let out = testkit::run_python(
        &py,
        "import sys\nfrom PIL import Image\nim = Image.open(sys.argv[1])\n\
         print(im.format, im.mode, im.size, im.info['dpi'])",
        &[&s(&g)],
    );
    assert_eq!(out.trim(), "JPEG L (97, 131) (72, 72)");
    // What JPEG cannot hold: an error record naming it, no output.
    let o = d.join("bad");
    for (input, what) in [
        ("rgb16.tif", "16-bit"),
        ("rgba8.tif", "alpha"),
        ("rgba.png", "alpha"),
    ] {
        let (r, code) = enhance(&[
            "-o",
            &s(&o),
            "--format",
            "jpeg",
            &s(&d.join(input)),
            "--blur",
            "1",
        ]);
        assert_eq!(code, 1, "{r:?}");
        assert_eq!(r[0]["error"]["kind"], "unsupported", "{:?}", r[0]);
        let msg = r[0]["error"]["message"].as_str().unwrap();
        assert!(msg.contains("JPEG") && msg.contains(what), "{msg}");
    }
    assert!(!o.exists() || walk(&o).is_empty(), "{:?}", walk(&o));
}
