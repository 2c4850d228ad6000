//! The scale-normalised Laplacian of Gaussian (`-sigma^2 LoG`) of one tile with its halo,
//! by separable Gaussian-derivative filters, and the local maxima of its response.
//!
//! Kernels are scipy.ndimage's (`gaussian_laplace`, truncate 4: radius
//! `int(4 sigma + 0.5)`, the order-0 kernel normalised to sum 1, the order-2 kernel
//! `(x^2/sigma^4 - 1/sigma^2)` times it), so responses match `-gaussian_laplace(img, s) * s^2`
//! up to float rounding. Each output pixel is computed by the same sequence of float
//! operations wherever its tile lies, so a tiled response equals the whole-image one bit
//! for bit.

/// One scale's kernels: halves `[0..=radius]` of symmetric kernels.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Sigma in pixels.
    pub sigma: f64,
    /// Kernel radius, `int(4 sigma + 0.5)` as scipy's.
    pub radius: usize,
    g: Vec<f32>,
    g2: Vec<f32>,
    /// `-sigma^2`: the scale normalisation and the sign that makes spots positive.
    norm: f32,
}

impl Scale {
    /// The kernels of `sigma`.
    pub fn new(sigma: f64) -> Scale {
        let radius = (4.0 * sigma + 0.5) as usize;
        let s2 = sigma * sigma;
        let phi: Vec<f64> = (0..=radius)
            .map(|x| (-0.5 / s2 * (x * x) as f64).exp())
            .collect();
        let sum: f64 = phi[0] + 2.0 * phi[1..].iter().sum::<f64>();
        let g = phi.iter().map(|p| (p / sum) as f32).collect();
        let g2 = phi
            .iter()
            .enumerate()
            .map(|(x, p)| (((x * x) as f64 / (s2 * s2) - 1.0 / s2) * p / sum) as f32)
            .collect();
        Scale {
            sigma,
            radius,
            g,
            g2,
            norm: -(s2 as f32),
        }
    }
}

/// scipy.ndimage's `reflect` edge rule (numpy's `symmetric`): `... 1 0 | 0 1 2 ...`.
pub fn reflect(i: i64, n: i64) -> i64 {
    if (0..n).contains(&i) {
        return i;
    }
    let m = i.rem_euclid(2 * n);
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

/// Scratch planes of one worker, reused from tile to tile.
#[derive(Debug, Default)]
pub struct Scratch {
    vg: Vec<f32>,
    vd: Vec<f32>,
}

/// The response of `scale` over `rows` x `cols` pixels, from `input`, a row-major plane of
/// `(rows + 2 pad) x (cols + 2 pad)` samples whose centre is the output region
/// (`pad >= scale.radius`). Writes `rows * cols` values into `out`.
pub fn response(
    scale: &Scale,
    input: &[f32],
    pad: usize,
    rows: usize,
    cols: usize,
    scratch: &mut Scratch,
    out: &mut Vec<f32>,
) {
    let iw = cols + 2 * pad;
    let r = scale.radius;
    debug_assert!(pad >= r && input.len() >= (rows + 2 * pad) * iw);
    // Vertical pass over the full input width: the order-0 and order-2 kernels.
    scratch.vg.clear();
    scratch.vg.resize(rows * iw, 0.0);
    scratch.vd.clear();
    scratch.vd.resize(rows * iw, 0.0);
    for i in 0..rows {
        let c = i + pad;
        let vg = &mut scratch.vg[i * iw..(i + 1) * iw];
        let vd = &mut scratch.vd[i * iw..(i + 1) * iw];
        let centre = &input[c * iw..(c + 1) * iw];
        let (g0, d0) = (scale.g[0], scale.g2[0]);
        for ((a, b), &v) in vg.iter_mut().zip(vd.iter_mut()).zip(centre) {
            *a = g0 * v;
            *b = d0 * v;
        }
        for k in 1..=r {
            let (gk, dk) = (scale.g[k], scale.g2[k]);
            let up = &input[(c - k) * iw..(c - k + 1) * iw];
            let dn = &input[(c + k) * iw..(c + k + 1) * iw];
            for (((a, b), &u), &d) in vg.iter_mut().zip(vd.iter_mut()).zip(up).zip(dn) {
                let s = u + d;
                *a += gk * s;
                *b += dk * s;
            }
        }
    }
    // Horizontal pass: d2/dx2 of the vertical blur plus the blur of d2/dy2.
    out.clear();
    out.resize(rows * cols, 0.0);
    let off = pad - r;
    for i in 0..rows {
        let vg = &scratch.vg[i * iw + off..(i + 1) * iw];
        let vd = &scratch.vd[i * iw + off..(i + 1) * iw];
        let o = &mut out[i * cols..(i + 1) * cols];
        let (g0, d0) = (scale.g[0], scale.g2[0]);
        for (j, v) in o.iter_mut().enumerate() {
            *v = d0 * vg[j + r] + g0 * vd[j + r];
        }
        for k in 1..=r {
            let (gk, dk) = (scale.g[k], scale.g2[k]);
            let (lg, rg) = (&vg[r - k..r - k + cols], &vg[r + k..r + k + cols]);
            let (ld, rd) = (&vd[r - k..r - k + cols], &vd[r + k..r + k + cols]);
            for ((((v, &a), &b), &c), &d) in o.iter_mut().zip(lg).zip(rg).zip(ld).zip(rd) {
                *v += dk * (a + b) + gk * (c + d);
            }
        }
        for v in o.iter_mut() {
            *v *= scale.norm;
        }
    }
}

/// Responses of every scale over one region: `planes[s][row * cols + col]`, region
/// pixel (0, 0) at image pixel (`y0`, `x0`).
#[derive(Debug, Default)]
pub struct Stack {
    /// One plane per scale.
    pub planes: Vec<Vec<f32>>,
    /// First image row of the region.
    pub y0: i64,
    /// First image column.
    pub x0: i64,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Stack {
    /// The response of scale `s` at image pixel (`y`, `x`), which must lie in the region.
    pub fn at(&self, s: usize, y: i64, x: i64) -> f32 {
        self.planes[s][(y - self.y0) as usize * self.cols + (x - self.x0) as usize]
    }

    /// Whether image pixel (`y`, `x`) at scale `s` is a local maximum: no pixel of the
    /// image within `d` (Chebyshev distance, a `2d + 1` square as scipy's
    /// `maximum_filter`) at scales `s - 1 ..= s + 1` is greater, and no equal one comes
    /// before it in (y, x, scale) order (ties go to the first, so a plateau gives one
    /// spot, the same wherever the tile borders lie). The square is clipped to the
    /// image (`height` x `width`): under the reflect rule the pixels beyond an edge copy
    /// pixels already inside it. The region must hold the clipped square.
    pub fn is_max(&self, s: usize, y: i64, x: i64, d: i64, height: i64, width: i64) -> bool {
        let v = self.at(s, y, x);
        // Most pixels have a greater 4-neighbour: a quick no before the whole square.
        for (dy, dx) in [(0, -1), (0, 1), (-1, 0), (1, 0)] {
            let (yy, xx) = (y + dy, x + dx);
            if d >= 1
                && (0..height).contains(&yy)
                && (0..width).contains(&xx)
                && self.at(s, yy, xx) > v
            {
                return false;
            }
        }
        let (ya, yb) = ((y - d).max(0), (y + d).min(height - 1));
        let (xa, xb) = ((x - d).max(0), (x + d).min(width - 1));
        let (sa, sb) = (s.saturating_sub(1), (s + 1).min(self.planes.len() - 1));
        for ss in sa..=sb {
            let plane = &self.planes[ss];
            for yy in ya..=yb {
                let row = &plane[(yy - self.y0) as usize * self.cols..][..self.cols];
                let seg = &row[(xa - self.x0) as usize..=(xb - self.x0) as usize];
                for (i, &q) in seg.iter().enumerate() {
                    if q > v {
                        return false;
                    }
                    if q == v {
                        let xx = xa + i as i64;
                        if (yy, xx, ss) < (y, x, s) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_numpy_symmetric() {
        let got: Vec<i64> = (-5..8).map(|i| reflect(i, 3)).collect();
        // numpy.pad(np.arange(3), 5, mode='symmetric')
        assert_eq!(got, vec![1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
        assert!((-4..5).all(|i| reflect(i, 1) == 0));
    }

    #[test]
    fn kernels_are_scipys() {
        let s = Scale::new(1.5);
        assert_eq!(s.radius, 6);
        let sum: f32 = s.g[0] + 2.0 * s.g[1..].iter().sum::<f32>();
        assert!((sum - 1.0).abs() < 1e-6);
        // The second-derivative kernel of a normalised Gaussian sums to about 0.
        let sum2: f32 = s.g2[0] + 2.0 * s.g2[1..].iter().sum::<f32>();
        assert!(sum2.abs() < 1e-3, "{sum2}");
    }

    #[test]
    fn a_flat_image_has_almost_zero_response() {
        let s = Scale::new(2.0);
        let pad = s.radius;
        let input = vec![100.0f32; (4 + 2 * pad) * (5 + 2 * pad)];
        let mut out = Vec::new();
        response(&s, &input, pad, 4, 5, &mut Scratch::default(), &mut out);
        // Not exactly 0: the kernels are truncated at 4 sigma (scipy's are too).
        assert!(out.iter().all(|v| v.abs() < 0.1), "{out:?}");
    }
}
