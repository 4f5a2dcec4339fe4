//! The built-in demo library: SEM-like micrographs rendered by the program itself (spheres,
//! cubes, rods, spikes, urchins, flower-like and hollow particles, aggregates, mixtures), each
//! with a plausible synthesis record and a shape label. Deterministic: the same seed gives the
//! same files, so it can be generated at first start instead of shipped.
//!
//! Rendering: every particle is a signed-distance shape; brightness rises towards its rim (the
//! SEM edge effect) and with a fixed light direction, on a dark background with a gentle
//! gradient, detector noise and a little blur.

use std::path::Path;

use image::{GrayImage, Luma};

use crate::engine::error::{Error, Result};

/// Shape classes of the demo library.
pub const SHAPES: [&str; 8] = [
    "Sphere",
    "Cube",
    "Rod",
    "Spike",
    "Urchin",
    "Flower",
    "Hollow",
    "Aggregate",
];

/// Side of a demo micrograph in pixels.
pub const DEMO_SIZE: u32 = 256;

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in 0..1.
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
    /// Uniform in lo..hi.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.next_f32().max(1e-7);
        let v = self.next_f32();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
    /// An index below n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f32() * n as f32) as usize).min(n.saturating_sub(1))
    }
}

#[derive(Debug, Clone, Copy)]
struct Particle {
    shape: usize,
    x: f32,
    y: f32,
    r: f32,
    angle: f32,
    aspect: f32,
}

/// Signed distance (negative inside) from (px, py) to the particle, in pixels.
fn distance(p: &Particle, px: f32, py: f32) -> f32 {
    let (s, c) = p.angle.sin_cos();
    let (dx, dy) = (px - p.x, py - p.y);
    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
    let radial = (u * u + v * v).sqrt();
    let theta = v.atan2(u);
    match SHAPES[p.shape] {
        "Sphere" | "Aggregate" => radial - p.r,
        "Hollow" => (radial - p.r).max(p.r * 0.55 - radial),
        "Cube" => {
            let (qx, qy) = (u.abs() - p.r * 0.85, v.abs() - p.r * 0.85);
            qx.max(qy).min(0.0) + (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt()
        }
        "Rod" => {
            let half = p.r * p.aspect;
            let qx = (u.abs() - half).max(0.0);
            (qx * qx + v * v).sqrt() - p.r * 0.35
        }
        "Spike" => {
            let half = p.r * p.aspect;
            let width = p.r * 0.3 * (1.0 - (u.abs() / half).min(1.0));
            (u.abs() - half).max(v.abs() - width)
        }
        "Urchin" => radial - p.r * (0.55 + 0.45 * (theta * 9.0).cos().max(0.0).powf(3.0)),
        "Flower" => radial - p.r * (0.6 + 0.4 * (theta * 5.0).cos().abs()),
        _ => radial - p.r,
    }
}

fn place(rng: &mut Rng, shape: usize, size: f32, scale: f32, out: &mut Vec<Particle>) {
    let r = scale * rng.range(0.7, 1.3);
    let base = Particle {
        shape,
        x: rng.range(0.0, size),
        y: rng.range(0.0, size),
        r,
        angle: rng.range(0.0, std::f32::consts::PI),
        aspect: rng.range(2.5, 4.5),
    };
    if SHAPES[shape] == "Aggregate" {
        for _ in 0..(6 + rng.below(10)) {
            out.push(Particle {
                x: base.x + rng.normal() * r * 0.9,
                y: base.y + rng.normal() * r * 0.9,
                r: r * rng.range(0.25, 0.45),
                ..base
            });
        }
    } else {
        out.push(base);
    }
}

/// Renders one micrograph of `shapes` (indices into [`SHAPES`]).
pub fn render(rng: &mut Rng, shapes: &[usize]) -> GrayImage {
    render_with_truth(rng, shapes).0
}

/// [`render`], also giving the true label image (0 = background, 1..n = the particle each
/// pixel shows, before the final blur), for measuring particle analysis.
pub fn render_with_truth(rng: &mut Rng, shapes: &[usize]) -> (GrayImage, Vec<u32>) {
    let size = DEMO_SIZE as f32;
    let scale = rng.range(10.0, 26.0);
    let count =
        (rng.range(0.5, 1.5) * size * size / (scale * scale * 18.0)).clamp(2.0, 40.0) as usize;
    let mut particles = Vec::new();
    for i in 0..count {
        place(rng, shapes[i % shapes.len()], size, scale, &mut particles);
    }
    let background = rng.range(20.0, 60.0);
    let gradient = rng.range(-20.0, 20.0);
    let noise = rng.range(4.0, 14.0);
    let bright = rng.range(150.0, 210.0);
    let light = rng.range(0.0, std::f32::consts::TAU);
    let mut img = GrayImage::new(DEMO_SIZE, DEMO_SIZE);
    let mut labels = vec![0u32; (DEMO_SIZE * DEMO_SIZE) as usize];
    for y in 0..DEMO_SIZE {
        for x in 0..DEMO_SIZE {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let mut value = background + gradient * (py / size - 0.5);
            let mut best = f32::MAX;
            let mut top: Option<&Particle> = None;
            let mut top_index = 0;
            for (i, p) in particles.iter().enumerate() {
                if (px - p.x).abs() > p.r * 5.0 || (py - p.y).abs() > p.r * 5.0 {
                    continue;
                }
                let d = distance(p, px, py);
                if d < best {
                    best = d;
                    top = Some(p);
                    top_index = i;
                }
            }
            if let Some(p) = top {
                if best < 0.0 {
                    labels[(y * DEMO_SIZE + x) as usize] = top_index as u32 + 1;
                    let depth = (-best / p.r).min(1.0);
                    let rim = (1.0 - depth).powi(4) * 60.0;
                    let (dx, dy) = ((px - p.x) / p.r, (py - p.y) / p.r);
                    let shade = 25.0 * (dx * light.cos() + dy * light.sin());
                    value = bright * (0.75 + 0.25 * depth) + rim + shade;
                } else if best < 3.0 {
                    value += 12.0 * (1.0 - best / 3.0);
                }
            }
            value += noise * rng.normal();
            img.put_pixel(x, y, Luma([value.clamp(0.0, 255.0) as u8]));
        }
    }
    (imageproc::filter::gaussian_blur_f32(&img, 0.7), labels)
}

/// One demo sample's synthesis record (plausible trends: cubes ~ calcite at low temperature,
/// spheres ~ vaterite with polymer, rods and spikes ~ aragonite when hot).
fn recipe(rng: &mut Rng, shapes: &[usize]) -> Vec<String> {
    let main = SHAPES[shapes[0]];
    let (temp, polymer) = match main {
        "Cube" => (rng.range(15.0, 35.0), ["", "", "PEG"][rng.below(3)]),
        "Sphere" | "Hollow" | "Aggregate" => {
            (rng.range(20.0, 45.0), ["PSS", "PVP", "PAA"][rng.below(3)])
        }
        "Rod" | "Spike" | "Urchin" => (rng.range(60.0, 90.0), ["", "PAA"][rng.below(2)]),
        _ => (rng.range(30.0, 70.0), ["PVP", "PEG", "CTAB"][rng.below(3)]),
    };
    let minutes = rng.below(120) + 1;
    vec![
        format!("{:.0}", rng.range(10.0, 200.0)),
        format!("{:.0}", rng.range(10.0, 200.0)),
        polymer.to_string(),
        if polymer.is_empty() {
            String::new()
        } else {
            format!("{:.2}", rng.range(0.05, 1.0))
        },
        ["0", "300", "600", "1000"][rng.below(4)].to_string(),
        format!("{temp:.0}"),
        format!("{minutes} min {} sec", rng.below(6) * 10),
    ]
}

/// One demo micrograph with what made it.
pub struct DemoSample {
    pub image: GrayImage,
    /// True label image (see [`render_with_truth`]).
    pub truth: Vec<u32>,
    /// Indices into [`SHAPES`].
    pub shapes: Vec<usize>,
    /// Table cells after the image name, as in `synthesis.csv`.
    pub recipe: Vec<String>,
}

/// The demo library's samples in order (the same images [`generate`] writes).
pub fn samples(n: usize) -> impl Iterator<Item = DemoSample> {
    let mut rng = Rng::new(2024);
    (0..n).map(move |i| {
        // Every tenth image mixes two shapes.
        let first = i % SHAPES.len();
        let shapes = if i % 10 == 9 {
            vec![first, (first + 3) % SHAPES.len()]
        } else {
            vec![first]
        };
        let (image, truth) = render_with_truth(&mut rng, &shapes);
        let recipe = recipe(&mut rng, &shapes);
        DemoSample {
            image,
            truth,
            shapes,
            recipe,
        }
    })
}

/// Writes `n` demo micrographs (`demo_NNN.png`), `synthesis.csv` and `labels.csv` into `dir`.
/// Returns the number written. Existing complete libraries are left as they are.
pub fn generate(dir: &Path, n: usize) -> Result<usize> {
    let table = dir.join("synthesis.csv");
    if table.is_file() && (0..n).all(|i| dir.join(format!("demo_{i:03}.png")).is_file()) {
        return Ok(n);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rows = vec!["image,Ca ion (mM),CO3 ion (mM),Polymer,Polymer (% wt),Stirring (rpm),Temperature (C),Synthesis time,Pixel size (nm),label".to_string()];
    for (i, sample) in samples(n).enumerate() {
        let DemoSample {
            image: img,
            shapes,
            recipe,
            ..
        } = sample;
        let name = format!("demo_{i:03}.png");
        let path = dir.join(&name);
        img.save(&path).map_err(|e| Error::Image {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let label = shapes
            .iter()
            .map(|&s| SHAPES[s])
            .collect::<Vec<_>>()
            .join("+");
        let mut cells = vec![name];
        cells.extend(recipe);
        // A per-image scale, as a microscope at four magnifications would record it.
        cells.push(format!("{:.1}", 4.0 + 2.0 * (i % 4) as f32));
        cells.push(label);
        rows.push(cells.join(","));
    }
    crate::engine::library::files::write_atomic(&table, (rows.join("\n") + "\n").as_bytes())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_complete() {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        generate(a.path(), 10).expect("a");
        generate(b.path(), 10).expect("b");
        for i in 0..10 {
            let name = format!("demo_{i:03}.png");
            assert_eq!(
                std::fs::read(a.path().join(&name)).expect("a"),
                std::fs::read(b.path().join(&name)).expect("b")
            );
        }
        let table = std::fs::read_to_string(a.path().join("synthesis.csv")).expect("table");
        assert_eq!(table.lines().count(), 11);
        assert!(table.lines().nth(10).expect("row").ends_with("Cube+Urchin"));
    }

    #[test]
    fn particles_are_brighter_than_background() {
        let img = render(&mut Rng::new(1), &[0]);
        let mean =
            img.pixels().map(|p| f32::from(p[0])).sum::<f32>() / (DEMO_SIZE * DEMO_SIZE) as f32;
        let max = img.pixels().map(|p| p[0]).max().expect("pixels");
        assert!(max > 150 && mean < 150.0, "mean {mean}, max {max}");
    }
}
