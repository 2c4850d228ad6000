//! The per-point geometric features: their names, their formulas, and their computation
//! from a neighbourhood's covariance.
//!
//! Conventions are jakteristics's (which follows CloudCompare): the covariance is the
//! sample covariance (divided by n - 1) centred on the neighbourhood mean, eigenvalues
//! l1 >= l2 >= l3 of that matrix, not normalised. Where a formula is undefined the value
//! is NaN: every eigenvalue feature with fewer than two neighbours; the ratios over l1
//! or l1 + l2 + l3 when all neighbours are at one spot (l1 = 0); the normal and what is
//! made from it (verticality, horizontality, wall and roof scores) when the neighbours
//! lie on one line (two points, a wire: l2 = l3 = 0, so any perpendicular would do).
//! The eigenentropy takes `0 ln 0` as its limit 0 (so it is 0 at one spot).
//!
//! Sums are accumulated in exact integer arithmetic on the points' stored (scaled
//! integer) coordinates relative to the query point, so a neighbourhood's covariance does
//! not depend on the order its points were visited in, hence not on tiling, thread count
//! or memory budget: the same input gives the same bits.

use crate::eigen::values_and_normal;

/// One output dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// l1 + l2 + l3.
    EigenvalueSum,
    /// (l1 l2 l3)^(1/3).
    Omnivariance,
    /// -(l1 ln l1 + l2 ln l2 + l3 ln l3).
    Eigenentropy,
    /// (l1 - l3) / l1.
    Anisotropy,
    /// (l2 - l3) / l1.
    Planarity,
    /// (l1 - l2) / l1.
    Linearity,
    /// l1 / (l1 + l2 + l3).
    Pca1,
    /// l2 / (l1 + l2 + l3).
    Pca2,
    /// l3 / (l1 + l2 + l3), also called change of curvature.
    SurfaceVariation,
    /// l3 / l1.
    Sphericity,
    /// 1 - |n_z|.
    Verticality,
    /// Normal x: the eigenvector of l3, oriented.
    Nx,
    /// Normal y.
    Ny,
    /// Normal z.
    Nz,
    /// Points within the radius, the point itself included.
    NumberOfNeighbors,
    /// Neighbours per cubic metre: n / (4/3 pi r^3).
    Density,
    /// l1.
    Eigenvalue1,
    /// l2.
    Eigenvalue2,
    /// l3.
    Eigenvalue3,
    /// z minus the z of the nearest ground point (class 2) in XY within the ground
    /// radius (NaN when there is none).
    HeightAboveGround,
    /// |n_z|.
    Horizontality,
    /// planarity x verticality (IGN building mode).
    WallScore,
    /// planarity x horizontality (IGN building mode).
    RoofScore,
    /// Points within 2 m, the point itself included (IGN building mode).
    PointsWithin2m,
}

/// Which names the output dimensions get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Names {
    /// jakteristics / CloudCompare names (nx, surface_variation, number_of_neighbors...)
    Jakteristics,
    /// IGN LiDAR HD enrich names (normal_x, curvature, ...)
    Ign,
}

impl Feature {
    /// Every feature, in the order the documentation lists them.
    pub const ALL: [Feature; 24] = [
        Feature::EigenvalueSum,
        Feature::Omnivariance,
        Feature::Eigenentropy,
        Feature::Anisotropy,
        Feature::Planarity,
        Feature::Linearity,
        Feature::Pca1,
        Feature::Pca2,
        Feature::SurfaceVariation,
        Feature::Sphericity,
        Feature::Verticality,
        Feature::Nx,
        Feature::Ny,
        Feature::Nz,
        Feature::NumberOfNeighbors,
        Feature::Density,
        Feature::Eigenvalue1,
        Feature::Eigenvalue2,
        Feature::Eigenvalue3,
        Feature::HeightAboveGround,
        Feature::Horizontality,
        Feature::WallScore,
        Feature::RoofScore,
        Feature::PointsWithin2m,
    ];

    /// The default selection.
    pub const DEFAULT: [Feature; 12] = [
        Feature::Nx,
        Feature::Ny,
        Feature::Nz,
        Feature::Linearity,
        Feature::Planarity,
        Feature::Sphericity,
        Feature::Omnivariance,
        Feature::Anisotropy,
        Feature::Eigenentropy,
        Feature::SurfaceVariation,
        Feature::Verticality,
        Feature::NumberOfNeighbors,
    ];

    /// The jakteristics name (also accepted by `--features`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::EigenvalueSum => "eigenvalue_sum",
            Feature::Omnivariance => "omnivariance",
            Feature::Eigenentropy => "eigenentropy",
            Feature::Anisotropy => "anisotropy",
            Feature::Planarity => "planarity",
            Feature::Linearity => "linearity",
            Feature::Pca1 => "PCA1",
            Feature::Pca2 => "PCA2",
            Feature::SurfaceVariation => "surface_variation",
            Feature::Sphericity => "sphericity",
            Feature::Verticality => "verticality",
            Feature::Nx => "nx",
            Feature::Ny => "ny",
            Feature::Nz => "nz",
            Feature::NumberOfNeighbors => "number_of_neighbors",
            Feature::Density => "density",
            Feature::Eigenvalue1 => "eigenvalue1",
            Feature::Eigenvalue2 => "eigenvalue2",
            Feature::Eigenvalue3 => "eigenvalue3",
            Feature::HeightAboveGround => "height_above_ground",
            Feature::Horizontality => "horizontality",
            Feature::WallScore => "wall_score",
            Feature::RoofScore => "roof_score",
            Feature::PointsWithin2m => "num_points_2m",
        }
    }

    /// The name of the output dimension under a naming scheme.
    pub fn dimension_name(self, names: Names) -> &'static str {
        match (names, self) {
            (Names::Ign, Feature::Nx) => "normal_x",
            (Names::Ign, Feature::Ny) => "normal_y",
            (Names::Ign, Feature::Nz) => "normal_z",
            (Names::Ign, Feature::SurfaceVariation) => "curvature",
            (Names::Ign, Feature::EigenvalueSum) => "sum_eigenvalues",
            (Names::Ign, Feature::Eigenentropy) => "eigenentropy",
            (Names::Ign, Feature::NumberOfNeighbors) => "num_points",
            _ => self.name(),
        }
    }

    /// The formula, as printed in the man page and the EB VLR description.
    pub fn formula(self) -> &'static str {
        match self {
            Feature::EigenvalueSum => "l1 + l2 + l3",
            Feature::Omnivariance => "(l1 l2 l3)^(1/3)",
            Feature::Eigenentropy => "-(l1 ln l1 + l2 ln l2 + l3 ln l3)",
            Feature::Anisotropy => "(l1 - l3) / l1",
            Feature::Planarity => "(l2 - l3) / l1",
            Feature::Linearity => "(l1 - l2) / l1",
            Feature::Pca1 => "l1 / (l1 + l2 + l3)",
            Feature::Pca2 => "l2 / (l1 + l2 + l3)",
            Feature::SurfaceVariation => "l3 / (l1 + l2 + l3)",
            Feature::Sphericity => "l3 / l1",
            Feature::Verticality => "1 - |n_z|",
            Feature::Nx => "normal x (eigenvector of l3, oriented)",
            Feature::Ny => "normal y (eigenvector of l3, oriented)",
            Feature::Nz => "normal z (eigenvector of l3, oriented)",
            Feature::NumberOfNeighbors => "points within r, itself included",
            Feature::Density => "n / (4/3 pi r^3), r: radius or k-th distance",
            Feature::Eigenvalue1 => "l1, largest covariance eigenvalue",
            Feature::Eigenvalue2 => "l2, middle covariance eigenvalue",
            Feature::Eigenvalue3 => "l3, smallest covariance eigenvalue",
            Feature::HeightAboveGround => "z - z of nearest ground (class 2) in XY",
            Feature::Horizontality => "|n_z|",
            Feature::WallScore => "planarity x verticality",
            Feature::RoofScore => "planarity x horizontality",
            Feature::PointsWithin2m => "points within 2 m, itself included",
        }
    }

    /// A feature from its jakteristics or IGN name.
    pub fn parse(s: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| {
            f.name().eq_ignore_ascii_case(s) || f.dimension_name(Names::Ign).eq_ignore_ascii_case(s)
        })
    }
}

/// Parse a `--features` list (comma-separated names, or `all`).
pub fn parse_list(s: &str) -> Result<Vec<Feature>, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Feature::ALL.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let f = Feature::parse(part).ok_or_else(|| {
            let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown feature {part:?} (choose from: all, {})",
                names.join(", ")
            )
        })?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if out.is_empty() {
        return Err("no feature selected".into());
    }
    Ok(out)
}

/// How normals are oriented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Orientation {
    /// n_z >= 0 (ties broken towards +x, then +y).
    Up,
    /// Towards a viewpoint: n . (v - p) >= 0.
    Towards([f64; 3]),
}

/// Exact sums over a neighbourhood, in stored integer units relative to the query point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Neighbours counted.
    pub n: u64,
    /// Sum of dx, dy, dz.
    pub s: [i64; 3],
    /// Sum of dx dx, dy dy, dz dz, dx dy, dx dz, dy dz.
    pub ss: [i128; 6],
}

impl Sums {
    /// Add one neighbour at integer offset `d` from the query point.
    #[inline]
    pub fn add(&mut self, d: [i64; 3]) {
        self.n += 1;
        self.s[0] += d[0];
        self.s[1] += d[1];
        self.s[2] += d[2];
        let (x, y, z) = (i128::from(d[0]), i128::from(d[1]), i128::from(d[2]));
        self.ss[0] += x * x;
        self.ss[1] += y * y;
        self.ss[2] += z * z;
        self.ss[3] += x * y;
        self.ss[4] += x * z;
        self.ss[5] += y * z;
    }

    /// The sample covariance `[cxx, cyy, czz, cxy, cxz, cyz]` in square metres, given
    /// the coordinate scales. `n S_ab - S_a S_b` is exact in i128; one rounding to f64
    /// follows, then the division by n (n - 1) and the scales.
    pub fn covariance(&self, scale: [f64; 3]) -> [f64; 6] {
        let n = self.n as i128;
        let s = [
            i128::from(self.s[0]),
            i128::from(self.s[1]),
            i128::from(self.s[2]),
        ];
        let denom = (self.n as f64) * (self.n as f64 - 1.0);
        let pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];
        let mut c = [0.0; 6];
        for (k, &(a, b)) in pairs.iter().enumerate() {
            let num = n * self.ss[k] - s[a] * s[b];
            c[k] = num as f64 / denom * scale[a] * scale[b];
        }
        c
    }
}

impl Sums {
    /// Whether the neighbourhood lies on one line (or one spot, or is one or two
    /// points): its scatter matrix `n SS - S S^T` has rank at most 1. Then the smallest
    /// eigenvalue's eigenvectors span a plane and no normal is defined. Decided on the
    /// exact integer matrix: for a positive semidefinite one, rank <= 1 exactly when its
    /// three principal 2x2 minors vanish. Should a product overflow i128 (radii or
    /// offsets far beyond a tile's), the minor is compared relatively in f64.
    pub fn collinear(&self) -> bool {
        let n = self.n as i128;
        let s = self.s.map(i128::from);
        let m = |k: usize, a: usize, b: usize| n * self.ss[k] - s[a] * s[b];
        let (xx, yy, zz) = (m(0, 0, 0), m(1, 1, 1), m(2, 2, 2));
        let (xy, xz, yz) = (m(3, 0, 1), m(4, 0, 2), m(5, 1, 2));
        [(xx, yy, xy), (xx, zz, xz), (yy, zz, yz)]
            .into_iter()
            .all(|(a, b, c)| match (a.checked_mul(b), c.checked_mul(c)) {
                (Some(ab), Some(cc)) => ab == cc,
                _ => {
                    let (ab, cc) = (a as f64 * b as f64, c as f64 * c as f64);
                    (ab - cc).abs() <= 1e-12 * ab.abs().max(cc)
                }
            })
    }
}

/// Compute the selected features of one point into `out` (one f32 per feature);
/// `extra` holds its height above ground and its count of points within 2 m (NaN when
/// not asked for).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    features: &[Feature],
    sums: &Sums,
    scale: [f64; 3],
    radius: f64,
    point: [f64; 3],
    orientation: Orientation,
    extra: [f64; 2],
    out: &mut [f32],
) {
    let [hag, within_2m] = extra;
    let n = sums.n;
    let (l, normal) = if n >= 2 {
        let (values, mut nrm) = values_and_normal(sums.covariance(scale));
        let flip = match orientation {
            Orientation::Up => {
                nrm[2] < 0.0 || (nrm[2] == 0.0 && (nrm[0] < 0.0 || (nrm[0] == 0.0 && nrm[1] < 0.0)))
            }
            Orientation::Towards(v) => {
                let dot = nrm[0] * (v[0] - point[0])
                    + nrm[1] * (v[1] - point[1])
                    + nrm[2] * (v[2] - point[2]);
                dot < 0.0
            }
        };
        if flip {
            nrm = [-nrm[0], -nrm[1], -nrm[2]];
        }
        // On a line any perpendicular would do: the solver's pick is no normal.
        if sums.collinear() {
            nrm = [f64::NAN; 3];
        }
        (values, nrm)
    } else {
        ([f64::NAN; 3], [f64::NAN; 3])
    };
    let [l1, l2, l3] = l;
    let sum = l1 + l2 + l3;
    let xlnx = |x: f64| if x > 0.0 { x * x.ln() } else { 0.0 * x };
    for (slot, f) in out.iter_mut().zip(features) {
        let v = match f {
            Feature::EigenvalueSum => sum,
            Feature::Omnivariance => (l1 * l2 * l3).cbrt(),
            Feature::Eigenentropy => -(xlnx(l1) + xlnx(l2) + xlnx(l3)),
            Feature::Anisotropy => (l1 - l3) / l1,
            Feature::Planarity => (l2 - l3) / l1,
            Feature::Linearity => (l1 - l2) / l1,
            Feature::Pca1 => l1 / sum,
            Feature::Pca2 => l2 / sum,
            Feature::SurfaceVariation => l3 / sum,
            Feature::Sphericity => l3 / l1,
            Feature::Verticality => 1.0 - normal[2].abs(),
            Feature::Nx => normal[0],
            Feature::Ny => normal[1],
            Feature::Nz => normal[2],
            Feature::NumberOfNeighbors => n as f64,
            Feature::Density => n as f64 / (4.0 / 3.0 * std::f64::consts::PI * radius.powi(3)),
            Feature::Eigenvalue1 => l1,
            Feature::Eigenvalue2 => l2,
            Feature::Eigenvalue3 => l3,
            Feature::HeightAboveGround => hag,
            Feature::Horizontality => normal[2].abs(),
            Feature::WallScore => (l2 - l3) / l1 * (1.0 - normal[2].abs()),
            Feature::RoofScore => (l2 - l3) / l1 * normal[2].abs(),
            Feature::PointsWithin2m => within_2m,
        };
        *slot = v as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_parse() {
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.name()), Some(f));
            assert_eq!(Feature::parse(f.dimension_name(Names::Ign)), Some(f));
        }
        assert_eq!(
            parse_list("planarity, nx,planarity").unwrap(),
            vec![Feature::Planarity, Feature::Nx]
        );
        assert!(parse_list("bogus").unwrap_err().contains("unknown feature"));
        assert!(parse_list(" , ").is_err());
        assert_eq!(parse_list("all").unwrap().len(), Feature::ALL.len());
    }

    /// Normal-based features of a neighbourhood of offsets `pts` (scale 1 cm).
    fn normal_features(pts: &[[i64; 3]]) -> Vec<f32> {
        let mut s = Sums::default();
        for d in pts {
            s.add(*d);
        }
        let f = [
            Feature::Nx,
            Feature::Nz,
            Feature::Verticality,
            Feature::WallScore,
            Feature::Linearity,
            Feature::Eigenentropy,
        ];
        let mut out = vec![0f32; f.len()];
        evaluate(
            &f,
            &s,
            [0.01; 3],
            1.0,
            [0.0; 3],
            Orientation::Up,
            [f64::NAN; 2],
            &mut out,
        );
        out
    }

    #[test]
    fn normals_are_nan_where_undefined() {
        // Two points, a line of five (tilted, so no axis is special), one spot: no
        // normal, whatever perpendicular the eigen solver would pick.
        let two = normal_features(&[[0, 0, 0], [30, 10, 5]]);
        let line = normal_features(&[[0, 0, 0], [3, 2, 1], [6, 4, 2], [-9, -6, -3], [30, 20, 10]]);
        let spot = normal_features(&[[0, 0, 0]; 4]);
        for (name, v) in [("two", &two), ("line", &line), ("spot", &spot)] {
            assert!(v[..4].iter().all(|x| x.is_nan()), "{name}: {v:?}");
        }
        // A line is perfectly linear; entropy's 0 ln 0 is 0 (one spot: every l is 0).
        assert_eq!(line[4], 1.0);
        assert_eq!(spot[5], 0.0);
        // A plane (rank 2, however thin) has its normal: the plane z = 0 here.
        let plane = normal_features(&[[0, 0, 0], [50, 0, 0], [0, 50, 0], [50, 50, 0], [1, 2, 0]]);
        assert_eq!((plane[0], plane[1]), (0.0, 1.0), "{plane:?}");
        let thin = normal_features(&[[0, 0, 0], [100, 0, 0], [0, 100, 0], [100, 100, 1]]);
        assert!(thin[..4].iter().all(|x| x.is_finite()), "{thin:?}");
    }

    #[test]
    fn covariance_is_exact_and_order_free() {
        // Points of a unit-spaced line along x: dx = -1, 0, 1 (scale 0.5 m).
        let mut a = Sums::default();
        for d in [[-1, 0, 0], [0, 0, 0], [1, 0, 0]] {
            a.add(d);
        }
        let mut b = Sums::default();
        for d in [[1, 0, 0], [-1, 0, 0], [0, 0, 0]] {
            b.add(d);
        }
        assert_eq!(a, b);
        let c = a.covariance([0.5, 0.5, 0.5]);
        // Sample variance of -0.5, 0, 0.5 is 0.25.
        assert_eq!(c, [0.25, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn flat_square_is_planar_with_an_upward_normal() {
        let mut s = Sums::default();
        for x in -2..=2 {
            for y in -2..=2 {
                s.add([x, y, 0]);
            }
        }
        let feats = [
            Feature::Planarity,
            Feature::Linearity,
            Feature::Sphericity,
            Feature::Nz,
            Feature::Verticality,
            Feature::NumberOfNeighbors,
        ];
        let mut out = [0f32; 6];
        evaluate(
            &feats,
            &s,
            [1.0; 3],
            3.0,
            [0.0; 3],
            Orientation::Up,
            [f64::NAN; 2],
            &mut out,
        );
        assert_eq!(out, [1.0, 0.0, 0.0, 1.0, 0.0, 25.0]);
        let mut down = [0f32; 6];
        evaluate(
            &feats,
            &s,
            [1.0; 3],
            3.0,
            [0.0; 3],
            Orientation::Towards([0.0, 0.0, -10.0]),
            [f64::NAN; 2],
            &mut down,
        );
        assert_eq!(down[3], -1.0);
    }

    #[test]
    fn single_point_is_nan() {
        let mut s = Sums::default();
        s.add([0, 0, 0]);
        let mut out = [0f32; 2];
        evaluate(
            &[Feature::Planarity, Feature::NumberOfNeighbors],
            &s,
            [1.0; 3],
            1.0,
            [0.0; 3],
            Orientation::Up,
            [f64::NAN; 2],
            &mut out,
        );
        assert!(out[0].is_nan());
        assert_eq!(out[1], 1.0);
    }
}
