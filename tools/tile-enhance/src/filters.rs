//! Neighbourhood filters on the colour components (alpha copied untouched): a separable
//! Gaussian blur with scipy.ndimage's kernel (radius `int(4 sigma + 0.5)`), the unsharp
//! mask built on it, and a square median. Columns and rows outside the image follow the
//! same edge rule, so each band equals the whole-image result.

use crate::stage::{column_map, get, put, Kernel};
use raster::window::View;
use raster::{Band, Edge, Geometry};
use rayon::prelude::*;

/// scipy.ndimage's Gaussian: weights `exp(-x^2 / 2 sigma^2)` for `|x| <= int(4 sigma +
/// 0.5)`, normalised. Returns the weights from the centre out (`w[0]` at 0).
pub fn gaussian_weights(sigma: f64) -> Vec<f32> {
    let r = (4.0 * sigma + 0.5) as i64;
    let phi: Vec<f64> = (0..=r)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = phi[0] + 2.0 * phi[1..].iter().sum::<f64>();
    phi.iter().map(|p| (p / sum) as f32).collect()
}

/// The separable Gaussian of core row `r` of component `c`, into `out` (floats).
/// `tmp` is scratch of `width + 2 radius`. Inlined into [`filter_row`]'s two builds.
#[inline(always)]
fn blur_row(
    view: &View<'_>,
    c: usize,
    r: i64,
    g: &Gauss,
    sb: usize,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    let w = out.len();
    let rad = g.w.len() - 1;
    // Vertical, symmetric taps paired.
    let mid = &mut tmp[rad..rad + w];
    let centre = view.row(c, r);
    if sb == 1 {
        // Block by block of columns, every tap on a block held in registers: one store
        // per sample instead of one load and store per tap. Each sample sees the same
        // float operations in the same order as tap after tap over the row would give;
        // p + q is summed as integers, exact, as its float sum of two bytes is.
        let pairs: Vec<(&[u8], &[u8])> = (1..=rad as i64)
            .map(|k| (&view.row(c, r - k)[..w], &view.row(c, r + k)[..w]))
            .collect();
        let pairs = &pairs[..];
        let centre = &centre[..w];
        let full = w / LANES * LANES;
        for x0 in (0..full).step_by(LANES) {
            vertical_block::<LANES>(&g.w, centre, pairs, x0, &mut mid[x0..x0 + LANES]);
        }
        for x0 in full..w {
            vertical_block::<1>(&g.w, centre, pairs, x0, &mut mid[x0..x0 + 1]);
        }
    } else {
        for (x, m) in mid.iter_mut().enumerate() {
            *m = g.w[0] * get(centre, 2, x);
        }
        for k in 1..=rad {
            let (a, b) = (view.row(c, r - k as i64), view.row(c, r + k as i64));
            let wk = g.w[k];
            for (x, m) in mid.iter_mut().enumerate() {
                *m += wk * (get(a, 2, x) + get(b, 2, x));
            }
        }
    }
    // Columns outside the image by the edge rule.
    for i in 0..rad {
        tmp[i] = tmp[rad + g.cols[i] as usize];
        tmp[rad + w + i] = tmp[rad + g.cols[rad + w + i] as usize];
    }
    // Horizontal, block by block as the vertical pass (the same order of operations as
    // tap after tap over the whole row).
    let full = w / LANES * LANES;
    for x0 in (0..full).step_by(LANES) {
        horizontal_block::<LANES>(&g.w, tmp, x0, &mut out[x0..x0 + LANES]);
    }
    for x0 in full..w {
        horizontal_block::<1>(&g.w, tmp, x0, &mut out[x0..x0 + 1]);
    }
}

/// Columns a block of the blur computes at once: four 8-lane AVX2 registers (32 took
/// 7% less CPU than 16 on the 10240^2 bench image).
const LANES: usize = 32;

/// The vertical pass on columns `x0 .. x0 + L` of 8-bit rows: `w[0] centre + w[k] (above
/// k + below k)`, k = 1, 2, ... in turn.
#[inline(always)]
fn vertical_block<const L: usize>(
    w: &[f32],
    centre: &[u8],
    pairs: &[(&[u8], &[u8])],
    x0: usize,
    out: &mut [f32],
) {
    let c: &[u8; L] = centre[x0..x0 + L].try_into().expect("L columns");
    let mut acc = [0f32; L];
    for i in 0..L {
        acc[i] = w[0] * f32::from(c[i]);
    }
    for (&(a, b), &wk) in pairs.iter().zip(&w[1..]) {
        let a: &[u8; L] = a[x0..x0 + L].try_into().expect("L columns");
        let b: &[u8; L] = b[x0..x0 + L].try_into().expect("L columns");
        for i in 0..L {
            acc[i] += wk * f32::from(u16::from(a[i]) + u16::from(b[i]));
        }
    }
    out.copy_from_slice(&acc);
}

/// The horizontal pass on columns `x0 .. x0 + L` of the padded row `tmp` (column x at
/// `tmp[x + radius]`).
#[inline(always)]
fn horizontal_block<const L: usize>(w: &[f32], tmp: &[f32], x0: usize, out: &mut [f32]) {
    let rad = w.len() - 1;
    let t: &[f32; L] = tmp[rad + x0..rad + x0 + L].try_into().expect("L columns");
    let mut acc = [0f32; L];
    for i in 0..L {
        acc[i] = w[0] * t[i];
    }
    for (k, &wk) in w.iter().enumerate().skip(1) {
        let a: &[f32; L] = tmp[rad + x0 - k..rad + x0 - k + L]
            .try_into()
            .expect("L columns");
        let b: &[f32; L] = tmp[rad + x0 + k..rad + x0 + k + L]
            .try_into()
            .expect("L columns");
        for i in 0..L {
            acc[i] += wk * (a[i] + b[i]);
        }
    }
    out.copy_from_slice(&acc);
}

/// Gaussian blur.
#[derive(Debug, Clone)]
pub struct Gauss {
    w: Vec<f32>,
    /// Padded column map (`-radius .. width + radius`).
    cols: Vec<u32>,
    /// Components filtered (the colour ones).
    colour: usize,
    /// The CPU has AVX2: [`filter_row`] runs its 8-lane build.
    avx2: bool,
}

impl Gauss {
    /// A blur of `sigma` for images `width` wide with `colour` colour components.
    pub fn new(sigma: f64, width: u32, colour: usize, edge: Edge) -> Gauss {
        let w = gaussian_weights(sigma);
        let cols = column_map(width, (w.len() - 1) as u32, edge);
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Gauss {
            w,
            cols,
            colour,
            avx2,
        }
    }
}

/// Copy the core rows of component `c` unchanged (alpha).
fn copy_plane(view: &View<'_>, c: usize, out: &mut [u8], rl: usize) {
    for (r, o) in out.chunks_exact_mut(rl).enumerate() {
        o.copy_from_slice(view.row(c, r as i64));
    }
}

/// Each core row of each colour component through `f(scratch, c, r, row)`, all
/// components in one parallel job (one wait per band, not one per component: on a busy
/// machine each wait costs a scheduling delay); `init` makes a scratch per worker.
fn per_row<T>(
    view: &View<'_>,
    g: Geometry,
    colour: usize,
    out: &mut Band,
    init: impl Fn() -> T + Sync + Send,
    f: impl Fn(&mut T, usize, i64, &mut [u8]) + Sync + Send,
) {
    out.shape(view.y0, view.rows, g.width, g.comps, g.sample_bytes);
    let rl = out.row_len();
    let mut rows: Vec<(usize, usize, &mut [u8])> = Vec::new();
    for (c, plane) in out.planes.iter_mut().enumerate() {
        if c >= colour {
            copy_plane(view, c, plane, rl);
            continue;
        }
        rows.extend(
            plane
                .chunks_exact_mut(rl)
                .enumerate()
                .map(|(r, row)| (c, r, row)),
        );
    }
    rows.into_par_iter()
        .with_min_len(4)
        .for_each_init(init, |t, (c, r, row)| f(t, c, r as i64, row));
}

/// Scratch rows of one worker: the padded vertical pass and the blurred row.
struct Scratch {
    tmp: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    fn new(g: &Gauss, width: usize) -> Scratch {
        Scratch {
            tmp: vec![0.0; width + 2 * (g.w.len() - 1)],
            out: vec![0.0; width],
        }
    }
}

/// Blur core row `r` of component `c` into `row`, or, with `sharpen` = (amount,
/// threshold), sharpen it by that blur. The same float operations in the same order
/// whichever build runs (no fused multiply-add), so results do not depend on the CPU.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter_row_body(
    view: &View<'_>,
    g: &Gauss,
    sb: usize,
    s: &mut Scratch,
    c: usize,
    r: i64,
    row: &mut [u8],
    sharpen: Option<(f32, f32)>,
) {
    blur_row(view, c, r, g, sb, &mut s.tmp, &mut s.out);
    match sharpen {
        None if sb == 1 => {
            for (d, &v) in row.iter_mut().zip(&s.out) {
                // As `put` rounds (`(v + 0.5).clamp(0, 255) as u8`), in a form that
                // vectorises: max/min map NaN to 0 (none arises from finite weights and
                // samples), and a value in 0..=255 truncates alike as i32 or u8.
                #[allow(clippy::manual_clamp)] // clamp keeps NaN, max does not
                let v = (v + 0.5).max(0.0).min(255.0);
                // SAFETY: `v` is finite and within 0..=255, so it fits an i32.
                *d = unsafe { v.to_int_unchecked::<i32>() } as u8;
            }
        }
        None => {
            for (x, &v) in s.out.iter().enumerate() {
                put(row, sb, x, v);
            }
        }
        Some((amount, threshold)) => {
            let src = view.row(c, r);
            for (x, &b) in s.out.iter().enumerate() {
                let v = get(src, sb, x);
                let d = v - b;
                let y = if d.abs() >= threshold {
                    v + amount * d
                } else {
                    v
                };
                put(row, sb, x, y);
            }
        }
    }
}

/// [`filter_row_body`] built for 8-lane AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn filter_row_avx2(
    view: &View<'_>,
    g: &Gauss,
    sb: usize,
    s: &mut Scratch,
    c: usize,
    r: i64,
    row: &mut [u8],
    sharpen: Option<(f32, f32)>,
) {
    filter_row_body(view, g, sb, s, c, r, row, sharpen);
}

/// [`filter_row_body`], on AVX2 when the CPU has it (the baseline build is SSE2).
#[allow(clippy::too_many_arguments)]
fn filter_row(
    view: &View<'_>,
    g: &Gauss,
    sb: usize,
    s: &mut Scratch,
    c: usize,
    r: i64,
    row: &mut [u8],
    sharpen: Option<(f32, f32)>,
) {
    #[cfg(target_arch = "x86_64")]
    if g.avx2 {
        // SAFETY: `avx2` was set by `is_x86_feature_detected!("avx2")` on this CPU.
        unsafe { filter_row_avx2(view, g, sb, s, c, r, row, sharpen) };
        return;
    }
    filter_row_body(view, g, sb, s, c, r, row, sharpen);
}

impl Kernel for Gauss {
    fn halo(&self) -> u32 {
        (self.w.len() - 1) as u32
    }
    fn out_geometry(&self, g: Geometry) -> Geometry {
        g
    }
    fn compute(&self, view: &View<'_>, g: Geometry, out: &mut Band) {
        let (w, sb) = (g.width as usize, g.sample_bytes);
        per_row(
            view,
            g,
            self.colour,
            out,
            || Scratch::new(self, w),
            |s, c, r, row| filter_row(view, self, sb, s, c, r, row, None),
        );
    }
}

/// Unsharp mask: `v + amount (v - blur(v))` where `|v - blur(v)| >= threshold`.
#[derive(Debug, Clone)]
pub struct Unsharp {
    gauss: Gauss,
    amount: f32,
    threshold: f32,
}

impl Unsharp {
    /// An unsharp mask over a Gaussian of `sigma`.
    pub fn new(
        sigma: f64,
        amount: f64,
        threshold: f64,
        width: u32,
        colour: usize,
        edge: Edge,
    ) -> Self {
        Unsharp {
            gauss: Gauss::new(sigma, width, colour, edge),
            amount: amount as f32,
            threshold: threshold as f32,
        }
    }
}

impl Kernel for Unsharp {
    fn halo(&self) -> u32 {
        self.gauss.halo()
    }
    fn out_geometry(&self, g: Geometry) -> Geometry {
        g
    }
    fn compute(&self, view: &View<'_>, g: Geometry, out: &mut Band) {
        let (w, sb) = (g.width as usize, g.sample_bytes);
        let sharpen = Some((self.amount, self.threshold));
        per_row(
            view,
            g,
            self.gauss.colour,
            out,
            || Scratch::new(&self.gauss, w),
            |s, c, r, row| filter_row(view, &self.gauss, sb, s, c, r, row, sharpen),
        );
    }
}

/// Median of the `(2r + 1)^2` square around each sample.
#[derive(Debug, Clone)]
pub struct Median {
    r: u32,
    cols: Vec<u32>,
    colour: usize,
}

impl Median {
    /// A median of radius `r`.
    pub fn new(r: u32, width: u32, colour: usize, edge: Edge) -> Median {
        Median {
            r,
            cols: column_map(width, r, edge),
            colour,
        }
    }
}

impl Kernel for Median {
    fn halo(&self) -> u32 {
        self.r
    }
    fn out_geometry(&self, g: Geometry) -> Geometry {
        g
    }
    fn compute(&self, view: &View<'_>, g: Geometry, out: &mut Band) {
        let (w, sb) = (g.width as usize, g.sample_bytes);
        let r = self.r as i64;
        let side = (2 * r + 1) as usize;
        per_row(
            view,
            g,
            self.colour,
            out,
            || vec![0u16; side * side],
            |win, c, y, row| {
                let rows: Vec<&[u8]> = (-r..=r).map(|k| view.row(c, y + k)).collect();
                for x in 0..w {
                    let mut i = 0;
                    for src in &rows {
                        for dx in 0..side {
                            let sx = self.cols[x + dx] as usize;
                            win[i] = if sb == 1 {
                                u16::from(src[sx])
                            } else {
                                u16::from_ne_bytes([src[2 * sx], src[2 * sx + 1]])
                            };
                            i += 1;
                        }
                    }
                    let mid = win.len() / 2;
                    let (_, m, _) = win.select_nth_unstable(mid);
                    let m = *m;
                    if sb == 1 {
                        row[x] = m as u8;
                    } else {
                        row[2 * x..2 * x + 2].copy_from_slice(&m.to_ne_bytes());
                    }
                }
            },
        );
    }
}
