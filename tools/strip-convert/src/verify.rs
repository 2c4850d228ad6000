//! `--verify`: decode the written JP2 tile by tile with OpenJPEG (bounded memory: one tile
//! and one band of the source at a time) and compare with the TIFF, read again band by
//! band. Lossless output must match exactly; lossy output is measured by MSE, PSNR and
//! SSIM (7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean over
//! components and over the windows that fit inside each tile, as scikit-image computes
//! it per image) and judged against thresholds.

use crate::encode::EncodeParams;
use crate::source::{Band, TiffPage};
use membudget::{Error, ErrorKind};
use openjpeg_sys as opj;
use serde::Serialize;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr;

/// Acceptance thresholds for lossy output.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Lowest PSNR in dB.
    pub min_psnr: f64,
    /// Lowest SSIM.
    pub min_ssim: f64,
}

/// The `verification` section of a record.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `ok`, `warn` (lossy below a threshold) or `fail` (lossless mismatch).
    pub status: &'static str,
    /// `exact` (lossless) or `metrics` (lossy).
    pub mode: &'static str,
    /// Samples that differ.
    pub differing_samples: u64,
    /// Mean squared error over every sample.
    pub mse: f64,
    /// PSNR in dB (`null` when identical).
    pub psnr: Option<f64>,
    /// Mean SSIM over components.
    pub ssim: f64,
    /// Tiles decoded.
    pub tiles: u32,
    /// What was found, in words.
    pub message: String,
}

struct Decoder {
    codec: *mut opj::opj_codec_t,
    stream: *mut opj::opj_stream_t,
    image: *mut opj::opj_image_t,
    errors: Box<ErrText>,
}

/// OpenJPEG's error messages; boxed so its address stays fixed while the decoder moves.
#[derive(Debug, Default)]
struct ErrText(String);

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: pointers created by OpenJPEG, destroyed once.
        unsafe {
            if !self.image.is_null() {
                opj::opj_image_destroy(self.image);
            }
            if !self.codec.is_null() {
                opj::opj_destroy_codec(self.codec);
            }
            if !self.stream.is_null() {
                opj::opj_stream_destroy(self.stream);
            }
        }
    }
}

unsafe extern "C" fn on_error(msg: *const c_char, data: *mut c_void) {
    if msg.is_null() || data.is_null() {
        return;
    }
    // SAFETY: `data` is the decoder's boxed ErrText, alive while the codec is.
    let s = unsafe { &mut *(data as *mut ErrText) };
    s.0.push_str(unsafe { CStr::from_ptr(msg) }.to_string_lossy().trim());
    s.0.push_str("; ");
}

unsafe extern "C" fn ignore(_msg: *const c_char, _data: *mut c_void) {}

impl Decoder {
    fn open(path: &Path) -> Result<Decoder, Error> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::new(ErrorKind::Io, "path contains NUL"))?;
        let mut d = Decoder {
            codec: ptr::null_mut(),
            stream: ptr::null_mut(),
            image: ptr::null_mut(),
            errors: Box::default(),
        };
        let errs: *mut ErrText = &mut *d.errors;
        // SAFETY: documented call order (stream, codec, setup, read_header); all checked.
        unsafe {
            d.stream = opj::opj_stream_create_default_file_stream(cpath.as_ptr(), 1);
            if d.stream.is_null() {
                return Err(Error::new(
                    ErrorKind::Io,
                    "cannot open the JP2 for verification",
                ));
            }
            d.codec = opj::opj_create_decompress(opj::CODEC_FORMAT::OPJ_CODEC_JP2);
            opj::opj_set_error_handler(d.codec, Some(on_error), errs as *mut c_void);
            opj::opj_set_warning_handler(d.codec, Some(ignore), ptr::null_mut());
            opj::opj_set_info_handler(d.codec, Some(ignore), ptr::null_mut());
            let mut p: opj::opj_dparameters_t = std::mem::zeroed();
            opj::opj_set_default_decoder_parameters(&mut p);
            if opj::opj_setup_decoder(d.codec, &mut p) == 0
                || opj::opj_read_header(d.stream, d.codec, &mut d.image) == 0
            {
                return Err(d.fail("reading the header"));
            }
        }
        Ok(d)
    }

    fn fail(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Verify,
            format!(
                "verification could not decode the output ({what}): {}",
                self.errors.0
            ),
        )
    }

    /// Decode tile `index`; the samples are then in `image.comps[c].data`.
    fn tile(&mut self, index: u32) -> Result<(), Error> {
        // SAFETY: codec, stream and image valid; OpenJPEG reallocates component data.
        if unsafe { opj::opj_get_decoded_tile(self.codec, self.stream, self.image, index) } == 0 {
            return Err(self.fail(&format!("tile {index}")));
        }
        Ok(())
    }

    /// Component `c`'s decoded samples and their width and height.
    fn comp(&self, c: usize) -> Option<(&[i32], usize, usize)> {
        // SAFETY: image valid; comps has numcomps entries; data has w*h samples.
        unsafe {
            let img = &*self.image;
            if c >= img.numcomps as usize {
                return None;
            }
            let comp = &*img.comps.add(c);
            if comp.data.is_null() {
                return None;
            }
            let (w, h) = (comp.w as usize, comp.h as usize);
            Some((std::slice::from_raw_parts(comp.data, w * h), w, h))
        }
    }
}

/// Per-component running sums.
#[derive(Debug, Default, Clone)]
struct Acc {
    sq_err: f64,
    differing: u64,
    samples: u64,
    ssim_sum: f64,
    ssim_windows: u64,
}

/// Decode `jp2` and compare it with page `index` of `tiff`.
pub fn verify(
    jp2: &Path,
    tiff: &Path,
    index: usize,
    params: &EncodeParams,
    t: &Thresholds,
) -> Result<Verification, Error> {
    let mut dec = Decoder::open(jp2)?;
    let mut src = TiffPage::open(tiff, index)?;
    let comps = usize::from(params.comps);
    let mut acc = vec![Acc::default(); comps];
    let (across, down) = params.tile_grid();
    let mut band = Band::default();
    let peak = f64::from((1u32 << params.prec) - 1);
    for row in 0..down {
        let (_, y0, _, y1) = params.tile_rect(row * across);
        src.read_band(y0, y1 - y0, &mut band)?;
        for col in 0..across {
            let index = row * across + col;
            let (x0, _, x1, _) = params.tile_rect(index);
            dec.tile(index)?;
            for (c, a) in acc.iter_mut().enumerate() {
                let (data, w, h) = dec
                    .comp(c)
                    .ok_or_else(|| dec.fail(&format!("component {c} missing")))?;
                if w != (x1 - x0) as usize || h != band.rows as usize {
                    return Err(Error::new(
                        ErrorKind::Verify,
                        format!(
                            "tile {index}: decoded {w}x{h}, expected {}x{}",
                            x1 - x0,
                            band.rows
                        ),
                    ));
                }
                let mut orig = vec![0i32; w * h];
                let plane = &band.planes[c];
                let bw = band.width as usize;
                for y in 0..h {
                    for x in 0..w {
                        let i = y * bw + x0 as usize + x;
                        orig[y * w + x] = if band.sample_bytes == 1 {
                            i32::from(plane[i])
                        } else {
                            i32::from(u16::from_ne_bytes([plane[2 * i], plane[2 * i + 1]]))
                        };
                    }
                }
                for (o, d) in orig.iter().zip(data) {
                    let e = f64::from(o - d);
                    a.sq_err += e * e;
                    a.differing += u64::from(o != d);
                }
                a.samples += (w * h) as u64;
                if params.irreversible {
                    let (s, n) = ssim_sum(&orig, data, w, h, peak);
                    a.ssim_sum += s;
                    a.ssim_windows += n;
                }
            }
        }
    }
    let samples: u64 = acc.iter().map(|a| a.samples).sum();
    let differing: u64 = acc.iter().map(|a| a.differing).sum();
    let mse = acc.iter().map(|a| a.sq_err).sum::<f64>() / samples.max(1) as f64;
    let psnr = (mse > 0.0).then(|| 10.0 * (peak * peak / mse).log10());
    let ssim = if params.irreversible {
        acc.iter()
            .map(|a| {
                if a.ssim_windows == 0 {
                    1.0
                } else {
                    a.ssim_sum / a.ssim_windows as f64
                }
            })
            .sum::<f64>()
            / comps as f64
    } else if differing == 0 {
        1.0
    } else {
        f64::NAN
    };
    let tiles = across * down;
    let v = if !params.irreversible {
        if differing == 0 {
            Verification {
                status: "ok",
                mode: "exact",
                differing_samples: 0,
                mse: 0.0,
                psnr: None,
                ssim: 1.0,
                tiles,
                message: "lossless: every sample matches the source".into(),
            }
        } else {
            Verification {
                status: "fail",
                mode: "exact",
                differing_samples: differing,
                mse,
                psnr,
                ssim: if ssim.is_nan() { 0.0 } else { ssim },
                tiles,
                message: format!("lossless output differs from the source in {differing} samples"),
            }
        }
    } else {
        let p = psnr.unwrap_or(f64::INFINITY);
        let ok = p >= t.min_psnr && ssim >= t.min_ssim;
        Verification {
            status: if ok { "ok" } else { "warn" },
            mode: "metrics",
            differing_samples: differing,
            mse,
            psnr,
            ssim,
            tiles,
            message: format!(
                "PSNR {} dB (min {}), SSIM {ssim:.4} (min {})",
                psnr.map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "inf".into()),
                t.min_psnr,
                t.min_ssim
            ),
        }
    };
    Ok(v)
}

/// Sum of SSIM over every 7x7 window inside a `w` x `h` tile, and the number of windows.
fn ssim_sum(a: &[i32], b: &[i32], w: usize, h: usize, peak: f64) -> (f64, u64) {
    const N: usize = 7;
    if w < N || h < N {
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
}
