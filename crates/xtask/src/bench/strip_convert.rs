//! The `strip-convert` benchmark: a deterministic photo-like 10240x10240 RGB 8-bit TIFF
//! (a real Kodak photo from the shared data, upscaled bilinearly, plus hashed grain; strips
//! of 64 rows, uncompressed) converted losslessly by strip-convert and by its peers in the
//! same run, alternating program by program each round: `vips copy in.tif
//! out.jp2[lossless]` (libvips, tile-streaming), `opj_compress` and `grk_compress`
//! (whole-image). Target from issue 3: wall <= 0.8x libvips and peak RSS <= 0.5x libvips,
//! checked on strip-convert's default run (no options) and its budgeted run. Then the bnf
//! profile against libvips' default lossy save, and a 1-gigapixel RGB TIFF (32768x32768,
//! 3 GiB, uncompressed strips) under `--memory-limit 64MiB`, whose peak RSS must stay within
//! the budget.

use super::{alternate, measure, print_table, Contender};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Image side.
pub(super) const SIDE: u32 = 10240;
/// Rounds; each runs every program once, in turn.
const ROUNDS: usize = 3;
/// The budget strip-convert is given in its budgeted row.
const BUDGET: &str = "40MiB";
/// Bumped whenever the generated image changes.
pub(super) const IMAGE_VERSION: &str = "1";
/// Side of the 1-gigapixel image.
pub(super) const GIGA_SIDE: u32 = 32768;
/// Its budget.
const GIGA_BUDGET: &str = "64MiB";
const GIGA_BUDGET_BYTES: u64 = 64 << 20;

/// Generate (once), build, measure, print; true when the target was met.
pub fn run(root: &Path) -> Result<bool> {
    let dir = root.join("target/bench/strip-convert");
    let src = photo(root)?;
    drop_predictor_tag(&src)?;
    let bin = crate::build_release(root, &["strip-convert"])?;
    // A private copy: other builds in the shared target dir may relink the binary while
    // the bench runs.
    let tool = dir.join("strip-convert");
    std::fs::copy(bin.join("strip-convert"), &tool).context("copying strip-convert")?;
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
    let contenders: Vec<Contender> = programs
        .iter()
        .map(|(name, argv, output)| Contender::removing(name.clone(), argv.clone(), output))
        .collect();
    let samples = alternate(ROUNDS, &contenders)?;
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
    let vips = &samples[2];
    let mut ok = true;
    for ours in &samples[..2] {
        let wall = ours.wall.as_secs_f64() / vips.wall.as_secs_f64().max(1e-9);
        let rss = ours.peak_rss as f64 / vips.peak_rss.max(1) as f64;
        let pass = wall <= 0.8 && rss <= 0.5;
        ok &= pass;
        println!(
            "{}: {} at {wall:.2}x libvips' wall (target <= 0.8) and {rss:.2}x its peak RSS \
             (target <= 0.5)",
            if pass { "PASS" } else { "FAIL" },
            ours.name
        );
    }

    // The bnf profile against libvips' default lossy JPEG 2000.
    let null = PathBuf::from("/dev/null");
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
    for (name, path) in [
        (
            "bnf",
            out("bnf").join(src.with_extension("jp2").file_name().unwrap_or_default()),
        ),
        ("vips lossy", out("vips-lossy.jp2")),
    ] {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!("{name}: {bytes} bytes");
    }

    ok &= gigapixel(&dir, &src, &tool)?;
    Ok(ok)
}

/// The benchmark photo, generated once (tile-enhance's benchmark thumbnails it too).
pub(super) fn photo(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench/strip-convert");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join(format!("photo-{SIDE}-v{IMAGE_VERSION}.tif"));
    if !src.exists() {
        let photo = root.join("tests/data/tiff/kodim02-lzw.tif");
        println!("generating {} from {}", src.display(), photo.display());
        generate(&photo, &src)?;
    }
    Ok(src)
}

/// The 1-gigapixel image converted under a 64 MiB budget, once: true when its peak RSS
/// stayed within the budget (or when the disk has no room for it, said so).
fn gigapixel(dir: &Path, photo_tif: &Path, tool: &Path) -> Result<bool> {
    let src = dir.join(format!("giga-{GIGA_SIDE}-v{IMAGE_VERSION}.tif"));
    let raw = u64::from(GIGA_SIDE) * u64::from(GIGA_SIDE) * 3;
    // Room for the source (if not there yet), its lossless JP2 (about 0.6x) and slack.
    let need = if src.exists() { 0 } else { raw } + raw + (2 << 30);
    let free = free_bytes(dir)?;
    if free < need {
        println!(
            "\n1 gigapixel: SKIPPED, {} GiB free on the disk, {} GiB needed",
            free >> 30,
            need >> 30
        );
        return Ok(true);
    }
    if !src.exists() {
        println!(
            "\ngenerating {} from {}",
            src.display(),
            photo_tif.display()
        );
        generate_giga(photo_tif, &src)?;
    }
    drop_predictor_tag(&src)?;
    let outdir = dir.join("giga");
    let sample = measure(
        &format!("strip-convert --memory-limit {GIGA_BUDGET}"),
        1,
        Path::new("/dev/null"),
        &[0],
        &[
            OsString::from(tool),
            OsString::from(&src),
            "--force".into(),
            "-q".into(),
            "--memory-limit".into(),
            GIGA_BUDGET.into(),
            "-o".into(),
            OsString::from(&outdir),
        ],
    )?;
    let record: serde_json::Value =
        serde_json::from_slice(sample.stdout.split(|&b| b == b'\n').next().unwrap_or(b"{}"))
            .unwrap_or_default();
    let r = &record["strip-convert"];
    let output = outdir.join(src.with_extension("jp2").file_name().unwrap_or_default());
    let bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&output);
    let gpx = f64::from(GIGA_SIDE) * f64::from(GIGA_SIDE) / 1e9;
    let pass = sample.peak_rss <= GIGA_BUDGET_BYTES && r["status"] == "ok";
    println!(
        "\n{}: {GIGA_SIDE}x{GIGA_SIDE} RGB ({gpx:.2} Gpx, {:.1} GiB uncompressed strips), \
         lossless, --memory-limit {GIGA_BUDGET}: {:.1} s, peak RSS {:.1} MiB (predicted {:.1} \
         MiB), tile {}, {} threads, {bytes} bytes",
        if pass { "PASS" } else { "FAIL" },
        raw as f64 / f64::from(1u32 << 30),
        sample.wall.as_secs_f64(),
        sample.peak_rss as f64 / 1048576.0,
        r["predicted_peak_rss"].as_f64().unwrap_or(0.0) / 1048576.0,
        r["tile"],
        r["threads"],
    );
    Ok(pass)
}

/// Free bytes on the file system holding `dir`.
pub(super) fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain data (integers), valid when zeroed.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills the struct it is given; `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    anyhow::ensure!(rc == 0, "statvfs {}", dir.display());
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The 1-gigapixel image: the 10240 photo-like image repeated across and down (strips of
/// 64 rows copied from its strips, which are 64 rows too), so it costs copies, not a
/// per-pixel computation in xtask's unoptimised build; written strip by strip.
pub(super) fn generate_giga(photo_tif: &Path, dest: &Path) -> Result<()> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::encoder::{colortype, TiffEncoder};
    let f = std::fs::File::open(photo_tif)?;
    let mut d = Decoder::new(std::io::BufReader::new(f))?;
    let (pw, ph) = d.dimensions()?;
    anyhow::ensure!(
        d.chunk_dimensions().1 == 64 && ph % 64 == 0,
        "{}: strips of 64 rows expected",
        photo_tif.display()
    );
    let tmp = dest.with_extension("tif.part");
    let w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let mut enc = TiffEncoder::new(w)?;
    let mut img = enc.new_image::<colortype::RGB8>(GIGA_SIDE, GIGA_SIDE)?;
    img.rows_per_strip(64)?;
    let strips_in_photo = ph / 64;
    let mut k = 0u32;
    loop {
        let n = img.next_strip_sample_count();
        if n == 0 {
            break;
        }
        let DecodingResult::U8(strip) = d.read_chunk(k % strips_in_photo)? else {
            anyhow::bail!("{}: not 8-bit", photo_tif.display());
        };
        let rows = (n / u64::from(GIGA_SIDE * 3)) as usize;
        let (src_row, dst_row) = (pw as usize * 3, GIGA_SIDE as usize * 3);
        let mut buf = Vec::with_capacity(n as usize);
        for r in 0..rows {
            let line = &strip[r * src_row..(r + 1) * src_row];
            while buf.len() < (r + 1) * dst_row {
                let take = ((r + 1) * dst_row - buf.len()).min(src_row);
                buf.extend_from_slice(&line[..take]);
            }
        }
        img.write_strip(&buf)?;
        k += 1;
    }
    img.finish()?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// A 10240x10240 RGB image: the photo upscaled bilinearly (fixed-point, so every machine
/// computes the same bytes) plus grain from a hash of the position; written strip by strip,
/// never whole in memory.
pub(super) fn generate(photo: &Path, dest: &Path) -> Result<()> {
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

/// Remove the Predictor tag (317) from the first IFD of a classic little-endian TIFF, in
/// place. The tiff crate always writes it (1: none), which is valid TIFF, but libtiff only
/// registers tag 317 for codecs that use predictors, so libvips, opj_compress and
/// grk_compress print a warning per strip on an uncompressed file. Idempotent: a file
/// without the tag is left as it is. The tiff crate has no option to leave it out, so the
/// IFD is patched by hand (entries are 12 bytes, sorted, followed by the next-IFD offset).
pub(super) fn drop_predictor_tag(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut head = [0u8; 8];
    f.read_exact(&mut head)?;
    anyhow::ensure!(
        &head[..4] == b"II*\0",
        "{}: not a classic little-endian TIFF",
        path.display()
    );
    let ifd = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    f.seek(SeekFrom::Start(ifd))?;
    let mut count = [0u8; 2];
    f.read_exact(&mut count)?;
    let n = usize::from(u16::from_le_bytes(count));
    let mut body = vec![0u8; n * 12 + 4];
    f.read_exact(&mut body)?;
    let next = body[n * 12..].to_vec();
    let entries: Vec<&[u8]> = body[..n * 12]
        .chunks(12)
        .filter(|e| u16::from_le_bytes([e[0], e[1]]) != 317)
        .collect();
    if entries.len() == n {
        return Ok(());
    }
    let mut out = Vec::with_capacity(2 + n * 12 + 4);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in &entries {
        out.extend_from_slice(e);
    }
    out.extend_from_slice(&next);
    // The freed 12 bytes after the IFD are zeroed: nothing points there.
    out.resize(2 + n * 12 + 4, 0);
    f.seek(SeekFrom::Start(ifd))?;
    f.write_all(&out)?;
    f.sync_all()?;
    Ok(())
}
