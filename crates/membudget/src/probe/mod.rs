//! Header-only probes: what a file is and how big its data is, without reading pixel
//! data, points or page content.
//!
//! [`probe_path`] sniffs the magic bytes and hands the file to one format module. Each
//! module fills the summary the cost models need ([`ImageSummary`], [`PointsSummary`],
//! [`ArchiveSummary`], [`DocumentSummary`]) and its own detail section, written in the
//! record under the format's name (`"tiff": {...}`). An unknown, truncated or hostile file
//! is an [`Error`], never a panic, a hang or a large allocation.

pub mod fits;
pub mod jp2;
pub mod las;
pub mod pdf;
pub mod raster;
pub mod tiff;
pub mod zip;

use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The file formats the probes know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// TIFF or BigTIFF.
    Tiff,
    /// JPEG (JFIF/EXIF).
    Jpeg,
    /// PNG.
    Png,
    /// JPEG 2000 in a JP2 container.
    Jp2,
    /// A raw JPEG 2000 codestream.
    J2k,
    /// FITS (any HDUs).
    Fits,
    /// LAS, uncompressed.
    Las,
    /// LAZ (LASzip-compressed LAS).
    Laz,
    /// COPC (cloud-optimised point cloud: LAZ 1.4 with a COPC VLR).
    Copc,
    /// ZIP archive (CBZ comics included).
    Zip,
    /// PDF document.
    Pdf,
}

impl Format {
    /// The lowercase name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tiff => "tiff",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Jp2 => "jp2",
            Format::J2k => "j2k",
            Format::Fits => "fits",
            Format::Las => "las",
            Format::Laz => "laz",
            Format::Copc => "copc",
            Format::Zip => "zip",
            Format::Pdf => "pdf",
        }
    }
}

/// How a numeric sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// Unsigned integer.
    Uint,
    /// Signed integer.
    Int,
    /// IEEE float.
    Float,
}

/// How the pixel data of an image is laid out on disk, which decides the smallest unit a
/// reader must hold to get at one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Horizontal strips of `block[1]` rows (TIFF strips, FITS rows, PNG/JPEG scanlines).
    Strips,
    /// Tiles of `block[0]` x `block[1]` pixels (tiled TIFF, JPEG 2000 tiles).
    Tiles,
}

/// The main image of a raster file (the first page of a TIFF, the first image HDU with
/// data of a FITS file), as the cost models see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels (rows).
    pub height: u64,
    /// Samples per pixel (bands, channels, components).
    pub bands: u32,
    /// Bits per sample.
    pub bits: u32,
    /// How samples are stored.
    pub sample_format: SampleFormat,
    /// Pages (TIFF IFDs, FITS image HDUs with data, JP2 has 1). For FITS cubes, planes
    /// beyond the second axis are counted in `pages` too.
    pub pages: u64,
    /// Strips or tiles.
    pub layout: Layout,
    /// Size of one strip or tile in pixels: `[width, rows]`.
    pub block: [u64; 2],
    /// Whether the pixel data is compressed on disk.
    pub compressed: bool,
}

impl ImageSummary {
    /// Bytes of one decoded sample, rounded up (1-bit data counts as one byte once expanded).
    pub fn sample_bytes(&self) -> u64 {
        u64::from(self.bits.div_ceil(8).max(1))
    }
    /// Bytes of one decoded row (all bands).
    pub fn row_bytes(&self) -> u64 {
        self.width
            .saturating_mul(u64::from(self.bands))
            .saturating_mul(self.sample_bytes())
    }
    /// Bytes of the whole decoded image (one page).
    pub fn whole_bytes(&self) -> u64 {
        self.row_bytes().saturating_mul(self.height)
    }
}

/// A point cloud as the cost models see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsSummary {
    /// Number of points in the header.
    pub count: u64,
    /// Bytes of one point record on disk, extra bytes included.
    pub record_bytes: u32,
    /// `[min_x, min_y, min_z, max_x, max_y, max_z]` from the header.
    pub bounds: [f64; 6],
    /// Whether the points are LASzip-compressed.
    pub compressed: bool,
}

/// A ZIP archive as the cost models see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveSummary {
    /// Entries in the central directory (directories included).
    pub entries: u64,
    /// Sum of the uncompressed sizes the directory claims.
    pub uncompressed_bytes: u64,
    /// The largest uncompressed entry.
    pub largest_entry_bytes: u64,
    /// Entries whose names end in an image extension.
    pub image_entries: u64,
}

/// A PDF as the cost models see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSummary {
    /// Pages in the page tree.
    pub pages: u64,
    /// Pages that are exactly one embedded image (scans).
    pub image_pages: u64,
    /// The largest embedded page image, `[width, height]`, if any.
    pub largest_image: Option<[u64; 2]>,
}

/// The format-specific part of a probe, written under the format's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// Every page of a TIFF.
    Tiff(tiff::TiffInfo),
    /// A JPEG's header.
    Jpeg(raster::JpegInfo),
    /// A PNG's header.
    Png(raster::PngInfo),
    /// A JPEG 2000 file or codestream header.
    Jp2(jp2::Jp2Info),
    /// Every HDU of a FITS file.
    Fits(fits::FitsInfo),
    /// A LAS/LAZ/COPC header.
    Las(las::LasInfo),
    /// A ZIP central directory.
    Zip(zip::ZipInfo),
    /// A PDF's pages.
    Pdf(pdf::PdfInfo),
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The format.
    pub format: Format,
    /// File size in bytes.
    pub bytes: u64,
    /// The main image, for raster formats.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<ImageSummary>,
    /// The point cloud, for LAS/LAZ/COPC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub points: Option<PointsSummary>,
    /// The archive, for ZIP/CBZ.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub archive: Option<ArchiveSummary>,
    /// The document, for PDF.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub document: Option<DocumentSummary>,
    /// The format's own detail section.
    #[serde(flatten)]
    pub detail: Detail,
}

/// Guess the format from the first bytes of a file.
pub fn sniff(head: &[u8]) -> Option<Format> {
    const JP2_SIG: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A];
    match head {
        [b'I', b'I', 42 | 43, 0, ..] | [b'M', b'M', 0, 42 | 43, ..] => Some(Format::Tiff),
        [0xFF, 0xD8, 0xFF, ..] => Some(Format::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Format::Png),
        _ if head.starts_with(&JP2_SIG) => Some(Format::Jp2),
        [0xFF, 0x4F, 0xFF, 0x51, ..] => Some(Format::J2k),
        _ if head.starts_with(b"SIMPLE  =") => Some(Format::Fits),
        _ if head.starts_with(b"LASF") => Some(Format::Las),
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Some(Format::Zip),
        // PDF readers accept the header anywhere in the first 1024 bytes.
        _ if head.windows(5).take(1024).any(|w| w == b"%PDF-") => Some(Format::Pdf),
        _ => None,
    }
}

thread_local! {
    static SILENT_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, turning a panic inside it into `Err(())` without the panic message on
/// stderr. For third-party parsers that panic on some malformed inputs (the `pdf` crate
/// has `unwrap`s on hostile paths): the probe reports a clean error record instead, and
/// the tool's stderr keeps to `tool: path: message` lines. Panics elsewhere still print.
#[allow(clippy::result_unit_err)]
pub fn catch_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, ()> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !SILENT_PANICS.with(|s| s.get()) {
                previous(info);
            }
        }));
    });
    let was = SILENT_PANICS.with(|s| s.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    SILENT_PANICS.with(|s| s.set(was));
    r.map_err(|_| ())
}

/// Probe one file: sniff its format and read its headers.
pub fn probe_path(path: &Path) -> Result<Probe> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "is a directory (use --recursive)",
        ));
    }
    if !meta.is_file() {
        // Opening a FIFO blocks until a writer comes, and a pipe or device cannot be
        // seeked to the headers a probe reads: refuse before opening.
        return Err(Error::unsupported(format!(
            "is a {}, not a regular file",
            special_kind(&meta.file_type())
        )));
    }
    let bytes = meta.len();
    let mut head = Vec::with_capacity(1024);
    File::open(path)?.take(1024).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(Error::unsupported("empty file"));
    }
    let format = match sniff(&head) {
        Some(f) => f,
        // Data before a ZIP (a self-extracting archive's program): found from the end.
        None if zip::has_end_record(path, bytes)? => Format::Zip,
        None => return Err(Error::unsupported("unknown file format")),
    };
    let mut probe = match format {
        Format::Tiff => tiff::probe(path),
        Format::Jpeg => raster::probe_jpeg(path),
        Format::Png => raster::probe_png(path),
        Format::Jp2 | Format::J2k => jp2::probe(path),
        Format::Fits => fits::probe(path),
        Format::Las | Format::Laz | Format::Copc => las::probe(path),
        Format::Zip => zip::probe(path),
        Format::Pdf => pdf::probe(path),
    }?;
    probe.bytes = bytes;
    Ok(probe)
}

/// What a non-regular, non-directory file is, for messages.
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "named pipe (FIFO)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_opening() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opening the FIFO would block this test forever: the probe must not open it.
        let e = probe_path(&fifo).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("named pipe"), "{}", e.message);
        let e = probe_path(Path::new("/dev/null")).unwrap_err();
        assert!(e.message.contains("character device"), "{}", e.message);
    }

    #[test]
    fn panics_become_errors() {
        assert_eq!(catch_panics(|| 5), Ok(5));
        let r: std::result::Result<(), ()> = catch_panics(|| panic!("hostile"));
        assert_eq!(r, Err(()));
    }

    #[test]
    fn sniff_magic() {
        assert_eq!(sniff(b"II*\0rest"), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\0+rest"), Some(Format::Tiff));
        assert_eq!(sniff(b"LASF...."), Some(Format::Las));
        assert_eq!(sniff(b"PK\x03\x04"), Some(Format::Zip));
        assert_eq!(sniff(b"junk%PDF-1.7"), Some(Format::Pdf));
        assert_eq!(sniff(b"hello"), None);
    }
}
