//! Per-pixel combination of N values (one per frame) and the row-block loop around it.
//!
//! Each method is what its reference computes, on the pixel's non-NaN values in `f64`:
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
//! bit-identical to the plain mean). The median is never weighted.

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

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The weighted mean of (value, weight) pairs.
fn wmean(v: &[(f64, f64)]) -> f64 {
    v.iter().map(|&(x, w)| w * x).sum::<f64>() / v.iter().map(|&(_, w)| w).sum::<f64>()
}

/// numpy's `std` (ddof 0) of the values of the pairs, unweighted.
fn std_of(v: &[(f64, f64)]) -> f64 {
    let m = v.iter().map(|&(x, _)| x).sum::<f64>() / v.len() as f64;
    (v.iter().map(|&(x, _)| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// numpy's median; sorts `v`.
fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        v[n / 2 - 1] + (v[n / 2] - v[n / 2 - 1]) / 2.0
    }
}

/// The values of the pairs into `scratch`, and their median.
fn median_of(v: &[(f64, f64)], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(v.iter().map(|&(x, _)| x));
    median(scratch)
}

/// Combine one pixel's (value, weight) pairs (NaN already left out; `v` is scratch and
/// is reordered). Returns the value and how many values were rejected. No value gives NaN.
pub fn combine(p: &Params, v: &mut Vec<(f64, f64)>, scratch: &mut Vec<f64>) -> (f64, u32) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, 0);
    }
    match p.method {
        Method::Mean => (wmean(v), 0),
        Method::Median => (median_of(v, scratch), 0),
        Method::SigmaClip => {
            loop {
                let c = median_of(v, scratch);
                let s = std_of(v);
                let (lo, hi) = (c - p.sigma_low * s, c + p.sigma_high * s);
                let before = v.len();
                v.retain(|&(x, _)| x >= lo && x <= hi);
                if v.len() == before || v.is_empty() {
                    break;
                }
            }
            if v.is_empty() {
                return (f64::NAN, n as u32);
            }
            (wmean(v), (n - v.len()) as u32)
        }
        Method::Winsorized => {
            loop {
                let m = median_of(v, scratch);
                let mut s = std_of(v);
                for _ in 0..100 {
                    let (lo, hi) = (m - 1.5 * s, m + 1.5 * s);
                    scratch.clear();
                    scratch.extend(v.iter().map(|&(x, _)| x.clamp(lo, hi)));
                    let s0 = s;
                    s = 1.134 * std(scratch);
                    if (s - s0).abs() <= s0 * 0.0005 {
                        break;
                    }
                }
                let (lo, hi) = (m - p.sigma_low * s, m + p.sigma_high * s);
                let before = v.len();
                v.retain(|&(x, _)| x >= lo && x <= hi);
                if v.len() == before || v.len() <= 3 {
                    break;
                }
            }
            if v.is_empty() {
                return (f64::NAN, n as u32);
            }
            (wmean(v), (n - v.len()) as u32)
        }
        Method::Minmax => {
            if n <= p.reject_low + p.reject_high {
                // Too few values left at this pixel (NaNs): its median.
                return (median_of(v, scratch), 0);
            }
            v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            let kept = &v[p.reject_low..n - p.reject_high];
            (wmean(kept), (p.reject_low + p.reject_high) as u32)
        }
    }
}

/// Combine a block: `frames[i]` holds frame i's `len` values of the block (already
/// normalised), `weights[i]` its weight; writes `out[..len]` and `rejected[..len]`,
/// splitting the pixels over `threads` threads.
pub fn combine_block(
    p: &Params,
    frames: &[Vec<f32>],
    weights: &[f64],
    len: usize,
    out: &mut [f32],
    rejected: &mut [f32],
    threads: usize,
) {
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
                let mut v = Vec::with_capacity(frames.len());
                let mut scratch = Vec::with_capacity(frames.len());
                for (j, (o, r)) in o.iter_mut().zip(r.iter_mut()).enumerate() {
                    v.clear();
                    v.extend(
                        frames
                            .iter()
                            .zip(weights)
                            .map(|(f, &w)| (f64::from(f[start + j]), w))
                            .filter(|(x, _)| !x.is_nan()),
                    );
                    let (value, rej) = combine(p, &mut v, &mut scratch);
                    *o = value as f32;
                    *r = rej as f32;
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
        let mut v: Vec<(f64, f64)> = (0..20).map(|i| (10.0 + (i % 3) as f64, 1.0)).collect();
        v.push((1000.0, 1.0));
        let (m, r) = combine(&params(Method::SigmaClip), &mut v, &mut Vec::new());
        assert_eq!(r, 1);
        assert!((m - 10.95).abs() < 1e-12, "{m}");
    }

    #[test]
    fn minmax_drops_the_extremes() {
        let mut v = vec![(5.0, 1.0), (1.0, 1.0), (9.0, 1.0), (3.0, 1.0)];
        assert_eq!(
            combine(&params(Method::Minmax), &mut v, &mut Vec::new()),
            (4.0, 2)
        );
        let mut v = vec![(5.0, 1.0), (1.0, 1.0), (9.0, 1.0), (3.0, 1.0)];
        assert_eq!(
            combine(&params(Method::Median), &mut v, &mut Vec::new()).0,
            4.0
        );
        let mut v = vec![];
        assert!(combine(&params(Method::Mean), &mut v, &mut Vec::new())
            .0
            .is_nan());
    }
}
