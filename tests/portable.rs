//! The convolution's portable code, which CPUs without AVX-512 run (the `gemm` crate's kernels
//! and plain transforms), forced on here and checked against candle's `conv2d`. Its own test
//! binary: the choice of code is read once per process.

use morphosearch::engine::model::gemm512;
use morphosearch::engine::model::winograd::{difference_from_candle, CHECK_SHAPES};

#[test]
fn portable_code_equals_candle_conv2d() {
    std::env::set_var(gemm512::PORTABLE_ENV, "1");
    assert!(!gemm512::available(), "portable code forced");
    let errors = difference_from_candle(&CHECK_SHAPES).expect("compare");
    for (shape, err) in CHECK_SHAPES.iter().zip(errors) {
        assert!(err < 1e-5, "{shape:?}: {err}");
    }
}
