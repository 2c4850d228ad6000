//! Cost models of the tiled raster filters (`tile-enhance`: sharpen, contrast, denoise,
//! thumbnails) and of spot/star detection.
//!
//! Each worker holds one tile plus its halo as 32-bit floats, in a few planes (input,
//! output, scratch; detection keeps a scale-space stack of one luminance band). Shared
//! between workers: the band of decoded input rows covering one row of tiles with halo,
//! and the band of output rows waiting to be written in order.

use super::{tile_sides, CostModel, Summary, MIB};
use crate::probe::{Format, ImageSummary};
use serde_json::{json, Value};

/// A tiled float filter: one model, two parameter sets ([`TiledFilter::tile_enhance`],
/// [`TiledFilter::spot_detect`]).
#[derive(Debug, Clone)]
pub struct TiledFilter {
    /// The tool / operation name.
    pub name: &'static str,
    /// Process overhead.
    pub fixed: u64,
    /// Halo in pixels on each side (3 sigma of the widest kernel).
    pub halo: u64,
    /// Float planes of a tile (with halo) per worker.
    pub planes: u64,
    /// Whether each plane has every band (filters) or one band only (detection works on
    /// luminance).
    pub all_bands: bool,
    /// Largest and smallest tile sides tried.
    pub tiles: (u64, u64),
    /// Images read beside the input, a band of rows each with `readout_halo` rows either
    /// side (spot detection's readout channels).
    pub channels: u64,
    /// Rows either side of a readout channel's band.
    pub readout_halo: u64,
    /// Whether output rows of a row of tiles wait to be written in order (filters do;
    /// detection writes a list).
    pub writes_rows: bool,
    /// The smallest tile that still runs at full speed.
    pub efficient: u64,
    /// Whether the first pass decodes the image a band ahead ([`read_ahead_buffers`]);
    /// the second pass reads the channels instead, so the peak holds the larger of the two.
    pub read_ahead: bool,
    /// Full-width bands of `chunk` rows instead of square tiles (`tile-enhance`): then
    /// `planes` counts the neighbourhood stages of the chain and `halo` is the sum of
    /// their halos ([`TiledFilter::band_peak`]).
    pub bands: bool,
}

impl TiledFilter {
    /// `tile-enhance enhance`: a chain of `stages` neighbourhood steps (blur, unsharp,
    /// median, resize) whose halos sum to `halo` rows, on full-width bands; point steps
    /// cost nothing beyond the band. `chunk-plan --for tile-enhance` plans the default
    /// chain (`tile_enhance(0, 0)`), the tool plans its own chain.
    pub fn tile_enhance(halo: u64, stages: u64) -> TiledFilter {
        TiledFilter {
            name: "tile-enhance",
            fixed: TILE_ENHANCE_FIXED,
            halo,
            planes: stages,
            all_bands: true,
            tiles: (1024, 1),
            efficient: 128,
            bands: true,
            channels: 0,
            readout_halo: 0,
            writes_rows: true,
            read_ahead: false,
        }
    }

    /// The band model: the writer's band and the next one the chain computes meanwhile
    /// (write-behind); the read-ahead's two buffers of [`WINDOW_READ_ROWS`]; per stage
    /// its window (band, halos, a read buffer of [`WINDOW_READ_ROWS`]) and its output
    /// band; the source's decoded strip or
    /// tile row; the writer's batch of strips (raw, predicted, compressed) per worker;
    /// per worker a statistics histogram set (65536 bins of 8 bytes per band, plus grey).
    fn band_peak(&self, img: &ImageSummary, rows: u64, workers: u64) -> u64 {
        let row = img.row_bytes();
        let rows = rows.min(img.height);
        let held = rows
            .saturating_mul(2)
            .saturating_add(2 * WINDOW_READ_ROWS)
            .saturating_add(self.planes.saturating_mul(2 * rows + WINDOW_READ_ROWS))
            .saturating_add(2 * self.halo);
        let source = if img.compressed {
            img.block[1].min(img.height).saturating_mul(row)
        } else {
            super::strip_convert::DIRECT_READ_BYTES
        };
        let bins = if img.bits > 8 { 65536 } else { 256 };
        let stats = workers
            .saturating_mul(u64::from(img.bands) + 1)
            .saturating_mul(bins * 8);
        let writer = workers.saturating_mul(2 * 3 * STRIP_BYTES);
        self.fixed
            .saturating_add(row.saturating_mul(held))
            .saturating_add(source)
            .saturating_add(stats)
            .saturating_add(writer)
    }

    /// Spot / star detection at its default scale (sigma 2, min distance 2, one scale,
    /// no readout channel): see [`TiledFilter::spot_detect_for`].
    pub fn spot_detect() -> TiledFilter {
        TiledFilter::spot_detect_for(2.0, 2, 1, 0)
    }

    /// Spot / star detection (`tile-enhance spots`): the halo is `ceil(4 sigma_max) +
    /// min_distance`; each worker holds its tile's input plane and two filter scratch
    /// planes (32-bit floats, tile plus halo) and one response plane per scale; the
    /// detection image is read by bands of a row of tiles plus halo (plus the read
    /// buffer, counted in the block rows), and each readout channel by a band of its own.
    /// Tiles of at most 1024: a tile's planes then stay in the caches through the filter
    /// and maxima passes (2048 took 10-15% more CPU on 8192^2, whatever the budget).
    /// Fixed: the process, the threshold's histograms (2 x 512 KiB, per worker and
    /// merged) and the output buffers. Calibrated against measured peak RSS by tile-enhance's
    /// tests (`spots_memory`).
    pub fn spot_detect_for(
        sigma_max: f64,
        min_distance: u64,
        scales: u64,
        channels: u64,
    ) -> TiledFilter {
        let halo = (4.0 * sigma_max.max(0.0)).ceil() as u64 + min_distance;
        TiledFilter {
            name: "spot-detect",
            fixed: 10 * MIB,
            halo,
            planes: 3 + scales.max(1),
            all_bands: false,
            tiles: (1024, 128),
            efficient: 512,
            bands: false,
            channels,
            readout_halo: 0,
            writes_rows: false,
            read_ahead: true,
        }
    }

    fn plane_bands(&self, s: &Summary) -> u64 {
        match (&s.image, self.all_bands) {
            (Some(i), true) => u64::from(i.bands.max(1)),
            _ => 1,
        }
    }
}

/// Buffers of [`WINDOW_READ_ROWS`] rows spot detection's first pass decodes ahead with
/// tiles of side `tile`: a band, and the one being read from.
pub fn read_ahead_buffers(tile: u64) -> u64 {
    tile.div_ceil(WINDOW_READ_ROWS) + 1
}

/// Process overhead of `tile-enhance` (binary, allocator arenas, rayon pool), measured.
pub const TILE_ENHANCE_FIXED: u64 = 8 * MIB;
/// Rows the halo window reads at once (`raster::window::READ_ROWS`).
pub const WINDOW_READ_ROWS: u64 = 64;
/// Raw bytes of one strip the TIFF writer compresses (`raster::write::STRIP_BYTES`).
pub const STRIP_BYTES: u64 = 256 << 10;

impl CostModel for TiledFilter {
    fn name(&self) -> &'static str {
        self.name
    }
    fn applies(&self, s: &Summary) -> bool {
        matches!(
            s.format,
            Format::Tiff | Format::Png | Format::Jpeg | Format::Jp2 | Format::J2k | Format::Fits
        ) && s.image.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        if self.bands {
            "band_rows"
        } else {
            "tile_side"
        }
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        if self.bands {
            let h = s.image.as_ref().map_or(1, |i| i.height.max(1));
            let mut v: Vec<u64> =
                std::iter::successors(Some(self.tiles.0), |&r| (r > self.tiles.1).then_some(r / 2))
                    .filter(|&r| r <= h || r == self.tiles.1)
                    .collect();
            if v.is_empty() {
                v.push(1);
            }
            return v;
        }
        s.image
            .as_ref()
            .map(|i| tile_sides(i, self.tiles.0, self.tiles.1))
            .unwrap_or_default()
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        self.efficient
    }
    fn peak_bytes(&self, s: &Summary, tile: u64, workers: u32) -> u64 {
        let Some(img) = &s.image else {
            return self.fixed;
        };
        if self.bands {
            return self.band_peak(img, tile, u64::from(workers.max(1)));
        }
        let h = self.halo;
        let side_w = (tile + 2 * h).min(img.width + 2 * h);
        let side_h = (tile + 2 * h).min(img.height + 2 * h);
        let per_worker = side_w
            .saturating_mul(side_h)
            .saturating_mul(self.plane_bands(s))
            .saturating_mul(4)
            .saturating_mul(self.planes);
        // Input rows for a row of tiles with halo (plus the straddling strip) and the
        // output rows of one row of tiles.
        let band_rows = (tile + 2 * h).min(img.height) + img.block[1].min(img.height);
        let out_rows = if self.writes_rows {
            tile.min(img.height)
        } else {
            0
        };
        let bands = img.row_bytes().saturating_mul(band_rows + out_rows);
        // Readout channels: a band of a row of tiles each (the sizes of the input's).
        let channel_rows = (tile + 2 * self.readout_halo).min(img.height) + 64;
        let channels = (img.row_bytes() / u64::from(img.bands.max(1)))
            .saturating_mul(channel_rows)
            .saturating_mul(self.channels);
        // The first pass's read-ahead buffers, or the second pass's channels.
        let ahead = if self.read_ahead {
            img.row_bytes()
                .saturating_mul(read_ahead_buffers(tile).saturating_mul(WINDOW_READ_ROWS))
        } else {
            0
        };
        self.fixed
            .saturating_add(bands)
            .saturating_add(channels.max(ahead))
            .saturating_add(per_worker.saturating_mul(u64::from(workers.max(1))))
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let Some(img) = &s.image else {
            return self.fixed;
        };
        if self.bands {
            // A whole-image tool holds the decoded input and its result.
            return self
                .fixed
                .saturating_add(img.row_bytes().saturating_mul(img.height).saturating_mul(2));
        }
        self.fixed.saturating_add(
            img.width
                .saturating_mul(img.height)
                .saturating_mul(self.plane_bands(s))
                .saturating_mul(4)
                .saturating_mul(self.planes),
        )
    }
    fn describe(&self, _s: &Summary, tile: u64) -> Value {
        if self.bands {
            return json!({ "band_rows": tile, "halo": self.halo });
        }
        json!({ "tile": [tile, tile], "halo": self.halo })
    }
}
