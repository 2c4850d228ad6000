//! The `strip-convert` benchmark: a deterministic photo-like 10240x10240 RGB 8-bit TIFF
//! (a real Kodak photo from the shared data, upscaled bilinearly, plus hashed grain; strips
//! of 64 rows, uncompressed) converted losslessly by strip-convert and by its peers in the
//! same run, alternating program by program each round: `vips copy in.tif
//! out.jp2[lossless]` (libvips, tile-streaming), `opj_compress` and `grk_compress`
//! (whole-image). Target from issue 3: wall <= 0.8x libvips and peak RSS <= 0.5x libvips.
//! Then the bnf profile against libvips' default lossy save.

use super::{measure, print_table, Sample};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Image side.
const SIDE: u32 = 10240;
/// Rounds; each runs every program once, in turn.
const ROUNDS: usize = 2;
/// The budget strip-convert is given in its budgeted row.
const BUDGET: &str = "40MiB";
/// Bumped whenever the generated image changes.
const IMAGE_VERSION: &str = "1";

/// Generate (once), build, measure, print; true when the target was met.
pub fn run(root: &Path) -> Result<bool> {
    let dir = root.join("target/bench/strip-convert");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join(format!("photo-{SIDE}-v{IMAGE_VERSION}.tif"));
    if !src.exists() {
        let photo = root.join("../shared/data/tiff/kodim02-lzw.tif");
        println!("generating {} from {}", src.display(), photo.display());
        generate(&photo, &src)?;
    }
    let bin = crate::build_release(root, &["strip-convert"])?;
    let tool = bin.join("strip-convert");
    let out = |name: &str| dir.join(name);
    let s = |p: &Path| OsString::from(p);
    let programs: Vec<(String, Vec<OsString>, PathBuf)> = vec![
        (
            format!("strip-convert --memory-limit {BUDGET}"),
            vec![
                s(&tool),
                s(&src),
                "--force".into(),
                "-q".into(),
                "--memory-limit".into(),
                BUDGET.into(),
                "-o".into(),
                s(&out("budget")),
            ],
            out("budget").join(src.with_extension("jp2").file_name().unwrap_or_default()),
        ),
        (
            "strip-convert (default)".into(),
            vec![
                s(&tool),
                s(&src),
                "--force".into(),
                "-q".into(),
                "-o".into(),
                s(&out("default")),
            ],
            out("default").join(src.with_extension("jp2").file_name().unwrap_or_default()),
        ),
        (
            "vips copy [lossless]".into(),
            vec![
                "vips".into(),
                "copy".into(),
                s(&src),
                format!("{}[lossless]", out("vips.jp2").display()).into(),
            ],
            out("vips.jp2"),
        ),
        (
            "opj_compress".into(),
            vec![
                "opj_compress".into(),
                "-i".into(),
                s(&src),
                "-o".into(),
                s(&out("opj.jp2")),
            ],
            out("opj.jp2"),
        ),
        (
            "grk_compress".into(),
            vec![
                "grk_compress".into(),
                "-i".into(),
                s(&src),
                "-o".into(),
                s(&out("grk.jp2")),
            ],
            out("grk.jp2"),
        ),
    ];
    let null = PathBuf::from("/dev/null");
    let mut runs: Vec<Vec<Sample>> = vec![Vec::new(); programs.len()];
    for _ in 0..ROUNDS {
        for (i, (name, argv, output)) in programs.iter().enumerate() {
            let _ = std::fs::remove_file(output);
            runs[i].push(measure(name, 1, &null, &[0], argv)?);
        }
    }
    let samples: Vec<Sample> = runs.iter().map(|r| combine(r)).collect();
    let mpx = u64::from(SIDE) * u64::from(SIDE) / 1_000_000;
    println!(
        "strip-convert: {SIDE}x{SIDE} RGB 8-bit TIFF (strips, uncompressed), lossless, \
         {ROUNDS} alternating rounds, median wall\n"
    );
    print_table(mpx, "Mpx", &samples);
    println!();
    for (name, _, output) in &programs {
        let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
        println!("{name}: {bytes} bytes");
    }
    let (ours, vips) = (&samples[0], &samples[2]);
    let wall = ours.wall.as_secs_f64() / vips.wall.as_secs_f64().max(1e-9);
    let rss = ours.peak_rss as f64 / vips.peak_rss.max(1) as f64;
    let ok = wall <= 0.8 && rss <= 0.5;
    println!(
        "\n{}: strip-convert --memory-limit {BUDGET} at {wall:.2}x libvips' wall (target <= \
         0.8) and {rss:.2}x its peak RSS (target <= 0.5)",
        if ok { "PASS" } else { "FAIL" }
    );

    // The bnf profile against libvips' default lossy JPEG 2000.
    let bnf = measure(
        "strip-convert --profile bnf",
        1,
        &null,
        &[0],
        &[
            s(&tool),
            s(&src),
            "--force".into(),
            "-q".into(),
            "--profile".into(),
            "bnf".into(),
            "-o".into(),
            s(&out("bnf")),
        ],
    )?;
    let vips_lossy = measure(
        "vips copy (lossy default)",
        1,
        &null,
        &[0],
        &[
            "vips".into(),
            "copy".into(),
            s(&src),
            s(&out("vips-lossy.jp2")),
        ],
    )?;
    println!("\nlossy: the bnf profile (9/7, 1:4, 10 layers, RPCL, SOP/EPH/PLT) against libvips\n");
    print_table(mpx, "Mpx", &[bnf, vips_lossy]);
    Ok(ok)
}

/// Median wall and largest peak of several single runs of one program.
fn combine(runs: &[Sample]) -> Sample {
    let mut walls: Vec<_> = runs.iter().map(|s| s.wall).collect();
    walls.sort();
    let peak = runs.iter().map(|s| s.peak_rss).max().unwrap_or(0);
    let mut s = runs[0].clone();
    s.wall = walls[walls.len() / 2];
    s.peak_rss = peak;
    s.peak_is_own = runs.iter().all(|r| r.peak_is_own);
    s
}

/// A 10240x10240 RGB image: the photo upscaled bilinearly (fixed-point, so every machine
/// computes the same bytes) plus grain from a hash of the position; written strip by strip,
/// never whole in memory.
fn generate(photo: &Path, dest: &Path) -> Result<()> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::encoder::{colortype, TiffEncoder};
    let f = std::fs::File::open(photo).with_context(|| format!("opening {}", photo.display()))?;
    let mut d = Decoder::new(std::io::BufReader::new(f))?;
    let (pw, ph) = d.dimensions()?;
    let DecodingResult::U8(px) = d.read_image()? else {
        anyhow::bail!("{}: not 8-bit", photo.display());
    };
    anyhow::ensure!(
        px.len() == (pw * ph * 3) as usize,
        "{}: not RGB",
        photo.display()
    );
    let tmp = dest.with_extension("tif.part");
    let w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut enc = TiffEncoder::new(w)?;
    let mut img = enc.new_image::<colortype::RGB8>(SIDE, SIDE)?;
    img.rows_per_strip(64)?;
    let mut y = 0u32;
    loop {
        let n = img.next_strip_sample_count();
        if n == 0 {
            break;
        }
        let rows = u32::try_from(n / u64::from(SIDE * 3))?;
        let mut buf = Vec::with_capacity(n as usize);
        for yy in y..y + rows {
            // Source coordinate in 1/256 pixels.
            let sy = (u64::from(yy) * u64::from(ph - 1) * 256 / u64::from(SIDE - 1)) as u32;
            let (y0, fy) = (sy / 256, sy % 256);
            let y1 = (y0 + 1).min(ph - 1);
            for xx in 0..SIDE {
                let sx = (u64::from(xx) * u64::from(pw - 1) * 256 / u64::from(SIDE - 1)) as u32;
                let (x0, fx) = (sx / 256, sx % 256);
                let x1 = (x0 + 1).min(pw - 1);
                for c in 0..3 {
                    let p = |x: u32, y: u32| u32::from(px[((y * pw + x) * 3 + c) as usize]);
                    let top = p(x0, y0) * (256 - fx) + p(x1, y0) * fx;
                    let bottom = p(x0, y1) * (256 - fx) + p(x1, y1) * fx;
                    let v = (top * (256 - fy) + bottom * fy) >> 16;
                    let grain = i32::from(crate::samples::pattern(xx, yy, c, 7) & 0x0F) - 8;
                    buf.push((v as i32 + grain).clamp(0, 255) as u8);
                }
            }
        }
        img.write_strip(&buf)?;
        y += rows;
    }
    img.finish()?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}
