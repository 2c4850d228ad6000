//! Cost model of FITS stacking and normalisation by row blocks.
//!
//! A stack of N frames is combined (mean, median, sigma clipping) one block of rows at a
//! time: each frame contributes its rows of the block as 32-bit floats, a scratch copy
//! sorts one pixel's N values per worker, and the output and rejection-count blocks are
//! 32-bit each. Every frame is open at once, and CFITSIO allocates 40 buffers of 2880
//! bytes per open file (touched as used: about 96 KiB a frame measured). The block holds
//! no more rows than read at full speed ([`ENOUGH_FRAME_BYTES`] a frame), however large
//! the budget: the budget bounds the block, it is not a target. Calibrated on strip-convert's measured peak RSS (80 frames of
//! 1024x1024 float32: 8, 16 and 64 rows predicted 21.1, 24.2, 39.9 MB, measured 21.2,
//! 24.0, 40.2 MB). The number of
//! frames of a record is its image planes (`pages`: image HDUs and planes of a cube); when
//! frames come from many files, the tool plans with the sum.

use super::{halving, Chosen, CostModel, Summary, MIB};
use crate::error::Error;
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

/// Bytes of one frame's rows per block that read and combine at full speed: larger
/// blocks only cost memory. Measured on 50 frames of 4096x4096 float32 (sigma-clip,
/// additive normalisation, 2 threads): 10.7 s of user time in blocks of 16, 64 and 256
/// rows alike, system time 1.5, 1.7 and 1.9 s, peak RSS 27, 67 and 227 MB. The block is
/// the peak, so the tool holds no more than this.
pub const ENOUGH_FRAME_BYTES: u64 = 256 << 10;

impl FitsStack {
    /// The fewest rows (of [`CostModel::chunks`]) whose block gives each frame
    /// [`ENOUGH_FRAME_BYTES`].
    pub fn enough_rows(&self, s: &Summary) -> u64 {
        let width = s.image.as_ref().map_or(1, |i| i.width.max(1));
        let chunks = self.chunks(s);
        chunks
            .iter()
            .rev()
            .copied()
            .find(|&r| {
                r.saturating_mul(width)
                    .saturating_mul(self.bytes_per_sample)
                    >= ENOUGH_FRAME_BYTES
            })
            .unwrap_or(chunks[0])
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
    /// The planner's search (the most rows that fit the budget), but never more rows than
    /// [`FitsStack::enough_rows`]: the budget bounds the block, speed does not need more.
    fn own_plan(
        &self,
        s: &Summary,
        budget_bytes: u64,
        _max_workers: u32,
        generic: &dyn Fn(u64) -> Result<Chosen, Error>,
    ) -> Option<Result<Chosen, Error>> {
        let mut c = match generic(budget_bytes) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let enough = self.enough_rows(s);
        if c.chunk > enough {
            c.reasons.push(format!(
                "rows {enough} of the {} that fit: {} per frame read at full speed",
                c.chunk,
                crate::units::human_bytes(ENOUGH_FRAME_BYTES)
            ));
            c.chunk = enough;
            c.geometry = self.describe(s, enough);
            c.predicted_peak_bytes = self.peak_bytes(s, enough, c.workers);
        }
        Some(Ok(c))
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let h = s.image.as_ref().map(|i| i.height).unwrap_or(1);
        self.peak_bytes(s, h, 1)
    }
    fn describe(&self, _s: &Summary, rows: u64) -> Value {
        json!({ "rows": rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::probe::{ImageSummary, Layout, SampleFormat};

    fn stack(frames: u64, side: u64) -> Summary {
        Summary {
            format: Format::Fits,
            bytes: frames * side * side * 4,
            image: Some(ImageSummary {
                width: side,
                height: side,
                bands: 1,
                bits: 32,
                sample_format: SampleFormat::Float,
                pages: frames,
                layout: Layout::Strips,
                block: [side, 1],
                compressed: false,
            }),
            points: None,
            archive: None,
            document: None,
        }
    }

    #[test]
    fn blocks_hold_enough_rows_for_full_speed_and_no_more() {
        let m = FitsStack::default();
        // 50 frames of 4096x4096: 16 rows give each frame 256 KiB, whatever the budget.
        let s = stack(50, 4096);
        assert_eq!(m.enough_rows(&s), 16);
        for mib in [256u64, 4096] {
            let p = crate::plan::plan(&m, &s, Budget::bytes(mib << 20), 2).unwrap();
            assert_eq!(p.chunk, 16, "{mib} MiB");
            assert_eq!(p.predicted_peak_bytes, m.peak_bytes(&s, 16, p.workers));
        }
        // A budget too small for 16 rows: the most rows that fit, under the budget.
        let tight = m.peak_bytes(&s, 8, 1) + 1;
        let p = crate::plan::plan(&m, &s, Budget::bytes(tight), 1).unwrap();
        assert_eq!(p.chunk, 8);
        assert!(p.predicted_peak_bytes <= tight);
        // Narrow frames: more rows, up to the frame's height.
        assert_eq!(m.enough_rows(&stack(10, 1024)), 64);
        assert_eq!(m.enough_rows(&stack(10, 32)), 32);
    }
}
