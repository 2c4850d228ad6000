//! Height above ground: for each point, the nearest ground point (class 2) in XY within
//! `--ground-radius`, as PDAL's `hag_nn` with one neighbour does; the height is the
//! difference of their z.
//!
//! A 2D grid over the tile's ground points (owned and halo) and a ring search outwards
//! from the query's cell. Distances come from integer coordinate differences and ties
//! are broken by (distance, |dz|, z, x, y) — a ground point finds itself, height 0 — so
//! the answer is a function of the ground points
//! alone: tiling and thread count do not change it, and with a halo at least the ground
//! radius wide it is exact at tile borders.

/// Ground points of one tile, bucketed by cell.
#[derive(Debug)]
pub struct GroundGrid {
    pts: Vec<[i32; 3]>,
    starts: Vec<u32>,
    origin: [i64; 2],
    cell: [i64; 2],
    cols: i64,
    rows: i64,
    scale: [f64; 3],
    radius: f64,
}

impl GroundGrid {
    /// Build over `points` (stored coordinates) for searches within `radius` metres.
    pub fn build(points: &[[i32; 3]], scale: [f64; 3], radius: f64) -> GroundGrid {
        let (mut lo, mut hi) = ([i64::MAX; 2], [i64::MIN; 2]);
        for p in points {
            for a in 0..2 {
                lo[a] = lo[a].min(i64::from(p[a]));
                hi[a] = hi[a].max(i64::from(p[a]));
            }
        }
        if points.is_empty() {
            lo = [0, 0];
            hi = [0, 0];
        }
        // Cells of a quarter of the radius, widened until there are not many more cells
        // than points.
        let mut cell = [
            ((radius / 4.0 / scale[0]).ceil() as i64).max(1),
            ((radius / 4.0 / scale[1]).ceil() as i64).max(1),
        ];
        let span = |c: [i64; 2]| ((hi[0] - lo[0]) / c[0] + 1, (hi[1] - lo[1]) / c[1] + 1);
        let max_cells = 2 * points.len() as i128 + 4096;
        let (mut cols, mut rows) = span(cell);
        while (cols as i128) * (rows as i128) > max_cells {
            cell = [cell[0] * 2, cell[1] * 2];
            (cols, rows) = span(cell);
        }
        let ncells = (cols * rows) as usize;
        let id = |p: &[i32; 3]| {
            let cx = (i64::from(p[0]) - lo[0]) / cell[0];
            let cy = (i64::from(p[1]) - lo[1]) / cell[1];
            (cy * cols + cx) as usize
        };
        let (starts, pts) = crate::neighbours::bucket_by_cell(points, ncells, id);
        GroundGrid {
            pts,
            starts,
            origin: lo,
            cell,
            cols,
            rows,
            scale,
            radius,
        }
    }

    /// The z (stored units) of the nearest ground point in XY within the radius, if any.
    pub fn nearest_z(&self, q: [i32; 3]) -> Option<i32> {
        if self.pts.is_empty() {
            return None;
        }
        let (qx, qy) = (i64::from(q[0]), i64::from(q[1]));
        let cx = (qx - self.origin[0]).div_euclid(self.cell[0]);
        let cy = (qy - self.origin[1]).div_euclid(self.cell[1]);
        let cmin = (self.cell[0] as f64 * self.scale[0]).min(self.cell[1] as f64 * self.scale[1]);
        let r2 = self.radius * self.radius;
        // (distance², |dz|, z, x, y) of the best so far.
        let mut best: Option<(f64, i64, i32, i32, i32)> = None;
        let mut k = 0i64;
        loop {
            // Points not visited yet lie in ring k or beyond: at least k - 1 whole cells
            // away from the query's cell.
            let beyond = (k - 1).max(0) as f64 * cmin;
            if beyond > self.radius {
                break;
            }
            if let Some((d2, ..)) = best {
                // Strictly: an equally distant point further out could win the tie.
                if d2 < beyond * beyond {
                    break;
                }
            }
            let (r0, r1) = (cy - k, cy + k);
            let (c0, c1) = (cx - k, cx + k);
            for row in r0.max(0)..=r1.min(self.rows - 1) {
                let edge_row = row == r0 || row == r1;
                let mut col = c0.max(0);
                while col <= c1.min(self.cols - 1) {
                    if !edge_row && col != c0 && col != c1 {
                        // Interior cells were visited by earlier rings: jump to the edge.
                        col = c1;
                        continue;
                    }
                    let c = (row * self.cols + col) as usize;
                    for p in &self.pts[self.starts[c] as usize..self.starts[c + 1] as usize] {
                        let dx = (i64::from(p[0]) - qx) as f64 * self.scale[0];
                        let dy = (i64::from(p[1]) - qy) as f64 * self.scale[1];
                        let d2 = dx * dx + dy * dy;
                        if d2 > r2 {
                            continue;
                        }
                        let dz = (i64::from(p[2]) - i64::from(q[2])).abs();
                        let cand = (d2, dz, p[2], p[0], p[1]);
                        let better = match best {
                            None => true,
                            Some(b) => {
                                cand.0 < b.0
                                    || (cand.0 == b.0
                                        && (cand.1, cand.2, cand.3, cand.4) < (b.1, b.2, b.3, b.4))
                            }
                        };
                        if better {
                            best = Some(cand);
                        }
                    }
                    col += 1;
                }
            }
            k += 1;
            // Past the whole grid in every direction: nothing more to find.
            if cx - k < 0 && cy - k < 0 && cx + k >= self.cols && cy + k >= self.rows {
                break;
            }
        }
        best.map(|b| b.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_equals_brute_force() {
        let mut rng = testkit::Rng::new(7);
        let mut next = |m: i64| rng.below(m as u64) as i32;
        let mut ground: Vec<[i32; 3]> = (0..2000)
            .map(|_| [next(20000), next(20000), next(500)])
            .collect();
        // Stacked duplicates in XY: a ground point must find itself.
        ground.push([500, 500, 10]);
        ground.push([500, 500, 20]);
        let scale = [0.01; 3];
        for radius in [3.0, 10.0, 50.0] {
            let g = GroundGrid::build(&ground, scale, radius);
            for _ in 0..300 {
                let q = [next(24000) - 2000, next(24000) - 2000, 0];
                let mut best: Option<(f64, i64, i32, i32, i32)> = None;
                for p in &ground {
                    let dx = f64::from(p[0] - q[0]) * 0.01;
                    let dy = f64::from(p[1] - q[1]) * 0.01;
                    let d2 = dx * dx + dy * dy;
                    if d2 <= radius * radius {
                        let c = (d2, i64::from(p[2] - q[2]).abs(), p[2], p[0], p[1]);
                        if best.is_none_or(|b| c < b) {
                            best = Some(c);
                        }
                    }
                }
                assert_eq!(g.nearest_z(q), best.map(|b| b.2), "r={radius} q={q:?}");
            }
        }
        assert_eq!(
            GroundGrid::build(&[], scale, 5.0).nearest_z([0, 0, 0]),
            None
        );
    }
}
