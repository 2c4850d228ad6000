//! Reading a TIFF page band by band: only the strips or tiles that overlap the rows asked
//! for are decoded, and their samples land in planar per-component buffers (one byte per
//! sample up to 8 bits, two native-endian bytes up to 16), the layout OpenJPEG takes.
//!
//! Sample rules (documented in the man page): gray, gray+alpha, RGB and RGBA are kept as
//! they are (1 to 16 bits; 1-, 2- and 4-bit gray keep their precision); palette images are
//! expanded to RGB (8 bits when every colour-map entry is an exact 8-bit value, else 16);
//! WhiteIsZero is inverted by the decoder so that 0 is black, as JP2's greyscale says;
//! JPEG-compressed YCbCr is decoded to RGB. CMYK, float and signed samples are refused:
//! JP2 has no CMYK colour space, and converting any of them would change the archived
//! values by a rule the archive did not choose.

use membudget::{Error, ErrorKind};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use tiff::decoder::{ChunkType, Decoder, DecodingResult, Limits};
use tiff::tags::{PhotometricInterpretation, PlanarConfiguration, SampleFormat, Tag};
use tiff::ColorType;

/// Colour interpretation of the output components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// One gray component (then maybe alpha or extra components).
    Gray,
    /// Red, green, blue (then maybe alpha).
    Rgb,
}

/// What the extra component after the colour components means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// No extra component.
    None,
    /// Unassociated (straight) alpha.
    Alpha,
    /// Associated (premultiplied) alpha.
    Premultiplied,
    /// An extra component of unspecified meaning.
    Unspecified,
}

/// Capture resolution in pixels per metre (TIFF XResolution/YResolution with a unit),
/// kept as an exact fraction `num / den * 10^exp` where possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution {
    /// Horizontal: (numerator, denominator, decimal exponent).
    pub x: (u32, u32, i8),
    /// Vertical: (numerator, denominator, decimal exponent).
    pub y: (u32, u32, i8),
}

impl Resolution {
    /// Horizontal pixels per metre.
    pub fn x_ppm(&self) -> f64 {
        f64::from(self.x.0) / f64::from(self.x.1) * 10f64.powi(i32::from(self.x.2))
    }
    /// Vertical pixels per metre.
    pub fn y_ppm(&self) -> f64 {
        f64::from(self.y.0) / f64::from(self.y.1) * 10f64.powi(i32::from(self.y.2))
    }
}

/// How the decoder's samples become output samples.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Samples are copied (bits 8 or 16, or unpacked from 1/2/4 bits).
    Direct,
    /// Indices into a colour map (`r`, `g`, `b` tables of 2^bits entries each).
    Palette { map: Vec<u16>, shift: u8 },
}

/// One page of a TIFF as the converter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    /// Page index (IFD number, from 0).
    pub index: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Output components.
    pub comps: u16,
    /// Output bits per sample.
    pub prec: u8,
    /// Colour interpretation.
    pub colour: Colour,
    /// Meaning of the component after the colour ones.
    pub extra: Extra,
    /// The ICC profile (tag 34675), if any.
    pub icc: Option<Vec<u8>>,
    /// The XMP packet (tag 700), if any.
    pub xmp: Option<Vec<u8>>,
    /// Capture resolution, if the TIFF says it in inches or centimetres.
    pub resolution: Option<Resolution>,
    /// `strips` or `tiles`.
    pub layout: &'static str,
    /// Strip or tile size `(width, rows)`.
    pub chunk: (u32, u32),
    /// Decoded bytes of the largest chunk (all planes of a coding unit).
    pub chunk_bytes: u64,
    /// Uncompressed strips: read straight from the file, a few rows at a time, not through
    /// the tiff crate's decoder (which holds whole strips, so one giant strip would be the
    /// whole image, and refuses palette and 12-bit samples).
    pub direct: bool,
    /// Rows read or decoded at once besides the band: the strip or tile height through
    /// the decoder, [`DIRECT_READ_BYTES`] worth of rows on the direct path.
    pub read_rows: u32,
    /// Samples per pixel in the file.
    samples: u16,
    /// Bits per sample in the file.
    bits: u8,
    planar: bool,
    kind: Kind,
}

impl PageInfo {
    /// Bytes per output sample in planar buffers (1 or 2).
    pub fn sample_bytes(&self) -> usize {
        if self.prec <= 8 {
            1
        } else {
            2
        }
    }
    /// Bytes of one output row, all components.
    pub fn row_bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.comps) * self.sample_bytes() as u64
    }
}

/// A band of rows in planar layout: `planes[c]` holds `rows` rows of `width` samples.
#[derive(Debug, Default)]
pub struct Band {
    /// First row of the band in the image.
    pub y0: u32,
    /// Number of rows.
    pub rows: u32,
    /// Width in samples.
    pub width: u32,
    /// Bytes per sample.
    pub sample_bytes: usize,
    /// One buffer per component.
    pub planes: Vec<Vec<u8>>,
}

impl Band {
    /// Copy the rectangle `x0..x1` of every row into `out` as planar tile data
    /// (component after component).
    pub fn tile(&self, x0: u32, x1: u32, out: &mut Vec<u8>) {
        let sb = self.sample_bytes;
        let w = self.width as usize * sb;
        let (a, b) = (x0 as usize * sb, x1 as usize * sb);
        out.clear();
        out.reserve((b - a) * self.rows as usize * self.planes.len());
        for plane in &self.planes {
            for r in 0..self.rows as usize {
                out.extend_from_slice(&plane[r * w + a..r * w + b]);
            }
        }
    }
}

// One error mapper and one page limit for every TIFF reader in the workspace.
use membudget::probe::tiff::{tiff_error as tiff_err, MAX_PAGES};

/// The TIFF decoder's limits: a strip or tile may decode to at most 256 MiB (the plan
/// must hold one), tags (ICC, XMP) may hold up to 16 MiB.
fn limits() -> Limits {
    let mut l = Limits::default();
    l.ifd_value_size = 16 << 20;
    l
}

/// Bytes read at once on the direct path (uncompressed strips).
/// (The cost model's figure: chunk-plan and this tool plan alike.)
pub const DIRECT_READ_BYTES: u64 = membudget::cost::strip_convert::DIRECT_READ_BYTES;

/// An open TIFF file positioned on one page.
pub struct TiffPage {
    decoder: Decoder<Reader>,
    /// The page.
    pub info: PageInfo,
    /// Decoded chunks that may still be needed by the next band.
    cache: BTreeMap<u32, DecodingResult>,
    /// The direct path's strip table, when `info.direct`.
    direct: Option<Direct>,
}

/// Where the uncompressed strips are: rows are read from the file by offset.
struct Direct {
    file: File,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    big_endian: bool,
    /// WhiteIsZero: inverted here, as the decoder does on its path.
    white_is_zero: bool,
}

impl std::fmt::Debug for TiffPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffPage")
            .field("info", &self.info)
            .finish()
    }
}

/// What the decoder reads: the file, its header made to point at one page's IFD.
type Reader = BufReader<PageFile>;

/// A TIFF file whose header's first-IFD pointer reads as the offset of one chosen page,
/// so a decoder starts on that page without walking the chain from the first IFD (which
/// made a file of N pages cost N^2 directory reads).
struct PageFile {
    file: File,
    pos: u64,
    /// Where the first-IFD pointer is (4 in TIFF, 8 in BigTIFF) and the bytes it reads as.
    at: u64,
    pointer: Vec<u8>,
}

impl PageFile {
    fn open(path: &Path, ifd: Option<u64>) -> Result<PageFile, Error> {
        let mut file = File::open(path)?;
        let mut head = [0u8; 4];
        file.read_exact(&mut head)?;
        file.rewind()?;
        let big_endian = &head[..2] == b"MM";
        let bigtiff = head[2..] == [0, 43] || head[2..] == [43, 0];
        let (at, pointer) = match ifd {
            None => (0, Vec::new()),
            Some(o) if bigtiff => (
                8,
                if big_endian {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                }
                .to_vec(),
            ),
            Some(o) => {
                let o =
                    u32::try_from(o).map_err(|_| Error::corrupt("TIFF: IFD offset past 4 GiB"))?;
                (
                    4,
                    if big_endian {
                        o.to_be_bytes()
                    } else {
                        o.to_le_bytes()
                    }
                    .to_vec(),
                )
            }
        };
        Ok(PageFile {
            file,
            pos: 0,
            at,
            pointer,
        })
    }
}

impl Read for PageFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let end = self.at + self.pointer.len() as u64;
        if self.pos < end && self.pos + n as u64 > self.at {
            for (i, b) in buf[..n].iter_mut().enumerate() {
                let p = self.pos + i as u64;
                if (self.at..end).contains(&p) {
                    *b = self.pointer[(p - self.at) as usize];
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PageFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// A decoder of the file at `path`, on the page whose IFD is at `ifd` (the first page
/// when `None`).
fn decoder(path: &Path, ifd: Option<u64>) -> Result<Decoder<Reader>, Error> {
    Ok(Decoder::new(BufReader::new(PageFile::open(path, ifd)?))
        .map_err(tiff_err)?
        .with_limits(limits()))
}

/// The IFD offset of every page, in chain order: one walk (the decoder refuses cycles),
/// at most [`MAX_PAGES`] pages. [`TiffPage::open_at`] opens any of them directly.
pub fn page_offsets(path: &Path) -> Result<Vec<u64>, Error> {
    let mut d = decoder(path, None)?;
    let first = d
        .ifd_pointer()
        .ok_or_else(|| Error::corrupt("TIFF: no first IFD"))?;
    let mut pages = vec![first.0];
    while d.more_images() {
        if pages.len() >= MAX_PAGES {
            return Err(Error::hostile(format!("TIFF: more than {MAX_PAGES} pages")));
        }
        d.next_image().map_err(tiff_err)?;
        pages.push(d.ifd_pointer().map(|p| p.0).unwrap_or(0));
    }
    Ok(pages)
}

/// Number of pages (IFDs) in the file.
pub fn page_count(path: &Path) -> Result<usize, Error> {
    page_offsets(path).map(|p| p.len())
}

impl TiffPage {
    /// Open page `index` of the TIFF at `path` and read its header (walks the IFD
    /// chain: with many pages, take [`page_offsets`] once and use [`TiffPage::open_at`]).
    pub fn open(path: &Path, index: usize) -> Result<TiffPage, Error> {
        let offsets = page_offsets(path)?;
        let ifd = offsets.get(index).ok_or_else(|| {
            Error::new(
                ErrorKind::BadRecord,
                format!("page {}: the file has {} page(s)", index + 1, offsets.len()),
            )
        })?;
        Self::open_at(path, index, *ifd)
    }

    /// Open page `index`, whose IFD is at offset `ifd` (from [`page_offsets`]), without
    /// reading the IFDs before it.
    pub fn open_at(path: &Path, index: usize, ifd: u64) -> Result<TiffPage, Error> {
        let mut d = decoder(path, (index > 0).then_some(ifd))?;
        let info = read_info(&mut d, index)?;
        let direct = if info.direct {
            let table = |d: &mut Decoder<Reader>, tag| {
                d.get_tag(tag)
                    .and_then(|v| v.into_u64_vec())
                    .map_err(tiff_err)
            };
            let offsets = table(&mut d, Tag::StripOffsets)?;
            let counts = table(&mut d, Tag::StripByteCounts)?;
            let planes = if info.planar { info.samples } else { 1 };
            let strips = u64::from(info.height.div_ceil(info.chunk.1)) * u64::from(planes);
            if offsets.len() as u64 != strips || counts.len() as u64 != strips {
                return Err(Error::corrupt(format!(
                    "TIFF: {} strip offsets and {} byte counts for {strips} strips",
                    offsets.len(),
                    counts.len()
                )));
            }
            let mut file = File::open(path)?;
            let mut order = [0u8; 2];
            std::io::Read::read_exact(&mut file, &mut order)?;
            Some(Direct {
                file,
                offsets,
                counts,
                big_endian: &order == b"MM",
                white_is_zero: d
                    .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
                    .map_err(tiff_err)?
                    == Some(0),
            })
        } else {
            None
        };
        Ok(TiffPage {
            decoder: d,
            info,
            cache: BTreeMap::new(),
            direct,
        })
    }

    /// The direct path of [`TiffPage::read_band`]: the band's rows of each strip, read
    /// [`PageInfo::read_rows`] rows at a time and placed like decoded data.
    fn read_band_direct(&self, direct: &Direct, band: &mut Band) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        let info = &self.info;
        let (y0, rows) = (band.y0, band.rows);
        let ch = info.chunk.1;
        let per_plane = info.height.div_ceil(ch);
        let planes = if info.planar { info.samples } else { 1 };
        let spp = u64::from(if info.planar { 1 } else { info.samples });
        let row_bytes = (u64::from(info.width) * spp * u64::from(info.bits)).div_ceil(8);
        let step = info.read_rows.max(1);
        let mut buf = Vec::new();
        for strip in y0 / ch..=(y0 + rows - 1) / ch {
            let sy0 = strip * ch;
            let (r0, r1) = (y0.max(sy0), (y0 + rows).min(sy0 + ch).min(info.height));
            for plane in 0..u32::from(planes) {
                let idx = (plane * per_plane + strip) as usize;
                let (offset, count) = (direct.offsets[idx], direct.counts[idx]);
                if u64::from(r1 - sy0) * row_bytes > count {
                    return Err(Error::corrupt(format!(
                        "TIFF: strip {idx} holds {count} bytes, fewer than its rows need"
                    )));
                }
                let mut r = r0;
                while r < r1 {
                    let n = step.min(r1 - r);
                    let at = offset + u64::from(r - sy0) * row_bytes;
                    buf.clear();
                    buf.resize((u64::from(n) * row_bytes) as usize, 0);
                    direct.file.read_exact_at(&mut buf, at).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            Error::corrupt(format!(
                                "TIFF: strip {idx} runs past the end of the file"
                            ))
                        } else {
                            Error::from(e)
                        }
                    })?;
                    if direct.white_is_zero && info.bits <= 8 {
                        // Every sample field inverted: max - v is the bitwise complement,
                        // packed or not.
                        buf.iter_mut().for_each(|b| *b = !*b);
                    }
                    let mut data = raw_samples(
                        std::mem::take(&mut buf),
                        info.bits,
                        direct.big_endian,
                        (u64::from(info.width) * spp) as usize,
                        n as usize,
                    );
                    if let (true, DecodingResult::U16(v)) = (direct.white_is_zero, &mut data) {
                        let max = ((1u32 << info.bits) - 1) as u16;
                        v.iter_mut().for_each(|x| *x = max.saturating_sub(*x));
                    }
                    place(info, &data, (0, r, info.width, n), plane as u16, band)?;
                    // The buffer is reused for the next rows.
                    if let DecodingResult::U8(v) = data {
                        buf = v;
                    }
                    r += n;
                }
            }
        }
        Ok(())
    }

    /// Fill `band` with rows `y0 .. y0 + rows` (reusing its buffers).
    pub fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let info = &self.info;
        let sb = info.sample_bytes();
        band.y0 = y0;
        band.rows = rows;
        band.width = info.width;
        band.sample_bytes = sb;
        let plane_len = info.width as usize * rows as usize * sb;
        band.planes.resize_with(usize::from(info.comps), Vec::new);
        for p in &mut band.planes {
            p.clear();
            p.resize(plane_len, 0);
        }
        if let Some(direct) = &self.direct {
            return self.read_band_direct(direct, band);
        }
        let (cw, ch) = info.chunk;
        let across = info.width.div_ceil(cw);
        let per_plane = across * info.height.div_ceil(ch);
        let planes = if info.planar { info.samples } else { 1 };
        let (first_row, last_row) = (y0 / ch, (y0 + rows - 1) / ch);
        for crow in first_row..=last_row {
            for cx in 0..across {
                for plane in 0..planes {
                    let idx = u32::from(plane) * per_plane + crow * across + cx;
                    if !self.cache.contains_key(&idx) {
                        let data = self.decoder.read_chunk(idx).map_err(tiff_err)?;
                        self.cache.insert(idx, data);
                    }
                    let (dw, dh) = self.decoder.chunk_data_dimensions(idx);
                    let data = &self.cache[&idx];
                    place(&self.info, data, (cx * cw, crow * ch, dw, dh), plane, band)?;
                    // A chunk ending inside this band is done: free it now, so the decoded
                    // chunks held never add up to a second band.
                    if (crow + 1) * ch <= y0 + rows {
                        self.cache.remove(&idx);
                    }
                }
            }
        }
        // Only chunks reaching past this band are kept; drop any left from earlier bands.
        let end = y0 + rows;
        self.cache.retain(|idx, _| {
            let crow = (idx % per_plane) / across;
            (crow + 1) * ch > end
        });
        Ok(())
    }
}

fn read_info(d: &mut Decoder<Reader>, index: usize) -> Result<PageInfo, Error> {
    let (width, height) = d.dimensions().map_err(tiff_err)?;
    if width == 0 || height == 0 {
        return Err(Error::corrupt("TIFF: zero width or height"));
    }
    let photometric = d
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .map_err(tiff_err)?
        .and_then(PhotometricInterpretation::from_u16);
    let compression = d
        .find_tag_unsigned::<u16>(Tag::Compression)
        .map_err(tiff_err)?
        .unwrap_or(1);
    let strips = matches!(d.get_chunk_type(), ChunkType::Strip);
    // The tiff crate's decoder refuses palette images; uncompressed ones are read directly.
    let color = if photometric == Some(PhotometricInterpretation::RGBPalette) {
        if compression != 1 || !strips {
            return Err(Error::unsupported(
                "palette TIFFs are read only when stored uncompressed in strips (the tiff \
                 crate does not decode palette images)",
            ));
        }
        let bits = d
            .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
            .map_err(tiff_err)?
            .and_then(|v| v.first().copied())
            .unwrap_or(1);
        if !matches!(bits, 1 | 2 | 4 | 8) {
            return Err(Error::unsupported(format!(
                "{bits}-bit palette images are not supported (1, 2, 4 or 8)"
            )));
        }
        ColorType::Palette(bits as u8)
    } else {
        d.colortype().map_err(tiff_err)?
    };
    let sample_format = d
        .find_tag_unsigned_vec::<u16>(Tag::SampleFormat)
        .map_err(tiff_err)?
        .and_then(|v| v.first().copied())
        .map(SampleFormat::from_u16_exhaustive)
        .unwrap_or(SampleFormat::Uint);
    match sample_format {
        SampleFormat::Uint => {}
        SampleFormat::Int => {
            return Err(Error::unsupported(
                "signed samples are refused: JPEG 2000 could keep them, but archival profiles \
                 and viewers expect unsigned data; convert with an explicit offset first",
            ))
        }
        SampleFormat::IEEEFP => {
            return Err(Error::unsupported(
                "floating-point samples are refused: JPEG 2000 codes integers; scale them to \
                 8 or 16 bits by a rule you choose first",
            ))
        }
        _ => return Err(Error::unsupported("unknown TIFF sample format")),
    }
    let planar = d
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(tiff_err)?
        .and_then(PlanarConfiguration::from_u16)
        == Some(PlanarConfiguration::Planar);
    let extra_tag: Vec<u16> = d
        .find_tag_unsigned_vec::<u16>(Tag::ExtraSamples)
        .map_err(tiff_err)?
        .unwrap_or_default();
    let extra_of = |v: Option<&u16>| match v {
        Some(1) => Extra::Premultiplied,
        Some(2) => Extra::Alpha,
        Some(_) => Extra::Unspecified,
        None => Extra::None,
    };
    let (samples, bits, colour, extra, kind, comps, prec) = match color {
        ColorType::Gray(b) => (1, b, Colour::Gray, Extra::None, Kind::Direct, 1, b),
        ColorType::GrayA(b) => (2, b, Colour::Gray, Extra::Alpha, Kind::Direct, 2, b),
        ColorType::Multiband {
            bit_depth,
            num_samples: 2,
        } if matches!(
            photometric,
            Some(PhotometricInterpretation::BlackIsZero | PhotometricInterpretation::WhiteIsZero)
        ) =>
        {
            let e = extra_of(extra_tag.first());
            (2, bit_depth, Colour::Gray, e, Kind::Direct, 2, bit_depth)
        }
        ColorType::RGB(b) => (3, b, Colour::Rgb, Extra::None, Kind::Direct, 3, b),
        ColorType::RGBA(b) => {
            let e = match extra_of(extra_tag.first()) {
                Extra::None => Extra::Alpha,
                e => e,
            };
            (4, b, Colour::Rgb, e, Kind::Direct, 4, b)
        }
        // JPEG-compressed YCbCr comes out of the JPEG decoder as RGB.
        ColorType::YCbCr(8) if compression == 7 => {
            (3, 8, Colour::Rgb, Extra::None, Kind::Direct, 3, 8)
        }
        ColorType::YCbCr(_) => {
            return Err(Error::unsupported(
                "uncompressed or non-JPEG YCbCr TIFFs are not supported (subsampled chroma)",
            ))
        }
        ColorType::Palette(b) => {
            let map = d.get_tag_u16_vec(Tag::ColorMap).map_err(tiff_err)?;
            let entries = 1usize << b;
            if map.len() != 3 * entries {
                return Err(Error::corrupt(format!(
                    "TIFF: colour map has {} entries, {} expected",
                    map.len(),
                    3 * entries
                )));
            }
            let exact8 = map.iter().all(|v| v % 257 == 0);
            let prec = if exact8 { 8 } else { 16 };
            let shift = if exact8 { 8 } else { 0 };
            (
                1,
                b,
                Colour::Rgb,
                Extra::None,
                Kind::Palette { map, shift },
                3,
                prec,
            )
        }
        ColorType::CMYK(_) | ColorType::CMYKA(_) => {
            return Err(Error::unsupported(
                "CMYK is refused: JP2 has no CMYK colour space; convert to RGB with an \
                 ICC-aware tool first",
            ))
        }
        other => {
            return Err(Error::unsupported(format!(
                "TIFF colour type {other:?} is not supported"
            )))
        }
    };
    if !(1..=16).contains(&bits) || (bits > 8 && bits != 16 && !(9..16).contains(&bits)) {
        return Err(Error::unsupported(format!(
            "{bits}-bit samples are not supported"
        )));
    }
    if matches!(kind, Kind::Direct) && bits < 8 && samples != 1 {
        return Err(Error::unsupported(format!(
            "{bits}-bit samples with {samples} samples per pixel are not supported"
        )));
    }
    let (layout, chunk) = match d.get_chunk_type() {
        ChunkType::Strip => ("strips", (width, d.chunk_dimensions().1.clamp(1, height))),
        ChunkType::Tile => ("tiles", d.chunk_dimensions()),
    };
    if chunk.0 == 0 || chunk.1 == 0 {
        return Err(Error::corrupt("TIFF: zero strip or tile size"));
    }
    let sample_bytes = u64::from(bits.div_ceil(8));
    let chunk_bytes = u64::from(chunk.0) * u64::from(chunk.1) * u64::from(samples) * sample_bytes;
    let direct = compression == 1 && strips;
    let read_rows = if direct {
        let spp = u64::from(if planar { 1 } else { samples });
        let row = (u64::from(width) * spp * u64::from(bits))
            .div_ceil(8)
            .max(1);
        (DIRECT_READ_BYTES / row).clamp(1, u64::from(chunk.1)) as u32
    } else {
        chunk.1
    };
    let icc = d
        .find_tag(Tag::IccProfile)
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok());
    let xmp = d
        .find_tag(Tag::Unknown(700))
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok());
    let resolution = read_resolution(d);
    Ok(PageInfo {
        index,
        width,
        height,
        comps,
        prec,
        colour,
        extra,
        icc,
        xmp,
        resolution,
        layout,
        chunk,
        chunk_bytes,
        direct,
        read_rows,
        samples,
        bits,
        planar,
        kind,
    })
}

fn read_resolution(d: &mut Decoder<Reader>) -> Option<Resolution> {
    let unit = d
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    let rational = |d: &mut Decoder<Reader>, tag| -> Option<(u32, u32)> {
        match d.find_tag(tag).ok()?? {
            tiff::decoder::ifd::Value::Rational(n, den) if n > 0 && den > 0 => Some((n, den)),
            tiff::decoder::ifd::Value::List(v) => match v.first() {
                Some(tiff::decoder::ifd::Value::Rational(n, den)) if *n > 0 && *den > 0 => {
                    Some((*n, *den))
                }
                _ => None,
            },
            _ => None,
        }
    };
    let x = rational(d, Tag::XResolution)?;
    let y = rational(d, Tag::YResolution)?;
    let to_ppm = |(n, den): (u32, u32)| -> (u32, u32, i8) {
        // Per inch: n/den / 0.0254 m = n / (den * 254) * 10^4, exact when it fits.
        // Per centimetre: n/den * 10^2.
        let (num, den, exp) = match unit {
            3 => (u64::from(n), u64::from(den), 2i8),
            _ => (u64::from(n), u64::from(den) * 254, 4i8),
        };
        let g = gcd(num, den);
        let (mut num, mut den, mut exp) = (num / g, den / g, exp);
        // The resc box holds 16-bit fractions: shrink both by powers of ten, then by
        // halving, until they fit; the error stays below 1e-4 relative.
        while num > 0xFFFF || den > 0xFFFF {
            if den > 0xFFFF && den % 10 == 0 {
                den /= 10;
                exp -= 1;
            } else if num > 0xFFFF && num % 10 == 0 {
                num /= 10;
                exp += 1;
            } else {
                num = num.div_ceil(2);
                den = den.div_ceil(2);
            }
        }
        (num.max(1) as u32, den.max(1) as u32, exp)
    };
    match unit {
        2 | 3 => Some(Resolution {
            x: to_ppm(x),
            y: to_ppm(y),
        }),
        _ => None,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// Copy the part of one decoded chunk at image position `(cx0, cy0)` (data size `dw` x
/// `dh`) that falls in the band into its planes.
fn place(
    info: &PageInfo,
    data: &DecodingResult,
    (cx0, cy0, dw, dh): (u32, u32, u32, u32),
    plane: u16,
    band: &mut Band,
) -> Result<(), Error> {
    let r0 = cy0.max(band.y0);
    let r1 = (cy0 + dh).min(band.y0 + band.rows);
    if r0 >= r1 {
        return Ok(());
    }
    let dw = dw.min(info.width - cx0) as usize;
    let spp = if info.planar {
        1
    } else {
        usize::from(info.samples)
    };
    let width = info.width as usize;
    let short = || Error::corrupt("TIFF: a strip or tile decoded to fewer samples than its size");
    // read_chunk returns the chunk's data size, padding removed.
    let stride_px = dw;
    for y in r0..r1 {
        let src_row = (y - cy0) as usize;
        let dst_row = (y - band.y0) as usize;
        match (&info.kind, data) {
            (Kind::Direct, DecodingResult::U8(v)) if info.bits == 8 => {
                let row = v
                    .get(src_row * stride_px * spp..(src_row * stride_px + dw) * spp)
                    .ok_or_else(short)?;
                for s in 0..spp {
                    let c = if info.planar { usize::from(plane) } else { s };
                    let dst = &mut band.planes[c][dst_row * width + cx0 as usize..][..dw];
                    for (d, px) in dst.iter_mut().zip(row.chunks_exact(spp)) {
                        *d = px[s];
                    }
                }
            }
            (Kind::Direct, DecodingResult::U16(v)) => {
                let row = v
                    .get(src_row * stride_px * spp..(src_row * stride_px + dw) * spp)
                    .ok_or_else(short)?;
                for s in 0..spp {
                    let c = if info.planar { usize::from(plane) } else { s };
                    let dst = &mut band.planes[c][(dst_row * width + cx0 as usize) * 2..][..dw * 2];
                    for (d, px) in dst.chunks_exact_mut(2).zip(row.chunks_exact(spp)) {
                        d.copy_from_slice(&px[s].to_ne_bytes());
                    }
                }
            }
            (Kind::Direct, DecodingResult::U8(v)) => {
                // 1, 2 or 4 bits, one sample per pixel, rows padded to whole bytes.
                let bits = usize::from(info.bits);
                let row_bytes = (stride_px * bits).div_ceil(8);
                let row = v
                    .get(src_row * row_bytes..(src_row + 1) * row_bytes)
                    .ok_or_else(short)?;
                let dst = &mut band.planes[0][dst_row * width + cx0 as usize..][..dw];
                unpack(row, bits, dst, |i| i as u8);
            }
            (Kind::Palette { map, shift }, DecodingResult::U8(v)) => {
                let bits = usize::from(info.bits);
                let row_bytes = (stride_px * bits).div_ceil(8);
                let row = v
                    .get(src_row * row_bytes..(src_row + 1) * row_bytes)
                    .ok_or_else(short)?;
                let n = 1usize << bits;
                let mut idx = vec![0u8; dw];
                unpack(row, bits, &mut idx, |i| i as u8);
                for c in 0..3 {
                    let table = &map[c * n..(c + 1) * n];
                    let start = dst_row * width + cx0 as usize;
                    if *shift == 8 {
                        let dst = &mut band.planes[c][start..][..dw];
                        for (d, &i) in dst.iter_mut().zip(&idx) {
                            *d = (table[usize::from(i)] >> 8) as u8;
                        }
                    } else {
                        let dst = &mut band.planes[c][start * 2..][..dw * 2];
                        for (d, &i) in dst.chunks_exact_mut(2).zip(&idx) {
                            d.copy_from_slice(&table[usize::from(i)].to_ne_bytes());
                        }
                    }
                }
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "TIFF: {}-bit samples decoded to an unexpected type",
                        info.bits
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Unpack `dst.len()` samples of `bits` bits (1, 2, 4 or 8), most significant first.
/// Raw uncompressed rows as the decoder would give them: bytes as they are up to 8 bits
/// (1, 2 and 4 bits stay packed, as `place` expects), 16-bit values from the file's byte
/// order, and 9 to 15 bits unpacked MSB-first (each row starts on a byte boundary) to
/// 16-bit values.
fn raw_samples(
    bytes: Vec<u8>,
    bits: u8,
    big_endian: bool,
    per_row: usize,
    rows: usize,
) -> DecodingResult {
    match bits {
        0..=8 => DecodingResult::U8(bytes),
        16 => DecodingResult::U16(
            bytes
                .chunks_exact(2)
                .map(|b| {
                    if big_endian {
                        u16::from_be_bytes([b[0], b[1]])
                    } else {
                        u16::from_le_bytes([b[0], b[1]])
                    }
                })
                .collect(),
        ),
        _ => {
            let b = usize::from(bits);
            let row_bytes = (per_row * b).div_ceil(8);
            let mut out = Vec::with_capacity(per_row * rows);
            for row in bytes.chunks_exact(row_bytes).take(rows) {
                let (mut acc, mut have, mut bytes) = (0u32, 0usize, row.iter());
                for _ in 0..per_row {
                    while have < b {
                        acc = (acc << 8) | u32::from(*bytes.next().unwrap_or(&0));
                        have += 8;
                    }
                    have -= b;
                    out.push(((acc >> have) & ((1 << b) - 1)) as u16);
                }
            }
            DecodingResult::U16(out)
        }
    }
}

fn unpack(row: &[u8], bits: usize, dst: &mut [u8], f: impl Fn(u32) -> u8) {
    let per = 8 / bits;
    let mask = (1u32 << bits) - 1;
    for (i, d) in dst.iter_mut().enumerate() {
        let byte = u32::from(row[i / per]);
        let shift = 8 - bits * (i % per + 1);
        *d = f((byte >> shift) & mask);
    }
}
