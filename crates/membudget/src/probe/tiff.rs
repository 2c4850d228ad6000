//! TIFF and BigTIFF probe: the header of every page (IFD), never pixel data.
//!
//! The `tiff` crate parses the file header and the first IFD (its `Decoder::new` checks
//! the first page the way its decoder will later need it), then this module walks the IFD
//! chain itself with `read_directory`/`read_directory_tags`: that reads only the tags a
//! cost model needs (the strip and tile offset arrays are counted from their entries,
//! never loaded), and it lets a page the crate could not decode (a thumbnail with an odd
//! layout) still be described. Loops, page counts and IFD sizes are bounded here so a
//! hostile chain cannot make the walk run long.

use super::{raster::check_dimensions, ImageSummary, Layout, Probe, SampleFormat};
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use tiff::decoder::{ifd::Value, Decoder, Limits};
use tiff::tags::{IfdPointer, Tag};
use tiff::{TiffError, TiffFormatError};

/// Pages walked at most; a longer chain is treated as hostile.
pub const MAX_PAGES: usize = 65_536;
/// Entries one IFD may declare. Tags are 16-bit, so a real IFD never needs more; libtiff
/// applies the same bound.
const MAX_IFD_ENTRIES: u64 = 65_535;
/// Entries read over the whole walk: bounds the work a chain of huge IFDs can cause.
const MAX_TOTAL_ENTRIES: u64 = 1 << 22;
/// Largest tag value the crate may load (the default, stated so it does not drift).
const MAX_TAG_VALUE_BYTES: usize = 1 << 20;
/// A single tile larger than this (decoded) is hostile: no writer produces one.
const MAX_TILE_BYTES: u64 = 1 << 32;

/// Every page of a TIFF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TiffInfo {
    /// BigTIFF (64-bit offsets) rather than classic TIFF.
    pub bigtiff: bool,
    /// `"little"` (II) or `"big"` (MM) endian.
    pub byte_order: String,
    /// The pages in IFD-chain order (SubIFDs are not followed).
    pub pages: Vec<TiffPage>,
}

/// The header of one page (IFD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TiffPage {
    /// ImageWidth.
    pub width: u64,
    /// ImageLength (rows).
    pub height: u64,
    /// SamplesPerPixel, extra samples included.
    pub samples: u32,
    /// BitsPerSample (the largest when samples differ, see `bits_per_sample`).
    pub bits: u32,
    /// BitsPerSample per sample, only when samples differ (e.g. 5-6-5 RGB).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bits_per_sample: Option<Vec<u16>>,
    /// SampleFormat name: uint, int, float, void, complex_int, complex_float.
    pub sample_format: String,
    /// PhotometricInterpretation name (minisblack, rgb, palette, separated, ycbcr...),
    /// absent when the tag is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub photometric: Option<String>,
    /// Compression name (none, lzw, deflate, packbits, jpeg, zstd, ccitt_fax4...).
    pub compression: String,
    /// The numeric Compression code, for schemes without a name here.
    pub compression_code: u16,
    /// Predictor name: none, horizontal, floating_point (or `unknown_N`).
    pub predictor: String,
    /// PlanarConfiguration: contig (chunky) or separate (planar).
    pub planar: String,
    /// Strips or tiles.
    pub layout: Layout,
    /// RowsPerStrip, clamped to the height (a missing tag means one strip).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows_per_strip: Option<u64>,
    /// TileWidth.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tile_width: Option<u64>,
    /// TileLength.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tile_length: Option<u64>,
    /// Number of strips or tiles (all planes).
    pub chunks: u64,
    /// ExtraSamples names: unspecified, assoc_alpha, unassoc_alpha.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub extra_samples: Vec<String>,
    /// Length in bytes of the ICC profile (tag 34675), if present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icc_bytes: Option<u64>,
    /// XResolution / YResolution / ResolutionUnit, if present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolution: Option<Resolution>,
    /// NewSubfileType bits (1 reduced resolution, 2 page of many, 4 mask), when not 0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subfile_type: Option<u32>,
}

/// Resolution tags of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// XResolution, pixels per unit.
    pub x: Option<f64>,
    /// YResolution, pixels per unit.
    pub y: Option<f64>,
    /// ResolutionUnit: none, inch (the default), centimeter.
    pub unit: String,
}

/// Probe a TIFF file.
pub fn probe(path: &Path) -> Result<Probe> {
    let mut file = BufReader::with_capacity(8192, File::open(path)?);
    let mut head = [0u8; 4];
    file.read_exact(&mut head)?;
    let bigtiff = matches!(head, [b'I', b'I', 43, 0] | [b'M', b'M', 0, 43]);
    let byte_order = if head[0] == b'I' { "little" } else { "big" };
    file.seek(SeekFrom::Start(0))?;

    // `Decoder::new` reads the first IFD with the crate's default limits; these cover every
    // later read. Nothing is decoded, but the crate also bounds the in-memory list a tag
    // value becomes (about 32 bytes per element) by `decoding_buffer_size`.
    let mut limits = Limits::default();
    limits.ifd_value_size = MAX_TAG_VALUE_BYTES;
    limits.decoding_buffer_size = 4 * MAX_TAG_VALUE_BYTES;
    limits.intermediate_buffer_size = MAX_TAG_VALUE_BYTES;
    // Later duplicates of a tag are hidden from the crate's first-page check (it keeps the
    // last of them; libtiff and tifffile the first), and each page's directory gets the
    // first ones back below.
    let len = file.get_ref().metadata()?.len();
    let hidden =
        later_duplicates_of_first_ifd(file.get_mut(), bigtiff, byte_order == "little", len)?;
    file.get_mut().seek(SeekFrom::Start(0))?;
    let file = BufReader::with_capacity(
        8192,
        Hidden {
            file: file.into_inner(),
            pos: 0,
            hidden,
        },
    );
    let mut dec = Decoder::new(file).map_err(tiff_error)?.with_limits(limits);
    let first = dec
        .ifd_pointer()
        .ok_or_else(|| Error::corrupt("TIFF: no first IFD"))?;

    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    let mut entries_read = 0u64;
    let mut next = Some(first);
    while let Some(ptr) = next {
        if pages.len() >= MAX_PAGES {
            return Err(Error::hostile(format!("TIFF: more than {MAX_PAGES} pages")));
        }
        // The crate's own cycle check covers `next_image`, not `read_directory`.
        if !seen.insert(ptr.0) {
            return Err(Error::corrupt(format!(
                "TIFF: IFD chain loops back to offset {}",
                ptr.0
            )));
        }
        let count = ifd_entry_count(&mut dec, ptr, bigtiff)?;
        if count > MAX_IFD_ENTRIES {
            return Err(Error::hostile(format!(
                "TIFF: IFD {} declares {count} entries",
                pages.len()
            )));
        }
        entries_read += count;
        if entries_read > MAX_TOTAL_ENTRIES {
            return Err(Error::hostile("TIFF: too many IFD entries in total"));
        }
        let mut dir = dec.read_directory(ptr).map_err(tiff_error)?;
        let little = byte_order == "little";
        let firsts = first_entries(dec.inner().get_mut(), ptr.0, count, bigtiff, little)?;
        dir.extend(firsts.into_iter().map(|(tag, e, _)| (tag, e)));
        next = dir.next();
        let page = read_page(&mut dec.read_directory_tags(&dir)).map_err(|e| {
            let msg = e.message.trim_start_matches("TIFF: ");
            Error::new(e.kind, format!("TIFF page {}: {msg}", pages.len()))
        })?;
        pages.push(page);
    }

    let p = &pages[0];
    let image = ImageSummary {
        width: p.width,
        height: p.height,
        bands: p.samples,
        bits: p.bits,
        sample_format: summary_format(&p.sample_format),
        pages: pages.len() as u64,
        layout: p.layout,
        block: match p.layout {
            Layout::Strips => [p.width, p.rows_per_strip.unwrap_or(p.height)],
            Layout::Tiles => [p.tile_width.unwrap_or(0), p.tile_length.unwrap_or(0)],
        },
        compressed: p.compression_code != 1,
    };
    Ok(Probe {
        format: super::Format::Tiff,
        bytes: 0,
        image: Some(image),
        points: None,
        archive: None,
        document: None,
        detail: super::Detail::Tiff(TiffInfo {
            bigtiff,
            byte_order: byte_order.into(),
            pages,
        }),
    })
}

/// The entry count an IFD declares, read before the crate reads the IFD so a bogus count
/// (BigTIFF allows 2^64) is refused instead of read until end of file.
fn ifd_entry_count(
    dec: &mut Decoder<BufReader<Hidden>>,
    ptr: IfdPointer,
    big: bool,
) -> Result<u64> {
    let little = matches!(dec.byte_order(), tiff::tags::ByteOrder::LittleEndian);
    let r = dec.inner();
    r.seek(SeekFrom::Start(ptr.0))?;
    let mut b = [0u8; 8];
    let n = if big { 8 } else { 2 };
    r.read_exact(&mut b[..n])
        .map_err(|_| Error::corrupt(format!("TIFF: IFD offset {} is past end of file", ptr.0)))?;
    Ok(match (big, little) {
        (true, true) => u64::from_le_bytes(b),
        (true, false) => u64::from_be_bytes(b),
        (false, true) => u64::from(u16::from_le_bytes([b[0], b[1]])),
        (false, false) => u64::from(u16::from_be_bytes([b[0], b[1]])),
    })
}

/// The file as the crate reads it: the tag numbers at `hidden` (entries of the first IFD
/// that repeat an earlier tag) read as 0, a tag no reader looks at.
#[derive(Debug)]
pub struct Hidden {
    file: File,
    pos: u64,
    hidden: Vec<u64>,
}

impl Read for Hidden {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        for &at in &self.hidden {
            for p in at.max(start)..(at + 2).min(end) {
                buf[(p - start) as usize] = 0;
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Seek for Hidden {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// The raw entries of the IFD at `at` (`count` of them): for each tag that appears more
/// than once, its first entry, and where each later one starts.
fn first_entries<R: Read + Seek>(
    r: &mut R,
    at: u64,
    count: u64,
    big: bool,
    little: bool,
) -> Result<Vec<(Tag, tiff::decoder::ifd::Entry, Vec<u64>)>> {
    use tiff::decoder::ifd::Entry;
    let (head, size) = if big { (8u64, 20usize) } else { (2, 12) };
    let start = at
        .checked_add(head)
        .ok_or_else(|| Error::corrupt("TIFF: IFD offset overflows"))?;
    r.seek(SeekFrom::Start(start))?;
    let mut raw = Vec::new();
    r.take(count.min(MAX_IFD_ENTRIES) * size as u64)
        .read_to_end(&mut raw)?;
    let u16_at = |b: &[u8]| {
        if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        }
    };
    let mut seen: std::collections::BTreeMap<u16, (Entry, Vec<u64>)> = Default::default();
    let mut dup = HashSet::new();
    for (i, e) in raw.chunks_exact(size).enumerate() {
        let tag = u16_at(&e[0..2]);
        // Entries of unknown types are skipped, as the crate skips them.
        let Some(ty) = tiff::tags::Type::from_u16(u16_at(&e[2..4])) else {
            continue;
        };
        let pos = start + (i * size) as u64;
        if let Some((_, later)) = seen.get_mut(&tag) {
            later.push(pos);
            dup.insert(tag);
            continue;
        }
        let entry = if big {
            let c: [u8; 8] = e[4..12].try_into().expect("8 bytes");
            let count = if little {
                u64::from_le_bytes(c)
            } else {
                u64::from_be_bytes(c)
            };
            Entry::new_u64(ty, count, e[12..20].try_into().expect("8 bytes"))
        } else {
            let c: [u8; 4] = e[4..8].try_into().expect("4 bytes");
            let count = if little {
                u32::from_le_bytes(c)
            } else {
                u32::from_be_bytes(c)
            };
            Entry::new(ty, count, e[8..12].try_into().expect("4 bytes"))
        };
        seen.insert(tag, (entry, Vec::new()));
    }
    Ok(seen
        .into_iter()
        .filter(|(t, _)| dup.contains(t))
        .map(|(t, (e, later))| (Tag::from_u16_exhaustive(t), e, later))
        .collect())
}

/// Where the later duplicate entries of the first IFD start (none when the header or
/// IFD cannot be read: the crate then reports that). Leaves `f` anywhere.
fn later_duplicates_of_first_ifd(
    f: &mut File,
    big: bool,
    little: bool,
    len: u64,
) -> Result<Vec<u64>> {
    let mut b = [0u8; 16];
    f.seek(SeekFrom::Start(0))?;
    if f.read_exact(&mut b).is_err() {
        return Ok(Vec::new());
    }
    let at = match (big, little) {
        (true, true) => u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        (true, false) => u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        (false, true) => u64::from(u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"))),
        (false, false) => u64::from(u32::from_be_bytes(b[4..8].try_into().expect("4 bytes"))),
    };
    if at >= len {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(at))?;
    let mut c = [0u8; 8];
    let n = if big { 8 } else { 2 };
    if f.read_exact(&mut c[..n]).is_err() {
        return Ok(Vec::new());
    }
    let count = match (big, little) {
        (true, true) => u64::from_le_bytes(c),
        (true, false) => u64::from_be_bytes(c),
        (false, true) => u64::from(u16::from_le_bytes([c[0], c[1]])),
        (false, false) => u64::from(u16::from_be_bytes([c[0], c[1]])),
    };
    let firsts = first_entries(f, at, count, big, little)?;
    Ok(firsts.into_iter().flat_map(|(_, _, later)| later).collect())
}

/// Reads and checks the tags of one page.
fn read_page(ifd: &mut tiff::decoder::IfdDecoder<'_>) -> Result<TiffPage> {
    let width = require_u64(ifd, Tag::ImageWidth)?;
    let height = require_u64(ifd, Tag::ImageLength)?;
    let samples = opt_u64(ifd, Tag::SamplesPerPixel)?.unwrap_or(1);
    if samples == 0 || samples > u64::from(u16::MAX) {
        return Err(Error::corrupt(format!("SamplesPerPixel is {samples}")));
    }
    let samples = samples as u32;

    let bits_vec = opt_u16_vec(ifd, Tag::BitsPerSample)?.unwrap_or_else(|| vec![1]);
    let bits = bits_vec.iter().copied().max().unwrap_or(1);
    // Complex doubles are 128 bits per sample; nothing is wider.
    if bits_vec.contains(&0) || bits > 128 {
        return Err(Error::corrupt(format!("BitsPerSample {bits_vec:?}")));
    }
    let bits_per_sample = (bits_vec.iter().any(|&b| b != bits)).then_some(bits_vec);

    // Mixed sample formats across samples are vanishingly rare; the first one is reported.
    let sample_format = match opt_u16_vec(ifd, Tag::SampleFormat)?
        .and_then(|v| v.first().copied())
        .unwrap_or(1)
    {
        1 => "uint",
        2 => "int",
        3 => "float",
        4 => "void",
        5 => "complex_int",
        6 => "complex_float",
        n => return Err(Error::unsupported(format!("SampleFormat {n}"))),
    }
    .to_string();

    check_dimensions(width, height, samples, u32::from(bits))?;

    let photometric = opt_u64(ifd, Tag::PhotometricInterpretation)?.map(photometric_name);
    let compression_code = opt_u64(ifd, Tag::Compression)?.unwrap_or(1);
    let compression_code = u16::try_from(compression_code)
        .map_err(|_| Error::corrupt(format!("Compression {compression_code}")))?;
    let predictor = match opt_u64(ifd, Tag::Predictor)?.unwrap_or(1) {
        1 => "none".to_string(),
        2 => "horizontal".to_string(),
        3 => "floating_point".to_string(),
        n => format!("unknown_{n}"),
    };
    let separate = match opt_u64(ifd, Tag::PlanarConfiguration)?.unwrap_or(1) {
        1 => false,
        2 => true,
        n => return Err(Error::corrupt(format!("PlanarConfiguration {n}"))),
    };
    let planes = if separate { u64::from(samples) } else { 1 };
    let sample_bytes = u64::from(bits).div_ceil(8);

    let tiled =
        ifd.find_entry(Tag::TileWidth).is_some() || ifd.find_entry(Tag::TileOffsets).is_some();
    let (layout, rows_per_strip, tile_width, tile_length, chunks) = if tiled {
        let tw = require_u64(ifd, Tag::TileWidth)?;
        let tl = require_u64(ifd, Tag::TileLength)?;
        if tw == 0 || tl == 0 {
            return Err(Error::corrupt(format!("tile size {tw}x{tl}")));
        }
        let tile_bytes = tw
            .saturating_mul(tl)
            .saturating_mul(sample_bytes)
            .saturating_mul(if separate { 1 } else { u64::from(samples) });
        if tile_bytes > MAX_TILE_BYTES {
            return Err(Error::hostile(format!("tile of {tw}x{tl} is absurd")));
        }
        let chunks = entry_count(ifd, Tag::TileOffsets)?;
        let expected = width.div_ceil(tw) * height.div_ceil(tl) * planes;
        check_chunks(ifd, Tag::TileByteCounts, chunks, expected, "tiles")?;
        (Layout::Tiles, None, Some(tw), Some(tl), chunks)
    } else {
        // A missing RowsPerStrip means one strip; writers often store 2^32-1 for the same.
        let rps = opt_u64(ifd, Tag::RowsPerStrip)?
            .unwrap_or(height)
            .min(height);
        if rps == 0 {
            return Err(Error::corrupt("RowsPerStrip is 0"));
        }
        let chunks = entry_count(ifd, Tag::StripOffsets)?;
        let expected = height.div_ceil(rps) * planes;
        check_chunks(ifd, Tag::StripByteCounts, chunks, expected, "strips")?;
        (Layout::Strips, Some(rps), None, None, chunks)
    };

    let extra_samples = opt_u16_vec(ifd, Tag::ExtraSamples)?
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e {
            1 => "assoc_alpha".to_string(),
            2 => "unassoc_alpha".to_string(),
            _ => "unspecified".to_string(),
        })
        .collect::<Vec<_>>();
    if extra_samples.len() as u64 > u64::from(samples) {
        return Err(Error::corrupt("more ExtraSamples than SamplesPerPixel"));
    }

    // The ICC profile is an UNDEFINED (byte) array: its count is its length. Never read.
    let icc_bytes = ifd.find_entry(Tag::IccProfile).map(|e| e.count());

    let x = opt_f64(ifd, Tag::XResolution)?;
    let y = opt_f64(ifd, Tag::YResolution)?;
    let unit = opt_u64(ifd, Tag::ResolutionUnit)?;
    let resolution = (x.is_some() || y.is_some() || unit.is_some()).then(|| Resolution {
        x,
        y,
        unit: match unit.unwrap_or(2) {
            1 => "none".to_string(),
            2 => "inch".to_string(),
            3 => "centimeter".to_string(),
            n => format!("unknown_{n}"),
        },
    });
    let subfile_type = opt_u64(ifd, Tag::NewSubfileType)?
        .filter(|&t| t != 0)
        .map(|t| t as u32);

    Ok(TiffPage {
        width,
        height,
        samples,
        bits: u32::from(bits),
        bits_per_sample,
        sample_format,
        photometric,
        compression: compression_name(compression_code),
        compression_code,
        predictor,
        planar: if separate { "separate" } else { "contig" }.into(),
        layout,
        rows_per_strip,
        tile_width,
        tile_length,
        chunks,
        extra_samples,
        icc_bytes,
        resolution,
        subfile_type,
    })
}

/// The strip/tile count must match the geometry and the byte-count array, as every
/// decoder (the `tiff` crate included) requires; otherwise the page cannot be read.
fn check_chunks(
    ifd: &mut tiff::decoder::IfdDecoder<'_>,
    counts_tag: Tag,
    chunks: u64,
    expected: u64,
    what: &str,
) -> Result<()> {
    let counts = entry_count(ifd, counts_tag)?;
    if chunks != expected || counts != chunks {
        return Err(Error::corrupt(format!(
            "{chunks} {what} offsets and {counts} byte counts, geometry needs {expected}"
        )));
    }
    Ok(())
}

/// Element count of a required array tag, without reading it.
fn entry_count(ifd: &tiff::decoder::IfdDecoder<'_>, tag: Tag) -> Result<u64> {
    ifd.find_entry(tag)
        .map(|e| e.count())
        .ok_or_else(|| Error::corrupt(format!("missing {tag:?}")))
}

fn require_u64(ifd: &mut tiff::decoder::IfdDecoder<'_>, tag: Tag) -> Result<u64> {
    opt_u64(ifd, tag)?.ok_or_else(|| Error::corrupt(format!("missing {tag:?}")))
}

fn opt_u64(ifd: &mut tiff::decoder::IfdDecoder<'_>, tag: Tag) -> Result<Option<u64>> {
    match ifd.find_tag(tag).map_err(tiff_error)? {
        None => Ok(None),
        // A one-element list is how some writers store a scalar.
        Some(Value::List(v)) if v.len() == 1 => v
            .into_iter()
            .next()
            .map(Value::into_u64)
            .transpose()
            .map_err(tiff_error),
        Some(v) => v
            .into_u64()
            .map(Some)
            .map_err(|_| Error::corrupt(format!("{tag:?} is not an unsigned integer"))),
    }
}

fn opt_u16_vec(ifd: &mut tiff::decoder::IfdDecoder<'_>, tag: Tag) -> Result<Option<Vec<u16>>> {
    match ifd.find_tag(tag).map_err(tiff_error)? {
        None => Ok(None),
        Some(v) => v
            .into_u16_vec()
            .map(Some)
            .map_err(|_| Error::corrupt(format!("{tag:?} is not a list of shorts"))),
    }
}

/// A rational, float or integer tag as f64 (`into_f64` only accepts DOUBLE).
fn opt_f64(ifd: &mut tiff::decoder::IfdDecoder<'_>, tag: Tag) -> Result<Option<f64>> {
    let v = match ifd.find_tag(tag).map_err(tiff_error)? {
        None => return Ok(None),
        Some(Value::List(v)) if v.len() == 1 => v.into_iter().next(),
        Some(v) => Some(v),
    };
    Ok(match v {
        Some(Value::Rational(n, d)) if d != 0 => Some(f64::from(n) / f64::from(d)),
        Some(Value::SRational(n, d)) if d != 0 => Some(f64::from(n) / f64::from(d)),
        Some(Value::Float(f)) => Some(f64::from(f)),
        Some(Value::Double(f)) => Some(f),
        Some(Value::Short(n)) => Some(f64::from(n)),
        Some(Value::Unsigned(n)) => Some(f64::from(n)),
        // A zero denominator or an odd type: the tag carries no usable value.
        _ => None,
    })
}

fn summary_format(name: &str) -> SampleFormat {
    // Complex samples are counted as their component type; void data as unsigned bytes.
    match name {
        "int" | "complex_int" => SampleFormat::Int,
        "float" | "complex_float" => SampleFormat::Float,
        _ => SampleFormat::Uint,
    }
}

fn photometric_name(code: u64) -> String {
    match code {
        0 => "miniswhite",
        1 => "minisblack",
        2 => "rgb",
        3 => "palette",
        4 => "mask",
        5 => "separated",
        6 => "ycbcr",
        8 => "cielab",
        9 => "icclab",
        10 => "itulab",
        32803 => "cfa",
        32844 => "logl",
        32845 => "logluv",
        34892 => "linear_raw",
        n => return format!("unknown_{n}"),
    }
    .to_string()
}

/// Compression names, after libtiff's COMPRESSION_* constants in lower case.
pub fn compression_name(code: u16) -> String {
    match code {
        1 => "none",
        2 => "ccitt_rle",
        3 => "ccitt_fax3",
        4 => "ccitt_fax4",
        5 => "lzw",
        6 => "ojpeg",
        7 => "jpeg",
        8 | 32946 => "deflate",
        32773 => "packbits",
        32809 => "thunderscan",
        34661 => "jbig",
        34676 => "sgilog",
        34677 => "sgilog24",
        34712 => "jpeg2000",
        34887 => "lerc",
        34925 => "lzma",
        34926 | 50000 => "zstd",
        34927 | 50001 => "webp",
        34933 => "png",
        34934 => "jpegxr",
        50002 => "jpegxl",
        n => return format!("unknown_{n}"),
    }
    .to_string()
}

/// Maps a `tiff` crate error to our kinds: limits are hostile, unsupported features
/// unsupported, everything else (short reads included) a broken file.
/// The one mapping of the `tiff` crate's errors to error records, for the probe and for
/// the tools that decode TIFF (strip-convert).
pub fn tiff_error(e: TiffError) -> Error {
    let kind = match &e {
        TiffError::LimitsExceeded | TiffError::IntSizeError => ErrorKind::Hostile,
        TiffError::UnsupportedError(_) => ErrorKind::Unsupported,
        TiffError::FormatError(TiffFormatError::CycleInOffsets) => ErrorKind::Corrupt,
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        // Seeking past 2^63 (an offset no file has) fails with EINVAL.
        TiffError::IoError(io) if io.raw_os_error() == Some(libc::EINVAL) => ErrorKind::Corrupt,
        TiffError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => ErrorKind::Io,
        TiffError::UsageError(_) => ErrorKind::Internal,
        _ => ErrorKind::Corrupt,
    };
    let message = match &e {
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "TIFF: truncated (the file ends inside its header, tag data or pixel data)".to_string()
        }
        TiffError::LimitsExceeded => "TIFF: a tag, strip or tile claims more data than the \
            decoder's limits allow: hostile or corrupt"
            .to_string(),
        TiffError::IntSizeError => "TIFF: sizes overflow".to_string(),
        TiffError::IoError(io) if io.raw_os_error() == Some(libc::EINVAL) => {
            "TIFF: an offset points past the end of the file (beyond 2^63 bytes): corrupt"
                .to_string()
        }
        _ => format!("TIFF: {e}"),
    };
    Error::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(compression_name(4), "ccitt_fax4");
        assert_eq!(compression_name(50000), "zstd");
        assert_eq!(compression_name(9999), "unknown_9999");
        assert_eq!(photometric_name(5), "separated");
        assert_eq!(summary_format("complex_float"), SampleFormat::Float);
    }

    #[test]
    fn truncated_header_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tif");
        std::fs::write(&p, b"II*\0\x08\0\0\0\x05").unwrap();
        let e = probe(&p).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    }
    /// A little-endian classic TIFF of one uncompressed 8-bit gray page, its IFD entries
    /// given as (tag, type, value) in file order (duplicates allowed).
    fn tiff_with(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut f = b"II*\0\x08\0\0\0".to_vec();
        f.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, ty, v) in entries {
            f.extend_from_slice(&tag.to_le_bytes());
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&0u32.to_le_bytes());
        f.resize(f.len() + 64 * 64, 7);
        f
    }

    /// libtiff and tifffile take the first of two entries with one tag (libtiff warns
    /// "ignoring later duplicates"); the crate's directory keeps the last.
    #[test]
    fn duplicate_tags_take_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dup.tif");
        std::fs::write(
            &p,
            tiff_with(&[
                (256, 4, 40),
                (256, 4, 64),
                (257, 4, 30),
                (258, 3, 8),
                (259, 3, 1),
                (262, 3, 1),
                (273, 4, 200),
                (278, 4, 30),
                (278, 4, 5),
                (279, 4, 40 * 30),
            ]),
        )
        .unwrap();
        let probe = probe(&p).unwrap();
        let super::super::Detail::Tiff(info) = &probe.detail else {
            panic!("not a TIFF probe")
        };
        assert_eq!((info.pages[0].width, info.pages[0].height), (40, 30));
        assert_eq!(info.pages[0].rows_per_strip, Some(30));
    }

    /// An IFD offset past 2^63 cannot even be seeked to: a corrupt-file error that says
    /// so, not the system's "Invalid argument".
    #[test]
    fn offsets_past_2_63_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("far.tif");
        // BigTIFF header: first IFD at 0x80FF_FFFF_FFFF_FFFF (Pillow's seek_too_large.tif).
        let mut f = b"II+\0\x08\0\0\0".to_vec();
        f.extend_from_slice(&0x80FF_FFFF_FFFF_FFFFu64.to_le_bytes());
        std::fs::write(&p, &f).unwrap();
        let e = probe(&p).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
        assert!(e.message.contains("past the end"), "{e}");
        // A classic TIFF whose strip offset is far past the end (not seeked by the probe)
        // still probes; the same error mapper serves the readers.
        let io = std::io::Error::from_raw_os_error(libc::EINVAL);
        let e = tiff_error(TiffError::IoError(io));
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    }
}
