//! Cost model of FITS stacking and normalisation by row blocks.
//!
//! A stack of N frames is combined (mean, median, sigma clipping) one block of rows at a
//! time: each frame contributes its rows of the block as 32-bit floats, a scratch copy
//! sorts one pixel's N values per worker, and the output and rejection-count blocks are
//! 32-bit each. Every frame is open at once, and CFITSIO keeps 40 buffers of 2880 bytes
//! per open file. Calibrated on strip-convert's measured peak RSS (80 frames of
//! 1024x1024 float32: 8, 16 and 64 rows predicted 21.1, 24.2, 39.9 MB, measured 21.2,
//! 24.0, 40.2 MB). The number of
//! frames of a record is its image planes (`pages`: image HDUs and planes of a cube); when
//! frames come from many files, the tool plans with the sum.

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

/// The FITS stacking model.
#[derive(Debug, Clone)]
pub struct FitsStack {
    /// Process overhead (including CFITSIO's buffers per open file).
    pub fixed: u64,
    /// Bytes per frame-row sample in flight (f32 data).
    pub bytes_per_sample: u64,
    /// Bytes per open frame (CFITSIO's I/O buffers and file structures).
    pub per_frame: u64,
}

impl Default for FitsStack {
    fn default() -> Self {
        FitsStack {
            // Measured again after raster linked libjpeg-turbo, OpenJPEG's decoder, WebP
            // and LZMA: the process's baseline grew by about 1 MiB.
            fixed: 12 * MIB,
            bytes_per_sample: 4,
            per_frame: 96 << 10,
        }
    }
}

fn frames(s: &Summary) -> u64 {
    s.image.as_ref().map(|i| i.pages.max(1)).unwrap_or(1)
}

impl CostModel for FitsStack {
    fn name(&self) -> &'static str {
        "fits-stack"
    }
    fn applies(&self, s: &Summary) -> bool {
        s.format == Format::Fits && s.image.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        "rows"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        let h = s.image.as_ref().map(|i| i.height).unwrap_or(1).max(1);
        let mut v: Vec<u64> = halving(4096, 1).into_iter().map(|r| r.min(h)).collect();
        v.dedup();
        v
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        16
    }
    fn peak_bytes(&self, s: &Summary, rows: u64, workers: u32) -> u64 {
        let Some(img) = &s.image else {
            return self.fixed;
        };
        let block = img.width.saturating_mul(rows.min(img.height));
        let input = block
            .saturating_mul(frames(s))
            .saturating_mul(self.bytes_per_sample);
        // Each extra worker sorts its own pixel's column of N values: negligible next to
        // the block, but workers share the block rather than each holding one.
        let per_worker = frames(s).saturating_mul(8).saturating_add(64 << 10);
        self.fixed
            .saturating_add(frames(s).saturating_mul(self.per_frame))
            .saturating_add(input)
            .saturating_add(block.saturating_mul(8))
            .saturating_add(per_worker.saturating_mul(u64::from(workers.max(1))))
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let h = s.image.as_ref().map(|i| i.height).unwrap_or(1);
        self.peak_bytes(s, h, 1)
    }
    fn describe(&self, _s: &Summary, rows: u64) -> Value {
        json!({ "rows": rows })
    }
}
