//! Building and updating a library: scan the folder, read the table, queue new and changed
//! images in the store, claim and describe them a batch at a time (decoding on a helper thread
//! while the network runs; each batch's rows land in one transaction, so an interruption loses
//! at most one batch), then fit the projections over the whole library and write them.
//! Several indexers on one server library share the queue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, UNIX_EPOCH};

use crate::engine::descriptor::features::{describe, describe_taps, FeatureConfig, BATCH_SIZE};
use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::{load_image, pixel_hash, prepare, DataBar, Prepared};
use crate::engine::library::database::{absolute, read_table, resolve, scan_images, ParamValue};
use crate::engine::library::files::IndexLock;
use crate::engine::library::index::{
    DuplicatePair, Entry, Index, IndexConfig, DEFAULT_QUERY_SIZE_MARGIN,
    DEFAULT_RESCALE_SMALL_QUERIES, NEAR_DUPLICATE_THRESHOLD,
};
use crate::engine::library::store::{is_old_single_file, Location, Reuse, Store};
use crate::engine::model::vgg::Vgg16;
use crate::engine::particles::{self, Summary};
use crate::engine::sketch::{drawing_input, drawing_of_image, drawing_to_prepared, SketchConfig};
use image::GrayImage;

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
    /// Input sizes an image query is described at ([`IndexConfig::query_sizes`]).
    pub query_sizes: Vec<u32>,
}

impl IndexJob {
    /// The settings a library built by this job records, with the weights' checksum.
    pub fn config(&self, weights_sha256: &str) -> IndexConfig {
        IndexConfig {
            weights_sha256: weights_sha256.to_string(),
            features: self.features,
            pca_dims: self.pca_dims,
            whiten: self.whiten,
            sketch: self.sketch,
            query_sizes: self.query_sizes.clone(),
            query_size_margin: DEFAULT_QUERY_SIZE_MARGIN,
            rescale_small_queries: DEFAULT_RESCALE_SMALL_QUERIES,
        }
    }
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

/// A file's size and modification time (ns since the epoch): what tells the library that an
/// image is unchanged.
pub fn file_stamp(path: &Path) -> Result<(u64, u64)> {
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
    /// The contour drawing (dark lines on white).
    drawing: Option<GrayImage>,
    particles: Summary,
    data_bar_rows: u32,
    /// The stored image descriptor, when only the contours are redrawn.
    kept_raw: Vec<f32>,
    /// A small JPEG for Browse when the folder is not reachable.
    thumbnail: Vec<u8>,
}

/// Longest side of the thumbnails stored in the library.
const THUMBNAIL_SIDE: u32 = 160;

/// A JPEG thumbnail of `img` (empty if it cannot be encoded: the library then has none).
fn thumbnail_of(img: &image::DynamicImage) -> Vec<u8> {
    let small = img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    match small.write_to(&mut out, image::ImageFormat::Jpeg) {
        Ok(()) => out.into_inner(),
        Err(_) => Vec::new(),
    }
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
        data_bar_rows: prepared.data_bar_rows,
        image: need_image.then_some(prepared),
        drawing: Some(drawing),
        kept_raw: Vec::new(),
        thumbnail: thumbnail_of(&img),
    })
}

/// How much of what `store` holds can be kept under `config` for `db_dir`; notes why when
/// not everything. A library of another folder is refused.
pub fn reuse_of(
    store: &mut Store,
    config: &IndexConfig,
    db_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Reuse> {
    let shown = store.location().display();
    Ok(match store.settings()? {
        None => Reuse::All,
        Some((_, dir)) if dir != db_dir => {
            return Err(Error::Index(format!(
                "library {shown} belongs to another database ({}), not {}; pass another \
                 --index (or delete that library to rebuild it for this folder)",
                dir.display(),
                db_dir.display()
            )))
        }
        Some((old, _)) if old.weights_sha256 != config.weights_sha256 => {
            notes.push(format!(
                "library {shown} was built with other weights (sha256 {}…, now {}…); \
                 rebuilding it",
                &old.weights_sha256[..12.min(old.weights_sha256.len())],
                &config.weights_sha256[..12.min(config.weights_sha256.len())]
            ));
            Reuse::Nothing
        }
        Some((old, _)) if old.features != config.features => {
            notes.push(
                "feature settings changed (pooling, flips or preprocessing); describing every \
                 image again"
                    .into(),
            );
            Reuse::Nothing
        }
        Some((old, _)) if !old.sketch.same_descriptors(&config.sketch) => {
            notes.push("contour settings changed; redrawing every image's contours".into());
            Reuse::ImageOnly
        }
        Some(_) => Reuse::All,
    })
}

/// Opens the library for writing: a file is locked for this writer (and an index file of the
/// old single-file format is replaced, with a note); a server database is shared.
fn open_for_writing(index: &Path, notes: &mut Vec<String>) -> Result<(Store, Option<IndexLock>)> {
    let location = Location::of(index);
    let lock = match &location {
        Location::Sqlite(path) => {
            let lock = IndexLock::acquire(path)?;
            if is_old_single_file(path) {
                notes.push(format!(
                    "{} was an index in the old single-file format; rebuilding it as a library \
                     database",
                    path.display()
                ));
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
            Some(lock)
        }
        Location::Postgres(_) => None,
    };
    match Store::open(&location, true) {
        Ok(store) => Ok((store, lock)),
        // A library file SQLite cannot read (truncated, overwritten) is derived data: it is
        // kept aside, never deleted, and the library rebuilt.
        Err(e) if location.is_file() && is_damaged(&e) => {
            let Location::Sqlite(path) = &location else {
                return Err(e);
            };
            let aside = path.with_extension("damaged");
            std::fs::rename(path, &aside).map_err(|io| Error::io(path, io))?;
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_os_string();
                side.push(suffix);
                let _ = std::fs::remove_file(std::path::PathBuf::from(side));
            }
            notes.push(format!(
                "{e}; the damaged file is kept as {} and the library rebuilt",
                aside.display()
            ));
            Ok((Store::open(&location, true)?, lock))
        }
        Err(e) => Err(e),
    }
}

/// Whether an error opening a library file says the file itself is damaged (as opposed to a
/// newer schema or another program's database, which are refused).
fn is_damaged(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("malformed") || m.contains("not a database")
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
    build_index_with(&mut Loaded(vgg), job, progress, cancel)
}

/// The network an indexing run describes images with: loaded only when an image needs
/// describing, so opening an up-to-date library never waits for the weights.
pub trait Model {
    /// sha256 of the weights file (recorded in the library's settings).
    fn weights_sha256(&self) -> &str;
    fn vgg(&mut self) -> Result<&Vgg16>;
}

/// A network already in memory.
pub struct Loaded<'a>(pub &'a Vgg16);

impl Model for Loaded<'_> {
    fn weights_sha256(&self) -> &str {
        self.0.weights_sha256()
    }
    fn vgg(&mut self) -> Result<&Vgg16> {
        Ok(self.0)
    }
}

/// [`build_index`] with the network from `model`, asked for only when there is work for it.
/// A library with nothing new, changed or removed, whose settings, table and finished
/// projections are as stored, is read as it is (no refit, nothing written).
pub fn build_index_with(
    model: &mut dyn Model,
    job: &IndexJob,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<(Index, IndexReport)> {
    // A bad contour setting is one message before any work, not one per image.
    job.sketch.contours.validate()?;
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
    let config = job.config(model.weights_sha256());
    // One writer per file library; taking the lock also proves the location writable.
    let (mut store, _lock) = open_for_writing(&job.index_path, &mut report.notes)?;
    let stored_config = store.settings()?.map(|(c, _)| c);
    let reuse = reuse_of(&mut store, &config, &db_dir, &mut report.notes)?;
    let stamps: Vec<(String, u64, u64)> = images
        .iter()
        .filter_map(|rel| {
            let (size, mtime) = file_stamp(&resolve(&db_dir, rel)).ok()?;
            Some((rel.clone(), size, mtime))
        })
        .collect();
    let synced = store.sync(&config, &db_dir, &stamps, reuse)?;
    report.removed = synced.removed;
    report.reused = synced.unchanged;
    let row_of = |rel: &str| -> Vec<ParamValue> {
        table
            .as_ref()
            .and_then(|t| t.rows.get(rel).cloned())
            .unwrap_or_default()
    };

    let total = synced.pending;
    progress(0, total);
    let mut done = 0;
    let mut problems = Vec::new();
    let outcome: Result<()> = std::thread::scope(|scope| {
        // The decoder works on claimed images while the network describes the previous batch.
        // The receivers live inside the scope so that returning early drops them and
        // unblocks the decoder before the scope joins it.
        let (work_tx, work_rx) = sync_channel::<(String, bool)>(4 * BATCH_SIZE);
        let (tx, rx) = sync_channel::<(String, bool, Result<Decoded>)>(2 * BATCH_SIZE);
        let db_dir = &db_dir;
        let features = &job.features;
        let sketch = &job.sketch;
        std::thread::Builder::new()
            .name("morphosearch-decode".into())
            .spawn_scoped(scope, move || {
                for (rel, need_image) in work_rx {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = decode_one(db_dir, &rel, need_image, features, sketch);
                    if tx.send((rel, need_image, r)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("decode thread", e))?;
        let mut in_flight = 0usize;
        let mut claims_left = true;
        let mut batch: Vec<Decoded> = Vec::new();
        loop {
            // Keep two batches claimed ahead of the network.
            while claims_left && in_flight < 2 * BATCH_SIZE {
                let claimed = store.claim(BATCH_SIZE)?;
                if claimed.is_empty() {
                    claims_left = false;
                }
                for item in claimed {
                    in_flight += 1;
                    if work_tx.send(item).is_err() {
                        return Err(Error::Index("the decoder stopped".into()));
                    }
                }
            }
            let next = if in_flight > 0 { rx.recv().ok() } else { None };
            let end = next.is_none();
            if let Some((rel, need_image, r)) = next {
                in_flight -= 1;
                match r {
                    Ok(mut d) => {
                        if !need_image {
                            d.kept_raw = store.raw_of(&rel)?;
                        }
                        batch.push(d);
                    }
                    Err(e) => {
                        store.fail(&rel, &e.to_string())?;
                        problems.push(e.to_string());
                        done += 1;
                    }
                }
            }
            if batch.len() >= BATCH_SIZE || (end && !batch.is_empty()) {
                let described = describe_batch(model.vgg()?, &mut batch, features, sketch)?;
                let rows: Vec<(Entry, Vec<ParamValue>, Vec<u8>)> = described
                    .into_iter()
                    .map(|(e, thumb)| {
                        let params = row_of(&e.path);
                        (e, params, thumb)
                    })
                    .collect();
                // Each image's rows land together: a kill loses at most this batch.
                store.put(&rows)?;
                done += rows.len();
                batch.clear();
                progress(done, total);
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if end {
                // Another indexer may still hold claims: wait for it (its claims come back
                // to the queue if it dies), then finish together.
                if store.others_working()? {
                    std::thread::sleep(Duration::from_millis(300));
                    claims_left = true;
                    continue;
                }
                return Ok(());
            }
        }
    });
    report.described = done - problems.len();
    report.problems = problems.clone();
    outcome?;
    // Everything described, by this run or another: fit the projections over the whole
    // library and write the finished state in one transaction, unless nothing moved since
    // the last finished run. The first read leaves out the raw descriptors: an unchanged
    // library is used as it is read (the app's restart), and only a refit needs them.
    let (mut index, finished) = store.read_state_for_search()?;
    let table_path = job.table.as_ref().map(|t| absolute(t));
    let columns = table
        .as_ref()
        .map(|t| t.columns.clone())
        .unwrap_or_default();
    let params: Vec<Vec<ParamValue>> = index.entries.iter().map(|e| row_of(&e.path)).collect();
    if let Some(t) = &table {
        report.table_warnings = t.warnings.clone();
        report.rows_without_image = t.rows_without_image.clone();
    }
    let unchanged = finished
        && done == 0
        && synced.removed == 0
        && stored_config.as_ref() == Some(&config)
        && index.table_path == table_path
        && index.columns == columns
        && index.params == params;
    if !unchanged {
        index = store.read_unfitted()?;
        index.config = config.clone();
        index.table_path = table_path;
        index.columns = columns;
        index.params = params;
        if let Some(column) = &pixel_size_column {
            apply_pixel_size_column(&mut index, column);
        }
        index.refit();
        store.finish(&index)?;
    }
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

/// Describes a batch: the image descriptor where needed (else the stored one is kept), the
/// contour and edge-map descriptors always. Gives each entry with its thumbnail.
fn describe_batch(
    vgg: &Vgg16,
    batch: &mut [Decoded],
    features: &FeatureConfig,
    sketch: &SketchConfig,
) -> Result<Vec<(Entry, Vec<u8>)>> {
    let images: Vec<&Prepared> = batch.iter().filter_map(|d| d.image.as_ref()).collect();
    let mut image_raws = describe(vgg, &images, features)?.into_iter();
    let drawings: Vec<&GrayImage> = batch.iter().filter_map(|d| d.drawing.as_ref()).collect();
    let (sketch_raws, edge_raws) = describe_drawings(vgg, &drawings, sketch)?;
    let (mut sketch_raws, mut edge_raws) = (sketch_raws.into_iter(), edge_raws.into_iter());
    let mut out = Vec::with_capacity(batch.len());
    for d in batch.iter_mut() {
        let raw = if d.image.is_some() {
            image_raws.next().unwrap_or_default()
        } else {
            std::mem::take(&mut d.kept_raw)
        };
        let entry = Entry {
            path: d.rel.clone(),
            size_bytes: d.size_bytes,
            modified_ns: d.modified_ns,
            pixel_hash: d.pixel_hash.clone(),
            width: d.dims.0,
            height: d.dims.1,
            data_bar_rows: d.data_bar_rows,
            raw,
            sketch_raw: sketch_raws.next().unwrap_or_default(),
            edge_raw: edge_raws.next().unwrap_or_default(),
            particles: Some(d.particles.clone()),
        };
        out.push((entry, std::mem::take(&mut d.thumbnail)));
    }
    Ok(out)
}

/// Contour and edge-map descriptors, one of each per drawing.
type DrawingDescriptors = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// The contour and edge-map descriptors of database drawings: one forward pass of the lines
/// tapped at both layers, or with filled contour descriptors, a second pass of the
/// pseudo-micrographs for the contour one.
fn describe_drawings(
    vgg: &Vgg16,
    drawings: &[&GrayImage],
    sketch: &SketchConfig,
) -> Result<DrawingDescriptors> {
    if drawings.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let lines: Vec<Prepared> = drawings.iter().map(|d| drawing_to_prepared(d)).collect();
    let lines: Vec<&Prepared> = lines.iter().collect();
    let contour_tap = (sketch.layer, sketch.pooling);
    let edge_tap = (sketch.edge_layer, sketch.edge_pooling);
    if sketch.fill {
        let edge = describe_taps(vgg, &lines, &[edge_tap])?.remove(0);
        let filled: Vec<Prepared> = drawings.iter().map(|d| drawing_input(d, sketch)).collect();
        let filled: Vec<&Prepared> = filled.iter().collect();
        let contour = describe_taps(vgg, &filled, &[contour_tap])?.remove(0);
        Ok((contour, edge))
    } else {
        let mut both = describe_taps(vgg, &lines, &[contour_tap, edge_tap])?;
        let edge = both.remove(1);
        Ok((both.remove(0), edge))
    }
}
