//! What the network looks at for a drawing: the drawing as a shaded pseudo-micrograph, its
//! lines, and the pseudo-micrograph at half size repeated, as network input.

use image::{GrayImage, Luma};

use crate::engine::imaging::preprocess::Prepared;
use crate::engine::sketch::{SketchConfig, SketchWeights};

/// A drawing turned into a pseudo-micrograph for comparison with real ones: regions enclosed by
/// lines become bright particles shaded brighter with depth (domes, as SEM shows round ones),
/// the lines brighter still (the SEM edge effect), the outside a darker background of grey
/// level `background`, slightly blurred.
pub fn pseudo_micrograph(drawing: &GrayImage, background: u8) -> GrayImage {
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
            background
        } else {
            (130.0 + 90.0 * (f32::from(depth.get_pixel(x, y)[0]) / 8.0).min(1.0)) as u8
        }])
    });
    imageproc::filter::gaussian_blur_f32(&img, 1.0)
}

/// What the network describes a drawing by under `config`: the filled pseudo-micrograph, or
/// the lines themselves.
fn contour_view(drawing: &GrayImage, config: &SketchConfig) -> GrayImage {
    if config.fill {
        pseudo_micrograph(drawing, config.background)
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
        views.push(pseudo_micrograph(drawing, config.background));
    }
    if weights.tiled_share() > 0.0 {
        // A tiled share implies an image part, so a pseudo-micrograph is among the views.
        let pseudo = if config.fill {
            &views[0]
        } else {
            &views[views.len() - 1]
        };
        let tiled = tiled_view(pseudo);
        views.push(tiled);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sketch::{rasterise_strokes, Stroke};

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
        // The background outside at the configured grey, a bright particle inside.
        assert_eq!(filled[0].get_pixel(5, 5)[0], config.background);
        assert!(filled[0].get_pixel(112, 112)[0] > 150);
        let brighter = SketchConfig {
            background: 80,
            ..config
        };
        let bright_views = network_views(&drawing, &brighter, brighter.weights());
        assert_eq!(bright_views[0].get_pixel(5, 5)[0], 80);
        assert_eq!(
            bright_views[0].get_pixel(112, 112),
            filled[0].get_pixel(112, 112),
            "only the outside moves"
        );
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
        assert_eq!(
            tiled[2],
            tiled_view(&pseudo_micrograph(&drawing, lines.background))
        );
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
}
