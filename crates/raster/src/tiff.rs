//! Reading a TIFF page band by band: only the strips or tiles that overlap the rows asked
//! for are decoded, and their samples land in planar per-component buffers (one byte per
//! sample up to 8 bits, two native-endian bytes up to 16), the layout OpenJPEG takes.
//!
//! Sample rules (documented in the man page): gray, gray+alpha, RGB and RGBA are kept as
//! they are, 1 to 16 bits with any samples per pixel (one bit unpacker, [`unpack`], reads
//! every depth; FillOrder=2 is undone on the stored bytes first); palette images are
//! expanded to RGB (8 bits when every colour-map entry is an exact 8-bit value, else 16);
//! WhiteIsZero is inverted so that 0 is black, as JP2's greyscale says; JPEG-compressed
//! YCbCr is decoded to RGB. Uncompressed data is read from the file directly; compressed
//! data goes through the tiff crate, which decodes 8 and 16 bits and 1 to 7 bits of gray.
//! Signed 8- and 16-bit samples are kept as stored (two's complement in the planar
//! buffers, [`PageInfo::signed`] set) for callers that open with [`Samples::KeepSigned`]
//! (strip-convert writes them as signed JP2 components); other callers get them refused,
//! as they read samples as unsigned. CMYK that embeds its ICC profile is converted to
//! sRGB through it by lcms2 ([`CmykToSrgb`]; see `read_info` for why not JPX); CMYK
//! without one, float and other signed samples are refused: converting them would change
//! the archived values by a rule the archive did not choose.

#[path = "tiff_codecs.rs"]
mod codecs;

use crate::{Band, Geometry, RowSource};
/// PDF's CCITTFaxDecode, through the TIFF fax decoders (cbz-stream's `from-pdf`).
pub use codecs::decode_ccitt;
use codecs::{Codec, Shape};
use membudget::cost::Summary;
use membudget::probe::{Format, ImageSummary, Layout, SampleFormat as ProbeSampleFormat};
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

/// Which sample formats a caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples {
    /// Unsigned integers only: signed samples are refused (tools that read every sample
    /// as unsigned).
    Unsigned,
    /// Signed 8- and 16-bit integers too, kept as stored (two's complement).
    KeepSigned,
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
    /// 8-bit Y, Cb, Cr from the JPEG decoder, converted to RGB ([`ycbcr_to_rgb`]).
    YCbCr,
    /// C, M, Y, K (then maybe alpha), converted to sRGB through the page's own ICC
    /// profile by lcms2.
    Cmyk(CmykToSrgb),
}

/// An lcms2 transform from the page's embedded CMYK profile to sRGB (perceptual intent,
/// no cache, so one transform serves every thread), 8 or 16 bits in and out.
#[derive(Clone)]
pub struct CmykToSrgb(std::sync::Arc<CmykTransform>);

enum CmykTransform {
    Eight(lcms2::Transform<[u8; 4], [u8; 3], lcms2::GlobalContext, lcms2::DisallowCache>),
    Sixteen(lcms2::Transform<[u16; 4], [u16; 3], lcms2::GlobalContext, lcms2::DisallowCache>),
}

impl CmykToSrgb {
    /// The transform for `bits` (8 or 16) from the CMYK profile `icc`; `Err` says why not.
    pub fn new(icc: &[u8], bits: u8) -> Result<CmykToSrgb, String> {
        use lcms2::{ColorSpaceSignature, Flags, Intent, PixelFormat, Profile, Transform};
        let input = Profile::new_icc(icc).map_err(|e| format!("its ICC profile: {e}"))?;
        if input.color_space() != ColorSpaceSignature::CmykData {
            return Err("its ICC profile is not a CMYK profile".into());
        }
        let srgb = Profile::new_srgb();
        let fail = |e: lcms2::Error| format!("lcms2 cannot use its ICC profile: {e}");
        let (i, o) = (Intent::Perceptual, Flags::NO_CACHE);
        let ctx = lcms2::GlobalContext::new;
        Ok(CmykToSrgb(std::sync::Arc::new(match bits {
            8 => CmykTransform::Eight(
                Transform::new_flags_context(
                    ctx(),
                    &input,
                    PixelFormat::CMYK_8,
                    &srgb,
                    PixelFormat::RGB_8,
                    i,
                    o,
                )
                .map_err(fail)?,
            ),
            16 => CmykTransform::Sixteen(
                Transform::new_flags_context(
                    ctx(),
                    &input,
                    PixelFormat::CMYK_16,
                    &srgb,
                    PixelFormat::RGB_16,
                    i,
                    o,
                )
                .map_err(fail)?,
            ),
            b => return Err(format!("{b}-bit CMYK (8 and 16 bits are converted)")),
        })))
    }

    /// Pixels of `spp` samples (C, M, Y, K first; at most 16 bits each) to sRGB, three
    /// samples a pixel into `rgb`.
    pub fn convert<T: Copy + Into<u32>>(&self, px: &[T], spp: usize, rgb: &mut Vec<u16>) {
        let n = px.len() / spp.max(4);
        rgb.clear();
        match &*self.0 {
            CmykTransform::Eight(t) => {
                let src: Vec<[u8; 4]> = px
                    .chunks_exact(spp.max(4))
                    .map(|p| std::array::from_fn(|i| p[i].into() as u8))
                    .collect();
                let mut dst = vec![[0u8; 3]; n];
                t.transform_pixels(&src, &mut dst);
                rgb.extend(dst.iter().flatten().map(|&v| u16::from(v)));
            }
            CmykTransform::Sixteen(t) => {
                let src: Vec<[u16; 4]> = px
                    .chunks_exact(spp.max(4))
                    .map(|p| std::array::from_fn(|i| p[i].into() as u16))
                    .collect();
                let mut dst = vec![[0u16; 3]; n];
                t.transform_pixels(&src, &mut dst);
                rgb.extend(dst.iter().flatten());
            }
        }
    }
}

impl std::fmt::Debug for CmykToSrgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CmykToSrgb")
    }
}

impl PartialEq for CmykToSrgb {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
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
    /// Samples are signed (two's complement, 8 or 16 bits; only with
    /// [`Samples::KeepSigned`]).
    pub signed: bool,
    /// Colour interpretation.
    pub colour: Colour,
    /// Meaning of the component after the colour ones.
    pub extra: Extra,
    /// The ICC profile (tag 34675), if any (`None` when it converted CMYK to sRGB).
    pub icc: Option<Vec<u8>>,
    /// How the samples were converted, in words, when they were (CMYK to sRGB).
    pub conversion: Option<&'static str>,
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
    /// Uncompressed strips or tiles: read straight from the file, a few rows at a time, not
    /// through the tiff crate's decoder (which holds whole strips, so one giant strip would
    /// be the whole image, and refuses palette, RGB below 8 bits and 9 to 15 bits).
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
    /// FillOrder=2: bits within each stored byte are least significant first.
    fill_lsb: bool,
    /// The TIFF compression code.
    compression: u16,
    /// Compressed data decoded by this crate's own codecs ([`codecs`]) rather than the
    /// tiff crate's decoder (which keeps JPEG only).
    codec: Option<Codec>,
    /// Predictor 2 (horizontal differencing) to undo after decompression.
    predictor: bool,
}

impl PageInfo {
    /// The cost models' view of this page, as membudget's probe describes the file (so
    /// that chunk-plan's plan and a tool's agree: the model knows uncompressed strips are
    /// read a few rows at a time).
    pub fn summary(&self) -> Summary {
        Summary {
            format: Format::Tiff,
            bytes: 0,
            image: Some(ImageSummary {
                width: u64::from(self.width),
                height: u64::from(self.height),
                bands: u32::from(self.comps),
                bits: u32::from(self.prec),
                sample_format: if self.signed {
                    ProbeSampleFormat::Int
                } else {
                    ProbeSampleFormat::Uint
                },
                pages: 1,
                layout: if self.layout == "tiles" {
                    Layout::Tiles
                } else {
                    Layout::Strips
                },
                block: [u64::from(self.chunk.0), u64::from(self.chunk.1)],
                compressed: !self.direct,
            }),
            points: None,
            archive: None,
            document: None,
        }
    }

    /// The band geometry [`TiffPage::read_band`] fills.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            width: self.width,
            height: self.height,
            comps: usize::from(self.comps),
            sample_bytes: self.sample_bytes(),
        }
    }

    /// Bytes per output sample in planar buffers (1 or 2).
    pub fn sample_bytes(&self) -> usize {
        if self.prec <= 8 {
            1
        } else {
            2
        }
    }
    /// The TIFF compression code of the page.
    pub fn compression_code(&self) -> u16 {
        self.compression
    }

    /// Bytes of one output row, all components.
    pub fn row_bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.comps) * self.sample_bytes() as u64
    }
}

/// The TIFF decoder over the file as [`StoredBytes`] presents it.
type TiffDecoder = Decoder<BufReader<StoredBytes>>;

/// A decoder of the file at `path`, on the page whose IFD is at `ifd` (the first page
/// when `None`).
fn open_decoder(path: &Path, ifd: Option<u64>) -> Result<TiffDecoder, Error> {
    let f = StoredBytes::open(path, ifd)?;
    Ok(guarded(|| Decoder::new(BufReader::new(f)))?
        .map_err(tiff_err)?
        .with_limits(limits()))
}

/// Run a call into the tiff crate, turning a panic there (an arithmetic overflow on
/// hostile header values, an `expect`) into a corrupt-file error for this input.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    membudget::probe::catch_panics(f)
        .map_err(|()| Error::corrupt("TIFF: the decoder failed on inconsistent header values"))
}

/// The TIFF file as the decoder reads it (which is for JPEG data only: FillOrder=2 is
/// undone for the other codecs where this crate reads their chunks, [`Direct::stored`]).
/// The header's first-IFD pointer may read as the offset of one chosen page, so a decoder
/// starts on that page without walking the chain from the first IFD (which made a file of
/// N pages cost N^2 directory reads).
#[derive(Debug)]
pub struct StoredBytes {
    file: File,
    pos: u64,
    /// Where the first-IFD pointer is (4 in TIFF, 8 in BigTIFF) and the bytes it reads
    /// as (empty: as stored).
    at: u64,
    pointer: Vec<u8>,
}

impl StoredBytes {
    fn open(path: &Path, ifd: Option<u64>) -> Result<StoredBytes, Error> {
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
        Ok(StoredBytes {
            file,
            pos: 0,
            at,
            pointer,
        })
    }
}

impl Read for StoredBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let (start, end) = (self.pos, self.pos.saturating_add(n as u64));
        let ptr_end = self.at + self.pointer.len() as u64;
        if start < ptr_end && end > self.at {
            for p in start.max(self.at)..end.min(ptr_end) {
                buf[(p - start) as usize] = self.pointer[(p - self.at) as usize];
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Seek for StoredBytes {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
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
    decoder: TiffDecoder,
    /// The page.
    pub info: PageInfo,
    /// Decoded chunks that may still be needed by the next band.
    cache: BTreeMap<u32, DecodingResult>,
    /// The strip table, when `info.direct` or `info.codec` reads the file by offset.
    direct: Option<Direct>,
    /// The direct reads' buffer, kept between bands: a fresh one each band was mapped
    /// and zeroed page by page.
    read_buf: Vec<u8>,
}

/// Where the uncompressed strips or tiles are: rows are read from the file by offset.
struct Direct {
    file: File,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    /// 16-bit samples are stored little-endian (`II` files).
    little_endian: bool,
    /// WhiteIsZero: inverted here, as the decoder does on its path.
    white_is_zero: bool,
}

impl Direct {
    /// The stored bytes of chunk `idx`, FillOrder undone when `reverse`.
    fn stored(&self, idx: u32, reverse: bool, buf: &mut Vec<u8>) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        let (offset, count) = usize::try_from(idx)
            .ok()
            .and_then(|i| Some((*self.offsets.get(i)?, *self.counts.get(i)?)))
            .ok_or_else(|| Error::corrupt(format!("TIFF: no offset for chunk {idx}")))?;
        if count > CHUNK_LIMIT {
            return Err(Error::hostile(format!(
                "TIFF: chunk {idx} claims {count} stored bytes"
            )));
        }
        // A count past the end of the file is cut there before anything is allocated.
        let count = count.min(self.file.metadata()?.len().saturating_sub(offset));
        buf.clear();
        buf.resize(count as usize, 0);
        // A chunk running past the end of the file is cut there, as libtiff does.
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(got);
        if reverse {
            reverse_bits(buf);
        }
        Ok(())
    }
}

/// The most bytes one strip or tile may take, stored or decoded (as the tiff crate's
/// default limit): the plan must hold one.
const CHUNK_LIMIT: u64 = 256 << 20;

impl std::fmt::Debug for TiffPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffPage")
            .field("info", &self.info)
            .finish()
    }
}

/// The IFD offset of every page, in chain order: one walk (the decoder refuses cycles),
/// at most [`MAX_PAGES`] pages. [`TiffPage::open_at`] opens any of them directly.
pub fn page_offsets(path: &Path) -> Result<Vec<u64>, Error> {
    let mut d = open_decoder(path, None)?;
    let first = d
        .ifd_pointer()
        .ok_or_else(|| Error::corrupt("TIFF: no first IFD"))?;
    let mut pages = vec![first.0];
    while d.more_images() {
        if pages.len() >= MAX_PAGES {
            return Err(Error::hostile(format!("TIFF: more than {MAX_PAGES} pages")));
        }
        match guarded(|| d.next_image())? {
            Ok(()) => {}
            // A chain that loops back: the pages before the loop are the file's pages, as
            // libtiff, tifffile and vips read them.
            Err(tiff::TiffError::FormatError(tiff::TiffFormatError::CycleInOffsets)) => break,
            Err(e) => return Err(tiff_err(e)),
        }
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
    /// reading the IFDs before it (unsigned samples only).
    pub fn open_at(path: &Path, index: usize, ifd: u64) -> Result<TiffPage, Error> {
        Self::open_at_with(path, index, ifd, Samples::Unsigned)
    }

    /// [`TiffPage::open_at`], taking the sample formats `samples` allows.
    pub fn open_at_with(
        path: &Path,
        index: usize,
        ifd: u64,
        samples: Samples,
    ) -> Result<TiffPage, Error> {
        let mut d = open_decoder(path, (index > 0).then_some(ifd))?;
        let info = guarded(|| read_info(&mut d, index, samples))??;
        let file_len = std::fs::metadata(path)?.len();
        let (offsets, counts) = chunk_table(&mut d, &info, file_len)?;
        let direct = if info.direct || info.codec.is_some() {
            let mut file = File::open(path)?;
            let mut order = [0u8; 2];
            std::io::Read::read_exact(&mut file, &mut order)?;
            Some(Direct {
                file,
                offsets,
                counts,
                little_endian: &order == b"II",
                white_is_zero: d
                    .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
                    .map_err(tiff_err)?
                    == Some(0),
            })
        } else {
            // Only JPEG reaches the tiff crate's decoder, and FillOrder=2 leaves JPEG data
            // as stored (libtiff and tifffile reverse only the other codecs' bytes).
            None
        };
        Ok(TiffPage {
            decoder: d,
            info,
            cache: BTreeMap::new(),
            direct,
            read_buf: Vec::new(),
        })
    }

    /// The direct path of [`TiffPage::read_band`]: the band's rows of each strip or tile,
    /// read [`PageInfo::read_rows`] rows at a time, unpacked and placed.
    fn read_band_direct(
        &self,
        direct: &Direct,
        band: &mut Band,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        let info = &self.info;
        let (y0, rows) = (band.y0, band.rows);
        let (cw, ch) = info.chunk;
        let across = info.width.div_ceil(cw);
        let per_plane = u64::from(across) * u64::from(info.height.div_ceil(ch));
        let planes = if info.planar { info.samples } else { 1 };
        let spp = u64::from(if info.planar { 1 } else { info.samples });
        // At most 2^32 * 2^16 * 16 bits: no overflow in u64.
        let row_bytes = (u64::from(cw) * spp * u64::from(info.bits)).div_ceil(8);
        let step = info.read_rows.max(1);

        let mut vals = Vec::new();
        for crow in y0 / ch..=(y0 + rows - 1) / ch {
            let cy0 = crow * ch;
            let r0 = y0.max(cy0);
            let r1 = (y0 + rows).min(cy0.saturating_add(ch)).min(info.height);
            for cx in 0..across {
                let x0 = cx * cw;
                let dw = cw.min(info.width - x0);
                for plane in 0..planes {
                    let idx = u64::from(plane) * per_plane
                        + u64::from(crow) * u64::from(across)
                        + u64::from(cx);
                    let (offset, count) = usize::try_from(idx)
                        .ok()
                        .and_then(|i| Some((*direct.offsets.get(i)?, *direct.counts.get(i)?)))
                        .ok_or_else(|| {
                            Error::corrupt(format!("TIFF: no offset for chunk {idx}"))
                        })?;
                    if u64::from(r1 - cy0) * row_bytes > count {
                        return Err(Error::corrupt(format!(
                            "TIFF: {} {idx} holds {count} bytes, fewer than its rows need",
                            if info.layout == "tiles" {
                                "tile"
                            } else {
                                "strip"
                            }
                        )));
                    }
                    let mut r = r0;
                    while r < r1 {
                        let n = step.min(r1 - r);
                        // offset + count was checked not to overflow; this is within it.
                        let at = offset + u64::from(r - cy0) * row_bytes;
                        // read_exact_at fills it all: no clearing (a memset a read).
                        buf.resize((u64::from(n) * row_bytes) as usize, 0);
                        direct.file.read_exact_at(buf, at).map_err(|e| {
                            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                Error::corrupt(format!(
                                    "TIFF: chunk {idx} runs past the end of the file"
                                ))
                            } else {
                                Error::from(e)
                            }
                        })?;
                        if info.fill_lsb {
                            reverse_bits(buf);
                        }
                        let at = ((r - y0) as usize, x0, plane);
                        place_stored(
                            info,
                            direct,
                            buf,
                            row_bytes as usize,
                            dw,
                            at,
                            band,
                            &mut vals,
                        )?;
                        r += n;
                    }
                }
            }
        }
        Ok(())
    }

    /// The codec path of [`TiffPage::read_band`]: each chunk the band needs is read from the
    /// file, decoded by [`codecs`] (and kept while the next band needs it), and its rows
    /// placed as the direct path places stored rows.
    fn read_band_codec(&mut self, codec: Codec, band: &mut Band) -> Result<(), Error> {
        let Some(direct) = &self.direct else {
            return Err(Error::corrupt("TIFF: no strip table"));
        };
        let info = &self.info;
        let (y0, rows) = (band.y0, band.rows);
        let (cw, ch) = info.chunk;
        let across = info.width.div_ceil(cw);
        let per_plane = across * info.height.div_ceil(ch);
        let planes = if info.planar { info.samples } else { 1 };
        let spp = usize::from(if info.planar { 1 } else { info.samples });
        let row_bytes = (cw as usize * spp * usize::from(info.bits)).div_ceil(8);
        let tiles = info.layout == "tiles";
        let (mut stored, mut buf, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        for crow in y0 / ch..=(y0 + rows - 1) / ch {
            let cy0 = crow * ch;
            // A strip's rows stop at the image's end; a tile is always whole.
            let chunk_rows = if tiles { ch } else { ch.min(info.height - cy0) };
            let r0 = y0.max(cy0);
            let r1 = (y0 + rows).min(cy0 + chunk_rows);
            for cx in 0..across {
                let x0 = cx * cw;
                let dw = cw.min(info.width - x0);
                for plane in 0..planes {
                    let idx = u32::from(plane) * per_plane + crow * across + cx;
                    let entry = match self.cache.entry(idx) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let mut out = Vec::new();
                            decode_chunk(
                                info,
                                direct,
                                codec,
                                idx,
                                chunk_rows,
                                &mut stored,
                                &mut out,
                            )?;
                            e.insert(DecodingResult::U8(out))
                        }
                    };
                    let DecodingResult::U8(data) = &*entry else {
                        return Err(Error::corrupt("TIFF: chunk cache"));
                    };
                    let (a, b) = (
                        (r0 - cy0) as usize * row_bytes,
                        (r1 - cy0) as usize * row_bytes,
                    );
                    let Some(part) = data.get(a..b) else {
                        return Err(Error::corrupt(format!(
                            "TIFF: {} {idx} decodes to {} bytes, fewer than its {chunk_rows} rows need",
                            if tiles { "tile" } else { "strip" },
                            data.len()
                        )));
                    };
                    buf.clear();
                    buf.extend_from_slice(part);
                    let at = ((r0 - y0) as usize, x0, plane);
                    place_stored(info, direct, &mut buf, row_bytes, dw, at, band, &mut vals)?;
                    if cy0 + chunk_rows <= y0 + rows {
                        self.cache.remove(&idx);
                    }
                }
            }
        }
        let end = y0 + rows;
        self.cache.retain(|idx, _| {
            let crow = (idx % per_plane) / across;
            (crow + 1) * ch > end
        });
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
        if let Some(codec) = info.codec {
            return self.read_band_codec(codec, band);
        }
        if let Some(direct) = &self.direct {
            let mut buf = std::mem::take(&mut self.read_buf);
            let r = self.read_band_direct(direct, band, &mut buf);
            self.read_buf = buf;
            return r;
        }
        let (cw, ch) = info.chunk;
        let across = info.width.div_ceil(cw);
        // The chunk table was checked to hold this many entries, so they fit in u32.
        let per_plane = across * info.height.div_ceil(ch);
        let planes = if info.planar { info.samples } else { 1 };
        let (first_row, last_row) = (y0 / ch, (y0 + rows - 1) / ch);
        let mut vals = Vec::new();
        for crow in first_row..=last_row {
            for cx in 0..across {
                for plane in 0..planes {
                    let idx = u32::from(plane) * per_plane + crow * across + cx;
                    if !self.cache.contains_key(&idx) {
                        let data = guarded(|| self.decoder.read_chunk(idx))?.map_err(tiff_err)?;
                        self.cache.insert(idx, data);
                    }
                    let (dw, dh) = guarded(|| self.decoder.chunk_data_dimensions(idx))?;
                    let data = &self.cache[&idx];
                    place(
                        &self.info,
                        data,
                        (cx * cw, crow * ch, dw, dh),
                        plane,
                        band,
                        &mut vals,
                    )?;
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

/// Chunk `idx` (`rows` rows) read and decoded into `out`, predictor undone.
fn decode_chunk(
    info: &PageInfo,
    direct: &Direct,
    codec: Codec,
    idx: u32,
    rows: u32,
    stored: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let spp = usize::from(if info.planar { 1 } else { info.samples });
    let shape = Shape {
        width: info.chunk.0,
        rows,
        row_bytes: (info.chunk.0 as usize * spp * usize::from(info.bits)).div_ceil(8),
        spp,
        bits: info.bits,
    };
    if (shape.rows as u64).saturating_mul(shape.row_bytes as u64) > CHUNK_LIMIT {
        return Err(Error::hostile(format!(
            "TIFF: a strip or tile of {} rows of {} bytes",
            shape.rows, shape.row_bytes
        )));
    }
    direct.stored(idx, info.fill_lsb && codec.reverses_stored_bytes(), stored)?;
    guarded(|| codecs::decode(codec, stored, shape, out))??;
    if info.predictor {
        // Horizontal differencing: each sample is stored as the difference from the one
        // `spp` samples before it in the row (8 or 16 bits, checked at open).
        let step = spp * usize::from(info.bits / 8);
        for row in out.chunks_mut(shape.row_bytes) {
            if info.bits == 8 {
                for i in step..row.len() {
                    row[i] = row[i].wrapping_add(row[i - step]);
                }
            } else {
                let get = |r: &[u8], i: usize| {
                    let b = [r[i], r[i + 1]];
                    if direct.little_endian {
                        u16::from_le_bytes(b)
                    } else {
                        u16::from_be_bytes(b)
                    }
                };
                let mut i = step;
                while i + 1 < row.len() {
                    let v = get(row, i).wrapping_add(get(row, i - step));
                    let b = if direct.little_endian {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    row[i..i + 2].copy_from_slice(&b);
                    i += 2;
                }
            }
        }
    }
    Ok(())
}

/// Rows of stored samples (as in the file or as decompressed; FillOrder undone), `row_bytes`
/// each, of a chunk at column `x0` whose `dw` pixels fall in the image, placed from band
/// row `dst`: WhiteIsZero inverted, unpacked, copied or looked up.
#[allow(clippy::too_many_arguments)]
fn place_stored(
    info: &PageInfo,
    direct: &Direct,
    buf: &mut [u8],
    row_bytes: usize,
    dw: u32,
    (dst, x0, plane): (usize, u32, u16),
    band: &mut Band,
    vals: &mut Vec<u16>,
) -> Result<(), Error> {
    let packing = Packing {
        bits: info.bits,
        little_endian: direct.little_endian,
    };
    if direct.white_is_zero && info.bits <= 8 {
        // Every sample field inverted: max - v is the bitwise complement, packed or not.
        buf.iter_mut().for_each(|b| *b = !*b);
    }
    let spp = usize::from(if info.planar { 1 } else { info.samples });
    let samples = dw as usize * spp;
    for (k, row) in buf.chunks_exact(row_bytes).enumerate() {
        let dst_row = dst + k;
        if info.bits == 8 {
            scatter(info, &row[..samples], dst_row, x0, plane, band);
            continue;
        }
        vals.resize(samples, 0u16);
        unpack(row, packing, vals)?;
        if direct.white_is_zero && info.bits > 8 {
            let max = ((1u32 << info.bits) - 1) as u16;
            vals.iter_mut().for_each(|v| *v = max.saturating_sub(*v));
        }
        scatter(info, vals, dst_row, x0, plane, band);
    }
    Ok(())
}

impl RowSource for TiffPage {
    fn geometry(&self) -> Geometry {
        self.info.geometry()
    }

    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        TiffPage::read_band(self, y0, rows, band)
    }
}

/// The page's strip or tile offsets and byte counts, checked before anything is read:
/// one entry per chunk, no chunk starting inside the header, no offset + count overflow.
fn chunk_table(
    d: &mut TiffDecoder,
    info: &PageInfo,
    file_len: u64,
) -> Result<(Vec<u64>, Vec<u64>), Error> {
    let tiles = info.layout == "tiles";
    let (otag, ctag, what) = if tiles {
        (Tag::TileOffsets, Tag::TileByteCounts, "tile")
    } else {
        (Tag::StripOffsets, Tag::StripByteCounts, "strip")
    };
    let mut table = |tag| {
        d.get_tag(tag)
            .and_then(|v| v.into_u64_vec())
            .map_err(tiff_err)
    };
    let offsets = table(otag)?;
    let counts = table(ctag)?;
    let (cw, ch) = info.chunk;
    let planes = if info.planar { info.samples } else { 1 };
    let chunks = u64::from(info.width.div_ceil(cw))
        * u64::from(info.height.div_ceil(ch))
        * u64::from(planes);
    if offsets.len() as u64 != chunks || counts.len() as u64 != chunks {
        return Err(Error::corrupt(format!(
            "TIFF: {} {what} offsets and {} byte counts for {chunks} {what}s",
            offsets.len(),
            counts.len()
        )));
    }
    if chunks > u64::from(u32::MAX) {
        return Err(Error::hostile(format!("TIFF: {chunks} {what}s")));
    }
    // The smallest header (classic TIFF) is 8 bytes; data inside it is damage.
    for (i, (&o, &c)) in offsets.iter().zip(&counts).enumerate() {
        if o < 8 {
            return Err(Error::corrupt(format!(
                "TIFF: {what} {i} starts at byte {o}, inside the file header"
            )));
        }
        if o.checked_add(c).is_none() || o > file_len {
            return Err(Error::corrupt(format!(
                "TIFF: {what} {i} starts at byte {o}, past the end of the file ({file_len} bytes)"
            )));
        }
    }
    Ok((offsets, counts))
}

fn read_info(d: &mut TiffDecoder, index: usize, accept: Samples) -> Result<PageInfo, Error> {
    let (width, height) = d.dimensions().map_err(tiff_err)?;
    if width == 0 || height == 0 {
        return Err(Error::corrupt("TIFF: zero width or height"));
    }
    let sample_format = d
        .find_tag_unsigned_vec::<u16>(Tag::SampleFormat)
        .map_err(tiff_err)?
        .and_then(|v| v.first().copied())
        .map(SampleFormat::from_u16_exhaustive)
        .unwrap_or(SampleFormat::Uint);
    let signed = sample_format == SampleFormat::Int;
    match sample_format {
        SampleFormat::Uint => {}
        SampleFormat::Int if accept == Samples::KeepSigned => {}
        SampleFormat::Int => {
            return Err(Error::unsupported(
                "signed integer samples are refused: JP2 could keep them, but archival \
                 profiles and most viewers expect unsigned data; add an explicit offset first \
                 (for example `vips linear in.tif out.tif 1 32768 --uchar` or numpy) and say so \
                 in the archive's metadata",
            ))
        }
        SampleFormat::IEEEFP => {
            return Err(Error::unsupported(
                "floating-point samples are refused: JPEG 2000 codes integers; scale them to \
                 8 or 16 bits by a rule you choose first (for example `vips scale` or numpy)",
            ))
        }
        _ => return Err(Error::unsupported("unknown TIFF sample format")),
    }
    let photometric_code = d
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .map_err(tiff_err)?;
    // CMYK: JP2 (ISO 15444-1 I.5.3.3) labels sRGB, greyscale and sYCC, or carries a
    // restricted ICC profile (input or display class, matrix/TRC, no A2B0 LUT); a CMYK
    // profile is an output (prtr) LUT profile, so neither can say CMYK. JPX's enumerated
    // CMYK (12) and "any ICC" method would keep the four inks, but jpylyzer validates JP2
    // and JPH only and calls such a file invalid, and many JP2 readers ignore it. So CMYK
    // is converted to sRGB (what jpylyzer validates) through lcms2, with the press profile
    // the file itself carries; without one it is refused: a default profile would be a
    // choice the archive did not make, on values it could not get back.
    let mut cmyk = None;
    if photometric_code == Some(5) {
        let refuse = |why: &str| {
            Error::unsupported(format!(
                "CMYK is refused: {why}; JP2 has no CMYK colour space (JPX's would not \
                 validate as JP2), so CMYK is converted to sRGB only through the ICC profile \
                 the file embeds; convert it with an ICC-aware tool and the press profile it \
                 was separated with (for example `vips icc_transform in.tif out.tif srgb \
                 --input-profile press.icc`)"
            ))
        };
        let tag16 = |d: &mut TiffDecoder, t| d.find_tag_unsigned::<u16>(t).map_err(tiff_err);
        let bits = d
            .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
            .map_err(tiff_err)?
            .and_then(|v| v.first().copied())
            .unwrap_or(1);
        let icc = d
            .find_tag(Tag::IccProfile)
            .ok()
            .flatten()
            .and_then(|v| v.into_u8_vec().ok());
        if tag16(d, Tag::Unknown(332))?.is_some_and(|ink| ink != 1) {
            return Err(refuse("its inks are not C, M, Y, K (InkSet is not 1)"));
        }
        if matches!(tag16(d, Tag::Compression)?, Some(6 | 7)) {
            return Err(refuse("JPEG-compressed CMYK is not converted"));
        }
        if tag16(d, Tag::PlanarConfiguration)? == Some(2) {
            return Err(refuse("planar CMYK is not converted"));
        }
        if signed {
            return Err(refuse("signed CMYK samples are not converted"));
        }
        let Some(icc) = icc else {
            return Err(refuse("the file embeds no ICC profile"));
        };
        cmyk = Some(CmykToSrgb::new(&icc, bits.min(255) as u8).map_err(|e| refuse(&e))?);
    }
    // Colour spaces JP2 cannot label, refused before anything else with what to do.
    match photometric_code {
        Some(8..=10) => {
            return Err(Error::unsupported(
                "CIELab is refused: JP2 labels only sRGB, greyscale and sYCC (CIELab needs \
                 JPX); convert to RGB first (for example `vips colourspace in.tif out.tif srgb`)",
            ))
        }
        Some(32844 | 32845) => {
            return Err(Error::unsupported(
                "SGI LogL/LogLuv (high dynamic range) is refused: its samples are \
                 floating-point luminance; tone-map to 8 or 16 bits first",
            ))
        }
        _ => {}
    }
    if let Some(bits) = d
        .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
        .map_err(tiff_err)?
        .and_then(|v| v.first().copied())
    {
        if bits > 16 {
            return Err(Error::unsupported(format!(
                "{bits}-bit integer samples are refused: this tool writes 1 to 16 bits per \
                 sample; scale to 16 bits by a rule you choose first"
            )));
        }
    }
    let photometric = photometric_code.and_then(PhotometricInterpretation::from_u16);
    let compression = d
        .find_tag_unsigned::<u16>(Tag::Compression)
        .map_err(tiff_err)?
        .unwrap_or(1);
    let fill_lsb = d
        .find_tag_unsigned::<u16>(Tag::FillOrder)
        .map_err(tiff_err)?
        == Some(2);
    let jpeg = matches!(compression, 6 | 7);
    let t4options = d
        .find_tag_unsigned::<u32>(Tag::Unknown(292))
        .map_err(tiff_err)?
        .unwrap_or(0);
    // Every compression but JPEG is decoded by this crate's codecs (the tiff crate's
    // decoder keeps JPEG, with its tables and colour handling).
    let codec = match compression {
        1 => None,
        6 | 7 => None,
        c => Some(Codec::from_code(c, t4options).ok_or_else(|| {
            Error::unsupported(format!(
                "TIFF compression {c} ({}) is not supported: decompress the file first (for \
                 example `tiffcp -c none in.tif out.tif`)",
                compression_name(c)
            ))
        })?),
    };
    if let Some(Codec::Fax3 { .. }) = codec {
        if t4options & 2 != 0 {
            return Err(Error::unsupported(
                "CCITT Group 3 with uncompressed mode (T4Options bit 1) is not supported",
            ));
        }
    }
    let predictor = d
        .find_tag_unsigned::<u16>(Tag::Predictor)
        .map_err(tiff_err)?
        .unwrap_or(1);
    // Palette images are read by this crate (the tiff crate's decoder refuses them).
    let color = if photometric == Some(PhotometricInterpretation::RGBPalette) {
        let bits = d
            .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
            .map_err(tiff_err)?
            .and_then(|v| v.first().copied())
            .unwrap_or(1);
        if !(1..=16).contains(&bits) {
            return Err(Error::unsupported(format!(
                "{bits}-bit palette images are not supported (1 to 16)"
            )));
        }
        ColorType::Palette(bits as u8)
    } else {
        d.colortype().map_err(tiff_err)?
    };
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
        // JPEG-compressed YCbCr: the tiff crate's JPEG decoder returns the Y, Cb, Cr
        // samples (chroma upsampled); they are converted to RGB here.
        ColorType::YCbCr(8) if compression == 7 && !planar => {
            (3, 8, Colour::Rgb, Extra::None, Kind::YCbCr, 3, 8)
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
            // Samples after the index (an alpha, say) are read past and left out: the
            // colour map gives the colour, and JP2's palette has no place for them.
            let spp = d
                .find_tag_unsigned::<u16>(Tag::SamplesPerPixel)
                .map_err(tiff_err)?
                .unwrap_or(1)
                .max(1);
            if planar && spp > 1 {
                return Err(Error::unsupported(
                    "planar palette images with extra samples are not supported",
                ));
            }
            (
                spp,
                b,
                Colour::Rgb,
                Extra::None,
                Kind::Palette { map, shift },
                3,
                prec,
            )
        }
        ColorType::CMYK(b) if cmyk.is_some() => {
            let k = Kind::Cmyk(cmyk.take().expect("checked"));
            (4, b, Colour::Rgb, Extra::None, k, 3, b)
        }
        ColorType::CMYKA(b) if cmyk.is_some() => {
            let k = Kind::Cmyk(cmyk.take().expect("checked"));
            let e = match extra_of(extra_tag.first()) {
                Extra::None => Extra::Alpha,
                e => e,
            };
            (5, b, Colour::Rgb, e, k, 4, b)
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
    if signed {
        // Two's complement bytes or words go to the encoder as stored; other depths
        // would need sign extension, and the mappings below (palette lookup, WhiteIsZero
        // inversion, YCbCr conversion) have no signed meaning.
        if bits != 8 && bits != 16 {
            return Err(Error::unsupported(format!(
                "{bits}-bit signed integer samples are refused (signed 8 and 16 bits are \
                 kept); add an explicit offset first"
            )));
        }
        if kind != Kind::Direct
            || jpeg
            || photometric == Some(PhotometricInterpretation::WhiteIsZero)
        {
            return Err(Error::unsupported(
                "signed samples are kept only for BlackIsZero gray and RGB, not JPEG-compressed \
                 (palette, WhiteIsZero and YCbCr have no signed meaning); add an explicit \
                 offset first",
            ));
        }
    }
    let direct = compression == 1;
    if jpeg && bits != 8 {
        return Err(Error::unsupported(format!(
            "JPEG-compressed {bits}-bit samples (8 bits are read)"
        )));
    }
    let predictor = match (predictor, codec) {
        (1, _) | (_, None) => false,
        (2, Some(_)) if bits == 8 || bits == 16 => true,
        (2, Some(_)) => {
            return Err(Error::unsupported(format!(
                "horizontal differencing (Predictor 2) with {bits}-bit samples (libtiff reads \
                 it with 8, 16, 32 and 64 bits only)"
            )))
        }
        (p, Some(_)) => {
            return Err(Error::unsupported(format!(
                "TIFF Predictor {p} on integer samples is not supported"
            )))
        }
    };
    let (layout, chunk) = match d.get_chunk_type() {
        ChunkType::Strip => ("strips", (width, d.chunk_dimensions().1.clamp(1, height))),
        ChunkType::Tile => ("tiles", d.chunk_dimensions()),
    };
    if chunk.0 == 0 || chunk.1 == 0 {
        return Err(Error::corrupt("TIFF: zero strip or tile size"));
    }
    let sample_bytes = u64::from(bits.div_ceil(8));
    let chunk_bytes = u64::from(chunk.0) * u64::from(chunk.1) * u64::from(samples) * sample_bytes;
    let read_rows = if direct {
        let spp = u64::from(if planar { 1 } else { samples });
        let row = (u64::from(chunk.0) * spp * u64::from(bits))
            .div_ceil(8)
            .max(1);
        (DIRECT_READ_BYTES / row).clamp(1, u64::from(chunk.1)) as u32
    } else {
        chunk.1
    };
    // A CMYK page's profile was used for the conversion; the output is sRGB.
    let converted = matches!(kind, Kind::Cmyk(_));
    let icc = d
        .find_tag(Tag::IccProfile)
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok())
        .filter(|_| !converted);
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
        signed,
        colour,
        extra,
        icc,
        conversion: converted.then_some(
            "CMYK converted to sRGB through the ICC profile the TIFF embeds (lcms2, perceptual \
             intent)",
        ),
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
        fill_lsb,
        compression,
        codec,
        predictor,
    })
}

/// A name for a TIFF compression code, for messages.
fn compression_name(c: u16) -> &'static str {
    match c {
        32809 => "ThunderScan",
        32908..=32911 => "Pixar",
        34661 => "JBIG",
        34676 | 34677 => "SGI LogLuv",
        34712 => "JPEG 2000",
        34887..=34889 => "ESRI LERC",
        34892 => "lossy JPEG (DNG)",
        50000 => "Zstandard",
        50002 => "JPEG XL",
        _ => "unknown",
    }
}

fn read_resolution(d: &mut TiffDecoder) -> Option<Resolution> {
    let unit = d
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    let rational = |d: &mut TiffDecoder, tag| -> Option<(u32, u32)> {
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
    vals: &mut Vec<u16>,
) -> Result<(), Error> {
    let r0 = cy0.max(band.y0);
    let r1 = cy0.saturating_add(dh).min(band.y0 + band.rows);
    if r0 >= r1 {
        return Ok(());
    }
    let dw = dw.min(info.width - cx0) as usize;
    let spp = if info.planar {
        1
    } else {
        usize::from(info.samples)
    };
    // read_chunk returns the chunk's data size, padding removed: rows of `dw` pixels,
    // packed rows padded to whole bytes below 8 bits.
    let n = dw * spp;
    let row_len = if info.bits < 8 {
        (n * usize::from(info.bits)).div_ceil(8)
    } else {
        n
    };
    let packing = Packing {
        bits: info.bits,
        little_endian: cfg!(target_endian = "little"),
    };
    for y in r0..r1 {
        let src_row = (y - cy0) as usize;
        let dst_row = (y - band.y0) as usize;
        match data {
            DecodingResult::U8(v) if info.kind == Kind::YCbCr => {
                vals.resize(n, 0);
                ycbcr_to_rgb(row_of(v, src_row, row_len)?, vals);
                scatter(info, vals, dst_row, cx0, plane, band);
            }
            DecodingResult::U8(v) if info.bits == 8 => {
                scatter(
                    info,
                    row_of(v, src_row, row_len)?,
                    dst_row,
                    cx0,
                    plane,
                    band,
                );
            }
            DecodingResult::U16(v) if info.bits > 8 => {
                scatter(
                    info,
                    row_of(v, src_row, row_len)?,
                    dst_row,
                    cx0,
                    plane,
                    band,
                );
            }
            DecodingResult::U8(v) if info.bits < 8 => {
                vals.resize(n, 0);
                unpack(row_of(v, src_row, row_len)?, packing, vals)?;
                scatter(info, vals, dst_row, cx0, plane, band);
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

/// Row `row` of `len` items of a decoded chunk, or a corrupt-file error if it is short.
fn row_of<T>(v: &[T], row: usize, len: usize) -> Result<&[T], Error> {
    row.checked_mul(len)
        .and_then(|start| v.get(start..start.checked_add(len)?))
        .ok_or_else(|| {
            Error::corrupt("TIFF: a strip or tile decoded to fewer samples than its size")
        })
}

/// Put one row of pixels (`spp` samples each, interleaved, or one plane's samples) at
/// column `x0` of band row `dst_row`: copied for direct samples, looked up in the colour
/// map for palette indices. Values fit the output precision by construction (at most
/// `bits` bits each).
fn scatter<T: Copy + Into<u32>>(
    info: &PageInfo,
    vals: &[T],
    dst_row: usize,
    x0: u32,
    plane: u16,
    band: &mut Band,
) {
    let width = info.width as usize;
    let start = dst_row * width + x0 as usize;
    let spp = if info.planar {
        1
    } else {
        usize::from(info.samples)
    };
    let two = band.sample_bytes == 2;
    let put = |dst: &mut Vec<u8>, i: usize, v: u32| {
        if two {
            if let Some(d) = dst.get_mut(2 * i..2 * i + 2) {
                d.copy_from_slice(&(v as u16).to_ne_bytes());
            }
        } else if let Some(d) = dst.get_mut(i) {
            *d = v as u8;
        }
    };
    match &info.kind {
        Kind::Direct | Kind::YCbCr if !two && spp == 3 && band.planes.len() == 3 => {
            // Chunky 8-bit RGB, the common case: the three planes in one pass.
            let n = vals.len() / 3;
            let [r, g, b] = &mut band.planes[..] else {
                return;
            };
            if let (Some(r), Some(g), Some(b)) = (
                r.get_mut(start..start + n),
                g.get_mut(start..start + n),
                b.get_mut(start..start + n),
            ) {
                for (((r, g), b), px) in r.iter_mut().zip(g).zip(b).zip(vals.chunks_exact(3)) {
                    *r = px[0].into() as u8;
                    *g = px[1].into() as u8;
                    *b = px[2].into() as u8;
                }
            }
        }
        Kind::Direct | Kind::YCbCr => {
            for s in 0..spp {
                let c = if info.planar { usize::from(plane) } else { s };
                let Some(dst) = band.planes.get_mut(c) else {
                    continue;
                };
                if !two {
                    // The common 8-bit case, kept a plain copy loop.
                    if let Some(d) = dst.get_mut(start..start + vals.len() / spp) {
                        for (d, px) in d.iter_mut().zip(vals.chunks_exact(spp)) {
                            *d = px[s].into() as u8;
                        }
                    }
                    continue;
                }
                for (i, px) in vals.chunks_exact(spp).enumerate() {
                    put(dst, start + i, px[s].into());
                }
            }
        }
        Kind::Cmyk(t) => {
            let mut rgb = Vec::new();
            t.convert(vals, spp, &mut rgb);
            for (c, dst) in band.planes.iter_mut().enumerate().take(3) {
                for (i, px) in rgb.chunks_exact(3).enumerate() {
                    put(dst, start + i, u32::from(px[c]));
                }
            }
            // An alpha after the inks is kept as stored.
            if let Some(dst) = band.planes.get_mut(3) {
                for (i, px) in vals.chunks_exact(spp).enumerate() {
                    if let Some(&a) = px.get(4) {
                        put(dst, start + i, a.into());
                    }
                }
            }
        }
        Kind::Palette { map, shift } => {
            let n = 1usize << info.bits;
            for (c, dst) in band.planes.iter_mut().enumerate().take(3) {
                let table = map.get(c * n..(c + 1) * n).unwrap_or(&[]);
                for (i, px) in vals.chunks_exact(spp).enumerate() {
                    let e = table.get(px[0].into() as usize).copied().unwrap_or(0);
                    put(dst, start + i, u32::from(e >> shift));
                }
            }
        }
    }
}

/// YCbCr to RGB as libjpeg does it for libtiff's JPEGCOLORMODE_RGB (jdcolor.c: ITU-R
/// BT.601 full range, 16-bit fixed point, the same rounding), pixel by pixel.
fn ycbcr_to_rgb(ycc: &[u8], rgb: &mut [u16]) {
    const SCALE: i32 = 16;
    const HALF: i32 = 1 << (SCALE - 1);
    const fn fix(x: f64) -> i32 {
        (x * (1 << SCALE) as f64 + 0.5) as i32
    }
    let clamp = |v: i32| v.clamp(0, 255) as u16;
    for (px, out) in ycc.chunks_exact(3).zip(rgb.chunks_exact_mut(3)) {
        let y = i32::from(px[0]);
        let (cb, cr) = (i32::from(px[1]) - 128, i32::from(px[2]) - 128);
        out[0] = clamp(y + ((fix(1.40200) * cr + HALF) >> SCALE));
        out[1] = clamp(y + ((-fix(0.34414) * cb - fix(0.71414) * cr + HALF) >> SCALE));
        out[2] = clamp(y + ((fix(1.77200) * cb + HALF) >> SCALE));
    }
}

/// How stored sample bits become values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packing {
    /// Bits per sample, 1 to 16.
    pub bits: u8,
    /// 16-bit samples are little-endian; every other depth is a most-significant-first
    /// bit stream, whatever the file's byte order (as libtiff and tifffile read them).
    pub little_endian: bool,
}

/// FillOrder=2 made MSB-first: the bits of every byte reversed. Applied to the stored
/// bytes before anything else (decompression or unpacking), as libtiff does.
pub(crate) fn reverse_bits(buf: &mut [u8]) {
    buf.iter_mut().for_each(|b| *b = b.reverse_bits());
}

/// The one bit unpacker: `out.len()` samples of `p.bits` bits (1 to 16) from the start of
/// `row`, most significant bit first within bytes, samples crossing byte boundaries as
/// they come (TIFF pads rows, not samples). Any length or depth gives an error, never a
/// panic.
pub(crate) fn unpack(row: &[u8], p: Packing, out: &mut [u16]) -> Result<(), Error> {
    let bits = u32::from(p.bits);
    if !(1..=16).contains(&bits) {
        return Err(Error::unsupported(format!(
            "{bits}-bit samples (1 to 16 are read)"
        )));
    }
    let need = (out.len() as u64)
        .checked_mul(u64::from(bits))
        .map(|b| b.div_ceil(8));
    if need.is_none_or(|n| n > row.len() as u64) {
        return Err(Error::corrupt(format!(
            "TIFF: a row of {} bytes is too short for {} samples of {bits} bits",
            row.len(),
            out.len()
        )));
    }
    match (bits, p.little_endian) {
        (8, _) => {
            for (o, &b) in out.iter_mut().zip(row) {
                *o = u16::from(b);
            }
        }
        (16, true) => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = u16::from_le_bytes([b[0], b[1]]);
            }
        }
        _ => {
            let mask = (1u32 << bits) - 1;
            // `acc` holds the `have` bits not yet used (fewer than 8 between samples).
            let (mut acc, mut have) = (0u32, 0u32);
            let mut bytes = row.iter();
            for o in out.iter_mut() {
                while have < bits {
                    let Some(&b) = bytes.next() else {
                        return Err(Error::corrupt("TIFF: row too short"));
                    };
                    acc = (acc << 8) | u32::from(b);
                    have += 8;
                }
                have -= bits;
                *o = ((acc >> have) & mask) as u16;
                acc &= (1 << have) - 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample `i` of `bits` bits read one bit at a time: the definition the unpacker must
    /// agree with (MSB first, big-endian 16-bit).
    fn naive(row: &[u8], bits: usize, i: usize) -> u16 {
        (0..bits).fold(0u16, |v, k| {
            let bit = i * bits + k;
            (v << 1) | u16::from(row[bit / 8] >> (7 - bit % 8) & 1)
        })
    }

    /// The test suites' one seeded generator, as a closure.
    fn seeded(seed: u64) -> impl FnMut() -> u64 {
        let mut rng = testkit::rng::Rng::new(seed);
        move || rng.next_u64()
    }

    #[test]
    fn unpack_known_values() {
        let be = |bits| Packing {
            bits,
            little_endian: false,
        };
        let mut out = [0u16; 8];
        // 3 bits: 0..7 packed in three bytes (000 001 01|0 011 100 1|01 110 111).
        #[allow(clippy::unusual_byte_groupings)]
        unpack(
            &[0b000_001_01, 0b0_011_100_1, 0b01_110_111],
            be(3),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7]);
        let mut out = [0u16; 2];
        unpack(&[0xAB, 0xCD, 0xEF], be(12), &mut out).unwrap();
        assert_eq!(out, [0xABC, 0xDEF]);
        unpack(&[0x12, 0x34, 0x56, 0x78], be(16), &mut out).unwrap();
        assert_eq!(out, [0x1234, 0x5678]);
        let le = Packing {
            bits: 16,
            little_endian: true,
        };
        unpack(&[0x12, 0x34, 0x56, 0x78], le, &mut out).unwrap();
        assert_eq!(out, [0x3412, 0x7856]);
        let mut b = [0b1000_0000u8, 0b0000_0011];
        reverse_bits(&mut b);
        assert_eq!(b, [1, 0b1100_0000]);
    }

    /// Random depths, lengths and bytes: never a panic; an error exactly when the depth is
    /// out of range or the row too short; otherwise the bit-by-bit definition.
    #[test]
    fn unpack_never_panics_and_agrees_with_the_definition() {
        let mut rng = seeded(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let bits = (rng() % 20) as u8;
            let n = (rng() % 70) as usize;
            let len = (rng() % 150) as usize;
            let row: Vec<u8> = (0..len).map(|_| rng() as u8).collect();
            let little_endian = rng().is_multiple_of(2);
            let mut out = vec![0u16; n];
            let r = unpack(
                &row,
                Packing {
                    bits,
                    little_endian,
                },
                &mut out,
            );
            let fits = (1..=16).contains(&bits) && (n * usize::from(bits)).div_ceil(8) <= len;
            assert_eq!(r.is_ok(), fits, "bits {bits}, {n} samples, {len} bytes");
            if fits {
                for (i, &v) in out.iter().enumerate() {
                    let want = if bits == 16 && little_endian {
                        u16::from_le_bytes([row[2 * i], row[2 * i + 1]])
                    } else {
                        naive(&row, usize::from(bits), i)
                    };
                    assert_eq!(v, want, "bits {bits} sample {i}");
                }
            }
        }
    }

    /// A little-endian TIFF: `tags` as (tag, type, values), values stored after the IFD
    /// when they do not fit in the entry; then `data`.
    fn tiff(tags: &[(u16, u16, Vec<u32>)], data: &[u8]) -> Vec<u8> {
        let ifd_len = 2 + 12 * tags.len() + 4;
        let mut extra: Vec<u8> = Vec::new();
        let mut ifd = (tags.len() as u16).to_le_bytes().to_vec();
        let base = 8 + ifd_len;
        for (tag, ty, vals) in tags {
            let size = if *ty == 3 { 2 } else { 4 };
            let mut bytes = Vec::new();
            for v in vals {
                if size == 2 {
                    bytes.extend_from_slice(&(*v as u16).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            ifd.extend_from_slice(&tag.to_le_bytes());
            ifd.extend_from_slice(&ty.to_le_bytes());
            ifd.extend_from_slice(&(vals.len() as u32).to_le_bytes());
            if bytes.len() <= 4 {
                bytes.resize(4, 0);
                ifd.extend_from_slice(&bytes);
            } else {
                ifd.extend_from_slice(&((base + extra.len()) as u32).to_le_bytes());
                extra.extend_from_slice(&bytes);
            }
        }
        ifd.extend_from_slice(&0u32.to_le_bytes());
        let mut f = b"II*\0".to_vec();
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&ifd);
        f.extend_from_slice(&extra);
        f.extend_from_slice(data);
        f
    }

    /// Random header values (sizes, depths, samples, strip tables, fill order) over random
    /// bytes: opening and reading every row gives samples or an error, never a panic.
    #[test]
    fn random_headers_never_panic() {
        let mut rng = seeded(18);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.tif");
        let (mut ok, mut err) = (0, 0);
        for _ in 0..1500 {
            let pick =
                |rng: &mut dyn FnMut() -> u64, v: &[u32]| v[(rng() % v.len() as u64) as usize];
            let w = pick(&mut rng, &[1, 2, 3, 7, 37, 37, 64, 1000, 70_000, u32::MAX]);
            let h = pick(&mut rng, &[1, 2, 5, 9, 9, 40, 40, 100_000, u32::MAX]);
            let bits = pick(&mut rng, &[0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17]);
            let spp = pick(&mut rng, &[1, 1, 2, 3, 3, 4, 5]);
            let rps = pick(&mut rng, &[0, 1, 3, 8, 8, 8, 1000, u32::MAX]);
            let planar = 1 + (rng() % 2) as u32;
            let photometric = pick(&mut rng, &[0, 1, 1, 2, 2, 3]);
            let planes = if planar == 2 { spp } else { 1 };
            let strips = match h.div_ceil(rps.max(1)).saturating_mul(planes) {
                n if n <= 64 && !rng().is_multiple_of(8) => n,
                _ => (rng() % 6) as u32 + 1,
            };
            let data: Vec<u8> = (0..(rng() % 2000)).map(|_| rng() as u8).collect();
            let table = 4 * 2 * strips as usize + 2 * 3 * 256 + 2 * spp as usize * 2 + 8;
            let data_at = (8 + 2 + 12 * 14 + 4 + table) as u32;
            let offsets: Vec<u32> = (0..strips)
                .map(|_| match rng() % 8 {
                    0 => pick(&mut rng, &[0, 4, u32::MAX]),
                    _ => data_at + (rng() % 100) as u32,
                })
                .collect();
            let counts: Vec<u32> = (0..strips)
                .map(|_| pick(&mut rng, &[0, 1, 50, 1900, 1900, u32::MAX]))
                .collect();
            let entries = if rng().is_multiple_of(8) {
                5
            } else {
                1 << bits.min(8)
            };
            let map: Vec<u32> = (0..3 * entries).map(|_| rng() as u16 as u32).collect();
            let mut tags = vec![
                (256, 4, vec![w]),
                (257, 4, vec![h]),
                (258, 3, vec![bits; spp as usize]),
                (259, 3, vec![1]),
                (262, 3, vec![photometric]),
                (266, 3, vec![1 + (rng() % 2) as u32]),
                (273, 4, offsets),
                (277, 3, vec![spp]),
                (278, 4, vec![rps]),
                (279, 4, counts),
                (284, 3, vec![planar]),
                (320, 3, map),
                (
                    338,
                    3,
                    vec![(rng() % 3) as u32; spp.saturating_sub(3).max(1) as usize],
                ),
                (339, 3, vec![1]),
            ];
            tags.sort_by_key(|t| t.0);
            std::fs::write(&path, tiff(&tags, &data)).unwrap();
            let mut page = match TiffPage::open(&path, 0) {
                Ok(p) => p,
                Err(_) => {
                    err += 1;
                    continue;
                }
            };
            let info = page.info.clone();
            // The plan would refuse bands this large; the test keeps to small ones.
            if info.row_bytes() > 1 << 20 {
                continue;
            }
            let mut band = Band::default();
            let mut y = 0;
            let mut failed = false;
            while y < info.height.min(200) {
                let rows = 7.min(info.height - y);
                if page.read_band(y, rows, &mut band).is_err() {
                    failed = true;
                    break;
                }
                y += rows;
            }
            if failed {
                err += 1;
            } else {
                ok += 1;
            }
        }
        // Both outcomes happen: the test reaches the reading code, not only the checks.
        assert!(ok > 20 && err > 20, "{ok} read, {err} refused");
    }
}
