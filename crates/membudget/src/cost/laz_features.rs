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

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

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
    /// neighbour scratch (0.83 MB measured a thread, 1 to 32 threads on 2 CPUs).
    pub per_thread: u64,
    /// Threads the run uses (see [`LazFeatures::threads_within`]).
    pub threads: u64,
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
            per_thread: MIB,
            threads: 1,
        }
    }
}

impl LazFeatures {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
            m.predicted_peak(700_000, 38, 0, 0) + (t - 1) * MIB
        );
    }
}
