//! The `tile-enhance spots` benchmark (issue 11): a deterministic 8192 x 8192 uint16 image
//! of ~20,000 Gaussian spots (sigma 1.1 to 2.0 px, peak 120 to 3000 over the background,
//! on a jittered grid so no two overlap) on a Poisson background (mean 100), ground truth
//! written beside it, against big-fish `detect_spots` (same sigma and minimum distance,
//! automatic threshold) and scikit-image `blob_log` (one sigma, the threshold ours found),
//! same run, alternating rounds, median wall time.
//! Targets: wall <= 0.2x the faster peer, peak RSS <= 0.25x the smaller peer, F1 >= 0.95 at
//! 1.5 px against the ground truth and no worse than big-fish's. Then (unless
//! `MEMBUDGET_BENCH_SMALL=1`) a 32768 x 32768 image with 3 channels as separate files,
//! detected and read out under `--memory-limit 256MiB`: peak RSS at or below it, and the
//! `spot-detect` cost model's prediction within 20% of it.
//!
//! `MEMBUDGET_BENCH_ONLY=compare` (or `big`) runs only that part; `MEMBUDGET_BENCH_ROUNDS`
//! sets the comparison's rounds (3). The big case's 6 GiB of inputs are deleted after it
//! unless `MEMBUDGET_BENCH_KEEP=1`.
//!
//! Images are generated here, strip by strip (the 32768 one is 2 GiB a channel, generated
//! 64 rows at a time): Poisson samples by inversion of the exact CDF, from testkit's
//! seeded generator.

use super::{alternate, argv as os, measure, print_table, Contender};
use anyhow::{Context, Result};
use membudget::budget::human_bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use testkit::Rng;

/// Side of the compared image.
const SIDE: u32 = 8192;
/// Side of the budget check's image.
const BIG_SIDE: u32 = 32768;
/// The budget check's budget.
const BIG_BUDGET: u64 = 256 << 20;
/// Spot grid pitch: (8192 / 58)^2 = 141^2 = 19,881 spots.
const PITCH: u32 = 58;
/// Detection sigma and minimum distance, for every program.
const SIGMA: f64 = 1.5;
const MIN_DISTANCE: u32 = 2;
/// Background mean.
const BACKGROUND: f64 = 100.0;
/// Bumped whenever the generator changes.
const VERSION: &str = "1";
/// Alternating rounds (`MEMBUDGET_BENCH_ROUNDS`, default 3).
fn rounds() -> usize {
    super::rounds_or(3)
}

/// Whether part `what` (`compare`, `big`) is to run (`MEMBUDGET_BENCH_ONLY`, all when
/// unset; `MEMBUDGET_BENCH_SMALL=1` leaves out `big`).
fn wanted(what: &str) -> bool {
    if what == "big" && std::env::var_os("MEMBUDGET_BENCH_SMALL").is_some_and(|v| v == "1") {
        return false;
    }
    super::only(what).unwrap_or(true)
}

/// big-fish as its users run it: read the TIFF, detect, write the coordinates.
const BIGFISH: &str = r#"
import sys, warnings, numpy as np, tifffile
warnings.filterwarnings("ignore")
from bigfish.detection import detect_spots
img = tifffile.imread(sys.argv[1])
spots, t = detect_spots(img, return_threshold=True, log_kernel_size=float(sys.argv[3]), minimum_distance=float(sys.argv[4]))
np.savetxt(sys.argv[2], spots, fmt="%d", delimiter=",", header="y,x", comments="")
sys.stderr.write(f"big-fish threshold {t}\n")
"#;

/// blob_log at one sigma; its threshold is on img_as_float's scale (samples / 65535).
const BLOBLOG: &str = r#"
import sys, numpy as np, tifffile
from skimage.feature import blob_log
img = tifffile.imread(sys.argv[1])
s = float(sys.argv[3])
b = blob_log(img, min_sigma=s, max_sigma=s, num_sigma=1, threshold=float(sys.argv[4]) / 65535.0, exclude_border=False)
np.savetxt(sys.argv[2], b[:, :2], fmt="%d", delimiter=",", header="y,x", comments="")
"#;

/// F1 at 1.5 px: one-to-one matching, closest pairs first.
const F1: &str = r#"
import sys, numpy as np
from scipy.spatial import cKDTree
truth = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1, ndmin=2)[:, :2]
for path, cols in zip(sys.argv[2::2], sys.argv[3::2]):
    c = [int(v) for v in cols.split(":")]
    found = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    found = found[:, c] if len(found) else np.zeros((0, 2))
    pairs = cKDTree(found).query_ball_tree(cKDTree(truth), 1.5) if len(found) else []
    cand = sorted((float(np.hypot(*(found[i] - truth[j]))), i, j) for i, js in enumerate(pairs) for j in js)
    uf, ut, tp = set(), set(), 0
    for d, i, j in cand:
        if i not in uf and j not in ut:
            uf.add(i); ut.add(j); tp += 1
    p, r = tp / max(1, len(found)), tp / max(1, len(truth))
    print(f"{len(found)} {p:.4f} {r:.4f} {2 * p * r / max(1e-12, p + r):.4f}")
"#;

/// The big case's readout (`--readout mean:2`) at 3000 of its spots, spread over the image,
/// against numpy on tifffile's memory maps of the three channel files.
const READOUT: &str = r#"
import sys, numpy as np, tifffile
rows = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1, ndmin=2)
chans = [tifffile.memmap(p, mode="r") for p in sys.argv[2:]]
h, w = chans[0].shape
pick = rows[np.linspace(0, len(rows) - 1, min(3000, len(rows))).astype(int)]
worst = 0.0
for r in pick:
    y, x = int(r[0]), int(r[1])
    ya, yb, xa, xb = max(0, y - 2), min(h, y + 3), max(0, x - 2), min(w, x + 3)
    yy, xx = np.mgrid[ya:yb, xa:xb]
    disc = (yy - y) ** 2 + (xx - x) ** 2 <= 4
    for c, img in enumerate(chans):
        want = img[ya:yb, xa:xb].astype(np.float64)[disc].mean()
        got = r[4 + c]
        worst = max(worst, abs(got - want) / max(1.0, abs(want)))
if worst > 1e-9:
    print(f"readout differs from numpy: worst relative error {worst:.3g}"); sys.exit(1)
print(f"readout mean:2 of 3 channels equals numpy on tifffile.memmap at {len(pick)} spots")
"#;

/// One spot of the ground truth.
#[derive(Clone, Copy)]
struct Spot {
    y: f64,
    x: f64,
    sigma: f64,
    peak: f64,
}

/// The spots of a `side` x `side` image: one per grid cell, jittered, seeded.
fn spots(side: u32, seed: u64) -> Vec<Spot> {
    let mut rng = Rng::new(seed);
    let cells = side / PITCH;
    let mut v = Vec::with_capacity((cells * cells) as usize);
    for cy in 0..cells {
        for cx in 0..cells {
            let margin = 8.0;
            let span = f64::from(PITCH) - 2.0 * margin;
            v.push(Spot {
                y: f64::from(cy * PITCH) + margin + rng.f64() * span,
                x: f64::from(cx * PITCH) + margin + rng.f64() * span,
                sigma: 1.1 + 0.9 * rng.f64(),
                // Log-uniform 120 to 3000: dim spots are most of them, as in smFISH.
                peak: 120.0 * (25.0f64).powf(rng.f64()),
            });
        }
    }
    v
}

/// The Poisson(`lambda`) CDF up to where it reaches 1 in f64.
fn poisson_cdf(lambda: f64) -> Vec<f64> {
    let mut cdf = Vec::new();
    let (mut p, mut acc) = ((-lambda).exp(), 0.0);
    for k in 0..1000u32 {
        acc += p;
        cdf.push(acc);
        if acc >= 1.0 - 1e-15 && f64::from(k) > lambda {
            break;
        }
        p *= lambda / f64::from(k + 1);
    }
    cdf
}

/// Write a `side` x `side` uint16 TIFF (strips of 64 rows) of `spots` (peaks scaled by
/// `gain`) on Poisson noise from `seed`.
fn write_image(path: &Path, side: u32, spots: &[Spot], gain: f64, seed: u64) -> Result<()> {
    use tiff::encoder::{colortype, TiffEncoder};
    let cdf = poisson_cdf(BACKGROUND);
    let mut rng = Rng::new(seed);
    let tmp = path.with_extension("tmp");
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let mut enc = TiffEncoder::new(f)?;
    let mut img = enc.new_image::<colortype::Gray16>(side, side)?;
    img.rows_per_strip(64)?;
    // Spots by the first row they touch.
    let mut order: Vec<&Spot> = spots.iter().collect();
    order.sort_by(|a, b| a.y.total_cmp(&b.y));
    let mut first = 0;
    let mut y = 0u32;
    let mut buf = vec![0f64; 0];
    loop {
        let n = img.next_strip_sample_count();
        if n == 0 {
            break;
        }
        let rows = u32::try_from(n / u64::from(side))?;
        buf.clear();
        for _ in 0..n {
            let u = rng.f64();
            buf.push(cdf.partition_point(|&c| c < u) as f64);
        }
        while first < order.len() && order[first].y + 4.0 * 2.0 + 1.0 < f64::from(y) {
            first += 1;
        }
        for s in &order[first..] {
            let reach = (4.0 * s.sigma).ceil() + 1.0;
            if s.y - reach > f64::from(y + rows) {
                break;
            }
            let (ya, yb) = (
                ((s.y - reach).max(f64::from(y))) as u32,
                ((s.y + reach).min(f64::from(y + rows - 1))) as u32,
            );
            let (xa, xb) = (
                (s.x - reach).max(0.0) as u32,
                (s.x + reach).min(f64::from(side - 1)) as u32,
            );
            for yy in ya..=yb.max(ya) {
                if yy < y || yy >= y + rows {
                    continue;
                }
                for xx in xa..=xb {
                    let d2 = (f64::from(yy) - s.y).powi(2) + (f64::from(xx) - s.x).powi(2);
                    buf[((yy - y) * side + xx) as usize] +=
                        gain * s.peak * (-d2 / (2.0 * s.sigma * s.sigma)).exp();
                }
            }
        }
        let strip: Vec<u16> = buf
            .iter()
            .map(|v| v.round().clamp(0.0, 65535.0) as u16)
            .collect();
        img.write_strip(&strip)?;
        y += rows;
    }
    img.finish()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The truth CSV.
fn write_truth(path: &Path, spots: &[Spot]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "y,x,sigma,peak")?;
    for s in spots {
        writeln!(f, "{:.3},{:.3},{:.3},{:.1}", s.y, s.x, s.sigma, s.peak)?;
    }
    Ok(())
}

/// Generate the image (and channels) of `side` unless a stamp says they are there.
fn make(dir: &Path, side: u32, channels: u32) -> Result<(Vec<PathBuf>, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let spots = spots(side, 11);
    let truth = dir.join(format!("spots-{side}.truth.csv"));
    let paths: Vec<PathBuf> = (0..channels)
        .map(|c| dir.join(format!("spots-{side}-ch{c}.tif")))
        .collect();
    let stamp = dir.join(format!("spots-{side}.stamp"));
    let want = format!("{VERSION} {side} {channels}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str())
        && paths.iter().all(|p| p.exists())
    {
        return Ok((paths, truth));
    }
    for (c, p) in paths.iter().enumerate() {
        eprintln!("xtask: generating {}", p.display());
        // Channel 0 carries the spots; the others read them at other gains.
        write_image(p, side, &spots, [1.0, 0.5, 0.25][c % 3], 100 + c as u64)?;
    }
    write_truth(&truth, &spots)?;
    std::fs::write(&stamp, want)?;
    Ok((paths, truth))
}

/// Generate, build, measure, print; true when the targets were met.
pub fn run(root: &Path) -> Result<bool> {
    let dir = root.join("target/bench/spots");
    std::fs::create_dir_all(&dir)?;
    let bin = crate::build_release(root, &["tile-enhance"])?;
    // A private copy: another build may relink the binary while the bench runs.
    let tool = dir.join("tile-enhance");
    std::fs::copy(bin.join("tile-enhance"), &tool).context("copying tile-enhance")?;
    let mut ok = true;
    if wanted("compare") {
        ok &= compare(root, &dir, &tool)?;
    }
    if wanted("big") {
        ok &= big(root, &dir, &tool)?;
    } else {
        println!("\n{BIG_SIDE}x{BIG_SIDE} under 256 MiB: SKIPPED (MEMBUDGET_BENCH_SMALL or _ONLY)");
    }
    Ok(ok)
}

/// The 8192 x 8192 comparison with big-fish and blob_log.
fn compare(root: &Path, dir: &Path, tool: &Path) -> Result<bool> {
    let python = crate::suite::ensure_venv(root)?;
    let (imgs, truth) = make(dir, SIDE, 1)?;
    let img = &imgs[0];
    let rounds = rounds();
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let devnull = PathBuf::from("/dev/null");
    let (sigma, d) = (SIGMA.to_string(), MIN_DISTANCE.to_string());
    let ours = os(&[
        &tool,
        &"spots",
        &"-q",
        &"-f",
        &"-j",
        &"2",
        &"--sigma",
        &sigma,
        &"-d",
        &d,
        &"--subpixel",
        &"-o",
        &out,
        img,
    ]);
    // Ours once first, outside the rounds: blob_log is given the threshold ours found.
    let first = measure("tile-enhance spots -j 2", 1, &devnull, &[0], &ours)?;
    let rec: serde_json::Value = serde_json::from_slice(
        first
            .stdout
            .split(|&b| b == b'\n')
            .next()
            .context("no record")?,
    )?;
    let threshold = rec["spots"]["threshold"]
        .as_f64()
        .context("no threshold in the record")?;
    let bf_out = out.join("bigfish.csv");
    let bl_out = out.join("blob_log.csv");
    let bigfish = os(&[&python, &"-c", &BIGFISH, img, &bf_out, &sigma, &d]);
    let bloblog = os(&[
        &python,
        &"-c",
        &BLOBLOG,
        img,
        &bl_out,
        &sigma,
        &threshold.to_string(),
    ]);
    let samples = alternate(
        rounds,
        &[
            Contender::new("tile-enhance spots -j 2", ours),
            Contender::new("big-fish detect_spots", bigfish),
            Contender::new("skimage blob_log", bloblog),
        ],
    )?;
    let [a, b, c] = <[_; 3]>::try_from(samples).expect("three samples");
    let n = u64::from(SIDE) * u64::from(SIDE);
    println!(
        "\ntile-enhance spots: {SIDE}x{SIDE} uint16, {} spots, sigma {SIGMA}, min distance \
         {MIN_DISTANCE}, median of {rounds} alternating rounds, same machine, same run\n",
        spots(SIDE, 11).len()
    );
    print_table(n, "px", &[a.clone(), b.clone(), c.clone()]);
    let ours_csv = out.join(format!(
        "{}.spots.csv",
        img.file_stem().unwrap_or_default().to_string_lossy()
    ));
    let f1 = std::process::Command::new(&python)
        .arg("-c")
        .arg(F1)
        .arg(&truth)
        .args([ours_csv.as_os_str(), "2:3".as_ref()])
        .args([bf_out.as_os_str(), "0:1".as_ref()])
        .args([bl_out.as_os_str(), "0:1".as_ref()])
        .output()
        .context("F1")?;
    anyhow::ensure!(
        f1.status.success(),
        "F1: {}",
        String::from_utf8_lossy(&f1.stderr)
    );
    let f1: Vec<Vec<f64>> = String::from_utf8_lossy(&f1.stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .collect();
    for (name, v) in ["tile-enhance", "big-fish", "blob_log"].iter().zip(&f1) {
        println!(
            "{name:>13}: {} spots, precision {:.4}, recall {:.4}, F1 {:.4} (1.5 px)",
            v[0], v[1], v[2], v[3]
        );
    }
    println!(
        "threshold: ours {threshold} (big-fish units {})",
        rec["spots"]["threshold_bigfish"]
    );
    let faster = b.wall.min(c.wall).as_secs_f64();
    let smaller = b.peak_rss.min(c.peak_rss) as f64;
    let wall_ratio = a.wall.as_secs_f64() / faster.max(1e-9);
    let rss_ratio = a.peak_rss as f64 / smaller.max(1.0);
    let f1_ok = f1[0][3] >= 0.95 && f1[0][3] >= f1[1][3];
    let fast = wall_ratio <= 0.2 && rss_ratio <= 0.25;
    println!(
        "{}: wall {wall_ratio:.3}x the faster peer (target <= 0.2x), peak RSS {rss_ratio:.3}x the \
         smaller (target <= 0.25x); {}: F1 {:.4} (target >= 0.95 and >= big-fish's {:.4})",
        if fast { "PASS" } else { "FAIL" },
        if f1_ok { "PASS" } else { "FAIL" },
        f1[0][3],
        f1[1][3]
    );
    Ok(fast && f1_ok)
}

/// The budget check: 3 channels of 32768 x 32768 as separate files, under 256 MiB.
fn big(root: &Path, dir: &Path, tool: &Path) -> Result<bool> {
    let python = crate::suite::ensure_venv(root)?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let devnull = PathBuf::from("/dev/null");
    let (sigma, d) = (SIGMA.to_string(), MIN_DISTANCE.to_string());
    let (big, truth) = make(dir, BIG_SIDE, 3)?;
    let ch1 = format!("ch1={}", big[1].display());
    let ch2 = format!("ch2={}", big[2].display());
    let limited = os(&[
        &tool,
        &"spots",
        &"-q",
        &"-f",
        &"-j",
        &"2",
        &"-m",
        &BIG_BUDGET.to_string(),
        &"--sigma",
        &sigma,
        &"-d",
        &d,
        &"--channel",
        &ch1,
        &"--channel",
        &ch2,
        &"--readout",
        &"mean:2",
        &"-o",
        &out,
        &big[0],
    ]);
    let s = measure("tile-enhance spots -m 256MiB", 1, &devnull, &[0], &limited)?;
    let rec: serde_json::Value = serde_json::from_slice(
        s.stdout
            .split(|&b| b == b'\n')
            .next()
            .context("no record")?,
    )?;
    let predicted = rec["spots"]["predicted_peak"].as_u64().unwrap_or(0);
    let under = s.peak_rss <= BIG_BUDGET;
    let close = (predicted as f64 - s.peak_rss as f64).abs() <= 0.2 * s.peak_rss as f64;
    println!(
        "\n{}: {BIG_SIDE}x{BIG_SIDE}, 3 channels, under --memory-limit 256MiB: peak RSS {}, \
         wall {:.1} s, {} spots; {}: cost model predicted {} ({:+.1}%)",
        if under { "PASS" } else { "FAIL" },
        human_bytes(s.peak_rss),
        s.wall.as_secs_f64(),
        rec["spots"]["count"],
        if close { "PASS" } else { "FAIL" },
        human_bytes(predicted),
        (predicted as f64 / s.peak_rss.max(1) as f64 - 1.0) * 100.0
    );
    println!(
        "plan: tile {}, {} workers, {} bands, {} detection pass(es)",
        rec["spots"]["tile"],
        rec["spots"]["workers"],
        rec["spots"]["bands"],
        rec["spots"]["detect_passes"]
    );
    // What was found, against the ground truth and numpy on the channel files.
    let csv = out.join(format!(
        "{}.spots.csv",
        big[0].file_stem().unwrap_or_default().to_string_lossy()
    ));
    let f1 = std::process::Command::new(&python)
        .arg("-c")
        .arg(F1)
        .arg(&truth)
        .args([csv.as_os_str(), "0:1".as_ref()])
        .output()
        .context("F1")?;
    let f1_text = String::from_utf8_lossy(&f1.stdout).trim().to_string();
    let f1_ok = f1.status.success()
        && f1_text
            .split_whitespace()
            .nth(3)
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= 0.95);
    println!(
        "{}: spots, precision, recall, F1 at 1.5 px against the ground truth: {f1_text} {}",
        if f1_ok { "PASS" } else { "FAIL" },
        String::from_utf8_lossy(&f1.stderr).trim()
    );
    let check = std::process::Command::new(&python)
        .arg("-c")
        .arg(READOUT)
        .arg(&csv)
        .args(&big)
        .output()
        .context("readout check")?;
    let readout_ok = check.status.success();
    println!(
        "{}: {}{}",
        if readout_ok { "PASS" } else { "FAIL" },
        String::from_utf8_lossy(&check.stdout).trim(),
        String::from_utf8_lossy(&check.stderr).trim()
    );
    if std::env::var_os("MEMBUDGET_BENCH_KEEP").is_some_and(|v| v == "1") {
        println!("inputs kept in {} (MEMBUDGET_BENCH_KEEP=1)", dir.display());
    } else {
        // 6 GiB on a shared disk: generated again next time.
        for p in big.iter().chain([&csv, &truth]) {
            super::remove(p)?;
        }
        super::remove(&dir.join(format!("spots-{BIG_SIDE}.stamp")))?;
    }
    Ok(under && close && f1_ok && readout_ok)
}
