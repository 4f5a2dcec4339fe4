//! The search engine: images, edges, model, features, index, database. No GUI code here.

pub mod database;
pub mod demo;
pub mod edges;
pub mod error;
pub mod eval;
pub mod features;
pub mod index;
pub mod indexer;
pub mod onnx;
pub mod pca;
pub mod pooling;
pub mod preprocess;
pub mod sketch;
pub mod vgg;
pub mod winograd;

use std::path::Path;

use image::{DynamicImage, GrayImage};

pub use error::{Error, Result};
use features::{describe, FeatureConfig};
use index::{Hit, Index, Space};
use preprocess::prepare;
use sketch::{drawing_to_prepared, SketchConfig};
use vgg::Vgg16;

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

    /// Raw sketch descriptor of a drawing (dark lines on white at the sketch size).
    pub fn describe_drawing(
        &self,
        drawing: &GrayImage,
        config: &SketchConfig,
        features: &FeatureConfig,
    ) -> Result<Vec<f32>> {
        if sketch::is_blank(drawing) {
            return Err(Error::InvalidSetting(
                "the sketch is empty: draw some particle outlines".into(),
            ));
        }
        let prepared = drawing_to_prepared(drawing);
        let cfg = FeatureConfig {
            pooling: config.pooling,
            flips: false,
            preprocess: features.preprocess,
        };
        Ok(describe(&self.vgg, &[&prepared], &cfg)?.remove(0))
    }

    /// The top `k` database images for a query image.
    pub fn search_image(&self, index: &Index, img: &DynamicImage, k: usize) -> Result<Vec<Hit>> {
        let raw = self.describe_image(img, &index.config.features)?;
        Ok(index.search(&raw, Space::Image, k))
    }

    /// The top `k` database images for a sketch image file's content.
    pub fn search_sketch_image(
        &self,
        index: &Index,
        img: &DynamicImage,
        k: usize,
    ) -> Result<Vec<Hit>> {
        let drawing = sketch::normalise_sketch_image(img, &index.config.sketch)?;
        self.search_drawing(index, &drawing, k)
    }

    /// The top `k` database images for a normalised drawing.
    pub fn search_drawing(&self, index: &Index, drawing: &GrayImage, k: usize) -> Result<Vec<Hit>> {
        if index.sketch_space.is_empty() {
            return Err(Error::Index(
                "this index has no sketch descriptors; re-run `morphosearch index`".into(),
            ));
        }
        let raw = self.describe_drawing(drawing, &index.config.sketch, &index.config.features)?;
        Ok(index.search(&raw, Space::Sketch, k))
    }
}
