//! The metrics against scikit-image's on the same images: MSE, PSNR
//! (`peak_signal_noise_ratio`) and SSIM (`structural_similarity` with a 7x7 uniform
//! window and sample covariance, whose mean crops 3 pixels on each side: exactly the
//! windows that fit inside the image).

use raster::metrics::{psnr, Diff};
use testkit::rng::Rng;

const CHECK: &str = r#"
import sys, json, numpy as np
from skimage.metrics import structural_similarity, peak_signal_noise_ratio, mean_squared_error
w, h, peak = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
d = np.fromfile(sys.argv[1], dtype='<i4').reshape(2, h, w).astype(np.float64)
a, b = d[0], d[1]
s = structural_similarity(a, b, win_size=7, use_sample_covariance=True,
                          gaussian_weights=False, data_range=peak)
print(json.dumps({"ssim": float(s), "mse": float(mean_squared_error(a, b)),
                  "psnr": float(peak_signal_noise_ratio(a, b, data_range=peak))}))
"#;

#[test]
fn metrics_agree_with_scikit_image() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "skimage"]) else {
        return;
    };
    let mut rng = Rng::new(8);
    for (w, h, peak) in [(32usize, 20usize, 255.0), (9, 7, 255.0), (40, 33, 65535.0)] {
        // A smooth ramp with noise added: an SSIM well inside (0, 1).
        let a: Vec<i32> = (0..w * h)
            .map(|i| ((i % w + i / w) as f64 / (w + h) as f64 * peak) as i32)
            .collect();
        let b: Vec<i32> = a
            .iter()
            .map(|&v| {
                let noise = (rng.f64() - 0.5) * peak * 0.2;
                (f64::from(v) + noise).clamp(0.0, peak) as i32
            })
            .collect();
        let mut d = Diff::default();
        d.add(&a, &b);
        d.add_ssim(&a, &b, w, h, peak);
        let path = dir.path().join("ab.i32");
        let bytes: Vec<u8> = a.iter().chain(&b).flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let out = testkit::run_python(
            &py,
            CHECK,
            &[
                path.to_str().unwrap(),
                &w.to_string(),
                &h.to_string(),
                &peak.to_string(),
            ],
        );
        let want: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let close = |got: f64, key: &str| {
            let want = want[key].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{w}x{h} {key}: {got} here, {want} in scikit-image"
            );
        };
        close(d.mse(), "mse");
        close(psnr(d.mse(), peak).unwrap(), "psnr");
        close(d.ssim(), "ssim");
        assert!(d.ssim() > 0.05 && d.ssim() < 0.99, "{}", d.ssim());
    }
}
