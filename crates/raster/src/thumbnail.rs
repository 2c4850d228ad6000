//! Bounded-memory thumbnails, shrink-on-load: the workspace's one downscaler
//! (`tile-enhance thumbnail` and `cbz-stream cover` both go through it).
//!
//! [`open`] picks the cheapest source still at least the thumbnail's size: a JPEG decoded
//! by libjpeg-turbo at the largest DCT reduction (1/2, 1/4, 1/8) that keeps it
//! ([`crate::jpeg::JpegRows`], read by scanlines), a TIFF's smallest reduced page or SubIFD
//! that keeps it (else the full page, read by bands through [`crate::tiff::TiffPage`]), a
//! JPEG 2000 decoded at the coarsest resolution level that keeps it, a PNG row by row
//! ([`PngRows`]). [`resize`] then reads that source once, top to bottom: with
//! [`Resample::Box`] straight to the output by area averaging; with [`Resample::Lanczos3`]
//! first by an integer box shrink to about twice the output (as libvips's `vips_resize`
//! does), then a Lanczos3 convolution (`fast_image_resize`) of that small image. Memory:
//! one source row, one row of accumulators and the small image (at most 4x4 output
//! pixels per output pixel), whatever the input's size.
//!
//! Samples are 8 bits out (16-bit sources are rounded to 8); the ICC profile, when the
//! source has one, is passed through untouched (no colour conversion).

use crate::jpeg::{self, JpegRows};
use crate::jpeg_dc::DcRows;
use crate::tiff::TiffPage;
use crate::{Band, Geometry, RowSource};
use membudget::probe::Format;
use membudget::{Error, ErrorKind};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

/// Bytes of DCT coefficients a progressive JPEG may need before its first row, and of a
/// JPEG 2000 resolution level decoded whole.
pub const MAX_JPEG_BYTES: u64 = 256 << 20;

/// A PNG read row by row, as 8-bit samples (palette expanded, 16 bits stripped to their
/// high byte): [`crate::png::PngSource`] narrowed for the 8-bit thumbnailer.
pub struct PngRows<R: BufRead + Seek> {
    // Boxed: callers hold this in an enum beside small sources.
    source: Box<crate::png::PngSource<R>>,
    /// The 16-bit rows of a 16-bit PNG, before narrowing.
    wide: Band,
    /// The iCCP profile, if any.
    pub icc: Option<Vec<u8>>,
}

impl<R: BufRead + Seek> std::fmt::Debug for PngRows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PngRows")
            .field("geometry", &self.geometry())
            .finish()
    }
}

impl<R: BufRead + Seek> PngRows<R> {
    /// Open a PNG. Interlaced PNGs give no final row before the last pass: refused.
    pub fn new(r: R) -> Result<Self, Error> {
        let source = Box::new(crate::png::PngSource::new(r)?);
        let icc = source.meta().icc.clone();
        Ok(PngRows {
            source,
            wide: Band::default(),
            icc,
        })
    }
}

impl<R: BufRead + Seek> RowSource for PngRows<R> {
    fn geometry(&self) -> Geometry {
        Geometry {
            sample_bytes: 1,
            ..self.source.geometry()
        }
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        if self.source.geometry().sample_bytes == 1 {
            return self.source.read_band(y0, rows, band);
        }
        self.source.read_band(y0, rows, &mut self.wide)?;
        let g = self.geometry();
        band.shape(y0, rows, g.width, g.comps, 1);
        for (out, wide) in band.planes.iter_mut().zip(&self.wide.planes) {
            for (o, v) in out.iter_mut().zip(wide.chunks_exact(2)) {
                // The high byte, as the png crate's STRIP_16 keeps it.
                *o = (u16::from_ne_bytes([v[0], v[1]]) >> 8) as u8;
            }
        }
        Ok(())
    }
}

/// How the final size is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Area averaging straight to the output (exact box filter).
    Box,
    /// Integer box shrink to about twice the output, then Lanczos3.
    Lanczos3,
}

/// A thumbnail: interleaved 8-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Samples per pixel.
    pub comps: usize,
    /// `height` rows of `width * comps` samples.
    pub pixels: Vec<u8>,
}

impl Thumb {
    /// The `w` x `h` rectangle at `x`, `y` (clipped to the image).
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Thumb {
        let x = x.min(self.width);
        let y = y.min(self.height);
        let w = w.min(self.width - x);
        let h = h.min(self.height - y);
        let line = self.width as usize * self.comps;
        let mut pixels = Vec::with_capacity(w as usize * h as usize * self.comps);
        for r in y..y + h {
            let a = r as usize * line + x as usize * self.comps;
            pixels.extend_from_slice(&self.pixels[a..a + w as usize * self.comps]);
        }
        Thumb {
            width: w,
            height: h,
            comps: self.comps,
            pixels,
        }
    }
}

/// The size of a thumbnail whose longest side is `max_side` (never enlarged).
pub fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_side {
        return (width, height);
    }
    let s = f64::from(max_side) / f64::from(long);
    let sc = |v: u32| ((f64::from(v) * s).round() as u32).max(1);
    (sc(width), sc(height))
}

/// Source spans of each output cell: `(first, weights)` with one weight per source
/// index from `first`, the length of the overlap in source pixels.
fn spans(src: u32, dst: u32) -> Vec<(u32, Vec<f32>)> {
    let step = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|i| {
            let (a, b) = (f64::from(i) * step, f64::from(i + 1) * step);
            let first = a.floor() as u32;
            let last = (b.ceil() as u32).min(src);
            let w = (first..last)
                .map(|s| {
                    let lo = a.max(f64::from(s));
                    let hi = b.min(f64::from(s + 1));
                    (hi - lo).max(0.0) as f32
                })
                .collect();
            (first, w)
        })
        .collect()
}

/// Downscale `src` so that its longest side is `max_side`, by area averaging, reading
/// each source row once.
pub fn thumbnail<S: RowSource + ?Sized>(src: &mut S, max_side: u32) -> Result<Thumb, Error> {
    let g = src.geometry();
    let (tw, th) = fit(g.width, g.height, max_side);
    box_resize(src, tw, th)
}

/// Rows read at once by [`box_resize`].
const BOX_ROWS: u32 = 16;

/// Area-average `src` to `tw` x `th`, reading each source row once, in order.
pub fn box_resize<S: RowSource + ?Sized>(src: &mut S, tw: u32, th: u32) -> Result<Thumb, Error> {
    let g = src.geometry();
    if g.sample_bytes != 1 {
        return Err(Error::unsupported("thumbnails of 8-bit images only"));
    }
    let cols: Vec<(u32, Vec<f32>, f32)> = spans(g.width, tw)
        .into_iter()
        .map(|(x0, w)| {
            let t: f32 = w.iter().sum();
            (x0, w, if t > 0.0 { t } else { 1.0 })
        })
        .collect();
    let rows = spans(g.height, th);
    let comps = g.comps;
    let mut band = Band::default();
    let mut hrow = vec![0f32; tw as usize * comps];
    let mut hrow_y: Option<u32> = None;
    let mut acc = vec![0f32; tw as usize * comps];
    let mut pixels = Vec::with_capacity(tw as usize * th as usize * comps);
    for (first, wy) in &rows {
        acc.iter_mut().for_each(|a| *a = 0.0);
        let mut total = 0f32;
        for (k, &w) in wy.iter().enumerate() {
            let y = first + k as u32;
            if hrow_y != Some(y) {
                // Bands of BOX_ROWS rows: one call per band, not per row.
                if band.rows == 0 || y < band.y0 || y >= band.y0 + band.rows {
                    let n = BOX_ROWS.min(g.height - y);
                    src.read_band(y, n, &mut band)?;
                }
                let w = g.width as usize;
                let off = (y - band.y0) as usize * w;
                for c in 0..comps {
                    let plane = &band.planes[c][off..off + w];
                    for (j, (x0, wx, total)) in cols.iter().enumerate() {
                        let src_px = &plane[*x0 as usize..*x0 as usize + wx.len()];
                        let s: f32 = wx.iter().zip(src_px).map(|(v, p)| v * f32::from(*p)).sum();
                        hrow[j * comps + c] = s / total;
                    }
                }
                hrow_y = Some(y);
            }
            for (a, h) in acc.iter_mut().zip(&hrow) {
                *a += w * h;
            }
            total += w;
        }
        let t = if total > 0.0 { total } else { 1.0 };
        pixels.extend(acc.iter().map(|a| (a / t).round().clamp(0.0, 255.0) as u8));
    }
    Ok(Thumb {
        width: tw,
        height: th,
        comps,
        pixels,
    })
}

/// Resize `src` to `tw` x `th` (a reduction) with `how`, reading it once, in order.
pub fn resize<S: RowSource + ?Sized>(
    src: &mut S,
    tw: u32,
    th: u32,
    how: Resample,
) -> Result<Thumb, Error> {
    let g = src.geometry();
    if how == Resample::Box {
        return box_resize(src, tw, th);
    }
    // libvips's rule: box-shrink by half the factor (integer), leaving Lanczos3 a
    // reduction between 2 and 4 so its lobes see real pixels, not aliased ones.
    let k = (g.width / tw.max(1)).min(g.height / th.max(1)) / 2;
    let small = box_resize(src, g.width.div_ceil(k.max(1)), g.height.div_ceil(k.max(1)))?;
    lanczos3(&small, tw, th)
}

/// Lanczos3 resampling of a small in-memory image (alpha-weighted when there is alpha).
pub fn lanczos3(t: &Thumb, tw: u32, th: u32) -> Result<Thumb, Error> {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions};
    if (t.width, t.height) == (tw, th) {
        return Ok(t.clone());
    }
    let pt = match t.comps {
        1 => PixelType::U8,
        2 => PixelType::U8x2,
        3 => PixelType::U8x3,
        4 => PixelType::U8x4,
        n => return Err(Error::unsupported(format!("thumbnails of {n} components"))),
    };
    let e = |e: &dyn std::fmt::Display| Error::new(ErrorKind::Internal, format!("resize: {e}"));
    // Borrowed, not copied: the small image is most of a thumbnail's memory.
    let src = ImageRef::new(t.width, t.height, &t.pixels, pt).map_err(|x| e(&x))?;
    let mut dst = Image::new(tw, th, pt);
    fast_image_resize::Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|x| e(&x))?;
    Ok(Thumb {
        width: tw,
        height: th,
        comps: t.comps,
        pixels: dst.into_vec(),
    })
}

/// 16-bit samples served as 8-bit ones (rounded: v * 255 / 65535).
#[derive(Debug)]
pub struct To8<S> {
    inner: S,
    wide: Band,
}

impl<S: RowSource> To8<S> {
    /// Wrap a source of 16-bit samples.
    pub fn new(inner: S) -> Self {
        To8 {
            inner,
            wide: Band::default(),
        }
    }
}

impl<S: RowSource> RowSource for To8<S> {
    fn geometry(&self) -> Geometry {
        Geometry {
            sample_bytes: 1,
            ..self.inner.geometry()
        }
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        self.inner.read_band(y0, rows, &mut self.wide)?;
        let g = self.geometry();
        band.shape(y0, rows, g.width, g.comps, 1);
        for (o, i) in band.planes.iter_mut().zip(&self.wide.planes) {
            for (d, s) in o.iter_mut().zip(i.chunks_exact(2)) {
                let v = u32::from(u16::from_ne_bytes([s[0], s[1]]));
                *d = ((v * 255 + 32767) / 65535) as u8;
            }
        }
        Ok(())
    }
}

/// A JPEG 2000 decoded at a reduced resolution level, held as 8-bit planes (it is no
/// larger than about four times the thumbnail).
#[derive(Debug)]
pub struct Jp2Reduced {
    planes: Vec<Vec<u8>>,
    geometry: Geometry,
}

impl Jp2Reduced {
    /// Decode `path` discarding `reduce` resolution levels (each halves both sides).
    pub fn open(path: &Path, reduce: u32) -> Result<Self, Error> {
        let params = jpeg2k::DecodeParameters::new().reduce(reduce);
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only and lives only for this decode; a file truncated
        // meanwhile by another process is outside what the tools guard against (as for
        // every reader here).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let img = membudget::probe::catch_panics(|| jpeg2k::Image::from_bytes_with(&map, params))
            .map_err(|()| Error::corrupt("JPEG 2000: the decoder failed"))?
            .map_err(|e| Error::corrupt(format!("JPEG 2000: {e}")))?;
        let comps = img.components();
        let first = comps
            .first()
            .ok_or_else(|| Error::corrupt("JPEG 2000: no components"))?;
        let (w, h) = (first.width(), first.height());
        if comps.len() > 4 || comps.iter().any(|c| (c.width(), c.height()) != (w, h)) {
            return Err(Error::unsupported(
                "JPEG 2000: more than 4 components, or subsampled ones",
            ));
        }
        let planes = comps
            .iter()
            .map(|c| {
                let p = c.precision().clamp(1, 31);
                let max = (1i64 << p) - 1;
                let off = if c.is_signed() { 1i64 << (p - 1) } else { 0 };
                c.data()
                    .iter()
                    .map(|&v| {
                        let v = (i64::from(v) + off).clamp(0, max);
                        ((v * 255 + max / 2) / max) as u8
                    })
                    .collect()
            })
            .collect();
        Ok(Jp2Reduced {
            planes,
            geometry: Geometry {
                width: w,
                height: h,
                comps: comps.len(),
                sample_bytes: 1,
            },
        })
    }
}

impl RowSource for Jp2Reduced {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let w = self.geometry.width as usize;
        band.shape(y0, rows, self.geometry.width, self.geometry.comps, 1);
        for (o, p) in band.planes.iter_mut().zip(&self.planes) {
            o.copy_from_slice(&p[y0 as usize * w..(y0 + rows) as usize * w]);
        }
        Ok(())
    }
}

/// A thumbnail's requested size, and vipsthumbnail's arithmetic for it (so that sizes
/// agree with `vipsthumbnail -s N` and, for `fill`, `--smartcrop centre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// N: the bounding square's side.
    pub side: u32,
    /// Fill the square (scale the shortest side to N, then crop) instead of fitting in it.
    pub fill: bool,
}

impl Size {
    /// The factor a `w` x `h` image is shrunk by: the larger of the two axes' factors to
    /// fit, the smaller to fill; never below 1 (never enlarged).
    pub fn shrink(&self, w: u32, h: u32) -> f64 {
        let n = f64::from(self.side.max(1));
        let (hs, vs) = (f64::from(w) / n, f64::from(h) / n);
        let s = if self.fill { hs.min(vs) } else { hs.max(vs) };
        s.max(1.0)
    }

    /// The resized size of a `w` x `h` image (before a fill's crop).
    pub fn target(&self, w: u32, h: u32) -> (u32, u32) {
        let s = self.shrink(w, h);
        let r = |v: u32| ((f64::from(v) / s).round() as u32).clamp(1, v.max(1));
        (r(w), r(h))
    }

    /// The final size: the target, cropped to N x N for a fill.
    pub fn output(&self, w: u32, h: u32) -> (u32, u32) {
        let (tw, th) = self.target(w, h);
        if self.fill {
            (tw.min(self.side), th.min(self.side))
        } else {
            (tw, th)
        }
    }

    /// libjpeg's reduction for a `w` x `h` JPEG, as vipsthumbnail picks it: the largest
    /// of 8, 4, 2 that still leaves a factor of two to the final Lanczos3 step.
    pub fn jpeg_shrink(&self, w: u32, h: u32) -> u32 {
        match self.shrink(w, h) {
            s if s >= 16.0 => 8,
            s if s >= 8.0 => 4,
            s if s >= 4.0 => 2,
            _ => 1,
        }
    }

    /// Whether a reduced level of `w` x `h` is still large enough to shrink from.
    fn level_ok(&self, w: u32, h: u32) -> bool {
        let n = f64::from(self.side.max(1));
        let (hs, vs) = (f64::from(w) / n, f64::from(h) / n);
        (if self.fill { hs.min(vs) } else { hs.max(vs) }) >= 1.0
    }
}

/// Resize an opened source to `size` (Lanczos3) and crop a fill around the centre; the
/// size follows from what was loaded, as vipsthumbnail's does.
pub fn make(src: &mut Opened, size: Size) -> Result<Thumb, Error> {
    let g = src.source.geometry();
    let (tw, th) = size.target(g.width, g.height);
    let t = resize(src.source.as_mut(), tw, th, Resample::Lanczos3)?;
    let (ow, oh) = size.output(g.width, g.height);
    Ok(if (ow, oh) == (tw, th) {
        t
    } else {
        t.crop((tw - ow) / 2, (th - oh) / 2, ow, oh)
    })
}

/// A source opened for a thumbnail, at the reduction [`open`] chose.
pub struct Opened {
    /// The rows to resize.
    pub source: Box<dyn RowSource>,
    /// The input's full size.
    pub full: (u32, u32),
    /// What was read: `jpeg 1/8` (`jpeg 1/8 dc` from the DC terms), `tiff page 3`,
    /// `tiff subifd 2`, `jp2 reduce 2`, `png`.
    pub loaded: String,
    /// The input's ICC profile, passed through.
    pub icc: Option<Vec<u8>>,
    /// The input's format.
    pub format: Format,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("geometry", &self.source.geometry())
            .field("full", &self.full)
            .field("loaded", &self.loaded)
            .finish()
    }
}

/// Open `path` for a thumbnail of `size`: the most reduced source vipsthumbnail would
/// load (see [`Size::jpeg_shrink`]; the smallest pyramid level or JPEG 2000 resolution
/// whose shrink is still at least 1).
pub fn open(path: &Path, size: Size) -> Result<Opened, Error> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let format = membudget::probe::sniff(&head[..n])
        .ok_or_else(|| Error::unsupported("not a JPEG, PNG, TIFF or JPEG 2000 image"))?;
    match format {
        Format::Jpeg => {
            let probe = membudget::probe::raster::probe_jpeg(path)?;
            let im = probe
                .image
                .as_ref()
                .ok_or_else(|| Error::corrupt("JPEG: no frame header"))?;
            let (w, h) = (im.width as u32, im.height as u32);
            let d = size.jpeg_shrink(w, h);
            // As libvips's loader: whole blocks only, so sizes agree with vipsthumbnail.
            let then = size.target(w / d, h / d);
            open_jpeg(std::fs::File::open(path)?, &probe, d, true, then)
        }
        Format::Png => {
            let rows = PngRows::new(BufReader::new(std::fs::File::open(path)?))?;
            let g = rows.geometry();
            let icc = rows.icc.clone();
            Ok(Opened {
                source: Box::new(rows),
                full: (g.width, g.height),
                loaded: "png".into(),
                icc,
                format,
            })
        }
        Format::Tiff => open_tiff(path, size),
        Format::Jp2 | Format::J2k => {
            let probe = membudget::probe::probe_path(path)?;
            let im = probe
                .image
                .ok_or_else(|| Error::corrupt("JPEG 2000: no image header"))?;
            let (w, h) = (
                u32::try_from(im.width).map_err(|_| Error::hostile("JPEG 2000: too wide"))?,
                u32::try_from(im.height).map_err(|_| Error::hostile("JPEG 2000: too tall"))?,
            );
            let levels = match &probe.detail {
                membudget::probe::Detail::Jp2(j) => u32::from(j.codestream.levels),
                _ => 0,
            };
            let reduce = (0..=levels.min(31))
                .rev()
                .find(|&r| size.level_ok(w.div_ceil(1 << r), h.div_ceil(1 << r)))
                .unwrap_or(0);
            // OpenJPEG decodes the level whole (32-bit samples), then 8-bit planes.
            let need = u64::from(w.div_ceil(1 << reduce))
                * u64::from(h.div_ceil(1 << reduce))
                * u64::from(im.bands)
                * 5;
            if need > MAX_JPEG_BYTES {
                return Err(Error::unsupported(format!(
                    "JPEG 2000: its coarsest usable resolution level (reduce {reduce}) needs \
                     {need} bytes decoded, more than {MAX_JPEG_BYTES}"
                )));
            }
            Ok(Opened {
                source: Box::new(Jp2Reduced::open(path, reduce)?),
                full: (w, h),
                loaded: format!("jp2 reduce {reduce}"),
                icc: None,
                format,
            })
        }
        other => Err(Error::unsupported(format!(
            "{}: no thumbnails of this format",
            other.as_str()
        ))),
    }
}

/// Open a JPEG file (its header probed as `probe`) reduced by `shrink` (1, 2, 4 or 8)
/// in its DCT ([`jpeg::shrink_for`] or [`Size::jpeg_shrink`] choose it); `whole_blocks`
/// drops the partial block at the right and bottom, as libvips's loader does.
///
/// At 1/8 only the DC terms count: a baseline JPEG is then read by [`DcRows`], which
/// skips the AC coefficients faster than libjpeg decodes them, if its chroma is not
/// subsampled or the caller reduces the 1/8 image by 2 or more to `then` (DcRows takes
/// subsampled chroma from each block's DC, blocky until averaged); anything else is
/// libjpeg's.
pub fn open_jpeg(
    file: std::fs::File,
    probe: &membudget::probe::Probe,
    shrink: u32,
    whole_blocks: bool,
    then: (u32, u32),
) -> Result<Opened, Error> {
    let im = probe
        .image
        .as_ref()
        .ok_or_else(|| Error::corrupt("JPEG: no frame header"))?;
    let (w, h) = (im.width as u32, im.height as u32);
    let reduced_by_2 = w / shrink >= 2 * then.0 && h / shrink >= 2 * then.1;
    let dc = match shrink {
        8 => DcRows::open(ReadAt::new(file.try_clone()?), MAX_JPEG_BYTES)?
            .filter(|d| reduced_by_2 || !d.subsampled()),
        _ => None,
    };
    let loaded = format!("jpeg 1/{shrink}{}", if dc.is_some() { " dc" } else { "" });
    let (source, icc): (Box<dyn RowSource>, _) = match dc {
        Some(mut dc) => {
            if whole_blocks {
                dc.crop(w / shrink, h / shrink);
            }
            let icc = dc.icc.take();
            (Box::new(dc), icc)
        }
        None => {
            let reader = BufReader::with_capacity(1 << 16, ReadAt::new(file));
            let mut rows = JpegRows::open(reader, probe, shrink, MAX_JPEG_BYTES)?;
            if whole_blocks {
                rows.crop(w / shrink, h / shrink);
            }
            let icc = rows.icc.take();
            (Box::new(rows), icc)
        }
    };
    Ok(Opened {
        source,
        full: (w, h),
        loaded,
        icc,
        format: Format::Jpeg,
    })
}

/// A file read from an offset of its own (`pread`), so that two readers can share one
/// open file (or a duplicate of its descriptor, which shares the file's offset).
struct ReadAt {
    file: std::fs::File,
    pos: u64,
}

impl ReadAt {
    fn new(file: std::fs::File) -> Self {
        ReadAt { file, pos: 0 }
    }
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether `(w, h)` is `(w0, h0)` halved `k` times for some k, rounding either way (how
/// pyramid writers make their levels).
fn is_reduction(w0: u32, h0: u32, w: u32, h: u32) -> bool {
    (1..32).any(|k| {
        let near = |full: u32, v: u32| {
            let exact = f64::from(full) / f64::from(1u32 << k);
            (f64::from(v) - exact).abs() <= 1.0
        };
        near(w0, w) && near(h0, h)
    })
}

/// Reduced-resolution candidates besides the first page: later pages of the main chain
/// and the first page's SubIFDs, as `(label, index, ifd offset)`.
fn tiff_candidates(path: &Path) -> Result<Vec<(String, usize, u64)>, Error> {
    let mut out = Vec::new();
    for (i, off) in crate::tiff::page_offsets(path)?
        .into_iter()
        .enumerate()
        .skip(1)
    {
        out.push((format!("tiff page {}", i + 1), i, off));
    }
    let sub = membudget::probe::catch_panics(|| -> Option<Vec<u64>> {
        let f = BufReader::new(std::fs::File::open(path).ok()?);
        let mut d = tiff::decoder::Decoder::new(f).ok()?;
        d.find_tag(tiff::tags::Tag::SubIfd)
            .ok()
            .flatten()
            .and_then(|v| v.into_u64_vec().ok())
    })
    .ok()
    .flatten()
    .unwrap_or_default();
    for (k, off) in sub.into_iter().take(64).enumerate() {
        out.push((format!("tiff subifd {}", k + 1), 1 + k, off));
    }
    Ok(out)
}

fn open_tiff(path: &Path, size: Size) -> Result<Opened, Error> {
    let first = TiffPage::open(path, 0)?;
    let (w, h) = (first.info.width, first.info.height);
    let icc = first.info.icc.clone();
    let mut best: (String, TiffPage) = ("tiff page 1".into(), first);
    // A candidate that does not open or is no reduction is skipped: the first page is
    // always a correct (if slower) source.
    for (label, index, off) in tiff_candidates(path)? {
        let Ok(p) = TiffPage::open_at(path, index, off) else {
            continue;
        };
        let (pw, ph) = (p.info.width, p.info.height);
        let same = p.info.comps == best.1.info.comps;
        if same
            && is_reduction(w, h, pw, ph)
            && size.level_ok(pw, ph)
            && u64::from(pw) * u64::from(ph)
                < u64::from(best.1.info.width) * u64::from(best.1.info.height)
        {
            best = (label, p);
        }
    }
    let (label, page) = best;
    if page.info.comps > 4 {
        return Err(Error::unsupported(format!(
            "TIFF: {} components (thumbnails of gray, RGB, with or without alpha)",
            page.info.comps
        )));
    }
    let source: Box<dyn RowSource> = if page.info.sample_bytes() == 2 {
        Box::new(To8::new(page))
    } else {
        Box::new(page)
    };
    Ok(Opened {
        source,
        full: (w, h),
        loaded: label,
        icc,
        format: Format::Tiff,
    })
}

/// Encode a thumbnail as PNG, with an iCCP chunk when `icc` is given.
pub fn encode_png(t: &Thumb, icc: Option<&[u8]>, out: impl std::io::Write) -> Result<(), Error> {
    let e = |e: png::EncodingError| Error::new(ErrorKind::Io, format!("PNG: {e}"));
    let mut info = png::Info::with_size(t.width, t.height);
    info.color_type = match t.comps {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    };
    info.bit_depth = png::BitDepth::Eight;
    info.icc_profile = icc.map(|p| std::borrow::Cow::Owned(p.to_vec()));
    let enc = png::Encoder::with_info(out, info).map_err(e)?;
    let mut w = enc.write_header().map_err(e)?;
    w.write_image_data(&t.pixels).map_err(e)?;
    w.finish().map_err(e)
}

/// Encode a thumbnail as a baseline JPEG at `quality`, with `icc` if given (alpha is
/// dropped: JPEG has none).
pub fn encode_jpeg(
    t: &Thumb,
    quality: u8,
    icc: Option<&[u8]>,
    out: impl std::io::Write,
) -> Result<(), Error> {
    let colour = if t.comps >= 3 { 3 } else { 1 };
    let mut j = jpeg::JpegWriter::new(out, t.width, t.height, colour, quality, icc, None)?;
    if colour == t.comps {
        j.write_rows(&t.pixels)?;
    } else {
        let row: Vec<u8> = t
            .pixels
            .chunks_exact(t.comps)
            .flat_map(|p| p[..colour].iter().copied())
            .collect();
        j.write_rows(&row)?;
    }
    j.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test source of a known image.
    struct Mem {
        g: Geometry,
        px: Vec<u8>,
        reads: Vec<u32>,
    }
    impl RowSource for Mem {
        fn geometry(&self) -> Geometry {
            self.g
        }
        fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
            self.reads.push(y0);
            band.shape(y0, rows, self.g.width, 1, 1);
            let w = self.g.width as usize;
            band.planes[0].copy_from_slice(&self.px[y0 as usize * w..(y0 + rows) as usize * w]);
            Ok(())
        }
    }

    #[test]
    fn box_filter_averages_areas_and_reads_rows_once() {
        // 4x4 -> 2x2: each output pixel the mean of a 2x2 block.
        let px: Vec<u8> = vec![
            0, 10, 100, 100, 20, 30, 100, 100, 0, 0, 255, 255, 0, 0, 255, 255,
        ];
        let mut m = Mem {
            g: Geometry {
                width: 4,
                height: 4,
                comps: 1,
                sample_bytes: 1,
            },
            px,
            reads: Vec::new(),
        };
        let t = thumbnail(&mut m, 2).unwrap();
        assert_eq!((t.width, t.height), (2, 2));
        assert_eq!(t.pixels, [15, 100, 0, 255]);
        // One band of rows read once.
        assert_eq!(m.reads, [0]);
        // 3 -> 2: fractional coverage (a middle row shared by both outputs).
        let mut m = Mem {
            g: Geometry {
                width: 1,
                height: 3,
                comps: 1,
                sample_bytes: 1,
            },
            px: vec![0, 90, 180],
            reads: Vec::new(),
        };
        let t = thumbnail(&mut m, 2).unwrap();
        assert_eq!(t.pixels, [30, 150]);
        assert_eq!(m.reads, [0]);
        assert_eq!(fit(1000, 3000, 300), (100, 300));
        assert_eq!(fit(10, 20, 300), (10, 20));
    }

    #[test]
    fn sizes_follow_vipsthumbnail_arithmetic() {
        let fit = Size {
            side: 64,
            fill: false,
        };
        // vipsthumbnail -s 64 of a 3001x1999 JPEG: 1/8 on load, whole blocks (375x249),
        // then 64 x round(249 * 64 / 375) = 42.
        assert_eq!(fit.jpeg_shrink(3001, 1999), 8);
        assert_eq!(fit.target(375, 249), (64, 42));
        assert_eq!(fit.target(3001, 1999), (64, 43));
        let s256 = Size {
            side: 256,
            fill: false,
        };
        // A factor of two is left to the final step: 11.7 -> 1/4, not 1/8.
        assert_eq!(s256.jpeg_shrink(3001, 1999), 4);
        assert_eq!(s256.jpeg_shrink(10240, 10240), 8);
        assert_eq!(s256.jpeg_shrink(700, 500), 1);
        assert_eq!(s256.target(100, 50), (100, 50), "never enlarged");
        let fill = Size {
            side: 100,
            fill: true,
        };
        assert_eq!(fill.target(400, 200), (200, 100));
        assert_eq!(fill.output(400, 200), (100, 100));
        assert_eq!(fill.output(80, 300), (80, 100));
    }

    #[test]
    fn lanczos_path_reads_each_row_once_and_keeps_flat_areas_flat() {
        let (w, h) = (1000u32, 600u32);
        let mut m = Mem {
            g: Geometry {
                width: w,
                height: h,
                comps: 1,
                sample_bytes: 1,
            },
            px: vec![77; (w * h) as usize],
            reads: Vec::new(),
        };
        let t = resize(&mut m, 100, 60, Resample::Lanczos3).unwrap();
        assert_eq!((t.width, t.height), (100, 60));
        assert!(t.pixels.iter().all(|&v| v == 77));
        // Bands of 16 rows, in order, each once.
        assert_eq!(m.reads, (0..h).step_by(16).collect::<Vec<_>>());
        let c = t.crop(90, 50, 20, 20);
        assert_eq!((c.width, c.height, c.pixels.len()), (10, 10, 100));
    }

    /// PngRows gives what the png crate's own 8-bit normalisation gives, for 16-bit
    /// colour with alpha, 16-bit grey and a palette with transparency.
    #[test]
    fn png_rows_equal_the_png_crates_8_bit_rows() {
        let (w, h) = (7u32, 5u32);
        let cases: Vec<(png::ColorType, png::BitDepth, Vec<u8>)> = vec![
            (
                png::ColorType::Rgba,
                png::BitDepth::Sixteen,
                (0..w * h * 8).map(|i| (i * 37 % 251) as u8).collect(),
            ),
            (
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                (0..w * h * 2).map(|i| (i * 91 % 253) as u8).collect(),
            ),
            (
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                (0..w * h).map(|i| (i % 3) as u8).collect(),
            ),
        ];
        for (ct, depth, data) in cases {
            let mut file = Vec::new();
            {
                let mut e = png::Encoder::new(&mut file, w, h);
                e.set_color(ct);
                e.set_depth(depth);
                if ct == png::ColorType::Indexed {
                    e.set_palette(vec![10, 20, 30, 40, 50, 60, 70, 80, 90]);
                    e.set_trns(vec![255, 0]);
                }
                e.write_header().unwrap().write_image_data(&data).unwrap();
            }
            let mut dec = png::Decoder::new(std::io::Cursor::new(&file));
            dec.set_transformations(png::Transformations::normalize_to_color8());
            let mut reader = dec.read_info().unwrap();
            let mut want = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut want).unwrap();
            want.truncate(info.buffer_size());
            let mut rows = PngRows::new(std::io::Cursor::new(&file)).unwrap();
            let g = rows.geometry();
            let mut band = Band::default();
            rows.read_band(0, h, &mut band).unwrap();
            let mut got = Vec::new();
            for i in 0..(w * h) as usize {
                got.extend((0..g.comps).map(|c| band.planes[c][i]));
            }
            assert_eq!(got, want, "{ct:?} {depth:?}");
        }
    }
}
