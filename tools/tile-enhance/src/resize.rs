//! Lanczos3 resampling as Pillow computes its coefficients (support 3 times the scale
//! when shrinking, taps clipped at the image edges and renormalised), separable, every
//! component (alpha too). An output row belongs to the band holding its centre; the
//! window's halo covers the filter's support, so a band computes its rows exactly as
//! the whole image would. Optionally crops (`--fill`): the kept columns and rows are a
//! window into the resampled image.

use crate::stage::Kernel;
use raster::window::View;
use raster::{Band, Geometry};
use rayon::prelude::*;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let p = std::f64::consts::PI * x;
        p.sin() / p
    }
}

fn lanczos3(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// The taps of each output sample along one axis.
#[derive(Debug, Clone)]
struct Coeffs {
    start: Vec<u32>,
    len: Vec<u32>,
    /// `ksize` weights per output sample.
    w: Vec<f32>,
    ksize: usize,
    /// The input sample holding each output sample's centre.
    owner: Vec<u32>,
    support: f64,
}

impl Coeffs {
    /// `out` samples `first .. first + out` of `in_size` resampled to `full`.
    fn new(in_size: u32, full: u32, first: u32, out: u32) -> Coeffs {
        let scale = f64::from(in_size) / f64::from(full);
        let fscale = scale.max(1.0);
        let support = 3.0 * fscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut c = Coeffs {
            start: Vec::with_capacity(out as usize),
            len: Vec::with_capacity(out as usize),
            w: vec![0.0; ksize * out as usize],
            ksize,
            owner: Vec::with_capacity(out as usize),
            support,
        };
        for (i, xx) in (first..first + out).enumerate() {
            let center = (f64::from(xx) + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let n = (xmax - xmin).max(0) as usize;
            let mut k: Vec<f64> = (0..n)
                .map(|x| lanczos3((x as f64 + xmin as f64 - center + 0.5) / fscale))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            for (j, v) in k.iter().enumerate().take(ksize) {
                c.w[i * ksize + j] = *v as f32;
            }
            c.start.push(xmin as u32);
            c.len.push(n.min(ksize) as u32);
            c.owner
                .push((center.floor() as i64).clamp(0, i64::from(in_size) - 1) as u32);
        }
        c
    }
}

/// Resampling to `out_w` x `out_h` (after cropping a resampled `full_w` x `full_h`).
#[derive(Debug, Clone)]
pub struct Resize {
    h: Coeffs,
    v: Coeffs,
    out: (u32, u32),
}

impl Resize {
    /// `in_w` x `in_h` resampled to `full` and cropped to `out` at `offset`.
    pub fn new(input: (u32, u32), full: (u32, u32), offset: (u32, u32), out: (u32, u32)) -> Self {
        Resize {
            h: Coeffs::new(input.0, full.0, offset.0, out.0),
            v: Coeffs::new(input.1, full.1, offset.1, out.1),
            out,
        }
    }
}

impl Kernel for Resize {
    fn halo(&self) -> u32 {
        self.v.support.ceil() as u32 + 1
    }
    fn out_geometry(&self, g: Geometry) -> Geometry {
        Geometry {
            width: self.out.0,
            height: self.out.1,
            ..g
        }
    }
    fn compute(&self, view: &View<'_>, g: Geometry, out: &mut Band) {
        let sb = g.sample_bytes;
        let (lo, hi) = (view.y0, view.y0 + view.rows);
        // The output rows whose centre lies in this band's core.
        let first = self.v.owner.partition_point(|&o| o < lo);
        let last = self.v.owner.partition_point(|&o| o < hi);
        let ow = self.out.0 as usize;
        out.shape(first as u32, (last - first) as u32, self.out.0, g.comps, sb);
        if first == last {
            return;
        }
        // Input rows they read.
        let r0 = self.v.start[first];
        let r1 = (first..last)
            .map(|i| self.v.start[i] + self.v.len[i])
            .max()
            .unwrap_or(r0);
        let nrows = (r1 - r0) as usize;
        let rl = out.row_len();
        let mut tmp = vec![0f32; nrows * ow];
        for (c, plane) in out.planes.iter_mut().enumerate() {
            // Horizontal pass over the rows read.
            tmp.par_chunks_mut(ow).enumerate().for_each(|(i, t)| {
                let src = view.row(c, i64::from(r0) + i as i64 - i64::from(lo));
                for (x, o) in t.iter_mut().enumerate() {
                    let (s, n) = (self.h.start[x] as usize, self.h.len[x] as usize);
                    let k = &self.h.w[x * self.h.ksize..x * self.h.ksize + n];
                    let mut acc = 0f32;
                    if sb == 1 {
                        for (j, w) in k.iter().enumerate() {
                            acc += w * f32::from(src[s + j]);
                        }
                    } else {
                        for (j, w) in k.iter().enumerate() {
                            let at = 2 * (s + j);
                            acc += w * f32::from(u16::from_ne_bytes([src[at], src[at + 1]]));
                        }
                    }
                    *o = acc;
                }
            });
            // Vertical pass.
            plane.par_chunks_mut(rl).enumerate().for_each(|(i, row)| {
                let yo = first + i;
                let (s, n) = (self.v.start[yo] as usize, self.v.len[yo] as usize);
                let k = &self.v.w[yo * self.v.ksize..yo * self.v.ksize + n];
                for x in 0..ow {
                    let mut acc = 0f32;
                    for (j, w) in k.iter().enumerate() {
                        acc += w * tmp[(s + j - r0 as usize) * ow + x];
                    }
                    crate::stage::put(row, sb, x, acc);
                }
            });
        }
    }
}
