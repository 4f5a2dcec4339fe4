//! The projection fitted on the database: centring, PCA to at most 200 dimensions as in the
//! study (fewer when the database is small), optional whitening, then L2 normalisation.

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::pooling::l2_normalise;
use crate::engine::library::demo::Rng;

/// Fitted projection from raw descriptors to the compact search space.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Projection {
    pub mean: Vec<f32>,
    /// `dims x input_dim`, row-major: one principal axis per row.
    pub components: Vec<f32>,
    pub dims: usize,
    pub input_dim: usize,
    /// Per-axis factor: 1 / sqrt(eigenvalue) when whitened, 1 otherwise.
    pub scales: Vec<f32>,
    /// Fraction of the total variance each axis explains.
    pub explained: Vec<f32>,
}

impl Projection {
    /// Fits on `rows` (each `input_dim` long): at most `max_dims` axes, at most rank-many.
    pub fn fit(rows: &[Vec<f32>], max_dims: usize, whiten: bool) -> Option<Self> {
        let n = rows.len();
        let d = rows.first()?.len();
        if n < 2 || d == 0 {
            return None;
        }
        let mut mean = vec![0f64; d];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred = DMatrix::from_fn(n, d, |i, j| f64::from(rows[i][j]) - mean[j]);
        // Eigen-decompose the smaller of the covariance (d x d) and Gram (n x n) matrices.
        let (values, axes, total) = if d <= n {
            let cov = centred.transpose() * &centred / (n as f64 - 1.0);
            let total = cov.trace();
            let wanted = max_dims.min(n - 1) + SUBSPACE_OVERSAMPLING;
            let (values, axes) = if d >= SUBSPACE_FROM && wanted * 2 <= d {
                top_eigenpairs(&cov, wanted)
            } else {
                let e = SymmetricEigen::new(cov);
                (e.eigenvalues, e.eigenvectors)
            };
            (values, axes, total)
        } else {
            let gram = &centred * centred.transpose() / (n as f64 - 1.0);
            let e = SymmetricEigen::new(gram);
            let mut axes = centred.transpose() * &e.eigenvectors;
            for mut col in axes.column_iter_mut() {
                let norm = col.norm();
                if norm > 1e-12 {
                    col /= norm;
                }
            }
            let total = e.eigenvalues.iter().filter(|v| **v > 0.0).sum();
            (e.eigenvalues, axes, total)
        };
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let top = values[order[0]].max(0.0);
        let keep: Vec<usize> = order
            .into_iter()
            .filter(|&i| values[i] > top * 1e-9 && values[i] > 0.0)
            .take(max_dims.min(n - 1))
            .collect();
        if keep.is_empty() {
            return None;
        }
        let mut components = Vec::with_capacity(keep.len() * d);
        for &i in &keep {
            components.extend(axes.column(i).iter().map(|&v| v as f32));
        }
        Some(Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            dims: keep.len(),
            input_dim: d,
            scales: keep
                .iter()
                .map(|&i| {
                    if whiten {
                        (1.0 / values[i].sqrt()) as f32
                    } else {
                        1.0
                    }
                })
                .collect(),
            explained: keep.iter().map(|&i| (values[i] / total) as f32).collect(),
            components,
        })
    }

    /// Projects one raw descriptor and L2-normalises the result.
    pub fn apply(&self, v: &[f32]) -> Vec<f32> {
        let centred: Vec<f32> = v.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let mut out: Vec<f32> = self
            .components
            .chunks_exact(self.input_dim)
            .zip(&self.scales)
            .map(|(axis, s)| s * axis.iter().zip(&centred).map(|(a, b)| a * b).sum::<f32>())
            .collect();
        l2_normalise(&mut out);
        out
    }
}

/// Descriptor width from which the kept axes of a large library are found by subspace
/// iteration instead of a full eigen-decomposition of the covariance (2048 values: a full
/// decomposition took 10.5 s for 3000 images, docs/performance.md).
const SUBSPACE_FROM: usize = 1024;
/// Extra axes iterated beside the kept ones, so that the kept ones converge.
const SUBSPACE_OVERSAMPLING: usize = 100;
/// Power steps of the subspace iteration.
const SUBSPACE_STEPS: usize = 10;

/// The `k` largest eigenpairs of a symmetric positive semi-definite matrix by subspace
/// iteration (a fixed pseudo-random start, so a fit is repeatable), eigenvalues unsorted.
fn top_eigenpairs(cov: &DMatrix<f64>, k: usize) -> (nalgebra::DVector<f64>, DMatrix<f64>) {
    let mut rng = Rng::new(1);
    let mut q = DMatrix::from_fn(cov.nrows(), k, |_, _| f64::from(rng.next_f32()) - 0.5);
    for _ in 0..SUBSPACE_STEPS {
        q = (cov * &q).qr().q();
    }
    let small = q.transpose() * cov * &q;
    let e = SymmetricEigen::new(small);
    (e.eigenvalues, q * e.eigenvectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_main_axis_of_a_line() {
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| vec![i as f32, 2.0 * i as f32, 5.0])
            .collect();
        let p = Projection::fit(&rows, 200, false).expect("fit");
        assert_eq!(p.dims, 1, "a line has rank 1");
        let axis = &p.components[..3];
        let expected = [1.0 / 5f32.sqrt(), 2.0 / 5f32.sqrt(), 0.0];
        let dot: f32 = axis.iter().zip(expected).map(|(a, b)| a * b).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-4, "{axis:?}");
        assert!((p.explained[0] - 1.0).abs() < 1e-4);
    }

    #[test]
    fn subspace_iteration_finds_the_largest_eigenpairs() {
        // A covariance with a CNN-like slowly falling spectrum: eigenvalue 1 / (1 + i / 10).
        let d = 300;
        let basis = DMatrix::from_fn(d, d, |i, j| ((i * 31 + j * 17) % 97) as f64 - 48.0)
            .qr()
            .q();
        let values = nalgebra::DVector::from_fn(d, |i, _| 1.0 / (1.0 + i as f64 / 10.0));
        let cov = &basis * DMatrix::from_diagonal(&values) * basis.transpose();
        let (found, axes) = top_eigenpairs(&cov, 60 + SUBSPACE_OVERSAMPLING);
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_by(|&a, &b| found[b].total_cmp(&found[a]));
        for (rank, &i) in order.iter().take(60).enumerate() {
            let want = values[rank];
            assert!(
                (found[i] - want).abs() < 1e-6 * want.max(1.0),
                "{rank}: {}",
                found[i]
            );
            let dot = axes.column(i).dot(&basis.column(rank)).abs();
            assert!(dot > 0.999, "axis {rank}: |cos| {dot}");
        }
    }

    #[test]
    fn wide_descriptors_keep_orthonormal_axes_and_explained_fractions() {
        let (n, d) = (1200, SUBSPACE_FROM + 64);
        let rows = random_rows(n, d, 7);
        let p = Projection::fit(&rows, 50, false).expect("fit");
        assert_eq!(p.dims, 50);
        for i in [0, 17, 49] {
            for j in [0, 17, 49] {
                let axis = |k: usize| &p.components[k * d..(k + 1) * d];
                let dot: f32 = axis(i).iter().zip(axis(j)).map(|(a, b)| a * b).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-3, "axes {i} {j}: {dot}");
            }
        }
        let sum: f32 = p.explained.iter().sum();
        assert!(sum > 0.0 && sum < 1.0, "{sum}");
        assert!(p.explained.windows(2).all(|w| w[0] >= w[1] - 1e-6));
    }

    fn random_rows(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        (0..n).map(|_| (0..d).map(|_| next()).collect()).collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    }

    proptest! {
        /// With every axis kept and no whitening, PCA is a rotation of the centred data: the
        /// cosine of two projected vectors is that of the centred originals, and the axes are
        /// orthonormal.
        #[test]
        fn full_rank_projection_is_a_rotation_of_the_centred_data(
            n in 12usize..40, d in 2usize..8, seed in 0u64..1000
        ) {
            let rows = random_rows(n, d, seed);
            let p = Projection::fit(&rows, 200, false).expect("fit");
            prop_assert_eq!(p.dims, d);
            for i in 0..d {
                for j in 0..d {
                    let dot: f32 = (0..d).map(|k| p.components[i * d + k] * p.components[j * d + k]).sum();
                    prop_assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-3, "axes {i} {j}: {dot}");
                }
            }
            let centred = |r: &[f32]| -> Vec<f32> { r.iter().zip(&p.mean).map(|(x, m)| x - m).collect() };
            for w in rows.windows(2) {
                let want = cosine(&centred(&w[0]), &centred(&w[1]));
                let got = cosine(&p.apply(&w[0]), &p.apply(&w[1]));
                prop_assert!((want - got).abs() < 1e-3, "{want} vs {got}");
            }
        }

        /// Whitening gives every kept axis unit variance over the fitted rows (before the L2
        /// normalisation `apply` adds), and the explained fractions fall.
        #[test]
        fn whitened_axes_have_unit_variance(n in 20usize..40, d in 2usize..6, seed in 0u64..1000) {
            let rows = random_rows(n, d, seed);
            let p = Projection::fit(&rows, 200, true).expect("fit");
            prop_assert!(p.explained.windows(2).all(|w| w[0] >= w[1] - 1e-6));
            for axis in 0..p.dims {
                let values: Vec<f32> = rows
                    .iter()
                    .map(|r| {
                        let c: f32 = (0..d).map(|k| (r[k] - p.mean[k]) * p.components[axis * d + k]).sum();
                        c * p.scales[axis]
                    })
                    .collect();
                let var = values.iter().map(|v| v * v).sum::<f32>() / (n as f32 - 1.0);
                prop_assert!((var - 1.0).abs() < 0.05 || (var * (n as f32 - 1.0) / n as f32 - 1.0).abs() < 0.05, "axis {axis}: {var}");
            }
        }

        #[test]
        fn projected_vectors_are_unit_and_dims_bounded(
            n in 2usize..30, d in 1usize..12, seed in 0u64..1000, whiten: bool
        ) {
            let mut s = seed;
            let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) as f32 / (1u64 << 31) as f32 };
            let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..d).map(|_| next()).collect()).collect();
            if let Some(p) = Projection::fit(&rows, 200, whiten) {
                prop_assert!(p.dims <= d.min(n - 1));
                for r in &rows {
                    let v = p.apply(r);
                    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    prop_assert!(norm < 1.0 + 1e-3);
                }
                let total: f32 = p.explained.iter().sum();
                prop_assert!(total <= 1.0 + 1e-3);
            }
        }
    }
}
