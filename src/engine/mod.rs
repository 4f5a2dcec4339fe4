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
use library::index::{Hit, Index};
use model::vgg::{self, Vgg16};

/// The model plus the operations a query needs. Load once, reuse for every query.
pub struct Engine {
    pub vgg: Vgg16,
}

impl Engine {
    /// Loads weights from `weights` (or the shipped file) on `device` (auto, cpu, cuda).
    pub fn load(weights: Option<&Path>, device: &str) -> Result<Self> {
        let device = vgg::select_device(device)?;
        let path = vgg::weights_file(weights)?;
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

    /// [`Self::search_image`] among the entries `admit` lets through. The query is described
    /// at the database's input size, at each of the index's extra query sizes and, when it is
    /// much smaller than the library's images (a crop), at its own scale.
    pub fn search_image_where(
        &self,
        index: &Index,
        img: &DynamicImage,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<Hit>> {
        let mut raws = vec![self.describe_image(img, &index.config.features)?];
        let input = index.config.features.preprocess.input_size;
        let mut sizes = index.config.query_sizes.clone();
        if index.config.rescale_small_queries {
            let side = img.width().max(img.height());
            sizes.extend(library::index::rescaled_query_size(
                side,
                index.typical_side(),
                input,
            ));
        }
        for size in sizes {
            let mut config = index.config.features;
            if size == config.preprocess.input_size || size < 32 {
                continue;
            }
            config.preprocess.input_size = size;
            raws.push(self.describe_image(img, &config)?);
        }
        Ok(index.search_multi_where(&raws, k, admit))
    }
}
