//! Micrographs in: decoding any format and bit depth within a memory budget, the instrument's
//! data bar, and the network's square input.
//!
//! (Named `imaging`, not `image`, so that it never shadows the `image` crate in `engine`.)

pub mod preprocess;
