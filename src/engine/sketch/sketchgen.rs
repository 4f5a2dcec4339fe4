//! A sketch test set of the project's own, generated the way a chemist draws: wobbly circles
//! for spheres, squares and parallelograms for cubes, elongated strokes for sticks; random
//! counts, sizes and positions, pen jitter, some overlap. And tracings: the contour drawing of
//! a database image redrawn with wobble and gaps, shifted and scaled.
//! The evaluation that uses them is `engine::eval::sketches`.

use image::{GrayImage, Luma};

use crate::engine::library::demo::Rng;
use crate::engine::sketch::edges::lines_to_drawing;
use crate::engine::sketch::Stroke;

/// Shape classes a chemist draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeClass {
    Sphere,
    Cube,
    Stick,
}

impl ShapeClass {
    /// All classes.
    pub const ALL: [ShapeClass; 3] = [Self::Cube, Self::Stick, Self::Sphere];

    /// The label column naming this shape in the CaCO3 data.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sphere => "Sphere",
            Self::Cube => "Cube",
            Self::Stick => "Stick",
        }
    }
}

/// A closed wobbly outline through `corners` (or a circle when empty), with pen jitter.
fn wobbly(rng: &mut Rng, points: Vec<[f32; 2]>, jitter: f32) -> Stroke {
    let mut out = Vec::new();
    let mut drift = [0f32; 2];
    for p in points {
        drift[0] = 0.7 * drift[0] + jitter * rng.normal();
        drift[1] = 0.7 * drift[1] + jitter * rng.normal();
        out.push([p[0] + drift[0], p[1] + drift[1]]);
    }
    Stroke { points: out }
}

fn polygon(corners: &[[f32; 2]], steps_per_side: usize) -> Vec<[f32; 2]> {
    let mut pts = Vec::new();
    for i in 0..corners.len() {
        let (a, b) = (corners[i], corners[(i + 1) % corners.len()]);
        for s in 0..steps_per_side {
            let t = s as f32 / steps_per_side as f32;
            pts.push([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]);
        }
    }
    pts.push(corners[0]);
    pts
}

/// One generated drawing of `class` (strokes in 0..1 canvas coordinates).
pub fn shape_sketch(class: ShapeClass, rng: &mut Rng) -> Vec<Stroke> {
    let count = 3 + rng.below(10);
    let size = if class == ShapeClass::Sphere {
        rng.range(0.02, 0.06)
    } else {
        rng.range(0.04, 0.11)
    };
    let mut strokes = Vec::new();
    for _ in 0..count {
        let (cx, cy) = (rng.range(0.1, 0.9), rng.range(0.1, 0.9));
        let r = size * rng.range(0.7, 1.3);
        let jitter = r * 0.03;
        match class {
            ShapeClass::Sphere => {
                let start = rng.range(0.0, std::f32::consts::TAU);
                let overshoot = rng.range(0.0, 0.4);
                let n = 28;
                let pts = (0..=n)
                    .map(|k| {
                        let a = start + (std::f32::consts::TAU + overshoot) * k as f32 / n as f32;
                        let rr = r * (1.0 + 0.06 * (3.0 * a).sin());
                        [cx + rr * a.cos(), cy + rr * 0.95 * a.sin()]
                    })
                    .collect();
                strokes.push(wobbly(rng, pts, jitter));
            }
            ShapeClass::Cube => {
                let angle = rng.range(0.0, std::f32::consts::FRAC_PI_2);
                let skew = rng.range(-0.25, 0.25);
                let (s, c) = angle.sin_cos();
                let corners: Vec<[f32; 2]> = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
                    .iter()
                    .map(|&(u, v): &(f32, f32)| {
                        let (u, v) = (u * r + skew * v * r, v * r);
                        [cx + c * u - s * v, cy + s * u + c * v]
                    })
                    .collect();
                strokes.push(wobbly(rng, polygon(&corners, 6), jitter));
            }
            ShapeClass::Stick => {
                let angle = rng.range(0.0, std::f32::consts::PI);
                let half = r * rng.range(1.8, 3.2);
                let (dx, dy) = (half * angle.cos(), half * angle.sin());
                let pts = (0..=12)
                    .map(|k| {
                        let t = k as f32 / 12.0 * 2.0 - 1.0;
                        [cx + dx * t, cy + dy * t]
                    })
                    .collect();
                strokes.push(wobbly(rng, pts, jitter * 0.5));
            }
        }
    }
    strokes
}

/// How far a tracing strays from what it traces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracingStyle {
    /// Largest shift, as a fraction of each side.
    pub max_shift: f32,
    /// Largest change of scale about the centre (0.1: scaled by 0.9-1.1).
    pub max_scale_change: f32,
}

impl TracingStyle {
    /// A drawing from memory of what was seen: shifted up to 10 %, scaled 0.9-1.1.
    pub const HAND: Self = Self {
        max_shift: 0.1,
        max_scale_change: 0.1,
    };
    /// Drawn over the image itself: in place, at scale.
    pub const ALIGNED: Self = Self {
        max_shift: 0.0,
        max_scale_change: 0.0,
    };
}

/// A tracing of a drawing (dark lines on white): its line pixels redrawn with wobble and gaps,
/// shifted and scaled about the centre as `style` allows.
pub fn tracing(
    drawing: &GrayImage,
    rng: &mut Rng,
    style: TracingStyle,
    line_width: u8,
) -> GrayImage {
    let max_shift = style.max_shift;
    let (w, h) = drawing.dimensions();
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if drawing.get_pixel(x, y)[0] < 128 {
            255
        } else {
            0
        }])
    });
    let thin = crate::engine::sketch::thin(&mask);
    let scale = rng.range(1.0 - style.max_scale_change, 1.0 + style.max_scale_change);
    let (sx, sy) = (
        rng.range(-max_shift, max_shift) * w as f32,
        rng.range(-max_shift, max_shift) * h as f32,
    );
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = GrayImage::new(w, h);
    let contours = imageproc::contours::find_contours::<i32>(&thin);
    for contour in contours {
        let mut drift = [0f32; 2];
        let mut gap = 0usize;
        let pts: Vec<[f32; 2]> = contour
            .points
            .iter()
            .map(|p| {
                drift[0] = 0.85 * drift[0] + 0.35 * rng.normal();
                drift[1] = 0.85 * drift[1] + 0.35 * rng.normal();
                [
                    (p.x as f32 - cx) * scale + cx + sx + drift[0],
                    (p.y as f32 - cy) * scale + cy + sy + drift[1],
                ]
            })
            .collect();
        for pair in pts.windows(2) {
            if gap > 0 {
                gap -= 1;
                continue;
            }
            if rng.next_f32() < 0.01 {
                gap = 3 + rng.below(6);
            }
            let inside =
                |p: [f32; 2]| p[0] >= 0.0 && p[1] >= 0.0 && p[0] < w as f32 && p[1] < h as f32;
            if inside(pair[0]) && inside(pair[1]) {
                imageproc::drawing::draw_line_segment_mut(
                    &mut out,
                    (pair[0][0], pair[0][1]),
                    (pair[1][0], pair[1][1]),
                    Luma([255]),
                );
            }
        }
    }
    lines_to_drawing(&out, line_width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sketch::{rasterise_strokes, SketchConfig};

    #[test]
    fn sketches_stay_on_the_canvas_and_differ_by_seed() {
        for class in ShapeClass::ALL {
            let a = shape_sketch(class, &mut Rng::new(1));
            let b = shape_sketch(class, &mut Rng::new(2));
            assert!(!a.is_empty());
            assert_ne!(a, b);
            let drawing = rasterise_strokes(&a, &SketchConfig::default()).expect("draw");
            assert!(!crate::engine::sketch::is_blank(&drawing));
        }
    }

    #[test]
    fn tracing_keeps_most_of_the_lines() {
        let config = SketchConfig::default();
        let original =
            rasterise_strokes(&shape_sketch(ShapeClass::Cube, &mut Rng::new(3)), &config)
                .expect("draw");
        let traced = tracing(&original, &mut Rng::new(4), TracingStyle::ALIGNED, 3);
        let dark = |g: &GrayImage| g.pixels().filter(|p| p[0] < 128).count() as f64;
        let ratio = dark(&traced) / dark(&original);
        assert!((0.5..1.5).contains(&ratio), "{ratio}");
    }
}
