//! What the app and its worker say to each other: the jobs sent to the worker, the events it
//! sends back, and how the app indexes a folder it opens.

use std::path::PathBuf;
use std::sync::Arc;

use image::{GrayImage, RgbaImage};

use crate::engine::descriptor::features::FeatureConfig;
use crate::engine::library::files::default_index_path;
use crate::engine::library::index::{Hit, Index, MAX_PCA_DIMS};
use crate::engine::library::indexer::{IndexJob, IndexReport};
use crate::engine::sketch::edges::{ContourSettings, ContourSteps};
use crate::engine::sketch::{SketchConfig, Stroke};
use crate::ui::Crop;

/// Where a query image comes from.
#[derive(Debug, Clone)]
pub enum QuerySource {
    File(PathBuf),
    Bytes { label: String, bytes: Vec<u8> },
    Rgba { label: String, image: RgbaImage },
    Entry(usize),
}

/// The entries a search may return (`allowed[i]`), or all of them.
pub type Allowed = Option<Arc<Vec<bool>>>;

pub(super) fn admits(allowed: &Allowed, entry: usize) -> bool {
    allowed
        .as_ref()
        .is_none_or(|a| a.get(entry).copied().unwrap_or(false))
}

/// Work for the worker.
#[derive(Debug, Clone)]
pub enum Job {
    /// Open (indexing what is new) a database folder with an optional table.
    Open {
        db_dir: PathBuf,
        table: Option<PathBuf>,
        index_path: Option<PathBuf>,
        sketch: SketchConfig,
    },
    /// Generate the built-in demo library (first start) into `dir`, then open it.
    OpenDemo {
        dir: PathBuf,
        images: usize,
        index_path: Option<PathBuf>,
        sketch: SketchConfig,
    },
    /// Search with an image; `crop` limits it to a region, `allowed` to some entries.
    /// `query` numbers the query: its results and errors carry it.
    SearchImage {
        query: u64,
        source: QuerySource,
        crop: Option<Crop>,
        k: usize,
        allowed: Allowed,
    },
    /// Search with the last query image again (new crop, k or allowed entries).
    Research {
        query: u64,
        crop: Option<Crop>,
        k: usize,
        allowed: Allowed,
    },
    /// Search with canvas strokes.
    SearchSketch {
        query: u64,
        strokes: Vec<Stroke>,
        k: usize,
        allowed: Allowed,
    },
    /// The contour pipeline's four steps for one entry (latest request wins).
    Preview {
        entry: usize,
        settings: ContourSettings,
    },
    /// Rebuild the sketch descriptors with new contour settings.
    ApplyContours(ContourSettings),
    /// Find and measure the particles of the query or a database image; `pixel_size_nm` is
    /// used when neither the file nor the table gives the scale.
    Particles {
        target: crate::ui::particles::ParticleTarget,
        pixel_size_nm: Option<f64>,
    },
}

impl Job {
    /// The number of the query this job answers, if it is a search.
    pub fn query(&self) -> Option<u64> {
        match self {
            Job::SearchImage { query, .. }
            | Job::Research { query, .. }
            | Job::SearchSketch { query, .. } => Some(*query),
            _ => None,
        }
    }
}

/// What the worker reports back.
#[derive(Debug)]
pub enum Event {
    Progress {
        done: usize,
        total: usize,
        what: String,
    },
    Opened {
        index: Arc<Index>,
        report: IndexReport,
        index_path: PathBuf,
        /// Time from the open request to a usable index (model load included).
        elapsed_ms: f64,
    },
    /// The image a query loaded (the worker keeps it for region searches).
    QueryImage {
        label: String,
        image: RgbaImage,
    },
    Results {
        query: u64,
        /// The library sample the query image is (same pixels), if any.
        query_entry: Option<usize>,
        hits: Vec<Hit>,
        sketch: bool,
        elapsed_ms: f64,
        /// For a sketch query, what the network looked at (`Engine::search_drawing_with_views`).
        drawing: Vec<GrayImage>,
        query_map: Option<[f32; 2]>,
    },
    /// A thumbnail from the loader thread, or why it could not be made. `generation` is the
    /// one of its request: results for an index that is no longer open are ignored.
    Thumbnail {
        generation: u64,
        entry: usize,
        image: Result<RgbaImage, String>,
    },
    Preview {
        entry: usize,
        steps: Box<ContourSteps>,
    },
    Particles {
        target: crate::ui::particles::ParticleTarget,
        label: String,
        analysis: Box<crate::engine::particles::Analysis>,
        overlay: RgbaImage,
    },
    Cancelled,
    /// A job failed; `query` when it was a search.
    Error {
        query: Option<u64>,
        message: String,
    },
}

/// How the app indexes a folder it opens: the default settings, the library in the cache
/// folder unless `index_path` names one.
pub fn open_job(
    db_dir: PathBuf,
    table: Option<PathBuf>,
    index_path: Option<PathBuf>,
    sketch: SketchConfig,
) -> IndexJob {
    IndexJob {
        pixel_size_column: None,
        query_sizes: crate::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
        index_path: index_path.unwrap_or_else(|| default_index_path(&db_dir)),
        db_dir,
        table,
        image_column: None,
        features: FeatureConfig::default(),
        pca_dims: MAX_PCA_DIMS,
        whiten: false,
        sketch,
    }
}
