//! Writers that take an image band by band, top to bottom, never whole: a striped or
//! tiled TIFF ([`TiffWriter`], Deflate, LZW, Zstd or none, with the horizontal predictor
//! when compressed, BigTIFF when the data may pass 4 GiB) and a PNG
//! ([`crate::png::PngWriter`]). Both carry what [`Meta`] says: ICC profile, resolution,
//! alpha.
//!
//! Memory: a TIFF writer holds a batch of strips (a few hundred KiB each, one batch per
//! thread pair) while they are compressed side by side on the rayon pool; a tiled one, a
//! row of tiles.

use crate::tiff::{Colour, Extra, Resolution};
use crate::{Band, Geometry};
use membudget::{Error, ErrorKind};
use rayon::prelude::*;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

/// What travels with the pixels from input to output.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Gray or RGB colour components.
    pub colour: Colour,
    /// What the component after the colour ones means.
    pub extra: Extra,
    /// Bits per sample (8 or 16).
    pub bits: u8,
    /// The ICC profile, copied untouched.
    pub icc: Option<Vec<u8>>,
    /// Capture resolution.
    pub resolution: Option<Resolution>,
}

impl Meta {
    /// Colour components (1 or 3); the others are extra (alpha).
    pub fn colour_comps(&self) -> usize {
        match self.colour {
            Colour::Gray => 1,
            Colour::Rgb => 3,
        }
    }
}

/// Where bands go: each call takes the next rows, in order.
pub trait RowSink {
    /// Write all rows of `band` (planar, as sources fill them).
    fn write_band(&mut self, band: &Band) -> Result<(), Error>;
    /// Write what is left and the trailer; the output is then complete.
    fn finish(self: Box<Self>) -> Result<(), Error>;
}

/// TIFF compression of the strips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// Deflate (zlib, code 8), horizontal predictor.
    Deflate,
    /// LZW (code 5), horizontal predictor.
    Lzw,
    /// Zstandard (code 50000, as libtiff writes it), horizontal predictor.
    Zstd,
}

impl Compression {
    /// The name as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Deflate => "deflate",
            Compression::Lzw => "lzw",
            Compression::Zstd => "zstd",
        }
    }
    fn code(self) -> u16 {
        match self {
            Compression::None => 1,
            Compression::Deflate => 8,
            Compression::Lzw => 5,
            Compression::Zstd => 50000,
        }
    }
    /// The compression of a TIFF compression code, when it is one written here.
    pub fn from_code(code: u16) -> Option<Compression> {
        match code {
            1 => Some(Compression::None),
            8 | 32946 => Some(Compression::Deflate),
            5 => Some(Compression::Lzw),
            50000 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Raw bytes per strip aimed at: small enough to hold a batch of them per thread, large
/// enough that Deflate compresses well.
pub const STRIP_BYTES: u64 = 256 << 10;

/// A classic TIFF must keep every offset below 4 GiB: data this large (raw, plus what a
/// compressor may add) goes to a BigTIFF.
const CLASSIC_LIMIT: u64 = (4 << 30) - (64 << 20);

/// libtiff's default Zstandard level (`ZSTD_LEVEL`), which vips also writes.
pub const ZSTD_LEVEL: i32 = 9;

/// A striped or tiled, chunky (interleaved), little-endian TIFF written band by band.
#[derive(Debug)]
pub struct TiffWriter<W: Write + Seek> {
    w: W,
    g: Geometry,
    meta: Meta,
    compression: Compression,
    big: bool,
    /// Rows per strip, or per tile when `tile` is set.
    rows_per_strip: u32,
    /// Tile width, when tiled: rows then gather until a whole row of tiles is there.
    tile: Option<u32>,
    /// Interleaved rows not yet written (whole strips, except at the end).
    pending: Vec<u8>,
    pending_rows: u32,
    /// Strips compressed at once.
    batch: usize,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    pos: u64,
    rows_written: u32,
    /// Where the parallel work (interleaving, compressing) runs when the caller is not
    /// in a pool: the writes then stay on the calling thread, beside the pool's work.
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl<W: Write + Seek> TiffWriter<W> {
    /// Start a TIFF of geometry `g` (1 or 2 bytes per sample) at the start of `w`.
    pub fn new(w: W, g: Geometry, meta: Meta, compression: Compression) -> Result<Self, Error> {
        let raw = u64::from(g.width) * g.comps as u64 * g.sample_bytes as u64 * u64::from(g.height);
        // Deflate and LZW may grow incompressible data a little.
        let big = raw + raw / 16 + (1 << 20) > CLASSIC_LIMIT;
        Self::with_kind(w, g, meta, compression, big)
    }

    /// As [`TiffWriter::new`], BigTIFF when `big`.
    pub fn with_kind(
        mut w: W,
        g: Geometry,
        meta: Meta,
        compression: Compression,
        big: bool,
    ) -> Result<Self, Error> {
        if g.width == 0 || g.height == 0 || g.comps == 0 || !(1..=2).contains(&g.sample_bytes) {
            return Err(Error::new(
                ErrorKind::Internal,
                "TIFF writer: empty image or unsupported sample size",
            ));
        }
        let row_bytes = u64::from(g.width) * g.comps as u64 * g.sample_bytes as u64;
        let rows_per_strip = (STRIP_BYTES / row_bytes).clamp(1, u64::from(g.height)) as u32;
        let header: &[u8] = if big {
            &[b'I', b'I', 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            &[b'I', b'I', 42, 0, 0, 0, 0, 0]
        };
        w.write_all(header)?;
        Ok(TiffWriter {
            w,
            g,
            meta,
            compression,
            big,
            rows_per_strip,
            tile: None,
            pending: Vec::new(),
            pending_rows: 0,
            batch: 2 * rayon::current_num_threads().max(1),
            offsets: Vec::new(),
            counts: Vec::new(),
            pos: header.len() as u64,
            rows_written: 0,
            pool: None,
        })
    }

    /// Interleave and compress on `pool`, write on the calling thread: a caller outside
    /// the pool then writes one band while the pool computes the next. The batch of
    /// strips is sized by the pool's threads.
    pub fn in_pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.batch = 2 * pool.current_num_threads().max(1);
        self.pool = Some(pool);
        self
    }

    /// Write tiles of `width` x `height` (multiples of 16, as TIFF requires) instead of
    /// strips; before the first band. Rows are held until a row of tiles is complete,
    /// never more than that row of tiles and one band. Edge tiles are padded with zeros.
    pub fn tiled(mut self, width: u32, height: u32) -> Result<Self, Error> {
        if width == 0 || height == 0 || !width.is_multiple_of(16) || !height.is_multiple_of(16) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("TIFF tiles of {width}x{height}: sides must be multiples of 16"),
            ));
        }
        if self.rows_written > 0 {
            return Err(Error::new(
                ErrorKind::Internal,
                "TIFF writer: tiles asked for after the first band",
            ));
        }
        let g = self.g;
        let padded = u64::from(g.width.div_ceil(width))
            * u64::from(width)
            * u64::from(g.height.div_ceil(height))
            * u64::from(height)
            * g.comps as u64
            * g.sample_bytes as u64;
        if !self.big && padded + padded / 16 + (1 << 20) > CLASSIC_LIMIT {
            // Only the header is written yet: start again as a BigTIFF.
            let header = [b'I', b'I', 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            self.w.seek(SeekFrom::Start(0))?;
            self.w.write_all(&header)?;
            self.pos = header.len() as u64;
            self.big = true;
        }
        self.tile = Some(width);
        self.rows_per_strip = height;
        self.batch = 1;
        Ok(self)
    }

    /// Whether the file is a BigTIFF.
    pub fn is_big(&self) -> bool {
        self.big
    }

    fn row_bytes(&self) -> usize {
        self.g.width as usize * self.g.comps * self.g.sample_bytes
    }

    /// Compress and write the whole strips held (`all`: and the short last one).
    fn flush(&mut self, all: bool) -> Result<(), Error> {
        let strip_len = self.rows_per_strip as usize * self.row_bytes();
        let whole = self.pending.len() / strip_len;
        let n = if all {
            self.pending.len().div_ceil(strip_len)
        } else {
            whole
        };
        if n == 0 {
            return Ok(());
        }
        let end = (n * strip_len).min(self.pending.len());
        let (comp, sb, spp, rb) = (
            self.compression,
            self.g.sample_bytes,
            self.g.comps,
            self.row_bytes(),
        );
        if comp == Compression::None && self.tile.is_none() {
            // Stored as is: written from the rows held, no copy per strip.
            self.w.write_all(&self.pending[..end])?;
            for strip in self.pending[..end].chunks(strip_len) {
                self.offsets.push(self.pos);
                self.counts.push(strip.len() as u64);
                self.pos += strip.len() as u64;
            }
            return self.written(end);
        }
        let pool = self.pool.clone();
        let encoded: Vec<Result<Vec<u8>, Error>> = in_pool(pool.as_deref(), || match self.tile {
            None => self.pending[..end]
                .par_chunks(strip_len)
                .map(|strip| encode_strip(strip, comp, sb, spp, rb))
                .collect(),
            Some(tw) => {
                // Tile by tile, row of tiles after row of tiles, each padded to full size.
                let (th, px) = (self.rows_per_strip as usize, spp * sb);
                let across = self.g.width.div_ceil(tw) as usize;
                let tile_rb = tw as usize * px;
                let pending = &self.pending[..end];
                (0..n * across)
                    .into_par_iter()
                    .map(|i| {
                        let (ty, tx) = (i / across, i % across);
                        let mut tile = vec![0u8; th * tile_rb];
                        let x0 = tx * tile_rb;
                        let take = tile_rb.min(rb - x0);
                        for r in 0..th {
                            let Some(src) = pending.get((ty * th + r) * rb..(ty * th + r + 1) * rb)
                            else {
                                break;
                            };
                            tile[r * tile_rb..r * tile_rb + take]
                                .copy_from_slice(&src[x0..x0 + take]);
                        }
                        encode_strip(&tile, comp, sb, spp, tile_rb)
                    })
                    .collect()
            }
        });
        for e in encoded {
            let data = e?;
            self.w.write_all(&data)?;
            self.offsets.push(self.pos);
            self.counts.push(data.len() as u64);
            self.pos += data.len() as u64;
        }
        self.written(end)
    }

    /// The first `end` bytes of the rows held are written: drop them.
    fn written(&mut self, end: usize) -> Result<(), Error> {
        if !self.big && self.pos > u64::from(u32::MAX) {
            return Err(Error::new(
                ErrorKind::Internal,
                "TIFF writer: classic TIFF past 4 GiB",
            ));
        }
        self.pending.drain(..end);
        self.pending_rows -= (end / self.row_bytes()) as u32;
        Ok(())
    }

    fn finish_inner(mut self) -> Result<W, Error> {
        if self.rows_written != self.g.height {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "TIFF writer: {} rows written of {}",
                    self.rows_written, self.g.height
                ),
            ));
        }
        self.flush(true)?;
        let entries = self.ifd();
        // The IFD starts on a word boundary.
        if self.pos % 2 == 1 {
            self.w.write_all(&[0])?;
            self.pos += 1;
        }
        let ifd_at = self.pos;
        let bytes = layout_ifd(&entries, ifd_at, self.big);
        self.w.write_all(&bytes)?;
        if self.big {
            self.w.seek(SeekFrom::Start(8))?;
            self.w.write_all(&ifd_at.to_le_bytes())?;
        } else {
            self.w.seek(SeekFrom::Start(4))?;
            self.w.write_all(&(ifd_at as u32).to_le_bytes())?;
        }
        self.w.flush()?;
        Ok(self.w)
    }

    /// The directory's entries, sorted by tag.
    fn ifd(&self) -> Vec<Entry> {
        let g = &self.g;
        let short = |tag, v: &[u16]| Entry {
            tag,
            ty: 3,
            count: v.len() as u64,
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        let long = |tag, v: u32| Entry {
            tag,
            ty: 4,
            count: 1,
            data: v.to_le_bytes().to_vec(),
        };
        let offsets = |tag, v: &[u64]| {
            if self.big {
                Entry {
                    tag,
                    ty: 16,
                    count: v.len() as u64,
                    data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                }
            } else {
                Entry {
                    tag,
                    ty: 4,
                    count: v.len() as u64,
                    data: v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
                }
            }
        };
        let bits = (g.sample_bytes * 8) as u16;
        let mut e = vec![
            long(256, g.width),
            long(257, g.height),
            short(258, &vec![bits; g.comps]),
            short(259, &[self.compression.code()]),
            short(
                262,
                &[match self.meta.colour {
                    Colour::Gray => 1,
                    Colour::Rgb => 2,
                }],
            ),
            short(277, &[g.comps as u16]),
        ];
        match self.tile {
            None => e.extend([
                offsets(273, &self.offsets),
                long(278, self.rows_per_strip),
                offsets(279, &self.counts),
            ]),
            Some(tw) => e.extend([
                long(322, tw),
                long(323, self.rows_per_strip),
                offsets(324, &self.offsets),
                offsets(325, &self.counts),
            ]),
        }
        if let Some(r) = &self.meta.resolution {
            // Per centimetre: pixels per metre / 100, kept as a fraction.
            let rational = |(n, d, exp): (u32, u32, i8)| -> Vec<u8> {
                let (n, d) = to_rational(u64::from(n), u64::from(d), i32::from(exp) - 2);
                [n.to_le_bytes(), d.to_le_bytes()].concat()
            };
            e.push(Entry {
                tag: 282,
                ty: 5,
                count: 1,
                data: rational(r.x),
            });
            e.push(Entry {
                tag: 283,
                ty: 5,
                count: 1,
                data: rational(r.y),
            });
        }
        e.push(short(284, &[1]));
        if self.meta.resolution.is_some() {
            e.push(short(296, &[3]));
        }
        if self.compression != Compression::None {
            e.push(short(317, &[2]));
        }
        let extras = g.comps.saturating_sub(self.meta.colour_comps());
        if extras > 0 {
            let first = match self.meta.extra {
                Extra::Premultiplied => 1,
                Extra::Alpha => 2,
                Extra::None | Extra::Unspecified => 0,
            };
            let mut v = vec![0u16; extras];
            v[0] = first;
            e.push(short(338, &v));
        }
        e.push(short(339, &vec![1; g.comps]));
        if let Some(icc) = &self.meta.icc {
            e.push(Entry {
                tag: 34675,
                ty: 7,
                count: icc.len() as u64,
                data: icc.clone(),
            });
        }
        e.sort_by_key(|x| x.tag);
        e
    }
}

/// `n / d * 10^exp` as a TIFF rational of two u32, exact when it fits.
fn to_rational(n: u64, d: u64, exp: i32) -> (u32, u32) {
    let (mut n, mut d) = (u128::from(n), u128::from(d));
    if exp >= 0 {
        n *= 10u128.pow(exp as u32);
    } else {
        d *= 10u128.pow((-exp) as u32);
    }
    let g = {
        let (mut a, mut b) = (n, d);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a.max(1)
    };
    (n, d) = (n / g, d / g);
    while n > u128::from(u32::MAX) || d > u128::from(u32::MAX) {
        n = (n / 2).max(1);
        d = (d / 2).max(1);
    }
    (n as u32, d as u32)
}

/// One directory entry: tag, TIFF type, count, little-endian values.
struct Entry {
    tag: u16,
    ty: u16,
    count: u64,
    data: Vec<u8>,
}

/// The IFD at file offset `at`, followed by the values too large for their entries.
fn layout_ifd(entries: &[Entry], at: u64, big: bool) -> Vec<u8> {
    let (count_len, entry_len, inline, next_len) = if big { (8, 20, 8, 8) } else { (2, 12, 4, 4) };
    let head = count_len + entries.len() * entry_len + next_len;
    let mut out = Vec::with_capacity(head);
    let mut extra: Vec<u8> = Vec::new();
    if big {
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.ty.to_le_bytes());
        if big {
            out.extend_from_slice(&e.count.to_le_bytes());
        } else {
            out.extend_from_slice(&(e.count as u32).to_le_bytes());
        }
        if e.data.len() <= inline {
            let mut v = e.data.clone();
            v.resize(inline, 0);
            out.extend_from_slice(&v);
        } else {
            let off = at + head as u64 + extra.len() as u64;
            if big {
                out.extend_from_slice(&off.to_le_bytes());
            } else {
                out.extend_from_slice(&(off as u32).to_le_bytes());
            }
            extra.extend_from_slice(&e.data);
            if extra.len() % 2 == 1 {
                extra.push(0);
            }
        }
    }
    out.extend_from_slice(&vec![0u8; next_len]);
    out.extend_from_slice(&extra);
    out
}

/// `f` on `pool` when given, else where the caller is.
fn in_pool<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// One strip of interleaved little-endian rows, predicted and compressed.
fn encode_strip(
    strip: &[u8],
    comp: Compression,
    sample_bytes: usize,
    spp: usize,
    row_bytes: usize,
) -> Result<Vec<u8>, Error> {
    if comp == Compression::None {
        return Ok(strip.to_vec());
    }
    // Horizontal differencing (TIFF predictor 2), sample by sample of the same component.
    let mut data = strip.to_vec();
    for row in data.chunks_exact_mut(row_bytes) {
        if sample_bytes == 1 {
            for i in (spp..row.len()).rev() {
                row[i] = row[i].wrapping_sub(row[i - spp]);
            }
        } else {
            let n = row.len() / 2;
            for i in (spp..n).rev() {
                let cur = u16::from_le_bytes([row[2 * i], row[2 * i + 1]]);
                let j = i - spp;
                let prev = u16::from_le_bytes([row[2 * j], row[2 * j + 1]]);
                row[2 * i..2 * i + 2].copy_from_slice(&cur.wrapping_sub(prev).to_le_bytes());
            }
        }
    }
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, format!("compressing a strip: {e}"));
    match comp {
        Compression::Deflate => {
            let mut z = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::new(6),
            );
            z.write_all(&data).map_err(io)?;
            z.finish().map_err(io)
        }
        Compression::Lzw => weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(&data)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("LZW: {e}"))),
        Compression::Zstd => zstd::bulk::compress(&data, ZSTD_LEVEL).map_err(io),
        Compression::None => Ok(data),
    }
}

impl<W: Write + Seek> RowSink for TiffWriter<W> {
    fn write_band(&mut self, band: &Band) -> Result<(), Error> {
        let g = self.g;
        if band.width != g.width
            || band.planes.len() != g.comps
            || band.sample_bytes != g.sample_bytes
            || band.y0 != self.rows_written
            || self.rows_written + band.rows > g.height
        {
            return Err(Error::new(
                ErrorKind::Internal,
                "TIFF writer: band does not follow the image",
            ));
        }
        let (w, comps, sb) = (g.width as usize, g.comps, g.sample_bytes);
        let rb = self.row_bytes();
        let start = self.pending.len();
        self.pending.resize(start + rb * band.rows as usize, 0);
        let out = &mut self.pending[start..];
        in_pool(self.pool.as_deref(), || {
            out.par_chunks_mut(rb).enumerate().for_each(|(r, row)| {
                let line = |c: usize| &band.planes[c][r * w * sb..(r + 1) * w * sb];
                // The common cases pixel by pixel (contiguous stores).
                match (sb, comps) {
                    (1, 1) => return row.copy_from_slice(line(0)),
                    (1, 3) => {
                        let (a, b, c) = (line(0), line(1), line(2));
                        for (((px, &x), &y), &z) in row.chunks_exact_mut(3).zip(a).zip(b).zip(c) {
                            px.copy_from_slice(&[x, y, z]);
                        }
                        return;
                    }
                    _ => {}
                }
                for (c, plane) in band.planes.iter().enumerate() {
                    let src = &plane[r * w * sb..(r + 1) * w * sb];
                    if sb == 1 {
                        for (x, &v) in src.iter().enumerate() {
                            row[x * comps + c] = v;
                        }
                    } else {
                        for x in 0..w {
                            let v = u16::from_ne_bytes([src[2 * x], src[2 * x + 1]]);
                            let at = 2 * (x * comps + c);
                            row[at..at + 2].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            })
        });
        self.pending_rows += band.rows;
        self.rows_written += band.rows;
        if self.pending_rows as usize >= self.batch * self.rows_per_strip as usize {
            self.flush(false)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), Error> {
        self.finish_inner().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written band by band in every kind and compression, read back whole by the tiff
    /// crate's decoder (not ours).
    #[test]
    fn tiffs_read_back_with_the_tiff_crate() {
        let mut rng = testkit::Rng::new(5);
        for (comps, sb) in [(1usize, 1usize), (3, 1), (4, 2), (2, 2)] {
            let (w, h) = (37u32, 29u32);
            let g = Geometry {
                width: w,
                height: h,
                comps,
                sample_bytes: sb,
            };
            let n = (w * h) as usize;
            // Smooth data with noise: the predictor has something to do.
            let vals: Vec<Vec<u16>> = (0..comps)
                .map(|c| {
                    (0..n)
                        .map(|i| {
                            let base = (i % w as usize * 3 + c * 40) as u64;
                            let v = base + rng.below(7);
                            if sb == 1 {
                                (v % 256) as u16
                            } else {
                                (v * 251 % 65536) as u16
                            }
                        })
                        .collect()
                })
                .collect();
            for comp in [Compression::None, Compression::Deflate, Compression::Lzw] {
                for big in [false, true] {
                    let meta = Meta {
                        colour: if comps >= 3 {
                            Colour::Rgb
                        } else {
                            Colour::Gray
                        },
                        extra: if comps == 2 || comps == 4 {
                            Extra::Alpha
                        } else {
                            Extra::None
                        },
                        bits: 8 * sb as u8,
                        icc: Some(vec![7; 300]),
                        resolution: None,
                    };
                    let mut out = std::io::Cursor::new(Vec::new());
                    let mut wr = TiffWriter::with_kind(&mut out, g, meta, comp, big).unwrap();
                    // Bands of uneven heights.
                    let mut y = 0;
                    for rows in [1u32, 5, 13, 10].iter().cycle() {
                        if y >= h {
                            break;
                        }
                        let rows = (*rows).min(h - y);
                        let mut band = Band::default();
                        band.shape(y, rows, w, comps, sb);
                        for (c, plane) in band.planes.iter_mut().enumerate() {
                            for i in 0..(rows * w) as usize {
                                let v = vals[c][y as usize * w as usize + i];
                                if sb == 1 {
                                    plane[i] = v as u8;
                                } else {
                                    plane[2 * i..2 * i + 2].copy_from_slice(&v.to_ne_bytes());
                                }
                            }
                        }
                        wr.write_band(&band).unwrap();
                        y += rows;
                    }
                    Box::new(wr).finish().unwrap();
                    let bytes = out.into_inner();
                    assert_eq!(bytes[2], if big { 43 } else { 42 });
                    let mut d = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).unwrap();
                    assert_eq!(d.dimensions().unwrap(), (w, h));
                    let got: Vec<u16> = match d.read_image().unwrap() {
                        tiff::decoder::DecodingResult::U8(v) => {
                            v.into_iter().map(u16::from).collect()
                        }
                        tiff::decoder::DecodingResult::U16(v) => v,
                        _ => panic!("unexpected sample type"),
                    };
                    for i in 0..n {
                        for c in 0..comps {
                            assert_eq!(
                                got[i * comps + c],
                                vals[c][i],
                                "{comps}x{sb} {comp:?} big={big} at {i},{c}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Zstd and tiled output (every compression, classic and BigTIFF, 8 and 16 bits, edge
    /// tiles), read back by tifffile (imagecodecs' libzstd, not ours): equal samples, and
    /// the tags libtiff writes (Compression 50000, Predictor 2, TileWidth/TileLength).
    #[test]
    fn zstd_and_tiled_tiffs_read_back_with_tifffile() {
        let Some(py) = testkit::python(&["tifffile", "numpy", "imagecodecs"]) else {
            return;
        };
        let dir = testkit::tempdir();
        let mut rng = testkit::Rng::new(11);
        let mut files = Vec::new();
        let cases = [
            (3usize, 1usize, Compression::Zstd, None, false),
            (2, 2, Compression::Zstd, None, true),
            (3, 1, Compression::Zstd, Some((16u32, 32u32)), false),
            (1, 2, Compression::Deflate, Some((32, 16)), true),
            (4, 1, Compression::None, Some((48, 16)), false),
            (3, 1, Compression::Lzw, Some((64, 64)), false),
        ];
        for (k, &(comps, sb, comp, tile, big)) in cases.iter().enumerate() {
            let (w, h) = (45u32, 37u32);
            let g = Geometry {
                width: w,
                height: h,
                comps,
                sample_bytes: sb,
            };
            let raw: Vec<u8> = (0..(w * h) as usize * comps * sb)
                .map(|i| (i / 7 % 200) as u8 + rng.below(9) as u8)
                .collect();
            let meta = Meta {
                colour: if comps >= 3 {
                    Colour::Rgb
                } else {
                    Colour::Gray
                },
                extra: if comps % 2 == 0 {
                    Extra::Alpha
                } else {
                    Extra::None
                },
                bits: 8 * sb as u8,
                icc: None,
                resolution: None,
            };
            let path = dir.path().join(format!("{k}.tif"));
            let file = std::fs::File::create(&path).unwrap();
            let mut wr = TiffWriter::with_kind(file, g, meta, comp, big).unwrap();
            if let Some((tw, th)) = tile {
                wr = wr.tiled(tw, th).unwrap();
            }
            let mut y = 0;
            for rows in [3u32, 1, 20, 5].iter().cycle() {
                if y >= h {
                    break;
                }
                let rows = (*rows).min(h - y);
                let mut band = Band::default();
                band.shape(y, rows, w, comps, sb);
                let px = comps * sb;
                for (c, plane) in band.planes.iter_mut().enumerate() {
                    for i in 0..(rows * w) as usize {
                        let at = (y as usize * w as usize + i) * px + c * sb;
                        let v = if sb == 1 {
                            u16::from(raw[at])
                        } else {
                            u16::from_le_bytes([raw[at], raw[at + 1]])
                        };
                        if sb == 1 {
                            plane[i] = v as u8;
                        } else {
                            plane[2 * i..2 * i + 2].copy_from_slice(&v.to_ne_bytes());
                        }
                    }
                }
                wr.write_band(&band).unwrap();
                y += rows;
            }
            Box::new(wr).finish().unwrap();
            let raw_path = dir.path().join(format!("{k}.raw"));
            std::fs::write(&raw_path, &raw).unwrap();
            let (tw, th) = tile.unwrap_or((0, 0));
            files.extend([
                path.display().to_string(),
                raw_path.display().to_string(),
                format!("{comps},{sb},{},{tw},{th},{}", comp.code(), u8::from(big)),
            ]);
        }
        let out = testkit::run_python(
            &py,
            "import sys, numpy as np, tifffile\n\
             a = sys.argv[1:]\n\
             for i in range(0, len(a), 3):\n\
             \x20   comps, sb, code, tw, th, big = map(int, a[i + 2].split(','))\n\
             \x20   with tifffile.TiffFile(a[i]) as t:\n\
             \x20       p = t.pages[0]\n\
             \x20       got = p.asarray()\n\
             \x20       assert t.is_bigtiff == bool(big), a[i]\n\
             \x20       assert p.compression == code, (a[i], p.compression)\n\
             \x20       assert p.predictor == (1 if code == 1 else 2), a[i]\n\
             \x20       assert (p.tilewidth, p.tilelength) == (tw, th), a[i]\n\
             \x20   want = np.fromfile(a[i + 1], dtype='<u2' if sb == 2 else 'u1')\n\
             \x20   want = want.reshape(37, 45, comps).squeeze()\n\
             \x20   assert got.shape == want.shape and np.array_equal(got, want), a[i]\n\
             print('ok', len(a) // 3)",
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(out.trim(), format!("ok {}", cases.len()));
    }

    #[test]
    fn tile_sides_must_be_multiples_of_16() {
        let g = Geometry {
            width: 10,
            height: 10,
            comps: 1,
            sample_bytes: 1,
        };
        let meta = Meta {
            colour: Colour::Gray,
            extra: Extra::None,
            bits: 8,
            icc: None,
            resolution: None,
        };
        for (tw, th) in [(24, 16), (16, 0), (0, 16), (8, 8)] {
            let wr = TiffWriter::new(
                std::io::Cursor::new(Vec::new()),
                g,
                meta.clone(),
                Compression::Zstd,
            )
            .unwrap();
            assert!(wr.tiled(tw, th).is_err(), "{tw}x{th}");
        }
    }
}
