//! The matrix products of the Winograd convolution: `dst[m x n] = A[m x k] * B[k x n]` with B
//! (the transformed kernels, fixed per layer) packed once into strips of [`NR`] columns.
//!
//! On x86-64 with AVX-512 (checked at run time) each block of up to 12 rows x 32 columns of
//! dst stays in 24 zmm registers while k runs in steps of [`KC`] (a 32 KiB piece of a strip
//! stays in L1 while every row panel of A streams past it); a last panel of fewer rows gets its
//! own kernel, so A needs no padding. Elsewhere the `gemm` crate does each strip (it uses
//! AVX-512 only on nightly Rust, which is why this kernel exists).
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Rows per register block.
const MR: usize = 12;
/// Columns per packed strip (two zmm registers).
pub const NR: usize = 32;
/// Depth of one pass over a packed strip: `KC x NR` floats (32 KiB) stay in L1.
const KC: usize = 256;

/// Environment variable that, set to 1, makes the convolution use its portable code even where
/// AVX-512 is present (to test or time what CPUs without it run).
pub const PORTABLE_ENV: &str = "MORPHOSEARCH_PORTABLE";

/// Whether the AVX-512 kernel and transforms run: the CPU has AVX-512F and
/// [`PORTABLE_ENV`] is not set to 1 (both read once).
pub fn available() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| {
        let portable = std::env::var(PORTABLE_ENV).is_ok_and(|v| v == "1");
        #[cfg(target_arch = "x86_64")]
        {
            !portable && std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = portable;
            false
        }
    })
}

/// Floats in `pack_b(_, k, n)`.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k * NR
}

/// `B` (`k x n`, row-major) rearranged for [`matmul_packed`]: strips of [`NR`] columns, each
/// stored as `k x NR` contiguous floats (the last strip padded with zeros). A kernel then reads
/// a strip sequentially instead of jumping a whole row of B (up to 2 KiB, a new page every two
/// rows) for every step of k.
pub fn pack_b(b: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert!(b.len() >= k * n, "B too short");
    let mut packed = vec![0f32; packed_len(k, n)];
    for s in 0..n.div_ceil(NR) {
        let cols = NR.min(n - s * NR);
        for kk in 0..k {
            let from = &b[kk * n + s * NR..kk * n + s * NR + cols];
            packed[(s * k + kk) * NR..(s * k + kk) * NR + cols].copy_from_slice(from);
        }
    }
    packed
}

/// Checks that `m` rows of `cols` floats, `stride` apart, fit in `len` floats.
fn fits(len: usize, m: usize, stride: usize, cols: usize) -> bool {
    m == 0 || (stride >= cols && (m - 1) * stride + cols <= len)
}

/// `dst = A * B`: A's `m` rows of `k` start every `lda` floats of `a`, dst's rows of `n` every
/// `ldc` floats of `dst` (what lies between rows is left alone), B comes from [`pack_b`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed(
    a: &[f32],
    lda: usize,
    b_packed: &[f32],
    dst: &mut [f32],
    ldc: usize,
    m: usize,
    k: usize,
    n: usize,
) {
    assert!(fits(a.len(), m, lda, k), "A too short");
    assert!(b_packed.len() >= packed_len(k, n), "packed B too short");
    assert!(fits(dst.len(), m, ldc, n), "dst too short");
    let wide = available();
    for s in 0..n.div_ceil(NR) {
        // SAFETY: the asserts bound every row of A, every strip of B and every row of dst
        // that `strip` touches; AVX-512 is used only when detected.
        unsafe {
            strip(
                wide,
                a.as_ptr(),
                lda,
                b_packed.as_ptr().add(s * k * NR),
                k,
                dst.as_mut_ptr().add(s * NR),
                ldc,
                m,
                NR.min(n - s * NR),
            );
        }
    }
}

/// `count` independent products `dst_i = A_i * B_i` sharing one shape, run in parallel over
/// (product, strip) pairs: A_i starts at `a[i * a_step]`, B_i at `b_packed[i * packed_len(k, n)]`,
/// dst_i at `dst[i * c_step]`; row strides `lda`, `ldc` as in [`matmul_packed`]. Used when an
/// image has too few tiles to split its rows between threads.
#[allow(clippy::too_many_arguments)]
pub fn par_matmul_batched(
    a: &[f32],
    lda: usize,
    a_step: usize,
    b_packed: &[f32],
    dst: &mut [f32],
    ldc: usize,
    c_step: usize,
    count: usize,
    (m, k, n): (usize, usize, usize),
) {
    if count == 0 || m == 0 {
        return;
    }
    let b_len = packed_len(k, n);
    assert!(c_step >= n, "products would overlap in dst");
    assert!(
        (count - 1) * c_step + n <= ldc,
        "products would overlap in dst"
    );
    assert!(
        fits(a.len(), m, lda, (count - 1) * a_step + k),
        "A too short"
    );
    assert!(b_packed.len() >= count * b_len, "packed B too short");
    assert!(
        fits(dst.len(), m, ldc, (count - 1) * c_step + n),
        "dst too short"
    );
    struct Shared(*mut f32);
    // SAFETY: every work item writes only its own columns (product i, strip s) of dst, so the
    // pointer is shared between threads without overlapping writes.
    unsafe impl Sync for Shared {}
    let out = Shared(dst.as_mut_ptr());
    let strips = n.div_ceil(NR);
    let wide = available();
    (0..count * strips).into_par_iter().for_each(|item| {
        let (i, s) = (item / strips, item % strips);
        let out = &out;
        // SAFETY: bounds asserted above; product i's columns i * c_step .. + n lie within a
        // row and do not overlap another product's (c_step >= n), nor do strips overlap.
        unsafe {
            strip(
                wide,
                a.as_ptr().add(i * a_step),
                lda,
                b_packed.as_ptr().add(i * b_len + s * k * NR),
                k,
                out.0.add(i * c_step + s * NR),
                ldc,
                m,
                NR.min(n - s * NR),
            );
        }
    });
}

/// One strip: `dst[m x cols] = A[m x k] * strip[k x NR]` (only `cols <= NR` columns stored).
///
/// # Safety
/// `a` holds `m` rows of `k` floats `lda` apart, `b` a packed strip of `k * NR` floats, `dst`
/// `m` rows of `cols` floats `ldc` apart; `wide` only if AVX-512F is present.
#[allow(clippy::too_many_arguments)]
unsafe fn strip(
    wide: bool,
    a: *const f32,
    lda: usize,
    b: *const f32,
    k: usize,
    dst: *mut f32,
    ldc: usize,
    m: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        avx512::strip(a, lda, b, k, dst, ldc, m, cols);
        return;
    }
    let _ = wide;
    gemm::gemm(
        m,
        cols,
        k,
        dst,
        1,
        ldc as isize,
        false,
        a,
        1,
        lda as isize,
        b,
        1,
        NR as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{KC, MR, NR};
    use std::arch::x86_64::*;

    /// See `super::strip`; AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn strip(
        a: *const f32,
        lda: usize,
        b: *const f32,
        k: usize,
        dst: *mut f32,
        ldc: usize,
        m: usize,
        cols: usize,
    ) {
        // Lanes of the two 16-wide halves that are real columns (the last strip of a matrix
        // may be partial; its padding is never stored).
        let lanes = |c: usize| -> __mmask16 {
            if c >= 16 {
                0xffff
            } else {
                (1u16 << c) - 1
            }
        };
        let masks = (lanes(cols), lanes(cols.saturating_sub(16)));
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let bp = b.add(k0 * NR);
            let first = k0 == 0;
            let mut r0 = 0;
            while r0 + MR <= m {
                let (ap, dp) = (a.add(r0 * lda + k0), dst.add(r0 * ldc));
                panel::<MR>(ap, lda, bp, kc, dp, ldc, first, masks);
                r0 += MR;
            }
            let (ap, dp) = (a.add(r0 * lda + k0), dst.add(r0 * ldc));
            match m - r0 {
                0 => {}
                1 => panel::<1>(ap, lda, bp, kc, dp, ldc, first, masks),
                2 => panel::<2>(ap, lda, bp, kc, dp, ldc, first, masks),
                3 => panel::<3>(ap, lda, bp, kc, dp, ldc, first, masks),
                4 => panel::<4>(ap, lda, bp, kc, dp, ldc, first, masks),
                5 => panel::<5>(ap, lda, bp, kc, dp, ldc, first, masks),
                6 => panel::<6>(ap, lda, bp, kc, dp, ldc, first, masks),
                7 => panel::<7>(ap, lda, bp, kc, dp, ldc, first, masks),
                8 => panel::<8>(ap, lda, bp, kc, dp, ldc, first, masks),
                9 => panel::<9>(ap, lda, bp, kc, dp, ldc, first, masks),
                10 => panel::<10>(ap, lda, bp, kc, dp, ldc, first, masks),
                _ => panel::<11>(ap, lda, bp, kc, dp, ldc, first, masks),
            }
        }
    }

    /// `R` rows of dst (32 columns, masked) += or = `R` rows of A times `kc` rows of a strip.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel<const R: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        kc: usize,
        dst: *mut f32,
        ldc: usize,
        first: bool,
        (m0, m1): (__mmask16, __mmask16),
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        if !first {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_maskz_loadu_ps(m0, dst.add(r * ldc));
                row[1] = _mm512_maskz_loadu_ps(m1, dst.add(r * ldc + 16));
            }
        }
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR));
            let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(dst.add(r * ldc), m0, row[0]);
            _mm512_mask_storeu_ps(dst.add(r * ldc + 16), m1, row[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], lda: usize, b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|kk| a[i * lda + kk] * b[kk * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_equal_naive_and_leave_gaps_alone() {
        // Shapes with tails of every kind: rows not a multiple of 12, columns not a multiple of
        // 32 (masked stores), k beyond one KC pass.
        for (m, k, n) in [
            (1usize, 3usize, 32usize),
            (12, 64, 64),
            (30, 17, 96),
            (25, 5, 40),
            (13, 300, 7),
            (49, 520, 33),
        ] {
            let (lda, ldc) = (k + 3, n + 5);
            let a: Vec<f32> = (0..m * lda).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
                .collect();
            let mut dst = vec![f32::NAN; m * ldc];
            matmul_packed(&a, lda, &pack_b(&b, k, n), &mut dst, ldc, m, k, n);
            let want = naive(&a, lda, &b, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    let (got, w) = (dst[i * ldc + j], want[i * n + j]);
                    assert!(
                        (got - w).abs() <= 1e-3 * w.abs().max(1.0),
                        "{m}x{k}x{n} at {i},{j}"
                    );
                }
                assert!(dst[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
            }
        }
    }

    #[test]
    fn batched_products_equal_one_at_a_time() {
        let (count, m, k, n) = (5usize, 23usize, 40usize, 64usize);
        let (lda, ldc) = (count * k, count * n);
        let a: Vec<f32> = (0..m * lda).map(|i| ((i * 3) % 17) as f32 - 8.0).collect();
        let bs: Vec<Vec<f32>> = (0..count)
            .map(|c| (0..k * n).map(|i| ((i + c) % 7) as f32 - 3.0).collect())
            .collect();
        let packed: Vec<f32> = bs.iter().flat_map(|b| pack_b(b, k, n)).collect();
        let mut dst = vec![0f32; m * ldc];
        par_matmul_batched(&a, lda, k, &packed, &mut dst, ldc, n, count, (m, k, n));
        for (c, b) in bs.iter().enumerate() {
            let want = naive(&a[c * k..], lda, b, m, k, n);
            for i in 0..m {
                assert_eq!(
                    &dst[i * ldc + c * n..i * ldc + c * n + n],
                    &want[i * n..(i + 1) * n]
                );
            }
        }
    }
}
