//! The halo-aware sliding window: an image read band by band, each band seen with `halo`
//! rows above and below it, so a neighbourhood operation (a blur, a LoG, a resampler)
//! computes its band exactly as it would on the whole image.
//!
//! Rows outside the image come from the edge rule; rows inside it are read from the
//! source once, in order, even where the halos of two bands overlap: the window keeps the
//! rows the next band still needs and asks the source only for new ones. Memory held: the
//! rows of one band plus its halos, and a read buffer of at most [`READ_ROWS`] rows.

use crate::{Band, RowSource};
use membudget::Error;

/// Rows read from the source at once into the window's read buffer.
pub const READ_ROWS: u32 = 64;

/// What stands for rows outside the image. Each matches the whole-image rule of the
/// operations that use it (numpy.pad's modes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The first or last row repeated (`edge`; scipy.ndimage `nearest`).
    Replicate,
    /// Reflected about the edge row, which is not repeated: ... 2 1 | 0 1 2 ...
    /// (`reflect`; scipy.ndimage `mirror`).
    Mirror,
    /// Zeros (`constant` 0).
    Zero,
}

impl Edge {
    /// The image row that stands at row `v` (which may lie outside `0..height`), or
    /// `None` for a zero row. `height` is at least 1.
    pub fn source_row(self, v: i64, height: u32) -> Option<u32> {
        let h = i64::from(height);
        if (0..h).contains(&v) {
            return Some(v as u32);
        }
        match self {
            Edge::Zero => None,
            Edge::Replicate => Some(v.clamp(0, h - 1) as u32),
            Edge::Mirror => {
                if h == 1 {
                    return Some(0);
                }
                // Reflection is periodic with period 2(h - 1).
                let period = 2 * (h - 1);
                let m = v.rem_euclid(period);
                Some((if m < h { m } else { period - m }) as u32)
            }
        }
    }
}

/// A sliding window over a [`RowSource`]; see the module documentation.
#[derive(Debug)]
pub struct Window<S> {
    src: S,
    band_rows: u32,
    halo: u32,
    edge: Edge,
    /// First core row of the next band.
    next: u32,
    /// Image rows `held_lo .. held_lo + held.rows`, in one band.
    held: Band,
    held_lo: u32,
    /// The source's rows arrive here, then are appended to `held`.
    read: Band,
    /// For each row of the current view (halo included), the held row standing there.
    map: Vec<Option<u32>>,
    zero: Vec<u8>,
}

/// One band of the window: core rows `y0 .. y0 + rows` of the image, with `halo` rows
/// above and below.
#[derive(Debug)]
pub struct View<'a> {
    /// First core row in the image.
    pub y0: u32,
    /// Core rows.
    pub rows: u32,
    /// Halo rows on each side.
    pub halo: u32,
    held: &'a Band,
    map: &'a [Option<u32>],
    zero: &'a [u8],
}

impl<S: RowSource> Window<S> {
    /// A window of bands of `band_rows` core rows (at least 1) with `halo` rows each side.
    pub fn new(src: S, band_rows: u32, halo: u32, edge: Edge) -> Window<S> {
        let g = src.geometry();
        Window {
            src,
            band_rows: band_rows.max(1),
            halo,
            edge,
            next: 0,
            held: Band {
                width: g.width,
                sample_bytes: g.sample_bytes,
                planes: vec![Vec::new(); g.comps],
                ..Band::default()
            },
            held_lo: 0,
            read: Band::default(),
            map: Vec::new(),
            zero: vec![0; g.width as usize * g.sample_bytes],
        }
    }

    /// The source, for what the window does not cover (its image info).
    pub fn source(&self) -> &S {
        &self.src
    }

    /// The next band, or `None` after the last. A lending iterator: the view borrows the
    /// window until it is dropped.
    pub fn next_band(&mut self) -> Option<Result<View<'_>, Error>> {
        let g = self.src.geometry();
        if self.next >= g.height || g.width == 0 {
            return None;
        }
        let y0 = self.next;
        let rows = self.band_rows.min(g.height - y0);
        self.next = y0 + rows;
        let (lo_v, hi_v) = (
            i64::from(y0) - i64::from(self.halo),
            i64::from(y0 + rows) + i64::from(self.halo),
        );
        // The image rows this view needs (the edge rule may reach back past the core).
        let mapped = || (lo_v..hi_v).filter_map(|v| self.edge.source_row(v, g.height));
        let need_lo = mapped().min().unwrap_or(y0);
        let need_hi = mapped().max().map_or(y0, |m| m + 1);
        if let Err(e) = self.hold(need_lo, need_hi) {
            return Some(Err(e));
        }
        self.map.clear();
        for v in lo_v..hi_v {
            let r = self.edge.source_row(v, g.height).map(|r| r - self.held_lo);
            self.map.push(r);
        }
        Some(Ok(View {
            y0,
            rows,
            halo: self.halo,
            held: &self.held,
            map: &self.map,
            zero: &self.zero,
        }))
    }

    /// Make `held` hold image rows `lo .. hi`: drop rows above `lo`, read the missing ones
    /// below from the source. Bands move down, so `lo` never goes back.
    fn hold(&mut self, lo: u32, hi: u32) -> Result<(), Error> {
        let g = self.src.geometry();
        let row_len = g.width as usize * g.sample_bytes;
        let held_hi = self.held_lo + self.held.rows;
        // Rows still held that this band needs (none when it starts past them).
        let keep_from = lo.max(self.held_lo).min(held_hi);
        let drop = (keep_from - self.held_lo) as usize;
        let keep = (held_hi - keep_from) as usize;
        for p in &mut self.held.planes {
            p.copy_within(drop * row_len..(drop + keep) * row_len, 0);
            p.truncate(keep * row_len);
        }
        self.held_lo = keep_from;
        self.held.rows = keep as u32;
        if keep == 0 {
            self.held_lo = lo;
        }
        let mut at = self.held_lo + self.held.rows;
        while at < hi {
            let n = READ_ROWS.min(hi - at);
            self.src.read_band(at, n, &mut self.read)?;
            if self.read.planes.len() != g.comps || self.read.row_len() != row_len {
                return Err(Error::new(
                    membudget::ErrorKind::Internal,
                    "source band does not match its geometry",
                ));
            }
            for (dst, src) in self.held.planes.iter_mut().zip(&self.read.planes) {
                dst.extend_from_slice(&src[..n as usize * row_len]);
            }
            self.held.rows += n;
            at += n;
        }
        self.held.y0 = self.held_lo;
        Ok(())
    }
}

impl View<'_> {
    /// Row `v` of component `c`, counted from the first core row (`-halo .. rows + halo`).
    pub fn row(&self, c: usize, v: i64) -> &[u8] {
        let i = usize::try_from(v + i64::from(self.halo)).unwrap_or(usize::MAX);
        match self.map.get(i).copied().flatten() {
            Some(r) => self.held.row(c, r),
            None => self.zero,
        }
    }

    /// Components.
    pub fn comps(&self) -> usize {
        self.held.planes.len()
    }

    /// Copy the view, halos included, into `out` (rows `y0 - halo ..`, as a band whose
    /// `y0` is the core's first row less the halo, saturating at 0).
    pub fn materialize(&self, out: &mut Band) {
        let total = self.rows + 2 * self.halo;
        out.shape(
            self.y0.saturating_sub(self.halo),
            total,
            self.held.width,
            self.comps(),
            self.held.sample_bytes,
        );
        let w = self.held.row_len();
        for c in 0..self.comps() {
            for i in 0..total as usize {
                let v = i as i64 - i64::from(self.halo);
                out.planes[c][i * w..(i + 1) * w].copy_from_slice(self.row(c, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    /// An image whose sample at (x, y, c) is a hash of them, counting reads of each row.
    struct Counting {
        g: Geometry,
        reads: Vec<u32>,
    }

    fn value(x: u32, y: u32, c: usize) -> u8 {
        (x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (c as u32 * 101)) as u8
    }

    impl RowSource for Counting {
        fn geometry(&self) -> Geometry {
            self.g
        }
        fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
            assert!(y0 + rows <= self.g.height, "read past the image");
            band.shape(y0, rows, self.g.width, self.g.comps, 1);
            for y in y0..y0 + rows {
                self.reads[y as usize] += 1;
                for c in 0..self.g.comps {
                    for x in 0..self.g.width {
                        band.planes[c][((y - y0) * self.g.width + x) as usize] = value(x, y, c);
                    }
                }
            }
            Ok(())
        }
    }

    /// The whole-image reference: the padded image, written independently of the window
    /// (numpy.pad's definitions of edge, reflect and constant).
    fn padded(width: u32, height: u32, halo: u32, edge: Edge, c: usize) -> Vec<Vec<u8>> {
        let h = i64::from(height);
        (-i64::from(halo)..h + i64::from(halo))
            .map(|v| {
                let mut r = v;
                let src = match edge {
                    Edge::Zero if !(0..h).contains(&v) => None,
                    Edge::Zero => Some(v),
                    Edge::Replicate => Some(v.max(0).min(h - 1)),
                    Edge::Mirror => {
                        // Bounce off the edges until inside (numpy's reflect).
                        while !(0..h).contains(&r) && h > 1 {
                            r = if r < 0 { -r } else { 2 * (h - 1) - r };
                        }
                        Some(if h == 1 { 0 } else { r })
                    }
                };
                (0..width)
                    .map(|x| src.map_or(0, |y| value(x, y as u32, c)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn bands_equal_the_padded_whole_image_and_rows_are_read_once() {
        for (height, band_rows, halo) in [
            (100, 7, 3),
            (100, 100, 5),
            (10, 3, 12),
            (1, 1, 2),
            (2, 5, 4),
            (65, 1, 0),
            (300, 16, 70),
        ] {
            for edge in [Edge::Replicate, Edge::Mirror, Edge::Zero] {
                let g = Geometry {
                    width: 5,
                    height,
                    comps: 2,
                    sample_bytes: 1,
                };
                let src = Counting {
                    g,
                    reads: vec![0; height as usize],
                };
                let mut w = Window::new(src, band_rows, halo, edge);
                let whole: Vec<_> = (0..2).map(|c| padded(5, height, halo, edge, c)).collect();
                let mut bands = 0;
                let mut next_y = 0;
                while let Some(view) = w.next_band() {
                    let view = view.unwrap();
                    assert_eq!(view.y0, next_y);
                    next_y += view.rows;
                    for (c, whole_c) in whole.iter().enumerate() {
                        for v in -i64::from(halo)..i64::from(view.rows + halo) {
                            let in_whole = (i64::from(view.y0) + v + i64::from(halo)) as usize;
                            assert_eq!(
                                view.row(c, v),
                                &whole_c[in_whole][..],
                                "h={height} band={band_rows} halo={halo} {edge:?} y0={} v={v}",
                                view.y0
                            );
                        }
                    }
                    let mut m = Band::default();
                    view.materialize(&mut m);
                    assert_eq!(m.rows, view.rows + 2 * halo);
                    bands += 1;
                }
                assert_eq!(next_y, height);
                assert_eq!(bands, height.div_ceil(band_rows));
                assert!(
                    w.source().reads.iter().all(|&n| n == 1),
                    "a row read more than once: {:?} ({edge:?}, halo {halo})",
                    w.source().reads
                );
            }
        }
    }

    #[test]
    fn memory_held_is_one_band_and_its_halos() {
        let g = Geometry {
            width: 3,
            height: 1000,
            comps: 1,
            sample_bytes: 1,
        };
        let src = Counting {
            g,
            reads: vec![0; 1000],
        };
        let mut w = Window::new(src, 10, 4, Edge::Mirror);
        while let Some(v) = w.next_band() {
            v.unwrap();
            assert!(w.held.rows <= 10 + 2 * 4);
            assert!(w.read.rows <= READ_ROWS);
        }
    }

    /// The edge rules against numpy.pad's modes (code no one here wrote).
    #[test]
    fn edge_rules_match_numpy_pad() {
        let Some(py) = testkit::python(&["numpy"]) else {
            return;
        };
        for (edge, mode) in [
            (Edge::Replicate, "edge"),
            (Edge::Mirror, "reflect"),
            (Edge::Zero, "constant"),
        ] {
            for (height, halo) in [(9u32, 4u32), (3, 7), (1, 3)] {
                let out = testkit::run_python(
                    &py,
                    "import sys, numpy as np\n\
                     h, k, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n\
                     a = np.arange(1, h + 1)\n\
                     print(' '.join(str(int(v) - 1) for v in np.pad(a, k, mode=mode)))",
                    &[&height.to_string(), &halo.to_string(), mode],
                );
                let ours: Vec<String> = (-i64::from(halo)..i64::from(height + halo))
                    .map(|v| edge.source_row(v, height).map_or(-1, i64::from).to_string())
                    .collect();
                assert_eq!(out.trim(), ours.join(" "), "{mode} h={height} halo={halo}");
            }
        }
    }
}
