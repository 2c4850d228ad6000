//! PNG at full depth, row by row: [`PngSource`] reads (palette and low-bit gray expanded to
//! 8 bits, transparency chunks to an alpha component, 16 bits kept) and [`PngWriter`]
//! writes through the `png` crate's stream writer. ICC profile (iCCP), resolution (pHYs
//! in metres) and alpha travel in [`Meta`]. Memory: one row each way.
//!
//! (`crate::thumbnail::PngRows` narrows it to 8-bit rows for the thumbnailer.)

use crate::tiff::{Colour, Extra, Resolution};
use crate::write::{Meta, RowSink};
use crate::{Band, Geometry, RowSource};
use membudget::{Error, ErrorKind};
use std::borrow::Cow;
use std::io::{BufRead, Seek, Write};

fn png_err(e: png::DecodingError) -> Error {
    let kind = match &e {
        png::DecodingError::LimitsExceeded => ErrorKind::Hostile,
        // A file that ends early is a damaged file, not a failing disk.
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ErrorKind::Corrupt
        }
        png::DecodingError::IoError(_) => ErrorKind::Io,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("PNG: {e}"))
}

fn enc_err(e: png::EncodingError) -> Error {
    match e {
        png::EncodingError::IoError(e) => Error::from(e),
        e => Error::new(ErrorKind::Internal, format!("PNG encoder: {e}")),
    }
}

/// A PNG read row by row at its own depth (8 or 16 bits).
pub struct PngSource<R: BufRead + Seek> {
    reader: png::Reader<R>,
    geometry: Geometry,
    meta: Meta,
    next: u32,
}

impl<R: BufRead + Seek> std::fmt::Debug for PngSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PngSource")
            .field("geometry", &self.geometry)
            .field("meta", &self.meta)
            .finish()
    }
}

impl<R: BufRead + Seek> PngSource<R> {
    /// Open a PNG. Interlaced PNGs give no final row before the last pass: refused.
    pub fn new(r: R) -> Result<Self, Error> {
        // The limit bounds what the decoder allocates besides rows (ICC, text).
        let mut dec = png::Decoder::new_with_limits(r, png::Limits { bytes: 64 << 20 });
        dec.set_transformations(png::Transformations::EXPAND);
        dec.set_ignore_text_chunk(true);
        let reader = dec.read_info().map_err(png_err)?;
        let info = reader.info();
        if info.interlaced {
            return Err(Error::unsupported(
                "PNG: interlaced images are not read row by row",
            ));
        }
        let (ct, depth) = reader.output_color_type();
        let sample_bytes = if depth == png::BitDepth::Sixteen {
            2
        } else {
            1
        };
        let (colour, extra) = match ct {
            png::ColorType::Grayscale => (Colour::Gray, Extra::None),
            png::ColorType::GrayscaleAlpha => (Colour::Gray, Extra::Alpha),
            png::ColorType::Rgb => (Colour::Rgb, Extra::None),
            png::ColorType::Rgba => (Colour::Rgb, Extra::Alpha),
            png::ColorType::Indexed => {
                return Err(Error::corrupt("PNG: palette left unexpanded"));
            }
        };
        let resolution = info.pixel_dims.and_then(|d| {
            (d.unit == png::Unit::Meter && d.xppu > 0 && d.yppu > 0).then_some(Resolution {
                x: (d.xppu, 1, 0),
                y: (d.yppu, 1, 0),
            })
        });
        let meta = Meta {
            colour,
            extra,
            bits: 8 * sample_bytes as u8,
            icc: info.icc_profile.as_ref().map(|p| p.to_vec()),
            resolution,
        };
        let geometry = Geometry {
            width: info.width,
            height: info.height,
            comps: ct.samples(),
            sample_bytes,
        };
        Ok(PngSource {
            reader,
            geometry,
            meta,
            next: 0,
        })
    }

    /// What the output should carry.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl<R: BufRead + Seek> RowSource for PngSource<R> {
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
        band.shape(y0, rows, g.width, g.comps, g.sample_bytes);
        let (w, comps) = (g.width as usize, g.comps);
        for r in 0..rows as usize {
            let row = self
                .reader
                .next_row()
                .map_err(png_err)?
                .ok_or_else(|| Error::corrupt("PNG: fewer rows than its header says"))?;
            let data = row.data();
            if data.len() < w * comps * g.sample_bytes {
                return Err(Error::corrupt("PNG: short row"));
            }
            for (c, plane) in band.planes.iter_mut().enumerate() {
                if g.sample_bytes == 1 {
                    let out = &mut plane[r * w..(r + 1) * w];
                    for (x, o) in out.iter_mut().enumerate() {
                        *o = data[x * comps + c];
                    }
                } else {
                    let out = &mut plane[2 * r * w..2 * (r + 1) * w];
                    for x in 0..w {
                        let at = 2 * (x * comps + c);
                        let v = u16::from_be_bytes([data[at], data[at + 1]]);
                        out[2 * x..2 * x + 2].copy_from_slice(&v.to_ne_bytes());
                    }
                }
            }
        }
        self.next += rows;
        Ok(())
    }
}

/// A PNG written row by row.
pub struct PngWriter<W: Write + 'static> {
    stream: png::StreamWriter<'static, W>,
    g: Geometry,
    row: Vec<u8>,
    rows_written: u32,
}

impl<W: Write + 'static> std::fmt::Debug for PngWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PngWriter").field("g", &self.g).finish()
    }
}

impl<W: Write + 'static> PngWriter<W> {
    /// Start a PNG of geometry `g` (1 to 4 components of 1 or 2 bytes) carrying `meta`.
    pub fn new(w: W, g: Geometry, meta: &Meta) -> Result<Self, Error> {
        let ct = match (g.comps, meta.colour) {
            (1, Colour::Gray) => png::ColorType::Grayscale,
            (2, Colour::Gray) => png::ColorType::GrayscaleAlpha,
            (3, Colour::Rgb) => png::ColorType::Rgb,
            (4, Colour::Rgb) => png::ColorType::Rgba,
            (n, c) => {
                return Err(Error::unsupported(format!(
                    "PNG holds gray, gray+alpha, RGB or RGBA, not {n} components of {c:?}"
                )))
            }
        };
        if g.comps == 2 || g.comps == 4 {
            // PNG alpha is straight alpha: premultiplied data would be relabelled.
            if meta.extra == Extra::Premultiplied {
                return Err(Error::unsupported(
                    "PNG has no premultiplied alpha: write TIFF for this input",
                ));
            }
        }
        let mut info = png::Info::with_size(g.width, g.height);
        info.color_type = ct;
        info.bit_depth = if g.sample_bytes == 2 {
            png::BitDepth::Sixteen
        } else {
            png::BitDepth::Eight
        };
        info.icc_profile = meta.icc.clone().map(Cow::Owned);
        info.pixel_dims = meta.resolution.map(|r| png::PixelDimensions {
            xppu: r.x_ppm().round().clamp(1.0, f64::from(u32::MAX)) as u32,
            yppu: r.y_ppm().round().clamp(1.0, f64::from(u32::MAX)) as u32,
            unit: png::Unit::Meter,
        });
        let mut enc = png::Encoder::with_info(w, info).map_err(enc_err)?;
        enc.set_compression(png::Compression::Fast);
        let stream = enc
            .write_header()
            .map_err(enc_err)?
            .into_stream_writer()
            .map_err(enc_err)?;
        Ok(PngWriter {
            stream,
            g,
            row: Vec::new(),
            rows_written: 0,
        })
    }
}

impl<W: Write + 'static> RowSink for PngWriter<W> {
    fn write_band(&mut self, band: &Band) -> Result<(), Error> {
        let g = self.g;
        if band.width != g.width
            || band.planes.len() != g.comps
            || band.sample_bytes != g.sample_bytes
            || band.y0 != self.rows_written
        {
            return Err(Error::new(
                ErrorKind::Internal,
                "PNG writer: band does not follow the image",
            ));
        }
        let (w, comps, sb) = (g.width as usize, g.comps, g.sample_bytes);
        self.row.resize(w * comps * sb, 0);
        for r in 0..band.rows as usize {
            for (c, plane) in band.planes.iter().enumerate() {
                let src = &plane[r * w * sb..(r + 1) * w * sb];
                if sb == 1 {
                    for (x, &v) in src.iter().enumerate() {
                        self.row[x * comps + c] = v;
                    }
                } else {
                    for x in 0..w {
                        let v = u16::from_ne_bytes([src[2 * x], src[2 * x + 1]]);
                        let at = 2 * (x * comps + c);
                        self.row[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            self.stream.write_all(&self.row)?;
        }
        self.rows_written += band.rows;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), Error> {
        if self.rows_written != self.g.height {
            return Err(Error::new(
                ErrorKind::Internal,
                "PNG writer: fewer rows than the image",
            ));
        }
        self.stream.finish().map_err(enc_err)
    }
}
