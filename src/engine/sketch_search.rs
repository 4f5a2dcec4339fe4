//! Sketch queries: a drawing's three similarities to every database image (contour
//! descriptor, edge-map channel, image part) and their blend.

use image::{DynamicImage, GrayImage};

use crate::engine::descriptor::features::{self, FeatureConfig};
use crate::engine::descriptor::pooling::Pooling;
use crate::engine::error::{Error, Result};
use crate::engine::library::index::{self, dot, Hit, Index, SearchSpace};
use crate::engine::sketch::{self, drawing_to_prepared, SketchWeights};
use crate::engine::Engine;

/// A sketch query's similarities to every entry, one per channel (all zeros for a channel
/// whose weight is 0, which is not computed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SketchScores {
    /// Contour descriptor of the drawing vs the database drawings.
    pub contour: Vec<f32>,
    /// Edge-map channel: the drawing's lines vs the database drawings' lines.
    pub edge: Vec<f32>,
    /// The drawing as a pseudo-micrograph vs the micrographs' image descriptors.
    pub image: Vec<f32>,
    /// The same, for the drawing repeated 2 x 2 at half size ([`sketch::tiled_view`]).
    pub image_tiled: Vec<f32>,
}

impl SketchScores {
    /// The ranking of every entry under `weights` (see [`blend`]); the image part is the
    /// weighted mean of its two views' similarities.
    pub fn blend(&self, weights: SketchWeights) -> Vec<Hit> {
        let (c, e, i) = weights.normalised();
        let t = weights.tiled_share();
        if t > 0.0 && self.image_tiled.len() == self.image.len() {
            let image: Vec<f32> = self
                .image
                .iter()
                .zip(&self.image_tiled)
                .map(|(a, b)| (1.0 - t) * a + t * b)
                .collect();
            return blend(&[(&self.contour, c), (&self.edge, e), (&image, i)]);
        }
        blend(&[(&self.contour, c), (&self.edge, e), (&self.image, i)])
    }
}

/// Which channel a network tap feeds.
#[derive(Clone, Copy, PartialEq)]
enum Channel {
    Contour,
    Edge,
    Image,
    ImageTiled,
}

impl Engine {
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
        let weights = index.config.sketch.weights_for(&drawing);
        Ok(self.sketch_query(index, &drawing, k, weights, admit)?.0)
    }

    /// The top `k` database images for a normalised drawing, under the index's blend weights.
    pub fn search_drawing(&self, index: &Index, drawing: &GrayImage, k: usize) -> Result<Vec<Hit>> {
        self.search_drawing_weighted(index, drawing, k, index.config.sketch.weights_for(drawing))
    }

    /// [`Self::search_drawing`], also giving the images the network looked at
    /// ([`sketch::network_views`]), to show the chemist.
    pub fn search_drawing_with_views(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        self.search_drawing_with_views_where(index, drawing, k, &|_| true)
    }

    /// [`Self::search_drawing_with_views`] among the entries `admit` lets through.
    pub fn search_drawing_with_views_where(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        let weights = index.config.sketch.weights_for(drawing);
        self.sketch_query(index, drawing, k, weights, admit)
    }

    /// [`Self::search_drawing`] with explicit blend weights.
    pub fn search_drawing_weighted(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        weights: SketchWeights,
    ) -> Result<Vec<Hit>> {
        Ok(self.sketch_query(index, drawing, k, weights, &|_| true)?.0)
    }

    fn sketch_query(
        &self,
        index: &Index,
        drawing: &GrayImage,
        k: usize,
        weights: SketchWeights,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<(Vec<Hit>, Vec<GrayImage>)> {
        let (scores, views) = self.sketch_scores(index, drawing, weights)?;
        let mut hits = scores.blend(weights);
        hits.retain(|h| admit(h.entry));
        index::partial_top(&mut hits, k);
        Ok((hits, views))
    }

    /// The similarities of `drawing` to every entry in each channel whose weight is above 0,
    /// and the images the network looked at. Forward passes: one per view of
    /// [`sketch::network_views`], each tapped for every channel it serves.
    pub fn sketch_scores(
        &self,
        index: &Index,
        drawing: &GrayImage,
        weights: SketchWeights,
    ) -> Result<(SketchScores, Vec<GrayImage>)> {
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
        let (_, edge_w, image_w) = weights.normalised();
        if edge_w > 0.0 && index.edge_space.is_empty() {
            return Err(Error::Index(
                "this index has no edge-map descriptors; re-run `morphosearch index`".into(),
            ));
        }
        let config = &index.config.sketch;
        let views = sketch::network_views(drawing, config, weights);
        let contour_tap = (Channel::Contour, (config.layer, config.pooling));
        let edge_tap = (Channel::Edge, (config.edge_layer, config.edge_pooling));
        // The image part is the drawing at the image descriptor's main layer (conv5_3): the
        // finer layer beside it describes texture, which a drawing does not have (docs/quality.md).
        let features = &index.config.features;
        let image_tap = (features.layers.main, features.pooling);
        // The first view is the contour view; the others follow `network_views`' order.
        let mut plan: Vec<Vec<(Channel, (usize, Pooling))>> = vec![vec![contour_tap]];
        if config.fill {
            if image_w > 0.0 {
                plan[0].push((Channel::Image, image_tap));
            }
            if edge_w > 0.0 {
                plan.push(vec![edge_tap]);
            }
        } else {
            if edge_w > 0.0 {
                plan[0].push(edge_tap);
            }
            if image_w > 0.0 {
                plan.push(vec![(Channel::Image, image_tap)]);
            }
        }
        if weights.tiled_share() > 0.0 {
            plan.push(vec![(Channel::ImageTiled, image_tap)]);
        }
        debug_assert_eq!(plan.len(), views.len(), "one tap list per view");
        let n = index.sketch_space.len();
        let mut scores = SketchScores {
            contour: vec![0.0; n],
            edge: vec![0.0; n],
            image: vec![0.0; n],
            image_tiled: vec![0.0; n],
        };
        for (view, taps) in views.iter().zip(&plan) {
            let input = drawing_to_prepared(view);
            let spec: Vec<(usize, Pooling)> = taps.iter().map(|t| t.1).collect();
            let described = features::describe_taps(&self.vgg, &[&input], &spec)?;
            for ((channel, _), mut d) in taps.iter().zip(described) {
                let raw = d.remove(0);
                let (space, out): (&SearchSpace, &mut Vec<f32>) = match channel {
                    Channel::Contour => (&index.sketch_space, &mut scores.contour),
                    Channel::Edge => (&index.edge_space, &mut scores.edge),
                    Channel::Image => (&index.image_space, &mut scores.image),
                    Channel::ImageTiled => (&index.image_space, &mut scores.image_tiled),
                };
                let raw = match channel {
                    Channel::Image | Channel::ImageTiled => main_layer_query(space, features, raw),
                    Channel::Contour | Channel::Edge => raw,
                };
                let q = space.project(&raw);
                *out = (0..n).map(|i| dot(&q, space.row(i))).collect();
            }
        }
        Ok((scores, views))
    }
}

/// An image-space query from a descriptor of the main layer alone: placed where the library
/// descriptors hold that layer, every other layer's part set to the library's mean (the
/// projection's centre), so that only the main layer decides the similarity.
fn main_layer_query(space: &SearchSpace, features: &FeatureConfig, main: Vec<f32>) -> Vec<f32> {
    let weights = features.layers.weighted();
    if weights.len() < 2 {
        return main;
    }
    let mut raw = features::join_layers(vec![main], &weights[..1]);
    let start = raw.len();
    match &space.projection {
        Some(p) if p.mean.len() > start => raw.extend_from_slice(&p.mean[start..]),
        _ => raw.resize(space.dims.max(start), 0.0),
    }
    raw
}

/// A ranking of every entry from weighted similarity channels: a channel alone (weight 1, the
/// others 0) keeps its raw similarities; otherwise the z-scores over the database of the
/// channels with weight above 0 are summed with their weights (they live on different scales).
pub fn blend(channels: &[(&[f32], f32)]) -> Vec<Hit> {
    let used: Vec<(&[f32], f32)> = channels.iter().copied().filter(|&(_, w)| w > 0.0).collect();
    let n = used.iter().map(|(s, _)| s.len()).min().unwrap_or(0);
    if let [(only, _)] = used.as_slice() {
        return (0..n)
            .map(|i| Hit {
                entry: i,
                score: only[i],
            })
            .collect();
    }
    let z = |v: &[f32]| -> Vec<f32> {
        let mean = v.iter().sum::<f32>() / v.len().max(1) as f32;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len().max(1) as f32)
            .sqrt()
            .max(1e-6);
        v.iter().map(|x| (x - mean) / sd).collect()
    };
    let zs: Vec<(Vec<f32>, f32)> = used.iter().map(|&(s, w)| (z(s), w)).collect();
    (0..n)
        .map(|i| Hit {
            entry: i,
            score: zs.iter().map(|(z, w)| w * z[i]).sum(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawing_is_compared_by_the_main_layer_alone() {
        // Library descriptors of two layers (4 + 4 values); the second layer's part of a
        // drawing's query is the library mean, so only its main-layer part moves the ranking.
        let layers = features::Layers::DEFAULT;
        let config = FeatureConfig {
            layers,
            ..FeatureConfig::default()
        };
        let w = layers.weighted();
        let raws: Vec<Vec<f32>> = (0..6)
            .map(|i| {
                let main: Vec<f32> = (0..4).map(|k| ((i * 7 + k * 3) % 5) as f32 + 0.5).collect();
                let second: Vec<f32> = (0..4).map(|k| ((i * 5 + k) % 4) as f32 + 0.2).collect();
                features::join_layers(vec![main, second], &w)
            })
            .collect();
        let refs: Vec<&[f32]> = raws.iter().map(Vec::as_slice).collect();
        let space = SearchSpace::fit(&refs, 200, false);
        let query = main_layer_query(&space, &config, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(query.len(), 8);
        let mean = &space.projection.as_ref().expect("fitted").mean;
        assert_eq!(&query[4..], &mean[4..]);
        let norm: f32 = query[..4].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(
            (norm - w[0].1).abs() < 1e-5,
            "main part weighted like the library's"
        );
        // One layer: the descriptor is the query as it is.
        let single = FeatureConfig {
            layers: features::Layers::CONV5_ONLY,
            ..FeatureConfig::default()
        };
        assert_eq!(
            main_layer_query(&space, &single, vec![1.0, 2.0]),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn sketch_scores_blend_z_scores_of_the_weighted_channels() {
        // Contour similarity favours entry 0, image similarity entry 2, on different scales.
        let contour = [0.9, 0.5, 0.1];
        let image = [0.30, 0.31, 0.35];
        let order = |h: Vec<Hit>| {
            let mut h = h;
            index::partial_top(&mut h, 3);
            h.iter().map(|h| h.entry).collect::<Vec<_>>()
        };
        let two = |w: f32| blend(&[(&contour, 1.0 - w), (&image, w)]);
        assert_eq!(order(two(0.0)), vec![0, 1, 2]);
        assert_eq!(order(two(1.0)), vec![2, 1, 0]);
        // A channel alone keeps its raw similarity.
        assert_eq!(two(1.0)[2].score, 0.35);
        let half = two(0.5);
        // z(contour) = [1.2247, 0, -1.2247]; z(image) = [-0.9258, -0.4629, 1.3887] (by hand).
        let want = [0.1495, -0.2315, 0.0820];
        for (h, w) in half.iter().zip(want) {
            assert!((h.score - w).abs() < 1e-3, "{} vs {w}", h.score);
        }
        // A constant similarity adds nothing (its z-scores are 0), whatever its level.
        let flat = blend(&[(&contour, 0.4), (&[0.7, 0.7, 0.7], 0.6)]);
        assert_eq!(order(flat), vec![0, 1, 2]);
        // Three channels: a zero weight leaves a channel out entirely.
        let edge = [0.2, 0.9, 0.3];
        let scores = SketchScores {
            contour: contour.to_vec(),
            edge: edge.to_vec(),
            image: image.to_vec(),
            image_tiled: Vec::new(),
        };
        let only_edge = scores.blend(SketchWeights {
            image: 0.0,
            edge: 1.0,
            tiled: 0.5,
        });
        assert_eq!(order(only_edge), vec![1, 2, 0]);
        let thirds = scores.blend(SketchWeights {
            image: 1.0 / 3.0,
            edge: 1.0 / 3.0,
            tiled: 0.0,
        });
        let by_hand = blend(&[
            (&contour, 1.0 / 3.0),
            (&edge, 1.0 / 3.0),
            (&image, 1.0 / 3.0),
        ]);
        for (a, b) in thirds.iter().zip(&by_hand) {
            assert_eq!(a.entry, b.entry);
            assert!(
                (a.score - b.score).abs() < 1e-5,
                "{} vs {}",
                a.score,
                b.score
            );
        }
    }
}
