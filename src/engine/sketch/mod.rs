//! Sketches and the drawings they are compared with: the contour drawing of a database image,
//! a sketch image file normalised to the same look (polarity, line width, resolution), and pen
//! strokes rasterised in the engine. How they are compared (settings, blend) is in `config`,
//! what the network looks at for one in `views`.

mod config;
pub mod edges;
pub mod sketchgen;
mod views;

pub use config::*;
pub use views::*;

use image::{DynamicImage, GrayImage, Luma};
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::DataBar;
use crate::engine::sketch::edges::{contour_steps, lines_to_drawing};

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

/// Whether a drawing has any line at all.
pub fn is_blank(drawing: &GrayImage) -> bool {
    drawing.pixels().all(|p| p[0] > 127)
}

/// The data bar setting used for drawings (they never have one).
pub const SKETCH_DATA_BAR: DataBar = DataBar::Keep;

#[cfg(test)]
mod tests {
    use super::*;

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
