//! JPEG by scanlines through libjpeg-turbo (mozjpeg's fork, built from source by
//! `mozjpeg-sys`): [`JpegRows`] reads rows in order, optionally downscaled in the DCT
//! domain by 1/2, 1/4 or 1/8 (the reduced inverse DCT, so a 1/8 decode computes one
//! sample per 8x8 block); [`JpegWriter`] encodes rows in order, baseline, at a quality,
//! and is a [`RowSink`] for 8-bit gray or RGB bands. Both carry the ICC profile (APP2) and
//! the JFIF density ([`JpegRows::meta`]).
//!
//! Memory: a sequential JPEG holds one row of MCUs (16 rows at most) whatever its size; a
//! progressive one needs every coefficient before its first row (2 bytes a coefficient,
//! 64 a block), which [`JpegRows::open`] refuses above a bound it is given. The writer,
//! baseline with fixed Huffman tables (no optimisation pass, which would hold every
//! coefficient), holds an MCU row of samples ([`JpegWriter::held_bytes`]) and one row.
//!
//! libjpeg reports a fatal error by calling `error_exit` and a recoverable corruption (a
//! truncated file, a bad Huffman code) by a warning it would otherwise skip over, drawing
//! grey: here both unwind (the `unwinding` feature lets a Rust panic cross the C frames)
//! and become one corrupt-file error, so a damaged JPEG never yields a plausible image.

use crate::tiff::{Colour, Extra, Resolution};
use crate::write::{Meta, RowSink};
use crate::{Band, Geometry, RowSource};
use membudget::probe::{Detail, Probe};
use membudget::{Error, ErrorKind};
use mozjpeg::{ColorSpace, Compress, Decompress, Marker};
use mozjpeg_sys as ffi;
use std::io::{BufRead, Write};
use std::os::raw::c_int;

/// The scale denominators libjpeg's reduced IDCT gives, largest reduction first.
pub const SCALES: [u32; 4] = [8, 4, 2, 1];

/// Run a call into libjpeg, turning its unwinding error into a corrupt-file error with
/// libjpeg's message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    // `resume_unwind` (how errors leave libjpeg here) skips the panic hook: nothing on
    // stderr. A real panic in the wrapper is caught too, silently, by the probe's guard.
    let mut msg = None;
    let r = membudget::probe::catch_panics(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
            msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
        })
    });
    match r {
        Ok(Ok(v)) => Ok(v),
        _ => Err(Error::corrupt(format!(
            "JPEG: {}",
            msg.as_deref()
                .map(|m| m.trim_start_matches("libjpeg fatal error: "))
                .unwrap_or("the decoder failed")
        ))),
    }
}

/// libjpeg's text for its current message.
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // JMSG_LENGTH_MAX in jerror.h.
    let mut buf = [0u8; 200];
    // SAFETY: `cinfo.err` is the error manager libjpeg was created with (set before
    // jpeg_create_*), and `format_message` writes at most JMSG_LENGTH_MAX bytes.
    unsafe {
        if let Some(fmt) = cinfo.err.as_ref().and_then(|e| e.format_message) {
            let fmt: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
                std::mem::transmute(fmt);
            fmt(cinfo, buf.as_mut_ptr());
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    std::panic::resume_unwind(Box::new(message(cinfo)));
}

/// Warnings (level -1) are corruption libjpeg would paper over: fatal here. Trace
/// messages (level >= 0) are dropped.
extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level < 0 {
        std::panic::resume_unwind(Box::new(message(cinfo)));
    }
}

fn strict_errors() -> ffi::jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of a zeroed manager (a plain C struct whose
    // all-zero value is valid: null pointers and `None` callbacks).
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: `err` is a valid, exclusively borrowed manager.
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// The largest reduction `d` in [`SCALES`] with
/// `ceil(width / d) >= want_w` and `ceil(height / d) >= want_h` (libjpeg rounds up).
pub fn shrink_for(width: u32, height: u32, want_w: u32, want_h: u32) -> u32 {
    SCALES
        .into_iter()
        .find(|&d| width.div_ceil(d) >= want_w && height.div_ceil(d) >= want_h)
        .unwrap_or(1)
}

/// A JPEG read by scanlines, gray or RGB, at full size or reduced by its DCT.
pub struct JpegRows<R> {
    dec: mozjpeg::decompress::DecompressStarted<R>,
    geometry: Geometry,
    /// Full-size width and height.
    pub full: (u32, u32),
    /// The reduction (1, 2, 4 or 8).
    pub shrink: u32,
    /// The ICC profile of APP2 markers, reassembled in sequence order.
    pub icc: Option<Vec<u8>>,
    /// The JFIF density, when in dots per inch or per centimetre.
    pub resolution: Option<Resolution>,
    next: u32,
    row: Vec<u8>,
}

impl<R> std::fmt::Debug for JpegRows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpegRows")
            .field("geometry", &self.geometry)
            .field("full", &self.full)
            .field("shrink", &self.shrink)
            .finish()
    }
}

/// Bytes of DCT coefficients libjpeg holds for a progressive `width` x `height` JPEG of
/// `comps` components (an upper bound: every component at full resolution).
pub fn coefficient_bytes(width: u64, height: u64, comps: u64) -> u64 {
    width.div_ceil(8) * height.div_ceil(8) * 128 * comps
}

/// An APP2 marker's ICC profile chunk: its sequence number and bytes.
pub(crate) fn icc_chunk(app2: &[u8]) -> Option<(u8, &[u8])> {
    (app2.len() > 14 && app2.starts_with(b"ICC_PROFILE\0")).then(|| (app2[12], &app2[14..]))
}

/// The JFIF density (`unit` 1 per inch, 2 per centimetre; 0 is an aspect ratio only) as a
/// resolution.
pub(crate) fn jfif_resolution(unit: u8, x: u16, y: u16) -> Option<Resolution> {
    let ppm = |v: u16| match unit {
        // Per inch: v / 0.0254 = v / 254 * 10^4; per cm: v * 10^2.
        1 => Some((u32::from(v), 254, 4)),
        2 => Some((u32::from(v), 1, 2)),
        _ => None,
    };
    (x > 0 && y > 0).then_some(())?;
    Some(Resolution {
        x: ppm(x)?,
        y: ppm(y)?,
    })
}

/// Reassemble an ICC profile from APP2 `ICC_PROFILE` chunks (`seq`, `count` in each).
pub(crate) fn icc_from_chunks(mut chunks: Vec<(u8, Vec<u8>)>) -> Option<Vec<u8>> {
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    Some(chunks.into_iter().flat_map(|c| c.1).collect())
}

impl<R: BufRead> JpegRows<R> {
    /// Open a JPEG whose header `probe` describes (from `membudget::probe`), decoded
    /// reduced by `shrink` (1, 2, 4 or 8). A progressive JPEG whose coefficients need more
    /// than `max_coefficient_bytes` is refused; CMYK and YCCK are refused.
    pub fn open(
        reader: R,
        probe: &Probe,
        shrink: u32,
        max_coefficient_bytes: u64,
    ) -> Result<Self, Error> {
        if let Detail::Jpeg(j) = &probe.detail {
            if j.progressive {
                let need = coefficient_bytes(j.width, j.height, u64::from(j.components));
                if need > max_coefficient_bytes {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "JPEG: progressive, its {need} bytes of coefficients exceed the \
                             {max_coefficient_bytes} allowed"
                        ),
                    ));
                }
            }
            if j.components == 4 {
                return Err(Error::unsupported("JPEG: CMYK/YCCK images are not read"));
            }
        }
        if !SCALES.contains(&shrink) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("JPEG: no 1/{shrink} scale"),
            ));
        }
        guarded(|| -> Result<Self, Error> {
            let io = |e: std::io::Error| Error::corrupt(format!("JPEG: {e}"));
            let mut d = Decompress::builder()
                .with_err(strict_errors())
                .with_markers(&[Marker::APP(2)])
                .from_reader(reader)
                .map_err(io)?;
            let full = (d.width() as u32, d.height() as u32);
            let icc = icc_from_chunks(
                d.markers()
                    .filter_map(|m| icc_chunk(m.data))
                    .map(|(seq, data)| (seq, data.to_vec()))
                    .collect(),
            );
            let resolution = d.pixel_density().and_then(|p| {
                let unit = match p.unit {
                    mozjpeg::PixelDensityUnit::PixelAspectRatio => 0,
                    mozjpeg::PixelDensityUnit::Inches => 1,
                    mozjpeg::PixelDensityUnit::Centimeters => 2,
                };
                jfif_resolution(unit, p.x, p.y)
            });
            d.scale((8 / shrink) as u8);
            let gray = d.color_space() == ColorSpace::JCS_GRAYSCALE;
            let dec = if gray { d.grayscale() } else { d.rgb() }.map_err(io)?;
            let geometry = Geometry {
                width: dec.width() as u32,
                height: dec.height() as u32,
                comps: if gray { 1 } else { 3 },
                sample_bytes: 1,
            };
            Ok(JpegRows {
                dec,
                geometry,
                full,
                shrink,
                icc,
                resolution,
                next: 0,
                row: vec![0; geometry.width as usize * geometry.comps],
            })
        })?
    }

    /// What an output of this image carries: 8-bit gray or RGB, no alpha, the ICC
    /// profile and the density.
    pub fn meta(&self) -> Meta {
        Meta {
            colour: if self.geometry.comps == 1 {
                Colour::Gray
            } else {
                Colour::Rgb
            },
            extra: Extra::None,
            bits: 8,
            icc: self.icc.clone(),
            resolution: self.resolution,
        }
    }

    /// Serve only the first `width` x `height` pixels (libvips drops the partial block
    /// at the right and bottom of a reduced decode: `floor(size / shrink)`).
    pub fn crop(&mut self, width: u32, height: u32) {
        self.geometry.width = width.clamp(1, self.geometry.width);
        self.geometry.height = height.clamp(1, self.geometry.height);
    }

    /// Read the next row, interleaved, into `out` (the decoded width times comps
    /// bytes, which [`JpegRows::crop`] does not narrow).
    pub fn next_row(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if self.next >= self.geometry.height {
            return Err(Error::new(ErrorKind::Internal, "JPEG: past the last row"));
        }
        let dec = &mut self.dec;
        guarded(|| dec.read_scanlines_into::<u8>(out))?
            .map_err(|e| Error::corrupt(format!("JPEG: {e}")))?;
        self.next += 1;
        Ok(())
    }
}

impl<R: BufRead> RowSource for JpegRows<R> {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        if y0 != self.next {
            return Err(Error::new(
                ErrorKind::Internal,
                "JPEG rows are read in order",
            ));
        }
        let g = self.geometry;
        band.shape(y0, rows, g.width, g.comps, 1);
        let w = g.width as usize;
        let mut row = std::mem::take(&mut self.row);
        for r in 0..rows as usize {
            self.next_row(&mut row)?;
            for (c, plane) in band.planes.iter_mut().enumerate() {
                for (o, px) in plane[r * w..(r + 1) * w]
                    .iter_mut()
                    .zip(row.chunks_exact(g.comps))
                {
                    *o = px[c];
                }
            }
        }
        self.row = row;
        Ok(())
    }
}

/// A baseline JPEG written row by row (gray or RGB, 8 bits; 4:2:0 chroma below quality
/// 90, 4:4:4 from 90, as libvips does), with an ICC profile and a resolution if given.
pub struct JpegWriter<W: Write> {
    enc: Option<mozjpeg::compress::CompressStarted<W>>,
    width: u32,
    comps: usize,
    rows_left: u32,
    /// One interleaved row, for bands.
    row: Vec<u8>,
}

// SAFETY: libjpeg's compress object points only at memory it owns (its pools), at the
// boxed error manager and at the destination manager, both owned by the same value; it
// has no thread affinity (no thread-local state), and `&mut self` keeps its use to one
// thread at a time. Moving it with its writer `W: Send` is sound.
unsafe impl<W: Write + Send> Send for JpegWriter<W> {}

impl<W: Write> std::fmt::Debug for JpegWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpegWriter")
            .field("width", &self.width)
            .field("comps", &self.comps)
            .field("rows_left", &self.rows_left)
            .finish()
    }
}

fn write_err(e: Error) -> Error {
    Error::new(
        ErrorKind::Io,
        e.to_string().replace("JPEG: ", "JPEG write: "),
    )
}

impl<W: Write> JpegWriter<W> {
    /// Bytes libjpeg holds while writing a `width`-pixel image of `comps` components:
    /// the colour-converted rows of an MCU row (16 at most) and their downsampled copy,
    /// each padded to whole blocks, plus one interleaved row here.
    pub fn held_bytes(width: u32, comps: usize) -> u64 {
        let padded = u64::from(width.div_ceil(16) * 16) * comps as u64;
        2 * 16 * padded + padded + (64 << 10)
    }

    /// Start a `width` x `height` JPEG of `comps` (1 or 3) components at `quality`
    /// (1..=100). `ppm` is the resolution in pixels per metre, written as dots per inch
    /// when it is a whole number of them (to a thousandth), else as dots per centimetre.
    pub fn new(
        out: W,
        width: u32,
        height: u32,
        comps: usize,
        quality: u8,
        icc: Option<&[u8]>,
        ppm: Option<(f64, f64)>,
    ) -> Result<Self, Error> {
        let cs = match comps {
            1 => ColorSpace::JCS_GRAYSCALE,
            3 => ColorSpace::JCS_RGB,
            _ => {
                return Err(Error::unsupported(format!(
                    "JPEG: {comps} components (JPEG output is gray or RGB, no alpha)"
                )))
            }
        };
        if width == 0 || height == 0 || width > 65500 || height > 65500 {
            return Err(Error::unsupported(format!(
                "JPEG: {width}x{height} is outside 1..65500 pixels a side"
            )));
        }
        let enc = guarded(|| -> Result<_, Error> {
            let mut c = Compress::new_err(Box::new(strict_errors()), cs);
            // libjpeg-turbo's settings: baseline, one pass (mozjpeg's default would be
            // progressive with trellis, which holds every coefficient before writing).
            c.set_fastest_defaults();
            c.set_size(width as usize, height as usize);
            c.set_quality(f32::from(quality.clamp(1, 100)));
            if comps == 3 && quality >= 90 {
                c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1));
            }
            if let Some((x, y)) = ppm {
                let whole = |v: f64| (v - v.round()).abs() < 1e-3;
                let (dx, dy) = (x * 0.0254, y * 0.0254);
                let (unit, x, y) = if whole(dx) && whole(dy) {
                    (mozjpeg::PixelDensityUnit::Inches, dx, dy)
                } else {
                    (mozjpeg::PixelDensityUnit::Centimeters, x / 100.0, y / 100.0)
                };
                let d = |v: f64| v.round().clamp(1.0, 65535.0) as u16;
                c.set_pixel_density(mozjpeg::PixelDensity {
                    unit,
                    x: d(x),
                    y: d(y),
                });
            }
            let mut s = c
                .start_compress(out)
                .map_err(|e| Error::new(ErrorKind::Io, format!("JPEG write: {e}")))?;
            if let Some(p) = icc.filter(|p| !p.is_empty()) {
                s.write_icc_profile(p);
            }
            Ok(s)
        })
        .map_err(write_err)??;
        Ok(JpegWriter {
            enc: Some(enc),
            width,
            comps,
            rows_left: height,
            row: Vec::new(),
        })
    }

    /// Write whole rows, interleaved (a multiple of `width * comps` bytes).
    pub fn write_rows(&mut self, rows: &[u8]) -> Result<(), Error> {
        let line = self.width as usize * self.comps;
        let n = (rows.len() / line) as u32;
        if !rows.len().is_multiple_of(line) || n > self.rows_left {
            return Err(Error::new(
                ErrorKind::Internal,
                "JPEG write: rows do not fit the image",
            ));
        }
        let enc = self
            .enc
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "JPEG write: already failed"))?;
        let r = guarded(|| enc.write_scanlines(rows)).map_err(write_err);
        match r {
            Ok(Ok(())) => {
                self.rows_left -= n;
                Ok(())
            }
            Ok(Err(e)) => {
                self.enc = None;
                Err(Error::new(ErrorKind::Io, format!("JPEG write: {e}")))
            }
            Err(e) => {
                self.enc = None;
                Err(e)
            }
        }
    }

    /// Finish the file once every row is written; returns the writer.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.rows_left != 0 {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("JPEG write: {} rows missing", self.rows_left),
            ));
        }
        let enc = self
            .enc
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "JPEG write: already failed"))?;
        guarded(|| enc.finish())
            .map_err(write_err)?
            .map_err(|e| Error::new(ErrorKind::Io, format!("JPEG write: {e}")))
    }
}

/// Bands of 8-bit gray or RGB (no alpha: JPEG has none), interleaved a row at a time.
impl<W: Write> RowSink for JpegWriter<W> {
    fn write_band(&mut self, band: &Band) -> Result<(), Error> {
        if band.width != self.width
            || band.planes.len() != self.comps
            || band.sample_bytes != 1
            || band.rows > self.rows_left
        {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "JPEG writer: a band of {} x {} components of {} bytes does not follow \
                     the {}-wide, {}-component 8-bit image ({} rows left)",
                    band.width,
                    band.planes.len(),
                    band.sample_bytes,
                    self.width,
                    self.comps,
                    self.rows_left
                ),
            ));
        }
        let w = self.width as usize;
        let mut row = std::mem::take(&mut self.row);
        row.resize(w * self.comps, 0);
        let mut r = Ok(());
        for y in 0..band.rows as usize {
            match self.comps {
                1 => row.copy_from_slice(&band.planes[0][y * w..(y + 1) * w]),
                _ => {
                    let (a, b, c) = (
                        &band.planes[0][y * w..(y + 1) * w],
                        &band.planes[1][y * w..(y + 1) * w],
                        &band.planes[2][y * w..(y + 1) * w],
                    );
                    for (((px, &x), &y), &z) in row.chunks_exact_mut(3).zip(a).zip(b).zip(c) {
                        px.copy_from_slice(&[x, y, z]);
                    }
                }
            }
            r = self.write_rows(&row);
            if r.is_err() {
                break;
            }
        }
        self.row = row;
        r
    }

    fn finish(self: Box<Self>) -> Result<(), Error> {
        let mut w = JpegWriter::finish(*self)?;
        w.flush()
            .map_err(|e| Error::new(ErrorKind::Io, format!("JPEG write: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, comps: usize, q: u8, icc: Option<&[u8]>) -> Vec<u8> {
        let mut j = JpegWriter::new(Vec::new(), w, h, comps, q, icc, None).unwrap();
        for y in 0..h {
            let row: Vec<u8> = (0..w as usize * comps)
                .map(|i| ((i as u32 * 3 + y * 5) % 256) as u8)
                .collect();
            j.write_rows(&row).unwrap();
        }
        j.finish().unwrap()
    }

    fn probe(b: &[u8]) -> Probe {
        membudget::probe::raster::probe_jpeg_reader(b).unwrap()
    }

    #[test]
    fn round_trip_scaled_with_icc() {
        let icc: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let b = encode(203, 101, 3, 92, Some(&icc));
        for d in SCALES {
            let mut r = JpegRows::open(&b[..], &probe(&b), d, 1 << 30).unwrap();
            assert_eq!(r.full, (203, 101));
            let g = r.geometry();
            assert_eq!(
                (g.width, g.height),
                (203u32.div_ceil(d), 101u32.div_ceil(d))
            );
            assert_eq!(r.icc.as_deref(), Some(&icc[..]), "ICC over two APP2 chunks");
            let mut band = Band::default();
            for y in 0..g.height {
                r.read_band(y, 1, &mut band).unwrap();
            }
            assert!(r.read_band(g.height, 1, &mut band).is_err());
        }
        assert_eq!(shrink_for(10240, 10240, 256, 256), 8);
        assert_eq!(shrink_for(1000, 800, 300, 240), 2);
        assert_eq!(shrink_for(1001, 800, 251, 200), 4);
    }

    /// Bands in, the same pixels out (within JPEG's loss), the density back in the unit
    /// written (whole dots per inch as inches, else per centimetre); bands that do not fit
    /// are refused.
    #[test]
    fn bands_and_density_round_trip() {
        for (ppm, want) in [(300.0 / 0.0254, (300, 254, 4)), (5100.0, (51, 1, 2))] {
            let (w, h) = (37u32, 21u32);
            let mut j = JpegWriter::new(Vec::new(), w, h, 3, 95, None, Some((ppm, ppm))).unwrap();
            let mut band = Band::default();
            let px = |c: usize, i: usize| (60 + c * 50 + i % 37) as u8;
            for (y0, rows) in [(0, 5), (5, 1), (6, 15)] {
                band.shape(y0, rows, w, 3, 1);
                for (c, p) in band.planes.iter_mut().enumerate() {
                    for (i, v) in p.iter_mut().enumerate() {
                        *v = px(c, i);
                    }
                }
                j.write_band(&band).unwrap();
            }
            band.shape(21, 1, w, 3, 1);
            assert!(j.write_band(&band).is_err(), "a row past the image");
            let b = j.finish().unwrap();
            let mut r = JpegRows::open(&b[..], &probe(&b), 1, 1 << 30).unwrap();
            let m = r.meta();
            assert_eq!((m.colour, m.bits), (Colour::Rgb, 8));
            let res = m.resolution.unwrap();
            assert_eq!(res.x, want);
            r.read_band(0, h, &mut band).unwrap();
            for (c, p) in band.planes.iter().enumerate() {
                for (i, &v) in p.iter().enumerate() {
                    assert!(v.abs_diff(px(c, i % 37)) <= 3, "{c} {i}: {v}");
                }
            }
        }
        let mut j = JpegWriter::new(Vec::new(), 8, 8, 1, 80, None, None).unwrap();
        let mut band = Band::default();
        band.shape(0, 8, 8, 1, 2);
        assert!(j.write_band(&band).is_err(), "16-bit band");
    }

    #[test]
    fn truncated_and_garbled_are_errors() {
        let b = encode(64, 64, 1, 80, None);
        let p = probe(&b);
        let mut r = JpegRows::open(&b[..b.len() / 2], &p, 1, 1 << 30).unwrap();
        let mut band = Band::default();
        let e = (0..64)
            .try_for_each(|y| r.read_band(y, 1, &mut band))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("Premature end"), "{e}");
        let e = JpegRows::open(&b"\xFF\xD8\xFF\xE0garbage"[..], &p, 1, 1 << 30).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt);
        assert!(JpegWriter::new(Vec::new(), 4, 4, 4, 80, None, None).is_err());
    }
}
