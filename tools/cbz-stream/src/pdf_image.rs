//! One PDF image XObject out of the file without rendering: DCT (JPEG) and JPX (JPEG 2000)
//! streams as they are, the bytes `pdfimages -all` writes; Flate, CCITT fax and JBIG2
//! images decoded losslessly to PNG with the samples the PDF holds (the pixels
//! `pdfimages -png` writes, 16-bit kept as 16-bit, an ICC profile kept as the PNG's).
//!
//! Whatever would change how the page looks if copied this way is refused, and the page
//! is rendered instead: soft masks and colour-key masks, stencil masks (their colour comes
//! from the page), /Decode arrays other than the default and the inversion, colour spaces
//! other than gray, RGB and palettes of those (CMYK, Lab, Separation...), and data that
//! does not decode. Flate data is inflated one row at a time into the PNG encoder; fax and
//! JBIG2 bitmaps are held whole (one bit a pixel), within `max_bytes`.

use pdf::object::Resolve;
use pdf::primitive::{Dictionary, PdfStream, Primitive};
use std::borrow::Cow;
use std::io::Read;

/// Largest ICC profile, palette lookup or JBIG2 globals stream read (real ones are a few
/// KiB to a few hundred).
const MAX_SIDE_STREAM: u64 = 8 << 20;

/// An image ready for the archive.
#[derive(Debug)]
pub struct Extracted<'f> {
    /// The file's bytes: borrowed from the PDF when they are its stream as it is.
    pub bytes: Cow<'f, [u8]>,
    /// Its extension: `jpg`, `jp2` or `png`.
    pub ext: &'static str,
    /// Width and height in pixels, from the image dictionary.
    pub size: [u64; 2],
}

/// Why an image is rendered instead of copied.
pub type Refusal = String;

/// The image in stream `s` as a file, or why it must be rendered. `max_bytes` bounds
/// what decoding holds in memory. `file` is the whole PDF when its streams are stored as
/// they are (not encrypted): a stream copied as it is is then borrowed from it, not
/// copied (three times, by the `pdf` crate's `raw_data` and here).
pub fn extract<'f>(
    r: &impl Resolve,
    s: &PdfStream,
    max_bytes: u64,
    file: Option<&'f [u8]>,
) -> Result<Extracted<'f>, Refusal> {
    let d = &s.info;
    let filters = filters(r, d);
    let width = int(r, d.get("Width")).filter(|&w| w > 0);
    let height = int(r, d.get("Height")).filter(|&h| h > 0);
    let (Some(width), Some(height)) = (width, height) else {
        return Err("image without a valid /Width and /Height".into());
    };
    let size = [width as u64, height as u64];
    for key in ["SMask", "Mask"] {
        if d.get(key).is_some() {
            return Err(format!("image with a /{key}"));
        }
    }
    if matches!(get(r, d, "ImageMask"), Some(Primitive::Boolean(true))) {
        return Err("stencil mask (its colour comes from the page)".into());
    }
    let raw = || {
        s.raw_data(r)
            .map_err(|e| format!("image stream does not read: {e}"))
    };
    let filter = match filters.as_slice() {
        [f] => f.as_str(),
        [] => return Err("uncompressed image".into()),
        _ => return Err(format!("filter chain {filters:?}")),
    };
    match filter {
        "DCTDecode" | "DCT" | "JPXDecode" => {
            // Copied as they are, so nothing may change the samples on the way.
            if d.get("Decode").is_some() {
                return Err("JPEG with a /Decode array".into());
            }
            let ext = if filter == "JPXDecode" { "jp2" } else { "jpg" };
            let bytes = match file {
                Some(file) => Cow::Borrowed(in_file(r, s, file)?),
                None => Cow::Owned(raw()?.to_vec()),
            };
            return Ok(Extracted { bytes, ext, size });
        }
        "FlateDecode" | "Fl" | "CCITTFaxDecode" | "CCF" | "JBIG2Decode" => {}
        other => return Err(format!("{other} image")),
    }
    let colour = colour(r, get(r, d, "ColorSpace").as_ref(), 0)?;
    let bits = match filter {
        "FlateDecode" | "Fl" => {
            int(r, d.get("BitsPerComponent")).ok_or("image without /BitsPerComponent")? as u32
        }
        _ => 1,
    };
    let layout = Layout::new(width as u32, height as u32, bits, &colour)?;
    let invert = decode_inverts(r, d, &colour, bits)?;
    let params = decode_params(r, d);
    let data = raw()?;
    let mut png = PngOut::new(&layout, &colour, invert)?;
    match filter {
        "FlateDecode" | "Fl" => flate(&data, &params, r, &layout, max_bytes, &mut png)?,
        "CCITTFaxDecode" | "CCF" => {
            let rows = ccitt(&data, &params, r, &layout, max_bytes)?;
            png.write_rows(&rows)?;
        }
        _ => {
            let rows = jbig2(&data, &params, r, &layout, max_bytes)?;
            png.write_rows(&rows)?;
        }
    }
    Ok(Extracted {
        bytes: Cow::Owned(png.finish()?),
        ext: "png",
        size,
    })
}

/// The bytes of stream `s` in `file`, the PDF the resolver reads: the range
/// `PdfStream::raw_data` would copy out of it.
fn in_file<'f>(r: &impl Resolve, s: &PdfStream, file: &'f [u8]) -> Result<&'f [u8], Refusal> {
    let spy = RangeSpy {
        inner: r,
        range: std::cell::Cell::new(None),
    };
    // Streams read from the file come back through `stream_data` with their range;
    // one built in memory (none here: nothing is edited) would not.
    let _ = s.raw_data(&spy);
    spy.range
        .take()
        .and_then(|range| file.get(range))
        .ok_or_else(|| "image stream is not in the file".to_string())
}

/// A resolver that answers `stream_data` with nothing and keeps the range asked for.
struct RangeSpy<'a, R> {
    inner: &'a R,
    range: std::cell::Cell<Option<std::ops::Range<usize>>>,
}

impl<R: Resolve> Resolve for RangeSpy<'_, R> {
    fn resolve_flags(
        &self,
        r: pdf::object::PlainRef,
        flags: pdf::parser::ParseFlags,
        depth: usize,
    ) -> pdf::error::Result<Primitive> {
        self.inner.resolve_flags(r, flags, depth)
    }
    fn get<T: pdf::object::Object + datasize::DataSize>(
        &self,
        r: pdf::object::Ref<T>,
    ) -> pdf::error::Result<pdf::object::RcRef<T>> {
        self.inner.get(r)
    }
    fn options(&self) -> &pdf::object::ParseOptions {
        self.inner.options()
    }
    fn stream_data(
        &self,
        _id: pdf::object::PlainRef,
        range: std::ops::Range<usize>,
    ) -> pdf::error::Result<std::sync::Arc<[u8]>> {
        self.range.set(Some(range));
        Ok(std::sync::Arc::from(&[][..]))
    }
    fn get_data_or_decode(
        &self,
        id: pdf::object::PlainRef,
        range: std::ops::Range<usize>,
        filters: &[pdf::enc::StreamFilter],
    ) -> pdf::error::Result<std::sync::Arc<[u8]>> {
        self.inner.get_data_or_decode(id, range, filters)
    }
}

fn get(r: &impl Resolve, d: &Dictionary, key: &str) -> Option<Primitive> {
    d.get(key)?.clone().resolve(r).ok()
}

fn int(r: &impl Resolve, p: Option<&Primitive>) -> Option<i64> {
    match p?.clone().resolve(r).ok()? {
        Primitive::Integer(i) => Some(i64::from(i)),
        Primitive::Number(n) if n.fract() == 0.0 => Some(n as i64),
        _ => None,
    }
}

fn number(r: &impl Resolve, p: &Primitive) -> Option<f64> {
    match p.clone().resolve(r).ok()? {
        Primitive::Integer(i) => Some(f64::from(i)),
        Primitive::Number(n) => Some(f64::from(n)),
        _ => None,
    }
}

/// The /Filter names, in order.
fn filters(r: &impl Resolve, d: &Dictionary) -> Vec<String> {
    match get(r, d, "Filter") {
        Some(Primitive::Name(n)) => vec![n.as_str().to_string()],
        Some(Primitive::Array(a)) => a
            .iter()
            .filter_map(|f| f.clone().resolve(r).ok())
            .filter_map(|f| f.as_name().ok().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The /DecodeParms dictionary of the single filter (empty when absent).
fn decode_params(r: &impl Resolve, d: &Dictionary) -> Dictionary {
    let p = get(r, d, "DecodeParms").or_else(|| get(r, d, "DP"));
    match p {
        Some(Primitive::Dictionary(d)) => d,
        Some(Primitive::Array(a)) => match a.first().and_then(|p| p.clone().resolve(r).ok()) {
            Some(Primitive::Dictionary(d)) => d,
            _ => Dictionary::new(),
        },
        _ => Dictionary::new(),
    }
}

/// The bytes of a side stream (ICC profile, palette, JBIG2 globals): unfiltered or
/// Flate, at most [`MAX_SIDE_STREAM`].
fn side_stream(r: &impl Resolve, s: &PdfStream, what: &str) -> Result<Vec<u8>, Refusal> {
    let raw = s
        .raw_data(r)
        .map_err(|e| format!("{what} does not read: {e}"))?;
    match filters(r, &s.info).as_slice() {
        [] => Ok(raw.to_vec()),
        [f] if f == "FlateDecode" || f == "Fl" => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&raw[..])
                .take(MAX_SIDE_STREAM + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("{what}: Flate data: {e}"))?;
            if out.len() as u64 > MAX_SIDE_STREAM {
                return Err(format!("{what} larger than {MAX_SIDE_STREAM} bytes"));
            }
            Ok(out)
        }
        other => Err(format!("{what} with filters {other:?}")),
    }
}

/// What the samples mean.
#[derive(Debug)]
enum Colour {
    Gray {
        icc: Option<Vec<u8>>,
    },
    Rgb {
        icc: Option<Vec<u8>>,
    },
    /// RGB palette (a gray base is expanded to RGB), `hival + 1` entries.
    Indexed {
        palette: Vec<u8>,
        icc: Option<Vec<u8>>,
    },
}

impl Colour {
    fn components(&self) -> u32 {
        match self {
            Colour::Rgb { .. } => 3,
            _ => 1,
        }
    }
}

fn colour(r: &impl Resolve, p: Option<&Primitive>, depth: u32) -> Result<Colour, Refusal> {
    let Some(p) = p else {
        return Err("image without a /ColorSpace".into());
    };
    let p = p
        .clone()
        .resolve(r)
        .map_err(|e| format!("colour space: {e}"))?;
    let (family, arr) = match &p {
        Primitive::Name(n) => (n.as_str().to_string(), Vec::new()),
        Primitive::Array(a) => match a.first().and_then(|f| f.clone().resolve(r).ok()) {
            Some(Primitive::Name(n)) => (n.as_str().to_string(), a.clone()),
            _ => return Err("colour space array without a family name".into()),
        },
        other => return Err(format!("colour space is a {}", other.get_debug_name())),
    };
    match family.as_str() {
        "DeviceGray" | "G" | "CalGray" => Ok(Colour::Gray { icc: None }),
        "DeviceRGB" | "RGB" | "CalRGB" => Ok(Colour::Rgb { icc: None }),
        "ICCBased" => {
            let Some(Primitive::Stream(s)) = arr.get(1).and_then(|s| s.clone().resolve(r).ok())
            else {
                return Err("ICCBased colour space without its stream".into());
            };
            let icc = side_stream(r, &s, "ICC profile")?;
            match int(r, s.info.get("N")) {
                Some(1) => Ok(Colour::Gray { icc: Some(icc) }),
                Some(3) => Ok(Colour::Rgb { icc: Some(icc) }),
                n => Err(format!("ICCBased colour space with N = {n:?}")),
            }
        }
        "Indexed" | "I" if depth == 0 && arr.len() == 4 => {
            let base = colour(r, Some(&arr[1]), depth + 1)?;
            let hival = int(r, Some(&arr[2]))
                .filter(|h| (0..=255).contains(h))
                .ok_or("Indexed colour space with a bad hival")? as usize;
            let n = base.components() as usize;
            let lookup = match arr[3].clone().resolve(r) {
                Ok(Primitive::String(s)) => s.as_bytes().to_vec(),
                Ok(Primitive::Stream(s)) => side_stream(r, &s, "palette")?,
                _ => return Err("Indexed colour space without a lookup table".into()),
            };
            if lookup.len() < (hival + 1) * n {
                return Err("Indexed colour space with a short lookup table".into());
            }
            let entries = &lookup[..(hival + 1) * n];
            match base {
                Colour::Rgb { icc } => Ok(Colour::Indexed {
                    palette: entries.to_vec(),
                    icc,
                }),
                // A gray profile does not fit an RGB palette: dropped, the values kept.
                Colour::Gray { .. } => Ok(Colour::Indexed {
                    palette: entries.iter().flat_map(|&g| [g, g, g]).collect(),
                    icc: None,
                }),
                Colour::Indexed { .. } => Err("Indexed over Indexed".into()),
            }
        }
        other => Err(format!("{other} colour space")),
    }
}

/// Sizes of one image's rows.
struct Layout {
    width: u32,
    height: u32,
    bits: u32,
    /// Samples per pixel.
    spp: u32,
    row_bytes: usize,
}

impl Layout {
    fn new(width: u32, height: u32, bits: u32, colour: &Colour) -> Result<Layout, Refusal> {
        let spp = colour.components();
        let ok = match colour {
            Colour::Gray { .. } => matches!(bits, 1 | 2 | 4 | 8 | 16),
            // PNG's RGB has 8 and 16 bits only.
            Colour::Rgb { .. } => matches!(bits, 8 | 16),
            Colour::Indexed { .. } => matches!(bits, 1 | 2 | 4 | 8),
        };
        if !ok {
            return Err(format!("{bits}-bit samples in a {colour:?} image"));
        }
        let row_bytes = (u64::from(width) * u64::from(spp) * u64::from(bits)).div_ceil(8);
        let row_bytes = usize::try_from(row_bytes).map_err(|_| "image row too large")?;
        Ok(Layout {
            width,
            height,
            bits,
            spp,
            row_bytes,
        })
    }

    fn bytes(&self) -> u64 {
        self.row_bytes as u64 * u64::from(self.height)
    }
}

/// Whether /Decode inverts the samples (`[1 0 ...]`); refused unless that or the default.
fn decode_inverts(
    r: &impl Resolve,
    d: &Dictionary,
    colour: &Colour,
    bits: u32,
) -> Result<bool, Refusal> {
    let Some(p) = get(r, d, "Decode") else {
        return Ok(false);
    };
    let Ok(a) = p.into_array() else {
        return Err("/Decode is not an array".into());
    };
    let v: Vec<f64> = a.iter().filter_map(|x| number(r, x)).collect();
    let n = colour.components() as usize;
    if v.len() != 2 * n {
        return Err(format!("/Decode with {} numbers", v.len()));
    }
    let top = if matches!(colour, Colour::Indexed { .. }) {
        f64::from((1u32 << bits) - 1)
    } else {
        1.0
    };
    if v.chunks(2).all(|c| c == [0.0, top]) {
        Ok(false)
    } else if !matches!(colour, Colour::Indexed { .. }) && v.chunks(2).all(|c| c == [top, 0.0]) {
        Ok(true)
    } else {
        Err(format!("/Decode {v:?}"))
    }
}

/// The PNG file as it is written; shared because the png crate's stream writer keeps
/// its output to the end.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The PNG being written: rows in, file bytes out.
struct PngOut {
    out: Shared,
    writer: png::StreamWriter<'static, Shared>,
    invert: bool,
    row: Vec<u8>,
}

impl PngOut {
    fn new(l: &Layout, colour: &Colour, invert: bool) -> Result<PngOut, Refusal> {
        let perr = |e: png::EncodingError| format!("PNG: {e}");
        let mut info = png::Info::with_size(l.width, l.height);
        info.bit_depth = match l.bits {
            1 => png::BitDepth::One,
            2 => png::BitDepth::Two,
            4 => png::BitDepth::Four,
            8 => png::BitDepth::Eight,
            _ => png::BitDepth::Sixteen,
        };
        let icc = match colour {
            Colour::Gray { icc } => {
                info.color_type = png::ColorType::Grayscale;
                icc
            }
            Colour::Rgb { icc } => {
                info.color_type = png::ColorType::Rgb;
                icc
            }
            Colour::Indexed { palette, icc } => {
                info.color_type = png::ColorType::Indexed;
                // Indices past hival are clamped to it, as PDF readers do: the palette
                // is padded with its last entry.
                let mut p = palette.clone();
                let last = p[p.len() - 3..].to_vec();
                while p.len() < 3 << l.bits {
                    p.extend_from_slice(&last);
                }
                info.palette = Some(Cow::Owned(p));
                icc
            }
        };
        info.icc_profile = icc.clone().map(Cow::Owned);
        let out = Shared::default();
        let mut enc = png::Encoder::with_info(out.clone(), info).map_err(perr)?;
        enc.set_compression(png::Compression::Fast);
        let writer = enc
            .write_header()
            .map_err(perr)?
            .into_stream_writer()
            .map_err(perr)?;
        Ok(PngOut {
            out,
            writer,
            invert,
            row: Vec::new(),
        })
    }

    /// Whole rows of samples, as the PDF filter outputs them.
    fn write_rows(&mut self, rows: &[u8]) -> Result<(), Refusal> {
        use std::io::Write;
        let io = |e: std::io::Error| format!("PNG: {e}");
        if self.invert {
            for chunk in rows.chunks(64 << 10) {
                self.row.clear();
                self.row.extend(chunk.iter().map(|b| !b));
                self.writer.write_all(&self.row).map_err(io)?;
            }
            Ok(())
        } else {
            self.writer.write_all(rows).map_err(io)
        }
    }

    fn finish(self) -> Result<Vec<u8>, Refusal> {
        let perr = |e: png::EncodingError| format!("PNG: {e}");
        self.writer.finish().map_err(perr)?;
        Ok(self.out.0.take())
    }
}

/// Flate data, with a PNG or TIFF predictor undone, one row at a time.
fn flate(
    data: &[u8],
    p: &Dictionary,
    r: &impl Resolve,
    l: &Layout,
    max_bytes: u64,
    png: &mut PngOut,
) -> Result<(), Refusal> {
    let predictor = int(r, p.get("Predictor")).unwrap_or(1);
    if predictor != 1 {
        // The predictor's idea of a row must be the image's.
        let colors = int(r, p.get("Colors")).unwrap_or(1);
        let bpc = int(r, p.get("BitsPerComponent")).unwrap_or(8);
        let columns = int(r, p.get("Columns")).unwrap_or(1);
        if (colors, bpc, columns) != (i64::from(l.spp), i64::from(l.bits), i64::from(l.width)) {
            return Err("predictor parameters that differ from the image's".into());
        }
    }
    let tag = match predictor {
        1 => 0,
        2 if matches!(l.bits, 8 | 16) => 0,
        2 => return Err(format!("TIFF predictor on {}-bit samples", l.bits)),
        10..=15 => 1,
        other => return Err(format!("predictor {other}")),
    };
    if (l.row_bytes as u64 + 1) * 2 > max_bytes {
        return Err("image rows larger than the budget".into());
    }
    // Bytes per pixel, the distance PNG filters look left (at least one).
    let bpp = ((l.spp * l.bits) as usize).div_ceil(8);
    let mut z = flate2::read::ZlibDecoder::new(data);
    let mut cur = vec![0u8; l.row_bytes + tag];
    let mut prev = vec![0u8; l.row_bytes];
    for y in 0..l.height {
        z.read_exact(&mut cur)
            .map_err(|e| format!("Flate data ends or breaks at row {y}: {e}"))?;
        let (filter, row) = cur.split_at_mut(tag);
        if tag == 1 {
            unfilter_png(filter[0], row, &prev, bpp)?;
        } else if predictor == 2 {
            unpredict_tiff(row, l);
        }
        png.write_rows(row)?;
        prev.copy_from_slice(row);
    }
    Ok(())
}

/// Undo one row's PNG filter (`kind` 0 to 4) in place against the row above.
fn unfilter_png(kind: u8, row: &mut [u8], prev: &[u8], bpp: usize) -> Result<(), Refusal> {
    match kind {
        0 => {}
        1 => {
            for i in bpp..row.len() {
                row[i] = row[i].wrapping_add(row[i - bpp]);
            }
        }
        2 => {
            for (b, &u) in row.iter_mut().zip(prev) {
                *b = b.wrapping_add(u);
            }
        }
        3 => {
            for i in 0..row.len() {
                let left = if i >= bpp { u16::from(row[i - bpp]) } else { 0 };
                row[i] = row[i].wrapping_add(((left + u16::from(prev[i])) / 2) as u8);
            }
        }
        4 => {
            for i in 0..row.len() {
                let (a, c) = if i >= bpp {
                    (row[i - bpp], prev[i - bpp])
                } else {
                    (0, 0)
                };
                row[i] = row[i].wrapping_add(paeth(a, prev[i], c));
            }
        }
        other => return Err(format!("PNG predictor row type {other}")),
    }
    Ok(())
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Undo TIFF predictor 2 (horizontal differences per component) on 8 or 16-bit samples.
fn unpredict_tiff(row: &mut [u8], l: &Layout) {
    let n = l.spp as usize;
    if l.bits == 8 {
        for i in n..row.len() {
            row[i] = row[i].wrapping_add(row[i - n]);
        }
    } else {
        for i in (2 * n..row.len().saturating_sub(1)).step_by(2) {
            let v = u16::from_be_bytes([row[i], row[i + 1]])
                .wrapping_add(u16::from_be_bytes([row[i - 2 * n], row[i - 2 * n + 1]]));
            row[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// A bilevel image's whole bitmap must fit.
fn check_bitmap(l: &Layout, max_bytes: u64) -> Result<(), Refusal> {
    if l.bits != 1 || l.spp != 1 {
        return Err(format!(
            "a bilevel filter on {}-bit, {}-sample data",
            l.bits, l.spp
        ));
    }
    if l.bytes() > max_bytes {
        return Err(format!(
            "a {}x{} bitmap larger than the budget",
            l.width, l.height
        ));
    }
    Ok(())
}

/// CCITT fax data through the TIFF reader's fax decoders; the filter's output has black
/// as 0 bits unless /BlackIs1.
fn ccitt(
    data: &[u8],
    p: &Dictionary,
    r: &impl Resolve,
    l: &Layout,
    max_bytes: u64,
) -> Result<Vec<u8>, Refusal> {
    check_bitmap(l, max_bytes)?;
    let flag = |key: &str| {
        matches!(
            p.get(key).and_then(|v| v.clone().resolve(r).ok()),
            Some(Primitive::Boolean(true))
        )
    };
    let k = int(r, p.get("K")).unwrap_or(0);
    let columns = int(r, p.get("Columns")).unwrap_or(1728);
    if columns != i64::from(l.width) {
        return Err(format!(
            "fax /Columns {columns} in an image {} wide",
            l.width
        ));
    }
    let mut rows = raster::tiff::decode_ccitt(data, k, l.width, l.height, flag("EncodedByteAlign"))
        .map_err(|e| e.to_string())?;
    // The decoders write black as 1 bits.
    if !flag("BlackIs1") {
        rows.iter_mut().for_each(|b| *b = !*b);
    }
    Ok(rows)
}

/// JBIG2 through hayro-jbig2, with the /JBIG2Globals segments; the filter's output has
/// black as 0 bits (JBIG2's own bitmaps have it as 1).
fn jbig2(
    data: &[u8],
    p: &Dictionary,
    r: &impl Resolve,
    l: &Layout,
    max_bytes: u64,
) -> Result<Vec<u8>, Refusal> {
    check_bitmap(l, max_bytes)?;
    let globals = match p
        .get("JBIG2Globals")
        .and_then(|g| g.clone().resolve(r).ok())
    {
        Some(Primitive::Stream(s)) => Some(side_stream(r, &s, "JBIG2 globals")?),
        _ => None,
    };
    let img = hayro_jbig2::Image::new_embedded(data, globals.as_deref())
        .map_err(|e| format!("JBIG2 data: {e:?}"))?;
    if (img.width(), img.height()) != (l.width, l.height) {
        return Err(format!(
            "a {}x{} JBIG2 page in a {}x{} image",
            img.width(),
            img.height(),
            l.width,
            l.height
        ));
    }
    let mut sink = Bits {
        out: vec![0xff; l.bytes() as usize],
        row_bytes: l.row_bytes,
        y: 0,
        x: 0,
    };
    img.decode(&mut sink)
        .map_err(|e| format!("JBIG2 data: {e:?}"))?;
    Ok(sink.out)
}

/// Packs hayro-jbig2's pixels into rows, black as 0 (the buffer starts white).
struct Bits {
    out: Vec<u8>,
    row_bytes: usize,
    y: usize,
    x: usize,
}

impl hayro_jbig2::Decoder for Bits {
    fn push_pixel(&mut self, black: bool) {
        if black {
            if let Some(b) = self.out.get_mut(self.y * self.row_bytes + self.x / 8) {
                *b &= !(0x80 >> (self.x % 8));
            }
        }
        self.x += 1;
    }
    fn push_pixel_chunk(&mut self, black: bool, chunk_count: u32) {
        if black {
            let start = self.y * self.row_bytes + self.x / 8;
            let end = (start + chunk_count as usize).min(self.out.len());
            if start < end {
                self.out[start..end].fill(0);
            }
        }
        self.x += 8 * chunk_count as usize;
    }
    fn next_line(&mut self) {
        self.y += 1;
        self.x = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_filters_undo() {
        // Sub, up, average and Paeth rows as a PNG encoder writes them for bpp 1.
        let prev = [10u8, 20, 30, 40];
        let mut sub = [5u8, 1, 1, 1];
        unfilter_png(1, &mut sub, &prev, 1).unwrap();
        assert_eq!(sub, [5, 6, 7, 8]);
        let mut up = [1u8, 1, 1, 1];
        unfilter_png(2, &mut up, &prev, 1).unwrap();
        assert_eq!(up, [11, 21, 31, 41]);
        let mut avg = [0u8, 0, 0, 0];
        unfilter_png(3, &mut avg, &prev, 1).unwrap();
        assert_eq!(avg, [5, 12, 21, 30]);
        assert_eq!(paeth(10, 20, 30), 10);
        assert!(unfilter_png(5, &mut avg, &prev, 1).is_err());
    }
}
