//! Cost model of `strip-convert` (TIFF to JPEG 2000, fed tile row by tile row).
//!
//! In flight at once: the decoded input rows covering one row of JPEG 2000 tiles (plus
//! the input strip or tile that straddles its lower edge, since a TIFF strip decodes
//! whole), a second such band when decoding overlaps encoding, and per encoding thread
//! one tile's OpenJPEG working set (32-bit samples, wavelet scratch, code-block buffers).
//! A whole-image encoder (opj_compress, Grok) holds every sample as 32-bit plus the
//! same working set.
//!
//! Calibrated against strip-convert's measured peak RSS (release build, 10240x10240 RGB
//! 8-bit, strips of 128 rows; tiles 256/512/1024, 1 and 2 workers): 29-151 MiB measured,
//! the model within 6%. An empty run peaks at 5 MiB (more in a debug build: 8 MiB covers both); OpenJPEG holds 12 bytes a tile
//! sample (i32 samples, wavelet scratch, code-block and output buffers) plus the tile's
//! planar copy. `tools/strip-convert/tests/memory.rs` holds the model to 20% of the
//! measured peak across image sizes, tile sizes and worker counts.

use super::{tile_sides, CostModel, Summary, MIB};
use crate::probe::{Format, Layout};

/// Bytes strip-convert reads at once from an uncompressed strip (it reads such strips
/// straight from the file, a few rows at a time).
pub const DIRECT_READ_BYTES: u64 = 4 << 20;
use serde_json::{json, Value};

/// The strip-convert model.
#[derive(Debug, Clone)]
pub struct StripConvert {
    /// Process overhead: binary, libraries, allocator arenas, OpenJPEG codec state.
    pub fixed: u64,
    /// Decoded input bands held at once (2: one decoding while the previous encodes).
    pub bands_in_flight: u64,
    /// OpenJPEG bytes per tile sample while a tile is encoded (i32 sample + DWT scratch +
    /// code-block and compressed buffers).
    pub tile_bytes_per_sample: u64,
    /// Per encoding thread beyond its tile: its stack, its allocator arena's slack and
    /// the encoded tiles waiting for the writer (two per worker). Measured in a debug
    /// build on 4000x3000 RGB in 256-pixel tiles, 1 to 16 threads on 2 CPUs: 3.1 MB a
    /// thread against 2.55 MB of tile working set.
    pub per_thread: u64,
    /// Largest tile side tried (the profiles use 1024).
    pub max_tile: u64,
    /// Smallest tile side tried.
    pub min_tile: u64,
}

impl Default for StripConvert {
    fn default() -> Self {
        StripConvert {
            fixed: 8 * MIB,
            bands_in_flight: 2,
            tile_bytes_per_sample: 13,
            per_thread: 3 * MIB / 4,
            max_tile: 1024,
            min_tile: 64,
        }
    }
}

impl StripConvert {
    /// Predicted peak RSS with tiles of `tile.0` x `tile.1` pixels (width, height) and
    /// `workers` tiles encoded at once. Wide images tile with wider-than-high tiles when
    /// square ones would pass JPEG 2000's 65,535-tile limit: the band depends on the tile
    /// height only, each worker's working set on the tile area.
    pub fn peak_bytes_rect(&self, s: &Summary, tile: (u64, u64), workers: u32) -> u64 {
        let Some(img) = &s.image else {
            return self.fixed;
        };
        // A strip straddling the band's lower edge decodes whole, but uncompressed strips
        // are read a few rows at a time (DIRECT_READ_BYTES at most): one strip holding the
        // whole image costs no more than a small one.
        let straddle = if img.layout == Layout::Strips && !img.compressed {
            img.block[1].min((DIRECT_READ_BYTES / img.row_bytes().max(1)).max(1))
        } else {
            img.block[1]
        };
        let band_rows = tile.1.min(img.height) + straddle.min(img.height);
        let band = img.row_bytes().saturating_mul(band_rows);
        let tile_samples = tile
            .0
            .min(img.width)
            .saturating_mul(tile.1.min(img.height))
            .saturating_mul(u64::from(img.bands));
        self.fixed
            .saturating_add(band.saturating_mul(self.bands_in_flight))
            .saturating_add(
                tile_samples
                    .saturating_mul(self.tile_bytes_per_sample)
                    .saturating_add(self.per_thread)
                    .saturating_mul(u64::from(workers.max(1))),
            )
    }
}

impl CostModel for StripConvert {
    fn name(&self) -> &'static str {
        "strip-convert"
    }
    fn applies(&self, s: &Summary) -> bool {
        s.format == Format::Tiff && s.image.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        "tile_side"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        s.image
            .as_ref()
            .map(|i| tile_sides(i, self.max_tile, self.min_tile))
            .unwrap_or_default()
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        256
    }
    fn peak_bytes(&self, s: &Summary, tile: u64, workers: u32) -> u64 {
        self.peak_bytes_rect(s, (tile, tile), workers)
    }
    fn max_workers(&self, s: &Summary, tile: u64) -> u64 {
        // One tile per worker: a 157x151 image in 64-pixel tiles keeps 9 busy, not more.
        s.image.as_ref().map_or(1, |i| {
            let t = tile.max(1);
            i.width
                .div_ceil(t)
                .saturating_mul(i.height.div_ceil(t))
                .max(1)
        })
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let Some(img) = &s.image else {
            return self.fixed;
        };
        let samples = img
            .width
            .saturating_mul(img.height)
            .saturating_mul(u64::from(img.bands));
        // Whole-image encoders keep every sample as i32 (4 bytes) plus about 3 more bytes
        // a sample of tile and code-block working space (opj_compress: 2.1 GB for 100 MP RGB).
        self.fixed.saturating_add(samples.saturating_mul(7))
    }
    fn describe(&self, s: &Summary, tile: u64) -> Value {
        let (w, h) = s
            .image
            .as_ref()
            .map(|i| (i.width, i.height))
            .unwrap_or((0, 0));
        json!({ "tile": [tile.min(w.max(1)), tile.min(h.max(1))] })
    }
    fn work(&self, s: &Summary) -> f64 {
        s.image
            .as_ref()
            // In f64: pages times a page's samples can pass u64 (a record is input).
            .map(|i| i.width as f64 * i.height as f64 * f64::from(i.bands) * i.pages.max(1) as f64)
            .unwrap_or(0.0)
    }
}
