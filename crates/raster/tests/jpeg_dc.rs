//! `jpeg_dc` (the 1/8 decode from DC terms) against libjpeg-turbo's own 1/8 decode, read
//! through Pillow (`Image.draft`, the reduced inverse DCT), on JPEGs written by Pillow,
//! by libjpeg-turbo's `cjpeg` (sampling factors Pillow cannot write, restart intervals,
//! arithmetic coding), by libvips, and the shared sample: the coded luma must equal
//! libjpeg's to the bit, as must every component that is not subsampled and the RGB of
//! images without subsampled chroma; subsampled chroma (libjpeg upsamples or runs a 2x2
//! inverse DCT where this reader takes the block's DC) must agree on average. Files this
//! reader leaves to libjpeg must be recognised as such, and damaged data must be an error.

use raster::jpeg_dc::DcRows;
use raster::{Band, RowSource};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes the inputs and prints one JSON line each: file name, and whether `DcRows`
/// should decode it (`dc`).
const GENERATE: &str = r#"
import json, subprocess, sys
import numpy as np
from PIL import Image, ImageFile
# Pillow's optimised-table writer needs the whole output in one buffer.
ImageFile.MAXBLOCK = 1 << 24
d = sys.argv[1]
rng = np.random.default_rng(11)
def photo(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.stack([128 + 110 * np.sin(x / 13.0) * np.cos(y / 17.0),
                  128 + 120 * np.sin((x + 2 * y) / 9.0),
                  128 + 100 * np.cos(np.hypot(x - w / 3, y - h / 2) / 7.0)], -1)
    a += rng.normal(0, 20, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)
out = []
def add(name, dc):
    out.append({"name": name, "dc": dc})
p = photo(517, 389)
for sub in (0, 1, 2):
    for q in (5, 75, 100):
        n = f"pil_s{sub}_q{q}.jpg"
        Image.fromarray(p).save(f"{d}/{n}", quality=q, subsampling=sub)
        add(n, True)
    n = f"pil_s{sub}_opt.jpg"
    Image.fromarray(p).save(f"{d}/{n}", quality=93, subsampling=sub, optimize=True)
    add(n, True)
    n = f"pil_s{sub}_rst.jpg"
    Image.fromarray(p).save(f"{d}/{n}", quality=90, subsampling=sub, restart_marker_blocks=3)
    add(n, True)
Image.fromarray(p[:, :, 1]).save(f"{d}/pil_gray.jpg", quality=85)
add("pil_gray.jpg", True)
Image.fromarray(p[:, :, 1]).save(f"{d}/pil_gray_rst.jpg", quality=85, restart_marker_rows=1)
add("pil_gray_rst.jpg", True)
for w, h in ((8, 8), (9, 17), (16, 16), (33, 9), (15, 8)):
    n = f"pil_{w}x{h}.jpg"
    Image.fromarray(p[:h, :w]).save(f"{d}/{n}", quality=90, subsampling=2)
    add(n, True)
Image.fromarray(p).save(f"{d}/pil_progressive.jpg", quality=90, progressive=True)
add("pil_progressive.jpg", True)
Image.fromarray(p).save(f"{d}/pil_progressive_opt.jpg", quality=75, progressive=True, optimize=True, subsampling=0)
add("pil_progressive_opt.jpg", True)
Image.fromarray(p).convert("CMYK").save(f"{d}/pil_cmyk.jpg", quality=90)
add("pil_cmyk.jpg", False)
# An ICC profile in three APP2 chunks (Pillow splits at 65519 bytes) and a density.
icc = rng.integers(0, 256, 150000, dtype=np.uint8).tobytes()
open(f"{d}/icc.bin", "wb").write(icc)
Image.fromarray(p).save(f"{d}/pil_icc.jpg", quality=90, icc_profile=icc, dpi=(300, 150))
add("pil_icc.jpg", True)
if sys.argv[2:] == ["pillow"]:
    sys.exit()
Image.fromarray(p).save(f"{d}/src.ppm")
Image.fromarray(p[:, :, 0]).save(f"{d}/src.pgm")
def cjpeg(name, args, dc, src="src.ppm"):
    subprocess.run(["cjpeg", *args, "-outfile", f"{d}/{name}", f"{d}/{src}"], check=True)
    add(name, dc)
cjpeg("cj_411.jpg", ["-sample", "4x1"], True)
cjpeg("cj_440.jpg", ["-sample", "1x2"], True)
cjpeg("cj_422_opt.jpg", ["-sample", "2x1", "-optimize", "-quality", "97"], True)
cjpeg("cj_odd.jpg", ["-sample", "2x2,1x2,2x1"], True)
cjpeg("cj_rst_rows.jpg", ["-restart", "1", "-quality", "60"], True)
cjpeg("cj_rst_blocks.jpg", ["-restart", "7B", "-sample", "1x1"], True)
cjpeg("cj_gray_2x2.jpg", ["-sample", "2x2", "-restart", "2B"], True, "src.pgm")
cjpeg("cj_arith.jpg", ["-arithmetic"], False)
cjpeg("cj_arith_prog.jpg", ["-arithmetic", "-progressive"], False)
cjpeg("cj_rgb.jpg", ["-rgb"], False)
cjpeg("cj_prog444.jpg", ["-progressive", "-sample", "1x1"], True)
cjpeg("cj_prog_rst.jpg", ["-progressive", "-restart", "3B", "-quality", "95"], True)
cjpeg("cj_prog_gray.jpg", ["-progressive", "-restart", "1"], True, "src.pgm")
# DC first scans one component at a time (then every block of that component in
# turn), the DC refinement bit interleaved at the end, after the AC scans.
open(f"{d}/scans.txt", "w").write("""
0: 0-0, 0, 1; 1: 0-0, 0, 1; 2: 0-0, 0, 1;
0: 1-5, 0, 2; 2: 1-63, 0, 1; 1: 1-63, 0, 1; 0: 6-63, 0, 2; 0: 1-63, 2, 1;
0,1,2: 0-0, 1, 0;
0: 1-63, 1, 0; 1: 1-63, 1, 0; 2: 1-63, 1, 0;
""")
cjpeg("cj_prog_script.jpg", ["-scans", f"{d}/scans.txt", "-sample", "2x1,1x1,1x1"], True)
# Edge cases where libjpeg's arithmetic or parsing must be followed exactly:
def patched(src, name, edit):
    b = bytearray(open(f"{d}/{src}", "rb").read())
    open(f"{d}/{name}", "wb").write(edit(b))
    add(name, True)
# a DC step large enough that values leave libjpeg's range-limit table (it wraps there);
def big_step(b):
    i = b.find(b"\xff\xdb")
    b[i + 5] = 24
    return b
patched("cj_gray_2x2.jpg", "edge_dc_wrap.jpg", big_step)
# a restart marker left between two progressive scans (libjpeg skips it);
def rst_between(b):
    i = b.find(b"\xff\xda", b.find(b"\xff\xda") + 2)
    return b[:i] + b"\xff\xd7" + b[i:]
patched("cj_prog_rst.jpg", "edge_rst_between_scans.jpg", rst_between)
# a fill byte before a stuffed 0xFF (0xFF 0xFF 0x00 is one 0xFF data byte to libjpeg);
def fill_before_stuffed(b):
    i = b.find(b"\xff\x00", b.find(b"\xff\xda") + 2)
    return b[:i] + b"\xff" + b[i:]
patched("pil_s0_q100.jpg", "edge_fill_stuffed.jpg", fill_before_stuffed)
# a progressive file whose chroma scans are gone (libjpeg decodes grey chroma).
open(f"{d}/scans1.txt", "w").write("0: 0-0, 0, 1; 1: 0-0, 0, 1; 2: 0-0, 0, 1; 0: 1-63, 0, 0; "
                                    "1: 1-63, 0, 0; 2: 1-63, 0, 0; 0: 0-0, 1, 0; 1: 0-0, 1, 0; 2: 0-0, 1, 0;")
cjpeg("cj_prog_single.jpg", ["-scans", f"{d}/scans1.txt", "-sample", "1x1"], True)
def luma_scans_only(b):
    i = b.find(b"\xff\xda")
    out, pending = b[:i], b""
    while b[i + 1] != 0xD9:
        n = int.from_bytes(b[i + 2:i + 4], "big")
        if b[i + 1] != 0xDA:
            pending += b[i:i + 2 + n]
            i += 2 + n
            continue
        j = i + 2 + n
        while not (b[j] == 0xFF and b[j + 1] not in (0x00, *range(0xD0, 0xD8))):
            j += 1
        if b[i + 5] == 1:
            out += pending + b[i:j]
        pending, i = b"", j
    return out + b"\xff\xd9"
patched("cj_prog_single.jpg", "edge_luma_scans_only.jpg", luma_scans_only)
subprocess.run(["vips", "jpegsave", f"{d}/src.ppm", f"{d}/vips_q80.jpg", "--Q", "80"], check=True)
add("vips_q80.jpg", True)
for o in out:
    print(json.dumps(o))
"#;

/// Compares each decode (raw planes `<name>.ycc` and `<name>.rgb`, `w` x `h`) with
/// libjpeg's 1/8 decode through Pillow, printing one JSON line each.
const COMPARE: &str = r#"
import json, sys
import numpy as np
from PIL import Image
d = sys.argv[1]
for name in sys.argv[2:]:
    im = Image.open(f"{d}/{name}")
    w, h = -(-im.size[0] // 8), -(-im.size[1] // 8)
    gray = im.mode == "L"
    # Each component's subsampling (horizontal, vertical) against the largest factors.
    if gray:
        sub = [(1, 1)]
    else:
        hv = [(l[1], l[2]) for l in im.layer]
        hm, vm = max(h for h, _ in hv), max(v for _, v in hv)
        sub = [(hm // h, vm // v) for h, v in hv]
    n = 1 if gray else 3
    def groups(a, f):
        # Mean over the pixels one subsampled block covers, whole blocks only (a block
        # the image's edge cuts holds the encoder's padding, which libjpeg's output
        # drops and a DC value includes).
        fx, fy = f
        hh, ww = a.shape[0] // fy * fy, a.shape[1] // fx * fx
        a = a[:hh, :ww].astype(float)
        return a.reshape(hh // fy, fy, ww // fx, fx).mean(axis=(1, 3))
    r = {"name": name}
    for mode, ext in (("L", "ycc") if gray else ("YCbCr", "ycc"), ("L", "rgb") if gray else ("RGB", "rgb")):
        j = Image.open(f"{d}/{name}")
        # Pillow picks the largest scale that keeps the size at least the one asked.
        j.draft(mode, (im.size[0] // 8, im.size[1] // 8))
        assert j.size == (w, h), (name, j.size, (w, h))
        ref = np.asarray(j.convert(mode)).reshape(h, w, n).astype(int)
        ours = np.fromfile(f"{d}/{name}.{ext}", np.uint8).reshape(n, h, w).transpose(1, 2, 0).astype(int)
        res = []
        for c in range(n):
            # RGB mixes every component: averaged over the coarsest chroma block.
            f = sub[c] if ext == "ycc" else (max(s[0] for s in sub), max(s[1] for s in sub))
            exact = f == (1, 1) or (ext == "ycc" and c == 0)
            if exact:
                diff = np.abs(ref[:, :, c] - ours[:, :, c])
            else:
                diff = np.abs(groups(ref[:, :, c], f) - groups(ours[:, :, c], f))
            if diff.size == 0:
                continue
            res.append({"exact": exact, "max": float(diff.max()), "mean": float(diff.mean())})
        r[ext] = res
    print(json.dumps(r))
"#;

/// Every row of `src` in bands of 7 rows, planar.
fn read_all(src: &mut dyn RowSource) -> Vec<u8> {
    let g = src.geometry();
    let mut planes = vec![Vec::new(); g.comps];
    let mut band = Band::default();
    let mut y = 0;
    while y < g.height {
        let n = 7.min(g.height - y);
        src.read_band(y, n, &mut band).unwrap();
        for (p, b) in planes.iter_mut().zip(&band.planes) {
            p.extend_from_slice(b);
        }
        y += n;
    }
    planes.concat()
}

fn open(path: &Path) -> Result<Option<DcRows<std::fs::File>>, membudget::Error> {
    DcRows::open(std::fs::File::open(path).unwrap(), 1 << 30)
}

#[test]
fn dc_decode_equals_libjpeg_at_one_eighth() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL", "numpy"]) else {
        return;
    };
    for program in ["cjpeg", "vips"] {
        if Command::new(program).arg("-version").output().is_err() {
            assert!(!testkit::validators_required(), "{program} is missing");
            eprintln!("skipped: no {program}");
            return;
        }
    }
    let d = dir.path();
    let listed =
        testkit::ndjson(testkit::run_python(&py, GENERATE, &[d.to_str().unwrap()]).as_bytes());
    let mut files: Vec<(PathBuf, bool)> = listed
        .iter()
        .map(|v| {
            (
                d.join(v["name"].as_str().unwrap()),
                v["dc"].as_bool().unwrap(),
            )
        })
        .collect();
    let hubble = d.join("hubble.jpg");
    std::fs::copy(testkit::data("images/hubble_deep_field.jpg"), &hubble).unwrap();
    files.push((hubble, true));
    let mut decoded = Vec::new();
    for (path, dc) in &files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let got = open(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            got.is_some(),
            *dc,
            "{name}: decoded here or left to libjpeg"
        );
        let Some(mut rgb) = got else { continue };
        if name == "pil_icc.jpg" {
            // The profile as Pillow wrote it, the density as dpi (pixels per metre).
            let icc = std::fs::read(d.join("icc.bin")).unwrap();
            assert_eq!(rgb.icc.as_deref(), Some(&icc[..]));
            let r = rgb.resolution.unwrap();
            assert!((r.x_ppm() - 300.0 / 0.0254).abs() < 1e-6, "{r:?}");
            assert!((r.y_ppm() - 150.0 / 0.0254).abs() < 1e-6, "{r:?}");
        } else if name.starts_with("pil_") {
            assert_eq!(rgb.icc, None, "{name}");
        }
        std::fs::write(d.join(format!("{name}.rgb")), read_all(&mut rgb)).unwrap();
        let mut ycc = open(path).unwrap().unwrap();
        ycc.coded();
        std::fs::write(d.join(format!("{name}.ycc")), read_all(&mut ycc)).unwrap();
        decoded.push(name);
    }
    let mut args = vec![d.to_str().unwrap()];
    args.extend(decoded.iter().map(String::as_str));
    let results = testkit::ndjson(testkit::run_python(&py, COMPARE, &args).as_bytes());
    assert_eq!(results.len(), decoded.len());
    for r in &results {
        for ext in ["ycc", "rgb"] {
            for (c, v) in r[ext].as_array().unwrap().iter().enumerate() {
                let (max, mean) = (v["max"].as_f64().unwrap(), v["mean"].as_f64().unwrap());
                if v["exact"].as_bool().unwrap() {
                    assert_eq!(max, 0.0, "{ext} component {c} not bit-exact: {r}");
                } else {
                    // Subsampled chroma: the block's DC against libjpeg's upsampling (or
                    // its 2x2 inverse DCT), averaged over the block's pixels.
                    // RGB differs more where colour conversion clamps (low qualities).
                    let (m, x) = if ext == "ycc" {
                        (0.5, 1.0)
                    } else {
                        (1.5, 16.0)
                    };
                    assert!(mean <= m && max <= x, "{ext} component {c}: {r}");
                }
            }
        }
    }
    eprintln!(
        "{}",
        results
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn damaged_data_is_an_error_never_a_panic() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL", "numpy"]) else {
        return;
    };
    let d = dir.path();
    testkit::run_python(&py, GENERATE, &[d.to_str().unwrap(), "pillow"]);
    let mut rng = testkit::rng::Rng::new(5);
    let mut errors = 0;
    for name in [
        "pil_s2_q75.jpg",
        "pil_s0_rst.jpg",
        "pil_gray_rst.jpg",
        "pil_progressive.jpg",
        "pil_progressive_opt.jpg",
        "pil_s1_opt.jpg",
    ] {
        let good = std::fs::read(d.join(name)).unwrap();
        // Truncated anywhere in the scan: an error (libjpeg's "Premature end").
        let sos = good.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        for cut in [sos + 20, (sos + good.len()) / 2, good.len() - 3] {
            let p = d.join("cut.jpg");
            std::fs::write(&p, &good[..cut]).unwrap();
            let mut r = open(&p).unwrap().unwrap();
            let g = r.geometry();
            let mut band = Band::default();
            let e = r.read_band(0, g.height, &mut band).unwrap_err();
            assert!(
                e.to_string().contains("Premature end"),
                "{name} cut at {cut}: {e}"
            );
        }
        // Random damage: an error or some image, never a panic or a hang.
        for _ in 0..300 {
            let mut bad = good.clone();
            for _ in 0..1 + rng.below(8) as usize {
                let i = sos + 2 + rng.below((bad.len() - sos - 2) as u64) as usize;
                bad[i] = rng.below(256) as u8;
            }
            let p = d.join("bad.jpg");
            std::fs::write(&p, &bad).unwrap();
            if let Ok(Some(mut r)) = open(&p) {
                let g = r.geometry();
                let mut band = Band::default();
                errors += usize::from(r.read_band(0, g.height, &mut band).is_err());
            }
        }
    }
    assert!(errors > 0, "no damage was noticed");

    // What strict libjpeg refuses, refused here too (each decoded before the fix):
    let decode = |b: &[u8]| -> Result<(), membudget::Error> {
        let p = d.join("edge.jpg");
        std::fs::write(&p, b).unwrap();
        let mut r = open(&p)?.expect("read by jpeg_dc");
        let g = r.geometry();
        r.read_band(0, g.height, &mut Band::default())
    };
    let good = std::fs::read(d.join("pil_s0_rst.jpg")).unwrap();
    decode(&good).unwrap();
    // bytes between a block's padding and a restart marker ("extraneous bytes");
    let rst = good.windows(2).position(|w| w == [0xFF, 0xD0]).unwrap();
    let junk = [&good[..rst], &[0x12, 0x34], &good[rst..]].concat();
    let e = decode(&junk).unwrap_err();
    assert!(e.to_string().contains("extraneous"), "{e}");
    // a DC table with one more 9-bit code, which makes that code all ones.
    let dht = good.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
    assert_eq!(good[dht + 4] >> 4, 0, "a DC table first");
    let mut ones = good.clone();
    ones[dht + 5 + 8] += 1;
    let n: usize = ones[dht + 5..dht + 21]
        .iter()
        .map(|&c| usize::from(c))
        .sum();
    ones.insert(dht + 21 + n - 1, 0);
    let len = u16::from_be_bytes([ones[dht + 2], ones[dht + 3]]) + 1;
    ones[dht + 2..dht + 4].copy_from_slice(&len.to_be_bytes());
    let e = decode(&ones).unwrap_err();
    assert!(e.to_string().contains("Huffman table"), "{e}");
}
