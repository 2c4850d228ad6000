//! Spatial tiles that fit the memory budget, from a per-cell point histogram.
//!
//! A counting pass fills a histogram over a grid of cells (at least `r` wide, about a
//! million cells at most). Tiles are rectangles of cells made by recursive bisection:
//! a rectangle whose points plus halo (its cells grown by the halo width) exceed the
//! capacity is cut in two at the median of its points along its longer side. Dense areas
//! get small tiles, empty ones large. Each point is *owned* by the tile of its cell; a
//! tile also holds, as halo, every point within the halo width of its rectangle, which
//! makes radius features exact at tile borders. Tiles are then grouped (consecutive in
//! bisection order, so spatially close) into passes over the points.

use membudget::{Error, ErrorKind};

/// Point counts per cell over the cloud's extent, in stored integer coordinates.
#[derive(Debug)]
pub struct Histogram {
    /// Metres per stored unit along x and y.
    scale: [f64; 2],
    origin: [i64; 2],
    cell: [i64; 2],
    dims: [usize; 2],
    counts: Vec<u32>,
}

impl Histogram {
    /// A histogram covering `lo..=hi` (stored units) with cells at least `radius` wide,
    /// about one cell per 8 of the `points` and a million cells at most (the histogram
    /// and the lookups built from it cost about 20 bytes a cell).
    pub fn new(lo: [i64; 2], hi: [i64; 2], scale: [f64; 3], radius: f64, points: u64) -> Histogram {
        let w = (hi[0] - lo[0]).max(0) as f64 * scale[0];
        let h = (hi[1] - lo[1]).max(0) as f64 * scale[1];
        let cells = (points / 8).clamp(1024, 1 << 20) as f64;
        let side = radius
            .max((w * h / cells).sqrt())
            .max(w.max(h) / cells.sqrt().max(64.0) / 4.0);
        let cell = [
            ((side / scale[0]).ceil() as i64).max(1),
            ((side / scale[1]).ceil() as i64).max(1),
        ];
        let dims = [
            ((hi[0] - lo[0]).max(0) / cell[0] + 1) as usize,
            ((hi[1] - lo[1]).max(0) / cell[1] + 1) as usize,
        ];
        Histogram {
            scale: [scale[0], scale[1]],
            origin: lo,
            cell,
            dims,
            counts: vec![0; dims[0] * dims[1]],
        }
    }

    /// The cell of a point (clamped to the grid).
    #[inline]
    pub fn cell_of(&self, x: i32, y: i32) -> usize {
        let cx = ((i64::from(x) - self.origin[0]) / self.cell[0]).clamp(0, self.dims[0] as i64 - 1);
        let cy = ((i64::from(y) - self.origin[1]) / self.cell[1]).clamp(0, self.dims[1] as i64 - 1);
        cy as usize * self.dims[0] + cx as usize
    }

    /// Count one point.
    #[inline]
    pub fn add(&mut self, x: i32, y: i32) {
        let c = self.cell_of(x, y);
        self.counts[c] = self.counts[c].saturating_add(1);
    }

    /// Cells along x and y.
    pub fn dims(&self) -> [usize; 2] {
        self.dims
    }
}

/// A rectangle of histogram cells: columns `c0..c1`, rows `r0..r1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    c0: usize,
    r0: usize,
    c1: usize,
    r1: usize,
}

/// One tile: its cells and the points it was predicted to hold.
#[derive(Debug, Clone)]
pub struct Tile {
    rect: Rect,
    /// Upper bound of owned plus halo points (from the histogram).
    pub held_bound: u64,
    /// Points owned (exact: the histogram counts them).
    pub owned: u64,
    /// `[xmin, ymin, xmax, ymax)` of the rectangle grown by the halo, in stored units
    /// (unbounded sides where the rectangle touches the grid's edge).
    pub halo_box: [i64; 4],
}

/// The tiles of a cloud and the lookups a pass needs.
#[derive(Debug)]
pub struct Tiling {
    hist: Histogram,
    /// The tiles, in bisection order.
    pub tiles: Vec<Tile>,
    cell_tile: Vec<u32>,
    near_start: Vec<u32>,
    near: Vec<u32>,
}

impl Tiling {
    /// Cut the histogram into tiles holding at most `capacity` points each (owned plus
    /// a halo of `halo` stored units per axis). Fails with a budget error naming the
    /// capacity needed when one cell plus its halo already exceeds it.
    pub fn plan(hist: Histogram, halo: [i64; 2], capacity: u64) -> Result<Tiling, Error> {
        let [w, h] = hist.dims;
        let k = [
            (halo[0] + hist.cell[0] - 1) / hist.cell[0],
            (halo[1] + hist.cell[1] - 1) / hist.cell[1],
        ];
        let k = [k[0].max(1) as usize, k[1].max(1) as usize];
        // Summed-area table for O(1) rectangle counts.
        let mut sat = vec![0u64; (w + 1) * (h + 1)];
        for r in 0..h {
            let mut row = 0u64;
            for c in 0..w {
                row += u64::from(hist.counts[r * w + c]);
                sat[(r + 1) * (w + 1) + c + 1] = sat[r * (w + 1) + c + 1] + row;
            }
        }
        let sum = |c0: usize, r0: usize, c1: usize, r1: usize| -> u64 {
            sat[r1 * (w + 1) + c1] + sat[r0 * (w + 1) + c0]
                - sat[r0 * (w + 1) + c1]
                - sat[r1 * (w + 1) + c0]
        };
        let held = |t: Rect| {
            sum(
                t.c0.saturating_sub(k[0]),
                t.r0.saturating_sub(k[1]),
                (t.c1 + k[0]).min(w),
                (t.r1 + k[1]).min(h),
            )
        };
        let mut leaves = Vec::new();
        let mut stack = vec![Rect {
            c0: 0,
            r0: 0,
            c1: w,
            r1: h,
        }];
        let mut needed = 0u64;
        while let Some(t) = stack.pop() {
            let hb = held(t);
            let (cw, rh) = (t.c1 - t.c0, t.r1 - t.r0);
            if hb <= capacity || (cw == 1 && rh == 1) {
                if hb > capacity {
                    needed = needed.max(hb);
                }
                leaves.push((t, hb));
                continue;
            }
            let along_x = (cw as f64 * hist.cell[0] as f64 >= rh as f64 * hist.cell[1] as f64
                && cw > 1)
                || rh == 1;
            let total = sum(t.c0, t.r0, t.c1, t.r1);
            let (a, b) = if along_x { (t.c0, t.c1) } else { (t.r0, t.r1) };
            // The first cut where at least half the points lie before it.
            let mut cut = a + 1;
            while cut < b - 1 {
                let before = if along_x {
                    sum(t.c0, t.r0, cut, t.r1)
                } else {
                    sum(t.c0, t.r0, t.c1, cut)
                };
                if 2 * before >= total {
                    break;
                }
                cut += 1;
            }
            let (first, second) = if along_x {
                (Rect { c1: cut, ..t }, Rect { c0: cut, ..t })
            } else {
                (Rect { r1: cut, ..t }, Rect { r0: cut, ..t })
            };
            // Depth first, first half first: consecutive tiles are neighbours.
            stack.push(second);
            stack.push(first);
        }
        if needed > 0 {
            return Err(Error::new(
                ErrorKind::Budget,
                format!(
                    "a {:.2} x {:.2} m cell with its halo holds {needed} points, more than the {capacity} the memory budget allows",
                    hist.cell[0] as f64 * hist.scale[0],
                    hist.cell[1] as f64 * hist.scale[1]
                ),
            ));
        }
        let mut cell_tile = vec![0u32; w * h];
        let mut tiles = Vec::with_capacity(leaves.len());
        for (i, (t, hb)) in leaves.into_iter().enumerate() {
            for r in t.r0..t.r1 {
                cell_tile[r * w + t.c0..r * w + t.c1].fill(i as u32);
            }
            let edge = |c: usize, o: i64, cell: i64| o + c as i64 * cell;
            let halo_box = [
                if t.c0 == 0 {
                    i64::MIN
                } else {
                    edge(t.c0, hist.origin[0], hist.cell[0]) - halo[0]
                },
                if t.r0 == 0 {
                    i64::MIN
                } else {
                    edge(t.r0, hist.origin[1], hist.cell[1]) - halo[1]
                },
                if t.c1 == w {
                    i64::MAX
                } else {
                    edge(t.c1, hist.origin[0], hist.cell[0]) + halo[0]
                },
                if t.r1 == h {
                    i64::MAX
                } else {
                    edge(t.r1, hist.origin[1], hist.cell[1]) + halo[1]
                },
            ];
            tiles.push(Tile {
                rect: t,
                held_bound: hb,
                owned: sum(t.c0, t.r0, t.c1, t.r1),
                halo_box,
            });
        }
        // For each cell, the other tiles within the halo reach (CSR lists).
        let mut near_start = Vec::with_capacity(w * h + 1);
        let mut near = Vec::new();
        near_start.push(0u32);
        let mut found: Vec<u32> = Vec::new();
        for r in 0..h {
            for c in 0..w {
                let own = cell_tile[r * w + c];
                found.clear();
                for rr in r.saturating_sub(k[1])..(r + k[1] + 1).min(h) {
                    for cc in c.saturating_sub(k[0])..(c + k[0] + 1).min(w) {
                        let t = cell_tile[rr * w + cc];
                        if t != own && !found.contains(&t) {
                            found.push(t);
                        }
                    }
                }
                found.sort_unstable();
                near.extend_from_slice(&found);
                near_start.push(
                    u32::try_from(near.len())
                        .map_err(|_| Error::new(ErrorKind::Internal, "too many tile borders"))?,
                );
            }
        }
        Ok(Tiling {
            hist,
            tiles,
            cell_tile,
            near_start,
            near,
        })
    }

    /// The tile owning the cell of a point.
    #[inline]
    pub fn owner(&self, x: i32, y: i32) -> (usize, u32) {
        let c = self.hist.cell_of(x, y);
        (c, self.cell_tile[c])
    }

    /// Other tiles whose halo may hold a point of cell `c`.
    #[inline]
    pub fn near(&self, c: usize) -> &[u32] {
        &self.near[self.near_start[c] as usize..self.near_start[c + 1] as usize]
    }

    /// Group consecutive tiles into passes holding at most `capacity` points.
    pub fn groups(&self, capacity: u64) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut held = 0u64;
        for (i, t) in self.tiles.iter().enumerate() {
            if i > start && held + t.held_bound > capacity {
                out.push(start..i);
                start = i;
                held = 0;
            }
            held += t.held_bound;
        }
        if start < self.tiles.len() {
            out.push(start..self.tiles.len());
        }
        out
    }

    /// Cells of a tile's rectangle, `[columns, rows]` (for reports).
    pub fn tile_cells(&self, t: usize) -> [usize; 2] {
        let r = self.tiles[t].rect;
        [r.c1 - r.c0, r.r1 - r.r0]
    }
}

/// Whether a point lies in a halo box.
#[inline]
pub fn in_box(b: &[i64; 4], x: i32, y: i32) -> bool {
    // Upper sides are open: with a halo one unit wider than the exact reach, a point in
    // the last column of a neighbour's halo is still found through the `near` lists.
    let (x, y) = (i64::from(x), i64::from(y));
    x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud() -> (Histogram, Vec<[i32; 2]>) {
        let pts: Vec<[i32; 2]> = (0..200)
            .flat_map(|i| (0..100).map(move |j| [i * 50, j * 100 + (i % 7)]))
            .collect();
        let mut h = Histogram::new([0, 0], [9950, 9906], [0.01; 3], 1.0, 1 << 20);
        for p in &pts {
            h.add(p[0], p[1]);
        }
        (h, pts)
    }

    #[test]
    fn tiles_respect_capacity_and_cover_each_point_once() {
        let (h, pts) = cloud();
        let t = Tiling::plan(h, [101, 101], 3000).unwrap();
        assert!(t.tiles.len() > 5, "{}", t.tiles.len());
        let owned: u64 = t.tiles.iter().map(|x| x.owned).sum();
        assert_eq!(owned, pts.len() as u64);
        for tile in &t.tiles {
            assert!(tile.held_bound <= 3000);
        }
        // Every point within the halo of a tile's rectangle is offered to that tile.
        for p in &pts {
            let (c, own) = t.owner(p[0], p[1]);
            for (i, tile) in t.tiles.iter().enumerate() {
                if i as u32 != own && in_box(&tile.halo_box, p[0], p[1]) {
                    assert!(t.near(c).contains(&(i as u32)));
                }
            }
        }
        let groups = t.groups(6000);
        assert!(groups.len() < t.tiles.len());
        assert_eq!(groups.last().unwrap().end, t.tiles.len());
    }

    #[test]
    fn impossible_capacity_is_a_budget_error() {
        let (h, _) = cloud();
        let e = Tiling::plan(h, [101, 101], 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Budget);
    }
}
