//! Segmentation quality against true particle outlines (human ones from EMPS, or the demo
//! renderer's own), with the definitions the particle issue fixes:
//! - **F1@0.5**: one-to-one matches of particles at IoU >= 0.5 (at most one partner can pass
//!   0.5 for each particle, so matching is unique), pooled over images: 2 TP / (found + true);
//! - **count error**: median over images of |found - true| / true;
//! - **size error**: median over images of the relative error of the image's median ECD
//!   (1 when nothing is found);
//! - **foreground IoU**: of the union of particles, median over images and pooled.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::median_sorted;

/// Scores of one image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageScore {
    pub matched: usize,
    pub found: usize,
    pub truth: usize,
    pub count_error: f64,
    pub size_error: f64,
    pub foreground_intersection: u64,
    pub foreground_union: u64,
}

/// Compares a label image with the true one (same size, 0 = background).
pub fn score(found: &[u32], truth: &[u32]) -> ImageScore {
    assert_eq!(found.len(), truth.len(), "label images of different sizes");
    let mut area_found: HashMap<u32, u64> = HashMap::new();
    let mut area_truth: HashMap<u32, u64> = HashMap::new();
    let mut overlap: HashMap<(u32, u32), u64> = HashMap::new();
    let (mut inter, mut union) = (0u64, 0u64);
    for (&f, &t) in found.iter().zip(truth) {
        if f > 0 {
            *area_found.entry(f).or_default() += 1;
        }
        if t > 0 {
            *area_truth.entry(t).or_default() += 1;
        }
        if f > 0 && t > 0 {
            *overlap.entry((f, t)).or_default() += 1;
            inter += 1;
        }
        if f > 0 || t > 0 {
            union += 1;
        }
    }
    let matched = overlap
        .iter()
        .filter(|(&(f, t), &i)| {
            let u = area_found[&f] + area_truth[&t] - i;
            2 * i >= u
        })
        .count();
    let median_ecd = |areas: &HashMap<u32, u64>| {
        let mut e: Vec<f64> = areas
            .values()
            .map(|&a| (4.0 * a as f64 / std::f64::consts::PI).sqrt())
            .collect();
        e.sort_by(f64::total_cmp);
        median_sorted(&e)
    };
    let (n_found, n_truth) = (area_found.len(), area_truth.len());
    let size_error = match (median_ecd(&area_found), median_ecd(&area_truth)) {
        (Some(f), Some(t)) => (f - t).abs() / t,
        (None, Some(_)) => 1.0,
        (_, None) => 0.0,
    };
    ImageScore {
        matched,
        found: n_found,
        truth: n_truth,
        count_error: if n_truth > 0 {
            (n_found as f64 - n_truth as f64).abs() / n_truth as f64
        } else {
            n_found as f64
        },
        size_error,
        foreground_intersection: inter,
        foreground_union: union,
    }
}

/// Scores over a collection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Report {
    pub images: usize,
    pub f1_at_05: f64,
    pub count_error: f64,
    pub size_error: f64,
    pub foreground_iou_median: f64,
    pub foreground_iou_pooled: f64,
}

pub fn report(scores: &[ImageScore]) -> Report {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        median_sorted(&v).unwrap_or(f64::NAN)
    };
    let matched: usize = scores.iter().map(|s| s.matched).sum();
    let total: usize = scores.iter().map(|s| s.found + s.truth).sum();
    let inter: u64 = scores.iter().map(|s| s.foreground_intersection).sum();
    let union: u64 = scores.iter().map(|s| s.foreground_union).sum();
    Report {
        images: scores.len(),
        f1_at_05: if total > 0 {
            2.0 * matched as f64 / total as f64
        } else {
            0.0
        },
        count_error: median(scores.iter().map(|s| s.count_error).collect()),
        size_error: median(scores.iter().map(|s| s.size_error).collect()),
        foreground_iou_median: median(
            scores
                .iter()
                .map(|s| s.foreground_intersection as f64 / s.foreground_union.max(1) as f64)
                .collect(),
        ),
        foreground_iou_pooled: inter as f64 / union.max(1) as f64,
    }
}

/// The (image, true label image) pairs of an EMPS-style folder: `images.csv` with `file` and
/// `segmap` columns, 16-bit label PNGs.
pub fn emps_pairs(dir: &Path) -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, String> {
    let table = dir.join("images.csv");
    let mut reader = csv::Reader::from_path(&table)
        .map_err(|e| format!("cannot read {}: {e}", table.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", table.display()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{} has no {name:?} column", table.display()))
    };
    let (file, segmap) = (column("file")?, column("segmap")?);
    let mut pairs = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("{}: {e}", table.display()))?;
        if let (Some(f), Some(s)) = (row.get(file), row.get(segmap)) {
            pairs.push((dir.join(f), dir.join(s)));
        }
    }
    Ok(pairs)
}

/// A true label image from a 16-bit (or 8-bit) grey PNG.
pub fn load_labels(path: &Path) -> Result<(u32, u32, Vec<u32>), String> {
    let img = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let l = img.to_luma16();
    let (w, h) = l.dimensions();
    Ok((w, h, l.into_raw().into_iter().map(u32::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_missing_segmentations_score_as_expected() {
        let truth = vec![0, 1, 1, 0, 2, 2, 2, 0];
        let s = score(&truth, &truth);
        assert_eq!((s.matched, s.found, s.truth), (2, 2, 2));
        assert_eq!(s.count_error, 0.0);
        let r = report(&[s]);
        assert_eq!(r.f1_at_05, 1.0);
        assert_eq!(r.foreground_iou_pooled, 1.0);
        let none = score(&[0; 8], &truth);
        assert_eq!(none.matched, 0);
        assert_eq!(none.size_error, 1.0);
        assert_eq!(none.count_error, 1.0);
        // One merged particle covering both: IoU 2/5 and 3/5 -> one match.
        let merged = score(&[0, 1, 1, 0, 1, 1, 1, 0], &truth);
        assert_eq!(merged.matched, 1);
        assert_eq!(report(&[merged]).f1_at_05, 2.0 / 3.0);
    }
}
