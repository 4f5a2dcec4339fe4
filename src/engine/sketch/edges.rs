//! The contour pipeline that turns a micrograph into a hand-drawing-like line image, in the
//! study's four steps: (1) contrast normalisation + Gaussian denoising, (2) binarisation
//! (Otsu or a fixed level), (3) Canny edges, (4) contour tracing, rendered as dark lines on
//! white with a set stroke width. Every parameter has an automatic default and is validated, so
//! no user value reaches a library call that would panic.

use image::{GrayImage, Luma};
use imageproc::contrast::{otsu_level, threshold, ThresholdType};
use imageproc::distance_transform::Norm;
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// Which image Canny runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EdgeSource {
    /// The contrast-normalised, denoised grey image (keeps inner detail, facets, spikes).
    #[default]
    Denoised,
    /// The binarised image (particle outlines only).
    Binary,
}

/// Settings of the four steps. `None` means "from the image's own statistics".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContourSettings {
    /// Percentiles mapped to black and white in step 1.
    pub contrast_low_pct: f32,
    pub contrast_high_pct: f32,
    /// Gaussian sigma in pixels of the working image.
    pub blur_sigma: f32,
    /// Binarisation level 0..255; `None`: Otsu.
    pub binary_level: Option<u8>,
    /// Canny hysteresis thresholds on the Sobel gradient magnitude; `None`: automatic.
    pub canny_low: Option<f32>,
    pub canny_high: Option<f32>,
    pub edge_source: EdgeSource,
    /// Contours with fewer points are dropped (specks of noise).
    pub min_contour_points: usize,
    /// Width of the rendered lines in pixels.
    pub line_width_px: u8,
}

impl Default for ContourSettings {
    fn default() -> Self {
        Self {
            contrast_low_pct: 2.0,
            contrast_high_pct: 98.0,
            blur_sigma: 2.0,
            binary_level: None,
            canny_low: None,
            canny_high: None,
            edge_source: EdgeSource::Denoised,
            min_contour_points: 8,
            line_width_px: 3,
        }
    }
}

impl ContourSettings {
    /// Checks every value; the message names the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSetting(m));
        let pct_ok = |p: f32| p.is_finite() && (0.0..=100.0).contains(&p);
        if !pct_ok(self.contrast_low_pct)
            || !pct_ok(self.contrast_high_pct)
            || self.contrast_low_pct >= self.contrast_high_pct
        {
            return bad(format!(
                "contrast percentiles must satisfy 0 <= low < high <= 100 (got {} and {})",
                self.contrast_low_pct, self.contrast_high_pct
            ));
        }
        if !(self.blur_sigma.is_finite() && self.blur_sigma > 0.0 && self.blur_sigma <= 50.0) {
            return bad(format!(
                "blur sigma must be in (0, 50] pixels (got {})",
                self.blur_sigma
            ));
        }
        for t in [self.canny_low, self.canny_high].into_iter().flatten() {
            if !(t.is_finite() && t >= 0.0) {
                return bad(format!(
                    "Canny thresholds must be non-negative numbers (got {t})"
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.canny_low, self.canny_high) {
            if lo > hi {
                return bad(format!(
                    "Canny low threshold {lo} is above the high one {hi}"
                ));
            }
        }
        if self.line_width_px == 0 {
            return bad("line width must be at least 1 pixel".into());
        }
        Ok(())
    }
}

/// The four intermediate images (all the size of the input).
#[derive(Debug, Clone)]
pub struct ContourSteps {
    pub denoised: GrayImage,
    pub binary: GrayImage,
    pub edges: GrayImage,
    /// Dark lines on white.
    pub drawing: GrayImage,
    /// The thresholds actually used (after automatic choice).
    pub canny_low: f32,
    pub canny_high: f32,
    pub binary_level: u8,
}

fn percentile(hist: &[u64; 256], total: u64, pct: f32) -> u8 {
    let target = (f64::from(pct) / 100.0 * total as f64).round() as u64;
    let mut acc = 0;
    for (v, &c) in hist.iter().enumerate() {
        acc += c;
        if acc >= target.max(1) {
            return v as u8;
        }
    }
    255
}

/// Step 1: stretch the `low..high` percentiles to 0..255, then blur.
pub fn denoise(gray: &GrayImage, s: &ContourSettings) -> GrayImage {
    let mut hist = [0u64; 256];
    for p in gray.pixels() {
        hist[p[0] as usize] += 1;
    }
    let total = u64::from(gray.width()) * u64::from(gray.height());
    let lo = f32::from(percentile(&hist, total, s.contrast_low_pct));
    let hi = f32::from(percentile(&hist, total, s.contrast_high_pct));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 1.0 };
    let stretched = GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
        Luma([((f32::from(gray.get_pixel(x, y)[0]) - lo) * scale).clamp(0.0, 255.0) as u8])
    });
    imageproc::filter::gaussian_blur_f32(&stretched, s.blur_sigma)
}

/// Automatic Canny thresholds from the gradient magnitudes Canny itself will see (Sobel of a
/// sigma-1.4 blur): high = 90th percentile of all pixels, kept within 25-75 % of the strongest
/// edge so that both clean drawings and noisy micrographs get usable edges; low = 40 % of high.
fn auto_canny(img: &GrayImage) -> (f32, f32) {
    let blurred = imageproc::filter::gaussian_blur_f32(img, 1.4);
    let grad = imageproc::gradients::sobel_gradients(&blurred);
    let mut mags: Vec<u16> = grad.pixels().map(|p| p[0]).collect();
    let max = f32::from(mags.iter().copied().max().unwrap_or(0));
    if max < 1.0 {
        return (20.0, 50.0);
    }
    let k = (mags.len() * 9 / 10).min(mags.len() - 1);
    let (_, &mut p90, _) = mags.select_nth_unstable(k);
    let high = f32::from(p90).clamp(0.25 * max, 0.75 * max);
    (0.4 * high, high)
}

/// Runs the four steps on a grey image.
pub fn contour_steps(gray: &GrayImage, s: &ContourSettings) -> Result<ContourSteps> {
    s.validate()?;
    if gray.width() == 0 || gray.height() == 0 {
        return Err(Error::InvalidSetting("the image has no pixels".into()));
    }
    let denoised = denoise(gray, s);
    let level = s.binary_level.unwrap_or_else(|| otsu_level(&denoised));
    let binary = threshold(&denoised, level, ThresholdType::Binary);
    let source = match s.edge_source {
        EdgeSource::Denoised => &denoised,
        EdgeSource::Binary => &binary,
    };
    let (auto_low, auto_high) = auto_canny(source);
    let high = s.canny_high.unwrap_or(auto_high);
    let low = s.canny_low.unwrap_or(auto_low.min(high));
    let edges = imageproc::edges::canny(source, low.min(high), high);
    let drawing = render_contours(&edges, s.min_contour_points, s.line_width_px);
    Ok(ContourSteps {
        denoised,
        binary,
        edges,
        drawing,
        canny_low: low,
        canny_high: high,
        binary_level: level,
    })
}

/// Step 4: traces contours of a binary edge map, drops short ones, and draws the rest as dark
/// lines of `width` pixels on white.
pub fn render_contours(edges: &GrayImage, min_points: usize, width: u8) -> GrayImage {
    let (w, h) = edges.dimensions();
    let mut mask = GrayImage::new(w, h);
    for contour in imageproc::contours::find_contours::<i32>(edges) {
        if contour.points.len() < min_points {
            continue;
        }
        for p in &contour.points {
            mask.put_pixel(p.x as u32, p.y as u32, Luma([255]));
        }
    }
    lines_to_drawing(&mask, width)
}

/// A mask of 1-pixel lines (255) thickened to `width` and inverted to dark-on-white.
pub fn lines_to_drawing(mask: &GrayImage, width: u8) -> GrayImage {
    let radius = (width.saturating_sub(1)) / 2;
    let thick = if radius > 0 {
        imageproc::morphology::dilate(mask, Norm::L2, radius)
    } else {
        mask.clone()
    };
    let mut out = thick;
    for p in out.pixels_mut() {
        p[0] = 255 - p[0];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn disc(size: u32) -> GrayImage {
        let c = size as f32 / 2.0;
        GrayImage::from_fn(size, size, |x, y| {
            let r = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
            Luma([if r < size as f32 / 4.0 { 200 } else { 40 }])
        })
    }

    #[test]
    fn a_disc_becomes_a_ring_of_dark_lines() {
        let steps = contour_steps(&disc(64), &ContourSettings::default()).expect("steps");
        let dark = steps.drawing.pixels().filter(|p| p[0] == 0).count();
        assert!(dark > 50, "outline drawn: {dark} dark pixels");
        assert_eq!(
            steps.drawing.get_pixel(32, 32)[0],
            255,
            "centre stays white"
        );
        assert_eq!(
            steps.drawing.get_pixel(1, 1)[0],
            255,
            "background stays white"
        );
    }

    #[test]
    fn invalid_settings_are_errors() {
        let img = disc(16);
        let mut s = ContourSettings {
            canny_low: Some(50.0),
            canny_high: Some(10.0),
            ..Default::default()
        };
        assert!(contour_steps(&img, &s).is_err());
        s = ContourSettings {
            blur_sigma: 0.0,
            ..Default::default()
        };
        assert!(contour_steps(&img, &s).is_err());
        assert!(contour_steps(&GrayImage::new(0, 0), &ContourSettings::default()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_image_any_valid_settings_gives_a_binary_image_of_the_same_size(
            w in 1u32..40, h in 1u32..40, seed in 0u32..1000,
            sigma in 0.1f32..6.0, lo in 0f32..300.0, span in 0f32..300.0,
            width in 1u8..6, binary in proptest::bool::ANY, level in proptest::option::of(0u8..=255)
        ) {
            let img = GrayImage::from_fn(w, h, |x, y| Luma([((x * 31 + y * 17 + seed) % 251) as u8]));
            let s = ContourSettings {
                blur_sigma: sigma, canny_low: Some(lo), canny_high: Some(lo + span),
                line_width_px: width, binary_level: level,
                edge_source: if binary { EdgeSource::Binary } else { EdgeSource::Denoised },
                ..Default::default()
            };
            let steps = contour_steps(&img, &s).expect("valid settings");
            for out in [&steps.binary, &steps.edges, &steps.drawing] {
                prop_assert_eq!(out.dimensions(), (w, h));
                prop_assert!(out.pixels().all(|p| p[0] == 0 || p[0] == 255));
            }
            prop_assert_eq!(steps.denoised.dimensions(), (w, h));
        }
    }
}
