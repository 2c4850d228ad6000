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

/// A small LAZ 1.4 tile (point format 6) of synthetic terrain with the shapes a LiDAR
/// feature tool meets: gently sloping ground (class 2), a flat-roofed building with walls
/// (class 6) and a few round tree crowns (class 5), about `per_m2` points per square metre
/// over a `side` x `side` metre square, from a seeded hash so every run writes the same
/// points.
pub fn laz(path: &Path, side: f64, per_m2: f64, seed: u32) -> Result<()> {
    use las::{Builder, Point, Writer};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut builder = Builder::from((1, 4));
    builder.point_format = las::point::Format::new(6)?;
    builder.point_format.is_compressed = true;
    builder.transforms = las::Vector {
        x: las::Transform {
            scale: 0.01,
            offset: 650_000.0,
        },
        y: las::Transform {
            scale: 0.01,
            offset: 6_860_000.0,
        },
        z: las::Transform {
            scale: 0.01,
            offset: 0.0,
        },
    };
    let header = builder.into_header()?;
    let mut w =
        Writer::from_path(path, header).with_context(|| format!("creating {}", path.display()))?;
    // A uniform value in [0, 1) from the point index and a stream number.
    let u = |i: u32, k: u32| {
        f64::from(pattern(i, k, i >> 8, seed)) / 256.0
            + f64::from(pattern(i >> 4, k + 7, i, seed ^ 0x5a5a)) / 65536.0
    };
    let n = (side * side * per_m2) as u32;
    let (bx0, by0, bw, bh, roof) = (side * 0.2, side * 0.25, side * 0.3, side * 0.25, 9.0);
    let trees: [(f64, f64, f64); 4] = [
        (side * 0.70, side * 0.70, 3.0),
        (side * 0.80, side * 0.30, 2.5),
        (side * 0.30, side * 0.75, 3.5),
        (side * 0.62, side * 0.45, 2.0),
    ];
    let ground = |x: f64, y: f64| 100.0 + 0.02 * x + 0.01 * y;
    for i in 0..n {
        let (mut x, mut y) = (u(i, 1) * side, u(i, 2) * side);
        let mut z = ground(x, y) + (u(i, 3) - 0.5) * 0.05;
        let mut class = 2u8;
        let inside = x > bx0 && x < bx0 + bw && y > by0 && y < by0 + bh;
        if inside {
            z = ground(bx0, by0) + roof + (u(i, 3) - 0.5) * 0.03;
            class = 6;
        } else if i % 25 == 0 {
            // A wall point: on the building's outline at any height below the roof.
            let t = u(i, 4) * 2.0 * (bw + bh);
            (x, y) = if t < bw {
                (bx0 + t, by0)
            } else if t < bw + bh {
                (bx0 + bw, by0 + t - bw)
            } else if t < 2.0 * bw + bh {
                (bx0 + t - bw - bh, by0 + bh)
            } else {
                (bx0, by0 + t - 2.0 * bw - bh)
            };
            z = ground(bx0, by0) + u(i, 5) * roof;
            class = 6;
        } else {
            for &(tx, ty, r) in &trees {
                let d2 = (x - tx).powi(2) + (y - ty).powi(2);
                if d2 < r * r && u(i, 6) < 0.8 {
                    z = ground(tx, ty) + 4.0 + r + (r * r - d2).sqrt() * (u(i, 7) - 0.3);
                    class = 5;
                }
            }
        }
        let p = Point {
            x: 650_000.0 + x,
            y: 6_860_000.0 + y,
            z,
            intensity: (u(i, 8) * 4000.0) as u16,
            return_number: 1,
            number_of_returns: 1,
            classification: las::point::Classification::new(class)?,
            gps_time: Some(f64::from(i) * 1e-5),
            ..Default::default()
        };
        w.write_point(p)?;
    }
    w.close()?;
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

    #[test]
    fn laz_tile_reads_back_with_laspy() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.laz"), dir.path().join("b.laz"));
        laz(&a, 30.0, 5.0, 8).unwrap();
        laz(&b, 30.0, 5.0, 8).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let Some(py) = testkit::python(&["laspy", "lazrs", "numpy"]) else {
            return;
        };
        let out = testkit::run_python(
            &py,
            "import sys, laspy, numpy as np\n\
             l = laspy.read(sys.argv[1])\n\
             c = np.bincount(l.classification, minlength=7)\n\
             print(l.header.version, l.header.point_format.id, len(l.points), \
                   int(c[2] > 0), int(c[5] > 0), int(c[6] > 0), \
                   round(float(l.x.min())), round(float(l.x.max() - l.x.min())))",
            &[a.to_str().unwrap()],
        );
        // 30 m x 30 m at 5 points/m2; ground, trees and a building; Lambert-93-like place.
        assert_eq!(out.trim(), "1.4 6 4500 1 1 1 650000 30", "{out}");
    }
}
