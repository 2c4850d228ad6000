//! Bounded-memory thumbnails of JPEG and PNG images, by box filtering (area averaging).
//!
//! This is the one downscaler of the workspace: `cbz-stream cover` uses it today and
//! `tile-enhance thumbnail` is to reuse it (no second implementation). Sources are
//! [`RowSource`]s read one row at a time: a PNG through the `png` crate row by row
//! ([`PngRows`], memory: one row), a JPEG decoded by `jpeg-decoder` at the smallest IDCT
//! scale (1/1, 1/2, 1/4, 1/8) that is still at least the thumbnail's size ([`JpegScaled`],
//! memory: the reduced image, at most 1/64 of the full one for large reductions). The
//! filter holds one resampled row and one output row of accumulators.

use crate::{Band, Geometry, RowSource};
use membudget::{Error, ErrorKind};
use std::io::{BufRead, Read, Seek};

/// Largest decoded buffer a JPEG source may allocate (its reduced image).
pub const MAX_JPEG_BYTES: usize = 256 << 20;

/// A PNG read row by row, as 8-bit samples (palette expanded, 16 bits stripped).
pub struct PngRows<R: BufRead + Seek> {
    reader: png::Reader<R>,
    geometry: Geometry,
    next: u32,
}

impl<R: BufRead + Seek> std::fmt::Debug for PngRows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PngRows")
            .field("geometry", &self.geometry)
            .finish()
    }
}

fn png_err(e: png::DecodingError) -> Error {
    let kind = match e {
        png::DecodingError::LimitsExceeded => ErrorKind::Hostile,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("PNG: {e}"))
}

impl<R: BufRead + Seek> PngRows<R> {
    /// Open a PNG. Interlaced PNGs give no final row before the last pass: refused.
    pub fn new(r: R) -> Result<Self, Error> {
        let mut dec = png::Decoder::new_with_limits(r, png::Limits { bytes: 64 << 20 });
        dec.set_transformations(png::Transformations::normalize_to_color8());
        dec.set_ignore_text_chunk(true);
        let reader = dec.read_info().map_err(png_err)?;
        let info = reader.info();
        if info.interlaced {
            return Err(Error::unsupported(
                "PNG: interlaced images are not read row by row",
            ));
        }
        let (ct, _) = reader.output_color_type();
        let geometry = Geometry {
            width: info.width,
            height: info.height,
            comps: ct.samples(),
            sample_bytes: 1,
        };
        Ok(PngRows {
            reader,
            geometry,
            next: 0,
        })
    }
}

impl<R: BufRead + Seek> RowSource for PngRows<R> {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        if y0 != self.next {
            return Err(Error::new(
                ErrorKind::Internal,
                "PNG rows are read in order",
            ));
        }
        let g = self.geometry;
        band.shape(y0, rows, g.width, g.comps, 1);
        for r in 0..rows as usize {
            let row = self
                .reader
                .next_row()
                .map_err(png_err)?
                .ok_or_else(|| Error::corrupt("PNG: fewer rows than its header says"))?;
            let data = row.data();
            let w = g.width as usize;
            for (c, plane) in band.planes.iter_mut().enumerate() {
                let out = &mut plane[r * w..(r + 1) * w];
                for (x, o) in out.iter_mut().enumerate() {
                    *o = data[x * g.comps + c];
                }
            }
        }
        self.next += rows;
        Ok(())
    }
}

/// A JPEG decoded at a reduced scale, served as rows (gray or RGB).
#[derive(Debug)]
pub struct JpegScaled {
    pixels: Vec<u8>,
    geometry: Geometry,
}

impl JpegScaled {
    /// Decode `r` at the smallest scale whose size is at least `want_w` x `want_h`.
    pub fn new(r: impl Read, want_w: u32, want_h: u32) -> Result<Self, Error> {
        let jerr = |e: jpeg_decoder::Error| Error::corrupt(format!("JPEG: {e}"));
        let mut dec = jpeg_decoder::Decoder::new(std::io::BufReader::new(r));
        dec.set_max_decoding_buffer_size(MAX_JPEG_BYTES);
        let clamp = |v: u32| v.clamp(1, u32::from(u16::MAX)) as u16;
        let (w, h) = dec.scale(clamp(want_w), clamp(want_h)).map_err(jerr)?;
        let pixels = dec.decode().map_err(jerr)?;
        let info = dec
            .info()
            .ok_or_else(|| Error::corrupt("JPEG: no frame header"))?;
        let comps = match info.pixel_format {
            jpeg_decoder::PixelFormat::L8 => 1,
            jpeg_decoder::PixelFormat::RGB24 => 3,
            other => {
                return Err(Error::unsupported(format!("JPEG: {other:?} thumbnails")));
            }
        };
        if pixels.len() != usize::from(w) * usize::from(h) * comps {
            return Err(Error::corrupt("JPEG: decoded size differs from the header"));
        }
        Ok(JpegScaled {
            pixels,
            geometry: Geometry {
                width: u32::from(w),
                height: u32::from(h),
                comps,
                sample_bytes: 1,
            },
        })
    }
}

impl RowSource for JpegScaled {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let g = self.geometry;
        band.shape(y0, rows, g.width, g.comps, 1);
        let w = g.width as usize;
        for r in 0..rows as usize {
            let src = &self.pixels[(y0 as usize + r) * w * g.comps..][..w * g.comps];
            for (c, plane) in band.planes.iter_mut().enumerate() {
                for (x, o) in plane[r * w..(r + 1) * w].iter_mut().enumerate() {
                    *o = src[x * g.comps + c];
                }
            }
        }
        Ok(())
    }
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
pub fn thumbnail<S: RowSource>(src: &mut S, max_side: u32) -> Result<Thumb, Error> {
    let g = src.geometry();
    if g.sample_bytes != 1 {
        return Err(Error::unsupported("thumbnails of 8-bit images only"));
    }
    let (tw, th) = fit(g.width, g.height, max_side);
    let cols = spans(g.width, tw);
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
                src.read_band(y, 1, &mut band)?;
                for (j, (x0, wx)) in cols.iter().enumerate() {
                    for c in 0..comps {
                        let plane = &band.planes[c];
                        let mut s = 0f32;
                        let mut t = 0f32;
                        for (m, &v) in wx.iter().enumerate() {
                            s += v * f32::from(plane[(*x0 as usize) + m]);
                            t += v;
                        }
                        hrow[j * comps + c] = if t > 0.0 { s / t } else { 0.0 };
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

/// Encode a thumbnail as PNG.
pub fn encode_png(t: &Thumb, out: impl std::io::Write) -> Result<(), Error> {
    let e = |e: png::EncodingError| Error::new(ErrorKind::Io, format!("PNG: {e}"));
    let mut enc = png::Encoder::new(out, t.width, t.height);
    enc.set_color(match t.comps {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(e)?;
    w.write_image_data(&t.pixels).map_err(e)?;
    w.finish().map_err(e)
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
        assert_eq!(m.reads, [0, 1, 2, 3]);
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
        assert_eq!(m.reads, [0, 1, 2]);
        assert_eq!(fit(1000, 3000, 300), (100, 300));
        assert_eq!(fit(10, 20, 300), (10, 20));
    }
}
