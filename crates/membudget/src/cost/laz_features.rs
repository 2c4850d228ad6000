//! Cost model of `laz-enrich` (geometric features per point over spatial tiles with halo).
//!
//! The tool runs in phases that never overlap, so its peak is the fixed part plus the
//! larger of two:
//!
//! - **feature pass**: the owned and halo points of a pass (stored integer coordinates,
//!   an index for owned points, the column grid's sorted copy and offsets) and the
//!   feature values of its owned points: `bytes_per_point + features * bytes_per_feature`
//!   a held point;
//! - **decode/encode slab**: input records, their features and the output records, plus
//!   the LAZ codec's copies. Slabs of whole LAZ chunks (50,000 points) use the
//!   chunk-parallel codec, `slab_bytes_per_record_byte * (record + 4 * features) +
//!   slab_bytes_per_point` a slab point; smaller budgets get smaller slabs and the
//!   streaming codec, whose encoder holds a chunk's compressed layers (about one output
//!   record a point of the chunk) plus `stream_codec_bytes`, then `1.5 * (record + 4 *
//!   features) + stream_bytes_per_point` a slab point.
//!
//! The fixed part is the process (8.4 MiB measured, 8.9 in a debug build: binary,
//! allocator, threads, I/O buffers; modelled as 10 MiB) plus the
//! tiling histogram and its lookups (`bytes_per_cell`, one cell per 8 points, 1,024 to
//! 2^20 cells). The halo's share grows as tiles shrink: with density `d` points per
//! square metre, a square tile of `p` owned points has side `sqrt(p / d)` and holds
//! `d * (side + 2r)^2` points. Whole-cloud tools (jakteristics, a KD-tree over
//! everything) hold about 150 bytes a point (888 MiB for 5 million points measured).
//!
//! Calibrated against measured peak RSS (release build, IGN format-8 and synthetic
//! format-6 clouds, 12 features): 80 B a held point, modelled as 84 (63.3 MiB for one
//! 697,721-point tile), 279 B a slab point for 89-byte output records with the parallel
//! codec (36.5 MiB with a 100,000-point slab), 15.9 MiB above the fixed part for a
//! 49,999-point slab of 121-byte output records with the streaming codec (20 features);
//! tools/laz-enrich/tests/enrich.rs holds predictions within 20% of
//! measurements and measurements under the budget.

use super::{halving, Chosen, CostModel, Summary, MIB};
use crate::error::{Error, ErrorKind};
use crate::probe::Format;
use crate::units::human_bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Tiles never hold more points than this unless `--tile-points` says so: larger tiles
/// are no faster (the halo costs 1-2 % at this size) and only use more memory.
pub const EFFICIENT_TILE_POINTS: u64 = 1 << 20;

/// Features laz-enrich computes without `--features` (its `Feature::DEFAULT`; a test
/// there ties the two), and with `--features all` (`Feature::ALL`).
pub const DEFAULT_FEATURES: u64 = 12;
/// See [`DEFAULT_FEATURES`].
pub const ALL_FEATURES: u64 = 24;
/// The features that hold more than their value a point: height above ground (the
/// ground points and their grid) and the 2 m count (a second grid).
pub const HEIGHT_ABOVE_GROUND: &str = "height_above_ground";
/// See [`HEIGHT_ABOVE_GROUND`].
pub const POINTS_WITHIN_2M: &str = "num_points_2m";

/// The options of laz-enrich that change its memory, one flag group that both laz-enrich
/// and `chunk-plan` take: `chunk-plan --for laz-enrich -F all` plans what `laz-enrich -F
/// all` runs. Written in `plan.laz-enrich.options`.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct LazEnrichOptions {
    /// Neighbourhood radius in metres: neighbours are the points at distance <= R, the
    /// point itself included
    #[arg(short = 'R', long, value_name = "METRES", default_value_t = 1.0, value_parser = crate::cli::positive_number)]
    pub radius: f64,
    /// Neighbourhoods of the K nearest points (3D, the point itself included; ties
    /// broken by coordinates) instead of a radius; exact across tiles: a point whose K
    /// nearest may lie beyond its tile's halo is computed again with a wider one
    #[arg(short = 'k', long = "k", value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub knn: Option<u32>,
    /// Features to compute, comma-separated, or `all` (laz-enrich's FEATURES)
    #[arg(short = 'F', long, value_name = "LIST")]
    pub features: Option<String>,
    /// Height above ground looks for the nearest ground point (class 2) in XY within
    /// this many metres (the halo grows to it); beyond, the height is NaN
    #[arg(long, value_name = "METRES", default_value_t = 10.0, value_parser = crate::cli::positive_number)]
    pub ground_radius: f64,
    /// Most points (owned plus halo) a tile may hold, below what the budget allows
    /// (default: the budget's capacity, at most 1048576)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub tile_points: Option<u64>,
}

impl Default for LazEnrichOptions {
    fn default() -> Self {
        LazEnrichOptions {
            radius: 1.0,
            knn: None,
            features: None,
            ground_radius: 10.0,
            tile_points: None,
        }
    }
}

impl LazEnrichOptions {
    /// The features' names as given (lower case), `None` for the default set or `all`.
    fn names(&self) -> Option<Vec<String>> {
        let list = self.features.as_deref()?;
        if list.trim().eq_ignore_ascii_case("all") {
            return None;
        }
        let mut v: Vec<String> = Vec::new();
        for n in list.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            if !n.is_empty() && !v.contains(&n) {
                v.push(n);
            }
        }
        Some(v)
    }

    fn is_all(&self) -> bool {
        self.features
            .as_deref()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case("all"))
    }

    /// Features computed: what laz-enrich parses from the list (an IGN alias given beside
    /// its jakteristics name counts twice here: more memory planned, never less).
    pub fn feature_count(&self) -> u64 {
        match self.names() {
            Some(v) => v.len() as u64,
            None if self.is_all() => ALL_FEATURES,
            None => DEFAULT_FEATURES,
        }
    }

    /// Whether feature `name` (one of the constants above) is computed.
    pub fn has(&self, name: &str) -> bool {
        match self.names() {
            Some(v) => v.iter().any(|n| n == name),
            None => self.is_all(),
        }
    }

    /// The first halo, in metres: the radius, or for kNN twice the radius of a disc
    /// holding k points at the cloud's mean density (points beyond it are computed
    /// again, exactly).
    pub fn neighbourhood_reach(&self, s: &Summary) -> f64 {
        let Some(k) = self.knn else {
            return self.radius;
        };
        // The header's mean density; 1 a square metre for a cloud without an area.
        let density = s.points.as_ref().map_or(1.0, |p| {
            let area = ((p.bounds[3] - p.bounds[0]) * (p.bounds[4] - p.bounds[1])).abs();
            if area.is_finite() && area > 0.0 {
                p.count.max(1) as f64 / area
            } else {
                1.0
            }
        });
        (2.0 * (f64::from(k) / (std::f64::consts::PI * density)).sqrt()).clamp(0.05, 1000.0)
    }
}

/// How laz-enrich runs one cloud: the plan of `plan.laz-enrich`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Threads.
    pub threads: u64,
    /// Points (owned plus halo) a feature pass holds at most.
    pub tile_points: u64,
    /// Points decoded or encoded at once.
    pub slab_points: u64,
}

/// Points of a LAZ chunk as LASzip writes them (the parallel codec's unit of work).
pub const LAZ_CHUNK_POINTS: u64 = 50_000;
/// The smallest decode/encode slab.
pub const MIN_SLAB_POINTS: u64 = 4096;

/// The part of the room left after the fixed overhead that chunks may fill: 15% stays
/// free for allocator slack, page rounding and the read-ahead threads' timing (a fresh
/// CI machine measured 5.4% above the prediction at a 24 MiB budget with 5% kept free).
fn headroom(room: u64) -> u64 {
    room / 20 * 17
}

/// The laz-enrich model.
#[derive(Debug, Clone)]
pub struct LazFeatures {
    /// Process overhead (binary, allocator, thread stacks, I/O buffers).
    pub fixed: u64,
    /// Bytes per histogram cell (counts, tile of each cell, halo lookups).
    pub bytes_per_cell: u64,
    /// Bytes per point held in a pass, features not included (positions, index, grid).
    pub bytes_per_point: u64,
    /// Bytes per feature of a held point.
    pub bytes_per_feature: u64,
    /// Features computed.
    pub features: u64,
    /// Slab cost per byte of output record (input record plus 4 bytes a feature).
    pub slab_bytes_per_record_byte: u64,
    /// Slab cost per point beyond its record bytes.
    pub slab_bytes_per_point: u64,
    /// State of the streaming LAZ codec (decoder and encoder, a chunk's layers each).
    pub stream_codec_bytes: u64,
    /// Streaming slab cost per point beyond 1.5 output records.
    pub stream_bytes_per_point: u64,
    /// Neighbourhood radius in metres (the halo width).
    pub radius: f64,
    /// Bytes per point of a whole-cloud tool.
    pub whole_bytes_per_point: u64,
    /// Each thread beyond the first: its stack, its allocator arena's slack and its
    /// neighbour scratch (0.83 MB measured a thread, 1 to 32 threads on 2 CPUs; 1.5 MiB
    /// counted: at an 18 MiB budget two threads peaked 0.5 MB above the prediction
    /// under load, once over the budget).
    pub per_thread: u64,
    /// Threads the run uses (see [`LazFeatures::threads_within`]).
    pub threads: u64,
    /// The run's options.
    pub options: LazEnrichOptions,
}

impl Default for LazFeatures {
    fn default() -> Self {
        LazFeatures {
            fixed: 10 * MIB,
            bytes_per_cell: 12,
            bytes_per_point: 36,
            bytes_per_feature: 4,
            features: 12,
            slab_bytes_per_record_byte: 3,
            slab_bytes_per_point: 32,
            stream_codec_bytes: MIB,
            stream_bytes_per_point: 10,
            radius: 1.0,
            whole_bytes_per_point: 150,
            per_thread: 3 * MIB / 2,
            threads: 1,
            options: LazEnrichOptions::default(),
        }
    }
}

impl LazFeatures {
    /// The model of a run with `options` on cloud `s`: the halo covers the neighbourhood
    /// (and the ground radius for height above ground, 2 m for the 2 m count), and
    /// those two features hold more a point.
    pub fn with_options(options: &LazEnrichOptions, s: &Summary) -> LazFeatures {
        let base = LazFeatures::default();
        let hag = options.has(HEIGHT_ABOVE_GROUND);
        let within_2m = options.has(POINTS_WITHIN_2M);
        LazFeatures {
            radius: options
                .neighbourhood_reach(s)
                .max(if hag { options.ground_radius } else { 0.0 })
                .max(if within_2m { 2.0 } else { 0.0 }),
            features: options.feature_count(),
            // Height above ground also holds the pass's ground points (a growing buffer,
            // up to 24 bytes a point) and their grid (a copy and about two cell offsets,
            // 28): at most every point. The 2 m count needs a second column grid: a copy
            // and its offsets, 24.
            bytes_per_point: base.bytes_per_point
                + if hag { 52 } else { 0 }
                + if within_2m { 24 } else { 0 },
            options: options.clone(),
            ..base
        }
    }

    /// How laz-enrich runs cloud `s` within `budget_bytes` with at most `jobs` threads:
    /// the threads the budget holds ([`LazFeatures::threads_within`]), the largest pass
    /// that fits with them (at most `--tile-points`, else [`EFFICIENT_TILE_POINTS`]),
    /// and the slab ([`LazFeatures::slab_points`]).
    pub fn run(&self, s: &Summary, budget_bytes: u64, jobs: u64) -> Result<Run, Error> {
        let (count, rec_in) = s
            .points
            .as_ref()
            .map_or((0, 0), |p| (p.count, u64::from(p.record_bytes)));
        let with = |threads: u64| LazFeatures {
            threads,
            ..self.clone()
        };
        // Never a thread whose overhead leaves no room for the smallest slab: fewer
        // threads then (one always, and then the budget error names the minimum).
        let most =
            u32::try_from(self.threads_within(budget_bytes, count, jobs)).unwrap_or(u32::MAX);
        let threads = u64::from(
            super::most_workers(most, |t| {
                with(u64::from(t))
                    .capacity(budget_bytes, count, rec_in)
                    .is_some()
            })
            .unwrap_or(1),
        );
        let model = with(threads);
        let tile_points = model
            .capacity(budget_bytes, count, rec_in)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Budget,
                    format!(
                        "the budget {} is below the {} needed to decode and encode one LAZ chunk",
                        human_bytes(budget_bytes),
                        human_bytes(model.predicted_peak(count, rec_in, 0, 0))
                    ),
                )
            })?
            .min(self.options.tile_points.unwrap_or(EFFICIENT_TILE_POINTS))
            .min(u64::from(u32::MAX));
        Ok(Run {
            threads,
            tile_points,
            slab_points: model.slab_points(budget_bytes, count, rec_in, threads),
        })
    }

    /// Points per square metre from the header's bounds (at least a tiny positive value).
    pub fn density(s: &Summary) -> f64 {
        let Some(p) = &s.points else { return 1.0 };
        let area = ((p.bounds[3] - p.bounds[0]) * (p.bounds[4] - p.bounds[1])).abs();
        if area.is_finite() && area > 0.0 {
            (p.count as f64 / area).max(1e-9)
        } else {
            p.count.max(1) as f64
        }
    }

    /// Bytes a held point costs, features included.
    pub fn per_point(&self) -> u64 {
        self.bytes_per_point
            .saturating_add(self.features.saturating_mul(self.bytes_per_feature))
            .max(1)
    }

    /// Histogram cells the tiling uses for a cloud of `count` points.
    pub fn histogram_cells(count: u64) -> u64 {
        (count / 8).clamp(1024, 1 << 20)
    }

    /// The fixed part for a cloud of `count` points: process plus histogram, plus the
    /// threads beyond the first.
    pub fn fixed_bytes(&self, count: u64) -> u64 {
        self.fixed
            .saturating_add(Self::histogram_cells(count).saturating_mul(self.bytes_per_cell))
            .saturating_add(
                self.threads
                    .saturating_sub(1)
                    .saturating_mul(self.per_thread),
            )
    }

    /// Threads a run may use within `budget_bytes`, at most `jobs`: their overhead may
    /// take at most a quarter of the room above the fixed part (the rest is for tiles
    /// and slabs), so `-j` is an upper bound the budget trims.
    pub fn threads_within(&self, budget_bytes: u64, count: u64, jobs: u64) -> u64 {
        let one = LazFeatures {
            threads: 1,
            ..self.clone()
        };
        let room = budget_bytes.saturating_sub(one.fixed_bytes(count));
        let extra = room / 4 / self.per_thread.max(1);
        jobs.clamp(1, extra.saturating_add(1))
    }

    /// Predicted peak RSS: `held` points in the largest feature pass, slabs of `slab`
    /// points of `record_bytes`-byte input records, a cloud of `count` points.
    pub fn predicted_peak(&self, count: u64, record_bytes: u64, held: u64, slab: u64) -> u64 {
        let pass = held.saturating_mul(self.per_point());
        self.fixed_bytes(count)
            .saturating_add(pass.max(self.slab_bytes(record_bytes, slab)))
    }

    /// What a decode/encode slab of `slab` points costs. Slabs of whole LAZ chunks use
    /// the chunk-parallel codec (every thread holds a chunk decoded and encoded);
    /// smaller ones the streaming codec (a fixed state, then the records).
    pub fn slab_bytes(&self, record_bytes: u64, slab: u64) -> u64 {
        let out = record_bytes.saturating_add(self.features.saturating_mul(4));
        if slab >= LAZ_CHUNK_POINTS {
            slab.saturating_mul(
                self.slab_bytes_per_record_byte
                    .saturating_mul(out)
                    .saturating_add(self.slab_bytes_per_point),
            )
        } else {
            self.stream_state(out).saturating_add(slab.saturating_mul(
                (out.saturating_mul(3) / 2).saturating_add(self.stream_bytes_per_point),
            ))
        }
    }

    /// The streaming codec's own state for `out`-byte output records: a chunk's
    /// compressed layers, held until the chunk is complete.
    fn stream_state(&self, out: u64) -> u64 {
        LAZ_CHUNK_POINTS
            .saturating_mul(out)
            .saturating_add(self.stream_codec_bytes)
    }

    /// Points (owned plus halo) one pass may hold within `budget_bytes`, for a cloud of
    /// `count` points of `record_bytes`-byte records; `None` when even the smallest
    /// decode/encode slab does not fit.
    pub fn capacity(&self, budget_bytes: u64, count: u64, record_bytes: u64) -> Option<u64> {
        if self.predicted_peak(count, record_bytes, 0, MIN_SLAB_POINTS) > budget_bytes {
            return None;
        }
        budget_bytes
            .checked_sub(self.fixed_bytes(count))
            .map(|b| headroom(b) / self.per_point())
            .filter(|&c| c > 0)
    }

    /// Points per decode/encode slab within `budget_bytes` for a cloud of `count` points
    /// of `record_bytes`-byte records and `threads` codec threads: two LAZ chunks (50,000
    /// points each) per thread when they fit (whole chunks keep the parallel codec busy,
    /// two halve the pauses between slabs), else fewer whole chunks, else the most that
    /// fits with the streaming codec (at least 4,096).
    pub fn slab_points(
        &self,
        budget_bytes: u64,
        count: u64,
        record_bytes: u64,
        threads: u64,
    ) -> u64 {
        let room = headroom(budget_bytes.saturating_sub(self.fixed_bytes(count)));
        let mut chunks = 2 * threads.max(1);
        while chunks > 0 {
            let slab = chunks * LAZ_CHUNK_POINTS;
            if self.slab_bytes(record_bytes, slab) <= room {
                return slab;
            }
            chunks -= 1;
        }
        let state = self.slab_bytes(record_bytes, 0);
        let per = self
            .slab_bytes(record_bytes, 1)
            .saturating_sub(state)
            .max(1);
        let fits = room.saturating_sub(state) / per;
        fits.clamp(MIN_SLAB_POINTS, LAZ_CHUNK_POINTS - 1)
    }

    /// Points held for a tile of `owned` points: owned plus halo.
    pub fn held_points(&self, s: &Summary, owned: u64) -> u64 {
        let count = s.points.as_ref().map(|p| p.count).unwrap_or(0);
        if owned >= count {
            return count;
        }
        let d = Self::density(s);
        let side = (owned as f64 / d).sqrt();
        let held = d * (side + 2.0 * self.radius).powi(2);
        (held.ceil() as u64).clamp(owned, count.max(owned))
    }
}

impl CostModel for LazFeatures {
    fn name(&self) -> &'static str {
        "laz-enrich"
    }
    fn applies(&self, s: &Summary) -> bool {
        matches!(s.format, Format::Las | Format::Laz | Format::Copc) && s.points.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        "points"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        let count = s.points.as_ref().map(|p| p.count).unwrap_or(0).max(1);
        let mut v: Vec<u64> = halving(16 << 20, 16 << 10)
            .into_iter()
            .map(|c| c.min(count))
            .collect();
        v.dedup();
        v
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        256 << 10
    }
    fn peak_bytes(&self, s: &Summary, owned: u64, workers: u32) -> u64 {
        let (count, record) = s
            .points
            .as_ref()
            .map(|p| (p.count, u64::from(p.record_bytes)))
            .unwrap_or((0, 0));
        let held = self
            .held_points(s, owned)
            .saturating_mul(u64::from(workers.max(1)));
        self.predicted_peak(count, record, held, MIN_SLAB_POINTS)
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let count = s.points.as_ref().map(|p| p.count).unwrap_or(0);
        self.fixed
            .saturating_add(count.saturating_mul(self.whole_bytes_per_point))
    }
    fn describe(&self, s: &Summary, owned: u64) -> Value {
        let side = (owned as f64 / Self::density(s)).sqrt();
        json!({ "points": owned, "tile_m": (side * 100.0).round() / 100.0, "halo_m": self.radius })
    }
    fn work(&self, s: &Summary) -> f64 {
        s.points.as_ref().map(|p| p.count as f64).unwrap_or(0.0)
    }
    fn own_plan(
        &self,
        s: &Summary,
        budget_bytes: u64,
        max_workers: u32,
        _generic: &dyn Fn(u64) -> Result<Chosen, Error>,
    ) -> Option<Result<Chosen, Error>> {
        let model = LazFeatures::with_options(&self.options, s);
        Some(model.run(s, budget_bytes, u64::from(max_workers)).map(|run| {
            let (count, rec_in) = s
                .points
                .as_ref()
                .map_or((0, 0), |p| (p.count, u64::from(p.record_bytes)));
            let with_threads = LazFeatures {
                threads: run.threads,
                ..model.clone()
            };
            Chosen {
                chunk: run.tile_points,
                workers: u32::try_from(run.threads).unwrap_or(u32::MAX),
                geometry: json!({
                    "tile_points": run.tile_points,
                    "slab_points": run.slab_points,
                    "halo_m": model.radius,
                }),
                predicted_peak_bytes: with_threads.predicted_peak(
                    count,
                    rec_in,
                    run.tile_points,
                    run.slab_points,
                ),
                reasons: vec![format!(
                    "{} threads, passes of at most {} points, slabs of {}: laz-enrich's rule for the budget",
                    run.threads, run.tile_points, run.slab_points
                )],
            }
        }))
    }
    fn options(&self) -> Value {
        serde_json::to_value(&self.options).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_for_one_thread_runs_one_rather_than_failing() {
        // Near 16 MiB the budget holds the fixed part and one slab with one thread; threads_within's
        // quarter rule would add a second thread whose overhead leaves no room.
        let s = Summary {
            format: Format::Laz,
            bytes: 0,
            image: None,
            points: Some(crate::probe::PointsSummary {
                count: 64_614,
                record_bytes: 38,
                bounds: [0.0, 0.0, 0.0, 1000.0, 1000.0, 50.0],
                compressed: true,
            }),
            archive: None,
            document: None,
        };
        let m = LazFeatures::default();
        // A budget (near 16 MiB) where the quarter rule allows a second thread...
        let budget = (12 * MIB..24 * MIB)
            .step_by(64 << 10)
            .find(|&b| m.threads_within(b, 64_614, 2) == 2)
            .expect("a budget where the quarter rule allows two threads");
        // ...but the run takes one.
        let run = m.run(&s, budget, 2).unwrap();
        assert_eq!(run.threads, 1, "at {budget}");
        let one = LazFeatures {
            threads: 1,
            ..m.clone()
        };
        assert!(one.predicted_peak(64_614, 38, run.tile_points, run.slab_points) <= budget);
    }

    #[test]
    fn threads_are_what_the_budget_holds() {
        let m = LazFeatures::default();
        assert_eq!(m.threads_within(48 * MIB, 700_000, 2), 2);
        let t = m.threads_within(48 * MIB, 700_000, 32);
        assert!((2..=10).contains(&t), "{t}");
        assert_eq!(m.threads_within(8 * MIB, 700_000, 32), 1);
        // A budget past any machine: trillions of threads, no overflow.
        assert!(m.threads_within(u64::MAX, 700_000, u64::MAX) >= 1 << 40);
        // The threads' overhead is in the prediction.
        let more = LazFeatures {
            threads: t,
            ..m.clone()
        };
        assert_eq!(
            more.predicted_peak(700_000, 38, 0, 0),
            m.predicted_peak(700_000, 38, 0, 0) + (t - 1) * m.per_thread
        );
    }
}
