//! Crop -> source retrieval: a random crop of a database micrograph (20-40 % of each side, with
//! a brightness / contrast change and sometimes a blur, as a chemist's crop of a screenshot
//! would be) is searched as an image query; a hit is its source (or an identical twin) in the
//! top k.

use image::{DynamicImage, GrayImage, Luma};

use crate::engine::error::Result;
use crate::engine::imaging::preprocess::load_image;
use crate::engine::library::database::resolve;
use crate::engine::library::demo::Rng;
use crate::engine::library::index::Index;
use crate::engine::Engine;

/// Figures of the crop evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct CropEval {
    pub queries: usize,
    /// Fraction of crops whose source is ranked first / in the top 10.
    pub recall_at_1: f64,
    pub recall_at_10: f64,
}

/// A random crop of `img` (above its data bar of `bar_rows`), 20-40 % of each side, with a
/// contrast gain of 0.8-1.25, an offset of up to 20 grey levels and, one time in two, a
/// Gaussian blur of sigma 0.5-1.5 px.
pub fn random_crop(img: &DynamicImage, bar_rows: u32, rng: &mut Rng) -> DynamicImage {
    let gray = img.to_luma8();
    let (w, h) = gray.dimensions();
    let h = h.saturating_sub(bar_rows.min(h.saturating_sub(1))).max(1);
    let side =
        |n: u32, rng: &mut Rng| ((n as f32 * rng.range(0.2, 0.4)).round() as u32).clamp(1, n);
    let (cw, ch) = (side(w, rng), side(h, rng));
    let x0 = rng.below((w - cw + 1) as usize) as u32;
    let y0 = rng.below((h - ch + 1) as usize) as u32;
    let gain = rng.range(0.8, 1.25);
    let offset = rng.range(-20.0, 20.0);
    let crop = GrayImage::from_fn(cw, ch, |x, y| {
        let v = f32::from(gray.get_pixel(x0 + x, y0 + y)[0]);
        Luma([(v * gain + offset).clamp(0.0, 255.0) as u8])
    });
    let crop = if rng.next_f32() < 0.5 {
        imageproc::filter::gaussian_blur_f32(&crop, rng.range(0.5, 1.5))
    } else {
        crop
    };
    DynamicImage::ImageLuma8(crop)
}

/// Crops of `queries` database images spread evenly over the index (one each, seeded).
pub fn evaluate(engine: &Engine, index: &Index, queries: usize, seed: u64) -> Result<CropEval> {
    let mut rng = Rng::new(seed);
    let n = queries.min(index.len());
    let step = index.len().max(1) as f64 / n.max(1) as f64;
    let (mut first, mut top10) = (0usize, 0usize);
    for q in 0..n {
        let i = (q as f64 * step) as usize;
        let e = &index.entries[i];
        let img = load_image(&resolve(&index.db_dir, &e.path))?;
        let crop = random_crop(&img, e.data_bar_rows, &mut rng);
        let hits = engine.search_image(index, &crop, 10)?;
        let own = |h: &crate::engine::library::index::Hit| {
            index.entries[h.entry].pixel_hash == e.pixel_hash
        };
        first += usize::from(hits.first().is_some_and(own));
        top10 += usize::from(hits.iter().any(own));
    }
    let n_f = n.max(1) as f64;
    Ok(CropEval {
        queries: n,
        recall_at_1: first as f64 / n_f,
        recall_at_10: top10 as f64 / n_f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_a_fifth_to_two_fifths_of_each_side_and_stay_above_the_bar() {
        // Rows above the bar are mid-grey, the 20-row bar is white.
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(200, 120, |_, y| {
            Luma([if y >= 100 { 255 } else { 100 }])
        }));
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let c = random_crop(&img, 20, &mut rng).to_luma8();
            assert!((40..=80).contains(&c.width()), "{}", c.width());
            assert!((20..=40).contains(&c.height()), "{}", c.height());
            // Gain 0.8-1.25 and offset +-20 keep grey 100 within 60..145; white would be 184+.
            assert!(c.pixels().all(|p| (60..=146).contains(&p[0])));
        }
    }
}
