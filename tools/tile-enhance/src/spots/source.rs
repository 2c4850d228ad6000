//! The images spots are detected on and read out from: any raster the shared readers of
//! `crates/raster` open (TIFF pages, FITS image HDUs, PNG, JPEG), as one [`RowSource`].

use membudget::probe::Format;
use membudget::{Error, ErrorKind};
use raster::fits::{FitsReader, HduSel};
use raster::jpeg::JpegRows;
use raster::thumbnail::{PngRows, MAX_JPEG_BYTES};
use raster::tiff::TiffPage;
use raster::{Band, Geometry, RowSource};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// One opened image (a page of a TIFF, an HDU of a FITS file, a PNG or a JPEG).
pub enum Src {
    /// A TIFF page (8 or 16-bit unsigned samples).
    Tiff(TiffPage),
    /// A FITS image HDU (physical values as f32 or f64).
    Fits(FitsReader),
    /// A PNG, 8-bit.
    Png(PngRows<BufReader<File>>),
    /// A JPEG, 8-bit.
    Jpeg(JpegRows<BufReader<File>>),
}

impl std::fmt::Debug for Src {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Src({:?})", self.geometry())
    }
}

impl RowSource for Src {
    fn geometry(&self) -> Geometry {
        match self {
            Src::Tiff(s) => s.geometry(),
            Src::Fits(s) => s.geometry(),
            Src::Png(s) => s.geometry(),
            Src::Jpeg(s) => s.geometry(),
        }
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        match self {
            Src::Tiff(s) => RowSource::read_band(s, y0, rows, band),
            Src::Fits(s) => s.read_band(y0, rows, band),
            Src::Png(s) => s.read_band(y0, rows, band),
            Src::Jpeg(s) => s.read_band(y0, rows, band),
        }
    }
}

/// The format of the file at `path`, from its first bytes.
pub fn format_of(path: &Path) -> Result<Format, Error> {
    let mut head = Vec::with_capacity(16);
    File::open(path)?.take(16).read_to_end(&mut head)?;
    membudget::probe::sniff(&head).ok_or_else(|| Error::unsupported("unknown file format"))
}

/// The pages of a file: its TIFF pages, else one.
pub fn pages(path: &Path, format: Format) -> Result<usize, Error> {
    match format {
        Format::Tiff => Ok(raster::tiff::page_offsets(path)?.len()),
        _ => Ok(1),
    }
}

/// Open page `page` of the file at `path`.
pub fn open(path: &Path, format: Format, page: usize) -> Result<Src, Error> {
    match format {
        Format::Tiff => Ok(Src::Tiff(TiffPage::open(path, page)?)),
        Format::Fits => Ok(Src::Fits(FitsReader::open(path, &HduSel::FirstImage)?)),
        Format::Png => Ok(Src::Png(PngRows::new(BufReader::new(File::open(path)?))?)),
        // Full size (shrink 1): every pixel, by scanlines.
        Format::Jpeg => {
            let probe = membudget::probe::probe_path(path)?;
            Ok(Src::Jpeg(JpegRows::open(
                BufReader::new(File::open(path)?),
                &probe,
                1,
                MAX_JPEG_BYTES,
            )?))
        }
        f => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{} images are not read for spot detection", f.as_str()),
        )),
    }
}

/// One readout channel: an image plane named for the CSV.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Column name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Page of the file.
    pub page: usize,
    /// Component (band) of that page.
    pub comp: usize,
}

/// Samples of bytes `row` (of `sample_bytes` each: u8, native u16, f32 or f64, as the
/// readers give them) from `x0` to `x1` as f32, appended to `out`.
pub fn convert(row: &[u8], sample_bytes: usize, x0: usize, x1: usize, out: &mut Vec<f32>) {
    let b = &row[x0 * sample_bytes..x1 * sample_bytes];
    match sample_bytes {
        1 => out.extend(b.iter().map(|&v| f32::from(v))),
        2 => out.extend(
            b.chunks_exact(2)
                .map(|c| f32::from(u16::from_ne_bytes([c[0], c[1]]))),
        ),
        4 => out.extend(
            b.chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
        ),
        _ => {
            out.extend(b.chunks_exact(8).map(|c| {
                f64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }))
        }
    }
}

/// Sample `x` of `row` as f64 (exact for every sample type the readers give).
pub fn sample(row: &[u8], sample_bytes: usize, x: usize) -> f64 {
    let c = &row[x * sample_bytes..(x + 1) * sample_bytes];
    match sample_bytes {
        1 => f64::from(c[0]),
        2 => f64::from(u16::from_ne_bytes([c[0], c[1]])),
        4 => f64::from(f32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
        _ => f64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
    }
}
