//! The fuzz targets: each takes arbitrary bytes and runs one reader of the project on
//! them. A target must return (an error is fine) without panicking, hanging or
//! allocating without bound; anything else is a bug of the reader.
//!
//! The same functions run under libFuzzer (`fuzz_targets/*.rs`, `cargo +nightly fuzz
//! run NAME`, coverage-guided) and under the stable runner (`src/bin/stable.rs`, what
//! CI runs), which also replays every file of `regressions/<target>/` first.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One target: its name, the file extensions its seeds have, the function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub seeds: &'static [&'static str],
    pub run: fn(&[u8]),
}

/// Every target, as named in `fuzz_targets/`.
pub const TARGETS: &[Target] = &[
    Target {
        name: "probe_tiff",
        seeds: &["tif", "tiff"],
        run: probe_tiff,
    },
    Target {
        name: "probe_jp2",
        seeds: &["jp2", "j2k"],
        run: probe_jp2,
    },
    Target {
        name: "probe_fits",
        seeds: &["fits"],
        run: probe_fits,
    },
    Target {
        name: "probe_las",
        seeds: &["las", "laz"],
        run: probe_las,
    },
    Target {
        name: "probe_zip",
        seeds: &["zip", "cbz"],
        run: probe_zip,
    },
    Target {
        name: "probe_pdf",
        seeds: &["pdf"],
        run: probe_pdf,
    },
    Target {
        name: "probe_raster",
        seeds: &["png", "jpg", "jpeg"],
        run: probe_raster,
    },
    Target {
        name: "probe_sniff",
        seeds: &["tif", "fits", "laz", "pdf", "png", "jp2", "zip"],
        run: probe_sniff,
    },
    Target {
        name: "manifest",
        seeds: &["ndjson", "json"],
        run: manifest,
    },
    Target {
        name: "tiff_band",
        seeds: &["tif", "tiff"],
        run: tiff_band,
    },
    Target {
        name: "laz_reader",
        seeds: &["las", "laz"],
        run: laz_reader,
    },
    Target {
        name: "zip_reader",
        seeds: &["zip", "cbz"],
        run: zip_reader,
    },
    Target {
        name: "pdf_images",
        seeds: &["pdf"],
        run: pdf_images,
    },
    Target {
        name: "jpeg_dc",
        seeds: &["jpg", "jpeg"],
        run: jpeg_dc,
    },
];

/// Most bytes a target decodes from one input: the readers stream, so a small input
/// that claims a huge image is read in bounded pieces, but the target stops early to
/// keep each run short.
const DECODE_CAP: u64 = 64 << 20;

thread_local! {
    static DIR: tempfile::TempDir = tempfile::Builder::new()
        .prefix("membudget-fuzz.")
        .tempdir()
        .expect("a temporary directory");
}

/// Most readers take a path (they seek and map): write `data` to this thread's file.
fn with_file(data: &[u8], ext: &str, f: impl FnOnce(&Path)) {
    let path: PathBuf = DIR.with(|d| d.path().join(format!("input.{ext}")));
    std::fs::write(&path, data).expect("writing the input");
    f(&path);
}

pub fn probe_tiff(data: &[u8]) {
    with_file(data, "tif", |p| drop(membudget::probe::tiff::probe(p)));
}

pub fn probe_jp2(data: &[u8]) {
    with_file(data, "jp2", |p| drop(membudget::probe::jp2::probe(p)));
}

pub fn probe_fits(data: &[u8]) {
    let _ = membudget::probe::fits::read_hdus(&mut std::io::Cursor::new(data), data.len() as u64);
}

pub fn probe_las(data: &[u8]) {
    let _ = membudget::probe::las::read_info(&mut std::io::Cursor::new(data), data.len() as u64);
}

pub fn probe_zip(data: &[u8]) {
    let _ = membudget::probe::zip::read_directory(std::io::Cursor::new(data), data.len() as u64);
}

pub fn probe_pdf(data: &[u8]) {
    with_file(data, "pdf", |p| drop(membudget::probe::pdf::probe(p)));
}

pub fn probe_raster(data: &[u8]) {
    let _ = membudget::probe::raster::probe_jpeg_reader(data);
    let _ = membudget::probe::raster::probe_png_reader(std::io::Cursor::new(data));
}

/// Sniffing and the dispatch to every probe, as mem-estimate does it.
pub fn probe_sniff(data: &[u8]) {
    with_file(data, "bin", |p| drop(membudget::probe::probe_path(p)));
}

/// The manifest reader: a line parses or is refused, and what parses writes back to a
/// line that parses to the same record.
pub fn manifest(data: &[u8]) {
    if let Ok(Some(r)) = membudget::Record::parse_bytes(data) {
        let line = r.to_line();
        let again = membudget::Record::parse_line(line.trim_end())
            .expect("a written record parses")
            .expect("a written record is a record");
        assert_eq!(r, again, "record round trip");
    }
}

/// The TIFF band reader: open the first page and read it by bands of rows.
pub fn tiff_band(data: &[u8]) {
    with_file(data, "tif", |p| {
        let Ok(mut page) = raster::tiff::TiffPage::open(p, 0) else {
            return;
        };
        let info = page.info.clone();
        let row = info.row_bytes().max(1);
        let rows_per_band = (DECODE_CAP / 8 / row).clamp(1, 256) as u32;
        let mut band = raster::Band::default();
        let mut y = 0u32;
        let mut read = 0u64;
        while y < info.height && read < DECODE_CAP {
            let n = rows_per_band.min(info.height - y);
            if page.read_band(y, n, &mut band).is_err() {
                return;
            }
            read += row * u64::from(n);
            y += n;
        }
    });
}

/// The 1/8 JPEG reader from DC terms: its header parser, then every row by bands.
pub fn jpeg_dc(data: &[u8]) {
    let Ok(Some(mut r)) = raster::jpeg_dc::DcRows::open(data, DECODE_CAP) else {
        return;
    };
    let g = raster::RowSource::geometry(&r);
    let row = u64::from(g.width) * g.comps as u64;
    let mut band = raster::Band::default();
    let (mut y, mut read) = (0u32, 0u64);
    while y < g.height && read < DECODE_CAP {
        let n = 16.min(g.height - y);
        if raster::RowSource::read_band(&mut r, y, n, &mut band).is_err() {
            return;
        }
        read += row * u64::from(n);
        y += n;
    }
}

/// laz-enrich's reader path: the header checks, then the streaming LAZ decoder.
pub fn laz_reader(data: &[u8]) {
    with_file(data, "laz", |p| {
        if laz_enrich::las_io::validate(p).is_err() {
            return;
        }
        let Ok(mut r) = laz_enrich::las_io::open_with(p, false) else {
            return;
        };
        // The laz crate (0.13) asserts inside its arithmetic decoder on some corrupt
        // chunks (decoders.rs: `sym < (1 << 16)`). laz-enrich runs every input under the
        // driver's panic boundary, which turns that into the input's error record; the
        // target does the same, so it hunts what the tool cannot survive: aborts, hangs
        // and unbounded allocation.
        let _ = membudget::probe::catch_panics(move || {
            let mut n = 0u64;
            while n < 1 << 20 {
                match r.read_points(4096) {
                    Ok(pts) if !pts.is_empty() => n += pts.len() as u64,
                    _ => return,
                }
            }
        });
    });
}

/// cbz-stream's archive reader: open (with the hostile-archive checks) and read every
/// entry.
pub fn zip_reader(data: &[u8]) {
    with_file(data, "cbz", |p| {
        let Ok(mut a) = cbz_stream::archive::open(p) else {
            return;
        };
        let mut budget = DECODE_CAP;
        for i in 0..a.len() {
            let Ok(e) = a.by_index(i) else { continue };
            let mut sink = Vec::new();
            let got = e.take(budget).read_to_end(&mut sink).unwrap_or(0) as u64;
            budget = budget.saturating_sub(got);
            if budget == 0 {
                return;
            }
        }
    });
}

/// cbz-stream from-pdf's image extraction (no rendering).
pub fn pdf_images(data: &[u8]) {
    with_file(data, "pdf", |p| {
        drop(cbz_stream::from_pdf::extract_images(p))
    });
}
