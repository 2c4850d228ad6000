//! Cost model of `laz-enrich` (geometric features per point over spatial tiles with halo).
//!
//! In flight per tile: the owned points and the halo points (positions as f64 and their
//! index), the neighbour-search structure, and the feature values of the owned points
//! before they are written. The halo's share grows as tiles shrink: with density `d`
//! points per square metre, a square tile of `p` owned points has side `sqrt(p / d)` and
//! holds `d * (side + 2r)^2` points. Whole-cloud tools (jakteristics, building a KD-tree
//! over everything) hold about 150 bytes a point. First-principles constants; the
//! laz-enrich tests recalibrate them.

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

/// The laz-enrich model.
#[derive(Debug, Clone)]
pub struct LazFeatures {
    /// Process overhead (LAZ decoder and encoder state, write buffers).
    pub fixed: u64,
    /// Bytes per point held in a tile (xyz f64, index, grid entry, features).
    pub bytes_per_point: u64,
    /// Neighbourhood radius in metres (the halo width).
    pub radius: f64,
    /// Bytes per point of a whole-cloud tool.
    pub whole_bytes_per_point: u64,
}

impl Default for LazFeatures {
    fn default() -> Self {
        LazFeatures {
            fixed: 24 * MIB,
            bytes_per_point: 120,
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
            held.saturating_mul(self.bytes_per_point)
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
