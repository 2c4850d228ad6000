//! Shared by the `spots*` tests: generated scenes (Gaussian spots on a noisy background,
//! from a seed, with their ground truth), written as TIFFs by the `tiff` crate's encoder,
//! and the command.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use testkit::Rng;

/// A generated image and where its spots are.
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u16>,
    /// (y, x) of every spot centre.
    pub truth: Vec<(f64, f64)>,
}

/// `n` random spots (sigma 1.2 to 2.2, amplitude 300 to 3000) plus the spots at `extra`
/// (amplitude 2000, sigma 1.5) on a background of about 100 +- 10.
pub fn scene(seed: u64, width: u32, height: u32, n: usize, extra: &[(f64, f64)]) -> Scene {
    let mut rng = Rng::new(seed);
    let mut img: Vec<f64> = (0..width as usize * height as usize)
        .map(|_| 100.0 + (rng.f64() + rng.f64() + rng.f64() - 1.5) * 20.0)
        .collect();
    let mut truth = Vec::new();
    let add = |img: &mut Vec<f64>, y: f64, x: f64, s: f64, a: f64| {
        let r = (4.0 * s).ceil() as i64 + 1;
        for yy in (y as i64 - r).max(0)..=(y as i64 + r).min(i64::from(height) - 1) {
            for xx in (x as i64 - r).max(0)..=(x as i64 + r).min(i64::from(width) - 1) {
                let d2 = (yy as f64 - y).powi(2) + (xx as f64 - x).powi(2);
                img[yy as usize * width as usize + xx as usize] += a * (-d2 / (2.0 * s * s)).exp();
            }
        }
    };
    for _ in 0..n {
        let y = rng.f64() * f64::from(height - 1);
        let x = rng.f64() * f64::from(width - 1);
        let s = 1.2 + rng.f64();
        let a = 300.0 + rng.f64() * 2700.0;
        add(&mut img, y, x, s, a);
        truth.push((y, x));
    }
    for &(y, x) in extra {
        add(&mut img, y, x, 1.5, 2000.0);
        truth.push((y, x));
    }
    Scene {
        width,
        height,
        pixels: img
            .iter()
            .map(|v| v.round().clamp(0.0, 65535.0) as u16)
            .collect(),
        truth,
    }
}

/// Write 16-bit gray pages.
pub fn write_gray16(path: &Path, width: u32, height: u32, pages: &[&[u16]]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    for p in pages {
        enc.write_image::<tiff::encoder::colortype::Gray16>(width, height, p)
            .unwrap();
    }
}

/// Write one 16-bit RGB page from three planes.
pub fn write_rgb16(path: &Path, width: u32, height: u32, planes: [&[u16]; 3]) {
    let inter: Vec<u16> = (0..planes[0].len())
        .flat_map(|i| [planes[0][i], planes[1][i], planes[2][i]])
        .collect();
    let f = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    enc.write_image::<tiff::encoder::colortype::RGB16>(width, height, &inter)
        .unwrap();
}

/// `tile-enhance spots ARGS...`.
pub fn spots(args: &[&str]) -> testkit::Ran {
    testkit::tool("tile-enhance").arg("spots").args(args).run()
}

/// Run and return the single record, checking success.
pub fn spots_ok(args: &[&str]) -> serde_json::Value {
    let recs = spots(args).check().records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs.into_iter().next().unwrap()
}

/// The CSV a record names.
pub fn csv_of(rec: &serde_json::Value) -> String {
    let p = PathBuf::from(rec["spots"]["output"].as_str().expect("an output"));
    std::fs::read_to_string(p).unwrap()
}

/// (y, x) of a CSV's rows.
pub fn positions(csv: &str) -> Vec<(u32, u32)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// F1 of detections against the truth: greedy matching within `tol` pixels, closest
/// pairs first.
pub fn f1(found: &[(f64, f64)], truth: &[(f64, f64)], tol: f64) -> (f64, f64, f64) {
    let mut pairs = Vec::new();
    for (i, a) in found.iter().enumerate() {
        for (j, b) in truth.iter().enumerate() {
            let d = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
            if d <= tol {
                pairs.push((d, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut uf, mut ut) = (vec![false; found.len()], vec![false; truth.len()]);
    let mut tp = 0.0;
    for (_, i, j) in pairs {
        if !uf[i] && !ut[j] {
            uf[i] = true;
            ut[j] = true;
            tp += 1.0;
        }
    }
    let p = tp / found.len().max(1) as f64;
    let r = tp / truth.len().max(1) as f64;
    (
        p,
        r,
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        },
    )
}
