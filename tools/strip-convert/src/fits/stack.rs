//! Per-pixel combination of N values (one per frame) and the row-block loop around it.
//!
//! Each method is what its reference computes, on the pixel's non-NaN values in `f64`
//! (normalised in `f64` from the frames' `f32` values, as numpy normalises a float64
//! cube):
//! - `mean`: numpy `mean`.
//! - `median`: numpy `median`.
//! - `sigma-clip`: astropy `sigma_clip(cenfunc='median', stdfunc='std', maxiters=None)`:
//!   reject values below median - low * std or above median + high * std of the values
//!   kept so far (std with ddof 0), until a round rejects nothing; then the mean.
//! - `winsorized`: Siril's winsorized sigma clipping: per round, m = median and
//!   s = std of the kept values; s is refined by winsorizing (clamp to m +- 1.5 s,
//!   s = 1.134 std of the clamped values) until it changes by at most 0.05%; values
//!   outside m - low * s .. m + high * s are rejected; rounds go on while one rejects
//!   something and more than 3 values remain; then the mean.
//! - `minmax`: the `--reject-low` lowest and `--reject-high` highest values are
//!   rejected, the mean of the rest.
//!
//! Each value carries its frame's weight (1 unless `--weighted`): rejection ignores the
//! weights, the final mean is `sum(w x) / sum(w)` over the kept values (with weights 1,
//! the plain mean). The median is never weighted.
//!
//! Speed: a pixel's values are sorted once ([`Pixel`]); every rejection keeps an
//! interval of values, so each round moves the ends of a run of the sorted values and
//! its median is the run's middle. Pixels are transposed by tiles of `TILE` so a
//! pixel's values are contiguous. Unweighted sigma-clipping first takes 256 pixels at a
//! time in vectorised passes (`sigma_clip_tile`): a pixel whose first round provably
//! keeps every value (counts against its bounds, no median) gets its mean at once, with
//! the same bits; only the others are sorted.

use super::normalize::{key, unkey};
use clap::ValueEnum;

/// A stacking method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Mean
    Mean,
    /// Median
    Median,
    /// Sigma clipping around the median, then the mean
    SigmaClip,
    /// Winsorized sigma clipping, then the mean
    Winsorized,
    /// Min/max rejection, then the mean
    Minmax,
}

impl Method {
    /// The name as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Mean => "mean",
            Method::Median => "median",
            Method::SigmaClip => "sigma-clip",
            Method::Winsorized => "winsorized",
            Method::Minmax => "minmax",
        }
    }
}

/// Rejection parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The method.
    pub method: Method,
    /// Sigmas below the centre.
    pub sigma_low: f64,
    /// Sigmas above the centre.
    pub sigma_high: f64,
    /// minmax: lowest values rejected.
    pub reject_low: usize,
    /// minmax: highest values rejected.
    pub reject_high: usize,
}

/// One pixel's values sorted ascending, with their frames' weights, and the kept range.
///
/// Every rejection here keeps the values inside an interval, so what is kept is always a
/// contiguous run of the sorted values: the pixel is sorted once and each round only
/// moves the run's ends (the median is its middle), instead of re-sorting the survivors.
#[derive(Debug, Default)]
pub struct Pixel {
    /// Value keys (unweighted).
    keys: Vec<u64>,
    /// (key << 64 | frame): sorting these sorts values and keeps their frames (weighted).
    pairs: Vec<u128>,
    /// Sorted values.
    x: Vec<f64>,
    /// Their weights (empty when every weight is 1).
    w: Vec<f64>,
    /// Scratch for winsorizing.
    scratch: Vec<f64>,
}

/// What a frame's values go through: normalisation x' = a x + b (in `f64`), weight.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameMaps<'a> {
    /// Frame i's (a, b); None: every frame as read.
    pub coef: Option<&'a [(f64, f64)]>,
    /// Frame i's weight; None: all 1.
    pub weights: Option<&'a [f64]>,
}

impl FrameMaps<'_> {
    /// Frame i's value `x`, normalised.
    #[inline]
    fn value(&self, i: usize, x: f32) -> f64 {
        match self.coef {
            Some(c) => c[i].0 * f64::from(x) + c[i].1,
            None => f64::from(x),
        }
    }
}

impl Pixel {
    /// Load the normalised non-NaN values of `v` (frame i's value at `v[i]`), unsorted:
    /// `x` holds them, `keys` (or with weights, `pairs`) their keys.
    fn gather(&mut self, v: &[f32], maps: FrameMaps) {
        self.x.clear();
        self.w.clear();
        if maps.weights.is_some() {
            self.pairs.clear();
            for (i, &x) in v.iter().enumerate() {
                let x = maps.value(i, x);
                if !x.is_nan() {
                    self.pairs.push((u128::from(key(x)) << 64) | i as u128);
                }
            }
        } else {
            self.keys.clear();
            for (i, &x) in v.iter().enumerate() {
                let x = maps.value(i, x);
                if !x.is_nan() {
                    self.keys.push(key(x));
                    self.x.push(x);
                }
            }
        }
    }

    /// Sort what [`Pixel::gather`] loaded: `x` ascending, `w` its weights.
    fn sort(&mut self, maps: FrameMaps) {
        self.x.clear();
        if let Some(w) = maps.weights {
            self.pairs.sort_unstable();
            self.x
                .extend(self.pairs.iter().map(|&k| unkey((k >> 64) as u64)));
            self.w
                .extend(self.pairs.iter().map(|&k| w[k as u64 as usize]));
        } else {
            self.keys.sort_unstable();
            self.x.extend(self.keys.iter().map(|&k| unkey(k)));
        }
    }

    /// numpy's median of the unweighted values [`Pixel::gather`] loaded, by selection
    /// (reorders `keys`, not `x`).
    fn median_unsorted(&mut self) -> f64 {
        let n = self.keys.len();
        let (below, &mut k, _) = self.keys.select_nth_unstable(n / 2);
        let hi = unkey(k);
        if n % 2 == 1 {
            return hi;
        }
        let lo = unkey(below.iter().copied().max().unwrap_or(k));
        lo + (hi - lo) / 2.0
    }

    /// numpy's median of the run.
    fn median(&self, r: (usize, usize)) -> f64 {
        let s = &self.x[r.0..r.1];
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            s[n / 2 - 1] + (s[n / 2] - s[n / 2 - 1]) / 2.0
        }
    }

    /// numpy's `std` (ddof 0, two passes) of the run, unweighted.
    fn std(&self, r: (usize, usize)) -> f64 {
        std(&self.x[r.0..r.1])
    }

    /// The (weighted) mean of the run.
    fn mean(&self, r: (usize, usize)) -> f64 {
        if self.w.is_empty() {
            mean(&self.x[r.0..r.1])
        } else {
            let (x, w) = (&self.x[r.0..r.1], &self.w[r.0..r.1]);
            x.iter().zip(w).map(|(x, w)| w * x).sum::<f64>() / w.iter().sum::<f64>()
        }
    }

    /// The run shrunk to the values within `lo ..= hi` (none if a bound is NaN).
    fn clip(&self, r: (usize, usize), lo: f64, hi: f64) -> (usize, usize) {
        if lo
            .partial_cmp(&hi)
            .is_none_or(|o| o == std::cmp::Ordering::Greater)
        {
            return (r.0, r.0);
        }
        let (mut a, mut b) = r;
        while a < b && self.x[a] < lo {
            a += 1;
        }
        while b > a && self.x[b - 1] > hi {
            b -= 1;
        }
        (a, b)
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Combine one pixel's values `v` (frame i's at `v[i]`, NaN for none), normalised and
/// weighted as `maps` says. Returns the value and how many values were rejected; no
/// value gives NaN.
pub fn combine(p: &Params, v: &[f32], maps: FrameMaps, px: &mut Pixel) -> (f64, u32) {
    if p.method == Method::Mean {
        // No order needed.
        let (mut s, mut sw) = (0f64, 0f64);
        for (i, &x) in v.iter().enumerate() {
            let x = maps.value(i, x);
            if !x.is_nan() {
                let w = maps.weights.map_or(1.0, |w| w[i]);
                s += w * x;
                sw += w;
            }
        }
        return (if sw > 0.0 { s / sw } else { f64::NAN }, 0);
    }
    if p.method == Method::Median {
        // Never weighted, and a selection is enough.
        px.gather(
            v,
            FrameMaps {
                weights: None,
                ..maps
            },
        );
        if px.keys.is_empty() {
            return (f64::NAN, 0);
        }
        return (px.median_unsorted(), 0);
    }
    px.gather(v, maps);
    let mut first = None;
    if p.method == Method::SigmaClip && maps.weights.is_none() && !px.keys.is_empty() {
        // Most pixels reject nothing: their first round needs the median (a selection)
        // and the moments, not the order.
        let n = px.x.len();
        let c = px.median_unsorted();
        let mean = mean(&px.x);
        let s = (px.x.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt();
        let (lo, hi) = (c - p.sigma_low * s, c + p.sigma_high * s);
        let (min, max) =
            px.x.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
        if lo <= min && max <= hi {
            return (mean, 0);
        }
        first = Some((lo, hi));
    }
    px.sort(maps);
    let n = px.x.len();
    if n == 0 {
        return (f64::NAN, 0);
    }
    let all = (0, n);
    let kept = match p.method {
        Method::Mean | Method::Median => all,
        Method::SigmaClip => clip_rounds(p, px, first),
        Method::Winsorized => {
            let mut r = all;
            loop {
                let m = px.median(r);
                let mut s = px.std(r);
                for _ in 0..100 {
                    let (lo, hi) = (m - 1.5 * s, m + 1.5 * s);
                    px.scratch.clear();
                    px.scratch
                        .extend(px.x[r.0..r.1].iter().map(|&x| x.clamp(lo, hi)));
                    let s0 = s;
                    s = 1.134 * std(&px.scratch);
                    if (s - s0).abs() <= s0 * 0.0005 {
                        break;
                    }
                }
                let next = px.clip(r, m - p.sigma_low * s, m + p.sigma_high * s);
                let done = next == r || next.1 - next.0 <= 3;
                r = next;
                if done {
                    break;
                }
            }
            r
        }
        Method::Minmax => {
            if n <= p.reject_low + p.reject_high {
                // Too few values left at this pixel (NaNs): its median.
                return (px.median(all), 0);
            }
            (p.reject_low, n - p.reject_high)
        }
    };
    kept_mean(px, kept)
}

/// The (weighted) mean of the kept run and how many values were rejected (NaN when
/// none is kept).
fn kept_mean(px: &Pixel, kept: (usize, usize)) -> (f64, u32) {
    let n = px.x.len();
    if kept.0 == kept.1 {
        return (f64::NAN, n as u32);
    }
    (px.mean(kept), (n - (kept.1 - kept.0)) as u32)
}

/// Sigma-clip's rounds over the sorted values: the first with the bounds `first` if
/// given (found before sorting), then around the run's median until one rejects nothing.
fn clip_rounds(p: &Params, px: &Pixel, first: Option<(f64, f64)>) -> (usize, usize) {
    let mut r = (0, px.x.len());
    if let Some((lo, hi)) = first {
        r = px.clip(r, lo, hi);
    }
    while r.0 < r.1 {
        let c = px.median(r);
        let s = px.std(r);
        let next = px.clip(r, c - p.sigma_low * s, c + p.sigma_high * s);
        let done = next == r;
        r = next;
        if done {
            break;
        }
    }
    r
}

/// Pixels gathered at once: their values are transposed into one buffer (each pixel's
/// N values side by side) so the per-pixel work reads contiguous memory, not N streams.
const TILE: usize = 64;

/// Pixels of a tile in [`sigma_clip_tile`]: frames outer, pixels inner, so each loop
/// runs over contiguous values of one frame and the compiler vectorises it.
const WIDE: usize = 256;

/// Frame i's value `x` as [`FrameMaps::value`] gives it (`NORM`: through `c`).
#[inline(always)]
fn norm<const NORM: bool>(c: (f64, f64), x: f32) -> f64 {
    if NORM {
        c.0 * f64::from(x) + c.1
    } else {
        f64::from(x)
    }
}

/// Sigma-clip (unweighted) of the pixels `base .. base + out.len()` of a block, the pixels
/// that reject nothing in a few vectorised passes over the tile:
///
/// 1. the sum, min and max of each pixel's values (a NaN sends the pixel to [`combine`]),
/// 2. the sum of squared deviations from the mean,
/// 3. how many values lie below `max - high * std` and above `min + low * std`, with a
///    margin far above the rounding of those bounds: when at most `(n - 1) / 2` lie below
///    and `n - 1 - n / 2` above, both middle values, hence the median `c`, are within
///    them, so `c - low * std <= min` and `max <= c + high * std`: the first round keeps
///    every value and the result is the mean.
///
/// Each pixel's sums are taken in frame order, as [`combine`] takes them, so a pixel
/// gets the same bits either way; a pixel the count leaves in doubt (a value rejected, or
/// its median too close to a bound to tell) goes through [`combine`]. Most pixels of a
/// sky frame reject nothing, and their median is never computed.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sigma_clip_tile<const NORM: bool>(
    p: &Params,
    frames: &[Vec<f32>],
    coef: &[(f64, f64)],
    base: usize,
    out: &mut [f32],
    rejected: &mut [f32],
    px: &mut Pixel,
    v: &mut Vec<f32>,
) {
    let m = out.len();
    let n = frames.len();
    // -0.0: the start of Rust's f64 `sum`, which `combine` uses.
    let mut sum = [-0.0f64; WIDE];
    let mut min = [f64::INFINITY; WIDE];
    let mut max = [f64::NEG_INFINITY; WIDE];
    let mut nan = [false; WIDE];
    let (sum, min, max, nan) = (&mut sum[..m], &mut min[..m], &mut max[..m], &mut nan[..m]);
    for (f, &c) in frames.iter().zip(coef) {
        let xs = &f[base..base + m];
        for j in 0..m {
            let x = norm::<NORM>(c, xs[j]);
            nan[j] |= x.is_nan();
            sum[j] += x;
            min[j] = if x < min[j] { x } else { min[j] };
            max[j] = if x > max[j] { x } else { max[j] };
        }
    }
    let nf = n as f64;
    let mut mean = [0f64; WIDE];
    let mean = &mut mean[..m];
    for j in 0..m {
        mean[j] = sum[j] / nf;
    }
    let mut sq = [-0.0f64; WIDE];
    let sq = &mut sq[..m];
    for (f, &c) in frames.iter().zip(coef) {
        let xs = &f[base..base + m];
        for j in 0..m {
            let d = norm::<NORM>(c, xs[j]) - mean[j];
            sq[j] += d * d;
        }
    }
    let (mut below, mut above) = ([0u32; WIDE], [0u32; WIDE]);
    let (below, above) = (&mut below[..m], &mut above[..m]);
    let (mut t_lo, mut t_hi) = ([0f64; WIDE], [0f64; WIDE]);
    let (t_lo, t_hi) = (&mut t_lo[..m], &mut t_hi[..m]);
    let mut std = [0f64; WIDE];
    let std = &mut std[..m];
    for j in 0..m {
        let s = (sq[j] / nf).sqrt();
        std[j] = s;
        let (lo, hi) = (p.sigma_low * s, p.sigma_high * s);
        // Far above the few units in the last place the bounds are computed to.
        let margin = 1e-12 * (max[j].abs() + min[j].abs() + lo + hi);
        // The median must be at least t_hi and at most t_lo.
        t_hi[j] = max[j] - hi + margin;
        t_lo[j] = min[j] + lo - margin;
    }
    for (f, &c) in frames.iter().zip(coef) {
        let xs = &f[base..base + m];
        for j in 0..m {
            let x = norm::<NORM>(c, xs[j]);
            below[j] += u32::from(x < t_hi[j]);
            above[j] += u32::from(x > t_lo[j]);
        }
    }
    let (max_below, max_above) = ((n - 1) / 2, n - 1 - n / 2);
    let maps = FrameMaps {
        coef: NORM.then_some(coef),
        weights: None,
    };
    for j in 0..m {
        let sure = !nan[j]
            && t_hi[j].is_finite()
            && t_lo[j].is_finite()
            && below[j] as usize <= max_below
            && above[j] as usize <= max_above;
        if sure {
            out[j] = mean[j] as f32;
            rejected[j] = 0.0;
        } else {
            v.clear();
            v.extend(frames.iter().map(|f| f[base + j]));
            let (value, rej) = if nan[j] {
                combine(p, v, maps, px)
            } else {
                // What `combine` does once its first round's bounds fail to hold every
                // value, with the mean and std found above (the same bits): sorted
                // once, the median is the middle of the run, with no selection first.
                px.gather(v, maps);
                px.sort(maps);
                let all = (0, n);
                let c = px.median(all);
                let (lo, hi) = (c - p.sigma_low * std[j], c + p.sigma_high * std[j]);
                if lo <= px.x[0] && px.x[n - 1] <= hi {
                    (mean[j], 0)
                } else {
                    kept_mean(px, clip_rounds(p, px, Some((lo, hi))))
                }
            };
            out[j] = value as f32;
            rejected[j] = rej as f32;
        }
    }
}

/// [`sigma_clip_tile`] compiled for AVX2 (four `f64` lanes a loop step, not SSE2's
/// two): the same operations on each pixel, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn sigma_clip_tile_avx2<const NORM: bool>(
    p: &Params,
    frames: &[Vec<f32>],
    coef: &[(f64, f64)],
    base: usize,
    out: &mut [f32],
    rejected: &mut [f32],
    px: &mut Pixel,
    v: &mut Vec<f32>,
) {
    sigma_clip_tile::<NORM>(p, frames, coef, base, out, rejected, px, v);
}

/// [`sigma_clip_tile`], with AVX2 when the CPU has it.
#[allow(clippy::too_many_arguments)]
fn sigma_clip_tile_best<const NORM: bool>(
    p: &Params,
    frames: &[Vec<f32>],
    coef: &[(f64, f64)],
    base: usize,
    out: &mut [f32],
    rejected: &mut [f32],
    px: &mut Pixel,
    v: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { sigma_clip_tile_avx2::<NORM>(p, frames, coef, base, out, rejected, px, v) };
        return;
    }
    sigma_clip_tile::<NORM>(p, frames, coef, base, out, rejected, px, v);
}

/// Combine a block: `frames[i]` holds frame i's `len` values of the block (as read),
/// `coef[i]` its normalisation and `weights[i]` its weight; writes `out[..len]` and
/// `rejected[..len]`, splitting the pixels over `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn combine_block(
    p: &Params,
    frames: &[Vec<f32>],
    coef: &[(f64, f64)],
    weights: &[f64],
    len: usize,
    out: &mut [f32],
    rejected: &mut [f32],
    threads: usize,
) {
    let n = frames.len();
    let maps = FrameMaps {
        coef: (!coef.iter().all(|&c| c == (1.0, 0.0))).then_some(coef),
        weights: (!weights.iter().all(|&w| w == 1.0)).then_some(weights),
    };
    let threads = threads.clamp(1, len.max(1));
    let per = len.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (t, (o, r)) in out[..len]
            .chunks_mut(per)
            .zip(rejected[..len].chunks_mut(per))
            .enumerate()
        {
            s.spawn(move || {
                let start = t * per;
                let mut px = Pixel::default();
                if p.method == Method::SigmaClip && maps.weights.is_none() {
                    let mut v = Vec::with_capacity(n);
                    for (c, (o, r)) in o.chunks_mut(WIDE).zip(r.chunks_mut(WIDE)).enumerate() {
                        let base = start + c * WIDE;
                        if maps.coef.is_some() {
                            sigma_clip_tile_best::<true>(
                                p, frames, coef, base, o, r, &mut px, &mut v,
                            );
                        } else {
                            sigma_clip_tile_best::<false>(
                                p, frames, coef, base, o, r, &mut px, &mut v,
                            );
                        }
                    }
                    return;
                }
                let mut tile = vec![0f32; TILE * n];
                for (c, (o, r)) in o.chunks_mut(TILE).zip(r.chunks_mut(TILE)).enumerate() {
                    let base = start + c * TILE;
                    let m = o.len();
                    for (i, f) in frames.iter().enumerate() {
                        for (j, &x) in f[base..base + m].iter().enumerate() {
                            tile[j * n + i] = x;
                        }
                    }
                    for j in 0..m {
                        let (value, rej) = combine(p, &tile[j * n..(j + 1) * n], maps, &mut px);
                        o[j] = value as f32;
                        r[j] = rej as f32;
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: Method) -> Params {
        Params {
            method,
            sigma_low: 3.0,
            sigma_high: 3.0,
            reject_low: 1,
            reject_high: 1,
        }
    }

    #[test]
    fn sigma_clip_rejects_an_outlier_until_stable() {
        let mut v: Vec<f32> = (0..20).map(|i| 10.0 + (i % 3) as f32).collect();
        v.insert(7, 1000.0);
        v.push(f32::NAN);
        let none = FrameMaps::default();
        let (m, r) = combine(&params(Method::SigmaClip), &v, none, &mut Pixel::default());
        assert_eq!(r, 1);
        assert!((m - 10.95).abs() < 1e-12, "{m}");
    }

    #[test]
    fn minmax_drops_the_extremes() {
        let v = [5.0, 1.0, 9.0, 3.0];
        let px = &mut Pixel::default();
        let none = FrameMaps::default();
        assert_eq!(combine(&params(Method::Minmax), &v, none, px), (4.0, 2));
        assert_eq!(combine(&params(Method::Median), &v, none, px).0, 4.0);
        // Weights follow their frames through the sort: 5 (w 3) and 3 (w 1) kept.
        let w = [3.0, 1.0, 1.0, 1.0];
        let weighted = FrameMaps {
            coef: None,
            weights: Some(&w),
        };
        assert_eq!(combine(&params(Method::Minmax), &v, weighted, px).0, 4.5);
        assert_eq!(
            combine(&params(Method::Mean), &v, weighted, px).0,
            28.0 / 6.0
        );
        // Normalisation before ordering: frame 2's 9 becomes -1, the lowest, frame 3's 3
        // becomes 6, the highest: 1 (w 1) and 5 (w 3) kept.
        let c = [(1.0, 0.0), (1.0, 0.0), (1.0, -10.0), (2.0, 0.0)];
        let normalised = FrameMaps {
            coef: Some(&c),
            weights: Some(&w),
        };
        assert_eq!(combine(&params(Method::Minmax), &v, normalised, px).0, 4.0);
        assert!(combine(&params(Method::Mean), &[f32::NAN], none, px)
            .0
            .is_nan());
        assert!(combine(&params(Method::Median), &[], none, px).0.is_nan());
    }
}
