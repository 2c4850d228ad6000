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

use super::{tile_sides, Chosen, CostModel, Summary, MIB};
use crate::error::{Error, ErrorKind};
use crate::probe::{Format, Layout};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Bytes strip-convert reads at once from an uncompressed strip (it reads such strips
/// straight from the file, a few rows at a time).
pub const DIRECT_READ_BYTES: u64 = 4 << 20;

/// The encoding profiles and their tile sides (strip-convert's `profile` module holds the
/// rest of each profile and takes its tile from here): the tile is what a profile changes
/// in memory, so `chunk-plan --profile` knows it too.
pub const PROFILE_TILES: [(&str, u32); 4] = [
    ("bnf", 1024),
    ("kb-master", 1024),
    ("kb-access", 1024),
    ("loc-ndnp", 1024),
];

/// The tile side of profile `name`.
pub fn profile_tile(name: &str) -> Option<u32> {
    PROFILE_TILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, t)| t)
}

/// The options of strip-convert that change its memory, one flag group that both
/// strip-convert and `chunk-plan` take: `chunk-plan --for strip-convert --profile bnf`
/// plans what `strip-convert --profile bnf` runs. Written in `plan.strip-convert.options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct StripConvertOptions {
    /// Encoding profile (options given too override its values): bnf, kb-master,
    /// kb-access, loc-ndnp
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(PROFILE_TILES.map(|(n, _)| n)))]
    pub profile: Option<String>,
    /// Tile size: N or WxH (default: 256, or with --memory-limit the largest that fits)
    #[arg(long, value_name = "N|WxH", value_parser = parse_size)]
    pub tile: Option<(u32, u32)>,
}

impl StripConvertOptions {
    /// The tile the options fix (`--tile`, else the profile's), if any.
    pub fn fixed_tile(&self) -> Option<(u32, u32)> {
        self.tile.or_else(|| {
            self.profile
                .as_deref()
                .and_then(profile_tile)
                .map(|t| (t, t))
        })
    }
}

/// `N` or `WxH`, both above zero (tile, code-block and precinct sizes).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not N or WxH");
    let (w, h) = match s.split_once(['x', 'X']) {
        Some((w, h)) => (w, h),
        None => (s, s),
    };
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

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
    /// The run's options (a fixed tile).
    pub options: StripConvertOptions,
    /// No budget was asked for (no `--memory-limit`, no plan): aim at what the efficient
    /// tile needs with every thread, not the machine's whole budget (larger tiles buy
    /// neither speed nor, beyond 0.3%, compression).
    pub aim_efficient: bool,
}

impl Default for StripConvert {
    fn default() -> Self {
        StripConvert {
            // Measured again after raster linked libjpeg-turbo, WebP and LZMA decoders:
            // the process's baseline grew by about 1 MiB.
            fixed: 19 * MIB / 2,
            bands_in_flight: 2,
            tile_bytes_per_sample: 13,
            // 1 MiB a thread: with a dozen threads encoding at once on an idle machine,
            // 3/4 MiB fell 3 MiB short (-j 16 -m 64MiB in tests/outputs.rs).
            per_thread: MIB,
            max_tile: 1024,
            min_tile: 64,
            options: StripConvertOptions::default(),
            aim_efficient: false,
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

    /// The tile and the threads strip-convert runs for `s` within `budget` (at most
    /// `jobs`): the fixed tile's most threads that fit, else `generic`'s square tile
    /// (the planner's search for a budget), widened when square tiles would pass JPEG
    /// 2000's 65,535-tile limit (the band, the largest cost, depends on the height only).
    fn geometry(
        &self,
        s: &Summary,
        budget: u64,
        jobs: u32,
        generic: &dyn Fn(u64) -> Result<Chosen, Error>,
    ) -> Result<Chosen, Error> {
        let Some(img) = &s.image else {
            return Err(Error::unsupported("strip-convert: no image"));
        };
        let (width, height) = (
            u32::try_from(img.width).unwrap_or(u32::MAX),
            u32::try_from(img.height).unwrap_or(u32::MAX),
        );
        let chosen = |tile: (u32, u32), workers: u32, reason: String| {
            let rect = (u64::from(tile.0), u64::from(tile.1));
            Chosen {
                chunk: u64::from(tile.1),
                workers,
                geometry: json!({ "tile": [tile.0, tile.1] }),
                predicted_peak_bytes: self.peak_bytes_rect(s, rect, workers),
                reasons: vec![reason],
            }
        };
        let most = |rect: (u64, u64), b: u64, max: u32| {
            super::most_workers(max, |w| self.peak_bytes_rect(s, rect, w) <= b)
        };
        if let Some(t) = self.options.fixed_tile() {
            let t = (t.0.min(width), t.1.min(height));
            let rect = (u64::from(t.0), u64::from(t.1));
            return match most(rect, budget, jobs) {
                Some(w) => Ok(chosen(
                    t,
                    w,
                    format!("tile {}x{} fixed by the options", t.0, t.1),
                )),
                None => Err(Error::new(
                    ErrorKind::Budget,
                    format!(
                        "tile {}x{} needs about {} MiB but the budget is {} MiB",
                        t.0,
                        t.1,
                        self.peak_bytes_rect(s, rect, 1) >> 20,
                        budget >> 20
                    ),
                )),
            };
        }
        let aim = if self.aim_efficient {
            let efficient = self.efficient_chunk(s);
            let busy = u64::from(jobs).min(self.max_workers(s, efficient));
            budget.min(self.peak_bytes(s, efficient, u32::try_from(busy).unwrap_or(u32::MAX)))
        } else {
            budget
        };
        let searched = generic(aim)?;
        let (side, workers) = (searched.chunk, searched.workers);
        let side = u32::try_from(side).unwrap_or(u32::MAX).max(1);
        let mut tile = (side.min(width), side.min(height));
        let count =
            |t: (u32, u32)| u64::from(width.div_ceil(t.0)) * u64::from(height.div_ceil(t.1));
        while count(tile) > 65535 && tile.0 < width {
            tile.0 = tile.0.saturating_mul(2).min(width);
        }
        let rect = (u64::from(tile.0), u64::from(tile.1));
        // The wider tiles may not fit what the efficient side needed: then the whole
        // budget is theirs.
        match most(rect, aim, workers).or_else(|| most(rect, budget, workers)) {
            Some(w) => {
                let mut c = chosen(tile, w, String::new());
                c.reasons = searched.reasons;
                if tile.0 != side.min(width) {
                    c.reasons.push(format!(
                        "tiles widened to {}x{}: JPEG 2000 allows at most 65535",
                        tile.0, tile.1
                    ));
                }
                Ok(c)
            }
            None => Err(Error::new(
                ErrorKind::Budget,
                format!(
                    "tiles of {}x{} (at most 65535 tiles) need about {} MiB but the budget \
                     is {} MiB",
                    tile.0,
                    tile.1,
                    self.peak_bytes_rect(s, rect, 1) >> 20,
                    budget >> 20
                ),
            )),
        }
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
    fn own_plan(
        &self,
        s: &Summary,
        budget_bytes: u64,
        max_workers: u32,
        generic: &dyn Fn(u64) -> Result<Chosen, Error>,
    ) -> Option<Result<Chosen, Error>> {
        Some(self.geometry(s, budget_bytes, max_workers, generic))
    }
    fn options(&self) -> Value {
        serde_json::to_value(&self.options).unwrap_or(Value::Null)
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
