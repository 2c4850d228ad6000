//! The chain's stages, each a [`RowSource`] over the one before, pulled band by band by
//! the writer (or by a statistics pass): a lookup-table stage ([`LutStage`]) for point
//! operations, and a neighbourhood stage ([`Neigh`]) that reads its input through a
//! halo-aware [`Window`] and computes each band as the whole image would
//! ([`Kernel`]s: Gaussian blur, unsharp mask, median in [`crate::filters`], Lanczos
//! resampling in [`crate::resize`]). Rows of a band are computed side by side on the
//! rayon pool.

use crate::point::Lut;
use membudget::Error;
use raster::window::View;
use raster::{Band, Edge, Geometry, RowSource, Window};
use rayon::prelude::*;

/// A boxed source, as the window takes a sized one.
pub struct Dyn<'a>(pub Box<dyn RowSource + Send + 'a>);

impl std::fmt::Debug for Dyn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Dyn").field(&self.0.geometry()).finish()
    }
}

impl RowSource for Dyn<'_> {
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        self.0.read_band(y0, rows, band)
    }
}

/// One table per component (`None`: left alone, as alpha is).
pub struct LutStage<'a> {
    src: Box<dyn RowSource + Send + 'a>,
    luts: Vec<Option<Lut>>,
}

impl<'a> LutStage<'a> {
    /// `luts[c]` applied to component `c` of `src`.
    pub fn new(src: Box<dyn RowSource + Send + 'a>, luts: Vec<Option<Lut>>) -> Self {
        LutStage { src, luts }
    }
}

impl RowSource for LutStage<'_> {
    fn geometry(&self) -> Geometry {
        self.src.geometry()
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        self.src.read_band(y0, rows, band)?;
        let sb = band.sample_bytes;
        // Every component's chunks in one parallel job.
        let mut parts: Vec<(&Lut, &mut [u8])> = Vec::new();
        for (plane, lut) in band.planes.iter_mut().zip(&self.luts) {
            if let Some(lut) = lut {
                parts.extend(plane.chunks_mut(1 << 16).map(|p| (lut, p)));
            }
        }
        parts.into_par_iter().for_each(|(lut, p)| {
            if sb == 1 {
                // A table of 256 bytes: indexing by a byte needs no bounds check.
                let t: [u8; 256] =
                    std::array::from_fn(|i| lut.get(i).map_or(i as u8, |&v| v as u8));
                p.iter_mut().for_each(|v| *v = t[usize::from(*v)]);
            } else {
                for s in p.chunks_exact_mut(2) {
                    let v = lut[u16::from_ne_bytes([s[0], s[1]]) as usize];
                    s.copy_from_slice(&v.to_ne_bytes());
                }
            }
        });
        Ok(())
    }
}

impl std::fmt::Debug for LutStage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LutStage")
            .field("geometry", &self.src.geometry())
            .finish()
    }
}

/// A neighbourhood operation on one band of its input, seen with its halo.
pub trait Kernel: Sync + Send {
    /// Rows needed above and below each output row.
    fn halo(&self) -> u32;
    /// The output's geometry for an input of geometry `g`.
    fn out_geometry(&self, g: Geometry) -> Geometry;
    /// Compute the output rows this view's core rows give into `out` (shaped by the
    /// kernel: its `y0` and `rows`, possibly none).
    fn compute(&self, view: &View<'_>, g: Geometry, out: &mut Band);
}

/// A neighbourhood stage: its input through a window, its output served in order.
pub struct Neigh<'a, K: Kernel> {
    win: Window<Dyn<'a>>,
    kernel: K,
    g_in: Geometry,
    g_out: Geometry,
    /// Computed rows not yet served: `buf.y0 .. buf.y0 + buf.rows`.
    buf: Band,
}

impl<'a, K: Kernel> Neigh<'a, K> {
    /// `kernel` over `src`, whose bands of `band_rows` rows are read with the kernel's
    /// halo, rows outside the image by `edge`.
    pub fn new(src: Box<dyn RowSource + Send + 'a>, kernel: K, band_rows: u32, edge: Edge) -> Self {
        let g_in = src.geometry();
        let g_out = kernel.out_geometry(g_in);
        let win = Window::new(Dyn(src), band_rows, kernel.halo(), edge);
        Neigh {
            win,
            kernel,
            g_in,
            g_out,
            buf: Band {
                width: g_out.width,
                sample_bytes: g_out.sample_bytes,
                planes: vec![Vec::new(); g_out.comps],
                ..Band::default()
            },
        }
    }
}

impl<K: Kernel> std::fmt::Debug for Neigh<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neigh")
            .field("in", &self.g_in)
            .field("out", &self.g_out)
            .finish()
    }
}

impl<K: Kernel> RowSource for Neigh<'_, K> {
    fn geometry(&self) -> Geometry {
        self.g_out
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let g = self.g_out;
        if self.buf.rows == 0 && y0 == self.buf.y0 && rows > 0 {
            // Nothing held and the rows asked start where the next computed band does:
            // compute into `band`, and when that band is exactly the rows asked (the
            // reader's band height is the window's, as the chain plans it), no copy.
            if let Some(view) = self.win.next_band() {
                self.kernel.compute(&view?, self.g_in, band);
                if band.y0 == y0 && band.rows == rows {
                    self.buf.y0 = y0 + rows;
                    return Ok(());
                }
                // Other rows (a resize's): held, as they would have been, and served
                // from below.
                std::mem::swap(band, &mut self.buf);
            }
        }
        band.shape(y0, rows, g.width, g.comps, g.sample_bytes);
        let rl = band.row_len();
        let mut y = y0;
        while y < y0 + rows {
            if y >= self.buf.y0 + self.buf.rows {
                let view = match self.win.next_band() {
                    Some(v) => v?,
                    None => {
                        return Err(Error::new(
                            membudget::ErrorKind::Internal,
                            "stage: rows asked past the end",
                        ))
                    }
                };
                self.kernel.compute(&view, self.g_in, &mut self.buf);
                continue;
            }
            if y < self.buf.y0 {
                return Err(Error::new(
                    membudget::ErrorKind::Internal,
                    "stage: rows asked out of order",
                ));
            }
            // Copy what the buffer holds of the rows asked for.
            let from = y - self.buf.y0;
            let n = (self.buf.y0 + self.buf.rows - y).min(y0 + rows - y);
            for (dst, src) in band.planes.iter_mut().zip(&self.buf.planes) {
                let a = (y - y0) as usize * rl;
                let b = from as usize * rl;
                dst[a..a + n as usize * rl].copy_from_slice(&src[b..b + n as usize * rl]);
            }
            y += n;
        }
        Ok(())
    }
}

/// Sample `x` of a row of 1- or 2-byte samples, as a float.
#[inline]
pub fn get(row: &[u8], sb: usize, x: usize) -> f32 {
    if sb == 1 {
        f32::from(row[x])
    } else {
        f32::from(u16::from_ne_bytes([row[2 * x], row[2 * x + 1]]))
    }
}

/// Store `v` rounded and clamped to `0..=max` at sample `x`.
#[inline]
pub fn put(row: &mut [u8], sb: usize, x: usize, v: f32) {
    if sb == 1 {
        row[x] = (v + 0.5).clamp(0.0, 255.0) as u8;
    } else {
        let s = (v + 0.5).clamp(0.0, 65535.0) as u16;
        row[2 * x..2 * x + 2].copy_from_slice(&s.to_ne_bytes());
    }
}

/// For each padded column `-pad .. width + pad`, the image column standing there.
pub fn column_map(width: u32, pad: u32, edge: Edge) -> Vec<u32> {
    (-i64::from(pad)..i64::from(width + pad))
        .map(|v| edge.source_row(v, width).unwrap_or(0))
        .collect()
}
