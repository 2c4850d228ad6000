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

/// Columns computed together: blocks of this many stay in vector registers through a
/// kernel's taps. Every column gets the same float operations in the same order whether
/// it falls in a block or in the scalar tail, so where a tile's borders lie changes no bit.
const LANES: usize = 16;

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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above). The AVX2 build runs the same
        // code as the portable one: AVX2 only widens the vectors, each lane's operations
        // (no fused multiply-add) and their order are the same, so results are identical.
        unsafe { response_avx2(scale, input, pad, rows, cols, scratch, out) };
        return;
    }
    response_any(scale, input, pad, rows, cols, scratch, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn response_avx2(
    scale: &Scale,
    input: &[f32],
    pad: usize,
    rows: usize,
    cols: usize,
    scratch: &mut Scratch,
    out: &mut Vec<f32>,
) {
    response_any(scale, input, pad, rows, cols, scratch, out);
}

#[inline(always)]
fn response_any(
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
    // Vertical pass over the columns the horizontal one reads (the output's plus r each
    // side): the order-0 and order-2 kernels.
    let w2 = cols + 2 * r;
    let off = pad - r;
    // Every value is written below: no clearing (the planes keep their pages from tile
    // to tile).
    scratch.vg.resize(rows * w2, 0.0);
    scratch.vd.resize(rows * w2, 0.0);
    for i in 0..rows {
        let c = i + pad;
        let vg = &mut scratch.vg[i * w2..(i + 1) * w2];
        let vd = &mut scratch.vd[i * w2..(i + 1) * w2];
        let mut j = 0;
        while j + LANES <= w2 {
            vertical::<LANES>(scale, input, iw, c, off + j, &mut vg[j..], &mut vd[j..]);
            j += LANES;
        }
        for j in j..w2 {
            vertical::<1>(scale, input, iw, c, off + j, &mut vg[j..], &mut vd[j..]);
        }
    }
    // Horizontal pass: d2/dx2 of the vertical blur plus the blur of d2/dy2.
    out.resize(rows * cols, 0.0);
    for i in 0..rows {
        let vg = &scratch.vg[i * w2..(i + 1) * w2];
        let vd = &scratch.vd[i * w2..(i + 1) * w2];
        let o = &mut out[i * cols..(i + 1) * cols];
        let mut j = 0;
        while j + LANES <= cols {
            horizontal::<LANES>(scale, vg, vd, j, &mut o[j..]);
            j += LANES;
        }
        for j in j..cols {
            horizontal::<1>(scale, vg, vd, j, &mut o[j..]);
        }
    }
}

/// `N` columns from input column `x` of the vertical pass centred on input row `c`.
#[inline(always)]
fn vertical<const N: usize>(
    s: &Scale,
    input: &[f32],
    iw: usize,
    c: usize,
    x: usize,
    vg: &mut [f32],
    vd: &mut [f32],
) {
    let at = |row: usize| -> &[f32; N] {
        input[row * iw + x..][..N]
            .try_into()
            .unwrap_or_else(|_| unreachable!())
    };
    let centre = at(c);
    let (mut ag, mut ad) = ([0f32; N], [0f32; N]);
    for l in 0..N {
        ag[l] = s.g[0] * centre[l];
        ad[l] = s.g2[0] * centre[l];
    }
    for k in 1..=s.radius {
        let (gk, dk) = (s.g[k], s.g2[k]);
        let (up, dn) = (at(c - k), at(c + k));
        for l in 0..N {
            let v = up[l] + dn[l];
            ag[l] += gk * v;
            ad[l] += dk * v;
        }
    }
    vg[..N].copy_from_slice(&ag);
    vd[..N].copy_from_slice(&ad);
}

/// `N` output columns from column `j` of the horizontal pass (vertical-pass column
/// `j + radius` is the centre).
#[inline(always)]
fn horizontal<const N: usize>(s: &Scale, vg: &[f32], vd: &[f32], j: usize, o: &mut [f32]) {
    let r = s.radius;
    let at = |p: &[f32], x: usize| -> [f32; N] {
        p[x..][..N].try_into().unwrap_or_else(|_| unreachable!())
    };
    let (cg, cd) = (at(vg, j + r), at(vd, j + r));
    let mut acc = [0f32; N];
    for l in 0..N {
        acc[l] = s.g2[0] * cg[l] + s.g[0] * cd[l];
    }
    for k in 1..=r {
        let (gk, dk) = (s.g[k], s.g2[k]);
        let (lg, rg) = (at(vg, j + r - k), at(vg, j + r + k));
        let (ld, rd) = (at(vd, j + r - k), at(vd, j + r + k));
        for l in 0..N {
            acc[l] += dk * (lg[l] + rg[l]) + gk * (ld[l] + rd[l]);
        }
    }
    for l in 0..N {
        o[l] = acc[l] * s.norm;
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
    /// The input plane the responses were computed from: the region with `pad` more
    /// pixels on each side.
    pub input: Vec<f32>,
    /// Its margin.
    pub pad: usize,
}

impl Stack {
    /// The response of scale `s` at image pixel (`y`, `x`), which must lie in the region.
    pub fn at(&self, s: usize, y: i64, x: i64) -> f32 {
        self.planes[s][(y - self.y0) as usize * self.cols + (x - self.x0) as usize]
    }

    /// The input sample at image pixel (`y`, `x`), which must lie in the region.
    pub fn sample(&self, y: i64, x: i64) -> f32 {
        let w = self.cols + 2 * self.pad;
        self.input[((y - self.y0) as usize + self.pad) * w + (x - self.x0) as usize + self.pad]
    }

    /// [`Stack::is_max`] for a pixel known to be the largest of its square at its scales:
    /// whether no equal pixel comes before it in (y, x, scale) order. Only the square's
    /// rows up to its own can hold one.
    pub fn first_of_equals(&self, s: usize, y: i64, x: i64, d: i64, width: i64) -> bool {
        let v = self.at(s, y, x);
        let ya = (y - d).max(0);
        let (xa, xb) = ((x - d).max(0), (x + d).min(width - 1));
        let (sa, sb) = (s.saturating_sub(1), (s + 1).min(self.planes.len() - 1));
        for ss in sa..=sb {
            let plane = &self.planes[ss];
            for yy in ya..=y {
                let row = &plane[(yy - self.y0) as usize * self.cols..][..self.cols];
                let (a, b) = ((xa - self.x0) as usize, (xb - self.x0) as usize);
                let earlier = if yy < y {
                    row[a..=b].iter().fold(false, |e, &q| e | (q == v))
                } else {
                    // Columns before x; at x, scales before s.
                    let c = (x - self.x0) as usize;
                    row[a..c].iter().fold(false, |e, &q| e | (q == v)) || (ss < s && row[c] == v)
                };
                if earlier {
                    return false;
                }
            }
        }
        true
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
                // Branch-free over the segment; the order of ties only where one is.
                let (gt, eq) = seg
                    .iter()
                    .fold((false, false), |(g, e), &q| (g | (q > v), e | (q == v)));
                if gt {
                    return false;
                }
                if eq {
                    // An equal value earlier in (y, x, scale) order wins.
                    let earlier = match yy.cmp(&y) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Greater => false,
                        std::cmp::Ordering::Equal => seg.iter().enumerate().any(|(i, &q)| {
                            let xx = xa + i as i64;
                            q == v && (xx < x || (xx == x && ss < s))
                        }),
                    };
                    if earlier {
                        return false;
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

    /// The vector blocks, the scalar tail and the AVX2 build give every pixel the same
    /// bits: a region's response equals the same pixels cut from a wider region's.
    #[test]
    fn blocks_tails_and_avx2_give_the_same_bits() {
        let s = Scale::new(1.7);
        let pad = s.radius + 2;
        let (rows, cols) = (9, 53);
        let iw = cols + 2 * pad;
        let mut state = 12345u32;
        let input: Vec<f32> = (0..(rows + 2 * pad) * iw)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 16) as f32 / 7.0
            })
            .collect();
        let mut whole = Vec::new();
        response(
            &s,
            &input,
            pad,
            rows,
            cols,
            &mut Scratch::default(),
            &mut whole,
        );
        let mut portable = Vec::new();
        response_any(
            &s,
            &input,
            pad,
            rows,
            cols,
            &mut Scratch::default(),
            &mut portable,
        );
        assert!(whole
            .iter()
            .zip(&portable)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // Columns 5..5+21 (a block of 16 and a tail of 5 there, a block in the wider one).
        let (x0, n) = (5, 21);
        let sub_w = n + 2 * pad;
        let sub: Vec<f32> = (0..rows + 2 * pad)
            .flat_map(|y| input[y * iw + x0..][..sub_w].iter().copied())
            .collect();
        let mut part = Vec::new();
        response(&s, &sub, pad, rows, n, &mut Scratch::default(), &mut part);
        for y in 0..rows {
            for x in 0..n {
                assert_eq!(
                    part[y * n + x].to_bits(),
                    whole[y * cols + x0 + x].to_bits()
                );
            }
        }
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
