//! Building and updating an index: scan the folder, read the table, describe new or changed
//! images (decoding on a helper thread while the network runs), keep unchanged ones, drop
//! deleted ones, save checkpoints atomically so an interruption loses at most a little work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::engine::descriptor::features::{describe, describe_pooled, FeatureConfig, BATCH_SIZE};
use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::{load_image, pixel_hash, prepare, DataBar, Prepared};
use crate::engine::library::database::{absolute, read_table, resolve, scan_images, ParamValue};
use crate::engine::library::files::IndexLock;
use crate::engine::library::index::{
    DuplicatePair, Entry, Index, IndexConfig, NEAR_DUPLICATE_THRESHOLD,
};
use crate::engine::model::vgg::Vgg16;
use crate::engine::particles::{self, Summary};
use crate::engine::sketch::{drawing_input, drawing_of_image, SketchConfig};

/// What to index and how.
#[derive(Debug, Clone)]
pub struct IndexJob {
    pub db_dir: PathBuf,
    pub table: Option<PathBuf>,
    pub image_column: Option<String>,
    pub index_path: PathBuf,
    pub features: FeatureConfig,
    pub pca_dims: usize,
    pub whiten: bool,
    pub sketch: SketchConfig,
    /// Table column giving the pixel size in nm of images whose files record none.
    pub pixel_size_column: Option<String>,
}

/// What indexing did and found.
#[derive(Debug, Clone, Default)]
pub struct IndexReport {
    pub images: usize,
    pub described: usize,
    pub reused: usize,
    pub removed: usize,
    /// Things the user should know (an old index rebuilt, settings changed...).
    pub notes: Vec<String>,
    /// Images that could not be read, with the reason.
    pub problems: Vec<String>,
    pub table_warnings: Vec<String>,
    pub rows_without_image: Vec<String>,
    pub images_without_row: Vec<String>,
    pub exact_duplicate_pairs: usize,
    pub near_duplicate_pairs: usize,
    /// The pairs themselves (identical first).
    pub duplicates: Vec<DuplicatePair>,
}

/// Save a checkpoint at most this often while describing.
/// Progress is saved after the first batch, then at least this often (and at most every ten
/// times the last save took, so that refitting a large index does not become the work).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

fn file_stamp(path: &Path) -> Result<(u64, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Ok((meta.len(), modified))
}

struct Decoded {
    rel: String,
    size_bytes: u64,
    modified_ns: u64,
    pixel_hash: String,
    dims: (u32, u32),
    image: Option<Prepared>,
    drawing: Option<Prepared>,
    particles: Summary,
}

fn decode_one(
    db_dir: &Path,
    rel: &str,
    need_image: bool,
    features: &FeatureConfig,
    sketch: &SketchConfig,
) -> Result<Decoded> {
    let path = resolve(db_dir, rel);
    let (size_bytes, modified_ns) = file_stamp(&path)?;
    let img = load_image(&path)?;
    let prepared = prepare(&img, &features.preprocess)?;
    let drawing = drawing_of_image(&img, sketch, prepared.data_bar_rows)?;
    let particles = particles::analyse(
        &img,
        &particles::Settings {
            data_bar: DataBar::Rows(prepared.data_bar_rows),
            ..particles::Settings::default()
        },
        particles::scale::from_file(&path, img.width()),
    )
    .summary();
    Ok(Decoded {
        particles,
        rel: rel.to_string(),
        size_bytes,
        modified_ns,
        pixel_hash: pixel_hash(&img),
        dims: prepared.original,
        image: need_image.then_some(prepared),
        drawing: Some(drawing_input(&drawing, sketch)),
    })
}

/// Loads the index at `path` when it fits `config` and `db_dir`; says why not otherwise.
pub fn load_reusable(
    path: &Path,
    config: &IndexConfig,
    db_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Option<Index>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(match Index::load(path) {
        Err(e) => {
            notes.push(format!("{e}; rebuilding it"));
            None
        }
        Ok(old) if old.db_dir != db_dir => {
            return Err(Error::Index(format!(
                "index {} belongs to another database ({}), not {}; pass another --index \
                 (or delete that file to rebuild it for this folder)",
                path.display(),
                old.db_dir.display(),
                db_dir.display()
            )))
        }
        Ok(old) if old.config.weights_sha256 != config.weights_sha256 => {
            notes.push(format!(
                "index {} was built with other weights (sha256 {}…, now {}…); rebuilding it",
                path.display(),
                &old.config.weights_sha256[..12.min(old.config.weights_sha256.len())],
                &config.weights_sha256[..12.min(config.weights_sha256.len())]
            ));
            None
        }
        Ok(old) if old.config.features != config.features => {
            notes.push("feature settings changed (pooling, flips or preprocessing); describing every image again".into());
            None
        }
        Ok(old) => {
            if !old.config.sketch.same_descriptors(&config.sketch) {
                notes.push("contour settings changed; redrawing every image's contours".into());
            }
            Some(old)
        }
    })
}

/// Builds or updates the index described by `job`, saving it to `job.index_path`.
///
/// `progress(done, total)` is called after each batch. When `cancel` is set the work done so
/// far is saved and `Error::Cancelled` returned; running again continues from there.
pub fn build_index(
    vgg: &Vgg16,
    job: &IndexJob,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<(Index, IndexReport)> {
    let db_dir = absolute(&job.db_dir);
    let mut report = IndexReport::default();
    let images = scan_images(&db_dir)?;
    report.images = images.len();
    let table = match &job.table {
        Some(t) => Some(read_table(t, &images, job.image_column.as_deref())?),
        None => None,
    };
    // An explicit column, else one named like "Pixel size (nm)".
    let pixel_size_column = job.pixel_size_column.clone().or_else(|| {
        table.as_ref().and_then(|t| {
            t.columns
                .iter()
                .find(|c| {
                    let c = c.to_lowercase();
                    c.starts_with("pixel size") && c.contains("nm")
                })
                .cloned()
        })
    });
    if let Some(column) = &job.pixel_size_column {
        let columns = table.as_ref().map(|t| t.columns.as_slice()).unwrap_or(&[]);
        if !columns.iter().any(|c| c == column) {
            return Err(Error::InvalidSetting(format!(
                "--pixel-size-column {column:?}: the table has no such column{}",
                if columns.is_empty() {
                    " (no table given: pass --table)".to_string()
                } else {
                    format!(" (it has: {})", columns.join(", "))
                }
            )));
        }
    }
    let config = IndexConfig {
        weights_sha256: vgg.weights_sha256().to_string(),
        features: job.features,
        pca_dims: job.pca_dims,
        whiten: job.whiten,
        sketch: job.sketch,
    };
    // One writer per index; taking the lock also proves the location writable before any work.
    let _lock = IndexLock::acquire(&job.index_path)?;
    let old = load_reusable(&job.index_path, &config, &db_dir, &mut report.notes)?;
    let sketch_same = old
        .as_ref()
        .is_some_and(|o| o.config.sketch.same_descriptors(&config.sketch));
    let mut reusable: HashMap<String, Entry> = HashMap::new();
    if let Some(old) = old {
        for e in old.entries {
            reusable.insert(e.path.clone(), e);
        }
    }

    let mut index = Index::new(config.clone(), db_dir.clone());
    index.table_path = job.table.as_ref().map(|t| absolute(t));
    if let Some(t) = &table {
        index.columns = t.columns.clone();
        report.table_warnings = t.warnings.clone();
        report.rows_without_image = t.rows_without_image.clone();
    }

    // Which images need work: (path, need the image descriptor too).
    let mut kept: HashMap<String, Entry> = HashMap::new();
    let mut todo: Vec<(String, bool)> = Vec::new();
    for rel in &images {
        let stamp = file_stamp(&resolve(&db_dir, rel)).ok();
        match reusable.remove(rel) {
            Some(e) if stamp == Some((e.size_bytes, e.modified_ns)) && sketch_same => {
                kept.insert(rel.clone(), e);
            }
            Some(mut e) if stamp == Some((e.size_bytes, e.modified_ns)) => {
                // Keep the image descriptor; the stale contour descriptor must not survive.
                e.sketch_raw.clear();
                todo.push((rel.clone(), false));
                kept.insert(rel.clone(), e);
            }
            _ => todo.push((rel.clone(), true)),
        }
    }
    report.removed = reusable.len();
    report.reused = images.len() - todo.len();

    let finish = |kept: &HashMap<String, Entry>, problems: &[String], index: &mut Index| {
        index.entries = images
            .iter()
            .filter_map(|r| kept.get(r).cloned())
            .filter(|e| !e.sketch_raw.is_empty())
            .collect();
        index.params = index
            .entries
            .iter()
            .map(|e| {
                table
                    .as_ref()
                    .and_then(|t| t.rows.get(&e.path).cloned())
                    .unwrap_or_default()
            })
            .collect::<Vec<Vec<ParamValue>>>();
        if let Some(column) = &pixel_size_column {
            apply_pixel_size_column(index, column);
        }
        index.problems = problems.to_vec();
        index.refit();
    };

    let total = todo.len();
    progress(0, total);
    let mut done = 0;
    let mut problems = Vec::new();
    let mut last_save = Instant::now();
    let mut last_save_took = Duration::ZERO;
    let mut first_save = true;
    let outcome: Result<()> = std::thread::scope(|scope| {
        // The receiver lives inside the scope so that returning early drops it and unblocks
        // the decoder before the scope joins it.
        let (tx, rx) = sync_channel::<(String, Result<Decoded>)>(2 * BATCH_SIZE);
        let todo = &todo;
        let db_dir = &db_dir;
        let features = &job.features;
        let sketch = &job.sketch;
        std::thread::Builder::new()
            .name("morphosearch-decode".into())
            .spawn_scoped(scope, move || {
                for (rel, need_image) in todo {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = decode_one(db_dir, rel, *need_image, features, sketch);
                    if tx.send((rel.clone(), r)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("decode thread", e))?;
        let mut batch: Vec<Decoded> = Vec::new();
        let mut received = 0;
        loop {
            let next = if received < total {
                rx.recv().ok()
            } else {
                None
            };
            let end = next.is_none();
            if let Some((rel, r)) = next {
                received += 1;
                match r {
                    Ok(d) => batch.push(d),
                    Err(e) => {
                        problems.push(e.to_string());
                        kept.remove(&rel);
                        done += 1;
                    }
                }
            }
            if batch.len() >= BATCH_SIZE || (end && !batch.is_empty()) {
                describe_batch(vgg, &mut batch, &mut kept, features, sketch)?;
                done += std::mem::take(&mut batch).len();
                progress(done, total);
                if first_save || last_save.elapsed() > CHECKPOINT_EVERY.max(10 * last_save_took) {
                    let t = Instant::now();
                    finish(&kept, &problems, &mut index);
                    index.pending = total - done;
                    index.save(&job.index_path)?;
                    last_save_took = t.elapsed();
                    last_save = Instant::now();
                    first_save = false;
                }
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if end {
                return Ok(());
            }
        }
    });
    report.described = done - problems.len();
    report.problems = problems.clone();
    finish(&kept, &problems, &mut index);
    index.pending = if outcome.is_ok() { 0 } else { total - done };
    index.save(&job.index_path)?;
    outcome?;
    if let Some(t) = &table {
        report.images_without_row = index
            .entries
            .iter()
            .filter(|e| !t.rows.contains_key(&e.path))
            .map(|e| e.path.clone())
            .collect();
    }
    let dups = index.duplicates(NEAR_DUPLICATE_THRESHOLD);
    report.exact_duplicate_pairs = dups.iter().filter(|d| d.exact).count();
    report.near_duplicate_pairs = dups.len() - report.exact_duplicate_pairs;
    report.duplicates = dups;
    Ok((index, report))
}

/// Gives images whose files record no pixel size the one in `column` (nm) of their row.
fn apply_pixel_size_column(index: &mut Index, column: &str) {
    let Some(c) = index.columns.iter().position(|h| h == column) else {
        return;
    };
    for (entry, row) in index.entries.iter_mut().zip(&index.params) {
        let Some(summary) = entry.particles.as_mut() else {
            continue;
        };
        if summary.pixel_size.is_none() {
            summary.pixel_size = row
                .get(c)
                .and_then(|v| v.number)
                .and_then(|nm| particles::PixelSize::new(nm, format!("table column {column:?}")));
        }
    }
}

fn describe_batch(
    vgg: &Vgg16,
    batch: &mut [Decoded],
    kept: &mut HashMap<String, Entry>,
    features: &FeatureConfig,
    sketch: &SketchConfig,
) -> Result<()> {
    let images: Vec<&Prepared> = batch.iter().filter_map(|d| d.image.as_ref()).collect();
    let mut image_raws = describe(vgg, &images, features)?.into_iter();
    let drawings: Vec<&Prepared> = batch.iter().filter_map(|d| d.drawing.as_ref()).collect();
    let mut sketch_raws = if drawings.is_empty() {
        Vec::new().into_iter()
    } else {
        describe_pooled(vgg, &drawings, &[sketch.pooling], sketch.layer)?
            .remove(0)
            .into_iter()
    };
    for d in batch.iter() {
        let raw = if d.image.is_some() {
            image_raws.next().unwrap_or_default()
        } else {
            kept.get(&d.rel).map(|e| e.raw.clone()).unwrap_or_default()
        };
        let entry = Entry {
            path: d.rel.clone(),
            size_bytes: d.size_bytes,
            modified_ns: d.modified_ns,
            pixel_hash: d.pixel_hash.clone(),
            width: d.dims.0,
            height: d.dims.1,
            data_bar_rows: d.image.as_ref().map_or_else(
                || kept.get(&d.rel).map_or(0, |e| e.data_bar_rows),
                |p| p.data_bar_rows,
            ),
            raw,
            sketch_raw: sketch_raws.next().unwrap_or_default(),
            particles: Some(d.particles.clone()),
        };
        kept.insert(d.rel.clone(), entry);
    }
    Ok(())
}
