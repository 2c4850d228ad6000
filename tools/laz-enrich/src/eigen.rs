//! Eigen decomposition of a symmetric 3x3 matrix (a neighbourhood's covariance).
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
    fn known_values() {
        // [[2,1,0],[1,2,0],[0,0,1]] has eigenvalues 3, 1, 1.
        let e = symmetric_eigen([2.0, 2.0, 1.0, 1.0, 0.0, 0.0]);
        assert!((e.values[0] - 3.0).abs() < 1e-14);
        assert!((e.values[1] - 1.0).abs() < 1e-14);
        assert!((e.values[2] - 1.0).abs() < 1e-14);
    }
}
