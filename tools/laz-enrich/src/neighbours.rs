//! Radius neighbourhoods over the points of one tile plus its halo.
//!
//! A uniform 2D grid of columns at least `r` wide, each column's points sorted by height:
//! a query visits the 3x3 columns around the point and, in each, only the run of points
//! whose height is within `r` (two binary searches). Chosen over a KD-tree (kiddo) for
//! radius queries because building it is one counting sort (no per-node allocation),
//! its memory is the points plus one offset per column, and a query touches a few
//! contiguous runs; vegetation's tall columns are handled by the height sort. The
//! neighbour sums are exact integers, so the visiting order does not matter (see
//! [`crate::features::Sums`]).

use crate::features::Sums;
use std::collections::BinaryHeap;

/// Points grouped by cell with one counting sort: `starts[c]..starts[c + 1]` indexes the
/// points of cell `c` in the returned array, in their input order. Shared by the
/// neighbour grid and the ground grid.
pub(crate) fn bucket_by_cell(
    points: &[[i32; 3]],
    ncells: usize,
    cell_of: impl Fn(&[i32; 3]) -> usize,
) -> (Vec<u32>, Vec<[i32; 3]>) {
    let mut starts = vec![0u32; ncells + 1];
    for p in points {
        starts[cell_of(p) + 1] += 1;
    }
    for i in 0..ncells {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut pts = vec![[0i32; 3]; points.len()];
    for p in points {
        let c = cell_of(p);
        pts[fill[c] as usize] = *p;
        fill[c] += 1;
    }
    (starts, pts)
}

/// Sort every column's points by height, rows of columns in parallel (a tile's grid is
/// built between two parallel loops: done on one thread, the other core idled through
/// it, once per tile).
fn sort_columns(pts: &mut [[i32; 3]], starts: &[u32], cols: usize) {
    use rayon::prelude::*;
    let ncells = starts.len() - 1;
    // Row slices (several rows each, about 64k points), each sorted column by column.
    let mut parts: Vec<(usize, &mut [[i32; 3]])> = Vec::new();
    let mut rest = pts;
    let mut c = 0;
    while c < ncells {
        let mut e = (c + cols.max(1)).min(ncells);
        while e < ncells && (starts[e] - starts[c]) < 1 << 16 {
            e = (e + cols.max(1)).min(ncells);
        }
        let (part, tail) = rest.split_at_mut((starts[e] - starts[c]) as usize);
        parts.push((c, part));
        rest = tail;
        c = e;
    }
    parts.into_par_iter().for_each(|(c0, part)| {
        let base = starts[c0] as usize;
        let mut c = c0;
        while c < ncells && (starts[c] as usize) < base + part.len() {
            let (a, b) = (starts[c] as usize - base, starts[c + 1] as usize - base);
            if b - a > 1 {
                part[a..b].sort_unstable_by_key(|p| p[2]);
            }
            c += 1;
        }
    });
}

/// A kNN candidate ordered by (squared distance, x, y, z): the bits of a non-negative
/// f64 order as the number does, and the coordinates break ties, so the k nearest are
/// one set whatever the visiting order.
pub type KnnKey = (u64, i32, i32, i32);

/// A column grid over a set of points in stored integer coordinates.
#[derive(Debug)]
pub struct Grid {
    /// The points, grouped by column (row-major) and sorted by z within a column.
    pts: Vec<[i32; 3]>,
    /// `starts[c]..starts[c + 1]` are the points of column `c`.
    starts: Vec<u32>,
    origin: [i64; 2],
    cell: [i64; 2],
    cols: i64,
    rows: i64,
    /// The largest integer offset per axis that can lie within the radius.
    reach: [i64; 3],
    scale: [f64; 3],
    r2: f64,
    /// When the three scales are equal: the largest squared integer offset within the
    /// radius, so the distance test is exact integer arithmetic (and cheaper).
    r2_int: Option<i64>,
    /// Whether squared offsets summed over every point fit an i64 (then the hot loop
    /// accumulates in i64 and widens once at the end).
    small: bool,
}

impl Grid {
    /// Build the grid for `points` (at most `u32::MAX`), coordinate scales and radius.
    pub fn build(points: &[[i32; 3]], scale: [f64; 3], radius: f64) -> Grid {
        // One more than the exact reach: the distance test decides, the grid only has to
        // offer every candidate.
        let reach = [
            (radius / scale[0]).floor() as i64 + 1,
            (radius / scale[1]).floor() as i64 + 1,
            (radius / scale[2]).floor() as i64 + 1,
        ];
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
        let mut cell = [reach[0].max(1), reach[1].max(1)];
        let span = |c: [i64; 2]| ((hi[0] - lo[0]) / c[0] + 1, (hi[1] - lo[1]) / c[1] + 1);
        // Sparse tiles (outliers far apart) would make too many empty columns: widen the
        // cells (still at least r, so 3x3 columns still cover every neighbour).
        let max_cells = 2 * points.len() as i64 + 4096;
        let (mut cols, mut rows) = span(cell);
        while (cols as i128) * (rows as i128) > max_cells as i128 {
            cell = [cell[0] * 2, cell[1] * 2];
            (cols, rows) = span(cell);
        }
        let ncells = (cols * rows) as usize;
        let col_of = |p: &[i32; 3]| -> usize {
            let cx = (i64::from(p[0]) - lo[0]) / cell[0];
            let cy = (i64::from(p[1]) - lo[1]) / cell[1];
            (cy * cols + cx) as usize
        };
        let (starts, mut pts) = bucket_by_cell(points, ncells, col_of);
        sort_columns(&mut pts, &starts, cols as usize);
        let d2 = i128::from(reach.iter().copied().max().unwrap_or(1)).pow(2);
        let small = d2 * (points.len() as i128 + 1) < i128::from(i64::MAX / 4);
        let r2_int = (scale[0] == scale[1] && scale[1] == scale[2]).then(|| {
            // The largest k with sqrt(k) * s <= r: start from floor((r/s)^2) and step
            // over rounding either way.
            let q = radius / scale[0];
            let mut k = (q * q).floor() as i64;
            while k > 0 && (k as f64).sqrt() * scale[0] > radius {
                k -= 1;
            }
            while ((k + 1) as f64).sqrt() * scale[0] <= radius {
                k += 1;
            }
            k
        });
        Grid {
            r2_int,
            small,
            pts,
            starts,
            origin: lo,
            cell,
            cols,
            rows,
            reach,
            scale,
            r2: radius * radius,
        }
    }

    /// Points in the grid.
    pub fn len(&self) -> usize {
        self.pts.len()
    }

    /// Whether the grid holds no point.
    pub fn is_empty(&self) -> bool {
        self.pts.is_empty()
    }

    /// Exact sums over the points within the radius of `q` (distance <= r, `q` itself
    /// counted if it is in the grid).
    pub fn radius_sums(&self, q: [i32; 3]) -> Sums {
        if !self.small {
            let mut sums = Sums::default();
            self.visit(q, |d| sums.add(d));
            return sums;
        }
        if let Some(k) = self.r2_int {
            return self.exact_small_sums(q, k);
        }
        let mut n = 0u64;
        let mut s = [0i64; 3];
        let mut ss = [0i64; 6];
        self.visit(q, |[x, y, z]| {
            n += 1;
            s[0] += x;
            s[1] += y;
            s[2] += z;
            ss[0] += x * x;
            ss[1] += y * y;
            ss[2] += z * z;
            ss[3] += x * y;
            ss[4] += x * z;
            ss[5] += y * z;
        });
        Sums {
            n,
            s,
            ss: ss.map(i128::from),
        }
    }

    /// The hot path (equal scales, sums that fit i64): the distance test is folded into
    /// the sums as a mask instead of a branch, because about half the candidates pass
    /// and a branch on that mispredicts constantly.
    fn exact_small_sums(&self, q: [i32; 3], k: i64) -> Sums {
        let qx = i64::from(q[0]);
        let qy = i64::from(q[1]);
        let qz = i64::from(q[2]);
        let cx = (qx - self.origin[0]).div_euclid(self.cell[0]);
        let cy = (qy - self.origin[1]).div_euclid(self.cell[1]);
        let zlo = qz - self.reach[2];
        let zhi = qz + self.reach[2];
        let mut n = 0i64;
        let (mut sx, mut sy, mut sz) = (0i64, 0i64, 0i64);
        let (mut sxx, mut syy, mut szz, mut sxy, mut sxz, mut syz) =
            (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        let mut add_run = |run: &[[i32; 3]]| {
            for p in run {
                let dx = i64::from(p[0]) - qx;
                let dy = i64::from(p[1]) - qy;
                let dz = i64::from(p[2]) - qz;
                let m = -i64::from(dx * dx + dy * dy + dz * dz <= k);
                let (x, y, z) = (dx & m, dy & m, dz & m);
                n -= m;
                sx += x;
                sy += y;
                sz += z;
                sxx += x * x;
                syy += y * y;
                szz += z * z;
                sxy += x * y;
                sxz += x * z;
                syz += y * z;
            }
        };
        let (c0, c1) = ((cx - 1).max(0), (cx + 1).min(self.cols - 1));
        for row in (cy - 1).max(0)..=(cy + 1).min(self.rows - 1) {
            // The row's three columns are contiguous: short ones are scanned in one go
            // (the distance test rejects what the height window would have skipped, for
            // less than its binary searches cost); tall ones (vegetation) column by
            // column within the height window.
            let (a, b) = (
                (row * self.cols + c0) as usize,
                (row * self.cols + c1) as usize,
            );
            let whole = &self.pts[self.starts[a] as usize..self.starts[b + 1] as usize];
            if whole.len() <= 64 {
                add_run(whole);
                continue;
            }
            for c in a..=b {
                let run = &self.pts[self.starts[c] as usize..self.starts[c + 1] as usize];
                let first = run.partition_point(|p| i64::from(p[2]) < zlo);
                let last = first + run[first..].partition_point(|p| i64::from(p[2]) <= zhi);
                add_run(&run[first..last]);
            }
        }
        Sums {
            n: n as u64,
            s: [sx, sy, sz],
            ss: [sxx, syy, szz, sxy, sxz, syz].map(i128::from),
        }
    }

    /// Exact sums over the `k` nearest points of `q` in the grid (3D distance, `q` itself
    /// included if it is in the grid; ties broken by coordinates), and the squared
    /// distance in square metres of the farthest of them (`None` when the grid holds
    /// fewer than `k` points). `heap` is scratch space, reused between queries.
    pub fn knn_sums(
        &self,
        q: [i32; 3],
        k: usize,
        heap: &mut BinaryHeap<KnnKey>,
    ) -> (Sums, Option<f64>) {
        heap.clear();
        let (qx, qy, qz) = (i64::from(q[0]), i64::from(q[1]), i64::from(q[2]));
        let cx = (qx - self.origin[0]).div_euclid(self.cell[0]);
        let cy = (qy - self.origin[1]).div_euclid(self.cell[1]);
        let cmin = (self.cell[0] as f64 * self.scale[0]).min(self.cell[1] as f64 * self.scale[1]);
        let mut m = 0i64;
        loop {
            // Points not visited yet lie in ring m or beyond: at least m - 1 whole columns
            // away. Strictly below: an equally distant point further out could win a tie.
            if heap.len() == k {
                let kth = f64::from_bits(heap.peek().map_or(0, |t| t.0));
                let lb = (m - 1).max(0) as f64 * cmin;
                if kth < lb * lb {
                    break;
                }
            }
            if m > 0 && cx - m < 0 && cy - m < 0 && cx + m >= self.cols && cy + m >= self.rows {
                break;
            }
            for row in (cy - m).max(0)..=(cy + m).min(self.rows - 1) {
                let edge_row = row == cy - m || row == cy + m;
                let mut col = (cx - m).max(0);
                while col <= (cx + m).min(self.cols - 1) {
                    if !edge_row && col != cx - m && col != cx + m {
                        col = cx + m;
                        continue;
                    }
                    let c = (row * self.cols + col) as usize;
                    for p in &self.pts[self.starts[c] as usize..self.starts[c + 1] as usize] {
                        let dx = (i64::from(p[0]) - qx) as f64 * self.scale[0];
                        let dy = (i64::from(p[1]) - qy) as f64 * self.scale[1];
                        let dz = (i64::from(p[2]) - qz) as f64 * self.scale[2];
                        let key = ((dx * dx + dy * dy + dz * dz).to_bits(), p[0], p[1], p[2]);
                        if heap.len() < k {
                            heap.push(key);
                        } else if heap.peek().is_some_and(|top| key < *top) {
                            heap.pop();
                            heap.push(key);
                        }
                    }
                    col += 1;
                }
            }
            m += 1;
        }
        let mut sums = Sums::default();
        for &(_, x, y, z) in heap.iter() {
            sums.add([i64::from(x) - qx, i64::from(y) - qy, i64::from(z) - qz]);
        }
        let kth = (heap.len() == k).then(|| f64::from_bits(heap.peek().map_or(0, |t| t.0)));
        (sums, kth)
    }

    /// Call `f` with the integer offset of every point within the radius of `q`.
    #[inline(always)]
    fn visit(&self, q: [i32; 3], mut f: impl FnMut([i64; 3])) {
        let qx = i64::from(q[0]);
        let qy = i64::from(q[1]);
        let qz = i64::from(q[2]);
        let cx = (qx - self.origin[0]).div_euclid(self.cell[0]);
        let cy = (qy - self.origin[1]).div_euclid(self.cell[1]);
        let zlo = qz - self.reach[2];
        let zhi = qz + self.reach[2];
        for row in (cy - 1).max(0)..=(cy + 1).min(self.rows - 1) {
            for col in (cx - 1).max(0)..=(cx + 1).min(self.cols - 1) {
                let c = (row * self.cols + col) as usize;
                let run = &self.pts[self.starts[c] as usize..self.starts[c + 1] as usize];
                let first = run.partition_point(|p| i64::from(p[2]) < zlo);
                for p in &run[first..] {
                    let dz = i64::from(p[2]) - qz;
                    if i64::from(p[2]) > zhi {
                        break;
                    }
                    let dx = i64::from(p[0]) - qx;
                    let dy = i64::from(p[1]) - qy;
                    let within = match self.r2_int {
                        Some(k) => dx * dx + dy * dy + dz * dz <= k,
                        None => {
                            let fx = dx as f64 * self.scale[0];
                            let fy = dy as f64 * self.scale[1];
                            let fz = dz as f64 * self.scale[2];
                            fx * fx + fy * fy + fz * fz <= self.r2
                        }
                    };
                    if within {
                        f([dx, dy, dz]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over every pair, for comparison: |d| s <= r decided exactly (equal
    /// scales, as the grid does).
    fn brute(points: &[[i32; 3]], q: [i32; 3], scale: [f64; 3], r: f64) -> Sums {
        let mut s = Sums::default();
        for p in points {
            let d = [
                i64::from(p[0]) - i64::from(q[0]),
                i64::from(p[1]) - i64::from(q[1]),
                i64::from(p[2]) - i64::from(q[2]),
            ];
            let d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            if (d2 as f64).sqrt() * scale[0] <= r {
                s.add(d);
            }
        }
        s
    }

    #[test]
    fn knn_equals_brute_force() {
        let mut rng = testkit::Rng::new(4242);
        let mut next = |m: i64| rng.below(m as u64) as i32;
        // Clustered, duplicated and sparse points.
        let mut pts: Vec<[i32; 3]> = (0..2500)
            .map(|_| [next(3000), next(3000), next(400)])
            .collect();
        pts.extend((0..300).map(|_| [1500 + next(20), 1500 + next(20), next(10)]));
        pts.extend([[0, 0, 0], [0, 0, 0], [90_000, 5, 5]]);
        let scale = [0.01; 3];
        for (hint, k) in [(1.0, 1usize), (1.0, 10), (0.2, 30), (5.0, 17)] {
            let g = Grid::build(&pts, scale, hint);
            let mut heap = BinaryHeap::new();
            for q in pts.iter().step_by(9).chain([&[90_000, 5, 5]]) {
                let mut all: Vec<KnnKey> = pts
                    .iter()
                    .map(|p| {
                        let d = [0, 1, 2].map(|a| f64::from(p[a] - q[a]) * 0.01);
                        (
                            (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).to_bits(),
                            p[0],
                            p[1],
                            p[2],
                        )
                    })
                    .collect();
                all.sort_unstable();
                let mut want = Sums::default();
                for t in &all[..k] {
                    want.add([
                        i64::from(t.1 - q[0]),
                        i64::from(t.2 - q[1]),
                        i64::from(t.3 - q[2]),
                    ]);
                }
                let (got, kth) = g.knn_sums(*q, k, &mut heap);
                assert_eq!(got, want, "k={k} q={q:?}");
                assert_eq!(kth, Some(f64::from_bits(all[k - 1].0)));
            }
        }
        let g = Grid::build(&pts[..3], scale, 1.0);
        let (s, kth) = g.knn_sums(pts[0], 5, &mut BinaryHeap::new());
        assert_eq!((s.n, kth), (3, None));
    }

    #[test]
    fn grid_equals_brute_force() {
        // A deterministic pseudo-random cloud with duplicates and exact-distance ties.
        let mut rng = testkit::Rng::new(12345);
        let mut next = |m: i64| rng.below(m as u64) as i32;
        let mut pts: Vec<[i32; 3]> = (0..3000)
            .map(|_| [next(2000) - 1000, next(2000), next(300)])
            .collect();
        pts.push([0, 0, 0]);
        pts.push([100, 0, 0]);
        pts.push([60, 80, 0]);
        pts.push([-1_000_000, 5, 5]); // a far outlier: widens the cells
        let scale = [0.01, 0.01, 0.01];
        for r in [1.0, 0.37, 2.5] {
            let mut g = Grid::build(&pts, scale, r);
            assert!(g.small && g.r2_int.is_some());
            for q in pts.iter().step_by(7).chain([&[0, 0, 0]]) {
                assert_eq!(
                    g.radius_sums(*q),
                    brute(&pts, *q, scale, r),
                    "r={r} q={q:?}"
                );
            }
            // The generic paths agree: i128 sums (huge radii or tiles) here, floating-
            // point distances (unequal scales) below.
            g.small = false;
            for q in pts.iter().step_by(13) {
                assert_eq!(g.radius_sums(*q), brute(&pts, *q, scale, r), "i128 r={r}");
            }
            let mixed = [0.01, 0.01, 0.005];
            let gm = Grid::build(&pts, mixed, r);
            assert!(gm.r2_int.is_none());
            for q in pts.iter().step_by(11) {
                let mut want = Sums::default();
                for p in &pts {
                    let d = [0, 1, 2].map(|a| i64::from(p[a]) - i64::from(q[a]));
                    let f = [0, 1, 2].map(|a| d[a] as f64 * mixed[a]);
                    if f[0] * f[0] + f[1] * f[1] + f[2] * f[2] <= r * r {
                        want.add(d);
                    }
                }
                assert_eq!(gm.radius_sums(*q), want, "mixed r={r} q={q:?}");
            }
        }
    }
}
