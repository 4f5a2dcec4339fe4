//! A small AVX-512 matrix-product kernel for the Winograd convolution (the `gemm` crate only
//! uses AVX-512 on nightly Rust). `dst[m x n] = A[m x k] * B[k x n]`, all row-major, with `m`
//! padded to a multiple of [`MR`]. Each 12x32 block of dst is held in 24 zmm registers over the
//! whole k loop; the 12 rows of A are read as 12 sequential streams (no packing needed). Without AVX-512 (checked at run time) or
//! when `n` is not a multiple of 32 it falls back to the `gemm` crate.
#![allow(unsafe_code)]

/// Rows per packed A panel.
pub const MR: usize = 12;
const NR: usize = 32;

/// Whether the AVX-512 kernel can run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst = A * B`; `a` holds `m` rows padded up to a multiple of [`MR`] (padding rows may hold
/// anything), `dst` has room for the padded rows.
pub fn matmul_padded(a: &[f32], b: &[f32], dst: &mut [f32], m: usize, k: usize, n: usize) {
    let panels = m.div_ceil(MR);
    assert!(a.len() >= panels * MR * k, "A too short");
    assert!(b.len() >= k * n, "B too short");
    assert!(dst.len() >= panels * MR * n, "dst too short");
    #[cfg(target_arch = "x86_64")]
    {
        if n.is_multiple_of(NR) && available() {
            // SAFETY: AVX-512F is present (checked above) and the asserts bound every access
            // the kernel makes (see `kernel`).
            unsafe { avx512::matmul(a, b, dst, panels, k, n) };
            return;
        }
    }
    // Portable path: the gemm crate.
    let (rows, mrows) = (a, panels * MR);
    // SAFETY: `rows` is mrows x k, `b` is k x n, `dst` holds mrows x n (asserted above); row
    // strides k, n, n and unit column strides keep every access inside the slices.
    unsafe {
        gemm::gemm(
            mrows,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            rows.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// SAFETY (caller): AVX-512F available; `a` holds `panels * MR * k`, `b` holds `k * n`,
    /// `dst` holds `panels * MR * n` floats; `n % NR == 0`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn matmul(a: &[f32], b: &[f32], dst: &mut [f32], panels: usize, k: usize, n: usize) {
        for j0 in (0..n).step_by(NR) {
            for p in 0..panels {
                let ap = a.as_ptr().add(p * MR * k);
                let bp = b.as_ptr().add(j0);
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                for kk in 0..k {
                    let b0 = _mm512_loadu_ps(bp.add(kk * n));
                    let b1 = _mm512_loadu_ps(bp.add(kk * n + 16));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*ap.add(r * k + kk));
                        row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                        row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                    }
                }
                let dp = dst.as_mut_ptr().add(p * MR * n + j0);
                for (r, row) in acc.iter().enumerate() {
                    _mm512_storeu_ps(dp.add(r * n), row[0]);
                    _mm512_storeu_ps(dp.add(r * n + 16), row[1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_product_equals_naive() {
        for (m, k, n) in [
            (1usize, 3usize, 32usize),
            (12, 64, 64),
            (30, 17, 96),
            (25, 5, 40),
        ] {
            let panels = m.div_ceil(MR);
            let a_rows: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
                .collect();
            let mut padded = a_rows.clone();
            padded.resize(panels * MR * k, 0.0);
            let mut dst = vec![0f32; panels * MR * n];
            matmul_padded(&padded, &b, &mut dst, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|kk| a_rows[i * k + kk] * b[kk * n + j]).sum();
                    assert!(
                        (dst[i * n + j] - want).abs() < 1e-3,
                        "{m}x{k}x{n} at {i},{j}"
                    );
                }
            }
        }
    }
}
