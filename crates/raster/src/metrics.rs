//! Image quality metrics computed tile by tile, so that an image larger than memory is
//! measured without being held: MSE and PSNR over every sample, and SSIM (7x7 uniform
//! window, K1 = 0.01, K2 = 0.03, sample covariance, the mean over the windows that fit
//! inside each tile, as scikit-image's `structural_similarity` computes it per image with
//! `win_size=7, use_sample_covariance=True, gaussian_weights=False`).

/// Running sums of the differences between a reference and a test image, one component's
/// tiles added one by one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// Sum of squared errors.
    pub sq_err: f64,
    /// Sum of absolute errors.
    pub abs_sum: f64,
    /// Largest absolute error.
    pub max_abs: i32,
    /// Samples that differ.
    pub differing: u64,
    /// Samples compared.
    pub samples: u64,
    /// Sum of the SSIM of every window (see [`Diff::add_ssim`]).
    pub ssim_sum: f64,
    /// Windows summed in `ssim_sum`.
    pub ssim_windows: u64,
}

impl Diff {
    /// Add the errors of `test` against `reference` (same length).
    pub fn add(&mut self, reference: &[i32], test: &[i32]) {
        for (&o, &d) in reference.iter().zip(test) {
            let e = f64::from(o - d);
            self.sq_err += e * e;
            self.abs_sum += e.abs();
            self.max_abs = self.max_abs.max((o - d).abs());
            self.differing += u64::from(o != d);
        }
        self.samples += reference.len().min(test.len()) as u64;
    }

    /// Add the SSIM windows of one `w` x `h` tile whose samples range over `0..=peak`.
    pub fn add_ssim(&mut self, reference: &[i32], test: &[i32], w: usize, h: usize, peak: f64) {
        let (s, n) = ssim_sum(reference, test, w, h, peak);
        self.ssim_sum += s;
        self.ssim_windows += n;
    }

    /// Mean squared error of the samples added.
    pub fn mse(&self) -> f64 {
        self.sq_err / self.samples.max(1) as f64
    }

    /// Mean SSIM over the windows added; 1 when no window fitted (tiles under 7x7).
    pub fn ssim(&self) -> f64 {
        if self.ssim_windows == 0 {
            1.0
        } else {
            self.ssim_sum / self.ssim_windows as f64
        }
    }

    /// The sums of several components together (the SSIM sums too: use [`Diff::ssim`] per
    /// component for the mean over components).
    pub fn total<'a>(diffs: impl IntoIterator<Item = &'a Diff>) -> Diff {
        diffs.into_iter().fold(Diff::default(), |mut t, d| {
            t.sq_err += d.sq_err;
            t.abs_sum += d.abs_sum;
            t.max_abs = t.max_abs.max(d.max_abs);
            t.differing += d.differing;
            t.samples += d.samples;
            t.ssim_sum += d.ssim_sum;
            t.ssim_windows += d.ssim_windows;
            t
        })
    }
}

/// PSNR in dB for a mean squared error and the largest sample value; `None` when the
/// images are identical (infinite PSNR).
pub fn psnr(mse: f64, peak: f64) -> Option<f64> {
    (mse > 0.0).then(|| 10.0 * (peak * peak / mse).log10())
}

/// Sum of SSIM over every 7x7 window inside a `w` x `h` tile, and the number of windows.
pub fn ssim_sum(a: &[i32], b: &[i32], w: usize, h: usize, peak: f64) -> (f64, u64) {
    const N: usize = 7;
    if w < N || h < N || a.len() < w * h || b.len() < w * h {
        return (0.0, 0);
    }
    let c1 = (0.01 * peak).powi(2);
    let c2 = (0.03 * peak).powi(2);
    // Integral images of a, b, a^2, b^2, ab (f64: exact for 16-bit samples over tiles up
    // to 2^20 pixels is not guaranteed, but the relative error stays far below 1e-9).
    let iw = w + 1;
    let mut sums = vec![[0f64; 5]; iw * (h + 1)];
    for y in 0..h {
        let mut row = [0f64; 5];
        for x in 0..w {
            let (p, q) = (f64::from(a[y * w + x]), f64::from(b[y * w + x]));
            row[0] += p;
            row[1] += q;
            row[2] += p * p;
            row[3] += q * q;
            row[4] += p * q;
            let above = sums[y * iw + x + 1];
            let cell = &mut sums[(y + 1) * iw + x + 1];
            for k in 0..5 {
                cell[k] = above[k] + row[k];
            }
        }
    }
    let n = (N * N) as f64;
    let cov_norm = n / (n - 1.0);
    let mut total = 0.0;
    let mut count = 0u64;
    for y in 0..=h - N {
        for x in 0..=w - N {
            let g = |yy: usize, xx: usize| sums[yy * iw + xx];
            let (s11, s12, s21, s22) = (g(y, x), g(y, x + N), g(y + N, x), g(y + N, x + N));
            let mut m = [0f64; 5];
            for k in 0..5 {
                m[k] = (s22[k] - s12[k] - s21[k] + s11[k]) / n;
            }
            let (ua, ub) = (m[0], m[1]);
            let va = cov_norm * (m[2] - ua * ua);
            let vb = cov_norm * (m[3] - ub * ub);
            let cab = cov_norm * (m[4] - ua * ub);
            total += ((2.0 * ua * ub + c1) * (2.0 * cab + c2))
                / ((ua * ua + ub * ub + c1) * (va + vb + c2));
            count += 1;
        }
    }
    (total, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssim_of_identical_tiles_is_one() {
        let a: Vec<i32> = (0..400).map(|i| i * 37 % 255).collect();
        let (s, n) = ssim_sum(&a, &a, 20, 20, 255.0);
        assert_eq!(n, 14 * 14);
        assert!((s / n as f64 - 1.0).abs() < 1e-12);
        let b: Vec<i32> = a.iter().map(|v| 255 - v).collect();
        let (s2, _) = ssim_sum(&a, &b, 20, 20, 255.0);
        assert!(s2 / (n as f64) < 0.5);
    }

    #[test]
    fn mse_and_psnr_known_values() {
        let mut d = Diff::default();
        d.add(&[0, 10, 20, 30], &[1, 10, 17, 30]);
        assert_eq!(d.samples, 4);
        assert_eq!(d.differing, 2);
        assert_eq!(d.max_abs, 3);
        assert_eq!(d.mse(), 10.0 / 4.0);
        // 10 log10(255^2 / 1) = 48.1308...
        assert!((psnr(1.0, 255.0).unwrap() - 48.130_803_608_679_1).abs() < 1e-9);
        assert_eq!(psnr(0.0, 255.0), None);
        let t = Diff::total([&d, &d]);
        assert_eq!((t.samples, t.differing, t.mse()), (8, 4, 2.5));
    }
}
