//! Cost models of the tiled raster filters (`tile-enhance`: sharpen, contrast, denoise,
//! thumbnails) and of spot/star detection.
//!
//! Each worker holds one tile plus its halo as 32-bit floats, in a few copies (input,
//! output, scratch; detection keeps a scale-space stack). Shared between workers: the band
//! of decoded input rows covering one row of tiles with halo, and the band of output rows
//! waiting to be written in order.

use super::{tile_sides, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

fn raster(s: &Summary) -> bool {
    matches!(
        s.format,
        Format::Tiff | Format::Png | Format::Jpeg | Format::Jp2 | Format::J2k | Format::Fits
    ) && s.image.is_some()
}

/// Peak of a tiled float filter: fixed + shared bands + per-worker tile copies.
fn tiled_peak(s: &Summary, fixed: u64, tile: u64, halo: u64, copies: u64, workers: u32) -> u64 {
    let Some(img) = &s.image else { return fixed };
    let side_w = (tile + 2 * halo).min(img.width + 2 * halo);
    let side_h = (tile + 2 * halo).min(img.height + 2 * halo);
    let per_worker = side_w
        .saturating_mul(side_h)
        .saturating_mul(u64::from(img.bands))
        .saturating_mul(4)
        .saturating_mul(copies);
    let band_rows = (tile + 2 * halo).min(img.height) + img.block[1].min(img.height);
    let bands = img
        .row_bytes()
        .saturating_mul(band_rows + tile.min(img.height));
    fixed
        .saturating_add(bands)
        .saturating_add(per_worker.saturating_mul(u64::from(workers.max(1))))
}

fn whole_float(s: &Summary, fixed: u64, copies: u64) -> u64 {
    let Some(img) = &s.image else { return fixed };
    fixed.saturating_add(
        img.width
            .saturating_mul(img.height)
            .saturating_mul(u64::from(img.bands))
            .saturating_mul(4)
            .saturating_mul(copies),
    )
}

/// `tile-enhance`: unsharp mask / local contrast with a halo of `halo` pixels.
#[derive(Debug, Clone)]
pub struct TileEnhance {
    /// Process overhead.
    pub fixed: u64,
    /// Halo in pixels on each side (3 sigma of the widest kernel).
    pub halo: u64,
    /// Float copies of a tile per worker (input, blurred, output).
    pub copies: u64,
}

impl Default for TileEnhance {
    fn default() -> Self {
        TileEnhance {
            fixed: 8 * MIB,
            halo: 16,
            copies: 3,
        }
    }
}

impl CostModel for TileEnhance {
    fn name(&self) -> &'static str {
        "tile-enhance"
    }
    fn applies(&self, s: &Summary) -> bool {
        raster(s)
    }
    fn chunk_unit(&self) -> &'static str {
        "tile_side"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        s.image
            .as_ref()
            .map(|i| tile_sides(i, 2048, 64))
            .unwrap_or_default()
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        256
    }
    fn peak_bytes(&self, s: &Summary, tile: u64, workers: u32) -> u64 {
        tiled_peak(s, self.fixed, tile, self.halo, self.copies, workers)
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        whole_float(s, self.fixed, self.copies)
    }
    fn describe(&self, _s: &Summary, tile: u64) -> Value {
        json!({ "tile": [tile, tile], "halo": self.halo })
    }
}

/// Spot / star detection: Laplacian of Gaussian over `scales` sigmas, halo 3 x the
/// largest sigma, detections owned by the tile that holds their centre.
#[derive(Debug, Clone)]
pub struct SpotDetect {
    /// Process overhead.
    pub fixed: u64,
    /// Halo in pixels on each side.
    pub halo: u64,
    /// Scale-space planes held per worker, plus input and scratch.
    pub scales: u64,
}

impl Default for SpotDetect {
    fn default() -> Self {
        SpotDetect {
            fixed: 8 * MIB,
            halo: 24,
            scales: 10,
        }
    }
}

impl CostModel for SpotDetect {
    fn name(&self) -> &'static str {
        "spot-detect"
    }
    fn applies(&self, s: &Summary) -> bool {
        raster(s)
    }
    fn chunk_unit(&self) -> &'static str {
        "tile_side"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        s.image
            .as_ref()
            .map(|i| tile_sides(i, 2048, 128))
            .unwrap_or_default()
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        512
    }
    fn peak_bytes(&self, s: &Summary, tile: u64, workers: u32) -> u64 {
        // Detection works on one band (luminance), hence the division by bands.
        let bands = s
            .image
            .as_ref()
            .map(|i| u64::from(i.bands.max(1)))
            .unwrap_or(1);
        let copies = (self.scales + 2).div_ceil(bands).max(1);
        tiled_peak(s, self.fixed, tile, self.halo, copies, workers)
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let bands = s
            .image
            .as_ref()
            .map(|i| u64::from(i.bands.max(1)))
            .unwrap_or(1);
        whole_float(s, self.fixed, (self.scales + 2).div_ceil(bands).max(1))
    }
    fn describe(&self, _s: &Summary, tile: u64) -> Value {
        json!({ "tile": [tile, tile], "halo": self.halo })
    }
}
