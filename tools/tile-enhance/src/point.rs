//! Point operations as lookup tables over the sample range `0..=max` (255 or 65535), with
//! the rounding of the Pillow implementation comic tools use (ImageEnhance blends in
//! single precision and truncate; ImageOps.autocontrast truncates), so that a chain of
//! them is one table per component and an 8-bit result matches Pillow's exactly.
//!
//! The statistics some of them need (the mean of the greyscale image, per-component
//! histograms) are whole-image figures gathered by a streaming pass ([`Stats`]).

use raster::{Band, RowSource};

/// A lookup table: `lut[v]` is the new value of sample `v`.
pub type Lut = Vec<u16>;

/// `floor(x + 0.5)` clamped to `0..=max` (the same rounding the Pillow script uses).
fn round_clamp(x: f64, max: u32) -> u16 {
    (x + 0.5).floor().clamp(0.0, f64::from(max)) as u16
}

/// The comic-reader S-curve: s(i) = 255(0.5 - 0.5 cos(pi i/255)), shadows below 64 lifted
/// by 0.1(64 - i), blended back to the identity above 128 with weight (i - 128)/127. On
/// 16-bit data the same curve over the scaled value.
pub fn curve(max: u32) -> Lut {
    let m = f64::from(max);
    (0..=max)
        .map(|v| {
            let i = f64::from(v) * 255.0 / m;
            let mut s = 255.0 * (0.5 - 0.5 * (std::f64::consts::PI * i / 255.0).cos());
            if i < 64.0 {
                s += 0.1 * (64.0 - i);
            }
            if i > 128.0 {
                let w = (i - 128.0) / 127.0;
                s = s * (1.0 - w) + i * w;
            }
            round_clamp(s * m / 255.0, max)
        })
        .collect()
}

/// Gamma: out = max (v/max)^(1/g) (g above 1 brightens the midtones, as in levels tools).
pub fn gamma(g: f64, max: u32) -> Lut {
    let m = f64::from(max);
    (0..=max)
        .map(|v| round_clamp(m * (f64::from(v) / m).powf(1.0 / g), max))
        .collect()
}

/// Pillow's `ImageEnhance` blend of a constant image `base` with the image at `factor`:
/// `base + factor (v - base)` in single precision, truncated, clipped.
fn blend(base: f32, factor: f32, max: u32) -> Lut {
    (0..=max)
        .map(|v| {
            let t = base + factor * (v as f32 - base);
            if t <= 0.0 {
                0
            } else if t >= max as f32 {
                max as u16
            } else {
                t as u16
            }
        })
        .collect()
}

/// Brightness (ImageEnhance.Brightness: a blend with black).
pub fn brightness(f: f64, max: u32) -> Lut {
    blend(0.0, f as f32, max)
}

/// Contrast around `mean`, the rounded mean of the greyscale image
/// (ImageEnhance.Contrast).
pub fn contrast(f: f64, mean: u32, max: u32) -> Lut {
    blend(mean as f32, f as f32, max)
}

/// Levels: `black..white` stretched to the full range, then gamma.
pub fn levels(black: f64, white: f64, g: f64, max: u32) -> Lut {
    let m = f64::from(max);
    (0..=max)
        .map(|v| {
            let t = ((f64::from(v) - black) / (white - black)).clamp(0.0, 1.0);
            round_clamp(m * t.powf(1.0 / g), max)
        })
        .collect()
}

/// ImageOps.autocontrast's table for one component's histogram (`cutoff` percent off
/// each end), and the `(low, high)` it stretched (`None` when it left the data alone).
pub fn autocontrast(hist: &[u64], cutoff: f64) -> (Lut, Option<(u32, u32)>) {
    let max = (hist.len() - 1) as u32;
    let mut h = hist.to_vec();
    let n: u64 = h.iter().sum();
    if cutoff > 0.0 {
        // int(n * cutoff // 100), as Pillow computes it.
        let mut cut = (n as f64 * cutoff / 100.0).floor() as u64;
        for v in h.iter_mut() {
            if cut > *v {
                cut -= *v;
                *v = 0;
            } else {
                *v -= cut;
                cut = 0;
            }
            if cut == 0 {
                break;
            }
        }
        let mut cut = (n as f64 * cutoff / 100.0).floor() as u64;
        for v in h.iter_mut().rev() {
            if cut > *v {
                cut -= *v;
                *v = 0;
            } else {
                *v -= cut;
                cut = 0;
            }
            if cut == 0 {
                break;
            }
        }
    }
    let lo = h.iter().position(|&c| c > 0).unwrap_or(max as usize);
    let hi = h.iter().rposition(|&c| c > 0).unwrap_or(0);
    if hi <= lo {
        return ((0..=max).map(|v| v as u16).collect(), None);
    }
    let scale = f64::from(max) / (hi - lo) as f64;
    let offset = -(lo as f64) * scale;
    let lut = (0..=max)
        .map(|v| {
            let x = f64::from(v) * scale + offset;
            // Python's int() truncates toward zero.
            (x.trunc()).clamp(0.0, f64::from(max)) as u16
        })
        .collect();
    (lut, Some((lo as u32, hi as u32)))
}

/// Apply `lut` to a histogram: the histogram of the mapped data.
pub fn map_hist(hist: &[u64], lut: &[u16]) -> Vec<u64> {
    let mut out = vec![0u64; hist.len()];
    for (v, &c) in hist.iter().enumerate() {
        out[lut[v] as usize] += c;
    }
    out
}

/// `b` after `a`.
pub fn compose(a: &[u16], b: &[u16]) -> Lut {
    a.iter().map(|&v| b[v as usize]).collect()
}

/// Whole-image statistics of the colour components: one histogram each, and the
/// histogram of the greyscale image (Pillow's `convert("L")`: ITU-R 601-2 luma in 16-bit
/// fixed point).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per colour component.
    pub hist: Vec<Vec<u64>>,
    /// Of the greyscale version.
    pub gray: Vec<u64>,
}

impl Stats {
    /// Pillow's `int(ImageStat.Stat(im.convert("L")).mean[0] + 0.5)`.
    pub fn gray_mean(&self) -> u32 {
        let n: u64 = self.gray.iter().sum();
        let s: f64 = self
            .gray
            .iter()
            .enumerate()
            .map(|(v, &c)| v as f64 * c as f64)
            .sum();
        (s / n.max(1) as f64 + 0.5) as u32
    }
}

/// Read `src` to its end, `band_rows` rows at a time, and gather [`Stats`] of its first
/// `luts.len()` components as they are once `luts[c]` maps component `c` (the point
/// steps before the statistics: applied here, not by a stage writing every sample).
pub fn gather(
    src: &mut dyn RowSource,
    luts: &[Lut],
    band_rows: u32,
) -> Result<Stats, membudget::Error> {
    use rayon::prelude::*;
    let colour = luts.len();
    let g = src.geometry();
    let bins = if g.sample_bytes == 2 { 65536 } else { 256 };
    // Component histograms are counted on the samples as read and mapped at the end; the
    // greyscale one mixes components, so it is counted on mapped samples.
    let mut stats = Stats {
        hist: vec![vec![0u64; bins]; colour],
        gray: vec![0u64; bins],
    };
    // Pillow's luma weights times each mapped 8-bit value.
    let weighted: Vec<[u32; 256]> = [19595u32, 38470, 7471]
        .iter()
        .zip(luts)
        .map(|(&wt, l)| std::array::from_fn(|v| u32::from(l.get(v).copied().unwrap_or(0)) * wt))
        .collect();
    let mut band = Band::default();
    let mut y = 0;
    let w = g.width as usize;
    while y < g.height {
        let rows = band_rows.max(1).min(g.height - y);
        src.read_band(y, rows, &mut band)?;
        let n = w * rows as usize;
        let sample = |c: usize, i: usize| -> usize {
            if g.sample_bytes == 1 {
                band.planes[c][i] as usize
            } else {
                u16::from_ne_bytes([band.planes[c][2 * i], band.planes[c][2 * i + 1]]) as usize
            }
        };
        // Chunks of rows in parallel, each with its own histograms, summed.
        let chunk = w * 16;
        let part = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|k| {
                let range = k * chunk..((k + 1) * chunk).min(n);
                if g.sample_bytes == 1 && colour == 3 {
                    return rgb8(
                        &band.planes[0][range.clone()],
                        &band.planes[1][range.clone()],
                        &band.planes[2][range],
                        &weighted,
                    );
                }
                let mut s = Stats {
                    hist: vec![vec![0u64; bins]; colour],
                    gray: vec![0u64; bins],
                };
                for i in range {
                    if colour == 3 {
                        let (r, gg, b) = (sample(0, i), sample(1, i), sample(2, i));
                        s.hist[0][r] += 1;
                        s.hist[1][gg] += 1;
                        s.hist[2][b] += 1;
                        let (r, gg, b) = (
                            usize::from(luts[0][r]),
                            usize::from(luts[1][gg]),
                            usize::from(luts[2][b]),
                        );
                        let l = (r * 19595 + gg * 38470 + b * 7471 + 0x8000) >> 16;
                        s.gray[l] += 1;
                    } else {
                        let v = sample(0, i);
                        s.hist[0][v] += 1;
                        s.gray[usize::from(luts[0][v])] += 1;
                    }
                }
                s
            })
            .reduce_with(|mut a, b| {
                for (x, y) in a.hist.iter_mut().zip(&b.hist) {
                    x.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                }
                a.gray.iter_mut().zip(&b.gray).for_each(|(p, q)| *p += q);
                a
            });
        if let Some(p) = part {
            for (x, y) in stats.hist.iter_mut().zip(&p.hist) {
                x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
            }
            stats
                .gray
                .iter_mut()
                .zip(&p.gray)
                .for_each(|(a, b)| *a += b);
        }
        y += rows;
    }
    for (h, l) in stats.hist.iter_mut().zip(luts) {
        *h = map_hist(h, l);
    }
    Ok(stats)
}

/// [`Stats`] of 8-bit RGB planes, the component histograms of the samples as read, the
/// greyscale one of `(weighted[0][r] + weighted[1][g] + weighted[2][b] + 0x8000) >> 16`
/// (the luma of the mapped samples). Counts in `u32` (a chunk has fewer than 2^32
/// pixels), straight from the three slices; neighbouring pixels mostly fall in the same
/// bins, so four sets of histograms take the pixels in turn: an increment then rarely
/// waits for the one before to be stored.
fn rgb8(r: &[u8], g: &[u8], b: &[u8], weighted: &[[u32; 256]]) -> Stats {
    const WAYS: usize = 4;
    let [wr, wg, wb] = weighted else {
        unreachable!("three components");
    };
    // [way][r, g, b, gray][bin]
    let mut h = vec![[[0u32; 256]; 4]; WAYS];
    let n = r.len().min(g.len()).min(b.len());
    let (r, g, b) = (&r[..n], &g[..n], &b[..n]);
    let luma = |r: u8, g: u8, b: u8| {
        ((wr[usize::from(r)] + wg[usize::from(g)] + wb[usize::from(b)] + 0x8000) >> 16) as usize
            & 255
    };
    let whole = n / WAYS * WAYS;
    for ((r4, g4), b4) in r[..whole]
        .chunks_exact(WAYS)
        .zip(g[..whole].chunks_exact(WAYS))
        .zip(b[..whole].chunks_exact(WAYS))
    {
        for (k, hk) in h.iter_mut().enumerate() {
            let (r, g, b) = (r4[k], g4[k], b4[k]);
            hk[0][usize::from(r)] += 1;
            hk[1][usize::from(g)] += 1;
            hk[2][usize::from(b)] += 1;
            hk[3][luma(r, g, b)] += 1;
        }
    }
    for i in whole..n {
        let h0 = &mut h[0];
        h0[0][usize::from(r[i])] += 1;
        h0[1][usize::from(g[i])] += 1;
        h0[2][usize::from(b[i])] += 1;
        h0[3][luma(r[i], g[i], b[i])] += 1;
    }
    let sum = |c: usize| -> Vec<u64> {
        (0..256)
            .map(|v| h.iter().map(|hk| u64::from(hk[c][v])).sum())
            .collect()
    };
    Stats {
        hist: (0..3).map(sum).collect(),
        gray: sum(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocontrast_leaves_a_full_range_image_alone_and_stretches_a_narrow_one() {
        let full = vec![1u64; 256];
        let (lut, lohi) = autocontrast(&full, 0.0);
        assert_eq!(lohi, Some((0, 255)));
        assert!(lut.iter().enumerate().all(|(i, &v)| v as usize == i));
        let mut narrow = vec![0u64; 256];
        narrow[100] = 5;
        narrow[150] = 5;
        let (lut, lohi) = autocontrast(&narrow, 0.0);
        assert_eq!(lohi, Some((100, 150)));
        assert_eq!((lut[100], lut[150], lut[0], lut[255]), (0, 255, 0, 255));
        let mut one = vec![0u64; 256];
        one[7] = 9;
        assert_eq!(autocontrast(&one, 1.0).1, None);
    }

    #[test]
    fn rgb8_counts_as_the_definition() {
        let n = 5000;
        let px = |k: u32| -> Vec<u8> {
            (0..n)
                .map(|i: u32| (i.wrapping_mul(2654435761).rotate_left(k) >> 13) as u8)
                .collect()
        };
        let (r, g, b) = (px(3), px(11), px(19));
        // Through tables: the component histograms are of the samples as read, the
        // greyscale one of the mapped samples.
        let lut: Vec<[u32; 256]> = [(19595u32, 3usize), (38470, 5), (7471, 7)]
            .iter()
            .map(|&(wt, k)| std::array::from_fn(|v| ((v * k) % 256) as u32 * wt))
            .collect();
        let s = rgb8(&r, &g, &b, &lut);
        let mut want = vec![vec![0u64; 256]; 4];
        for i in 0..n as usize {
            want[0][usize::from(r[i])] += 1;
            want[1][usize::from(g[i])] += 1;
            want[2][usize::from(b[i])] += 1;
            let l = (usize::from(r[i]) * 3 % 256 * 19595
                + usize::from(g[i]) * 5 % 256 * 38470
                + usize::from(b[i]) * 7 % 256 * 7471
                + 0x8000)
                >> 16;
            want[3][l] += 1;
        }
        assert_eq!(s.hist, want[..3]);
        assert_eq!(s.gray, want[3]);
        // White stays in range: 255 * (19595 + 38470 + 7471) + 0x8000 < 256 << 16.
        let ident: Vec<[u32; 256]> = [19595u32, 38470, 7471]
            .iter()
            .map(|&wt| std::array::from_fn(|v| v as u32 * wt))
            .collect();
        assert_eq!(rgb8(&[255], &[255], &[255], &ident).gray[255], 1);
    }

    #[test]
    fn curve_ends_and_identity_blend() {
        let c = curve(255);
        // i = 0: 0 + 0.1 * 64 = 6.4; i = 255: the identity.
        assert_eq!((c[0], c[255]), (6, 255));
        let c16 = curve(65535);
        assert_eq!(c16[65535], 65535);
    }
}
