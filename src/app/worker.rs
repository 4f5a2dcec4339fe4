//! The one worker thread that owns the model and the open index. The UI sends [`Job`]s through
//! a bounded channel and receives [`Event`]s; after each event the worker asks for a repaint.
//! Long jobs report progress and stop when the shared cancel flag is set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;

use image::DynamicImage;

use crate::engine::imaging::preprocess::load_image;
use crate::engine::library::index::{Index, Space};
use crate::engine::library::indexer::{build_index_with, IndexJob, IndexReport, Model};
use crate::engine::library::store::{Location, Store};
use crate::engine::model::vgg::{weights_file, Vgg16};
use crate::engine::sketch::edges::contour_steps;
use crate::engine::sketch::{rasterise_strokes, working_gray, SketchConfig};
use crate::engine::{Engine, Error};

pub use crate::app::thumbnails::{ThumbnailLoader, ThumbnailRequest, THUMB_SIZE};

use super::jobs::admits;
pub use super::jobs::{open_job, Allowed, Event, Job, QuerySource};
pub use crate::ui::Crop;

/// Handle the UI keeps: send jobs, receive events, cancel long work, ask for thumbnails.
pub struct WorkerHandle {
    jobs: SyncSender<Job>,
    pub events: Receiver<Event>,
    pub cancel: Arc<AtomicBool>,
    pub thumbnails: ThumbnailLoader,
    /// Jobs sent and not yet finished. The worker counts a job down when it ends, however it
    /// ends (done, failed, cancelled or dropped for a newer preview), so the count cannot
    /// drift and the app knows when it may stop repainting.
    pending: Arc<AtomicUsize>,
}

impl WorkerHandle {
    /// Queues `job`; false when the queue is full.
    pub fn send(&self, job: Job) -> bool {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let sent = self.jobs.try_send(job).is_ok();
        if !sent {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// Jobs queued or running.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
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
    let pending = Arc::new(AtomicUsize::new(0));
    let counter = pending.clone();
    std::thread::Builder::new()
        .name("morphosearch-worker".into())
        .spawn(move || {
            let mut w = Worker {
                engine: None,
                weights,
                index: None,
                index_job: None,
                query: None,
                query_hash: None,
                events: event_tx,
                repaint,
                cancel: flag,
            };
            w.run(&job_rx, &counter);
        })?;
    Ok(WorkerHandle {
        jobs: job_tx,
        events: event_rx,
        cancel,
        thumbnails,
        pending,
    })
}

struct Worker {
    engine: Option<Engine>,
    weights: Option<PathBuf>,
    index: Option<Arc<Index>>,
    index_job: Option<IndexJob>,
    query: Option<DynamicImage>,
    /// The query image's pixel hash (finds the library sample that is the query).
    query_hash: Option<String>,
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

    fn run(&mut self, jobs: &Receiver<Job>, pending: &AtomicUsize) {
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
                let superseded = matches!(job, Job::Preview { .. }) && Some(i) != last_preview;
                if !superseded {
                    let query = job.query();
                    if let Err(e) = self.handle(job) {
                        match e {
                            Error::Cancelled => self.send(Event::Cancelled),
                            e => self.send(Event::Error {
                                query,
                                message: e.to_string(),
                            }),
                        }
                    }
                }
                pending.fetch_sub(1, Ordering::SeqCst);
                (self.repaint)();
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
                match Location::of(&db_dir) {
                    Location::Postgres(url) => self.open_server_library(&url, sketch)?,
                    Location::Sqlite(_) => {
                        self.build(open_job(db_dir, table, index_path, sketch))?
                    }
                }
                self.preload();
                Ok(())
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
                query,
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
                self.query_hash = Some(crate::engine::imaging::preprocess::pixel_hash(&img));
                self.query = Some(img);
                self.search_query(query, crop, k, &allowed)
            }
            Job::Research {
                query,
                crop,
                k,
                allowed,
            } => self.search_query(query, crop, k, &allowed),
            Job::SearchSketch {
                query,
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
                    query,
                    query_entry: None,
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
        query: u64,
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
        let query_map = index.map_point_of(&raw);
        let query_entry = self
            .query_hash
            .as_ref()
            .and_then(|h| index.entries.iter().position(|e| &e.pixel_hash == h));
        self.send(Event::Results {
            query,
            query_entry,
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
    /// is (searches work; Browse and the results show the stored thumbnails).
    fn open_server_library(&mut self, url: &str, sketch: SketchConfig) -> Result<(), Error> {
        let start = std::time::Instant::now();
        let location = Location::Postgres(url.to_string());
        let mut store = Store::open(&location, false)?;
        let Some((config, db_dir)) = store.settings()? else {
            return Err(Error::Index(format!(
                "library {} holds no images yet: index a folder into it first \
                 (`morphosearch index FOLDER --index URL`)",
                location.display()
            )));
        };
        let index_path = PathBuf::from(url);
        if db_dir.is_dir() {
            let job = IndexJob {
                pixel_size_column: None,
                query_sizes: config.query_sizes.clone(),
                db_dir,
                table: store.table_path()?.filter(|t| t.is_file()),
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
        let index = Arc::new(Index::load_for_search(&index_path)?);
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

    /// Loads the model after a library opened from its store alone, so the first query does
    /// not wait for it; a failure is reported when a query needs the model.
    fn preload(&mut self) {
        if self.engine.is_none() {
            self.engine = Engine::load(self.weights.as_deref(), "auto").ok();
        }
    }

    fn build(&mut self, job: IndexJob) -> Result<(), Error> {
        let start = std::time::Instant::now();
        self.cancel.store(false, Ordering::SeqCst);
        let sha256 = match &self.engine {
            Some(e) => e.vgg.weights_sha256().to_string(),
            None => crate::engine::model::vgg::cached_file_sha256(&weights_file(
                self.weights.as_deref(),
            )?)?,
        };
        let mut model = LazyModel {
            engine: &mut self.engine,
            weights: self.weights.as_deref(),
            sha256,
        };
        let events = self.events.clone();
        let repaint = self.repaint.clone();
        let result = build_index_with(
            &mut model,
            &job,
            &mut |done, total| {
                let _ = events.send(Event::Progress {
                    done,
                    total,
                    what: format!("Indexing {}", job.db_dir.display()),
                });
                repaint();
            },
            &self.cancel,
        );
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

/// The worker's model for an indexing run: loaded into the worker's engine slot the first
/// time an image needs describing.
struct LazyModel<'a> {
    engine: &'a mut Option<Engine>,
    weights: Option<&'a std::path::Path>,
    sha256: String,
}

impl Model for LazyModel<'_> {
    fn weights_sha256(&self) -> &str {
        &self.sha256
    }

    fn vgg(&mut self) -> Result<&Vgg16, Error> {
        if self.engine.is_none() {
            *self.engine = Some(Engine::load(self.weights, "auto")?);
        }
        match self.engine.as_ref() {
            Some(e) if e.vgg.weights_sha256() == self.sha256 => Ok(&e.vgg),
            Some(_) => Err(Error::Weights(
                "the weights file changed while the library was being opened; open it again".into(),
            )),
            None => Err(Error::Weights("model not loaded".into())),
        }
    }
}
