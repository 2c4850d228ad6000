//! The automatic threshold: big-fish's elbow method (`bigfish.detection`
//! `automated_threshold_setting`, 0.6), computed from two histograms gathered over every
//! tile in a first pass instead of from the whole filtered image, so the tiled threshold
//! equals the whole-image one.
//!
//! big-fish filters a uint8/uint16 image with `clip(-LoG)` cast back to the input's integer
//! type (rounded): a value `u` per pixel in sample units. Here `u = rint(max(0, r /
//! sigma^2))` from our scale-normalised response `r`, the same number. Then:
//! candidate thresholds run from 0 to `int(percentile(all u, 99.9999))` (100 evenly spaced
//! values when that is below 100, else every integer); the curve is the log of the number
//! of local maxima with `u > t`, smoothed by a centred moving average of 5 (reflect
//! padded), cut where it drops to 2 or below; the threshold is big-fish's
//! `get_breaking_point` of that curve. The result is in `u` units: multiply by sigma^2
//! for the response.

/// Bins of the histograms: the uint16 range big-fish casts to; values above count in the
/// last bin (big-fish refuses such an image; here the top 0.0001% of pixels could lie
/// there, which moves the percentile by nothing).
pub const BINS: usize = 1 << 16;

/// The first pass's two histograms of `u`.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Every pixel's `u` (for the percentile that ends the candidate range).
    pub all: Vec<u64>,
    /// The `u` of every local maximum with `u > 0`.
    pub maxima: Vec<u64>,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            all: vec![0; BINS],
            maxima: vec![0; BINS],
        }
    }
}

/// `u` of a response `r` at `sigma^2 = s2`, as a bin.
#[inline(always)]
pub fn bin(r: f32, s2: f32) -> usize {
    // max(NaN, 0) is 0; from BINS - 1 on, the last bin.
    let v = (r / s2).max(0.0).min((BINS - 1) as f32);
    // Round half to even as rint does, without its libm call (no SSE4.1 in the baseline
    // build), branch-free: adding and removing 2^23 leaves the nearest integer, ties to
    // even, for 0 <= v < 2^23.
    // Through i32 (0 <= v < 2^16): a conversion the compiler vectorises, where a
    // float-to-usize one is scalar.
    const BIG: f32 = 8_388_608.0;
    ((v + BIG) - BIG) as i32 as usize
}

impl Histograms {
    /// Add another tile's counts.
    pub fn merge(&mut self, o: &Histograms) {
        for (a, b) in self.all.iter_mut().zip(&o.all) {
            *a += b;
        }
        for (a, b) in self.maxima.iter_mut().zip(&o.maxima) {
            *a += b;
        }
    }

    /// numpy's `percentile(values, q)` (linear interpolation) from the histogram.
    fn percentile(&self, q: f64) -> f64 {
        let n: u64 = self.all.iter().sum();
        if n == 0 {
            return 0.0;
        }
        let rank = q / 100.0 * (n - 1) as f64;
        let (lo, hi) = (rank.floor() as u64, rank.ceil() as u64);
        let value_at = |k: u64| {
            let mut seen = 0;
            for (v, &c) in self.all.iter().enumerate() {
                seen += c;
                if seen > k {
                    return v as f64;
                }
            }
            (BINS - 1) as f64
        };
        let (a, b) = (value_at(lo), value_at(hi));
        a + (b - a) * (rank - lo as f64)
    }

    /// The elbow threshold in `u` units, or `None` when no local maximum is above 0 or
    /// the curve is too short (big-fish then detects nothing).
    pub fn elbow(&self) -> Option<f64> {
        let end = self.percentile(99.9999) as i64;
        let thresholds: Vec<f64> = if end < 100 {
            // numpy.linspace(0, end, 100)
            (0..100).map(|i| end as f64 * i as f64 / 99.0).collect()
        } else {
            (0..=end).map(|i| i as f64).collect()
        };
        // Local maxima with u > t, for each candidate: a suffix sum over the bins.
        let mut above = vec![0u64; BINS + 1];
        for v in (0..BINS).rev() {
            above[v] = above[v + 1] + self.maxima[v];
        }
        let counts: Vec<f64> = thresholds
            .iter()
            .map(|&t| {
                // u > t for integer u: u >= floor(t) + 1.
                let first = (t.floor() as usize + 1).min(BINS);
                (above[first] as f64).ln()
            })
            .collect();
        let smooth = centred_moving_average(&counts, 5);
        let kept: Vec<f64> = smooth.into_iter().filter(|&c| c > 2.0).collect();
        if kept.is_empty() {
            return None;
        }
        let x = &thresholds[..kept.len()];
        breaking_point(x, &kept)
    }
}

/// big-fish's `centred_moving_average` (numpy reflect padding, cumulative sums, so a
/// `-inf` poisons what follows it as there).
fn centred_moving_average(a: &[f64], n: usize) -> Vec<f64> {
    let r = n / 2;
    let len = a.len() as i64;
    let padded: Vec<f64> = (-(r as i64)..len + r as i64)
        .map(|i| {
            // numpy.pad mode='reflect': the edge is not repeated.
            let mut j = i;
            while !(0..len).contains(&j) && len > 1 {
                j = if j < 0 { -j } else { 2 * (len - 1) - j };
            }
            a[j.clamp(0, len - 1) as usize]
        })
        .collect();
    let mut cumsum = vec![0.0f64];
    let mut out = Vec::with_capacity(a.len());
    for (i, &x) in padded.iter().enumerate() {
        let c = cumsum[i] + x;
        cumsum.push(c);
        if i + 1 >= n {
            out.push((cumsum[i + 1] - cumsum[i + 1 - n]) / n as f64);
        }
    }
    out
}

/// big-fish's `get_breaking_point`: where the curve's gradient first comes back above the
/// mean slope after first falling below it.
fn breaking_point(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = y.len();
    if n < 2 {
        return x.first().copied();
    }
    let slope = (y[n - 1] - y[0]) / n as f64;
    // numpy.gradient: one-sided at the ends, central inside.
    let grad: Vec<f64> = (0..n)
        .map(|i| match i {
            0 => y[1] - y[0],
            i if i == n - 1 => y[n - 1] - y[n - 2],
            i => (y[i + 1] - y[i - 1]) / 2.0,
        })
        .collect();
    let m: Vec<bool> = grad.iter().map(|&g| g >= slope).collect();
    // big-fish raises when the gradient never falls below the slope: no elbow.
    let j = m.iter().position(|&b| !b)?;
    let i = m[j..].iter().position(|&b| b).map_or(n - 1, |i| j + i);
    Some(x[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_is_big_fishs() {
        // bigfish.stack.centered_moving_average(np.array([1., 2, 4, 8, 16, 32]), 5)
        let got = centred_moving_average(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0], 5);
        let want = [2.6, 3.4, 6.2, 12.4, 15.2, 16.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn bins_round_half_to_even() {
        for (r, want) in [
            (0.5f32, 0usize),
            (1.5, 2),
            (2.5, 2),
            (2.4999998, 2),
            (3.5000002, 4),
            (-3.0, 0),
            (f32::NAN, 0),
            (65534.5, 65534),
            (65535.4, BINS - 1),
            (1e30, BINS - 1),
        ] {
            assert_eq!(bin(r, 1.0), want, "{r}");
        }
        let mut state = 7u32;
        for _ in 0..100_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let r = (state >> 8) as f32 / 97.0;
            let want = ((r / 2.25).round_ties_even() as usize).min(BINS - 1);
            assert_eq!(bin(r, 2.25), want, "{r}");
        }
    }

    #[test]
    fn no_maxima_no_threshold() {
        assert_eq!(Histograms::default().elbow(), None);
    }
}
