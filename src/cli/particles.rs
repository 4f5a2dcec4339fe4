//! `morphosearch particles` (count, size and shape of every particle) and `particles-eval`
//! (segmentation quality against true outlines).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::engine::imaging::preprocess::{load_image, DataBar};
use crate::engine::library::demo;
use crate::engine::particles::eval::{emps_pairs, load_labels, report, score, ImageScore};
use crate::engine::particles::segment::Polarity;
use crate::engine::particles::{analyse, scale, Analysis, PixelSize, Settings, Shape};

/// Segmentation settings on the command line.
#[derive(Debug, Args, Clone)]
pub struct SegmentArgs {
    /// Particles brighter (SEM) or darker (TEM) than the background.
    #[arg(long, value_enum, default_value_t = super::PolarityArg::Auto)]
    pub polarity: super::PolarityArg,
    /// Watershed marker height (px of distance): lower splits more.
    #[arg(long)]
    pub seed_height: Option<f32>,
    /// Gaussian smoothing before the threshold (px).
    #[arg(long)]
    pub smoothing: Option<f32>,
    /// Drop regions smaller than this fraction of the area-weighted median region (0 = off).
    #[arg(long)]
    pub relative_min_area: Option<f32>,
    /// Remove background varying slower than this fraction of the image side (0 = off).
    #[arg(long)]
    pub flatten: Option<f32>,
    /// Smallest particle kept (px).
    #[arg(long)]
    pub min_area: Option<u32>,
    /// Drop particles cut by the image border.
    #[arg(long)]
    pub drop_border: bool,
    /// SEM data bar at the bottom: auto (detect), keep, or a number of rows to cut.
    #[arg(long, default_value = "auto")]
    pub data_bar: String,
}

impl SegmentArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let d = Settings::default();
        let settings = Settings {
            data_bar: self.data_bar.parse::<DataBar>()?,
            polarity: Polarity::from(self.polarity),
            smoothing_px: self.smoothing.unwrap_or(d.smoothing_px),
            relative_min_area: self.relative_min_area.unwrap_or(d.relative_min_area),
            flatten: self.flatten.unwrap_or(d.flatten),
            seed_height_px: self.seed_height.unwrap_or(d.seed_height_px),
            min_area_px: self.min_area.unwrap_or(d.min_area_px),
            drop_border: self.drop_border,
        };
        for (name, v) in [
            ("--smoothing", settings.smoothing_px),
            ("--seed-height", settings.seed_height_px),
            ("--flatten", settings.flatten),
        ] {
            if !(0.0..=1000.0).contains(&v) {
                bail!("{name} {v}: use a value from 0 to 1000");
            }
        }
        Ok(settings)
    }
}

#[derive(Debug, Args)]
pub struct ParticlesArgs {
    /// One JSON line per image.
    #[arg(long)]
    pub json: bool,
    /// Write a 16-bit label image per input (`DIR/<stem>.png`, 0 = background).
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Write every particle of every image as one CSV table.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Pixel size (nm) for images whose files record none.
    #[arg(long)]
    pub pixel_size_nm: Option<f64>,
    #[command(flatten)]
    pub segment: SegmentArgs,
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ParticlesEvalArgs {
    /// An EMPS-style folder (images.csv with file and segmap columns, 16-bit label PNGs).
    #[arg(long)]
    pub emps: Option<PathBuf>,
    /// Also score this many demo renderings (their true outlines are known).
    #[arg(long)]
    pub demo: Option<usize>,
    /// Score only every n-th image (quick looks while tuning).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    #[command(flatten)]
    pub segment: SegmentArgs,
    #[arg(long)]
    pub json: bool,
    /// Also print each image's scores (JSON lines on stderr).
    #[arg(long)]
    pub per_image: bool,
}

/// The JSON object of one analysed image (the `particles --json` line).
pub fn analysis_json(image: &Path, a: &Analysis) -> Value {
    let s = a.summary();
    let nm = a.pixel_size.as_ref().map(|p| p.nm);
    let fractions = fractions_json(&s.shape_fractions);
    let particles: Vec<Value> = a
        .particles
        .iter()
        .map(|p| {
            json!({
                "label": p.label,
                "area_px": p.area_px,
                "ecd_px": round3(p.ecd_px),
                "ecd_nm": nm.map(|nm| round3(p.ecd_px * nm)),
                "feret_max_px": round3(p.feret_max_px),
                "feret_min_px": round3(p.feret_min_px),
                "aspect_ratio": round3(p.aspect_ratio),
                "circularity": round3(p.circularity),
                "solidity": round3(p.solidity),
                "centroid_px": [round3(p.centroid_px[0]), round3(p.centroid_px[1])],
                "cut_by_border": p.cut_by_border,
                "shape": p.shape.name(),
            })
        })
        .collect();
    json!({
        "image": image.display().to_string(),
        "width": a.width,
        "height": a.height,
        "data_bar_rows": a.data_bar_rows,
        "pixel_size_nm": nm,
        "pixel_size_source": a.pixel_size.as_ref().map(|p| p.source.clone()).unwrap_or_else(|| "unknown".into()),
        "count": s.count,
        "median_ecd_px": s.median_ecd_px.map(round3),
        "median_ecd_nm": s.median_ecd_nm().map(round3),
        "mean_ecd_px": s.mean_ecd_px.map(round3),
        "sd_ecd_px": s.sd_ecd_px.map(round3),
        "shape_fractions": fractions,
        "particles": particles,
    })
}

/// Shape fractions as a JSON object keyed by shape name.
fn fractions_json(fractions: &[f32; 5]) -> Value {
    Shape::ALL
        .iter()
        .map(|shape| (shape.name().to_string(), json!(fractions[shape.index()])))
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

/// The particle statistics of an indexed image as JSON (null when not measured).
pub fn summary_json(summary: Option<&crate::engine::particles::Summary>) -> Value {
    let Some(s) = summary else {
        return Value::Null;
    };
    let fractions = fractions_json(&s.shape_fractions);
    json!({
        "count": s.count,
        "median_ecd_px": s.median_ecd_px.map(round3),
        "median_ecd_nm": s.median_ecd_nm().map(round3),
        "sd_ecd_px": s.sd_ecd_px.map(round3),
        "main_shape": s.main_shape().map(Shape::name),
        "shape_fractions": fractions,
        "pixel_size_nm": s.pixel_size.as_ref().map(|p| p.nm),
        "pixel_size_source": s.pixel_size.as_ref().map(|p| p.source.clone()).unwrap_or_else(|| "unknown".into()),
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The pixel size of `path`: from the file, else `typed`.
pub fn pixel_size_for(path: &Path, width: u32, typed: Option<f64>) -> Option<PixelSize> {
    scale::from_file(path, width)
        .or_else(|| typed.and_then(|nm| PixelSize::new(nm, "--pixel-size-nm")))
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub fn particles_command(args: &ParticlesArgs) -> anyhow::Result<i32> {
    let settings = args.segment.settings()?;
    if let Some(nm) = args.pixel_size_nm {
        if PixelSize::new(nm, "").is_none() {
            bail!("--pixel-size-nm {nm}: give a positive size in nanometres");
        }
    }
    if let Some(dir) = &args.masks {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the masks folder {}", dir.display()))?;
        for image in &args.images {
            let parent = image.parent().filter(|p| !p.as_os_str().is_empty());
            if same_folder(parent.unwrap_or(Path::new(".")), dir) {
                bail!(
                    "--masks {} is the folder of {}: masks would overwrite or mix with the \
                     images; choose another folder",
                    dir.display(),
                    image.display()
                );
            }
        }
    }
    let mut csv = match &args.csv {
        Some(path) => {
            let mut w = csv::Writer::from_path(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            w.write_record(crate::engine::particles::CSV_HEADER)?;
            Some(w)
        }
        None => None,
    };
    let mut failed = 0;
    let stdout = std::io::stdout();
    for path in &args.images {
        let img = match load_image(path) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let pixel_size = pixel_size_for(path, img.width(), args.pixel_size_nm);
        let a = analyse(&img, &settings, pixel_size);
        if let Some(dir) = &args.masks {
            let stem = path.file_stem().unwrap_or(path.as_os_str());
            let out = dir.join(Path::new(stem).with_extension("png"));
            let labels = a.label_image().map_err(anyhow::Error::msg)?;
            labels
                .save(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        if let Some(w) = csv.as_mut() {
            let nm = a.pixel_size.as_ref().map(|p| p.nm);
            for p in &a.particles {
                w.write_record(crate::engine::particles::csv_row(
                    &path.display().to_string(),
                    p,
                    nm,
                ))?;
            }
        }
        let mut out = stdout.lock();
        if args.json {
            writeln!(out, "{}", analysis_json(path, &a))?;
        } else {
            let scale = a
                .pixel_size
                .as_ref()
                .map(|p| format!("{:.4} nm/px from {}", p.nm, p.source))
                .unwrap_or_else(|| "unknown scale: sizes in px (pass --pixel-size-nm)".into());
            writeln!(
                out,
                "{}: {} ({scale})",
                path.display(),
                a.summary().describe()
            )?;
        }
    }
    if let Some(mut w) = csv {
        w.flush()?;
    }
    if failed > 0 {
        eprintln!("{failed} of {} images could not be read", args.images.len());
        return Ok(1);
    }
    Ok(0)
}

pub fn particles_eval_command(args: &ParticlesEvalArgs) -> anyhow::Result<i32> {
    let settings = args.segment.settings()?;
    if args.emps.is_none() && args.demo.is_none() {
        bail!("give --emps DIR and/or --demo N");
    }
    let every = args.every.max(1);
    let mut collections = Vec::new();
    if let Some(dir) = &args.emps {
        let pairs = emps_pairs(dir).map_err(anyhow::Error::msg)?;
        let scores: Vec<ImageScore> = pairs
            .par_iter()
            .step_by(every)
            .map(|(image, segmap)| -> anyhow::Result<ImageScore> {
                let img = load_image(image)?;
                let (w, h, truth) = load_labels(segmap).map_err(anyhow::Error::msg)?;
                if (w, h) != (img.width(), img.height()) {
                    bail!("{}: segmap size differs from the image", segmap.display());
                }
                let a = analyse(&img, &settings, None);
                let s = score(&a.full_labels(), &truth);
                if args.per_image {
                    eprintln!(
                        "{}",
                        json!({"image": image.display().to_string(), "score": s})
                    );
                }
                Ok(s)
            })
            .collect::<anyhow::Result<_>>()?;
        collections.push(("emps", report(&scores)));
    }
    if let Some(n) = args.demo {
        let samples: Vec<_> = demo::samples(n).step_by(every).collect();
        let scores: Vec<ImageScore> = samples
            .par_iter()
            .map(|s| {
                let img = image::DynamicImage::ImageLuma8(s.image.clone());
                score(&analyse(&img, &settings, None).full_labels(), &s.truth)
            })
            .collect();
        collections.push(("demo", report(&scores)));
    }
    for (name, r) in collections {
        if args.json {
            println!(
                "{}",
                json!({"collection": name, "report": r, "settings": settings})
            );
        } else {
            println!(
                "{name}: {} images, F1@0.5 {:.3}, count error {:.3}, size error {:.3}, \
                 foreground IoU {:.3} (pooled {:.3})",
                r.images,
                r.f1_at_05,
                r.count_error,
                r.size_error,
                r.foreground_iou_median,
                r.foreground_iou_pooled
            );
        }
    }
    Ok(0)
}
