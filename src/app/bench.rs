//! `morphosearch bench`: speed and memory figures of every stage, medians of several runs after
//! a warm-up, with the machine's core count and the threads used.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde_json::{json, Map, Value};

use crate::app::worker::THUMB_SIZE;
use crate::engine::descriptor::features::FeatureConfig;
use crate::engine::descriptor::pooling::{l2_normalise, pool, Pooling};
use crate::engine::imaging::preprocess::{load_image, prepare, Preprocess};
use crate::engine::library::demo::{render, Rng};
use crate::engine::library::index::{top_k, Entry, Index, IndexConfig, MAX_PCA_DIMS};
use crate::engine::sketch::{rasterise_strokes, SketchConfig, Stroke};
use crate::engine::Engine;
use crate::ui::browser::{headless_context, headless_frame, BrowseState};
use crate::ui::{Thumbnails, THUMBNAIL_CAPACITY};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `f` once to warm up, then `runs` times; median seconds.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn unit_vectors(n: usize, dims: usize, rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dims).map(|_| rng.normal()).collect();
    for row in v.chunks_mut(dims) {
        l2_normalise(row);
    }
    v
}

/// A synthetic index of `n` images with random raw descriptors (no network needed).
fn synthetic_index(n: usize, weights_sha256: &str, db_dir: &Path, rng: &mut Rng) -> Index {
    let config = IndexConfig {
        weights_sha256: weights_sha256.to_string(),
        features: FeatureConfig::default(),
        pca_dims: MAX_PCA_DIMS,
        whiten: false,
        sketch: SketchConfig::default(),
        query_sizes: Vec::new(),
        query_size_margin: 0.0,
        rescale_small_queries: true,
    };
    // As wide as the default descriptors: 512 channels per pooling (max + GeM: two) per
    // pooled layer (conv5_3 and conv4_3).
    let per_layer = match config.features.pooling {
        crate::engine::descriptor::pooling::Pooling::MaxGem => 1024,
        _ => 512,
    };
    let wide = per_layer * config.features.layers.weighted().len();
    let mut index = Index::new(config, db_dir.to_path_buf());
    let raws = unit_vectors(n, wide, rng);
    let sketches = unit_vectors(n, 512, rng);
    let edges = unit_vectors(n, 512, rng);
    for i in 0..n {
        index.entries.push(Entry {
            path: format!("img{i:05}.png"),
            size_bytes: 1,
            modified_ns: 1,
            pixel_hash: format!("{i}"),
            width: 224,
            height: 224,
            data_bar_rows: 0,
            raw: raws[i * wide..(i + 1) * wide].to_vec(),
            sketch_raw: sketches[i * 512..(i + 1) * 512].to_vec(),
            edge_raw: edges[i * 512..(i + 1) * 512].to_vec(),
            particles: None,
        });
        index.params.push(Vec::new());
    }
    index.refit();
    index
}

/// Gives every entry a synthesis record of `columns` parameters, numbers and words, as a
/// chemist's table would.
fn with_table(index: &mut Index, columns: usize, rng: &mut Rng) {
    use crate::engine::library::database::ParamValue;
    index.columns = (0..columns).map(|c| format!("param_{c}")).collect();
    let words = ["PSS", "PAA", "none", "CTAB", "water", "ethanol"];
    for params in &mut index.params {
        *params = (0..columns)
            .map(|c| {
                let x = rng.next_f32();
                if c % 3 == 0 {
                    let w = words[(x * words.len() as f32) as usize % words.len()];
                    ParamValue {
                        text: w.to_string(),
                        number: None,
                        unit: None,
                    }
                } else {
                    ParamValue {
                        text: format!("{:.3}", x * 100.0),
                        number: Some(f64::from(x) * 100.0),
                        unit: None,
                    }
                }
            })
            .collect();
    }
}

/// What [`browse_frames`] measured.
struct BrowseFigures {
    median_ms: f64,
    longest_ms: f64,
    frames: usize,
    uploaded: usize,
    most_held: usize,
}

/// The UI thread's work for the Browse view over `index` in a 1400x900 window: egui layout and
/// tessellation (the GPU's drawing is not included), scrolling from top to bottom 700 points a
/// frame with each thumbnail uploaded (160 px texture) the frame after it first shows, as the
/// loader thread delivers them. Every frame is timed; the first (fonts, layout caches) is not
/// counted.
fn browse_frames(index: &Index) -> BrowseFigures {
    let ctx = headless_context();
    let side = THUMB_SIZE as usize;
    let tile = egui::ColorImage::new([side, side], vec![egui::Color32::GRAY; side * side]);
    let mut browse = BrowseState::default();
    let mut thumbs = Thumbnails::new(THUMBNAIL_CAPACITY);
    let mut missing: Vec<usize> = Vec::new();
    let mut times = Vec::new();
    let (mut uploaded, mut most_held) = (0, 0);
    let size = egui::vec2(1400.0, 900.0);
    // 10,000 tiles 11 to a row are 910 rows of 140 points: 182 frames of 700 points.
    let frames = index.len().div_ceil(11) * 140 / 700 + 20;
    for frame in 0..=frames {
        let start = Instant::now();
        for e in missing.drain(..) {
            if !thumbs.contains(e) {
                let t = ctx.load_texture(format!("t{e}"), tile.clone(), Default::default());
                thumbs.insert(e, t);
                uploaded += 1;
            }
        }
        let scroll = if frame > 0 { 700.0 } else { 0.0 };
        let output = headless_frame(
            &ctx,
            &mut browse,
            index,
            &thumbs,
            &mut missing,
            size,
            scroll,
        );
        std::hint::black_box(ctx.tessellate(output.shapes, output.pixels_per_point));
        thumbs.end_frame();
        most_held = most_held.max(thumbs.len());
        if frame > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let longest_ms = times.iter().copied().fold(0.0, f64::max);
    BrowseFigures {
        frames: times.len(),
        median_ms: median(times),
        longest_ms,
        uploaded,
        most_held,
    }
}

/// All figures, as (key, value, unit, description).
pub fn run(
    engine_load: impl FnOnce() -> anyhow::Result<Engine>,
    images: Option<&Path>,
    runs: usize,
    postgres: Option<&str>,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    out.insert("cores".into(), json!(cores));
    out.insert("threads".into(), json!(rayon::current_num_threads()));
    // Which convolution code runs (MORPHOSEARCH_PORTABLE=1 forces the portable one).
    let code = if crate::engine::model::gemm512::available() {
        "avx512"
    } else {
        "portable"
    };
    out.insert("conv_code".into(), json!(code));
    let t = Instant::now();
    let engine = engine_load()?;
    out.insert(
        "model_load_ms".into(),
        json!(t.elapsed().as_secs_f64() * 1e3),
    );

    let tmp = tempfile::tempdir()?;
    let sample: PathBuf = match images.and_then(|d| {
        crate::engine::library::database::scan_images(d)
            .ok()
            .and_then(|v| v.first().map(|p| d.join(p)))
    }) {
        Some(p) => p,
        None => {
            let p = tmp.path().join("sample.png");
            render(&mut Rng::new(7), &[0]).save(&p)?;
            p
        }
    };
    out.insert("sample_image".into(), json!(sample.display().to_string()));
    let pre = Preprocess::default();
    let decode = time(runs, || {
        load_image(&sample).and_then(|img| prepare(&img, &pre))
    });
    out.insert("decode_preprocess_ms".into(), json!(decode * 1e3));
    let prepared = prepare(&load_image(&sample)?, &pre)?;

    let vgg = &engine.vgg;
    let input = |n: usize| -> anyhow::Result<Tensor> {
        let mut planes = Vec::new();
        for _ in 0..n {
            planes.extend_from_slice(&prepared.chw);
        }
        Ok(vgg.normalise(&Tensor::from_vec(planes, (n, 3, 224, 224), vgg.device())?)?)
    };
    let x1 = input(1)?;
    let b1 = time(runs, || vgg.conv5(&x1));
    out.insert("vgg_images_per_s".into(), json!(1.0 / b1));
    out.insert("vgg_ms_per_image".into(), json!(b1 * 1e3));
    let mut best = (1usize, 1.0 / b1);
    for bs in [2usize, 4, 8] {
        let x = input(bs)?;
        let t = time(runs.min(3), || vgg.conv5(&x));
        if bs as f64 / t > best.1 {
            best = (bs, bs as f64 / t);
        }
    }
    out.insert("vgg_best_batch".into(), json!(best.0));
    out.insert("vgg_best_batch_images_per_s".into(), json!(best.1));
    let reference = time(runs.min(3), || vgg.conv5_reference(&x1));
    out.insert(
        "vgg_candle_conv2d_images_per_s".into(),
        json!(1.0 / reference),
    );

    let conv5 = vgg.conv5(&x1)?;
    let flat: Vec<f32> = conv5.flatten_all()?.to_vec1()?;
    let mut rng = Rng::new(42);
    let db = tmp.path().join("db");
    std::fs::create_dir_all(&db)?;
    let index_1k = synthetic_index(1000, vgg.weights_sha256(), &db, &mut rng);
    let pool_project = time(runs * 10, || {
        let mut v = pool(&flat, 512, 14, 14, Pooling::Gem);
        l2_normalise(&mut v);
        index_1k.image_space.project(&v)
    });
    out.insert("pool_project_ms".into(), json!(pool_project * 1e3));

    for n in [1_000usize, 10_000, 100_000] {
        let vectors = unit_vectors(n, 200, &mut rng);
        let q = unit_vectors(1, 200, &mut rng);
        let t = time(runs * 4, || top_k(&vectors, 200, &q, 10, &|_| false));
        out.insert(format!("search_{}k_ms", n / 1000), json!(t * 1e3));
    }

    let query = time(runs, || -> anyhow::Result<usize> {
        let img = load_image(&sample)?;
        Ok(engine.search_image(&index_1k, &img, 10)?.len())
    });
    out.insert("query_ms".into(), json!(query * 1e3));
    let mosaic = demo_mosaic(4, 3);
    let settings = crate::engine::particles::Settings::default();
    let particles = time(runs, || {
        crate::engine::particles::analyse(&mosaic, &settings, None)
            .particles
            .len()
    });
    out.insert("particles_1024x768_ms".into(), json!(particles * 1e3));
    out.insert(
        "particles_1024x768_count".into(),
        json!(crate::engine::particles::analyse(&mosaic, &settings, None)
            .particles
            .len()),
    );
    let strokes: Vec<Stroke> = (0..6)
        .map(|i| {
            let (cx, cy) = (0.2 + 0.12 * i as f32, 0.3 + 0.08 * (i % 3) as f32);
            Stroke {
                points: (0..=24)
                    .map(|k| {
                        let a = k as f32 / 24.0 * std::f32::consts::TAU;
                        [cx + 0.07 * a.cos(), cy + 0.07 * a.sin()]
                    })
                    .collect(),
            }
        })
        .collect();
    let sketch = time(runs, || -> anyhow::Result<usize> {
        let drawing = rasterise_strokes(&strokes, &index_1k.config.sketch)?;
        Ok(engine.search_drawing(&index_1k, &drawing, 10)?.len())
    });
    out.insert("sketch_query_ms".into(), json!(sketch * 1e3));

    let mut index_10k = synthetic_index(10_000, vgg.weights_sha256(), &db, &mut rng);
    with_table(&mut index_10k, 12, &mut rng);
    let browse = browse_frames(&index_10k);
    out.insert("browse_10k_frame_ms".into(), json!(browse.median_ms));
    out.insert(
        "browse_10k_longest_frame_ms".into(),
        json!(browse.longest_ms),
    );
    out.insert("browse_10k_frames".into(), json!(browse.frames));
    out.insert("browse_10k_tiles_uploaded".into(), json!(browse.uploaded));
    out.insert(
        "browse_10k_most_thumbnails_held".into(),
        json!(browse.most_held),
    );
    let path_10k = tmp.path().join("10k.db");
    index_10k.save(&path_10k)?;
    // What the app does on opening a library file (no raw descriptors), and the whole read
    // that refitting and `eval` need.
    let load = time(runs, || Index::load_for_search(&path_10k));
    out.insert("library_load_10k_sqlite_ms".into(), json!(load * 1e3));
    let whole = time(runs, || Index::load(&path_10k));
    out.insert(
        "library_read_whole_10k_sqlite_ms".into(),
        json!(whole * 1e3),
    );
    out.insert(
        "library_10k_sqlite_file_mb".into(),
        json!(std::fs::metadata(&path_10k)?.len() as f64 / 1048576.0),
    );
    if let Some(url) = postgres {
        // The library replaces whatever that database held: give bench a scratch database.
        let url = Path::new(url);
        index_10k.save(url)?;
        let load = time(runs, || Index::load_for_search(url));
        out.insert("library_load_10k_postgres_ms".into(), json!(load * 1e3));
    }
    drop(index_10k);
    let restart = app_restart_1k(tmp.path(), runs, &mut rng)?;
    out.insert("app_restart_1k_ready_ms".into(), json!(restart * 1e3));
    if let Some(rss) = peak_rss_mb() {
        out.insert("peak_rss_mb".into(), json!(rss));
    }
    Ok(out)
}

/// Seconds from creating the app to a searchable library, on an already indexed library of
/// 1,000 images (median of `runs` starts after one that settles it): a fresh app each time,
/// with its own worker, which syncs the folder and reads the library as after a restart.
/// The descriptors are synthetic and the files tiny: what is timed is the app's start, not
/// the network.
fn app_restart_1k(dir: &Path, runs: usize, rng: &mut Rng) -> anyhow::Result<f64> {
    use crate::app::{AppOptions, MorphoApp, Settings};
    let db = dir.join("restart-1k");
    std::fs::create_dir_all(&db)?;
    let settings = Settings::default();
    let library = dir.join("restart-1k.db");
    let sketch = SketchConfig {
        contours: settings.contours,
        ..SketchConfig::default()
    };
    let job = crate::app::worker::open_job(db.clone(), None, Some(library.clone()), sketch);
    let weights = crate::engine::model::vgg::find_default_weights()?;
    let sha = crate::engine::model::vgg::cached_file_sha256(&weights)?;
    let mut index = synthetic_index(1000, &sha, &db, rng);
    index.config = job.config(&sha);
    let tile =
        image::GrayImage::from_fn(32, 32, |x, y| image::Luma([((x * 7 + y * 3) % 251) as u8]));
    for e in &mut index.entries {
        let path = db.join(&e.path);
        tile.save(&path)?;
        (e.size_bytes, e.modified_ns) = crate::engine::library::indexer::file_stamp(&path)?;
    }
    index.refit();
    index.save(&library)?;
    let start_once = || -> anyhow::Result<f64> {
        let ctx = egui::Context::default();
        let options = AppOptions {
            database: Some(db.clone()),
            weights: Some(weights.clone()),
            demo_dir: dir.join("no-demo"),
            demo_images: 0,
            index_file: Some(library.clone()),
        };
        let t = Instant::now();
        let mut app = MorphoApp::new(&ctx, settings.clone(), options)?;
        while app.index.is_none() {
            anyhow::ensure!(
                t.elapsed().as_secs() < 600,
                "the app did not open the 1k library: {}",
                app.status
            );
            app.poll_worker(&ctx);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let ready = t.elapsed().as_secs_f64();
        let described = app.report.as_ref().map_or(0, |r| r.described);
        anyhow::ensure!(
            described == 0,
            "the restart described {described} images again"
        );
        // Untimed: the model loads after the library is ready; let it finish before the next.
        while app.busy() > 0 {
            app.poll_worker(&ctx);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(ready)
    };
    start_once()?;
    let times = (0..runs.max(1))
        .map(|_| start_once())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(median(times))
}

/// A micrograph of `cols x rows` demo renderings side by side (4 x 3 = 1024 x 768 px).
pub fn demo_mosaic(cols: u32, rows: u32) -> image::DynamicImage {
    let size = crate::engine::library::demo::DEMO_SIZE;
    let mut out = image::GrayImage::new(cols * size, rows * size);
    let mut rng = Rng::new(11);
    for r in 0..rows {
        for c in 0..cols {
            let tile = render(&mut rng, &[((r * cols + c) % 3) as usize]);
            image::imageops::replace(&mut out, &tile, (c * size) as i64, (r * size) as i64);
        }
    }
    image::DynamicImage::ImageLuma8(out)
}

/// Indexes `n` generated demo images into a temporary folder: images/s and peak memory.
pub fn indexing(engine: &Engine, n: usize) -> anyhow::Result<Map<String, Value>> {
    let tmp = tempfile::tempdir()?;
    let db = tmp.path().join("db");
    crate::engine::library::demo::generate(&db, n)?;
    let job = crate::engine::library::indexer::IndexJob {
        pixel_size_column: None,
        query_sizes: crate::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
        db_dir: db,
        table: None,
        image_column: None,
        index_path: tmp.path().join("i.msidx"),
        features: FeatureConfig::default(),
        pca_dims: MAX_PCA_DIMS,
        whiten: false,
        sketch: SketchConfig::default(),
    };
    let before = peak_rss_mb();
    let t = Instant::now();
    let (index, _) = crate::engine::library::indexer::build_index(
        &engine.vgg,
        &job,
        &mut |_, _| {},
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let mut out = Map::new();
    out.insert("indexing_images".into(), json!(index.len()));
    out.insert(
        "indexing_images_per_s".into(),
        json!(index.len() as f64 / secs),
    );
    if let (Some(b), Some(a)) = (before, peak_rss_mb()) {
        out.insert("indexing_peak_rss_mb_before".into(), json!(b));
        out.insert("indexing_peak_rss_mb".into(), json!(a));
    }
    Ok(out)
}
