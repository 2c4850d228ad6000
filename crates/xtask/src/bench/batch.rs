//! The `batch` benchmark (issue 14): directories of many small inputs, where the work is
//! in starting, opening and finishing files rather than in one file's pixels or points,
//! so the tools must run several inputs at once to use every core.
//!
//! - 300 small RGB TIFFs (1 to 4 MP, seeded numpy gradients with grain, uncompressed
//!   strips) through `strip-convert` (lossless), against `parallel -j$(nproc) vips copy
//!   {} {.}.jp2[lossless]`. Target: wall <= 0.6x the parallel vips batch.
//! - 50 small LAZ tiles (about 60k points each, the `laz-enrich` bench's synthetic
//!   generator with one seed a tile) through `laz-enrich` (r = 1 m, default features), against
//!   laz-enrich one file at a time (a shell loop, each run with every thread) and
//!   jakteristics in a loop (one Python process, 2 threads). Target: the batch at least
//!   1.6x faster than one file at a time.
//!
//! Same machine, same run, programs alternating round by round.

use super::{alternate, print_table, Contender, Sample};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Small TIFFs in the batch.
const TIFFS: usize = 300;
/// Small LAZ tiles in the batch.
const TILES: usize = 50;
/// Points of each tile.
const TILE_POINTS: u64 = 60_000;
/// Rounds; each runs every program once, in turn.
const ROUNDS: usize = 3;
/// Bumped whenever a generator changes.
const VERSION: &str = "1";

/// 300 TIFFs, each w x h with w*h from 1 to 4 MP, an RGB gradient and seeded grain.
const GENERATE_TIFFS: &str = r#"
import sys, os, numpy as np, tifffile
out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
os.makedirs(out, exist_ok=True)
for i in range(n):
    mp = rng.uniform(1.0, 4.0) * 1e6
    aspect = rng.uniform(0.6, 1.6)
    w = int(np.sqrt(mp * aspect)); h = int(mp / w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 200, y / h * 200, (x + y) / (w + h) * 200], axis=-1)
    grain = rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)
    img = np.clip(base + grain + 20, 0, 255).astype(np.uint8)
    tifffile.imwrite(os.path.join(out, f"scan-{i:03d}.tif"), img, photometric="rgb", rowsperstrip=64)
"#;

/// jakteristics over every tile in one process, as a user's loop would.
const PEER_LOOP: &str = r#"
import sys, os, numpy as np, laspy, jakteristics
out, r, names, files = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:]
for inp in files:
    las = laspy.read(inp)
    f = jakteristics.compute_features(np.ascontiguousarray(las.xyz), r, feature_names=names, num_threads=2)
    las.add_extra_dims([laspy.ExtraBytesParams(name=n, type=np.float32) for n in names])
    for i, n in enumerate(names):
        las[n] = f[:, i]
    las.write(os.path.join(out, os.path.basename(inp)))
"#;

/// The features every program computes (laz-enrich's default set).
const FEATURES: &str = "nx,ny,nz,linearity,planarity,sphericity,omnivariance,anisotropy,eigenentropy,surface_variation,verticality,number_of_neighbors";

/// Generate (once), build, measure, print; true when both targets were met.
pub fn run(root: &Path) -> Result<bool> {
    let dir = root.join("target/bench/batch");
    std::fs::create_dir_all(&dir)?;
    let python = crate::suite::ensure_venv(root)?;
    let bin = crate::build_release(root, &["strip-convert", "laz-enrich"])?;
    // Private copies: other builds may relink the binaries while the bench runs.
    let copy = |name: &str| -> Result<PathBuf> {
        let to = dir.join(name);
        std::fs::copy(bin.join(name), &to).with_context(|| format!("copying {name}"))?;
        Ok(to)
    };
    let (strip_convert, laz_enrich) = (copy("strip-convert")?, copy("laz-enrich")?);
    let tiffs = tiffs(&python, &dir)?;
    let tiles = tiles(&python, &dir)?;
    let tiff_ok = tiff_batch(&dir, &strip_convert, &tiffs)?;
    let laz_ok = laz_batch(&dir, &python, &laz_enrich, &tiles)?;
    Ok(tiff_ok && laz_ok)
}

/// The TIFF directory (generated once, stamped).
fn tiffs(python: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let tdir = dir.join("tiffs");
    let stamp = dir.join("tiffs.stamp");
    let want = format!("{VERSION} {TIFFS}");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!("xtask: generating {TIFFS} TIFFs in {}", tdir.display());
        let _ = std::fs::remove_dir_all(&tdir);
        let st = std::process::Command::new(python)
            .args(["-c", GENERATE_TIFFS])
            .arg(&tdir)
            .args([TIFFS.to_string(), "14".into()])
            .status()
            .context("running the TIFF generator")?;
        anyhow::ensure!(st.success(), "generating the TIFFs failed ({st})");
        std::fs::write(&stamp, want)?;
    }
    listed(&tdir, "tif")
}

/// The LAZ tiles (generated once, stamped): one seed a tile.
fn tiles(python: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let ldir = dir.join("tiles");
    let stamp = dir.join("tiles.stamp");
    let want = format!("{VERSION} {TILES} {TILE_POINTS}");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!("xtask: generating {TILES} LAZ tiles in {}", ldir.display());
        let _ = std::fs::remove_dir_all(&ldir);
        std::fs::create_dir_all(&ldir)?;
        for i in 0..TILES {
            let st = std::process::Command::new(python)
                .args(["-c", super::laz_enrich::GENERATE])
                .arg(ldir.join(format!("tile-{i:02}.laz")))
                .args([TILE_POINTS.to_string(), (100 + i).to_string()])
                .status()
                .context("running the tile generator")?;
            anyhow::ensure!(st.success(), "generating tile {i} failed ({st})");
        }
        std::fs::write(&stamp, want)?;
    }
    listed(&ldir, "laz")
}

/// The files of `dir` ending in `.ext`, sorted.
fn listed(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}

/// A fresh output directory.
fn fresh(dir: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

/// A `bash -c` command line.
fn bash(script: &str, args: &[OsString]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["bash".into(), "-c".into(), script.into(), "bash".into()];
    v.extend_from_slice(args);
    v
}

/// [`ROUNDS`] rounds of every program in turn (the shared runner: median wall, largest
/// peak), each run writing into a fresh output directory.
fn rounds(programs: &[(String, Vec<OsString>, PathBuf)]) -> Result<Vec<Sample>> {
    let contenders: Vec<Contender> = programs
        .iter()
        .map(|(name, argv, out)| Contender {
            before: Box::new(move || fresh(out).map(drop)),
            ..Contender::new(name.clone(), argv.clone())
        })
        .collect();
    alternate(ROUNDS, &contenders)
}

fn tiff_batch(dir: &Path, tool: &Path, tiffs: &[PathBuf]) -> Result<bool> {
    let (ours, peer) = (dir.join("out-strip-convert"), dir.join("out-vips"));
    let mut argv: Vec<OsString> = vec![
        tool.into(),
        "-q".into(),
        "-f".into(),
        "-o".into(),
        ours.clone().into(),
        "--base".into(),
        dir.join("tiffs").into(),
    ];
    argv.extend(tiffs.iter().map(OsString::from));
    let files: Vec<OsString> = tiffs.iter().map(OsString::from).collect();
    let vips = bash(
        r#"out=$1; shift; printf '%s\n' "$@" | parallel -j"$(nproc)" vips copy {} "$out/{/.}.jp2[lossless]""#,
        &[vec![peer.clone().into()], files].concat(),
    );
    let programs = vec![
        ("strip-convert (batch)".to_string(), argv, ours.clone()),
        ("parallel -j$(nproc) vips copy".to_string(), vips, peer),
    ];
    let samples = rounds(&programs)?;
    let mpx: u64 = tiffs
        .iter()
        .filter_map(|p| membudget::probe::probe_path(p).ok())
        .filter_map(|p| p.image.map(|i| i.width * i.height))
        .sum::<u64>()
        / 1_000_000;
    println!(
        "\nbatch: {} small TIFFs ({mpx} Mpx in all), lossless JP2, median of {ROUNDS} rounds\n",
        tiffs.len()
    );
    print_table(mpx, "Mpx", &samples);
    let written = listed(&ours, "jp2")?.len();
    let ratio = samples[0].wall.as_secs_f64() / samples[1].wall.as_secs_f64().max(1e-9);
    let ok = ratio <= 0.6 && written == tiffs.len();
    println!(
        "{}: strip-convert's batch at {ratio:.2}x the parallel vips batch's wall (target <= \
         0.6); {written} of {} JP2s written",
        if ok { "PASS" } else { "FAIL" },
        tiffs.len()
    );
    Ok(ok)
}

fn laz_batch(dir: &Path, python: &Path, tool: &Path, tiles: &[PathBuf]) -> Result<bool> {
    let outs = ["out-laz-batch", "out-laz-one", "out-jakteristics"].map(|n| dir.join(n));
    let files: Vec<OsString> = tiles.iter().map(OsString::from).collect();
    let common = |out: &Path| -> Vec<OsString> {
        vec![
            tool.into(),
            "-q".into(),
            "-f".into(),
            "-R".into(),
            "1".into(),
            "-F".into(),
            FEATURES.into(),
            "-o".into(),
            out.into(),
        ]
    };
    let batch = [common(&outs[0]), files.clone()].concat();
    let one = bash(
        r#"n=$1; shift; for f in "${@:$((n + 1))}"; do "${@:1:$n}" "$f" || exit 1; done"#,
        &[
            vec![common(&outs[1]).len().to_string().into()],
            common(&outs[1]),
            files.clone(),
        ]
        .concat(),
    );
    let peer = [
        vec![
            python.into(),
            "-c".into(),
            PEER_LOOP.into(),
            outs[2].clone().into(),
            "1.0".into(),
            FEATURES.into(),
        ],
        files,
    ]
    .concat();
    let programs = vec![
        ("laz-enrich (batch)".to_string(), batch, outs[0].clone()),
        (
            "laz-enrich, one file at a time".to_string(),
            one,
            outs[1].clone(),
        ),
        (
            "jakteristics in a loop (2 threads)".to_string(),
            peer,
            outs[2].clone(),
        ),
    ];
    let samples = rounds(&programs)?;
    let points = TILE_POINTS * tiles.len() as u64;
    println!(
        "\nbatch: {} LAZ tiles of {TILE_POINTS} points, r = 1 m, median of {ROUNDS} rounds\n",
        tiles.len()
    );
    print_table(points, "points", &samples);
    let written = listed(&outs[0], "laz")?.len();
    let speedup = samples[1].wall.as_secs_f64() / samples[0].wall.as_secs_f64().max(1e-9);
    let vs_peer = samples[2].wall.as_secs_f64() / samples[0].wall.as_secs_f64().max(1e-9);
    let ok = speedup >= 1.6 && written == tiles.len();
    println!(
        "{}: the batch is {speedup:.2}x faster than one file at a time (target >= 1.6) and \
         {vs_peer:.2}x faster than jakteristics in a loop; {written} of {} clouds written",
        if ok { "PASS" } else { "FAIL" },
        tiles.len()
    );
    Ok(ok)
}
