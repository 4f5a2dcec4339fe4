//! The search engine, one folder per capability: `imaging` (decode, data bar, network input),
//! `model` (VGG16 and its fast convolution), `descriptor` (pooling, projection), `sketch`
//! (contour drawings, sketches), `library` (table, index, indexing, demo), `particles`
//! (segmentation and measures), `eval`. No GUI code here.

pub mod descriptor;
pub mod error;
pub mod eval;
pub mod imaging;
pub mod library;
pub mod model;
pub mod particles;
pub mod sketch;
mod sketch_search;

pub use sketch_search::{blend, SketchScores};

use std::path::Path;

use image::DynamicImage;

use descriptor::features::{describe, FeatureConfig};
pub use error::{Error, Result};
use imaging::preprocess::prepare;
use library::index::{Hit, Index, Space};
use model::vgg::{self, Vgg16};

/// The model plus the operations a query needs. Load once, reuse for every query.
pub struct Engine {
    pub vgg: Vgg16,
}

impl Engine {
    /// Loads weights from `weights` (or the shipped file) on `device` (auto, cpu, cuda).
    pub fn load(weights: Option<&Path>, device: &str) -> Result<Self> {
        let device = vgg::select_device(device)?;
        let path = match weights {
            Some(p) => p.to_path_buf(),
            None => vgg::find_default_weights()?,
        };
        Ok(Self {
            vgg: Vgg16::load(&path, &device)?,
        })
    }

    /// Checks that `index` was built with this engine's weights.
    pub fn check_index(&self, index: &Index) -> Result<()> {
        if index.config.weights_sha256 != self.vgg.weights_sha256() {
            return Err(Error::Index(format!(
                "the index was built with other VGG16 weights (sha256 {}…) than the ones loaded \
                 ({}…); re-run `morphosearch index` on the database or pass the same --weights",
                &index.config.weights_sha256[..12.min(index.config.weights_sha256.len())],
                &self.vgg.weights_sha256()[..12]
            )));
        }
        Ok(())
    }

    /// Raw descriptor of an image, as the index describes its database images.
    pub fn describe_image(&self, img: &DynamicImage, config: &FeatureConfig) -> Result<Vec<f32>> {
        let prepared = prepare(img, &config.preprocess)?;
        let query = FeatureConfig {
            flips: false,
            ..*config
        };
        Ok(describe(&self.vgg, &[&prepared], &query)?.remove(0))
    }

    /// The top `k` database images for a query image.
    pub fn search_image(&self, index: &Index, img: &DynamicImage, k: usize) -> Result<Vec<Hit>> {
        self.search_image_where(index, img, k, &|_| true)
    }

    /// [`Self::search_image`] among the entries `admit` lets through.
    pub fn search_image_where(
        &self,
        index: &Index,
        img: &DynamicImage,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<Hit>> {
        let raw = self.describe_image(img, &index.config.features)?;
        Ok(index.search_where(&raw, Space::Image, k, admit))
    }
}
