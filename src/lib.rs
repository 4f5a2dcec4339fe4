//! morphosearch: find nanomaterial syntheses by how their micrographs look.
//!
//! The [`engine`] (images, model, descriptors, sketches, library, particles) never touches the
//! GUI; the [`ui`] panels never touch candle; the [`app`] joins them through its worker thread;
//! the [`cli`] drives the engine from the command line.

pub mod app;
pub mod cli;
pub mod engine;
pub mod ui;
