//! Cost model of `laz-enrich` (geometric features per point over spatial tiles with halo).
//!
//! In flight per pass: the owned and halo points of the pass's tiles (stored integer
//! coordinates, 12 bytes, plus an 8-byte index for owned points), the column grid of the
//! tile being computed (a sorted copy, 12 bytes, and about two column offsets a point),
//! and the feature values of its owned points (4 bytes a feature) before they are
//! written: `bytes_per_point + features * bytes_per_feature` a held point. The halo's
//! share grows as tiles shrink: with density `d` points per square metre, a square tile
//! of `p` owned points has side `sqrt(p / d)` and holds `d * (side + 2r)^2` points.
//! Whole-cloud tools (jakteristics, building a KD-tree over everything) hold about 150
//! bytes a point. `fixed` covers the process, the LAZ decoder/encoder and a slab of
//! records; the constants are calibrated against measured peak RSS by laz-enrich's
//! tests (tools/laz-enrich/tests/budget.rs).

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

/// The laz-enrich model.
#[derive(Debug, Clone)]
pub struct LazFeatures {
    /// Process overhead (LAZ decoder and encoder state, write buffers).
    pub fixed: u64,
    /// Bytes per point held in a pass, features not included (positions, index, grid).
    pub bytes_per_point: u64,
    /// Bytes per feature of a held point.
    pub bytes_per_feature: u64,
    /// Features computed.
    pub features: u64,
    /// Neighbourhood radius in metres (the halo width).
    pub radius: f64,
    /// Bytes per point of a whole-cloud tool.
    pub whole_bytes_per_point: u64,
}

impl Default for LazFeatures {
    fn default() -> Self {
        LazFeatures {
            fixed: 24 * MIB,
            bytes_per_point: 48,
            bytes_per_feature: 4,
            features: 12,
            radius: 1.0,
            whole_bytes_per_point: 150,
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

    /// Points (owned plus halo) one pass may hold within `budget_bytes`, if any.
    pub fn capacity(&self, budget_bytes: u64) -> Option<u64> {
        budget_bytes
            .checked_sub(self.fixed)
            .map(|b| b / self.per_point())
            .filter(|&c| c > 0)
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
        let held = self.held_points(s, owned);
        self.fixed.saturating_add(
            held.saturating_mul(self.per_point())
                .saturating_mul(u64::from(workers.max(1))),
        )
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
