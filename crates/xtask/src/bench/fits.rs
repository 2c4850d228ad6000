//! The FITS benchmark (issue 12): `strip-convert`'s stacking and CFA split against
//! siril-cli and astropy, same run, alternating rounds (`MEMBUDGET_BENCH_ROUNDS`,
//! default 3), median wall.
//!
//! - Stack: 50 deterministic 4096x4096 float32 frames (stars, a gradient, read and shot
//!   noise, hot pixels, cosmic rays; 3.2 GB) combined by sigma-clipping (3/3, around the
//!   median) after additive normalisation, by `strip-convert --stack sigma-clip -m
//!   256MiB`, by siril-cli (`link` then `stack ... rej s 3 3 -norm=add`) and by numpy +
//!   astropy `sigma_clip` on the loaded float32 cube. Targets: wall <= 1.0x Siril and
//!   <= 0.2x astropy, peak RSS <= 0.5x Siril's and <= 256 MiB; the result within 1e-5
//!   (relative) of astropy's; how far Siril's is, reported. The float frames hold ADU /
//!   65535, Siril's convention for floating-point data (Siril 1.0.6 clips a float
//!   result to [0, 1], so frames at ADU level would give it a saturated result).
//!
//!   The reference for the 1e-5 is astropy's `sigma_clip` in float64 (numpy's own
//!   normalisation of a float64 cube), run untimed over row chunks (each pixel's clip is
//!   independent of the others): the timed float32 run's std and median are float32
//!   sums, whose rounding moves a few values sitting on a clipping bound across it. How
//!   far the float32 run and Siril are from the reference is reported too.
//! - CFA split: 100 frames of 6000x4000 uint16 by `strip-convert --split-cfa RGGB`
//!   against siril-cli's `seqsplit_cfa`: wall and RSS reported; our planes checked equal
//!   to numpy slicing and to Siril's planes.

use super::{argv as os, print_table, remove, Contender, Sample};
use anyhow::{Context, Result};
use membudget::budget::human_bytes;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The inputs' sizes: the issue's, or with `MEMBUDGET_BENCH_SMALL=1` a reduced set that
/// runs in a minute (to debug the bench; its ratios are not the issue's).
struct Sizes {
    stack_frames: usize,
    stack_side: usize,
    cfa_frames: usize,
    cfa_w: usize,
    cfa_h: usize,
}

fn sizes() -> Sizes {
    if std::env::var_os("MEMBUDGET_BENCH_SMALL").is_some_and(|v| v == "1") {
        Sizes {
            stack_frames: 12,
            stack_side: 1024,
            cfa_frames: 10,
            cfa_w: 1200,
            cfa_h: 800,
        }
    } else {
        Sizes {
            stack_frames: 50,
            stack_side: 4096,
            cfa_frames: 100,
            cfa_w: 6000,
            cfa_h: 4000,
        }
    }
}
const BUDGET: u64 = 256 << 20;
const VERSION: &str = "2";

/// Frames as a camera gives them, seeded: a sky gradient, 400 Gaussian stars, read and
/// shot noise, a per-frame offset (what additive normalisation removes), 50 hot pixels at
/// fixed places, and per-frame cosmic-ray hits (what rejection removes).
const GENERATE: &str = r#"
import sys, os, numpy as np
from astropy.io import fits
out, n, w, h, kind, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(seed)
yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
sky = 1000 + 0.02 * xx + 0.01 * yy
stars = np.zeros((h, w), np.float32)
for _ in range(400):
    cx, cy, f, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(200, 20000), rng.uniform(1.2, 3.0)
    x0, x1, y0, y1 = int(max(0, cx - 4 * s)), int(min(w, cx + 4 * s + 1)), int(max(0, cy - 4 * s)), int(min(h, cy + 4 * s + 1))
    stars[y0:y1, x0:x1] += f * np.exp(-((xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2) / (2 * s * s))
hot = (rng.integers(0, h, 50), rng.integers(0, w, 50))
base = sky + stars
for i in range(n):
    frame = base + rng.normal(0, 10, (h, w)).astype(np.float32) + np.sqrt(base) * rng.normal(0, 1, (h, w)).astype(np.float32) + rng.uniform(-50, 50)
    frame[hot] = 60000
    k = rng.integers(0, h * w, 200)
    frame.flat[k] += rng.uniform(5000, 30000, 200).astype(np.float32)
    name = os.path.join(out, f"light_{i:04d}.fits")
    if kind == "f32":
        fits.PrimaryHDU((frame / np.float32(65535)).astype(np.float32)).writeto(name, overwrite=True)
    else:
        fits.PrimaryHDU(np.clip(frame, 0, 65535).astype(np.uint16)).writeto(name, overwrite=True)
"#;

/// What an astropy user writes: the whole cube, additive normalisation by medians,
/// `sigma_clip` around the median until nothing changes, the mean of what is left.
const ASTROPY: &str = r#"
import sys, glob, numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip
files, out = sorted(glob.glob(sys.argv[1] + "/*.fits")), sys.argv[2]
cube = np.stack([fits.getdata(f).astype(np.float32) for f in files])
med = np.median(cube.reshape(len(files), -1), axis=1)
cube += (med[0] - med)[:, None, None].astype(np.float32)
clipped = sigma_clip(cube, sigma_lower=3, sigma_upper=3, axis=0, cenfunc="median", stdfunc="std", maxiters=None)
fits.PrimaryHDU(clipped.mean(axis=0).filled(np.nan).astype(np.float32)).writeto(out, overwrite=True)
"#;

/// The float64 reference: astropy `sigma_clip` on each chunk of rows of the float64 cube,
/// normalised by the frames' medians (numpy's), as the whole cube would give it.
const REFERENCE: &str = r#"
import sys, glob, numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip
files, out = sorted(glob.glob(sys.argv[1] + "/*.fits")), sys.argv[2]
hdus = [fits.open(f, memmap=True) for f in files]
med = np.array([np.median(h[0].data.astype(np.float64)) for h in hdus])
H, W = hdus[0][0].data.shape
res = np.empty((H, W), np.float64)
for y in range(0, H, 256):
    cube = np.stack([h[0].data[y:y + 256].astype(np.float64) for h in hdus]) + (med[0] - med)[:, None, None]
    c = sigma_clip(cube, sigma_lower=3, sigma_upper=3, axis=0, cenfunc="median", stdfunc="std", maxiters=None)
    res[y:y + 256] = c.mean(axis=0).filled(np.nan)
fits.PrimaryHDU(res.astype(np.float32)).writeto(out, overwrite=True)
"#;

/// How far a result is from the reference: the largest and the median relative
/// difference over pixels, and the share of pixels over 1e-5.
const COMPARE: &str = r#"
import sys, numpy as np
from astropy.io import fits
ref = fits.getdata(sys.argv[1]).astype(np.float64)
got = np.squeeze(fits.getdata(sys.argv[2]).astype(np.float64))
if got.shape != ref.shape:
    print(f"shape {got.shape} != {ref.shape}"); sys.exit(1)
rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)
print(f"{np.nanmax(rel):.3e} {np.nanmedian(rel):.3e} {np.mean(rel > 1e-5):.3e}")
"#;

/// Our CFA planes against numpy slicing (Siril's numbering: CFA0 = data[1::2, 0::2],
/// CFA1 = data[0::2, 0::2], CFA2 = data[1::2, 1::2], CFA3 = data[0::2, 1::2]) and against
/// Siril's own planes of the same frames (`CFA_<k>_light_<i>.fits`, i from 0 in the
/// sequence's order), for the first frames.
const CHECK_CFA: &str = r#"
import sys, os, glob, numpy as np
from astropy.io import fits
src, out, siril = sys.argv[1], sys.argv[2], sys.argv[3]
for i, f in enumerate(sorted(glob.glob(src + "/*.fits"))[:5]):  # CHECKED_FRAMES
    d = fits.getdata(f)
    name = os.path.basename(f)
    for k in range(4):
        r, c = 1 - k % 2, k // 2
        got = fits.getdata(os.path.join(out, f"CFA{k}_{name}"))
        if not np.array_equal(got, d[r::2, c::2]):
            print(f"CFA{k}_{name} differs from numpy slicing"); sys.exit(1)
        theirs = fits.getdata(os.path.join(siril, f"CFA_{k}_light_{i:05d}.fits"))
        if got.dtype != theirs.dtype or not np.array_equal(got, theirs):
            print(f"CFA{k}_{name} differs from Siril's CFA_{k}_light_{i:05d}.fits"); sys.exit(1)
print("CFA planes equal numpy slicing and Siril's split_cfa planes")
"#;

fn rounds() -> usize {
    super::rounds_or(3)
}

fn alternate(cs: &[Contender]) -> Result<Vec<Sample>> {
    super::alternate(rounds(), cs)
}

/// Clear `paths` before each run.
fn clearing<'a>(paths: Vec<PathBuf>) -> Box<dyn Fn() -> Result<()> + 'a> {
    Box::new(move || paths.iter().try_for_each(|p| remove(p)))
}

/// Frames whose planes CHECK_CFA compares.
const CHECKED_FRAMES: usize = 5;

/// Remove the files of `dir` (if it exists) whose names `keep` refuses.
fn trim(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !keep(&e.file_name().to_string_lossy()) {
            remove(&e.path())?;
        }
    }
    Ok(())
}

/// Empty Siril's working directory but for its script before each run: its links
/// (`link`), sequence files and results (`CFA_<k>_light_<i>.fits`) from the last one.
fn emptying<'a>(dir: PathBuf) -> Box<dyn Fn() -> Result<()> + 'a> {
    Box::new(move || {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "ssf") {
                remove(&p)?;
            }
        }
        Ok(())
    })
}

/// Generate, build, measure, print; true when the targets were met.
pub fn run(root: &Path) -> Result<bool> {
    let z = sizes();
    crate::suite::install_debian_packages(&[("siril", "siril-cli")])?;
    let dir = root.join("target/bench/fits");
    let python = crate::suite::ensure_venv(root)?;
    let bin = crate::build_release(root, &["strip-convert"])?;
    // A private copy: another build may relink the binary while the bench runs.
    std::fs::create_dir_all(&dir)?;
    let tool = dir.join("strip-convert");
    std::fs::copy(bin.join("strip-convert"), &tool).context("copying strip-convert")?;
    let stack = frames(
        &python,
        &dir,
        "stack",
        z.stack_frames,
        z.stack_side,
        z.stack_side,
        "f32",
    )?;
    let inputs: Vec<PathBuf> = sorted_fits(&stack)?;
    let ours_out = dir.join("ours.fits");
    let astropy_out = dir.join("astropy.fits");
    let siril_dir = dir.join("siril-stack");
    let siril_out = siril_dir.join("result.fits");
    std::fs::create_dir_all(&siril_dir)?;
    let script = siril_dir.join("stack.ssf");
    std::fs::write(
        &script,
        format!(
            "requires 1.0.0\nsetext fits\ncd {}\nlink light -out={}\ncd {}\nstack light_ rej s 3 3 -norm=add -out=result\n",
            stack.display(),
            siril_dir.display(),
            siril_dir.display()
        ),
    )?;
    let mut ours = os(&[
        &tool,
        &"-q",
        &"-f",
        &"-m",
        &"256MiB",
        &"--normalize",
        &"additive",
        &"--stack",
        &"sigma-clip",
        &"--output",
        &ours_out,
    ]);
    ours.extend(inputs.iter().map(|p| p.as_os_str().to_os_string()));
    let s = alternate(&[
        Contender {
            name: "strip-convert --stack sigma-clip -m 256MiB".into(),
            argv: ours,
            before: clearing(vec![ours_out.clone()]),
        },
        Contender {
            name: "siril-cli stack rej s 3 3 -norm=add".into(),
            argv: os(&[&"siril-cli", &"-d", &siril_dir, &"-s", &script]),
            before: emptying(siril_dir.clone()),
        },
        Contender {
            name: "numpy + astropy sigma_clip".into(),
            argv: os(&[&python, &"-c", &ASTROPY, &stack, &astropy_out]),
            before: clearing(vec![astropy_out.clone()]),
        },
    ])?;
    let pixels = (z.stack_frames * z.stack_side * z.stack_side) as u64;
    println!(
        "\nFITS stack: {} frames of {}x{} float32 ({}), additive normalisation, sigma-clip 3/3, {} round(s), median wall\n",
        z.stack_frames,
        z.stack_side,
        z.stack_side,
        human_bytes(pixels * 4),
        rounds()
    );
    print_table(pixels, "pixels", &s);
    let ratio = |a: &Sample, b: &Sample| a.wall.as_secs_f64() / b.wall.as_secs_f64().max(1e-9);
    let vs_siril = ratio(&s[0], &s[1]);
    let vs_astropy = ratio(&s[0], &s[2]);
    let rss_siril = s[0].peak_rss as f64 / s[1].peak_rss.max(1) as f64;
    let reference = dir.join("reference-f64.fits");
    let st = Command::new(&python)
        .args(["-c", REFERENCE])
        .arg(&stack)
        .arg(&reference)
        .status()
        .context("computing the float64 reference")?;
    anyhow::ensure!(st.success(), "the float64 reference failed ({st})");
    let compare = |p: &Path| -> Result<(f64, f64, f64)> {
        let out = Command::new(&python)
            .args(["-c", COMPARE])
            .arg(&reference)
            .arg(p)
            .output()
            .context("comparing results")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        anyhow::ensure!(out.status.success(), "compare {}: {text}", p.display());
        let mut it = text
            .split_whitespace()
            .map(|t| t.parse::<f64>().unwrap_or(f64::NAN));
        let mut next = || it.next().unwrap_or(f64::NAN);
        Ok((next(), next(), next()))
    };
    let show = |r: &Result<(f64, f64, f64)>| match r {
        Ok((m, med, over)) => {
            format!("max {m:.2e} (median {med:.2e}, {over:.1e} of pixels over 1e-5)")
        }
        Err(e) => format!("not compared: {e}"),
    };
    let ours_cmp = compare(&ours_out);
    let ours_max = ours_cmp.as_ref().map_or(f64::INFINITY, |c| c.0);
    println!("relative difference to astropy sigma_clip in float64:");
    for (name, r) in [
        ("strip-convert", &ours_cmp),
        ("siril-cli", &compare(&siril_out)),
        ("astropy float32 (the timed run)", &compare(&astropy_out)),
    ] {
        println!("  {name}: {}", show(r));
    }
    let stack_ok = vs_siril <= 1.0
        && vs_astropy <= 0.2
        && rss_siril <= 0.5
        && s[0].peak_rss <= BUDGET
        && ours_max <= 1e-5;
    println!(
        "{}: wall {vs_siril:.2}x siril-cli (target <= 1.0x), {vs_astropy:.2}x astropy (target <= 0.2x); peak RSS {} ({rss_siril:.2}x Siril's; targets <= 0.5x and <= 256 MiB); max relative difference to astropy {ours_max:.1e} (target <= 1e-5)",
        if stack_ok { "PASS" } else { "FAIL" },
        human_bytes(s[0].peak_rss)
    );

    // CFA split.
    let cfa = frames(&python, &dir, "cfa", z.cfa_frames, z.cfa_w, z.cfa_h, "u16")?;
    let cfa_inputs = sorted_fits(&cfa)?;
    let ours_cfa = dir.join("cfa-ours");
    let siril_cfa = dir.join("siril-cfa");
    std::fs::create_dir_all(&siril_cfa)?;
    let cfa_script = siril_cfa.join("split.ssf");
    std::fs::write(
        &cfa_script,
        format!(
            "requires 1.0.0\nsetext fits\ncd {}\nlink light -out={}\ncd {}\nseqsplit_cfa light_\n",
            cfa.display(),
            siril_cfa.display(),
            siril_cfa.display()
        ),
    )?;
    let mut ours = os(&[
        &tool,
        &"-q",
        &"-f",
        &"--split-cfa",
        &"RGGB",
        &"-o",
        &ours_cfa,
    ]);
    ours.extend(cfa_inputs.iter().map(|p| p.as_os_str().to_os_string()));
    // Each run first trims the other tool's planes to the frames CHECK_CFA reads: one
    // full set of planes (4.8 GB) on the disk at a time, not two.
    let checked: Vec<String> = cfa_inputs
        .iter()
        .take(CHECKED_FRAMES)
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let ours_kept = move |name: &str| {
        checked
            .iter()
            .any(|c| (0..4).any(|k| name == format!("CFA{k}_{c}")))
    };
    let siril_kept = |name: &str| {
        !name.starts_with("CFA_")
            || (0..CHECKED_FRAMES).any(|i| name.ends_with(&format!("_light_{i:05}.fits")))
    };
    let (oc, sc) = (ours_cfa.clone(), siril_cfa.clone());
    let empty_siril = emptying(siril_cfa.clone());
    let s = alternate(&[
        Contender {
            name: "strip-convert --split-cfa RGGB".into(),
            argv: ours,
            before: Box::new(move || {
                remove(&oc)?;
                trim(&sc, &siril_kept)
            }),
        },
        Contender {
            name: "siril-cli seqsplit_cfa".into(),
            argv: os(&[&"siril-cli", &"-d", &siril_cfa, &"-s", &cfa_script]),
            before: Box::new(move || {
                empty_siril()?;
                trim(&ours_cfa, &ours_kept)
            }),
        },
    ])?;
    let cfa_pixels = (z.cfa_frames * z.cfa_w * z.cfa_h) as u64;
    println!(
        "\nFITS CFA split: {} frames of {}x{} uint16 ({}), {} round(s), median wall\n",
        z.cfa_frames,
        z.cfa_w,
        z.cfa_h,
        human_bytes(cfa_pixels * 2),
        rounds()
    );
    print_table(cfa_pixels, "pixels", &s);
    let ours_cfa = dir.join("cfa-ours");
    let planes = Command::new(&python)
        .args(["-c", CHECK_CFA])
        .arg(&cfa)
        .arg(&ours_cfa)
        .arg(&siril_cfa)
        .status()
        .context("checking CFA planes")?
        .success();
    // Siril's split frames are large; the bench leaves only the inputs behind.
    for d in [&ours_cfa, &siril_cfa] {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_dir_all(dir.join("siril-stack"));
    Ok(stack_ok && planes)
}

fn sorted_fits(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
        .collect();
    v.sort();
    Ok(v)
}

/// Write the frames once (a stamp says they are there).
fn frames(
    python: &Path,
    dir: &Path,
    name: &str,
    n: usize,
    w: usize,
    h: usize,
    kind: &str,
) -> Result<PathBuf> {
    let out = dir.join(name);
    let stamp = dir.join(format!("{name}.stamp"));
    let want = format!("{VERSION} {n} {w} {h} {kind}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(out);
    }
    eprintln!(
        "xtask: generating {n} frames of {w}x{h} {kind} in {}",
        out.display()
    );
    let st = Command::new(python)
        .args(["-c", GENERATE])
        .arg(&out)
        .args([
            n.to_string(),
            w.to_string(),
            h.to_string(),
            kind.to_string(),
            "12".into(),
        ])
        .status()
        .context("running the frame generator")?;
    anyhow::ensure!(st.success(), "generating frames failed ({st})");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&stamp, want)?;
    Ok(out)
}
