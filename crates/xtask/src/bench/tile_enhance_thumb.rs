//! The thumbnail part of the `tile-enhance` benchmark (issue 10, part 4): a
//! deterministic photo-like 10240x10240 JPEG (quality 90) to 256 pixels by
//! `tile-enhance thumbnail` and by `vipsthumbnail -s 256`, same run, alternating program
//! by program each round, median wall and largest peak RSS. Target: wall <= 0.8x and peak
//! RSS <= 0.25x vipsthumbnail. Then the same on a progressive JPEG of the same photo
//! (libjpeg holds every coefficient before its first row; reported, no target) and on
//! the 10240x10240 striped, uncompressed TIFF the JPEGs are made from, where both must
//! decode every pixel (reported, no target).
//!
//! The images are strip-convert's benchmark photo (a Kodak photo upscaled bilinearly in
//! fixed point plus hashed grain) and its JPEG by the pure-Rust `jpeg-encoder` (so no
//! libjpeg of either side made it).

use super::{alternate, argv, print_table, Contender, Sample};
use anyhow::{Context, Result};
use std::path::Path;

/// Rounds (unless `MEMBUDGET_BENCH_ROUNDS` says); each runs every program once, in turn.
const ROUNDS: usize = 5;
/// Thumbnail size.
const SIZE: &str = "256";
/// Bumped whenever the generated JPEG changes.
const JPEG_VERSION: &str = "1";

/// The thumbnail cases, with `tool` the release tile-enhance binary and `dir` the
/// benchmark's directory: true when the JPEG target was met.
pub fn thumbnail_cases(root: &Path, dir: &Path, tool: &Path) -> Result<bool> {
    let tif = super::strip_convert::photo(root)?;
    let jpg = dir.join(format!("photo-10240-q90-v{JPEG_VERSION}.jpg"));
    if !jpg.exists() {
        println!("generating {} from {}", jpg.display(), tif.display());
        to_jpeg(&tif, &jpg)?;
    }
    let prog = dir.join(format!("photo-10240-q90-progressive-v{JPEG_VERSION}.jpg"));
    if !prog.exists() {
        println!("generating {} from {}", prog.display(), tif.display());
        to_jpeg_with(&tif, &prog, true)?;
    }
    let mut ok = true;
    for (label, src, target) in [
        ("10240x10240 JPEG q90", &jpg, true),
        ("10240x10240 progressive JPEG q90", &prog, false),
        (
            "10240x10240 RGB TIFF (strips of 64 rows, uncompressed)",
            &tif,
            false,
        ),
    ] {
        let samples = compare(dir, tool, src)?;
        println!(
            "\nthumbnail: {label} to {SIZE} px, {} alternating rounds, median wall\n",
            super::rounds_or(ROUNDS)
        );
        print_table(100, "Mpx", &samples);
        let (ours, vips) = (&samples[0], &samples[1]);
        let wall = ours.wall.as_secs_f64() / vips.wall.as_secs_f64().max(1e-9);
        let rss = ours.peak_rss as f64 / vips.peak_rss.max(1) as f64;
        if target {
            let pass = wall <= 0.8 && rss <= 0.25;
            ok &= pass;
            println!(
                "{}: tile-enhance thumbnail at {wall:.2}x vipsthumbnail's wall (target <= 0.8) \
                 and {rss:.2}x its peak RSS (target <= 0.25)",
                if pass { "PASS" } else { "FAIL" }
            );
        } else {
            println!(
                "tile-enhance thumbnail at {wall:.2}x vipsthumbnail's wall and {rss:.2}x its \
                 peak RSS (no target)"
            );
        }
    }
    Ok(ok)
}

/// Both programs on `src`, alternating, [`super::rounds_or`] times.
fn compare(dir: &Path, tool: &Path, src: &Path) -> Result<Vec<Sample>> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let vips_out = out.join("vips_%s.jpg");
    alternate(
        super::rounds_or(ROUNDS),
        &[
            Contender::new(
                format!("tile-enhance thumbnail -s {SIZE}"),
                argv(&[
                    &tool,
                    &"thumbnail",
                    &"-s",
                    &SIZE,
                    &"--force",
                    &"-o",
                    &out,
                    &src,
                ]),
            ),
            Contender::new(
                format!("vipsthumbnail -s {SIZE}"),
                argv(&[&"vipsthumbnail", &"-s", &SIZE, &src, &"-o", &vips_out]),
            ),
        ],
    )
}

/// The photo TIFF as a baseline JPEG at quality 90 (4:2:0), by `jpeg-encoder`.
fn to_jpeg(tif: &Path, dest: &Path) -> Result<()> {
    to_jpeg_with(tif, dest, false)
}

/// The photo TIFF as a JPEG at quality 90 (4:2:0), baseline or progressive (its default
/// scans), by `jpeg-encoder`.
fn to_jpeg_with(tif: &Path, dest: &Path, progressive: bool) -> Result<()> {
    use tiff::decoder::{Decoder, DecodingResult};
    let f = std::fs::File::open(tif).with_context(|| format!("opening {}", tif.display()))?;
    let mut d =
        Decoder::new(std::io::BufReader::new(f))?.with_limits(tiff::decoder::Limits::unlimited());
    let (w, h) = d.dimensions()?;
    let DecodingResult::U8(px) = d.read_image()? else {
        anyhow::bail!("{}: not 8-bit", tif.display());
    };
    let tmp = dest.with_extension("jpg.part");
    let mut enc = jpeg_encoder::Encoder::new_file(&tmp, 90)?;
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_progressive(progressive);
    enc.encode(
        &px,
        u16::try_from(w)?,
        u16::try_from(h)?,
        jpeg_encoder::ColorType::Rgb,
    )?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}
