//! A fast CPU path for VGG16's 3x3 convolutions: Winograd F(2x2, 3x3) in channel-last layout.
//!
//! Each 4x4 input tile (stride 2) is transformed (`B^T d B`), the 16 transformed positions are
//! 16 independent matrix products `[tiles x C_in] x [C_in x C_out]` (kernels packed once, see
//! `gemm512`), and the inverse transform (`A^T M A`) gives 2x2 outputs, with bias and ReLU
//! fused. This needs 2.25x fewer multiplications than direct or im2col convolution (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). Large maps are done
//! in blocks of whole tile rows, in parallel, so every block writes its own rows of the output;
//! small maps (too few rows to share) are done whole, with the threads sharing the products.
//! Outputs equal candle's `conv2d` within float rounding (tested to 1e-5 relative L2).

use rayon::prelude::*;

use crate::engine::model::gemm512::{matmul_packed, pack_b, packed_len, par_matmul_batched};
use crate::engine::model::tiles::{for_each_row_block, pixel_or_zeros, put_scratch, take_scratch};
use crate::engine::model::winograd4::Winograd4;

/// Filter transform G (4x3).
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Tiles per block (rounded to whole tile rows): large enough for efficient matrix products.
const BLOCK_TILES: usize = 192;

/// Images with at most this many tiles (VGG16's 28x28 and 14x14 maps) are done whole: their
/// rows are too few to split between threads without starving the matrix kernel, so the
/// threads share the 16 products instead (each thread then also reads only its part of the
/// kernels, which at 512 channels are 16 MiB a layer).
const WHOLE_IMAGE_TILES: usize = 256;

/// Layers whose `c_in x c_out` is at most this (VGG16's up to 256 channels) also get the
/// F(4x4, 3x3) form for large maps: 36 kernel matrices of at most 9 MiB in all.
const F4_MAX_KERNEL: usize = 256 * 256;

/// Layers with at most this many input channels (VGG16's first, RGB) run as im2col + one
/// matrix product instead: with 3 channels the Winograd transforms and the 16 stored products
/// (four times the output's size) cost more than the multiplications they save.
const IM2COL_MAX_C_IN: usize = 4;

/// Output rows per block of the im2col path.
const IM2COL_ROWS: usize = 8;

/// One conv layer with its kernels pre-transformed: for each of the 16 positions k, the
/// `c_in x c_out` matrix `U_k` packed for the matrix kernel (or, for layers with few input
/// channels, the `9 c_in x c_out` im2col matrix, packed).
#[derive(Debug, Clone)]
pub struct WinogradConv {
    pub c_in: usize,
    pub c_out: usize,
    u: Vec<f32>,
    im2col: Option<Vec<f32>>,
    /// The F(4x4, 3x3) form for large maps, for layers whose kernels stay small.
    f4: Option<Winograd4>,
    bias: Vec<f32>,
}

impl WinogradConv {
    /// From kernels `[c_out, c_in, 3, 3]` (row-major) and biases.
    pub fn new(weight: &[f32], bias: &[f32], c_in: usize, c_out: usize) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9);
        assert_eq!(bias.len(), c_out);
        if c_in <= IM2COL_MAX_C_IN {
            // Row (dy * 3 + dx) * c_in + ci, column co.
            let mut b = vec![0f32; 9 * c_in * c_out];
            for co in 0..c_out {
                for ci in 0..c_in {
                    for tap in 0..9 {
                        b[(tap * c_in + ci) * c_out + co] = weight[(co * c_in + ci) * 9 + tap];
                    }
                }
            }
            return Self {
                c_in,
                c_out,
                u: Vec::new(),
                im2col: Some(pack_b(&b, 9 * c_in, c_out)),
                f4: None,
                bias: bias.to_vec(),
            };
        }
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
        let u = u
            .chunks_exact(c_in * c_out)
            .flat_map(|uk| pack_b(uk, c_in, c_out))
            .collect();
        Self {
            c_in,
            c_out,
            u,
            im2col: None,
            f4: (c_in * c_out <= F4_MAX_KERNEL).then(|| Winograd4::new(weight, c_in, c_out)),
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
        set_len(output, h * w * self.c_out);
        if let Some(b) = &self.im2col {
            output
                .par_chunks_mut(IM2COL_ROWS * w * self.c_out)
                .enumerate()
                .for_each(|(i, out)| self.im2col_block(b, input, h, w, i * IM2COL_ROWS, out));
            return;
        }
        let (tiles_w, tiles_h) = (w.div_ceil(2), h.div_ceil(2));
        if tiles_w * tiles_h <= WHOLE_IMAGE_TILES {
            self.whole_image(input, h, w, output);
            return;
        }
        if let Some(f4) = &self.f4 {
            f4.forward(input, h, w, &self.bias, output);
            return;
        }
        let tiling = (tiles_w, tiles_h, 2);
        for_each_row_block(
            output,
            tiling,
            w * self.c_out,
            BLOCK_TILES,
            |rows, out_block| {
                self.block(input, h, w, rows, out_block);
            },
        );
    }

    /// Output rows from `y0` (as many as `out` holds) by im2col: each pixel's 3x3 neighbourhood
    /// as one row of `9 c_in` values, times the packed kernel matrix `b`, + bias, ReLU.
    fn im2col_block(
        &self,
        b: &[f32],
        input: &[f32],
        h: usize,
        w: usize,
        y0: usize,
        out: &mut [f32],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let k = 9 * c_in;
        let pixels = out.len() / c_out;
        let (mut cols, m) = take_scratch(pixels * k, 0);
        let zeros = vec![0f32; c_in];
        for (p, row) in cols[..pixels * k].chunks_exact_mut(k).enumerate() {
            let (y, x) = ((y0 + p / w) as isize, (p % w) as isize);
            for (tap, dst) in row.chunks_exact_mut(c_in).enumerate() {
                let at = (y + tap as isize / 3 - 1, x + tap as isize % 3 - 1);
                dst.copy_from_slice(pixel_or_zeros(input, (h, w), at, &zeros));
            }
        }
        matmul_packed(&cols, k, b, out, c_out, pixels, k, c_out);
        for px in out.chunks_exact_mut(c_out) {
            for (v, bias) in px.iter_mut().zip(&self.bias) {
                *v = (*v + bias).max(0.0);
            }
        }
        put_scratch(cols, m);
    }

    /// Tile rows `rows`: input transform, 16 matrix products, output transform into
    /// `out_block` (the output rows of these tiles).
    fn block(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        rows: std::ops::Range<usize>,
        out_block: &mut [f32],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let tiles_w = w.div_ceil(2);
        let tiles = rows.len() * tiles_w;
        let (mut v, mut m) = take_scratch(tiles * tile_stride(c_in), tiles * tile_stride(c_out));
        for (ty, v_row) in rows.clone().zip(v.chunks_mut(tiles_w * tile_stride(c_in))) {
            self.input_row(input, h, w, ty, v_row);
        }
        let u_len = packed_len(c_in, c_out);
        for k in 0..16 {
            matmul_packed(
                &v[k * c_in..],
                tile_stride(c_in),
                &self.u[k * u_len..(k + 1) * u_len],
                &mut m[k * c_out..],
                tile_stride(c_out),
                tiles,
                c_in,
                c_out,
            );
        }
        let out_rows = out_block.chunks_mut(2 * w * c_out);
        for (m_row, out) in m.chunks(tiles_w * tile_stride(c_out)).zip(out_rows) {
            self.output_row(m_row, w, out);
        }
        put_scratch(v, m);
    }

    /// A small image in three parallel phases: input transform by tile rows, the 16 products
    /// split by (position, column strip), output transform by tile rows.
    fn whole_image(&self, input: &[f32], h: usize, w: usize, output: &mut [f32]) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let (tiles_w, tiles_h) = (w.div_ceil(2), h.div_ceil(2));
        let tiles = tiles_w * tiles_h;
        let (mut v, mut m) = take_scratch(tiles * tile_stride(c_in), tiles * tile_stride(c_out));
        v[..tiles * tile_stride(c_in)]
            .par_chunks_mut(tiles_w * tile_stride(c_in))
            .enumerate()
            .for_each(|(ty, v_row)| self.input_row(input, h, w, ty, v_row));
        par_matmul_batched(
            &v,
            tile_stride(c_in),
            c_in,
            &self.u,
            &mut m,
            tile_stride(c_out),
            c_out,
            16,
            (tiles, c_in, c_out),
        );
        output
            .par_chunks_mut(2 * w * c_out)
            .zip(m[..tiles * tile_stride(c_out)].par_chunks(tiles_w * tile_stride(c_out)))
            .for_each(|(out, m_row)| self.output_row(m_row, w, out));
        put_scratch(v, m);
    }

    /// Input transform `V = B^T d B` of the tiles of tile row `ty`, into `v_row`
    /// (`[tile][position][c_in]`), vectorised over channels.
    fn input_row(&self, input: &[f32], h: usize, w: usize, ty: usize, v_row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::engine::model::gemm512::available() {
            // SAFETY: AVX-512F was detected at run time.
            #[allow(unsafe_code)]
            unsafe {
                self.input_row_avx512(input, h, w, ty, v_row);
            }
            return;
        }
        self.input_row_generic(input, h, w, ty, v_row);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn input_row_avx512(&self, input: &[f32], h: usize, w: usize, ty: usize, v_row: &mut [f32]) {
        self.input_row_generic(input, h, w, ty, v_row);
    }

    #[inline(always)]
    fn input_row_generic(&self, input: &[f32], h: usize, w: usize, ty: usize, v_row: &mut [f32]) {
        let c = self.c_in;
        let zeros = vec![0f32; c];
        // bd[(i * 4 + j) * c ..] = (B^T d)[i][j], one vector of channels each.
        let mut bd = vec![0f32; 16 * c];
        for (tx, vt) in v_row.chunks_exact_mut(tile_stride(c)).enumerate() {
            let (y0, x0) = (2 * ty as isize - 1, 2 * tx as isize - 1);
            let px = |i: usize, j: usize| {
                pixel_or_zeros(input, (h, w), (y0 + i as isize, x0 + j as isize), &zeros)
            };
            for j in 0..4 {
                let (d0, d1, d2, d3) = (px(0, j), px(1, j), px(2, j), px(3, j));
                let at = |i: usize| (i * 4 + j) * c;
                sub(&mut bd[at(0)..at(0) + c], d0, d2);
                add(&mut bd[at(1)..at(1) + c], d1, d2);
                sub(&mut bd[at(2)..at(2) + c], d2, d1);
                sub(&mut bd[at(3)..at(3) + c], d1, d3);
            }
            for (bi, vi) in bd.chunks_exact(4 * c).zip(vt.chunks_exact_mut(4 * c)) {
                let (b0, rest) = bi.split_at(c);
                let (b1, rest) = rest.split_at(c);
                let (b2, b3) = rest.split_at(c);
                let (v0, rest) = vi.split_at_mut(c);
                let (v1, rest) = rest.split_at_mut(c);
                let (v2, v3) = rest.split_at_mut(c);
                sub(v0, b0, b2);
                add(v1, b1, b2);
                sub(v2, b2, b1);
                sub(v3, b1, b3);
            }
        }
    }

    /// Output transform `Y = A^T M A` + bias + ReLU of a tile row from its products `m_row`
    /// (`[tile][position][c_out]`) into `out` (its one or two output rows).
    fn output_row(&self, m_row: &[f32], w: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::engine::model::gemm512::available() {
            // SAFETY: AVX-512F was detected at run time.
            #[allow(unsafe_code)]
            unsafe {
                self.output_row_avx512(m_row, w, out);
            }
            return;
        }
        self.output_row_generic(m_row, w, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn output_row_avx512(&self, m_row: &[f32], w: usize, out: &mut [f32]) {
        self.output_row_generic(m_row, w, out);
    }

    #[inline(always)]
    fn output_row_generic(&self, m_row: &[f32], w: usize, out: &mut [f32]) {
        let c = self.c_out;
        let rows = out.len() / (w * c);
        let bias = &self.bias[..c];
        // am[(i * 4 + j) * c ..] = (A^T M)[i][j].
        let mut am = vec![0f32; 8 * c];
        for (tx, mt) in m_row.chunks_exact(tile_stride(c)).enumerate() {
            let mm = |i: usize, j: usize| &mt[(i * 4 + j) * c..(i * 4 + j + 1) * c];
            for j in 0..4 {
                let (a0, a1) = am.split_at_mut(4 * c);
                for (o, ((x, y), z)) in a0[j * c..(j + 1) * c]
                    .iter_mut()
                    .zip(mm(0, j).iter().zip(mm(1, j)).zip(mm(2, j)))
                {
                    *o = x + y + z;
                }
                for (o, ((x, y), z)) in a1[j * c..(j + 1) * c]
                    .iter_mut()
                    .zip(mm(1, j).iter().zip(mm(2, j)).zip(mm(3, j)))
                {
                    *o = x - y - z;
                }
            }
            for (i, ai) in am.chunks_exact(4 * c).take(rows).enumerate() {
                let (a0, rest) = ai.split_at(c);
                let (a1, rest) = rest.split_at(c);
                let (a2, a3) = rest.split_at(c);
                let (ox, o) = (2 * tx, (i * w + 2 * tx) * c);
                for (d, (((x, y), z), b)) in out[o..o + c]
                    .iter_mut()
                    .zip(a0.iter().zip(a1).zip(a2).zip(bias))
                {
                    *d = (x + y + z + b).max(0.0);
                }
                if ox + 1 < w {
                    for (d, (((x, y), z), b)) in out[o + c..o + 2 * c]
                        .iter_mut()
                        .zip(a1.iter().zip(a2).zip(a3).zip(bias))
                    {
                        *d = (x - y - z + b).max(0.0);
                    }
                }
            }
        }
    }
}

/// Floats from one tile's 16 transformed vectors of `c` channels to the next tile's: one cache
/// line more than they need, so that the rows of A the matrix kernel reads together (tiles at
/// the same position) do not all fall into the same L1 cache set, as a power-of-two stride
/// such as 16 x 512 floats would make them.
fn tile_stride(c: usize) -> usize {
    16 * c + 16
}

#[inline(always)]
fn add(out: &mut [f32], x: &[f32], y: &[f32]) {
    for (o, (x, y)) in out.iter_mut().zip(x.iter().zip(y)) {
        *o = x + y;
    }
}

#[inline(always)]
fn sub(out: &mut [f32], x: &[f32], y: &[f32]) {
    for (o, (x, y)) in out.iter_mut().zip(x.iter().zip(y)) {
        *o = x - y;
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
        let top = &input[2 * y * w * c..(2 * y + 1) * w * c];
        let bottom = &input[(2 * y + 1) * w * c..(2 * y + 2) * w * c];
        // Two input pixels side by side are 2c floats; vectorised over channels.
        for ((o, t), b) in row
            .chunks_exact_mut(c)
            .zip(top.chunks_exact(2 * c))
            .zip(bottom.chunks_exact(2 * c))
        {
            let (t0, t1) = t.split_at(c);
            let (b0, b1) = b.split_at(c);
            for (o, (((p, q), r), s)) in o.iter_mut().zip(t0.iter().zip(t1).zip(b0).zip(b1)) {
                *o = p.max(*q).max(r.max(*s));
            }
        }
    });
}

/// Relative L2 difference between [`WinogradConv`] and candle's `conv2d` + bias + ReLU (the
/// straightforward path) on random data of each `(h, w, c_in, c_out)`. The tests run it on the
/// AVX-512 code and, with [`crate::engine::model::gemm512::PORTABLE_ENV`] set, on the portable code.
pub fn difference_from_candle(
    shapes: &[(usize, usize, usize, usize)],
) -> crate::engine::error::Result<Vec<f32>> {
    use candle_core::{Device, Tensor};
    let nhwc = |t: &Tensor| -> candle_core::Result<Vec<f32>> {
        t.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1()
    };
    let mut out = Vec::with_capacity(shapes.len());
    for &(h, w, c_in, c_out) in shapes {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, c_in, h, w), &dev)?;
        let k = Tensor::randn(0f32, 0.3, (c_out, c_in, 3, 3), &dev)?;
        let b = Tensor::randn(0f32, 0.1, c_out, &dev)?;
        let reference = x
            .conv2d(&k, 1, 1, 1, 1)?
            .broadcast_add(&b.reshape((1, c_out, 1, 1))?)?
            .relu()?;
        let conv = WinogradConv::new(
            &k.flatten_all()?.to_vec1::<f32>()?,
            &b.to_vec1::<f32>()?,
            c_in,
            c_out,
        );
        let ours = conv.forward(&nhwc(&x)?, h, w);
        let want = nhwc(&reference)?;
        let num: f32 = ours.iter().zip(&want).map(|(x, y)| (x - y) * (x - y)).sum();
        let den: f32 = want.iter().map(|y| y * y).sum();
        out.push((num / den.max(1e-20)).sqrt());
    }
    Ok(out)
}

/// Shapes that take every path: im2col (few input channels), F(2x2) whole-image (few tiles),
/// F(4x4) row blocks with an odd last block, F(2x2) row blocks (many tiles and kernels too
/// large for the F(4x4) form: larger inputs than VGG16's 224 px), odd sizes, channel counts
/// that are not multiples of 16 or 32.
pub const CHECK_SHAPES: [(usize, usize, usize, usize); 8] = [
    (8, 8, 3, 5),
    (7, 9, 4, 6),
    (1, 1, 2, 3),
    (14, 14, 16, 8),
    (30, 2, 5, 5),
    (41, 36, 5, 7),
    (36, 40, 33, 64),
    (34, 32, 257, 256),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_conv2d_on_odd_and_even_sizes() {
        let errors = difference_from_candle(&CHECK_SHAPES).expect("compare");
        for (shape, err) in CHECK_SHAPES.iter().zip(errors) {
            assert!(err < 1e-5, "{shape:?}: {err}");
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
