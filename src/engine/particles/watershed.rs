//! Splitting touching particles: marker-controlled watershed on the distance transform.
//!
//! The classic recipe (Beucher & Meyer, "The morphological approach to segmentation: the
//! watershed transformation", 1993; Soille, *Morphological Image Analysis*, 2003, ch. 6 and 9):
//! 1. the Euclidean distance of every foreground pixel to the background
//!    (Felzenszwalb & Huttenlocher's transform, from imageproc), so that each particle becomes a
//!    hill whose top is its centre;
//! 2. markers: the **h-maxima**, the regional maxima of the reconstruction by dilation of
//!    `distance - h` under `distance` (Soille 6.3.3). A neck between two touching discs is a
//!    saddle lower than both tops by more than `h`, so both keep a marker; surface bumps smaller
//!    than `h` do not split a particle;
//! 3. flooding from the markers in order of decreasing distance (Meyer's priority-flood
//!    watershed), restricted to the foreground: each pixel joins the basin that reaches it first.
//!
//! Distances are quantised to [`LEVELS_PER_PX`] levels per pixel so that both floods run on a
//! bucket queue in linear time (Vincent 1993's hierarchical queue) instead of a heap.

use image::{GrayImage, Luma};

/// Distance levels per pixel of distance.
pub const LEVELS_PER_PX: f32 = 4.0;

/// Quantised Euclidean distance of each foreground pixel to the nearest background pixel
/// (0 on the background). The image is framed by background, so a particle cut by the border
/// ends there.
pub fn distance_levels(mask: &[bool], w: usize, h: usize) -> Vec<u32> {
    let mut framed = GrayImage::new(w as u32 + 2, h as u32 + 2);
    for p in framed.pixels_mut() {
        *p = Luma([255]);
    }
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] {
                framed.put_pixel(x as u32 + 1, y as u32 + 1, Luma([0]));
            }
        }
    }
    let squared = imageproc::distance_transform::euclidean_squared_distance_transform(&framed);
    let mut out = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] {
                let d = squared.get_pixel(x as u32 + 1, y as u32 + 1)[0].sqrt() as f32;
                out[y * w + x] = ((d * LEVELS_PER_PX).round() as u32).max(1);
            }
        }
    }
    out
}

/// Pixels by level, drained from the highest level down; a level may receive new pixels while
/// it is drained (they are served first-in first-out).
struct BucketQueue {
    buckets: Vec<Vec<u32>>,
}

impl BucketQueue {
    fn new(max_level: u32) -> Self {
        Self {
            buckets: vec![Vec::new(); max_level as usize + 1],
        }
    }

    fn push(&mut self, level: u32, pixel: usize) {
        self.buckets[level as usize].push(pixel as u32);
    }

    /// Calls `visit(level, pixel, queue)` for every queued pixel, highest level first.
    fn drain(&mut self, mut visit: impl FnMut(u32, usize, &mut Self)) {
        for level in (0..self.buckets.len()).rev() {
            let mut i = 0;
            while i < self.buckets[level].len() {
                let p = self.buckets[level][i] as usize;
                visit(level as u32, p, self);
                i += 1;
            }
            self.buckets[level] = Vec::new();
        }
    }
}

/// The 8 neighbours of pixel `p` inside a `w x h` image.
fn neighbours(p: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = ((p % w) as isize, (p / w) as isize);
    const STEPS: [(isize, isize); 8] = [
        (-1, -1),
        (0, -1),
        (1, -1),
        (-1, 0),
        (1, 0),
        (-1, 1),
        (0, 1),
        (1, 1),
    ];
    STEPS.into_iter().filter_map(move |(dx, dy)| {
        let (nx, ny) = (x + dx, y + dy);
        (nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h)
            .then(|| ny as usize * w + nx as usize)
    })
}

/// Markers: the h-maxima of `distance` (levels; 0 = background), labelled 1..n, 8-connected.
/// Every foreground component gets at least one marker.
pub fn h_maxima_markers(distance: &[u32], w: usize, h: usize, height: u32) -> (Vec<u32>, u32) {
    let max_level = distance.iter().copied().max().unwrap_or(0);
    // Reconstruction by dilation of max(distance - h, 1) under distance.
    let mut rec: Vec<u32> = distance
        .iter()
        .map(|&d| {
            if d == 0 {
                0
            } else {
                d.saturating_sub(height).max(1)
            }
        })
        .collect();
    let mut queue = BucketQueue::new(max_level);
    for (p, &r) in rec.iter().enumerate() {
        if r > 0 {
            queue.push(r, p);
        }
    }
    queue.drain(|level, p, queue| {
        if rec[p] != level {
            return; // raised since it was queued
        }
        for q in neighbours(p, w, h) {
            let v = level.min(distance[q]);
            if v > rec[q] {
                rec[q] = v;
                queue.push(v, q);
            }
        }
    });
    // Regional maxima of the reconstruction: plateaus with no higher neighbour.
    let mut markers = vec![0u32; w * h];
    let mut seen = vec![false; w * h];
    let mut count = 0;
    let mut plateau = Vec::new();
    for start in 0..w * h {
        if seen[start] || rec[start] == 0 {
            continue;
        }
        let level = rec[start];
        plateau.clear();
        plateau.push(start);
        seen[start] = true;
        let mut is_max = true;
        let mut i = 0;
        while i < plateau.len() {
            let p = plateau[i];
            i += 1;
            for q in neighbours(p, w, h) {
                if rec[q] > level {
                    is_max = false;
                } else if rec[q] == level && !seen[q] {
                    seen[q] = true;
                    plateau.push(q);
                }
            }
        }
        if is_max {
            count += 1;
            for &p in &plateau {
                markers[p] = count;
            }
        }
    }
    (markers, count)
}

/// Floods the foreground (`distance > 0`) from `markers` in order of decreasing distance;
/// returns the label of every pixel (0 = background).
pub fn watershed(distance: &[u32], markers: &[u32], w: usize, h: usize) -> Vec<u32> {
    let max_level = distance.iter().copied().max().unwrap_or(0);
    let mut labels = markers.to_vec();
    let mut queue = BucketQueue::new(max_level);
    for (p, &m) in markers.iter().enumerate() {
        if m > 0 {
            queue.push(distance[p], p);
        }
    }
    queue.drain(|level, p, queue| {
        let label = labels[p];
        for q in neighbours(p, w, h) {
            if labels[q] == 0 && distance[q] > 0 {
                labels[q] = label;
                queue.push(distance[q].min(level), q);
            }
        }
    });
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discs(w: usize, h: usize, centres: &[(f32, f32, f32)]) -> Vec<bool> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                centres
                    .iter()
                    .any(|&(cx, cy, r)| (x - cx).powi(2) + (y - cy).powi(2) <= r * r)
            })
            .collect()
    }

    #[test]
    fn two_touching_discs_are_split_in_two() {
        let (w, h) = (80, 50);
        let mask = discs(w, h, &[(25.0, 25.0, 14.0), (51.0, 25.0, 14.0)]);
        let d = distance_levels(&mask, w, h);
        let (markers, n) = h_maxima_markers(&d, w, h, (3.0 * LEVELS_PER_PX) as u32);
        assert_eq!(n, 2);
        let labels = watershed(&d, &markers, w, h);
        let (a, b) = (labels[25 * w + 25], labels[25 * w + 51]);
        assert!(a > 0 && b > 0 && a != b);
        assert!(mask.iter().zip(&labels).all(|(&m, &l)| m == (l > 0)));
    }

    #[test]
    fn a_bump_lower_than_h_does_not_split() {
        let (w, h) = (60, 40);
        // A disc with a small disc overlapping most of it: one particle with a shallow saddle.
        let mask = discs(w, h, &[(28.0, 20.0, 12.0), (36.0, 20.0, 9.0)]);
        let d = distance_levels(&mask, w, h);
        let (_, n) = h_maxima_markers(&d, w, h, (4.0 * LEVELS_PER_PX) as u32);
        assert_eq!(n, 1);
    }

    #[test]
    fn small_components_keep_a_marker_of_their_own() {
        let (w, h) = (30, 10);
        let mask = discs(w, h, &[(3.0, 5.0, 1.0), (20.0, 5.0, 2.0)]);
        let d = distance_levels(&mask, w, h);
        let (markers, n) = h_maxima_markers(&d, w, h, 40);
        assert_eq!(n, 2);
        let labels = watershed(&d, &markers, w, h);
        assert!(mask.iter().zip(&labels).all(|(&m, &l)| m == (l > 0)));
    }
}
