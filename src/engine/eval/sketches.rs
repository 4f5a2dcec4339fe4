//! Sketch search quality: generated drawings per shape class (precision@5), tracings of
//! database images (recall@1 and @10 of the traced image) and, where the collection has true
//! particle outlines, tracings of those outlines and aligned outline drawings. Each query's
//! three channel similarities are computed once and blended under every weight setting asked
//! for, so that a grid of blends costs no more network passes than one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{GrayImage, Luma};

use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::load_image;
use crate::engine::library::database::resolve;
use crate::engine::library::demo::Rng;
use crate::engine::library::index::{partial_top, Index};
use crate::engine::particles::measure::{measure_all, Shape};
use crate::engine::sketch::edges::lines_to_drawing;
use crate::engine::sketch::sketchgen::{shape_sketch, tracing, ShapeClass, TracingStyle};
use crate::engine::sketch::{
    drawing_of_image, ink_fraction, is_blank, rasterise_strokes, SketchWeights,
};
use crate::engine::{Engine, SketchScores};

/// Per entry path: its true outlines (label image), and the shape classes it shows.
pub type Outlines = (
    BTreeMap<String, PathBuf>,
    BTreeMap<String, Vec<&'static str>>,
);

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct SketchEvalSpec {
    /// Generated sketches per shape class (0: none).
    pub per_class: usize,
    /// Tracings tried (spread evenly over the index).
    pub tracings: usize,
    pub seed: u64,
    /// True particle outlines per entry path (label images, 0 = background): tracings are
    /// drawn from them instead of from the contour drawings, and aligned outline drawings are
    /// evaluated too.
    pub outlines: Option<BTreeMap<String, PathBuf>>,
}

/// One blend's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SketchEvalRow {
    /// Fixed weights, or None: the index's own rule (`SketchConfig::weights_for`).
    pub weights: Option<SketchWeights>,
    /// (class, precision@5, chance, sketches)
    pub classes: Vec<(ShapeClass, f64, f64, usize)>,
    pub tracing_recall_at_1: f64,
    pub tracing_recall_at_10: f64,
    /// Aligned outline drawings: own image in the top 10 (with outlines only).
    pub aligned_recall_at_10: Option<f64>,
}

/// The whole evaluation: one row per weight setting.
#[derive(Debug, Clone, PartialEq)]
pub struct SketchEval {
    pub rows: Vec<SketchEvalRow>,
    pub tracings: usize,
    pub aligned: usize,
    /// Where tracings came from: "contour drawings" or "true outlines".
    pub tracing_source: &'static str,
    /// Inked fraction of the canvas (10th, 50th and 90th percentile): class sketches,
    /// tracings, aligned outlines.
    pub ink: [[f32; 3]; 3],
}

fn percentiles(mut v: Vec<f32>) -> [f32; 3] {
    v.sort_by(f32::total_cmp);
    let at = |q: usize| {
        v.get((v.len() * q / 10).min(v.len().saturating_sub(1)))
            .copied()
    };
    [at(1), at(5), at(9)].map(|x| x.unwrap_or(0.0))
}

/// Computes every channel: weights that leave none at 0.
const ALL_CHANNELS: SketchWeights = SketchWeights {
    image: 0.34,
    edge: 0.33,
    tiled: 0.5,
};

/// Rank (0-based) of the first entry sharing `own`'s pixels under `weights`, if in the top `k`.
fn hit_within(
    scores: &SketchScores,
    weights: SketchWeights,
    index: &Index,
    own: &str,
    k: usize,
) -> Option<usize> {
    let mut hits = scores.blend(weights);
    partial_top(&mut hits, k);
    hits.iter()
        .position(|h| index.entries[h.entry].pixel_hash == own)
}

/// Runs the evaluation. `shape_labels` maps entry paths to the shape classes they show
/// (`Cube`, `Stick`, `Sphere`); images without labels take no part in precision@5.
pub fn evaluate(
    engine: &Engine,
    index: &Index,
    shape_labels: &BTreeMap<String, Vec<&'static str>>,
    spec: &SketchEvalSpec,
    weights: &[Option<SketchWeights>],
) -> Result<SketchEval> {
    let mut ink: [Vec<f32>; 3] = Default::default();
    let mut rng = Rng::new(spec.seed);
    let config = &index.config.sketch;
    let mut rows: Vec<SketchEvalRow> = weights
        .iter()
        .map(|&w| SketchEvalRow {
            weights: w,
            classes: Vec::new(),
            tracing_recall_at_1: 0.0,
            tracing_recall_at_10: 0.0,
            aligned_recall_at_10: None,
        })
        .collect();
    let has = |i: usize, c: ShapeClass| {
        shape_labels
            .get(&index.entries[i].path)
            .is_some_and(|l| l.contains(&c.name()))
    };
    let labelled: Vec<usize> = (0..index.len())
        .filter(|&i| shape_labels.contains_key(&index.entries[i].path))
        .collect();
    if spec.per_class > 0 && !labelled.is_empty() {
        for class in ShapeClass::ALL {
            let chance =
                labelled.iter().filter(|&&i| has(i, class)).count() as f64 / labelled.len() as f64;
            let mut totals = vec![0.0; weights.len()];
            for _ in 0..spec.per_class {
                let drawing = rasterise_strokes(&shape_sketch(class, &mut rng), config)?;
                ink[0].push(ink_fraction(&drawing));
                let (scores, _) = engine.sketch_scores(index, &drawing, ALL_CHANNELS)?;
                for (t, &w) in totals.iter_mut().zip(weights) {
                    let mut hits = scores.blend(w.unwrap_or_else(|| config.weights_for(&drawing)));
                    hits.retain(|h| shape_labels.contains_key(&index.entries[h.entry].path));
                    partial_top(&mut hits, 5);
                    *t += hits.iter().filter(|h| has(h.entry, class)).count() as f64 / 5.0;
                }
            }
            for (row, t) in rows.iter_mut().zip(totals) {
                row.classes
                    .push((class, t / spec.per_class as f64, chance, spec.per_class));
            }
        }
    }
    let n = spec.tracings.min(index.len());
    let step = index.len().max(1) as f64 / n.max(1) as f64;
    let (mut traced, mut aligned) = (0usize, 0usize);
    let mut first = vec![0usize; weights.len()];
    let mut top10 = vec![0usize; weights.len()];
    let mut aligned10 = vec![0usize; weights.len()];
    let shift = TracingStyle::HAND;
    for t in 0..n {
        let i = (t as f64 * step) as usize;
        let e = &index.entries[i];
        let (drawing, aligned_drawing) = match &spec.outlines {
            Some(outlines) => {
                let Some(segmap) = outlines.get(&e.path) else {
                    continue;
                };
                let labels =
                    crate::engine::particles::eval::load_labels(segmap).map_err(Error::Index)?;
                let size = config.input_size;
                let kept = outline_drawing(&labels, e.data_bar_rows, size, 0.2, &mut rng);
                let all = outline_drawing(&labels, e.data_bar_rows, size, 0.0, &mut rng);
                (kept, Some(all))
            }
            None => {
                let img = load_image(&resolve(&index.db_dir, &e.path))?;
                (drawing_of_image(&img, config, e.data_bar_rows)?, None)
            }
        };
        let width = config.contours.line_width_px;
        let hand = tracing(&drawing, &mut rng, shift, width);
        if !is_blank(&hand) {
            traced += 1;
            ink[1].push(ink_fraction(&hand));
            let (scores, _) = engine.sketch_scores(index, &hand, ALL_CHANNELS)?;
            for (j, &w) in weights.iter().enumerate() {
                let w = w.unwrap_or_else(|| config.weights_for(&hand));
                match hit_within(&scores, w, index, &e.pixel_hash, 10) {
                    Some(0) => {
                        first[j] += 1;
                        top10[j] += 1;
                    }
                    Some(_) => top10[j] += 1,
                    None => {}
                }
            }
        }
        if let Some(all) = aligned_drawing {
            let on_image = tracing(&all, &mut rng, TracingStyle::ALIGNED, width);
            if !is_blank(&on_image) {
                aligned += 1;
                ink[2].push(ink_fraction(&on_image));
                let (scores, _) = engine.sketch_scores(index, &on_image, ALL_CHANNELS)?;
                for (j, &w) in weights.iter().enumerate() {
                    let w = w.unwrap_or_else(|| config.weights_for(&on_image));
                    aligned10[j] +=
                        usize::from(hit_within(&scores, w, index, &e.pixel_hash, 10).is_some());
                }
            }
        }
    }
    for (j, row) in rows.iter_mut().enumerate() {
        row.tracing_recall_at_1 = first[j] as f64 / traced.max(1) as f64;
        row.tracing_recall_at_10 = top10[j] as f64 / traced.max(1) as f64;
        row.aligned_recall_at_10 = spec
            .outlines
            .as_ref()
            .map(|_| aligned10[j] as f64 / aligned.max(1) as f64);
    }
    Ok(SketchEval {
        rows,
        tracings: traced,
        aligned,
        tracing_source: if spec.outlines.is_some() {
            "true outlines"
        } else {
            "contour drawings"
        },
        ink: ink.map(percentiles),
    })
}

/// The particle outlines of a label image (0 = background, 1..n one particle each) as a
/// `size` x `size` drawing of 1-pixel dark lines on white, the frame the contour drawings use
/// (rows of the data bar cut, the rest stretched to the square). Each particle is left out with
/// probability `leave_out`, as a chemist tracing a crowded image skips some.
pub fn outline_drawing(
    labels: &(u32, u32, Vec<u32>),
    bar_rows: u32,
    size: u32,
    leave_out: f32,
    rng: &mut Rng,
) -> GrayImage {
    let (w, h, l) = (labels.0, labels.1, &labels.2);
    let h_kept = h.saturating_sub(bar_rows.min(h.saturating_sub(1))).max(1);
    let count = l.iter().copied().max().unwrap_or(0) as usize;
    let dropped: Vec<bool> = (0..=count)
        .map(|id| id == 0 || rng.next_f32() < leave_out)
        .collect();
    let mut mask = GrayImage::new(size, size);
    let at = |x: u32, y: u32| l[(y * w + x) as usize];
    for y in 0..h_kept {
        for x in 0..w {
            let v = at(x, y);
            if dropped[v as usize] {
                continue;
            }
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h_kept
                || at(x - 1, y) != v
                || at(x + 1, y) != v
                || at(x, y - 1) != v
                || at(x, y + 1) != v;
            if edge {
                let px = (u64::from(x) * u64::from(size) / u64::from(w)) as u32;
                let py = (u64::from(y) * u64::from(size) / u64::from(h_kept)) as u32;
                mask.put_pixel(px.min(size - 1), py.min(size - 1), Luma([255]));
            }
        }
    }
    lines_to_drawing(&mask, 1)
}

/// The shape classes a label image shows, from its true outlines: a class counts when at
/// least a third of the particles (of 3 or more) are of it (`Stick` = rods and elongated ones).
pub fn shape_classes_of_labels(labels: &(u32, u32, Vec<u32>)) -> Vec<&'static str> {
    let (w, h, l) = (labels.0 as usize, labels.1 as usize, &labels.2);
    let count = l.iter().copied().max().unwrap_or(0);
    let particles = measure_all(l, w, h, count);
    if particles.len() < 3 {
        return Vec::new();
    }
    let share = |shapes: &[Shape]| {
        particles
            .iter()
            .filter(|p| shapes.contains(&p.shape))
            .count() as f64
            / particles.len() as f64
    };
    let mut out = Vec::new();
    for (class, shapes) in [
        ("Sphere", &[Shape::Sphere][..]),
        ("Cube", &[Shape::Cube][..]),
        ("Stick", &[Shape::Rod, Shape::Elongated][..]),
    ] {
        if share(shapes) >= 1.0 / 3.0 {
            out.push(class);
        }
    }
    out
}

/// The outlines of an EMPS-style folder (`images.csv` with `file` and `segmap` columns) keyed
/// by the index's entry paths (matched by file name), and the shape classes each shows.
pub fn emps_outlines(dir: &Path, index: &Index) -> Result<Outlines> {
    let pairs = crate::engine::particles::eval::emps_pairs(dir).map_err(Error::Index)?;
    let by_name: BTreeMap<String, PathBuf> = pairs
        .into_iter()
        .filter_map(|(img, seg)| {
            let name = img.file_name()?.to_string_lossy().to_string();
            Some((name, seg))
        })
        .collect();
    let mut outlines = BTreeMap::new();
    let mut classes = BTreeMap::new();
    for e in &index.entries {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        if let Some(seg) = by_name.get(name) {
            let labels = crate::engine::particles::eval::load_labels(seg).map_err(Error::Index)?;
            classes.insert(e.path.clone(), shape_classes_of_labels(&labels));
            outlines.insert(e.path.clone(), seg.clone());
        }
    }
    if outlines.is_empty() {
        return Err(Error::Index(format!(
            "none of the index's images is listed in {}",
            dir.join("images.csv").display()
        )));
    }
    Ok((outlines, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_squares() -> (u32, u32, Vec<u32>) {
        let (w, h) = (100u32, 120u32);
        let l = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if (10..40).contains(&x) && (10..40).contains(&y) {
                    1
                } else if (60..90).contains(&x) && (50..80).contains(&y) {
                    2
                } else {
                    0
                }
            })
            .collect();
        (w, h, l)
    }

    #[test]
    fn outlines_are_drawn_where_the_particles_are_and_can_be_left_out() {
        let labels = two_squares();
        let mut rng = Rng::new(1);
        // 20 rows of data bar: the remaining 100 rows map onto 100 drawing rows.
        let d = outline_drawing(&labels, 20, 100, 0.0, &mut rng);
        assert_eq!(d.dimensions(), (100, 100));
        assert!(d.get_pixel(10, 25)[0] < 128, "left edge of square 1");
        assert!(d.get_pixel(25, 25)[0] > 127, "inside square 1 stays white");
        assert!(d.get_pixel(89, 60)[0] < 128, "right edge of square 2");
        let dark = |g: &GrayImage| g.pixels().filter(|p| p[0] < 128).count();
        assert_eq!(dark(&d), 4 * 29 + 4 * 29);
        let none = outline_drawing(&labels, 20, 100, 1.0, &mut rng);
        assert!(is_blank(&none));
    }

    #[test]
    fn shape_classes_follow_the_true_particles() {
        // Three squares: cubes, nothing else.
        let (w, h) = (90u32, 30u32);
        let l = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if (5..25).contains(&y) && x % 30 >= 5 && x % 30 < 25 {
                    x / 30 + 1
                } else {
                    0
                }
            })
            .collect();
        assert_eq!(shape_classes_of_labels(&(w, h, l)), vec!["Cube"]);
        // Two particles are too few to call.
        assert!(shape_classes_of_labels(&two_squares()).is_empty());
    }
}
