//! A fast CPU path for VGG16's 3x3 convolutions: Winograd F(2x2, 3x3) in channel-last layout.
//!
//! Each 4x4 input tile (stride 2) is transformed (`B^T d B`), the 16 transformed positions are
//! 16 independent matrix products `[tiles x C_in] x [C_in x C_out]` (one `gemm` call each), and
//! the inverse transform (`A^T M A`) gives 2x2 outputs, with bias and ReLU fused. This needs
//! 2.25x fewer multiplications than direct or im2col convolution (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", CVPR 2016). Tiles are processed in blocks of
//! whole tile rows, in parallel, so every block writes its own rows of the output.
//! Outputs equal candle's `conv2d` within float rounding (tested to 1e-4 relative L2).

use rayon::prelude::*;

/// Filter transform G (4x3).
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Tiles per block (rounded to whole tile rows): large enough for efficient matrix products.
const BLOCK_TILES: usize = 96;

/// One conv layer with its kernels pre-transformed: `u[k][ci][co]` for the 16 positions k.
#[derive(Debug, Clone)]
pub struct WinogradConv {
    pub c_in: usize,
    pub c_out: usize,
    u: Vec<f32>,
    bias: Vec<f32>,
}

impl WinogradConv {
    /// From kernels `[c_out, c_in, 3, 3]` (row-major) and biases.
    pub fn new(weight: &[f32], bias: &[f32], c_in: usize, c_out: usize) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9);
        assert_eq!(bias.len(), c_out);
        let mut u = vec![0f32; 16 * c_in * c_out];
        for co in 0..c_out {
            for ci in 0..c_in {
                let g = &weight[(co * c_in + ci) * 9..(co * c_in + ci + 1) * 9];
                // t = G g (4x3), then U = t G^T (4x4).
                let mut t = [[0f32; 3]; 4];
                for (i, row) in G.iter().enumerate() {
                    for j in 0..3 {
                        t[i][j] = (0..3).map(|k| row[k] * g[k * 3 + j]).sum();
                    }
                }
                for i in 0..4 {
                    for (j, grow) in G.iter().enumerate() {
                        let v: f32 = (0..3).map(|k| t[i][k] * grow[k]).sum();
                        u[((i * 4 + j) * c_in + ci) * c_out + co] = v;
                    }
                }
            }
        }
        Self {
            c_in,
            c_out,
            u,
            bias: bias.to_vec(),
        }
    }

    /// 3x3 convolution, padding 1, + bias + ReLU of one channel-last image `[h, w, c_in]`.
    pub fn forward(&self, input: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (c_in, c_out) = (self.c_in, self.c_out);
        assert_eq!(input.len(), h * w * c_in);
        let tiles_w = w.div_ceil(2);
        let tiles_h = h.div_ceil(2);
        let rows_per_block = BLOCK_TILES.div_ceil(tiles_w).max(1);
        let mut output = vec![0f32; h * w * c_out];
        let out_rows_per_block = 2 * rows_per_block;
        output
            .par_chunks_mut(out_rows_per_block * w * c_out)
            .enumerate()
            .for_each(|(b, out_block)| {
                let ty0 = b * rows_per_block;
                let ty1 = (ty0 + rows_per_block).min(tiles_h);
                let tiles = (ty1 - ty0) * tiles_w;
                let mut v = vec![0f32; 16 * tiles * c_in];
                let mut m = vec![0f32; 16 * tiles * c_out];
                // Input transform: V = B^T d B per tile and channel.
                let at = |y: isize, x: isize, c: usize| -> f32 {
                    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                        0.0
                    } else {
                        input[(y as usize * w + x as usize) * c_in + c]
                    }
                };
                for ty in ty0..ty1 {
                    for tx in 0..tiles_w {
                        let t = (ty - ty0) * tiles_w + tx;
                        let (y0, x0) = (2 * ty as isize - 1, 2 * tx as isize - 1);
                        let interior =
                            y0 >= 0 && x0 >= 0 && y0 + 4 <= h as isize && x0 + 4 <= w as isize;
                        for c in 0..c_in {
                            let mut d = [[0f32; 4]; 4];
                            for (i, row) in d.iter_mut().enumerate() {
                                for (j, cell) in row.iter_mut().enumerate() {
                                    *cell = if interior {
                                        input[((y0 as usize + i) * w + x0 as usize + j) * c_in + c]
                                    } else {
                                        at(y0 + i as isize, x0 + j as isize, c)
                                    };
                                }
                            }
                            // B^T d: rows.
                            let mut bd = [[0f32; 4]; 4];
                            for j in 0..4 {
                                bd[0][j] = d[0][j] - d[2][j];
                                bd[1][j] = d[1][j] + d[2][j];
                                bd[2][j] = d[2][j] - d[1][j];
                                bd[3][j] = d[1][j] - d[3][j];
                            }
                            // (B^T d) B: columns.
                            for i in 0..4 {
                                let r = bd[i];
                                let vals = [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]];
                                for (j, val) in vals.into_iter().enumerate() {
                                    v[((i * 4 + j) * tiles + t) * c_in + c] = val;
                                }
                            }
                        }
                    }
                }
                for k in 0..16 {
                    matmul(
                        &v[k * tiles * c_in..(k + 1) * tiles * c_in],
                        &self.u[k * c_in * c_out..(k + 1) * c_in * c_out],
                        &mut m[k * tiles * c_out..(k + 1) * tiles * c_out],
                        tiles,
                        c_in,
                        c_out,
                    );
                }
                // Output transform: Y = A^T M A, + bias, ReLU.
                for ty in ty0..ty1 {
                    for tx in 0..tiles_w {
                        let t = (ty - ty0) * tiles_w + tx;
                        for co in 0..c_out {
                            let mm = |i: usize, j: usize| m[((i * 4 + j) * tiles + t) * c_out + co];
                            let mut am = [[0f32; 4]; 2];
                            for j in 0..4 {
                                am[0][j] = mm(0, j) + mm(1, j) + mm(2, j);
                                am[1][j] = mm(1, j) - mm(2, j) - mm(3, j);
                            }
                            let b = self.bias[co];
                            let y = [
                                [
                                    am[0][0] + am[0][1] + am[0][2],
                                    am[0][1] - am[0][2] - am[0][3],
                                ],
                                [
                                    am[1][0] + am[1][1] + am[1][2],
                                    am[1][1] - am[1][2] - am[1][3],
                                ],
                            ];
                            for (i, row) in y.iter().enumerate() {
                                let oy = 2 * ty + i;
                                if oy >= h {
                                    continue;
                                }
                                for (j, &val) in row.iter().enumerate() {
                                    let ox = 2 * tx + j;
                                    if ox < w {
                                        out_block[((oy - 2 * ty0) * w + ox) * c_out + co] =
                                            (val + b).max(0.0);
                                    }
                                }
                            }
                        }
                    }
                }
            });
        output
    }
}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]`, all row-major, single-threaded (callers run
/// blocks in parallel).
#[allow(unsafe_code)]
fn matmul(lhs: &[f32], rhs: &[f32], dst: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && dst.len() >= m * n);
    // SAFETY: the asserts above guarantee that every element gemm reads or writes, addressed
    // with the given row strides (k, n, n) and unit column strides, lies inside the slices;
    // `dst` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
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

/// 2x2 max-pool, stride 2, of a channel-last image.
pub fn max_pool_2x2(input: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; oh * ow * c];
    out.par_chunks_mut(ow * c).enumerate().for_each(|(y, row)| {
        for x in 0..ow {
            for ch in 0..c {
                let p = |dy: usize, dx: usize| input[((2 * y + dy) * w + 2 * x + dx) * c + ch];
                row[x * c + ch] = p(0, 0).max(p(0, 1)).max(p(1, 0)).max(p(1, 1));
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
        let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let den: f32 = b.iter().map(|y| y * y).sum();
        (num / den.max(1e-20)).sqrt()
    }

    #[test]
    fn matches_candle_conv2d_on_odd_and_even_sizes() {
        for (h, w, c_in, c_out) in [
            (8, 8, 3, 5),
            (7, 9, 4, 6),
            (1, 1, 2, 3),
            (14, 14, 16, 8),
            (30, 2, 5, 5),
        ] {
            let dev = Device::Cpu;
            let x = Tensor::randn(0f32, 1.0, (1, c_in, h, w), &dev).expect("x");
            let k = Tensor::randn(0f32, 0.3, (c_out, c_in, 3, 3), &dev).expect("k");
            let b = Tensor::randn(0f32, 0.1, c_out, &dev).expect("b");
            let reference = x
                .conv2d(&k, 1, 1, 1, 1)
                .expect("conv")
                .broadcast_add(&b.reshape((1, c_out, 1, 1)).expect("r"))
                .expect("add")
                .relu()
                .expect("relu");
            let reference: Vec<f32> = reference
                .permute((0, 2, 3, 1))
                .expect("p")
                .flatten_all()
                .expect("f")
                .to_vec1()
                .expect("v");
            let nhwc: Vec<f32> = x
                .permute((0, 2, 3, 1))
                .expect("p")
                .flatten_all()
                .expect("f")
                .to_vec1()
                .expect("v");
            let conv = WinogradConv::new(
                &k.flatten_all().expect("f").to_vec1::<f32>().expect("v"),
                &b.to_vec1::<f32>().expect("v"),
                c_in,
                c_out,
            );
            let ours = conv.forward(&nhwc, h, w);
            let err = rel_l2(&ours, &reference);
            assert!(err < 1e-5, "{h}x{w} {c_in}->{c_out}: {err}");
        }
    }

    #[test]
    fn max_pool_picks_the_largest() {
        let input: Vec<f32> = (0..4 * 4 * 2).map(|v| v as f32).collect();
        let out = max_pool_2x2(&input, 4, 4, 2);
        assert_eq!(out.len(), 2 * 2 * 2);
        assert_eq!(&out[..2], &[10.0, 11.0]);
    }
}
