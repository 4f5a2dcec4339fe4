//! morphosearch: find nanomaterial syntheses by how their micrographs look.
//!
//! The [`engine`] (images, edges, VGG16 features, index, database) never touches the GUI; the
//! [`cli`] drives it from the command line.

pub mod app;
pub mod bench;
pub mod cli;
pub mod engine;
pub mod ui;
pub mod worker;
