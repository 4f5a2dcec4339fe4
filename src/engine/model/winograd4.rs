//! Winograd F(4x4, 3x3) for VGG16's large maps (224 to 56 px): 6x6 input tiles at stride 4,
//! 36 matrix products, 4x4 outputs per tile. It needs 4x fewer multiplications than direct
//! convolution (F(2x2, 3x3): 2.25x) at the price of larger transforms and kernels (36 instead
//! of 16 matrices), which is why the small 28x28 and 14x14 maps, whose 512-channel kernels would
//! then be 36 MiB a layer, stay with F(2x2, 3x3) (`winograd.rs`). Matrices from Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), points 0, +-1, +-2.

use crate::engine::model::gemm512::{matmul_packed, pack_b, packed_len};
use crate::engine::model::tiles::{for_each_row_block, pixel_or_zeros, put_scratch, take_scratch};

/// Input transform B^T (6x6).
const BT: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// Filter transform G (6x3).
const G: [[f32; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Output transform A^T (4x6).
const AT: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// Transformed positions per tile.
const POSITIONS: usize = 36;

/// Tiles per block (rounded to whole tile rows).
const BLOCK_TILES: usize = 96;

/// One conv layer's kernels transformed for F(4x4, 3x3): `U_k` (`c_in x c_out`) for each of
/// the 36 positions, packed for the matrix kernel.
#[derive(Debug, Clone)]
pub struct Winograd4 {
    c_in: usize,
    c_out: usize,
    u: Vec<f32>,
}

impl Winograd4 {
    /// From kernels `[c_out, c_in, 3, 3]` (row-major).
    pub fn new(weight: &[f32], c_in: usize, c_out: usize) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9);
        let mut u = vec![0f32; POSITIONS * c_in * c_out];
        for co in 0..c_out {
            for ci in 0..c_in {
                let g = &weight[(co * c_in + ci) * 9..(co * c_in + ci + 1) * 9];
                // t = G g (6x3), then U = t G^T (6x6), in f64 for the 1/6 and 1/24 factors.
                let mut t = [[0f64; 3]; 6];
                for (i, row) in G.iter().enumerate() {
                    for j in 0..3 {
                        t[i][j] = (0..3)
                            .map(|k| f64::from(row[k]) * f64::from(g[k * 3 + j]))
                            .sum();
                    }
                }
                for i in 0..6 {
                    for (j, grow) in G.iter().enumerate() {
                        let v: f64 = (0..3).map(|k| t[i][k] * f64::from(grow[k])).sum();
                        u[((i * 6 + j) * c_in + ci) * c_out + co] = v as f32;
                    }
                }
            }
        }
        let u = u
            .chunks_exact(c_in * c_out)
            .flat_map(|uk| pack_b(uk, c_in, c_out))
            .collect();
        Self { c_in, c_out, u }
    }

    /// 3x3 convolution, padding 1, + `bias` + ReLU of a channel-last image `[h, w, c_in]` into
    /// `output` (`h * w * c_out`, every element written), in blocks of tile rows in parallel.
    pub fn forward(&self, input: &[f32], h: usize, w: usize, bias: &[f32], output: &mut [f32]) {
        assert_eq!(input.len(), h * w * self.c_in);
        assert_eq!(output.len(), h * w * self.c_out);
        assert_eq!(bias.len(), self.c_out);
        let tiling = (w.div_ceil(4), h.div_ceil(4), 4);
        for_each_row_block(
            output,
            tiling,
            w * self.c_out,
            BLOCK_TILES,
            |rows, out_block| {
                #[cfg(target_arch = "x86_64")]
                if crate::engine::model::gemm512::available() {
                    // SAFETY: AVX-512F was detected at run time.
                    #[allow(unsafe_code)]
                    unsafe {
                        self.block_avx512(input, h, w, bias, rows, out_block);
                    }
                    return;
                }
                self.block(input, h, w, bias, rows, out_block);
            },
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn block_avx512(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        bias: &[f32],
        rows: std::ops::Range<usize>,
        out_block: &mut [f32],
    ) {
        self.block(input, h, w, bias, rows, out_block);
    }

    /// Tile rows `rows`: input transform, 36 products, output transform into `out_block`.
    #[inline(always)]
    fn block(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        bias: &[f32],
        rows: std::ops::Range<usize>,
        out_block: &mut [f32],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let tiles_w = w.div_ceil(4);
        let tiles = rows.len() * tiles_w;
        let (vs, ms) = (tile_stride(c_in), tile_stride(c_out));
        let (mut v, mut m) = take_scratch(tiles * vs, tiles * ms);
        let zeros = vec![0f32; c_in];
        let mut t = vec![0f32; POSITIONS * c_in.max(c_out)];
        for (ty, v_row) in rows.clone().zip(v.chunks_mut(tiles_w * vs)) {
            for (tx, vt) in v_row.chunks_exact_mut(vs).enumerate() {
                let (y0, x0) = (4 * ty as isize - 1, 4 * tx as isize - 1);
                let px = |i: usize, j: usize| {
                    pixel_or_zeros(input, (h, w), (y0 + i as isize, x0 + j as isize), &zeros)
                };
                // t[i][j] = (B^T d)[i][j], then V[i][j] = (t B)[i][j].
                for j in 0..6 {
                    let d: [&[f32]; 6] = std::array::from_fn(|k| px(k, j));
                    for (i, coeffs) in BT.iter().enumerate() {
                        combine(
                            &mut t[(i * 6 + j) * c_in..(i * 6 + j + 1) * c_in],
                            coeffs,
                            &d,
                        );
                    }
                }
                for i in 0..6 {
                    let at = |k: usize| (i * 6 + k) * c_in;
                    apply(&BT, (&t, at), (vt, at), c_in);
                }
            }
        }
        let u_len = packed_len(c_in, c_out);
        for k in 0..POSITIONS {
            matmul_packed(
                &v[k * c_in..],
                vs,
                &self.u[k * u_len..(k + 1) * u_len],
                &mut m[k * c_out..],
                ms,
                tiles,
                c_in,
                c_out,
            );
        }
        let out_rows = out_block.chunks_mut(4 * w * c_out);
        let mut px = vec![0f32; c_out];
        for (m_row, out) in m.chunks(tiles_w * ms).take(rows.len()).zip(out_rows) {
            let out_h = out.len() / (w * c_out);
            for (tx, mt) in m_row.chunks_exact(ms).enumerate() {
                // t[i][j] = (A^T M)[i][j] for i < 4, then Y[i][j] = (t A)[i][j].
                for j in 0..6 {
                    let at = |k: usize| (k * 6 + j) * c_out;
                    apply(&AT, (mt, at), (&mut t, at), c_out);
                }
                for i in 0..out_h {
                    let row: [&[f32]; 6] =
                        std::array::from_fn(|k| &t[(i * 6 + k) * c_out..(i * 6 + k + 1) * c_out]);
                    for (j, coeffs) in AT.iter().enumerate() {
                        let ox = 4 * tx + j;
                        if ox >= w {
                            break;
                        }
                        combine(&mut px, coeffs, &row);
                        let o = (i * w + ox) * c_out;
                        for (d, (v, b)) in out[o..o + c_out].iter_mut().zip(px.iter().zip(bias)) {
                            *d = (v + b).max(0.0);
                        }
                    }
                }
            }
        }
        put_scratch(v, m);
    }
}

/// One side of a transform: for each row r of `matrix`, the vector of `c` floats at
/// `dst[dst_at(r)..]` becomes `sum_k matrix[r][k] * src[src_at(k)..]`.
#[inline(always)]
fn apply<const R: usize>(
    matrix: &[[f32; 6]; R],
    (src, src_at): (&[f32], impl Fn(usize) -> usize),
    (dst, dst_at): (&mut [f32], impl Fn(usize) -> usize),
    c: usize,
) {
    let inputs: [&[f32]; 6] = std::array::from_fn(|k| &src[src_at(k)..src_at(k) + c]);
    for (r, coeffs) in matrix.iter().enumerate() {
        combine(&mut dst[dst_at(r)..dst_at(r) + c], coeffs, &inputs);
    }
}

/// `out = sum_k coeffs[k] * inputs[k]`, skipping zero coefficients, vectorised over channels.
#[inline(always)]
fn combine(out: &mut [f32], coeffs: &[f32; 6], inputs: &[&[f32]; 6]) {
    let mut first = true;
    for (&c, x) in coeffs.iter().zip(inputs) {
        if c == 0.0 {
            continue;
        }
        if first {
            for (o, x) in out.iter_mut().zip(x.iter()) {
                *o = c * x;
            }
            first = false;
        } else {
            for (o, x) in out.iter_mut().zip(x.iter()) {
                *o += c * x;
            }
        }
    }
}

/// Floats from one tile's 36 transformed vectors to the next tile's (one cache line of skew,
/// as in `winograd.rs`).
fn tile_stride(c: usize) -> usize {
    POSITIONS * c + 16
}
