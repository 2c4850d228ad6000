//! Eigen decomposition of a symmetric 3x3 matrix (a neighbourhood's covariance).
//!
//! The features need the three eigenvalues and one eigenvector (the normal, of l3).
//! [`values_and_normal`] gets them in closed form (the trigonometric solution of the
//! characteristic cubic, then the normal as the largest cross product of two rows of
//! A - l3 I): a few dozen flops, a third of Jacobi's cost. Where that is ill-conditioned
//! (two eigenvalues nearly equal, or a matrix near zero) it falls back to Jacobi.
//!
//! Written here rather than pulled from nalgebra: cyclic Jacobi rotations on a 3x3 matrix
//! are twenty lines, need no allocation, give small eigenvalues with high *relative*
//! accuracy (the closed-form trigonometric solution loses them on flat neighbourhoods,
//! where l3 is the feature that matters), and are a fixed sequence of IEEE operations, so
//! the same covariance always gives the same bits.

/// Eigenvalues in decreasing order and their unit eigenvectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eigen {
    /// `l1 >= l2 >= l3 >= 0` (tiny negative values from rounding are clamped to 0).
    pub values: [f64; 3],
    /// `vectors[i]` is the unit eigenvector of `values[i]`.
    pub vectors: [[f64; 3]; 3],
}

/// Eigenvalues `l1 >= l2 >= l3 >= 0` and a unit eigenvector of `l3` of the symmetric
/// matrix given by its upper triangle `[a00, a11, a22, a01, a02, a12]`.
pub fn values_and_normal(m: [f64; 6]) -> ([f64; 3], [f64; 3]) {
    let [a00, a11, a22, a01, a02, a12] = m;
    let q = (a00 + a11 + a22) / 3.0;
    let p1 = a01 * a01 + a02 * a02 + a12 * a12;
    let (b00, b11, b22) = (a00 - q, a11 - q, a22 - q);
    let p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    if p > 0.0 && p.is_finite() {
        // det(B) / 2 with B = (A - qI) / p, clamped against rounding.
        let det = b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02)
            + a02 * (a01 * a12 - b11 * a02);
        let r = det / (2.0 * p * p * p);
        // Near |r| = 1 two eigenvalues nearly coincide and acos loses half the digits:
        // Jacobi then.
        let separated = r.abs() < 1.0 - 1e-6;
        let phi = r.clamp(-1.0, 1.0).acos() / 3.0;
        let l1 = q + 2.0 * p * phi.cos();
        let l3 = q + 2.0 * p * (phi + 2.0 * std::f64::consts::FRAC_PI_3).cos();
        let l2 = 3.0 * q - l1 - l3;
        // Rows of A - l3 I; their cross products are parallel to the l3 eigenvector.
        let r0 = [a00 - l3, a01, a02];
        let r1 = [a01, a11 - l3, a12];
        let r2 = [a02, a12, a22 - l3];
        let cross = |u: [f64; 3], v: [f64; 3]| {
            [
                u[1] * v[2] - u[2] * v[1],
                u[2] * v[0] - u[0] * v[2],
                u[0] * v[1] - u[1] * v[0],
            ]
        };
        let norm2 = |v: [f64; 3]| v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        let mut best = cross(r0, r1);
        for c in [cross(r0, r2), cross(r1, r2)] {
            if norm2(c) > norm2(best) {
                best = c;
            }
        }
        let n2 = norm2(best);
        // Well separated: the cross product is about (l1 - l3)(l2 - l3), far from the
        // rounding noise of the rows (eps * l1^2).
        let gap = (l1 - l3) * (l2 - l3);
        if separated && gap > 1e-6 * l1 * l1 && n2 > 0.0 {
            let n = n2.sqrt();
            let values = [l1.max(0.0), l2.max(0.0), l3.max(0.0)];
            return (values, [best[0] / n, best[1] / n, best[2] / n]);
        }
    }
    let e = symmetric_eigen(m);
    (e.values, e.vectors[2])
}

/// Decompose the symmetric matrix given by its upper triangle
/// `[a00, a11, a22, a01, a02, a12]`.
pub fn symmetric_eigen(m: [f64; 6]) -> Eigen {
    // a[p][q] stored as a full matrix for clarity; only the upper triangle is updated.
    let mut a = [[m[0], m[3], m[4]], [m[3], m[1], m[5]], [m[4], m[5], m[2]]];
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let off = a[0][1].abs() + a[0][2].abs() + a[1][2].abs();
        if off == 0.0 || !off.is_finite() {
            break;
        }
        for (p, q, r) in [(0usize, 1usize, 2usize), (0, 2, 1), (1, 2, 0)] {
            let apq = a[p][q];
            if apq == 0.0 {
                continue;
            }
            // An off-diagonal element below 1e-13 of the diagonal moves the eigenvalues
            // by about its square (1e-26 relative): it is zeroed outright, which is what
            // makes the loop end, a sweep earlier than waiting for exact f64 negligibility.
            if apq.abs() <= 1e-13 * (a[p][p].abs() + a[q][q].abs()) {
                a[p][q] = 0.0;
                a[q][p] = 0.0;
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
            let t = if theta.abs() > 1e150 {
                0.5 / theta
            } else {
                theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
            };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let tau = s / (1.0 + c);
            a[p][p] -= t * apq;
            a[q][q] += t * apq;
            a[p][q] = 0.0;
            a[q][p] = 0.0;
            let (arp, arq) = (a[r][p], a[r][q]);
            let nrp = arp - s * (arq + arp * tau);
            let nrq = arq + s * (arp - arq * tau);
            a[r][p] = nrp;
            a[p][r] = nrp;
            a[r][q] = nrq;
            a[q][r] = nrq;
            for row in v.iter_mut() {
                let (g, h) = (row[p], row[q]);
                row[p] = g - s * (h + g * tau);
                row[q] = h + s * (g - h * tau);
            }
        }
    }
    let mut order = [0usize, 1, 2];
    // Stable sort on the values: equal eigenvalues keep Jacobi's order, deterministically.
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let mut out = Eigen {
        values: [0.0; 3],
        vectors: [[0.0; 3]; 3],
    };
    for (k, &i) in order.iter().enumerate() {
        out.values[k] = a[i][i].max(0.0);
        out.vectors[k] = [v[0][i], v[1][i], v[2][i]];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(m: [f64; 6]) {
        let e = symmetric_eigen(m);
        let full = [[m[0], m[3], m[4]], [m[3], m[1], m[5]], [m[4], m[5], m[2]]];
        assert!(e.values[0] >= e.values[1] && e.values[1] >= e.values[2]);
        for k in 0..3 {
            let x = e.vectors[k];
            let norm = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
            assert!((norm - 1.0).abs() < 1e-12);
            for (i, row) in full.iter().enumerate() {
                let ax = row[0] * x[0] + row[1] * x[1] + row[2] * x[2];
                assert!(
                    (ax - e.values[k] * x[i]).abs() < 1e-12,
                    "A x != l x for {m:?}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn diagonal_is_sorted() {
        let e = symmetric_eigen([1.0, 3.0, 2.0, 0.0, 0.0, 0.0]);
        assert_eq!(e.values, [3.0, 2.0, 1.0]);
        assert_eq!(e.vectors[0], [0.0, 1.0, 0.0]);
    }

    #[test]
    fn general_matrices() {
        check([2.0, 1.0, 0.5, 0.3, -0.2, 0.1]);
        check([0.25, 0.25, 1e-9, 0.2, 1e-10, -1e-10]);
        check([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        check([0.0; 6]);
    }

    #[test]
    fn closed_form_agrees_with_jacobi() {
        let mut rng = testkit::Rng::new(99);
        let mut next = || rng.f64() - 0.5;
        let mut cases: Vec<[f64; 6]> = (0..2000)
            .map(|_| {
                // Covariances of flattened random point sets: l3 much smaller than l1.
                let s = [
                    next().abs() + 0.1,
                    next().abs() + 0.05,
                    (next() * 1e-2).abs(),
                ];
                [
                    s[0],
                    s[1],
                    s[2],
                    next() * 0.05,
                    next() * 1e-3,
                    next() * 1e-3,
                ]
            })
            .collect();
        cases.push([2.0, 2.0, 1.0, 1.0, 0.0, 0.0]); // l2 = l3: falls back
        cases.push([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]); // isotropic
        cases.push([0.0; 6]);
        cases.push([0.25, 0.0, 0.0, 0.0, 0.0, 0.0]); // a line
        for m in cases {
            let (v, n) = values_and_normal(m);
            let e = symmetric_eigen(m);
            for (got, want) in v.iter().zip(e.values) {
                assert!((got - want).abs() <= 1e-12 * (1.0 + e.values[0]), "{m:?}");
            }
            let dot =
                (n[0] * e.vectors[2][0] + n[1] * e.vectors[2][1] + n[2] * e.vectors[2][2]).abs();
            if e.values[1] - e.values[2] > 1e-3 * e.values[0] {
                assert!(dot > 1.0 - 1e-9, "{m:?}: {n:?} vs {:?}", e.vectors[2]);
            }
        }
    }

    #[test]
    fn known_values() {
        // [[2,1,0],[1,2,0],[0,0,1]] has eigenvalues 3, 1, 1.
        let e = symmetric_eigen([2.0, 2.0, 1.0, 1.0, 0.0, 0.0]);
        assert!((e.values[0] - 3.0).abs() < 1e-14);
        assert!((e.values[1] - 1.0).abs() < 1e-14);
        assert!((e.values[2] - 1.0).abs() < 1e-14);
    }
}
