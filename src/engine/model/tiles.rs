//! What both Winograd forms share: the parallel driver over blocks of tile rows, the padded
//! pixel lookup, and per-thread scratch buffers. Both `winograd` (F(2x2)) and `winograd4`
//! (F(4x4)) use it; neither imports the other's internals.

use rayon::prelude::*;

/// Runs `block(tile rows, their output rows)` over a map of `tiles_h` rows of `tiles_w` tiles,
/// each tile `tile` output rows tall (`row_len` floats an output row), in parallel blocks of
/// whole tile rows: about `block_tiles` tiles each, and at least as many blocks as threads.
pub(crate) fn for_each_row_block(
    output: &mut [f32],
    (tiles_w, tiles_h, tile): (usize, usize, usize),
    row_len: usize,
    block_tiles: usize,
    block: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let rows_per_block = block_tiles
        .div_ceil(tiles_w)
        .min(tiles_h.div_ceil(rayon::current_num_threads()))
        .max(1);
    output
        .par_chunks_mut(tile * rows_per_block * row_len)
        .enumerate()
        .for_each(|(b, out_block)| {
            let ty0 = b * rows_per_block;
            block(ty0..(ty0 + rows_per_block).min(tiles_h), out_block);
        });
}

/// The channels of pixel `(y, x)` of a channel-last `[h, w, c]` image, or `zeros` (c long) for
/// the padding around it.
#[inline(always)]
pub(crate) fn pixel_or_zeros<'a>(
    input: &'a [f32],
    (h, w): (usize, usize),
    (y, x): (isize, isize),
    zeros: &'a [f32],
) -> &'a [f32] {
    let c = zeros.len();
    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
        zeros
    } else {
        let o = (y as usize * w + x as usize) * c;
        &input[o..o + c]
    }
}

thread_local! {
    /// Per-thread transform and product buffers, reused across blocks and layers: fresh
    /// multi-megabyte buffers would cost a page fault per 4 KiB every time.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// This thread's scratch buffers, at least `v_len` and `m_len` long (they only grow; stale
/// contents: every element read is written first).
pub(crate) fn take_scratch(v_len: usize, m_len: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut v, mut m) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if v.len() < v_len {
        v.resize(v_len, 0.0);
    }
    if m.len() < m_len {
        m.resize(m_len, 0.0);
    }
    (v, m)
}

pub(crate) fn put_scratch(v: Vec<f32>, m: Vec<f32>) {
    SCRATCH.with(|s| *s.borrow_mut() = (v, m));
}
