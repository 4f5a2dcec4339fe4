//! The one worker thread that owns the model and the open index. The UI sends [`Job`]s through
//! a bounded channel and receives [`Event`]s; after each event the worker asks for a repaint.
//! Long jobs report progress and stop when the shared cancel flag is set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;

use image::{DynamicImage, GrayImage, RgbaImage};

use crate::engine::descriptor::features::FeatureConfig;
use crate::engine::imaging::preprocess::load_image;
use crate::engine::library::files::default_index_path;
use crate::engine::library::index::{Hit, Index, Space, MAX_PCA_DIMS};
use crate::engine::library::indexer::{build_index, IndexJob, IndexReport};
use crate::engine::library::store::{Location, Store};
use crate::engine::sketch::edges::{contour_steps, ContourSettings, ContourSteps};
use crate::engine::sketch::{rasterise_strokes, working_gray, SketchConfig, Stroke};
use crate::engine::{Engine, Error};

pub use crate::app::thumbnails::{ThumbnailLoader, ThumbnailRequest, THUMB_SIZE};

/// A part of the query image, in 0..1 coordinates of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub min: [f32; 2],
    pub max: [f32; 2],
}

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

fn admits(allowed: &Allowed, entry: usize) -> bool {
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
    SearchImage {
        source: QuerySource,
        crop: Option<Crop>,
        k: usize,
        allowed: Allowed,
    },
    /// Search with the last query image again (new crop, k or allowed entries).
    Research {
        crop: Option<Crop>,
        k: usize,
        allowed: Allowed,
    },
    /// Search with canvas strokes.
    SearchSketch {
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
    QueryImage {
        label: String,
        image: RgbaImage,
    },
    Results {
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
    /// A job dropped because a newer one of its kind replaced it (previews).
    Superseded,
    Error(String),
}

/// Handle the UI keeps: send jobs, receive events, cancel long work, ask for thumbnails.
pub struct WorkerHandle {
    pub jobs: SyncSender<Job>,
    pub events: Receiver<Event>,
    pub cancel: Arc<AtomicBool>,
    pub thumbnails: ThumbnailLoader,
}

/// Starts the worker thread. `repaint` is called after every event.
pub fn spawn(
    weights: Option<PathBuf>,
    repaint: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<WorkerHandle> {
    let (job_tx, job_rx) = sync_channel::<Job>(64);
    let (event_tx, event_rx) = std::sync::mpsc::channel::<Event>();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let repaint: Arc<dyn Fn() + Send + Sync> = Arc::new(repaint);
    let thumbnails = ThumbnailLoader::spawn(event_tx.clone(), repaint.clone())?;
    std::thread::Builder::new()
        .name("morphosearch-worker".into())
        .spawn(move || {
            let mut w = Worker {
                engine: None,
                weights,
                index: None,
                index_job: None,
                query: None,
                events: event_tx,
                repaint,
                cancel: flag,
            };
            w.run(&job_rx);
        })?;
    Ok(WorkerHandle {
        jobs: job_tx,
        events: event_rx,
        cancel,
        thumbnails,
    })
}

struct Worker {
    engine: Option<Engine>,
    weights: Option<PathBuf>,
    index: Option<Arc<Index>>,
    index_job: Option<IndexJob>,
    query: Option<DynamicImage>,
    events: Sender<Event>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    cancel: Arc<AtomicBool>,
}

impl Worker {
    fn send(&self, e: Event) {
        // The UI is gone when this fails; the worker then ends with the channel.
        let _ = self.events.send(e);
        (self.repaint)();
    }

    fn run(&mut self, jobs: &Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            // Coalesce: of several queued previews only the newest is computed.
            let mut batch = vec![first];
            loop {
                match jobs.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let last_preview = batch.iter().rposition(|j| matches!(j, Job::Preview { .. }));
            for (i, job) in batch.into_iter().enumerate() {
                if matches!(job, Job::Preview { .. }) && Some(i) != last_preview {
                    // Every job ends in exactly one event: the UI counts them to know when
                    // the worker is idle.
                    self.send(Event::Superseded);
                    continue;
                }
                if let Err(e) = self.handle(job) {
                    match e {
                        Error::Cancelled => self.send(Event::Cancelled),
                        e => self.send(Event::Error(e.to_string())),
                    }
                }
            }
        }
    }

    fn engine(&mut self) -> Result<&Engine, Error> {
        if self.engine.is_none() {
            self.engine = Some(Engine::load(self.weights.as_deref(), "auto")?);
        }
        self.engine
            .as_ref()
            .ok_or_else(|| Error::Weights("model not loaded".into()))
    }

    fn index(&self) -> Result<Arc<Index>, Error> {
        self.index
            .clone()
            .ok_or_else(|| Error::Index("no database is open yet".into()))
    }

    fn handle(&mut self, job: Job) -> Result<(), Error> {
        match job {
            Job::Open {
                db_dir,
                table,
                index_path,
                sketch,
            } => {
                if let Location::Postgres(url) = Location::of(&db_dir) {
                    return self.open_server_library(&url, sketch);
                }
                let index_path = index_path.unwrap_or_else(|| default_index_path(&db_dir));
                let job = IndexJob {
                    pixel_size_column: None,
                    query_sizes: crate::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
                    db_dir,
                    table,
                    image_column: None,
                    index_path: index_path.clone(),
                    features: FeatureConfig::default(),
                    pca_dims: MAX_PCA_DIMS,
                    whiten: false,
                    sketch,
                };
                self.build(job)
            }
            Job::OpenDemo {
                dir,
                images,
                index_path,
                sketch,
            } => {
                self.send(Event::Progress {
                    done: 0,
                    total: images,
                    what: "Creating the demo library".into(),
                });
                crate::engine::library::demo::generate(&dir, images)?;
                let table = Some(dir.join("synthesis.csv"));
                self.handle(Job::Open {
                    db_dir: dir,
                    table,
                    index_path,
                    sketch,
                })
            }
            Job::ApplyContours(settings) => {
                let mut job = self
                    .index_job
                    .clone()
                    .ok_or_else(|| Error::Index("no database is open yet".into()))?;
                job.sketch.contours = settings;
                self.build(job)
            }
            Job::SearchImage {
                source,
                crop,
                k,
                allowed,
            } => {
                let (label, img) = match source {
                    QuerySource::File(p) => (p.display().to_string(), load_image(&p)?),
                    QuerySource::Bytes { label, bytes } => {
                        let img = crate::engine::imaging::preprocess::decode_bytes(&bytes, &label)?;
                        (label, img)
                    }
                    QuerySource::Rgba { label, image } => (label, DynamicImage::ImageRgba8(image)),
                    QuerySource::Entry(i) => {
                        let index = self.index()?;
                        let e = index
                            .entries
                            .get(i)
                            .ok_or_else(|| Error::Index("no such sample".into()))?;
                        (
                            e.path.clone(),
                            load_image(&crate::engine::library::database::resolve(
                                &index.db_dir,
                                &e.path,
                            ))?,
                        )
                    }
                };
                self.send(Event::QueryImage {
                    label,
                    image: img.thumbnail(768, 768).to_rgba8(),
                });
                self.query = Some(img);
                self.search_query(crop, k, &allowed)
            }
            Job::Research { crop, k, allowed } => self.search_query(crop, k, &allowed),
            Job::SearchSketch {
                strokes,
                k,
                allowed,
            } => {
                let index = self.index()?;
                let start = std::time::Instant::now();
                let drawing = rasterise_strokes(&strokes, &index.config.sketch)?;
                let admit = |i: usize| admits(&allowed, i);
                let (hits, views) = self
                    .engine()?
                    .search_drawing_with_views_where(&index, &drawing, k, &admit)?;
                self.send(Event::Results {
                    hits,
                    sketch: true,
                    elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
                    drawing: views,
                    query_map: None,
                });
                Ok(())
            }
            Job::Particles {
                target,
                pixel_size_nm,
            } => {
                use crate::engine::particles::{self, PixelSize};
                use crate::ui::particles::ParticleTarget;
                let typed = pixel_size_nm.and_then(|nm| PixelSize::new(nm, "typed"));
                let (img, label, scale) = match target {
                    ParticleTarget::Query => {
                        let img = self
                            .query
                            .clone()
                            .ok_or_else(|| Error::Index("search with an image first".into()))?;
                        (img, "the query image".to_string(), typed)
                    }
                    ParticleTarget::Entry(entry) => {
                        let index = self.index()?;
                        let e = index
                            .entries
                            .get(entry)
                            .ok_or_else(|| Error::Index("no such sample".into()))?;
                        let path =
                            crate::engine::library::database::resolve(&index.db_dir, &e.path);
                        let img = load_image(&path)?;
                        let scale = particles::scale::from_file(&path, img.width())
                            .or_else(|| e.particles.as_ref().and_then(|s| s.pixel_size.clone()))
                            .or(typed);
                        (img, e.path.clone(), scale)
                    }
                };
                let analysis = particles::analyse(&img, &particles::Settings::default(), scale);
                let overlay = particles::outline_overlay(&img, &analysis);
                self.send(Event::Particles {
                    target,
                    label,
                    analysis: Box::new(analysis),
                    overlay,
                });
                Ok(())
            }
            Job::Preview { entry, settings } => {
                let index = self.index()?;
                let e = index
                    .entries
                    .get(entry)
                    .ok_or_else(|| Error::Index("no such sample".into()))?;
                let img = load_image(&crate::engine::library::database::resolve(
                    &index.db_dir,
                    &e.path,
                ))?;
                let gray = working_gray(
                    &img,
                    384.min(img.width().max(img.height())),
                    e.data_bar_rows,
                );
                let steps = contour_steps(&gray, &settings)?;
                self.send(Event::Preview {
                    entry,
                    steps: Box::new(steps),
                });
                Ok(())
            }
        }
    }

    fn search_query(
        &mut self,
        crop: Option<Crop>,
        k: usize,
        allowed: &Allowed,
    ) -> Result<(), Error> {
        let index = self.index()?;
        let img = self
            .query
            .clone()
            .ok_or_else(|| Error::InvalidSetting("no query image yet".into()))?;
        let img = match crop {
            Some(c) => {
                let (w, h) = (img.width() as f32, img.height() as f32);
                let x0 = (c.min[0].clamp(0.0, 1.0) * w) as u32;
                let y0 = (c.min[1].clamp(0.0, 1.0) * h) as u32;
                let x1 = ((c.max[0].clamp(0.0, 1.0) * w) as u32)
                    .max(x0 + 1)
                    .min(img.width());
                let y1 = ((c.max[1].clamp(0.0, 1.0) * h) as u32)
                    .max(y0 + 1)
                    .min(img.height());
                img.crop_imm(
                    x0,
                    y0,
                    x1.saturating_sub(x0).max(1),
                    y1.saturating_sub(y0).max(1),
                )
            }
            None => img,
        };
        let start = std::time::Instant::now();
        let raw = self
            .engine()?
            .describe_image(&img, &index.config.features)?;
        let hits = index.search_where(&raw, Space::Image, k, &|i| admits(allowed, i));
        let query_map = index
            .image_space
            .projection
            .as_ref()
            .map(|p| p.map_2d(&raw));
        self.send(Event::Results {
            hits,
            sketch: false,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            drawing: Vec::new(),
            query_map,
        });
        Ok(())
    }

    /// A shared library on a PostgreSQL server, named by its URL in the database field: brought
    /// up to date from its image folder when that folder is reachable here, else opened as it
    /// is (searches work; Browse shows the stored thumbnails' samples).
    fn open_server_library(&mut self, url: &str, sketch: SketchConfig) -> Result<(), Error> {
        let start = std::time::Instant::now();
        let location = Location::Postgres(url.to_string());
        let settings = Store::open(&location, false)?.settings()?;
        let Some((config, db_dir)) = settings else {
            return Err(Error::Index(format!(
                "library {} holds no images yet: index a folder into it first \
                 (`morphosearch index FOLDER --index URL`)",
                location.display()
            )));
        };
        let index_path = PathBuf::from(url);
        if db_dir.is_dir() {
            let index = Index::load(&index_path)?;
            let job = IndexJob {
                pixel_size_column: None,
                query_sizes: config.query_sizes.clone(),
                db_dir,
                table: index.table_path.clone().filter(|t| t.is_file()),
                image_column: None,
                index_path,
                features: config.features,
                pca_dims: config.pca_dims,
                whiten: config.whiten,
                sketch: SketchConfig {
                    contours: sketch.contours,
                    ..config.sketch
                },
            };
            return self.build(job);
        }
        let index = Arc::new(Index::load(&index_path)?);
        self.index = Some(index.clone());
        self.index_job = None;
        self.send(Event::Opened {
            index,
            report: IndexReport {
                notes: vec![format!(
                    "the library's image folder {} is not reachable from here: searching the \
                     stored descriptors, no re-indexing",
                    db_dir.display()
                )],
                ..IndexReport::default()
            },
            index_path,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        });
        Ok(())
    }

    fn build(&mut self, job: IndexJob) -> Result<(), Error> {
        let start = std::time::Instant::now();
        self.cancel.store(false, Ordering::SeqCst);
        self.engine()?;
        let engine = self
            .engine
            .take()
            .ok_or_else(|| Error::Weights("model not loaded".into()))?;
        let events = self.events.clone();
        let result = build_index(
            &engine.vgg,
            &job,
            &mut |done, total| {
                let _ = events.send(Event::Progress {
                    done,
                    total,
                    what: format!("Indexing {}", job.db_dir.display()),
                });
                (self.repaint)();
            },
            &self.cancel,
        );
        self.engine = Some(engine);
        let (index, report) = result?;
        let index = Arc::new(index);
        self.index = Some(index.clone());
        self.index_job = Some(job.clone());
        self.send(Event::Opened {
            index,
            report,
            index_path: job.index_path,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        });
        Ok(())
    }
}
