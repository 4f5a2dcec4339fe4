//! Foreground of a micrograph: grey levels, smoothing, polarity, threshold, hole filling.
//!
//! Each step's rule and its source:
//! - **Grey levels**: 8-bit as stored; 16-bit stretched from the darkest to the brightest value
//!   (SEM detectors fill 10-12 of the 16 bits), so one threshold rule serves both.
//! - **Smoothing**: a Gaussian of `smoothing_px` (default 1 px) before thresholding, the classical
//!   first step of Otsu pipelines (Gonzalez & Woods, *Digital Image Processing*, 10.3.4): shot
//!   noise otherwise scatters single pixels across the threshold.
//! - **Threshold**: Otsu's between-class variance maximum (N. Otsu, IEEE SMC 9 (1979) 62-66),
//!   optionally on the image with its slowly varying background removed (uneven SEM
//!   illumination, TEM carbon film): measured against human outlines in docs/quality.md.
//! - **Polarity**: the class covering most of the image border is the background (particles are
//!   bright on a dark SEM background, dark on a bright TEM one); `Polarity::Bright`/`Dark` force it.
//! - **Holes**: background regions not connected to the border (4-connected) are filled: hollow
//!   spheres and bright rims of SEM particles leave dark centres that belong to the particle.

use image::DynamicImage;

use serde::{Deserialize, Serialize};

/// A grey image, row-major, values 0..1.
#[derive(Debug, Clone)]
pub struct Grey {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl Grey {
    /// Grey levels of `img`: 8-bit as stored, 16-bit and float stretched to their own range.
    pub fn of(img: &DynamicImage) -> Self {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let deep = !matches!(
            img,
            DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageRgb8(_)
                | DynamicImage::ImageRgba8(_)
        );
        let mut values = img.to_luma32f().into_raw();
        if deep {
            let (lo, hi) = values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
            for v in &mut values {
                *v = if v.is_finite() {
                    ((*v - lo) * scale).clamp(0.0, 1.0)
                } else {
                    0.0
                };
            }
        }
        Self {
            width,
            height,
            values,
        }
    }

    /// The top `rows` rows only (the data bar cut off).
    pub fn top_rows(mut self, rows: usize) -> Self {
        let rows = rows.min(self.height);
        self.values.truncate(rows * self.width);
        self.height = rows;
        self
    }

    /// Box-averaged reduction by an integer `factor` (1 = unchanged).
    pub fn reduced(&self, factor: usize) -> Self {
        if factor <= 1 {
            return self.clone();
        }
        let (w, h) = (self.width / factor, self.height / factor);
        let (w, h) = (w.max(1), h.max(1));
        let mut values = vec![0f32; w * h];
        for (y, row) in values.chunks_exact_mut(w).enumerate() {
            for (x, out) in row.iter_mut().enumerate() {
                let mut sum = 0.0;
                let mut n = 0.0;
                for sy in y * factor..((y + 1) * factor).min(self.height) {
                    let line = &self.values[sy * self.width..(sy + 1) * self.width];
                    for &v in &line[x * factor..((x + 1) * factor).min(self.width)] {
                        sum += v;
                        n += 1.0;
                    }
                }
                *out = if n > 0.0 { sum / n } else { 0.0 };
            }
        }
        Self {
            width: w,
            height: h,
            values,
        }
    }

    /// Separable Gaussian blur of standard deviation `sigma` px (edges clamped).
    pub fn blurred(&self, sigma: f32) -> Self {
        if sigma <= 0.0 || self.values.is_empty() {
            return self.clone();
        }
        let radius = (3.0 * sigma).ceil() as isize;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let total: f32 = kernel.iter().sum();
        let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
        let (w, h) = (self.width, self.height);
        let pass = |src: &[f32], len: usize, stride: usize, lines: usize, step: usize| {
            let mut out = vec![0f32; src.len()];
            for line in 0..lines {
                let base = line * step;
                for i in 0..len {
                    let mut acc = 0.0;
                    for (k, &kv) in kernel.iter().enumerate() {
                        let j = (i as isize + k as isize - radius).clamp(0, len as isize - 1);
                        acc += kv * src[base + j as usize * stride];
                    }
                    out[base + i * stride] = acc;
                }
            }
            out
        };
        let horizontal = pass(&self.values, w, 1, h, w);
        let values = pass(&horizontal, h, w, w, 1);
        Self {
            width: w,
            height: h,
            values,
        }
    }
}

/// Which particles to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Polarity {
    /// The class covering most of the image border is the background.
    #[default]
    Auto,
    /// Bright particles on a dark background (SEM secondary electrons).
    Bright,
    /// Dark particles on a bright background (TEM bright field).
    Dark,
}

impl std::str::FromStr for Polarity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "bright" => Ok(Self::Bright),
            "dark" => Ok(Self::Dark),
            _ => Err(format!("polarity {s:?}: use auto, bright or dark")),
        }
    }
}

/// Otsu's threshold of `values` (0..1) over 256 bins: the level maximising the between-class
/// variance. Returns a value in 0..1; flat images give their own level.
pub fn otsu(values: &[f32]) -> f32 {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[(v.clamp(0.0, 1.0) * 255.0).round() as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.5;
    }
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut weight_low, mut sum_low) = (0u64, 0f64);
    let (mut best, mut best_level) = (-1.0f64, 0usize);
    for (level, &n) in hist.iter().enumerate() {
        weight_low += n;
        sum_low += level as f64 * n as f64;
        let weight_high = total - weight_low;
        if weight_low == 0 || weight_high == 0 {
            continue;
        }
        let mean_low = sum_low / weight_low as f64;
        let mean_high = (sum_all - sum_low) / weight_high as f64;
        let between = weight_low as f64 * weight_high as f64 * (mean_low - mean_high).powi(2);
        if between > best {
            best = between;
            best_level = level;
        }
    }
    if best < 0.0 {
        // One grey level only: nothing separates particles from background.
        return values.first().copied().unwrap_or(0.5).clamp(0.0, 1.0) + 1.0 / 512.0;
    }
    (best_level as f32 + 0.5) / 255.0
}

/// The image minus its slowly varying background (a Gaussian of `sigma` px), shifted back to
/// 0..1: uneven illumination no longer decides which pixels pass the threshold.
pub fn flattened(grey: &Grey, sigma: f32) -> Grey {
    let background = grey.reduced(4).blurred(sigma / 4.0);
    let mut values = Vec::with_capacity(grey.values.len());
    for y in 0..grey.height {
        let by = (y / 4).min(background.height - 1);
        for x in 0..grey.width {
            let bx = (x / 4).min(background.width - 1);
            let b = background.values[by * background.width + bx];
            values.push(grey.values[y * grey.width + x] - b);
        }
    }
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    for v in &mut values {
        *v = (*v - lo) * scale;
    }
    Grey {
        width: grey.width,
        height: grey.height,
        values,
    }
}

/// Foreground mask (true = particle) of a smoothed grey image: Otsu's level, polarity by the
/// border (or forced), holes filled.
pub fn foreground(smooth: &Grey, polarity: Polarity) -> Vec<bool> {
    let level = otsu(&smooth.values);
    let mut mask: Vec<bool> = smooth.values.iter().map(|&v| v > level).collect();
    let dark_particles = match polarity {
        Polarity::Bright => false,
        Polarity::Dark => true,
        Polarity::Auto => {
            let border = border_indices(smooth.width, smooth.height);
            let bright = border.iter().filter(|&&i| mask[i]).count();
            2 * bright > border.len()
        }
    };
    if dark_particles {
        for m in &mut mask {
            *m = !*m;
        }
    }
    fill_holes(&mut mask, smooth.width, smooth.height);
    mask
}

/// Indices of the pixels on the image's outer frame, each once.
fn border_indices(w: usize, h: usize) -> Vec<usize> {
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let mut out: Vec<usize> = (0..w).collect();
    if h > 1 {
        out.extend((0..w).map(|x| (h - 1) * w + x));
    }
    for y in 1..h.saturating_sub(1) {
        out.push(y * w);
        if w > 1 {
            out.push(y * w + w - 1);
        }
    }
    out
}

/// Sets to true every background pixel not 4-connected to the image border.
pub fn fill_holes(mask: &mut [bool], w: usize, h: usize) {
    let mut outside = vec![false; mask.len()];
    let mut stack: Vec<usize> = border_indices(w, h)
        .into_iter()
        .filter(|&i| !mask[i])
        .collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let mut visit = |j: usize| {
            if !mask[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < w {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - w);
        }
        if y + 1 < h {
            visit(i + w);
        }
    }
    for (m, o) in mask.iter_mut().zip(&outside) {
        *m = !*o;
    }
}

/// Clears 8-connected foreground regions smaller than `fraction` of the area-weighted median
/// region area (the area of the region holding the median foreground pixel).
pub fn drop_small_regions(mask: &mut [bool], w: usize, h: usize, fraction: f32) {
    let mut region = vec![0u32; mask.len()];
    let mut areas: Vec<usize> = vec![0];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || region[start] != 0 {
            continue;
        }
        let id = areas.len() as u32;
        let mut area = 0;
        region[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            area += 1;
            let (x, y) = (p % w, p / w);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if mask[q] && region[q] == 0 {
                        region[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        areas.push(area);
    }
    let mut sorted: Vec<usize> = areas[1..].to_vec();
    sorted.sort_unstable();
    let total: usize = sorted.iter().sum();
    let mut acc = 0;
    let weighted_median = sorted
        .iter()
        .find(|&&a| {
            acc += a;
            2 * acc >= total
        })
        .copied()
        .unwrap_or(0);
    let limit = (weighted_median as f32 * fraction) as usize;
    for (m, &r) in mask.iter_mut().zip(&region) {
        if *m && areas[r as usize] < limit {
            *m = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_splits_two_levels_between_them() {
        let mut values = vec![0.2f32; 500];
        values.extend(vec![0.8f32; 300]);
        let t = otsu(&values);
        assert!(t > 0.2 && t < 0.8, "{t}");
    }

    #[test]
    fn holes_not_reaching_the_border_are_filled() {
        // A ring of 5x5 with a one-pixel hole, inside a 7x7 background.
        let (w, h) = (7, 7);
        let mut mask = vec![false; w * h];
        for y in 1..6 {
            for x in 1..6 {
                mask[y * w + x] = true;
            }
        }
        mask[3 * w + 3] = false;
        fill_holes(&mut mask, w, h);
        assert!(mask[3 * w + 3]);
        assert!(!mask[0]);
        assert_eq!(mask.iter().filter(|&&m| m).count(), 25);
    }

    #[test]
    fn polarity_follows_the_border() {
        // Dark disc on a bright background: the disc is the particle.
        let (w, h) = (40, 40);
        let values: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 20.0, (i / w) as f32 - 20.0);
                if x * x + y * y < 64.0 {
                    0.1
                } else {
                    0.9
                }
            })
            .collect();
        let grey = Grey {
            width: w,
            height: h,
            values,
        };
        let mask = foreground(&grey, Polarity::Auto);
        assert!(mask[20 * w + 20]);
        assert!(!mask[0]);
        // Forced bright: the bright surround is the "particle" (and the disc its filled hole).
        let forced = foreground(&grey, Polarity::Bright);
        assert!(forced[0]);
    }
}
