//! The seed corpus: small files generated here (so a fresh clone without ../shared can
//! fuzz), the shared sample data when it is there, any `--corpus` paths, and manifest
//! records the tools themselves wrote about those files.

use super::Format;
use crate::samples;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One seed: a file's bytes, or a manifest record about another seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Where it came from (`generated/gray.tif`, `shared/laz/autzen.laz`).
    pub name: String,
    pub format: Format,
    pub bytes: Vec<u8>,
    /// For [`Format::Ndjson`]: the index of the seed the record is about.
    pub subject: Option<usize>,
}

impl Seed {
    /// The file name a mutant of this seed gets (keeps the extension tools look at).
    pub fn file_name(&self) -> String {
        let base = self.name.rsplit('/').next().unwrap_or("input");
        match self.format {
            Format::Ndjson => "record.ndjson".into(),
            _ => base.to_string(),
        }
    }
}

/// The format of a file, from its first bytes.
pub fn sniff(b: &[u8]) -> Option<Format> {
    Some(match b {
        [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..] => Format::Tiff,
        [b'L', b'A', b'S', b'F', ..] => Format::Las,
        _ if b.starts_with(b"SIMPLE  =") => Format::Fits,
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Format::Zip,
        _ if b.starts_with(b"%PDF") => Format::Pdf,
        [0x89, b'P', b'N', b'G', ..] => Format::Png,
        [0xFF, 0xD8, 0xFF, ..] => Format::Jpeg,
        _ => return None,
    })
}

/// Small valid files of every format, written into `dir` and read back.
pub fn generated(dir: &Path) -> Result<Vec<Seed>> {
    use samples::TiffCompression::{Deflate, Lzw, None as Raw};
    samples::tiff(&dir.join("gray.tif"), 64, 40, 1, Raw, 1)?;
    samples::tiff(&dir.join("rgb-lzw.tif"), 70, 50, 3, Lzw, 2)?;
    samples::tiff(&dir.join("gray-deflate.tif"), 33, 130, 1, Deflate, 3)?;
    samples::fits(&dir.join("frame.fits"), 31, 7, 4)?;
    samples::zip(&dir.join("comic.cbz"), 3, 8, 5)?;
    samples::png(&dir.join("page.png"), 17, 9, 3, 6)?;
    samples::jpeg(&dir.join("photo.jpg"), 40, 24, 7)?;
    las(&dir.join("cloud-12.las"), (1, 2), 1, 7)?;
    las(&dir.join("cloud-14.las"), (1, 4), 6, 8)?;
    las(&dir.join("cloud-12.laz"), (1, 2), 3, 9)?;
    las(&dir.join("cloud-14.laz"), (1, 4), 6, 10)?;
    std::fs::write(dir.join("scan.pdf"), pdf())?;
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    let mut seeds = Vec::new();
    for p in names {
        let bytes = std::fs::read(&p)?;
        let format = sniff(&bytes).with_context(|| format!("generated {}", p.display()))?;
        seeds.push(Seed {
            name: format!("generated/{}", p.file_name().unwrap().to_string_lossy()),
            format,
            bytes,
            subject: None,
        });
    }
    Ok(seeds)
}

/// Every file below `root` (sorted, so the corpus order is the same on every machine)
/// whose format is known and which is at most `max_bytes` long.
pub fn files_below(root: &Path, label: &str, max_bytes: u64) -> Result<Vec<Seed>> {
    let mut paths = Vec::new();
    walk(root, &mut paths)?;
    paths.sort();
    let mut seeds = Vec::new();
    for p in paths {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.len() == 0 || meta.len() > max_bytes {
            continue;
        }
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        if let Some(format) = sniff(&bytes) {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let name = if rel.as_os_str().is_empty() {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                rel.to_string_lossy().into_owned()
            };
            seeds.push(Seed {
                name: format!("{label}/{name}"),
                format,
                bytes,
                subject: None,
            });
        }
    }
    Ok(seeds)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
    if meta.is_file() {
        out.push(p.to_path_buf());
    } else if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            walk(&e?.path(), out)?;
        }
    }
    Ok(())
}

/// A small LAS/LAZ cloud (compressed when `path` ends in `.laz`): a tilted plane with
/// some noise, several returns per pulse, GPS time when the format has it.
fn las(path: &Path, version: (u8, u8), format: u8, seed: u32) -> Result<()> {
    let mut b = las::Builder::from(version);
    b.point_format = las::point::Format::new(format)?;
    b.point_format.is_compressed = path.extension().is_some_and(|e| e == "laz");
    b.generating_software = "membudget xtask fuzz".into();
    let mut w = las::Writer::new(
        std::io::BufWriter::new(std::fs::File::create(path)?),
        b.into_header()?,
    )?;
    for i in 0..300u32 {
        let (x, y) = (f64::from(i % 20) * 0.5, f64::from(i / 20) * 0.5);
        let n = f64::from(samples::pattern(i, 0, 0, seed)) / 255.0;
        let mut p = las::Point {
            x: 1000.0 + x,
            y: 2000.0 + y,
            z: 10.0 + 0.1 * x + 0.05 * y + 0.02 * n,
            intensity: u16::from(samples::pattern(i, 1, 0, seed)) * 10,
            return_number: 1 + (i % 3) as u8,
            number_of_returns: 3,
            classification: las::point::Classification::new(if i % 4 == 0 { 2 } else { 1 })?,
            ..Default::default()
        };
        if w.header().point_format().has_gps_time {
            p.gps_time = Some(f64::from(i) * 1e-3);
        }
        if w.header().point_format().has_color {
            let c = u16::from(samples::pattern(i, 2, 0, seed)) << 8;
            p.color = Some(las::Color::new(c, c / 2, c / 3));
        }
        w.write_point(p)?;
    }
    w.close()?;
    Ok(())
}

/// A one-page PDF holding an 8x8 grey image, with a true xref table (so edits of its
/// numbers are what a reader meets, not a file it must repair first).
fn pdf() -> Vec<u8> {
    let pixels: Vec<u8> = (0..64u32)
        .map(|i| samples::pattern(i % 8, i / 8, 0, 11))
        .collect();
    let content = b"q 8 0 0 8 0 0 cm /Im0 Do Q";
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 8 8] /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
    ];
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    objects.push(stream);
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length {} >>\nstream\n",
        pixels.len()
    )
    .into_bytes();
    image.extend_from_slice(&pixels);
    image.extend_from_slice(b"\nendstream");
    objects.push(image);
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::mutate::{mutate, Rng};

    #[test]
    fn generated_seeds_are_known_formats_and_survive_stacked_edits() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = generated(dir.path()).unwrap();
        let formats: std::collections::BTreeSet<Format> = seeds.iter().map(|s| s.format).collect();
        assert_eq!(formats.len(), 7, "{formats:?}");
        // LAS seeds read back with the las crate: they are real clouds.
        for s in seeds.iter().filter(|s| s.format == Format::Las) {
            let mut r = las::Reader::new(std::io::Cursor::new(s.bytes.clone())).unwrap();
            assert_eq!(r.read_all().unwrap().len(), 300, "{}", s.name);
        }
        // Edits stacked far deeper than a case does (cutting headers away, shifting
        // fields) never panic the mutators themselves.
        let mut rng = Rng::new(9, "stack", 0);
        for s in &seeds {
            for _ in 0..200 {
                let mut d = s.bytes.clone();
                for _ in 0..8 {
                    mutate(&mut rng, s.format, &mut d);
                }
            }
        }
        let record = b"{\"path\":\"in/a.tif\",\"plan\":{\"budget_bytes\":1,\"x\":[1,2]}}\n";
        for _ in 0..500 {
            let mut d = record.to_vec();
            for _ in 0..8 {
                mutate(&mut rng, Format::Ndjson, &mut d);
            }
        }
    }
}
