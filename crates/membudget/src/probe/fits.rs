//! FITS probe: the header of every HDU (primary, image, binary or ASCII table,
//! tile-compressed image), never the data.
//!
//! The cards are parsed here by hand rather than through `fitsio`: a probe needs a few
//! mandatory keywords of each header and the size of each data unit to skip to the next,
//! which is a small, fully specified job (80-byte ASCII cards in 2880-byte blocks, FITS
//! 4.0 sections 3-4). Binding CFITSIO would add a C library build to the crate every tool
//! shares, and CFITSIO reads whole headers into memory without the limits we want against
//! hostile files. Every count and size here is bounded and checked: header blocks per HDU
//! ([`MAX_HEADER_BLOCKS`]), HDUs per file ([`MAX_HDUS`]), axes, and data units that would
//! run past the end of the file.

use super::{ImageSummary, Layout, Probe, SampleFormat};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// FITS block size: headers and data units are padded to it.
pub const BLOCK: u64 = 2880;
/// Bytes of one header card.
const CARD: usize = 80;
/// Header blocks one HDU may have (36 cards each): 4096 blocks is 147,456 cards, far
/// beyond any real header, and bounds the memory one header takes to ~12 MB.
pub const MAX_HEADER_BLOCKS: u64 = 4096;
/// HDUs read at most; a longer chain is treated as hostile.
pub const MAX_HDUS: usize = 10_000;
/// The standard allows NAXIS up to 999.
const MAX_NAXIS: i64 = 999;

/// Every HDU of a FITS file, in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitsInfo {
    /// The HDUs.
    pub hdus: Vec<Hdu>,
    /// Bytes after the last HDU that do not start another one (ignored, as astropy does).
    pub trailing_bytes: u64,
}

/// What kind of HDU this is (from `SIMPLE` or `XTENSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HduKind {
    /// The primary HDU (`SIMPLE = T`).
    Primary,
    /// `XTENSION = 'IMAGE'`.
    Image,
    /// `XTENSION = 'BINTABLE'` (tile-compressed images included: see [`Hdu::compressed`]).
    Bintable,
    /// `XTENSION = 'TABLE'` (ASCII table).
    Table,
    /// Any other extension type (skipped by its size).
    Other,
}

/// One header-data unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hdu {
    /// Position in the file, 0 for the primary HDU.
    pub index: usize,
    /// The kind of HDU.
    pub kind: HduKind,
    /// The `XTENSION` value as written (absent for the primary HDU).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xtension: Option<String>,
    /// `EXTNAME`, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extname: Option<String>,
    /// `EXTVER`, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extver: Option<i64>,
    /// `BITPIX` as written.
    pub bitpix: i64,
    /// `NAXIS1..NAXISn` as written (FITS order: fastest axis first).
    pub naxes: Vec<u64>,
    /// `BZERO`, if present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bzero: Option<f64>,
    /// `BSCALE`, if present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bscale: Option<f64>,
    /// The type a reader returns once BZERO/BSCALE are applied (`"uint16"` for int16
    /// with BZERO = 32768, `"float32"` for scaled int16...), for image HDUs with data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dtype: Option<String>,
    /// `PCOUNT` (heap bytes of a binary table).
    pub pcount: u64,
    /// `GCOUNT`.
    pub gcount: u64,
    /// Header cards up to and including `END`.
    pub cards: u64,
    /// Offset of the header in the file.
    pub header_offset: u64,
    /// Offset of the data unit in the file.
    pub data_offset: u64,
    /// Bytes of data (unpadded); the next HDU starts at `data_offset` plus this rounded up
    /// to 2880.
    pub data_bytes: u64,
    /// For a tile-compressed image (`ZIMAGE = T` in a binary table): the image it holds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compressed: Option<CompressedImage>,
    /// For a table (binary or ASCII, not a compressed image): its shape.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub table: Option<TableShape>,
}

/// The real geometry of a tile-compressed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressedImage {
    /// `ZBITPIX`.
    pub zbitpix: i64,
    /// `ZNAXIS1..ZNAXISn`.
    pub znaxes: Vec<u64>,
    /// `ZTILE1..ZTILEn` (defaults: whole rows, one at a time).
    pub ztile: Vec<u64>,
    /// `ZCMPTYPE` (`RICE_1`, `GZIP_1`, `GZIP_2`, `HCOMPRESS_1`, `PLIO_1`, `NOCOMPRESS`).
    pub zcmptype: String,
}

/// The shape of a table HDU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableShape {
    /// Rows (`NAXIS2`).
    pub rows: u64,
    /// Columns (`TFIELDS`).
    pub columns: u64,
    /// Bytes per row (`NAXIS1`).
    pub row_bytes: u64,
}

impl Hdu {
    /// Whether this HDU holds an image with pixels (primary or IMAGE extension with
    /// NAXIS > 0 and no zero axis, or a tile-compressed image).
    pub fn is_image_with_data(&self) -> bool {
        match self.kind {
            HduKind::Primary | HduKind::Image => {
                !self.naxes.is_empty() && self.naxes.iter().all(|&n| n > 0) && !self.groups()
            }
            HduKind::Bintable => self
                .compressed
                .as_ref()
                .is_some_and(|c| !c.znaxes.is_empty() && c.znaxes.iter().all(|&n| n > 0)),
            _ => false,
        }
    }

    /// Random-groups primary HDU (NAXIS1 = 0 with data): not an image.
    fn groups(&self) -> bool {
        self.kind == HduKind::Primary && self.naxes.first() == Some(&0) && self.data_bytes > 0
    }

    /// The image geometry (axes, BITPIX) for an image HDU: the compressed image's own for
    /// a tile-compressed HDU.
    fn image_axes(&self) -> (&[u64], i64) {
        match &self.compressed {
            Some(c) => (&c.znaxes, c.zbitpix),
            None => (&self.naxes, self.bitpix),
        }
    }
}

/// A parsed header: the cards as (keyword, value) pairs, values kept raw.
struct Header {
    cards: Vec<(String, String)>,
    count: u64,
}

impl Header {
    fn raw(&self, key: &str) -> Option<&str> {
        self.cards
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => parse_int(v).map(Some).ok_or_else(|| {
                Error::corrupt(format!("FITS keyword {key} is not an integer: {v:?}"))
            }),
        }
    }
    fn req_int(&self, key: &str) -> Result<i64> {
        self.int(key)?
            .ok_or_else(|| Error::corrupt(format!("FITS header lacks mandatory keyword {key}")))
    }
    /// A non-negative integer (axis lengths, counts).
    fn count(&self, key: &str, default: Option<u64>) -> Result<u64> {
        let v = match (self.int(key)?, default) {
            (Some(v), _) => v,
            (None, Some(d)) => return Ok(d),
            (None, None) => self.req_int(key)?,
        };
        u64::try_from(v).map_err(|_| Error::corrupt(format!("FITS keyword {key} is negative: {v}")))
    }
    fn float(&self, key: &str) -> Option<f64> {
        self.raw(key).and_then(parse_float)
    }
    fn string(&self, key: &str) -> Option<String> {
        self.raw(key).and_then(parse_string)
    }
    fn logical(&self, key: &str) -> Option<bool> {
        match self.raw(key)?.trim() {
            "T" => Some(true),
            "F" => Some(false),
            _ => None,
        }
    }
}

/// Splits one card into keyword and raw value (comment removed). Cards without a value
/// indicator (`COMMENT`, `HISTORY`, blank) give an empty value.
fn parse_card(card: &[u8]) -> Result<(String, String)> {
    if let Some(bad) = card.iter().find(|&&b| !(0x20..=0x7E).contains(&b)) {
        return Err(Error::corrupt(format!(
            "FITS header card holds a non-ASCII byte 0x{bad:02x}"
        )));
    }
    // Checked ASCII above, so this cannot fail; lossy keeps the code free of unwraps.
    let text = String::from_utf8_lossy(card);
    let key = text[..8].trim_end().to_string();
    if &text[8..10] != "= " {
        return Ok((key, String::new()));
    }
    let rest = &text[10..];
    let value = match rest.trim_start().strip_prefix('\'') {
        // A string value: quotes inside are doubled; the comment starts after the closing quote.
        Some(s) => {
            let mut out = String::from("'");
            let mut chars = s.chars().peekable();
            while let Some(c) = chars.next() {
                out.push(c);
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        out.push('\'');
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            out
        }
        None => rest.split('/').next().unwrap_or("").trim().to_string(),
    };
    Ok((key, value))
}

fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim();
    let v = v.strip_prefix('+').unwrap_or(v);
    v.parse::<i64>().ok()
}

fn parse_float(v: &str) -> Option<f64> {
    // FITS allows Fortran 'D' exponents.
    let v = v.trim().replace(['D', 'd'], "E");
    let v = v.strip_prefix('+').unwrap_or(&v);
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_string(v: &str) -> Option<String> {
    let inner = v.strip_prefix('\'')?.strip_suffix('\'')?;
    // Trailing blanks are not significant in FITS strings; leading ones are.
    Some(inner.replace("''", "'").trim_end().to_string())
}

/// Reads one header starting at the current position: whole blocks up to the `END` card.
/// Returns `Ok(None)` at a clean end of file (no bytes left).
fn read_header(r: &mut impl Read) -> Result<Option<Header>> {
    let mut cards = Vec::new();
    let mut count = 0u64;
    let mut block = vec![0u8; BLOCK as usize];
    for n in 0..MAX_HEADER_BLOCKS {
        let got = read_full(r, &mut block)?;
        if got == 0 && n == 0 {
            return Ok(None);
        }
        if got < block.len() {
            return Err(Error::corrupt(
                "FITS file truncated inside a header (no END card)",
            ));
        }
        for card in block.chunks_exact(CARD) {
            count += 1;
            let (key, value) = parse_card(card)?;
            if key == "END" {
                return Ok(Some(Header { cards, count }));
            }
            // COMMENT, HISTORY and blank cards carry nothing a probe needs.
            if !value.is_empty() {
                cards.push((key, value));
            }
        }
    }
    Err(Error::hostile(format!(
        "FITS header longer than {MAX_HEADER_BLOCKS} blocks"
    )))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// The type a reader returns for `BITPIX` with `BZERO`/`BSCALE` applied, following the
/// FITS convention for unsigned integers (and astropy's choice of float width).
pub fn effective_dtype(
    bitpix: i64,
    bzero: Option<f64>,
    bscale: Option<f64>,
) -> Option<&'static str> {
    let zero = bzero.unwrap_or(0.0);
    let scale = bscale.unwrap_or(1.0);
    let unscaled = zero == 0.0 && scale == 1.0;
    Some(match bitpix {
        8 if unscaled => "uint8",
        8 if zero == -128.0 && scale == 1.0 => "int8",
        8 => "float32",
        16 if unscaled => "int16",
        16 if zero == 32768.0 && scale == 1.0 => "uint16",
        16 => "float32",
        32 if unscaled => "int32",
        32 if zero == 2_147_483_648.0 && scale == 1.0 => "uint32",
        32 => "float64",
        64 if unscaled => "int64",
        64 if zero == 9_223_372_036_854_775_808.0 && scale == 1.0 => "uint64",
        64 => "float64",
        -32 => "float32",
        -64 => "float64",
        _ => return None,
    })
}

fn dtype_sample(dtype: &str) -> (SampleFormat, u32) {
    let (fmt, digits) = if let Some(d) = dtype.strip_prefix("uint") {
        (SampleFormat::Uint, d)
    } else if let Some(d) = dtype.strip_prefix("int") {
        (SampleFormat::Int, d)
    } else {
        (SampleFormat::Float, dtype.trim_start_matches("float"))
    };
    (fmt, digits.parse().unwrap_or(8))
}

fn check_bitpix(bitpix: i64, key: &str) -> Result<()> {
    if matches!(bitpix, 8 | 16 | 32 | 64 | -32 | -64) {
        Ok(())
    } else {
        Err(Error::corrupt(format!(
            "FITS {key} = {bitpix} is not a valid value"
        )))
    }
}

/// Reads the axes `{prefix}1..{prefix}n`.
fn axes(h: &Header, prefix: &str, n: i64) -> Result<Vec<u64>> {
    if !(0..=MAX_NAXIS).contains(&n) {
        return Err(Error::corrupt(format!(
            "FITS {prefix} = {n} is out of range"
        )));
    }
    (1..=n)
        .map(|i| h.count(&format!("{prefix}{i}"), None))
        .collect()
}

/// Builds one HDU from its header; `index` 0 is the primary HDU.
fn hdu_from_header(h: &Header, index: usize, header_offset: u64, data_offset: u64) -> Result<Hdu> {
    let first = h.cards.first().map(|(k, _)| k.as_str());
    let (kind, xtension) = if index == 0 {
        if first != Some("SIMPLE") || h.logical("SIMPLE") != Some(true) {
            return Err(Error::corrupt(
                "not a FITS file: first card is not SIMPLE = T",
            ));
        }
        (HduKind::Primary, None)
    } else {
        if first != Some("XTENSION") {
            return Err(Error::corrupt(format!(
                "FITS HDU {index} does not start with XTENSION"
            )));
        }
        let x = h.string("XTENSION").unwrap_or_default();
        let kind = match x.as_str() {
            "IMAGE" => HduKind::Image,
            "BINTABLE" | "A3DTABLE" => HduKind::Bintable,
            "TABLE" => HduKind::Table,
            _ => HduKind::Other,
        };
        (kind, Some(x))
    };
    let bitpix = h.req_int("BITPIX")?;
    check_bitpix(bitpix, "BITPIX")?;
    let naxes = axes(h, "NAXIS", h.req_int("NAXIS")?)?;
    let (pcount, gcount) = if kind == HduKind::Primary {
        // Only random-groups primaries carry PCOUNT/GCOUNT; others default to 0/1.
        (h.count("PCOUNT", Some(0))?, h.count("GCOUNT", Some(1))?)
    } else {
        (h.count("PCOUNT", None)?, h.count("GCOUNT", None)?)
    };
    let data_bytes = data_size(bitpix, &naxes, pcount, gcount, kind == HduKind::Primary)
        .ok_or_else(|| Error::hostile(format!("FITS HDU {index}: data size overflows")))?;
    let bzero = h.float("BZERO");
    let bscale = h.float("BSCALE");

    let compressed = if kind == HduKind::Bintable && h.logical("ZIMAGE") == Some(true) {
        let zbitpix = h.req_int("ZBITPIX")?;
        check_bitpix(zbitpix, "ZBITPIX")?;
        let znaxes = axes(h, "ZNAXIS", h.req_int("ZNAXIS")?)?;
        let ztile = (1..=znaxes.len())
            .map(|i| {
                // Default tiling (FITS 4.0 section 10.1.1): one row per tile.
                let default = if i == 1 { znaxes[0] } else { 1 };
                h.count(&format!("ZTILE{i}"), Some(default))
            })
            .collect::<Result<Vec<_>>>()?;
        let zcmptype = h
            .string("ZCMPTYPE")
            .ok_or_else(|| Error::corrupt("compressed FITS image lacks ZCMPTYPE"))?;
        Some(CompressedImage {
            zbitpix,
            znaxes,
            ztile,
            zcmptype,
        })
    } else {
        None
    };
    let table = if compressed.is_none() && matches!(kind, HduKind::Bintable | HduKind::Table) {
        Some(TableShape {
            rows: naxes.get(1).copied().unwrap_or(0),
            columns: h.count("TFIELDS", None)?,
            row_bytes: naxes.first().copied().unwrap_or(0),
        })
    } else {
        None
    };
    let image_like = matches!(kind, HduKind::Primary | HduKind::Image) || compressed.is_some();
    let dtype_bitpix = compressed.as_ref().map_or(bitpix, |c| c.zbitpix);
    let mut hdu = Hdu {
        index,
        kind,
        xtension,
        extname: h.string("EXTNAME"),
        extver: h.int("EXTVER").ok().flatten(),
        bitpix,
        naxes,
        bzero,
        bscale,
        dtype: None,
        pcount,
        gcount,
        cards: h.count,
        header_offset,
        data_offset,
        data_bytes,
        compressed,
        table,
    };
    if image_like && hdu.is_image_with_data() {
        hdu.dtype = effective_dtype(dtype_bitpix, bzero, bscale).map(str::to_string);
    }
    Ok(hdu)
}

/// Bytes of a data unit (FITS 4.0 eq. 2 and 4): |BITPIX|/8 x GCOUNT x (PCOUNT + product of
/// the axes), where a random-groups primary (NAXIS1 = 0) leaves out the first axis.
fn data_size(bitpix: i64, naxes: &[u64], pcount: u64, gcount: u64, primary: bool) -> Option<u64> {
    if naxes.is_empty() {
        return Some(0);
    }
    let axes = if primary && naxes[0] == 0 && naxes.len() > 1 {
        &naxes[1..]
    } else {
        naxes
    };
    let product = axes.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))?;
    let elements = if primary && naxes[0] != 0 {
        product
    } else {
        product.checked_add(pcount)?.checked_mul(gcount)?
    };
    elements.checked_mul(bitpix.unsigned_abs() / 8)
}

/// Probe a FITS file: every HDU's header, skipping data units by their computed size.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let info = read_hdus(&mut r, len)?;
    let image = image_summary(&info.hdus);
    Ok(Probe {
        format: super::Format::Fits,
        bytes: len,
        image,
        points: None,
        archive: None,
        document: None,
        detail: super::Detail::Fits(info),
    })
}

/// Walks the HDU chain of a file of `len` bytes.
pub fn read_hdus<R: Read + Seek>(r: &mut R, len: u64) -> Result<FitsInfo> {
    let mut hdus = Vec::new();
    let mut offset = 0u64;
    let mut trailing_bytes = 0;
    while offset < len {
        if hdus.len() >= MAX_HDUS {
            return Err(Error::hostile(format!(
                "FITS file has more than {MAX_HDUS} HDUs"
            )));
        }
        r.seek(SeekFrom::Start(offset))?;
        if !hdus.is_empty() {
            // What follows the last HDU is another one only if it says so; anything else
            // (padding, junk a writer left) is ignored, as astropy and CFITSIO do.
            let mut magic = [0u8; 9];
            let got = read_full(r, &mut magic)?;
            if got < magic.len() || &magic != b"XTENSION=" {
                trailing_bytes = len - offset;
                break;
            }
            r.seek(SeekFrom::Start(offset))?;
        }
        let Some(h) = read_header(r)? else { break };
        let data_offset = offset + h.count.div_ceil(36) * BLOCK;
        let hdu = hdu_from_header(&h, hdus.len(), offset, data_offset)?;
        let end = data_offset
            .checked_add(hdu.data_bytes)
            .filter(|&e| e <= len)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "FITS HDU {} is truncated: its data needs {} bytes at offset {data_offset}, the file has {len}",
                    hdu.index, hdu.data_bytes
                ))
            })?;
        hdus.push(hdu);
        // The padding of the last data unit may be missing; `offset >= len` ends the walk.
        offset = end.div_ceil(BLOCK).saturating_mul(BLOCK);
    }
    if hdus.is_empty() {
        return Err(Error::corrupt("FITS file has no header"));
    }
    Ok(FitsInfo {
        hdus,
        trailing_bytes,
    })
}

/// The first image HDU with data, as the cost models see it; `pages` counts the planes
/// (axes beyond the second) of every image HDU with data.
fn image_summary(hdus: &[Hdu]) -> Option<ImageSummary> {
    let images: Vec<&Hdu> = hdus.iter().filter(|h| h.is_image_with_data()).collect();
    let first = images.first()?;
    let (axes, bitpix) = first.image_axes();
    let planes = |h: &Hdu| -> u64 {
        let (a, _) = h.image_axes();
        a.iter().skip(2).fold(1u64, |acc, &n| acc.saturating_mul(n))
    };
    let pages = images
        .iter()
        .fold(0u64, |acc, h| acc.saturating_add(planes(h)));
    let dtype = first
        .dtype
        .as_deref()
        .or_else(|| effective_dtype(bitpix, None, None))
        .unwrap_or("uint8");
    let (sample_format, bits) = dtype_sample(dtype);
    let width = axes[0];
    let height = axes.get(1).copied().unwrap_or(1);
    // A tile-compressed image is read tile by tile; uncompressed data row by row.
    let (layout, block) = match &first.compressed {
        Some(c) => {
            let tw = c.ztile.first().copied().unwrap_or(width);
            let th = c.ztile.get(1).copied().unwrap_or(1);
            if tw >= width {
                (Layout::Strips, [width, th])
            } else {
                (Layout::Tiles, [tw, th])
            }
        }
        None => (Layout::Strips, [width, 1]),
    };
    Some(ImageSummary {
        width,
        height,
        bands: 1,
        bits,
        sample_format,
        pages,
        layout,
        block,
        compressed: first.compressed.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(cards: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cards.iter().chain(std::iter::once(&"END")) {
            let mut card = c.as_bytes().to_vec();
            card.resize(CARD, b' ');
            out.extend(card);
        }
        out.resize(out.len().div_ceil(BLOCK as usize) * BLOCK as usize, b' ');
        out
    }

    #[test]
    fn card_values() {
        let (k, v) =
            parse_card(format!("{:<80}", "EXTNAME = 'O''HARA  '  / a name").as_bytes()).unwrap();
        assert_eq!(k, "EXTNAME");
        assert_eq!(parse_string(&v).as_deref(), Some("O'HARA"));
        let (_, v) = parse_card(format!("{:<80}", "BSCALE  =   1.5D2 / x").as_bytes()).unwrap();
        assert_eq!(parse_float(&v), Some(150.0));
    }

    #[test]
    fn uint16_and_cube() {
        let mut f = header(&[
            "SIMPLE  =                    T",
            "BITPIX  =                   16",
            "NAXIS   =                    3",
            "NAXIS1  =                    4",
            "NAXIS2  =                    3",
            "NAXIS3  =                    5",
            "BZERO   =                32768",
        ]);
        f.resize(f.len() + 2880, 0);
        let info = read_hdus(&mut Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(info.hdus[0].data_bytes, 4 * 3 * 5 * 2);
        assert_eq!(info.hdus[0].dtype.as_deref(), Some("uint16"));
        let s = image_summary(&info.hdus).unwrap();
        assert_eq!((s.width, s.height, s.pages, s.bits), (4, 3, 5, 16));
        assert_eq!(s.sample_format, SampleFormat::Uint);
    }

    #[test]
    fn hostile_sizes() {
        let f = header(&[
            "SIMPLE  =                    T",
            "BITPIX  =                   64",
            "NAXIS   =                    3",
            "NAXIS1  =  9000000000000000000",
            "NAXIS2  =  9000000000000000000",
            "NAXIS3  =                    5",
        ]);
        let e = read_hdus(&mut Cursor::new(&f), f.len() as u64).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Hostile);
        let f = header(&[
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    1",
            "NAXIS1  =              1000000",
        ]);
        let e = read_hdus(&mut Cursor::new(&f), f.len() as u64).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Corrupt);
        // A header with no END card that goes on forever is bounded.
        let mut f = format!("{:<80}", "SIMPLE  =                    T").into_bytes();
        f.resize((BLOCK * (MAX_HEADER_BLOCKS + 1)) as usize, b' ');
        let e = read_hdus(&mut Cursor::new(&f), f.len() as u64).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Hostile);
    }
}
