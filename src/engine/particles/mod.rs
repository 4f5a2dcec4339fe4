//! Particle analysis: find every particle of a micrograph, measure it, class its shape, and
//! summarise count, size distribution and shape abundance in physical units where the scale
//! is known. No GUI code; the app and the `particles` command call [`analyse`].
//!
//! Pipeline: grey levels -> data bar cut -> reduction of very large images -> Gaussian
//! smoothing -> Otsu threshold (polarity by the border) -> holes filled -> distance transform
//! -> h-maxima markers -> watershed -> minimum size, optional removal of particles cut by the
//! border -> measures ([`measure`]). Each step's rule and source is in its module.

pub mod eval;
pub mod measure;
pub mod scale;
pub mod segment;
pub mod watershed;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::engine::imaging::preprocess::{detect_data_bar, DataBar};
pub use measure::{Particle, Shape};
pub use scale::PixelSize;
use segment::{Grey, Polarity};

/// Images larger than this (longest side, px) are analysed box-reduced by an integer factor;
/// sizes are given in the original's pixels.
pub const MAX_WORKING_SIDE: usize = 1536;

/// Segmentation settings (defaults measured against human outlines, docs/quality.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub data_bar: DataBar,
    pub polarity: Polarity,
    /// Gaussian smoothing before the threshold, px of the working image.
    pub smoothing_px: f32,
    /// Drop connected regions smaller than this fraction of the area-weighted median region
    /// (figure lettering, noise specks beside the particles); 0 = off.
    pub relative_min_area: f32,
    /// Remove the background varying slower than this (Gaussian sigma, as a fraction of the
    /// longer side; 0 = off) before thresholding.
    pub flatten: f32,
    /// Marker height of the watershed (h of the h-maxima), px of distance.
    pub seed_height_px: f32,
    /// Particles smaller than this (px of the working image) are dropped as noise.
    pub min_area_px: u32,
    /// Drop particles cut by the image border (their sizes are cut).
    pub drop_border: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_bar: DataBar::Auto,
            polarity: Polarity::Auto,
            smoothing_px: 1.0,
            relative_min_area: 0.1,
            flatten: 0.0,
            seed_height_px: 3.0,
            min_area_px: 20,
            drop_border: false,
        }
    }
}

/// The result of analysing one image.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Size of the input image.
    pub width: u32,
    pub height: u32,
    /// Rows cut off the bottom as a data bar (rows of the input).
    pub data_bar_rows: u32,
    /// The input was analysed box-reduced by this factor (1 up to [`MAX_WORKING_SIDE`] px).
    pub factor: u32,
    /// Size of the analysed (reduced) image, data bar included.
    pub work_width: u32,
    pub work_height: u32,
    /// Label image of the analysed size (0 = background, 1..n as in `particles`); see
    /// [`Analysis::full_labels`] for the input's size.
    pub labels: Vec<u32>,
    /// Measures in pixels of the input image.
    pub particles: Vec<Particle>,
    pub pixel_size: Option<PixelSize>,
}

/// Per-image statistics stored in the index and compared between query and matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    pub count: usize,
    pub median_ecd_px: Option<f64>,
    pub mean_ecd_px: Option<f64>,
    pub sd_ecd_px: Option<f64>,
    /// Fraction of particles per shape, in [`Shape::ALL`] order.
    pub shape_fractions: [f32; 5],
    pub pixel_size: Option<PixelSize>,
    /// Every particle's ECD (px), ascending: the size distribution.
    pub ecd_px: Vec<f32>,
}

impl Summary {
    pub fn median_ecd_nm(&self) -> Option<f64> {
        Some(self.median_ecd_px? * self.pixel_size.as_ref()?.nm)
    }

    /// The most abundant shape, if any particle was found.
    pub fn main_shape(&self) -> Option<Shape> {
        if self.count == 0 {
            return None;
        }
        Shape::ALL.into_iter().max_by(|a, b| {
            self.shape_fractions[a.index()].total_cmp(&self.shape_fractions[b.index()])
        })
    }

    /// "37 particles, 210 ± 40 nm, 71 % sphere".
    pub fn describe(&self) -> String {
        let Some(median) = self.median_ecd_px else {
            return "no particles found".into();
        };
        let sd = self.sd_ecd_px.unwrap_or(0.0);
        let size = match &self.pixel_size {
            Some(p) => format_length_nm(median * p.nm, sd * p.nm),
            None => format!("{median:.0} ± {sd:.0} px"),
        };
        let shape = self
            .main_shape()
            .map(|s| {
                format!(
                    ", {:.0} % {}",
                    100.0 * self.shape_fractions[s.index()],
                    s.name()
                )
            })
            .unwrap_or_default();
        format!("{} particles, median {size}{shape}", self.count)
    }
}

/// Column names of a per-particle CSV table ([`csv_row`]).
pub const CSV_HEADER: [&str; 14] = [
    "image",
    "particle",
    "area_px",
    "ecd_px",
    "ecd_nm",
    "feret_max_px",
    "feret_min_px",
    "aspect_ratio",
    "circularity",
    "solidity",
    "centroid_x_px",
    "centroid_y_px",
    "cut_by_border",
    "shape",
];

/// One particle as a CSV row under [`CSV_HEADER`]; `nm` is the pixel size when known.
pub fn csv_row(image: &str, p: &Particle, nm: Option<f64>) -> [String; 14] {
    [
        image.to_string(),
        p.label.to_string(),
        format!("{}", p.area_px),
        format!("{:.3}", p.ecd_px),
        nm.map(|nm| format!("{:.3}", p.ecd_px * nm))
            .unwrap_or_default(),
        format!("{:.3}", p.feret_max_px),
        format!("{:.3}", p.feret_min_px),
        format!("{:.3}", p.aspect_ratio),
        format!("{:.3}", p.circularity),
        format!("{:.3}", p.solidity),
        format!("{:.2}", p.centroid_px[0]),
        format!("{:.2}", p.centroid_px[1]),
        p.cut_by_border.to_string(),
        p.shape.name().to_string(),
    ]
}

/// A restriction of a search by particle statistics: "cubes, 200-400 nm".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticleFilter {
    /// The image's most abundant shape must be this one.
    pub shape: Option<Shape>,
    /// Median ECD within this range, nm (images of unknown scale are left out).
    pub size_nm: Option<(f64, f64)>,
    /// Median ECD within this range, px.
    pub size_px: Option<(f64, f64)>,
}

impl ParticleFilter {
    pub fn is_empty(&self) -> bool {
        self.shape.is_none() && self.size_nm.is_none() && self.size_px.is_none()
    }

    /// Whether an image with these statistics (None: not measured) passes.
    pub fn admits(&self, summary: Option<&Summary>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(s) = summary else {
            return false;
        };
        let within = |v: Option<f64>, r: Option<(f64, f64)>| match r {
            None => true,
            Some((lo, hi)) => v.is_some_and(|v| v >= lo && v <= hi),
        };
        self.shape.is_none_or(|shape| s.main_shape() == Some(shape))
            && within(s.median_ecd_nm(), self.size_nm)
            && within(s.median_ecd_px, self.size_px)
    }

    /// "cube, 200-400 nm".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.shape {
            parts.push(s.name().to_string());
        }
        if let Some((lo, hi)) = self.size_nm {
            parts.push(format!("{lo}-{hi} nm"));
        }
        if let Some((lo, hi)) = self.size_px {
            parts.push(format!("{lo}-{hi} px"));
        }
        parts.join(", ")
    }
}

/// Parses a size range "200-400" (or "200..400") into (low, high).
pub fn parse_range(text: &str) -> Result<(f64, f64), String> {
    let (a, b) = text
        .split_once("..")
        .or_else(|| text.split_once('-'))
        .ok_or_else(|| format!("size range {text:?}: write it as LOW-HIGH, e.g. 200-400"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("size range {text:?}: {v:?} is not a size"))
    };
    let (lo, hi) = (parse(a)?, parse(b)?);
    if lo > hi {
        return Err(format!(
            "size range {text:?}: the low end is above the high end"
        ));
    }
    Ok((lo, hi))
}

/// "1.66 ± 0.19 µm" or "210 ± 40 nm".
pub fn format_length_nm(value: f64, sd: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} ± {:.2} µm", value / 1000.0, sd / 1000.0)
    } else {
        format!("{value:.0} ± {sd:.0} nm")
    }
}

impl Analysis {
    pub fn summary(&self) -> Summary {
        summarise(&self.particles, self.pixel_size.clone())
    }

    /// The label of pixel (x, y) of the input image.
    fn label_at(&self, x: u32, y: u32) -> u32 {
        let f = self.factor.max(1);
        let (wx, wy) = (x / f, y / f);
        if wx >= self.work_width || wy >= self.work_height {
            return 0;
        }
        self.labels[(wy * self.work_width + wx) as usize]
    }

    /// The label image at the input's full size (nearest label; data bar rows 0).
    pub fn full_labels(&self) -> Vec<u32> {
        if self.factor <= 1 {
            return self.labels.clone();
        }
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize);
        for y in 0..self.height {
            out.extend((0..self.width).map(|x| self.label_at(x, y)));
        }
        out
    }

    /// The label image as 16-bit grey at the input's size; an error when there are more than
    /// 65,535 particles.
    pub fn label_image(&self) -> Result<image::ImageBuffer<image::Luma<u16>, Vec<u16>>, String> {
        if self.particles.len() > u16::MAX as usize {
            return Err(format!(
                "{} particles do not fit a 16-bit label image",
                self.particles.len()
            ));
        }
        Ok(image::ImageBuffer::from_fn(
            self.width,
            self.height,
            |x, y| image::Luma([self.label_at(x, y) as u16]),
        ))
    }
}

/// Count, ECD statistics and shape fractions of `particles`.
pub fn summarise(particles: &[Particle], pixel_size: Option<PixelSize>) -> Summary {
    let mut ecd: Vec<f64> = particles.iter().map(|p| p.ecd_px).collect();
    ecd.sort_by(f64::total_cmp);
    let n = ecd.len();
    let mut fractions = [0f32; 5];
    for p in particles {
        fractions[p.shape.index()] += 1.0 / n as f32;
    }
    let mean = (n > 0).then(|| ecd.iter().sum::<f64>() / n as f64);
    Summary {
        count: n,
        median_ecd_px: median_sorted(&ecd),
        mean_ecd_px: mean,
        sd_ecd_px: mean
            .map(|m| (ecd.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64).sqrt()),
        shape_fractions: fractions,
        pixel_size,
        ecd_px: ecd.iter().map(|&v| v as f32).collect(),
    }
}

/// RGB colour of a shape class in overlays and plots (distinct for colour-blind readers:
/// Okabe & Ito's palette).
pub fn shape_colour(shape: Shape) -> [u8; 3] {
    match shape {
        Shape::Sphere => [0, 114, 178],
        Shape::Cube => [230, 159, 0],
        Shape::Rod => [0, 158, 115],
        Shape::Elongated => [204, 121, 167],
        Shape::Irregular => [213, 94, 0],
    }
}

/// The image in grey (at the analysed size) with every particle's outline drawn in its shape's
/// colour.
pub fn outline_overlay(img: &DynamicImage, analysis: &Analysis) -> image::RgbaImage {
    let (ww, wh) = (analysis.work_width, analysis.work_height);
    let grey = if (img.width(), img.height()) == (ww, wh) {
        img.to_luma8()
    } else {
        img.thumbnail_exact(ww, wh).to_luma8()
    };
    let (w, h) = (ww as usize, wh as usize);
    let mut colour = vec![None; analysis.particles.len() + 1];
    for p in &analysis.particles {
        if let Some(c) = colour.get_mut(p.label as usize) {
            *c = Some(shape_colour(p.shape));
        }
    }
    let labels = &analysis.labels;
    image::RgbaImage::from_fn(ww, wh, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let l = labels[y * w + x];
        let edge = l > 0
            && [(0isize, -1isize), (-1, 0), (1, 0), (0, 1)]
                .iter()
                .any(|&(dx, dy)| {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    nx < 0
                        || ny < 0
                        || nx as usize >= w
                        || ny as usize >= h
                        || labels[ny as usize * w + nx as usize] != l
                });
        match colour.get(l as usize).copied().flatten() {
            Some([r, g, b]) if edge => image::Rgba([r, g, b, 255]),
            _ => {
                let v = grey.get_pixel(x as u32, y as u32)[0];
                image::Rgba([v, v, v, 255])
            }
        }
    })
}

/// Median of a sorted slice.
pub fn median_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Finds and measures the particles of `img`. `pixel_size` is attached to the result as given
/// (read it with [`scale::from_file`], or take the user's).
pub fn analyse(img: &DynamicImage, settings: &Settings, pixel_size: Option<PixelSize>) -> Analysis {
    let (width, height) = (img.width(), img.height());
    // Large images are reduced before anything else (an integer box average on the stored
    // pixels: no full-size float copy is ever made).
    let factor = (width.max(height) as usize)
        .div_ceil(MAX_WORKING_SIDE)
        .max(1) as u32;
    let reduced;
    let work_img = if factor > 1 {
        reduced = img.thumbnail_exact((width / factor).max(1), (height / factor).max(1));
        &reduced
    } else {
        img
    };
    let grey = Grey::of(work_img);
    let (work_width, work_height) = (grey.width as u32, grey.height as u32);
    let bar = match settings.data_bar {
        DataBar::Keep => 0,
        DataBar::Rows(n) => n.min(height.saturating_sub(1)).div_ceil(factor),
        DataBar::Auto => {
            let bytes: Vec<u8> = grey.values.iter().map(|v| (v * 255.0) as u8).collect();
            detect_data_bar(&bytes, work_width, work_height)
        }
    };
    let work = grey.top_rows((work_height - bar.min(work_height)) as usize);
    let (w, h) = (work.width, work.height);
    let mut smooth = work.blurred(settings.smoothing_px);
    if settings.flatten > 0.0 {
        smooth = segment::flattened(&smooth, settings.flatten * w.max(h) as f32);
    }
    let mut mask = segment::foreground(&smooth, settings.polarity);
    if settings.relative_min_area > 0.0 {
        segment::drop_small_regions(&mut mask, w, h, settings.relative_min_area);
    }
    let distance = watershed::distance_levels(&mask, w, h);
    let seed = (settings.seed_height_px.max(0.0) * watershed::LEVELS_PER_PX).round() as u32;
    let (markers, _) = watershed::h_maxima_markers(&distance, w, h, seed);
    let basins = watershed::watershed(&distance, &markers, w, h);
    let (mut labels, count) = keep_particles(&basins, w, h, settings);
    let mut particles = measure::measure_all(&labels, w, h, count);
    let f = factor as f64;
    for p in &mut particles {
        p.area_px *= f * f;
        p.ecd_px *= f;
        p.feret_max_px *= f;
        p.feret_min_px *= f;
        p.perimeter_px *= f;
        p.centroid_px = [p.centroid_px[0] * f, p.centroid_px[1] * f];
    }
    // The data bar rows (and any rows the reduction left) are background.
    labels.resize(work_width as usize * work_height as usize, 0);
    Analysis {
        width,
        height,
        data_bar_rows: (bar * factor).min(height),
        factor,
        work_width,
        work_height,
        labels,
        particles,
        pixel_size,
    }
}

/// Drops basins under the minimum size (and those cut by the border when asked); relabels the
/// rest 1..n in raster order of their first pixel.
fn keep_particles(basins: &[u32], w: usize, h: usize, settings: &Settings) -> (Vec<u32>, u32) {
    let n = basins.iter().copied().max().unwrap_or(0) as usize;
    let mut area = vec![0u32; n + 1];
    let mut on_border = vec![false; n + 1];
    for (i, &b) in basins.iter().enumerate() {
        area[b as usize] += 1;
        let (x, y) = (i % w, i / w);
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            on_border[b as usize] = true;
        }
    }
    let mut new_label = vec![0u32; n + 1];
    let mut next = 0;
    let mut labels = vec![0u32; basins.len()];
    for (i, &b) in basins.iter().enumerate() {
        let b = b as usize;
        if b == 0 || area[b] < settings.min_area_px || (settings.drop_border && on_border[b]) {
            continue;
        }
        if new_label[b] == 0 {
            next += 1;
            new_label[b] = next;
        }
        labels[i] = new_label[b];
    }
    (labels, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    fn discs(w: u32, h: u32, centres: &[(f32, f32, f32)], dark: bool) -> DynamicImage {
        let mut img = GrayImage::new(w, h);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let inside = centres
                .iter()
                .any(|&(cx, cy, r)| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r);
            *p = Luma([if inside != dark { 200 } else { 40 }]);
        }
        DynamicImage::ImageLuma8(img)
    }

    #[test]
    fn filters_admit_by_main_shape_and_size() {
        let img = discs(100, 100, &[(50.0, 50.0, 20.0)], false);
        let s = analyse(&img, &Settings::default(), PixelSize::new(10.0, "typed")).summary();
        let f = |shape, nm| ParticleFilter {
            shape,
            size_nm: nm,
            size_px: None,
        };
        assert!(f(Some(Shape::Sphere), Some((300.0, 500.0))).admits(Some(&s)));
        assert!(!f(Some(Shape::Cube), None).admits(Some(&s)));
        assert!(!f(None, Some((100.0, 200.0))).admits(Some(&s)));
        assert!(!f(Some(Shape::Sphere), None).admits(None));
        assert!(ParticleFilter::default().admits(None));
        assert_eq!(parse_range("200-400"), Ok((200.0, 400.0)));
        assert!(parse_range("400-200").is_err());
        assert!(parse_range("big").is_err());
    }

    #[test]
    fn touching_discs_give_two_particles() {
        let img = discs(120, 80, &[(40.0, 40.0, 20.0), (78.0, 40.0, 20.0)], false);
        let a = analyse(&img, &Settings::default(), None);
        assert_eq!(a.particles.len(), 2, "{:?}", a.particles);
        for p in &a.particles {
            assert!((p.ecd_px - 40.0).abs() < 4.0, "{p:?}");
        }
    }

    #[test]
    fn dark_particles_on_a_bright_background_are_found() {
        let img = discs(100, 100, &[(30.0, 30.0, 10.0), (70.0, 65.0, 12.0)], true);
        let a = analyse(&img, &Settings::default(), None);
        assert_eq!(a.particles.len(), 2);
    }

    #[test]
    fn blank_tiny_and_full_images_give_clear_answers() {
        let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([128])));
        assert_eq!(
            analyse(&blank, &Settings::default(), None).particles.len(),
            0
        );
        let one = DynamicImage::ImageLuma8(GrayImage::from_pixel(1, 1, Luma([255])));
        let a = analyse(&one, &Settings::default(), None);
        assert_eq!(a.labels.len(), 1);
        assert_eq!(a.summary().describe(), "no particles found");
        let sixteen = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(64, 64, |x, y| {
            Luma([if (x as i32 - 32).pow(2) + (y as i32 - 32).pow(2) < 200 {
                4000u16
            } else {
                900
            }])
        }));
        assert_eq!(
            analyse(&sixteen, &Settings::default(), None)
                .particles
                .len(),
            1
        );
    }

    #[test]
    fn summary_reports_physical_sizes_when_the_scale_is_known() {
        let img = discs(100, 100, &[(50.0, 50.0, 20.0)], false);
        let a = analyse(&img, &Settings::default(), PixelSize::new(10.0, "typed"));
        let s = a.summary();
        let nm = s.median_ecd_nm().expect("scale known");
        assert!((nm - 400.0).abs() < 30.0, "{nm}");
        assert!(s.describe().contains("nm"), "{}", s.describe());
        assert_eq!(s.main_shape(), Some(Shape::Sphere));
    }
}
