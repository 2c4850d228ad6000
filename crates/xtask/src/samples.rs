//! Deterministic sample files for the demo and the benchmarks: real, valid TIFF, PNG,
//! JPEG, FITS and ZIP files written from a seeded pattern, so every run makes the same
//! bytes and a probe has something true to find.
//!
//! TIFF, PNG, JPEG and ZIP go through their crates' encoders; FITS is written by hand
//! because its format is 80-character ASCII cards in 2880-byte blocks, which no crate in
//! the workspace writes.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A pixel value with some structure (gradients, rings) and some noise, so compressors
/// behave as on real images: neither trivially compressible nor incompressible.
pub fn pattern(x: u32, y: u32, channel: u32, seed: u32) -> u8 {
    let mut h = x.wrapping_mul(0x9E37_79B1)
        ^ y.wrapping_mul(0x85EB_CA77)
        ^ channel.wrapping_mul(0xC2B2_AE3D)
        ^ seed.wrapping_mul(0x27D4_EB2F);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    let noise = h & 0x0F;
    let dx = i64::from(x % 512) - 256;
    let dy = i64::from(y % 512) - 256;
    let ring = ((dx * dx + dy * dy) >> 6) as u32;
    let grad = (x / 4 + y / 8 + channel * 60 + seed) & 0xFF;
    ((grad + ring + noise) & 0xFF) as u8
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

/// Rows `y0..y1` of an image with `bands` interleaved samples per pixel.
fn rows(width: u32, bands: u32, y0: u32, y1: u32, seed: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity((width * bands * (y1 - y0)) as usize);
    for y in y0..y1 {
        for x in 0..width {
            for c in 0..bands {
                buf.push(pattern(x, y, c, seed));
            }
        }
    }
    buf
}

/// TIFF compression of a sample.
#[derive(Debug, Clone, Copy)]
pub enum TiffCompression {
    /// Uncompressed strips.
    None,
    /// LZW strips.
    Lzw,
    /// Deflate strips.
    Deflate,
}

/// An 8-bit gray (`bands` = 1) or RGB (`bands` = 3) TIFF in strips of 64 rows.
///
/// Uncompressed samples are written strip by strip, so a large one never sits whole in
/// memory. Compressed ones are encoded from the whole image: tiff 0.11's
/// `ImageEncoder::write_strip` does not apply the compression (only `write_data` sets
/// it on the writer), so streamed strips would be raw bytes under an LZW tag.
pub fn tiff(
    path: &Path,
    width: u32,
    height: u32,
    bands: u32,
    compression: TiffCompression,
    seed: u32,
) -> Result<()> {
    use tiff::encoder::{colortype, compression::DeflateLevel, Compression, TiffEncoder};
    let comp = match compression {
        TiffCompression::None => Compression::Uncompressed,
        TiffCompression::Lzw => Compression::Lzw,
        TiffCompression::Deflate => Compression::Deflate(DeflateLevel::Fast),
    };
    let mut enc = TiffEncoder::new(create(path)?)?.with_compression(comp);
    macro_rules! strips {
        ($ct:ty) => {{
            let mut img = enc.new_image::<$ct>(width, height)?;
            img.rows_per_strip(64)?;
            if !matches!(compression, TiffCompression::None) {
                return Ok(img.write_data(&rows(width, bands, 0, height, seed))?);
            }
            let mut y = 0;
            loop {
                let samples = img.next_strip_sample_count();
                if samples == 0 {
                    break;
                }
                let n = u32::try_from(samples / u64::from(width * bands))?;
                img.write_strip(&rows(width, bands, y, y + n, seed))?;
                y += n;
            }
            img.finish()?;
        }};
    }
    match bands {
        1 => strips!(colortype::Gray8),
        3 => strips!(colortype::RGB8),
        b => anyhow::bail!("tiff sample: {b} bands not supported"),
    }
    Ok(())
}

/// An 8-bit gray or RGB PNG.
pub fn png(path: &Path, width: u32, height: u32, bands: u32, seed: u32) -> Result<()> {
    let mut w = create(path)?;
    write_png(&mut w, width, height, bands, seed)?;
    w.flush()?;
    Ok(())
}

fn write_png<W: Write>(w: W, width: u32, height: u32, bands: u32, seed: u32) -> Result<()> {
    let mut enc = png::Encoder::new(w, width, height);
    enc.set_color(if bands == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&rows(width, bands, 0, height, seed))?;
    writer.finish()?;
    Ok(())
}

/// A baseline RGB JPEG.
pub fn jpeg(path: &Path, width: u16, height: u16, seed: u32) -> Result<()> {
    let data = rows(u32::from(width), 3, 0, u32::from(height), seed);
    let enc = jpeg_encoder::Encoder::new(create(path)?, 85);
    enc.encode(&data, width, height, jpeg_encoder::ColorType::Rgb)?;
    Ok(())
}

/// A FITS primary HDU holding a 16-bit signed image (BITPIX = 16) with BZERO = 32768,
/// i.e. unsigned 16-bit data as astronomers store it.
pub fn fits(path: &Path, width: u32, height: u32, seed: u32) -> Result<()> {
    let mut w = create(path)?;
    let cards = [
        "SIMPLE  =                    T / conforms to FITS standard".to_string(),
        "BITPIX  =                   16 / 16-bit signed integers".to_string(),
        "NAXIS   =                    2".to_string(),
        format!("NAXIS1  = {width:>20}"),
        format!("NAXIS2  = {height:>20}"),
        "BZERO   =                32768 / unsigned data".to_string(),
        "BSCALE  =                    1".to_string(),
        "OBJECT  = 'membudget sample'".to_string(),
        "END".to_string(),
    ];
    let mut header = Vec::with_capacity(2880);
    for c in &cards {
        header.extend_from_slice(format!("{c:<80}").as_bytes());
    }
    header.resize(header.len().div_ceil(2880) * 2880, b' ');
    w.write_all(&header)?;
    let mut written = 0usize;
    for y in 0..height {
        for x in 0..width {
            let v = u16::from(pattern(x, y, 0, seed)) << 8 | u16::from(pattern(x, y, 1, seed));
            // Stored value = physical - BZERO, big-endian.
            let stored = (i32::from(v) - 32768) as i16;
            w.write_all(&stored.to_be_bytes())?;
            written += 2;
        }
    }
    // The data unit is padded with zeros to a whole block.
    let pad = written.div_ceil(2880) * 2880 - written;
    w.write_all(&vec![0u8; pad])?;
    w.flush()?;
    Ok(())
}

/// A CBZ-like ZIP: `pages` small PNG pages (stored, as comic archives do) and a
/// ComicInfo.xml (deflated).
pub fn zip(path: &Path, pages: u32, side: u32, seed: u32) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(create(path)?);
    // A fixed timestamp, so the archive's bytes do not depend on when it was made.
    let base = SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
    for p in 0..pages {
        z.start_file(
            format!("page{:03}.png", p + 1),
            base.compression_method(zip::CompressionMethod::Stored),
        )?;
        write_png(&mut z, side, side, 1, seed.wrapping_add(p))?;
    }
    z.start_file(
        "ComicInfo.xml",
        base.compression_method(zip::CompressionMethod::Deflated),
    )?;
    write!(
        z,
        "<?xml version=\"1.0\"?>\n<ComicInfo><Title>Sample {seed}</Title>\
         <PageCount>{pages}</PageCount></ComicInfo>\n"
    )?;
    z.finish()?.flush()?;
    Ok(())
}

/// A TIFF whose header points past the end of the file: every probe must report it as
/// an error record, not crash.
pub fn truncated_tiff(path: &Path) -> Result<()> {
    let mut w = create(path)?;
    w.write_all(b"II*\0\x00\x00\x01\x00")?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_and_valid() {
        let dir = std::env::temp_dir().join(format!("xtask-samples-{}", std::process::id()));
        let make = |sub: &str| -> Vec<Vec<u8>> {
            let d = dir.join(sub);
            tiff(&d.join("a.tif"), 70, 130, 3, TiffCompression::Lzw, 1).unwrap();
            tiff(&d.join("g.tif"), 33, 20, 1, TiffCompression::Deflate, 2).unwrap();
            png(&d.join("a.png"), 17, 9, 3, 3).unwrap();
            jpeg(&d.join("a.jpg"), 40, 24, 4).unwrap();
            fits(&d.join("a.fits"), 31, 7, 5).unwrap();
            zip(&d.join("a.cbz"), 3, 8, 6).unwrap();
            ["a.tif", "g.tif", "a.png", "a.jpg", "a.fits", "a.cbz"]
                .iter()
                .map(|f| std::fs::read(d.join(f)).unwrap())
                .collect()
        };
        let a = make("1");
        let b = make("2");
        assert_eq!(a, b);

        // Decode with the crates' own decoders: the samples are real files.
        let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(&a[0])).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (70, 130));
        match dec.read_image().unwrap() {
            tiff::decoder::DecodingResult::U8(v) => {
                assert_eq!(v.len(), 70 * 130 * 3);
                assert_eq!(v[3 * (5 * 70 + 9) + 2], pattern(9, 5, 2, 1));
            }
            other => panic!("unexpected {:?}", std::mem::discriminant(&other)),
        }
        let png_dec = png::Decoder::new(std::io::Cursor::new(&a[2]));
        let info = png_dec.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (17, 9));
        // FITS: header and data in whole 2880-byte blocks.
        assert_eq!(a[4].len() % 2880, 0);
        assert!(a[4].starts_with(b"SIMPLE  =                    T"));
        let mut z = ::zip::ZipArchive::new(std::io::Cursor::new(&a[5])).unwrap();
        assert_eq!(z.len(), 4);
        assert!(z.by_name("ComicInfo.xml").is_ok());
        assert!(a[3].starts_with(&[0xFF, 0xD8, 0xFF]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
