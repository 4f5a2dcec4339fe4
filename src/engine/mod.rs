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

use std::path::Path;

use image::{DynamicImage, GrayImage};

use descriptor::features::{self, describe, FeatureConfig};
pub use error::{Error, Result};
use imaging::preprocess::prepare;
use library::index::{self, Hit, Index, Space};
use model::vgg::{self, Vgg16};
use sketch::drawing_to_prepared;

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

    /// The top `k` database images for a sketch image file's content.
    pub fn search_sketch_image(
        &self,
        index: &Index,
        img: &DynamicImage,
        k: usize,
    ) -> Result<Vec<Hit>> {
        self.search_sketch_image_where(index, img, k, &|_| true)
    }

    /// [`Self::search_sketch_image`] among the entries `admit` lets through.
    pub fn search_sketch_image_where(
        &self,
        index: &Index,
        img: &DynamicImage,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<Hit>> {
        let drawing = sketch::normalise_sketch_image(img, &index.config.sketch)?;
        let w = index.config.sketch.image_weight;
        Ok(self.sketch_query(index, &drawing, k, w, admit)?.0)
    }

    /// The top `k` database images for a normalised drawing: similarity of the drawing's
    /// contour descriptor to the database drawings, blended with `image_weight` of the
    /// similarity of its image descriptor to the micrographs (one forward pass for both).
    pub fn search_drawing(&self, index: &Index, drawing: &GrayImage, k: usize) -> Result<Vec<Hit>> {
        self.search_drawing_weighted(index, drawing, k, index.config.sketch.image_weight)
    }

    /// [`Self::search_drawing`], also giving the images the network looked at
    /// ([`sketch::network_views`]), to show the chemist.
    pub fn search_drawing_with_views(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        self.sketch_query(index, drawing, k, index.config.sketch.image_weight, &|_| {
            true
        })
    }

    /// [`Self::search_drawing_with_views`] among the entries `admit` lets through.
    pub fn search_drawing_with_views_where(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        self.sketch_query(index, drawing, k, index.config.sketch.image_weight, admit)
    }

    /// [`Self::search_drawing`] with an explicit image weight (0 = contours only).
    pub fn search_drawing_weighted(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        image_weight: f32,
    ) -> Result<Vec<Hit>> {
        Ok(self
            .sketch_query(index, drawing, k, image_weight, &|_| true)?
            .0)
    }

    fn sketch_query(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        image_weight: f32,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        if index.sketch_space.is_empty() {
            return Err(Error::Index(
                "this index has no sketch descriptors; re-run `morphosearch index`".into(),
            ));
        }
        if sketch::is_blank(drawing) {
            return Err(Error::InvalidSetting(
                "the sketch is empty: draw some particle outlines".into(),
            ));
        }
        let w = image_weight.clamp(0.0, 1.0);
        let config = &index.config.sketch;
        let views = sketch::network_views(drawing, config, w);
        let inputs: Vec<_> = views.iter().map(drawing_to_prepared).collect();
        let describe = |input, taps| features::describe_taps(&self.vgg, &[input], taps);
        let sketch_tap = (config.layer, config.pooling);
        let image_tap = (vgg::CONV_INDICES[12], index.config.features.pooling);
        // The contour descriptor comes from the first view, the image descriptor from the last
        // (the pseudo-micrograph): one forward pass gives both when that is the only view.
        let (qs, qi) = match inputs.as_slice() {
            [one] if w > 0.0 => {
                let d = describe(one, &[sketch_tap, image_tap])?;
                (d[0][0].clone(), index.image_space.project(&d[1][0]))
            }
            [lines, .., pseudo] if w > 0.0 => (
                describe(lines, &[sketch_tap])?[0][0].clone(),
                index
                    .image_space
                    .project(&describe(pseudo, &[image_tap])?[0][0]),
            ),
            _ => (
                describe(&inputs[0], &[sketch_tap])?[0][0].clone(),
                vec![0.0; index.image_space.dims],
            ),
        };
        let qs = index.sketch_space.project(&qs);
        let dot = crate::engine::library::index::dot;
        let n = index.sketch_space.len().min(index.image_space.len());
        let contour_scores: Vec<f32> = (0..n)
            .map(|i| dot(&qs, index.sketch_space.row(i)))
            .collect();
        let image_scores: Vec<f32> = (0..n)
            .map(|i| {
                if w > 0.0 {
                    dot(&qi, index.image_space.row(i))
                } else {
                    0.0
                }
            })
            .collect();
        let mut hits = blend_scores(&contour_scores, &image_scores, w);
        hits.retain(|h| admit(h.entry));
        index::partial_top(&mut hits, k);
        Ok((hits, views))
    }
}

/// The sketch query's ranking of every entry from its two similarities: the contour one alone
/// (`w` <= 0), the image one alone (`w` >= 1), or, between, their z-scores over the database
/// blended as `(1 - w) z_contour + w z_image` (they live on different scales).
pub fn blend_scores(contour: &[f32], image: &[f32], w: f32) -> Vec<Hit> {
    let hits = |scores: &[f32]| -> Vec<Hit> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| Hit { entry: i, score: s })
            .collect()
    };
    if w <= 0.0 {
        return hits(contour);
    }
    if w >= 1.0 {
        return hits(image);
    }
    let z = |v: &[f32]| -> Vec<f32> {
        let mean = v.iter().sum::<f32>() / v.len().max(1) as f32;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len().max(1) as f32)
            .sqrt()
            .max(1e-6);
        v.iter().map(|x| (x - mean) / sd).collect()
    };
    let (zc, zi) = (z(contour), z(image));
    let n = contour.len().min(image.len());
    (0..n)
        .map(|i| Hit {
            entry: i,
            score: (1.0 - w) * zc[i] + w * zi[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_scores_blend_z_scores_of_both_similarities() {
        // Contour similarity favours entry 0, image similarity entry 2, on different scales.
        let contour = [0.9, 0.5, 0.1];
        let image = [0.30, 0.31, 0.35];
        let order = |h: Vec<Hit>| {
            let mut h = h;
            index::partial_top(&mut h, 3);
            h.iter().map(|h| h.entry).collect::<Vec<_>>()
        };
        assert_eq!(order(blend_scores(&contour, &image, 0.0)), vec![0, 1, 2]);
        assert_eq!(order(blend_scores(&contour, &image, 1.0)), vec![2, 1, 0]);
        let half = blend_scores(&contour, &image, 0.5);
        // z(contour) = [1.2247, 0, -1.2247]; z(image) = [-0.9258, -0.4629, 1.3887] (by hand).
        let want = [0.1495, -0.2315, 0.0820];
        for (h, w) in half.iter().zip(want) {
            assert!((h.score - w).abs() < 1e-3, "{} vs {w}", h.score);
        }
        // A constant similarity adds nothing (its z-scores are 0), whatever its level.
        let flat = blend_scores(&contour, &[0.7, 0.7, 0.7], 0.6);
        assert_eq!(order(flat), vec![0, 1, 2]);
    }
}
