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

use super::gemm512::{matmul_padded, MR};

/// Filter transform G (4x3).
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Tiles per block (rounded to whole tile rows): large enough for efficient matrix products.
const BLOCK_TILES: usize = 192;

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
        let mut out = Vec::new();
        self.forward_into(input, h, w, &mut out);
        out
    }

    /// [`Self::forward`] into a reused buffer (every element is overwritten, so a buffer that
    /// was large enough before is only shortened: no reallocation, no page faults, no memset).
    pub fn forward_into(&self, input: &[f32], h: usize, w: usize, output: &mut Vec<f32>) {
        assert_eq!(input.len(), h * w * self.c_in);
        let tiles_w = w.div_ceil(2);
        let tiles_h = h.div_ceil(2);
        // Whole tile rows per block, and at least as many blocks as threads.
        let rows_per_block = BLOCK_TILES
            .div_ceil(tiles_w)
            .min(tiles_h.div_ceil(rayon::current_num_threads()))
            .max(1);
        set_len(output, h * w * self.c_out);
        let wide = super::gemm512::available();
        output
            .par_chunks_mut(2 * rows_per_block * w * self.c_out)
            .enumerate()
            .for_each(|(b, out_block)| {
                let ty0 = b * rows_per_block;
                let ty1 = (ty0 + rows_per_block).min(tiles_h);
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: AVX-512F was detected at run time.
                    #[allow(unsafe_code)]
                    unsafe {
                        self.block_avx512(input, h, w, ty0, ty1, out_block);
                    }
                    return;
                }
                let _ = wide;
                self.block(input, h, w, ty0, ty1, out_block);
            });
    }

    /// [`Self::block`] compiled for AVX-512 (the transforms then handle 16 channels at once).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn block_avx512(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        ty0: usize,
        ty1: usize,
        out_block: &mut [f32],
    ) {
        self.block(input, h, w, ty0, ty1, out_block);
    }

    /// Tile rows `ty0..ty1`: input transform, 16 matrix products, output transform into
    /// `out_block` (the output rows of these tiles).
    #[inline(always)]
    fn block(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        ty0: usize,
        ty1: usize,
        out_block: &mut [f32],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let tiles_w = w.div_ceil(2);
        let tiles = (ty1 - ty0) * tiles_w;
        // V[k][tile][c], tiles padded with zeros to whole panels of the matrix kernel.
        let tiles_pad = tiles.div_ceil(MR) * MR;
        // Per-thread scratch, reused across blocks and layers: fresh multi-megabyte buffers
        // would cost a page fault per 4 KiB every time. Padding rows may hold stale values;
        // their products are never read.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        // Taken out of the thread-local (not used inside a closure) so that this code stays
        // compiled with the caller's target features.
        let (mut v, mut m) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if v.len() < 16 * tiles_pad * c_in {
            v.resize(16 * tiles_pad * c_in, 0.0);
        }
        if m.len() < 16 * tiles_pad * c_out {
            m.resize(16 * tiles_pad * c_out, 0.0);
        }
        self.transform_multiply(input, h, w, ty0, ty1, out_block, &mut v, &mut m, tiles_pad);
        SCRATCH.with(|s| *s.borrow_mut() = (v, m));
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn transform_multiply(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        ty0: usize,
        ty1: usize,
        out_block: &mut [f32],
        v: &mut [f32],
        m: &mut [f32],
        tiles_pad: usize,
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let tiles_w = w.div_ceil(2);
        let tiles = (ty1 - ty0) * tiles_w;
        let zeros = vec![0f32; c_in];
        let mut bd = vec![0f32; 16 * c_in];
        // Input transform V = B^T d B, vectorised over the channels of each pixel.
        for ty in ty0..ty1 {
            for tx in 0..tiles_w {
                let t = (ty - ty0) * tiles_w + tx;
                let (y0, x0) = (2 * ty as isize - 1, 2 * tx as isize - 1);
                let px = |i: usize, j: usize| -> &[f32] {
                    let (y, x) = (y0 + i as isize, x0 + j as isize);
                    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                        &zeros
                    } else {
                        let o = (y as usize * w + x as usize) * c_in;
                        &input[o..o + c_in]
                    }
                };
                // Rows: bd[i][j] = (B^T d)[i][j].
                for j in 0..4 {
                    let (d0, d1, d2, d3) = (px(0, j), px(1, j), px(2, j), px(3, j));
                    let (r0, rest) = bd.split_at_mut(4 * c_in);
                    let (r1, rest) = rest.split_at_mut(4 * c_in);
                    let (r2, r3) = rest.split_at_mut(4 * c_in);
                    let cols = j * c_in..(j + 1) * c_in;
                    for (c, o) in r0[cols.clone()].iter_mut().enumerate() {
                        *o = d0[c] - d2[c];
                    }
                    for (c, o) in r1[cols.clone()].iter_mut().enumerate() {
                        *o = d1[c] + d2[c];
                    }
                    for (c, o) in r2[cols.clone()].iter_mut().enumerate() {
                        *o = d2[c] - d1[c];
                    }
                    for (c, o) in r3[cols].iter_mut().enumerate() {
                        *o = d1[c] - d3[c];
                    }
                }
                // Columns: V[i][j] = (B^T d B)[i][j].
                for i in 0..4 {
                    let row = &bd[i * 4 * c_in..(i + 1) * 4 * c_in];
                    let (b0, b1, b2, b3) = (
                        &row[..c_in],
                        &row[c_in..2 * c_in],
                        &row[2 * c_in..3 * c_in],
                        &row[3 * c_in..],
                    );
                    let at = |j: usize| ((i * 4 + j) * tiles_pad + t) * c_in;
                    let (o0, o1, o2, o3) = (at(0), at(1), at(2), at(3));
                    for (d, (x, y)) in v[o0..o0 + c_in].iter_mut().zip(b0.iter().zip(b2)) {
                        *d = x - y;
                    }
                    for (d, (x, y)) in v[o1..o1 + c_in].iter_mut().zip(b1.iter().zip(b2)) {
                        *d = x + y;
                    }
                    for (d, (x, y)) in v[o2..o2 + c_in].iter_mut().zip(b2.iter().zip(b1)) {
                        *d = x - y;
                    }
                    for (d, (x, y)) in v[o3..o3 + c_in].iter_mut().zip(b1.iter().zip(b3)) {
                        *d = x - y;
                    }
                }
            }
        }
        for k in 0..16 {
            matmul_padded(
                &v[k * tiles_pad * c_in..(k + 1) * tiles_pad * c_in],
                &self.u[k * c_in * c_out..(k + 1) * c_in * c_out],
                &mut m[k * tiles_pad * c_out..(k + 1) * tiles_pad * c_out],
                tiles,
                c_in,
                c_out,
            );
        }
        // Output transform Y = A^T M A, + bias, ReLU, vectorised over output channels.
        let mut am = vec![0f32; 8 * c_out];
        for ty in ty0..ty1 {
            for tx in 0..tiles_w {
                let t = (ty - ty0) * tiles_w + tx;
                let mm = |i: usize, j: usize| -> &[f32] {
                    let o = ((i * 4 + j) * tiles_pad + t) * c_out;
                    &m[o..o + c_out]
                };
                for j in 0..4 {
                    let (m0, m1, m2, m3) = (mm(0, j), mm(1, j), mm(2, j), mm(3, j));
                    let (a0, a1) = am.split_at_mut(4 * c_out);
                    for (c, o) in a0[j * c_out..(j + 1) * c_out].iter_mut().enumerate() {
                        *o = m0[c] + m1[c] + m2[c];
                    }
                    for (c, o) in a1[j * c_out..(j + 1) * c_out].iter_mut().enumerate() {
                        *o = m1[c] - m2[c] - m3[c];
                    }
                }
                for i in 0..2 {
                    let oy = 2 * ty + i;
                    if oy >= h {
                        continue;
                    }
                    let row = &am[i * 4 * c_out..(i + 1) * 4 * c_out];
                    let (a0, a1, a2, a3) = (
                        &row[..c_out],
                        &row[c_out..2 * c_out],
                        &row[2 * c_out..3 * c_out],
                        &row[3 * c_out..],
                    );
                    let base = (oy - 2 * ty0) * w;
                    let ox = 2 * tx;
                    let o = (base + ox) * c_out;
                    for (c, d) in out_block[o..o + c_out].iter_mut().enumerate() {
                        *d = (a0[c] + a1[c] + a2[c] + self.bias[c]).max(0.0);
                    }
                    if ox + 1 < w {
                        let o = (base + ox + 1) * c_out;
                        for (c, d) in out_block[o..o + c_out].iter_mut().enumerate() {
                            *d = (a1[c] - a2[c] - a3[c] + self.bias[c]).max(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// 2x2 max-pool, stride 2, of a channel-last image.
pub fn max_pool_2x2(input: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = Vec::new();
    max_pool_2x2_into(input, h, w, c, &mut out);
    out
}

/// Shortens or grows `v` to `n` elements, keeping its allocation (callers overwrite all).
fn set_len(v: &mut Vec<f32>, n: usize) {
    if v.len() >= n {
        v.truncate(n);
    } else {
        v.resize(n, 0.0);
    }
}

/// [`max_pool_2x2`] into a reused buffer.
pub fn max_pool_2x2_into(input: &[f32], h: usize, w: usize, c: usize, out: &mut Vec<f32>) {
    let (oh, ow) = (h / 2, w / 2);
    set_len(out, oh * ow * c);
    out.par_chunks_mut(ow * c).enumerate().for_each(|(y, row)| {
        for x in 0..ow {
            for ch in 0..c {
                let p = |dy: usize, dx: usize| input[((2 * y + dy) * w + 2 * x + dx) * c + ch];
                row[x * c + ch] = p(0, 0).max(p(0, 1)).max(p(1, 0)).max(p(1, 1));
            }
        }
    });
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
