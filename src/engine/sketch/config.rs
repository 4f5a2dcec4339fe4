//! How a sketch is compared: the settings recorded in the index (how drawings are described)
//! and the blend of a query's similarity channels, chosen by how much of the canvas it inks.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::pooling::Pooling;
use crate::engine::sketch::edges::ContourSettings;

/// How drawings are made and described (recorded in the index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SketchConfig {
    pub contours: ContourSettings,
    /// Side of the square drawing fed to the network.
    pub input_size: u32,
    pub pooling: Pooling,
    /// Weight of the image-descriptor similarity (drawing vs micrograph) in a sketch query's
    /// score; the contour-descriptor similarity gets the rest.
    pub image_weight: f32,
    /// Describe drawings as pseudo-micrographs (enclosed regions filled) instead of as lines.
    pub fill: bool,
    /// The conv layer (timm `features` index) whose map describes drawings: 21 = conv4_3
    /// (stride 8, finer shapes), 28 = conv5_3.
    pub layer: usize,
    /// Weight of the edge-map similarity: the drawing as dark lines on white, described at
    /// `edge_layer` with `edge_pooling`, vs each database image's contour drawing described the
    /// same way (the plain edge-map channel that holds on varied collections).
    pub edge_weight: f32,
    pub edge_layer: usize,
    pub edge_pooling: Pooling,
    /// Blend by what the drawing is: a sparse drawing of a few particles asks what particles
    /// look like (`image_weight` / `edge_weight`), a dense tracing of a whole micrograph asks
    /// for that layout ([`TRACING_WEIGHTS`]); between [`SPARSE_INK`] and [`DENSE_INK`] of the
    /// canvas inked, the weights move linearly from the one to the other.
    #[serde(default)]
    pub by_density: bool,
    /// Share of the image part taken from the drawing repeated 2 x 2 at half size, for
    /// drawings of a few particles: micrographs usually show particles smaller and more
    /// numerous than a chemist draws them (docs/quality.md). Query time only.
    #[serde(default = "default_tiled_share")]
    pub tiled_share: f32,
    /// Grey level (0-255) of a drawing's pseudo-micrograph outside the drawn particles
    /// ([`crate::engine::sketch::pseudo_micrograph`]). Libraries built before it was a setting
    /// used [`BACKGROUND`].
    #[serde(default = "default_background")]
    pub background: u8,
}

/// The pseudo-micrograph's background: brighter ones find CaCO3's drawn spheres better and
/// EMPS's drawn rods worse (docs/quality.md, "Drawn spheres on CaCO3").
pub const BACKGROUND: u8 = 40;

fn default_background() -> u8 {
    BACKGROUND
}

/// The tiled share chosen on CaCO3 and EMPS (docs/quality.md, "Sketch search").
pub const TILED_SHARE: f32 = 0.5;

fn default_tiled_share() -> f32 {
    TILED_SHARE
}

/// The blend for dense drawings (tracings of a whole micrograph), docs/quality.md.
pub const TRACING_WEIGHTS: SketchWeights = SketchWeights {
    image: 0.2,
    edge: 0.6,
    tiled: 0.0,
};
/// Inked fraction of the canvas up to which a drawing counts as a few particles, and from
/// which as a tracing of a whole micrograph (docs/quality.md: generated sketches ink 1-8 % of
/// the canvas, median 3 %; tracings 2-19 %, median 6-9 %).
pub const SPARSE_INK: f32 = 0.035;
pub const DENSE_INK: f32 = 0.06;

/// Fraction of the drawing's pixels that are line (dark).
pub fn ink_fraction(drawing: &GrayImage) -> f32 {
    let n = (drawing.width() * drawing.height()).max(1) as f32;
    drawing.pixels().filter(|p| p[0] < 128).count() as f32 / n
}

impl Default for SketchConfig {
    fn default() -> Self {
        Self {
            contours: ContourSettings::default(),
            input_size: 224,
            // Chosen by measurement (docs/quality.md, "Sketch search").
            pooling: Pooling::Max,
            image_weight: 0.45,
            // One forward pass per sketch query gives both descriptors (see `search_drawing`).
            fill: true,
            layer: 21,
            edge_weight: 0.0,
            // conv4_3 (stride 8) keeps more of a tracing's layout than conv5_3 (docs/quality.md).
            edge_layer: 21,
            edge_pooling: Pooling::Rmac,
            // Chosen on CaCO3 and EMPS together (docs/quality.md, "Sketch search").
            by_density: true,
            tiled_share: TILED_SHARE,
            background: BACKGROUND,
        }
    }
}

impl SketchConfig {
    /// Whether drawings are described the same way under both settings, so that stored
    /// sketch descriptors stay valid (the image weight only matters at query time).
    pub fn same_descriptors(&self, other: &Self) -> bool {
        Self {
            image_weight: other.image_weight,
            edge_weight: other.edge_weight,
            by_density: other.by_density,
            tiled_share: other.tiled_share,
            ..*self
        } == *other
    }

    /// The blend weights for a query on `drawing`: the fixed ones, or by how much of the canvas
    /// it inks ([`Self::by_density`]).
    pub fn weights_for(&self, drawing: &GrayImage) -> SketchWeights {
        let sparse = self.weights();
        if !self.by_density {
            return sparse;
        }
        let t = ((ink_fraction(drawing) - SPARSE_INK) / (DENSE_INK - SPARSE_INK)).clamp(0.0, 1.0);
        if t >= 1.0 {
            return TRACING_WEIGHTS;
        }
        let between = |a: f32, b: f32| a + t * (b - a);
        SketchWeights {
            image: between(sparse.image, TRACING_WEIGHTS.image),
            edge: between(sparse.edge, TRACING_WEIGHTS.edge),
            tiled: between(sparse.tiled, TRACING_WEIGHTS.tiled),
        }
    }

    /// The blend weights a sketch query uses under this config.
    pub fn weights(&self) -> SketchWeights {
        SketchWeights {
            image: self.image_weight,
            edge: self.edge_weight,
            tiled: self.tiled_share,
        }
    }
}

/// How a sketch query's three similarities are blended: `image` (the sketch as a
/// pseudo-micrograph vs the micrographs), `edge` (edge-map channel); the contour-descriptor
/// similarity gets what is left of 1. `tiled` is the share of the image part that compares the
/// drawing repeated 2 x 2 at half size ([`tiled_view`]) instead of the drawing as drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SketchWeights {
    pub image: f32,
    pub edge: f32,
    pub tiled: f32,
}

impl SketchWeights {
    /// The weights clamped to [0, 1] with their sum at most 1: (contour, edge, image).
    pub fn normalised(self) -> (f32, f32, f32) {
        let image = self.image.clamp(0.0, 1.0);
        let edge = self.edge.clamp(0.0, 1.0 - image);
        (1.0 - image - edge, edge, image)
    }

    /// The tiled share of the image part, in [0, 1]; 0 when the image part has no weight.
    pub fn tiled_share(self) -> f32 {
        if self.normalised().2 > 0.0 {
            self.tiled.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sketch::rasterise_strokes;
    use crate::engine::sketch::Stroke;
    use image::Luma;

    #[test]
    fn only_settings_that_change_descriptors_count_as_a_change() {
        let base = SketchConfig::default();
        let weight = SketchConfig {
            image_weight: 0.2,
            ..base
        };
        assert!(base.same_descriptors(&weight));
        let edge = SketchConfig {
            edge_weight: 0.5,
            ..base
        };
        assert!(base.same_descriptors(&edge));
        let edge_layer = SketchConfig {
            edge_layer: 28,
            ..base
        };
        assert!(!base.same_descriptors(&edge_layer));
        let lines = SketchConfig {
            fill: false,
            ..base
        };
        assert!(!base.same_descriptors(&lines));
        let layer = SketchConfig { layer: 28, ..base };
        assert!(!base.same_descriptors(&layer));
        let background = SketchConfig {
            background: 80,
            ..base
        };
        assert!(!base.same_descriptors(&background));
    }

    #[test]
    fn a_library_without_a_background_setting_reads_as_the_default() {
        let mut recorded = serde_json::to_value(SketchConfig::default()).expect("json");
        recorded
            .as_object_mut()
            .expect("an object")
            .remove("background");
        let read: SketchConfig = serde_json::from_value(recorded).expect("read");
        assert_eq!(read.background, BACKGROUND);
        assert!(read.same_descriptors(&SketchConfig::default()));
    }

    #[test]
    fn a_tracing_of_many_outlines_is_blended_as_one() {
        let square = |x: f32, y: f32| Stroke {
            points: vec![
                [x, y],
                [x + 0.05, y],
                [x + 0.05, y + 0.05],
                [x, y + 0.05],
                [x, y],
            ],
        };
        let config = SketchConfig::default();
        let few: Vec<Stroke> = (0..3).map(|i| square(0.1 + 0.3 * i as f32, 0.4)).collect();
        let few = rasterise_strokes(&few, &config).expect("draw");
        assert!(ink_fraction(&few) < SPARSE_INK, "{}", ink_fraction(&few));
        assert_eq!(config.weights_for(&few), config.weights());
        let many: Vec<Stroke> = (0..36)
            .map(|i| square(0.05 + 0.15 * (i % 6) as f32, 0.05 + 0.15 * (i / 6) as f32))
            .collect();
        let many = rasterise_strokes(&many, &config).expect("draw");
        assert!(ink_fraction(&many) > DENSE_INK, "{}", ink_fraction(&many));
        assert_eq!(config.weights_for(&many), TRACING_WEIGHTS);
        let fixed = SketchConfig {
            by_density: false,
            ..config
        };
        assert_eq!(fixed.weights_for(&many), fixed.weights());
    }

    #[test]
    fn a_tracing_loses_the_tiled_share_a_few_particles_keep() {
        let config = SketchConfig::default();
        let blank = GrayImage::from_pixel(224, 224, Luma([255]));
        let mut dense = blank.clone();
        for y in (0..224).step_by(8) {
            for x in 0..224 {
                dense.put_pixel(x, y, Luma([0]));
            }
        }
        assert!(ink_fraction(&dense) > DENSE_INK);
        assert_eq!(config.weights_for(&dense).tiled_share(), 0.0);
        let mut sparse = blank;
        sparse.put_pixel(100, 100, Luma([0]));
        assert_eq!(
            config.weights_for(&sparse).tiled_share(),
            config.tiled_share
        );
        let no_image = SketchWeights {
            image: 0.0,
            edge: 0.5,
            tiled: 0.5,
        };
        assert_eq!(no_image.tiled_share(), 0.0);
    }
}
