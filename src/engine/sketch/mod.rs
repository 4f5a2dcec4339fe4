//! Sketches and the drawings they are compared with: the contour drawing of a database image,
//! a sketch image file normalised to the same look (polarity, line width, resolution), and pen
//! strokes rasterised in the engine.

pub mod edges;
pub mod sketchgen;

use image::{DynamicImage, GrayImage, Luma};
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::pooling::Pooling;
use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::{DataBar, Prepared};
use crate::engine::sketch::edges::{contour_steps, lines_to_drawing, ContourSettings};

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

/// The grey image the contour pipeline starts from: data bar cut, resized to `size`.
pub fn working_gray(img: &DynamicImage, size: u32, data_bar_rows: u32) -> GrayImage {
    crate::engine::imaging::preprocess::without_data_bar(img, data_bar_rows, size)
        .resize_exact(size, size, image::imageops::FilterType::Triangle)
        .to_luma8()
}

/// The contour drawing of a database image at the sketch resolution.
pub fn drawing_of_image(
    img: &DynamicImage,
    config: &SketchConfig,
    data_bar_rows: u32,
) -> Result<GrayImage> {
    let gray = working_gray(img, config.input_size, data_bar_rows);
    Ok(contour_steps(&gray, &config.contours)?.drawing)
}

/// Zhang-Suen thinning of a binary mask (255 = line) to 1-pixel-wide lines.
pub fn thin(mask: &GrayImage) -> GrayImage {
    let (w, h) = (mask.width() as i64, mask.height() as i64);
    let mut on: Vec<bool> = mask.pixels().map(|p| p[0] > 127).collect();
    let at = |on: &[bool], x: i64, y: i64| -> bool {
        x >= 0 && y >= 0 && x < w && y < h && on[(y * w + x) as usize]
    };
    loop {
        let mut changed = false;
        for pass in 0..2 {
            let mut remove = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    if !on[(y * w + x) as usize] {
                        continue;
                    }
                    // Neighbours p2..p9 clockwise from north.
                    let n = [
                        at(&on, x, y - 1),
                        at(&on, x + 1, y - 1),
                        at(&on, x + 1, y),
                        at(&on, x + 1, y + 1),
                        at(&on, x, y + 1),
                        at(&on, x - 1, y + 1),
                        at(&on, x - 1, y),
                        at(&on, x - 1, y - 1),
                    ];
                    let b = n.iter().filter(|&&v| v).count();
                    let a = (0..8).filter(|&i| !n[i] && n[(i + 1) % 8]).count();
                    let (c1, c2) = if pass == 0 {
                        (n[0] && n[2] && n[4], n[2] && n[4] && n[6])
                    } else {
                        (n[0] && n[2] && n[6], n[0] && n[4] && n[6])
                    };
                    if (2..=6).contains(&b) && a == 1 && !c1 && !c2 {
                        remove.push((y * w + x) as usize);
                    }
                }
            }
            changed |= !remove.is_empty();
            for i in remove {
                on[i] = false;
            }
        }
        if !changed {
            break;
        }
    }
    GrayImage::from_fn(mask.width(), mask.height(), |x, y| {
        Luma([if on[(i64::from(y) * w + i64::from(x)) as usize] {
            255
        } else {
            0
        }])
    })
}

/// A sketch image (dark lines on light or the reverse, any size) redrawn the way database
/// drawings look: binarised, thinned, re-drawn at the configured width, at the sketch size.
pub fn normalise_sketch_image(img: &DynamicImage, config: &SketchConfig) -> Result<GrayImage> {
    let size = config.input_size;
    let gray = working_gray(img, size, 0);
    let level = imageproc::contrast::otsu_level(&gray);
    let (lo, hi) = gray
        .pixels()
        .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    // Lines are the minority class of the Otsu split, whichever their colour.
    let dark = gray.pixels().filter(|p| p[0] <= level).count();
    let dark_lines = 2 * dark <= (size * size) as usize;
    let contrast = hi.saturating_sub(lo) >= 32;
    let mask = GrayImage::from_fn(size, size, |x, y| {
        let v = gray.get_pixel(x, y)[0];
        let line = if dark_lines { v <= level } else { v > level };
        Luma([if line && contrast { 255 } else { 0 }])
    });
    Ok(lines_to_drawing(
        &thin(&mask),
        config.contours.line_width_px,
    ))
}

/// A pen stroke on the canvas: points in 0..1 canvas coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Stroke {
    pub points: Vec<[f32; 2]>,
}

/// Rasterises strokes (1-pixel lines, then the configured width) at the sketch size.
pub fn rasterise_strokes(strokes: &[Stroke], config: &SketchConfig) -> Result<GrayImage> {
    let size = config.input_size;
    if size == 0 {
        return Err(Error::InvalidSetting("sketch size must be positive".into()));
    }
    let mut mask = GrayImage::new(size, size);
    let scale = (size - 1) as f32;
    for s in strokes {
        let pts: Vec<(f32, f32)> = s
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .map(|p| (p[0].clamp(0.0, 1.0) * scale, p[1].clamp(0.0, 1.0) * scale))
            .collect();
        if let [only] = pts.as_slice() {
            mask.put_pixel(only.0 as u32, only.1 as u32, Luma([255]));
        }
        for pair in pts.windows(2) {
            imageproc::drawing::draw_line_segment_mut(&mut mask, pair[0], pair[1], Luma([255]));
        }
    }
    Ok(lines_to_drawing(&mask, config.contours.line_width_px))
}

/// A drawing turned into a pseudo-micrograph for comparison with real ones: regions enclosed by
/// lines become bright particles shaded brighter with depth (domes, as SEM shows round ones),
/// the lines brighter still (the SEM edge effect), the outside a dark background, slightly
/// blurred.
pub fn pseudo_micrograph(drawing: &GrayImage) -> GrayImage {
    let (w, h) = drawing.dimensions();
    let line = |x: u32, y: u32| drawing.get_pixel(x, y)[0] < 128;
    let mut outside = vec![false; (w * h) as usize];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for x in 0..w {
        stack.push((x, 0));
        stack.push((x, h - 1));
    }
    for y in 0..h {
        stack.push((0, y));
        stack.push((w - 1, y));
    }
    while let Some((x, y)) = stack.pop() {
        let i = (y * w + x) as usize;
        if outside[i] || line(x, y) {
            continue;
        }
        outside[i] = true;
        if x > 0 {
            stack.push((x - 1, y));
        }
        if y > 0 {
            stack.push((x, y - 1));
        }
        if x + 1 < w {
            stack.push((x + 1, y));
        }
        if y + 1 < h {
            stack.push((x, y + 1));
        }
    }
    // Inside pixels brighten with depth into the particle (a dome, as SEM shows round ones).
    let boundary = GrayImage::from_fn(w, h, |x, y| {
        Luma([if line(x, y) || outside[(y * w + x) as usize] {
            255
        } else {
            0
        }])
    });
    let depth = imageproc::distance_transform::distance_transform(
        &boundary,
        imageproc::distance_transform::Norm::L2,
    );
    let img = GrayImage::from_fn(w, h, |x, y| {
        Luma([if line(x, y) {
            225
        } else if outside[(y * w + x) as usize] {
            40
        } else {
            (130.0 + 90.0 * (f32::from(depth.get_pixel(x, y)[0]) / 8.0).min(1.0)) as u8
        }])
    });
    imageproc::filter::gaussian_blur_f32(&img, 1.0)
}

/// Whether a drawing has any line at all.
pub fn is_blank(drawing: &GrayImage) -> bool {
    drawing.pixels().all(|p| p[0] > 127)
}

/// What the network describes a drawing by under `config`: the filled pseudo-micrograph, or
/// the lines themselves.
fn contour_view(drawing: &GrayImage, config: &SketchConfig) -> GrayImage {
    if config.fill {
        pseudo_micrograph(drawing)
    } else {
        drawing.clone()
    }
}

/// [`contour_view`] as network input (how the index describes database drawings).
pub fn drawing_input(drawing: &GrayImage, config: &SketchConfig) -> Prepared {
    drawing_to_prepared(&contour_view(drawing, config))
}

/// The images the network describes for a sketch query on `drawing` under `config` with
/// `weights`: the contour view first (the pseudo-micrograph with filled descriptors, else the
/// lines), then whichever of the lines (edge-map channel) and the pseudo-micrograph (image part)
/// a weight above 0 needs and the first view does not already give.
pub fn network_views(
    drawing: &GrayImage,
    config: &SketchConfig,
    weights: SketchWeights,
) -> Vec<GrayImage> {
    let (_, edge, image) = weights.normalised();
    let mut views = vec![contour_view(drawing, config)];
    if config.fill && edge > 0.0 {
        views.push(drawing.clone());
    }
    if !config.fill && image > 0.0 {
        views.push(pseudo_micrograph(drawing));
    }
    if weights.tiled_share() > 0.0 {
        views.push(tiled_view(&pseudo_micrograph(drawing)));
    }
    views
}

/// A pseudo-micrograph repeated 2 x 2 at half size: the drawn particles at half their drawn
/// size and four times as many, as a micrograph of the particles drawn usually shows them.
pub fn tiled_view(pseudo: &GrayImage) -> GrayImage {
    let (w, h) = pseudo.dimensions();
    let (tw, th) = ((w / 2).max(1), (h / 2).max(1));
    let small = image::imageops::resize(pseudo, tw, th, image::imageops::FilterType::Triangle);
    GrayImage::from_fn(w, h, |x, y| {
        *small.get_pixel((x % tw).min(tw - 1), (y % th).min(th - 1))
    })
}

/// A drawing as network input (grey replicated to RGB, 0..255).
pub fn drawing_to_prepared(drawing: &GrayImage) -> Prepared {
    let n = (drawing.width() * drawing.height()) as usize;
    let mut chw = Vec::with_capacity(3 * n);
    for _ in 0..3 {
        chw.extend(drawing.pixels().map(|p| f32::from(p[0])));
    }
    Prepared {
        chw,
        size: drawing.width(),
        data_bar_rows: 0,
        original: drawing.dimensions(),
    }
}

/// The data bar setting used for drawings (they never have one).
pub const SKETCH_DATA_BAR: DataBar = DataBar::Keep;

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn network_views_follow_the_descriptor_setting() {
        let s = Stroke {
            points: vec![[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7], [0.3, 0.3]],
        };
        let config = SketchConfig::default();
        let drawing = rasterise_strokes(&[s], &config).expect("draw");
        let filled = network_views(&drawing, &config, config.weights());
        assert_eq!(
            filled.len(),
            1 + usize::from(config.edge_weight > 0.0) + usize::from(config.tiled_share > 0.0)
        );
        // Dark background outside, bright particle inside.
        assert!(filled[0].get_pixel(5, 5)[0] < 80);
        assert!(filled[0].get_pixel(112, 112)[0] > 150);
        let lines = SketchConfig {
            fill: false,
            ..config
        };
        let untiled = SketchWeights {
            tiled: 0.0,
            ..lines.weights()
        };
        let views = network_views(&drawing, &lines, untiled);
        assert_eq!(views.len(), 2);
        assert_eq!(views[0], drawing);
        // The tiled view comes last, and only with an image part to share.
        let tiled = network_views(&drawing, &lines, lines.weights());
        assert_eq!(tiled.len(), 3);
        assert_eq!(tiled[2], tiled_view(&pseudo_micrograph(&drawing)));
        let contour_only = SketchWeights {
            image: 0.0,
            edge: 0.0,
            tiled: 1.0,
        };
        assert_eq!(network_views(&drawing, &lines, contour_only).len(), 1);
        let with_edges = SketchWeights {
            image: 0.3,
            edge: 0.3,
            tiled: 0.0,
        };
        let views = network_views(&drawing, &config, with_edges);
        assert_eq!(views.len(), 2);
        assert_eq!(views[1], drawing);
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
    fn the_tiled_view_repeats_the_drawing_at_half_size() {
        // A bright disc of radius 40 centred on a 200 px canvas.
        let disc = GrayImage::from_fn(200, 200, |x, y| {
            let r = ((x as f32 - 100.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
            Luma([if r < 40.0 { 200 } else { 40 }])
        });
        let tiled = tiled_view(&disc);
        assert_eq!(tiled.dimensions(), disc.dimensions());
        let bright = |g: &GrayImage| g.pixels().filter(|p| p[0] > 120).count() as f64;
        // Four discs of half the radius: the same bright area in all.
        let ratio = bright(&tiled) / bright(&disc);
        assert!((0.9..1.1).contains(&ratio), "{ratio}");
        for (x, y) in [(50, 50), (150, 50), (50, 150), (150, 150)] {
            assert!(
                tiled.get_pixel(x, y)[0] > 150,
                "a disc centred at ({x}, {y})"
            );
            assert!(
                tiled.get_pixel(x + 25, y)[0] < 80,
                "of radius 20 at ({x}, {y})"
            );
        }
        assert!(
            tiled.get_pixel(100, 100)[0] < 80,
            "the middle is background"
        );
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

    #[test]
    fn thinning_reduces_a_thick_bar_to_a_line() {
        let mask = GrayImage::from_fn(30, 30, |x, y| {
            Luma([if (10..16).contains(&y) && (3..27).contains(&x) {
                255
            } else {
                0
            }])
        });
        let thin = thin(&mask);
        for x in 6..24 {
            let col: u32 = (0..30)
                .map(|y| u32::from(thin.get_pixel(x, y)[0] > 0))
                .sum();
            assert_eq!(col, 1, "column {x} is one pixel thick");
        }
    }

    #[test]
    fn sketch_polarity_does_not_matter() {
        let config = SketchConfig {
            input_size: 64,
            ..Default::default()
        };
        let dark_on_white = GrayImage::from_fn(200, 200, |x, y| {
            let r = ((x as f32 - 100.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
            Luma([if (r - 50.0).abs() < 4.0 { 0 } else { 255 }])
        });
        let mut white_on_dark = dark_on_white.clone();
        white_on_dark.pixels_mut().for_each(|p| p[0] = 255 - p[0]);
        let a =
            normalise_sketch_image(&DynamicImage::ImageLuma8(dark_on_white), &config).expect("a");
        let b =
            normalise_sketch_image(&DynamicImage::ImageLuma8(white_on_dark), &config).expect("b");
        let differing = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
        assert!(differing < 64 * 64 / 50, "{differing} pixels differ");
        assert!(!is_blank(&a));
        assert_eq!(a.get_pixel(32, 32)[0], 255, "inside the circle is paper");
    }

    #[test]
    fn a_saved_binary_drawing_reads_back_as_the_same_lines() {
        let config = SketchConfig::default();
        let s = Stroke {
            points: vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8], [0.2, 0.2]],
        };
        let drawing = rasterise_strokes(&[s], &config).expect("draw");
        let again = normalise_sketch_image(&DynamicImage::ImageLuma8(drawing.clone()), &config)
            .expect("normalise");
        let dark = |g: &GrayImage| g.pixels().filter(|p| p[0] < 128).count() as f64;
        let ratio = dark(&again) / dark(&drawing);
        assert!((0.7..1.3).contains(&ratio), "{ratio}");
        let blank = GrayImage::from_pixel(50, 50, Luma([255]));
        assert!(is_blank(
            &normalise_sketch_image(&DynamicImage::ImageLuma8(blank), &config).expect("blank")
        ));
    }

    #[test]
    fn strokes_are_drawn_where_they_are() {
        let config = SketchConfig {
            input_size: 100,
            ..Default::default()
        };
        let s = Stroke {
            points: vec![[0.1, 0.5], [0.9, 0.5]],
        };
        let d = rasterise_strokes(&[s], &config).expect("draw");
        assert_eq!(d.get_pixel(50, 50)[0], 0);
        assert_eq!(d.get_pixel(50, 10)[0], 255);
        assert!(is_blank(&rasterise_strokes(&[], &config).expect("empty")));
    }
}
