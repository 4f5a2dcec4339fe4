//! The desktop app: joins the engine (through the worker thread) and the ui panels.
//! Data flow: UI -> Action -> Job -> (worker) -> Event -> state. Panels return actions;
//! `apply` is the one place they take effect. The UI thread never runs the model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::edges::ContourSettings;
use crate::engine::index::{cache_dir, Hit, Index, Space};
use crate::engine::indexer::IndexReport;
use crate::engine::sketch::SketchConfig;
use crate::ui::browser::BrowseState;
use crate::ui::canvas::CanvasState;
use crate::ui::map::MapState;
use crate::ui::{gray_texture, preview, results, texture, Action, Thumbnails, THUMBNAIL_CAPACITY};
use crate::worker::{spawn, Crop, Event, Job, QuerySource, ThumbnailRequest, WorkerHandle};

/// Number of images in the built-in demo library.
pub const DEMO_IMAGES: usize = 96;
/// Wait after the last stroke before searching.
const SKETCH_DEBOUNCE: Duration = Duration::from_millis(250);
const SETTINGS_KEY: &str = "morphosearch-settings";

/// What persists between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub last_db: Option<PathBuf>,
    pub last_table: Option<PathBuf>,
    pub top_k: usize,
    pub contours: ContourSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            last_db: None,
            last_table: None,
            top_k: 10,
            contours: ContourSettings::default(),
        }
    }
}

/// The main view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Results,
    Browse,
    Map,
    Contours,
    Duplicates,
    Particles,
}

/// Where the demo library is generated.
pub fn demo_dir() -> PathBuf {
    cache_dir().join("demo-library")
}

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Database to open instead of the last one (or the demo).
    pub database: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub demo_dir: PathBuf,
    pub demo_images: usize,
    pub index_file: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            database: None,
            weights: None,
            demo_dir: demo_dir(),
            demo_images: DEMO_IMAGES,
            index_file: None,
        }
    }
}

/// The whole app state.
pub struct MorphoApp {
    worker: WorkerHandle,
    /// Where the demo library lives and how many images it has.
    pub demo_dir: PathBuf,
    pub demo_images: usize,
    /// Index file to use instead of the cache folder (tests).
    index_file: Option<PathBuf>,
    pub settings: Settings,
    pub index: Option<Arc<Index>>,
    pub report: Option<IndexReport>,
    pub index_path: Option<PathBuf>,
    pub is_demo: bool,
    pub view: View,
    pub progress: Option<(usize, usize, String, Instant)>,
    pub busy: usize,
    pub hits: Vec<Hit>,
    pub hits_are_sketch: bool,
    pub last_query_ms: Option<f64>,
    pub selected: Option<usize>,
    pub query_label: Option<String>,
    query_texture: Option<egui::TextureHandle>,
    pub crop: Option<Crop>,
    crop_drag: Option<egui::Pos2>,
    /// What the network looked at for the last sketch query.
    sketch_textures: Vec<egui::TextureHandle>,
    pub canvas: CanvasState,
    sketch_due: Option<Instant>,
    thumbs: Thumbnails,
    /// Bumped when another index opens; thumbnails of an older one are ignored.
    thumb_generation: u64,
    /// The entries last asked of the thumbnail loader, and those it could not read.
    thumb_asked: Vec<usize>,
    thumb_failed: HashSet<usize>,
    pub preview_entry: Option<usize>,
    preview_textures: Option<[egui::TextureHandle; 4]>,
    pub preview_used: Option<(f32, f32)>,
    /// Hash of the last preview drawing (lets tests see that it changed).
    pub preview_fingerprint: u64,
    pub browse: BrowseState,
    pub map: MapState,
    map_coords: Vec<[f32; 2]>,
    pub query_map: Option<[f32; 2]>,
    pub path_field: String,
    pub db_field: String,
    /// The particle analysis on screen, and the Particles view's fields.
    pub particles: Option<crate::ui::particles::ParticleView>,
    pub particle_fields: crate::ui::particles::ParticleFields,
    pub table_field: String,
    pub export_field: String,
    pub status: String,
    pub log: Vec<String>,
    /// UI frames drawn while indexing, and the longest one (the UI thread's own work).
    pub frames_while_busy: usize,
    /// Identical / near-identical pairs of the open database.
    pub duplicates: Vec<crate::engine::index::DuplicatePair>,
    pub longest_busy_frame_ms: f64,
    show_log: bool,
    sent_title: String,
}

impl MorphoApp {
    /// A new app whose worker repaints `ctx`; opens `database`, the last one, or the demo.
    pub fn new(
        ctx: &egui::Context,
        settings: Settings,
        options: AppOptions,
    ) -> anyhow::Result<Self> {
        let repaint_ctx = ctx.clone();
        let worker = spawn(options.weights, move || repaint_ctx.request_repaint())?;
        let database = options.database;
        let mut app = Self {
            worker,
            demo_dir: options.demo_dir,
            demo_images: options.demo_images,
            index_file: options.index_file,
            export_field: "results.csv".into(),
            db_field: String::new(),
            particles: None,
            particle_fields: Default::default(),
            table_field: String::new(),
            settings,
            index: None,
            report: None,
            index_path: None,
            is_demo: false,
            view: View::Results,
            progress: None,
            busy: 0,
            hits: Vec::new(),
            hits_are_sketch: false,
            last_query_ms: None,
            selected: None,
            query_label: None,
            query_texture: None,
            crop: None,
            crop_drag: None,
            sketch_textures: Vec::new(),
            canvas: CanvasState::default(),
            sketch_due: None,
            thumbs: Thumbnails::new(THUMBNAIL_CAPACITY),
            thumb_generation: 0,
            thumb_asked: Vec::new(),
            thumb_failed: HashSet::new(),
            preview_entry: None,
            preview_textures: None,
            preview_used: None,
            preview_fingerprint: 0,
            browse: BrowseState::default(),
            map: MapState::default(),
            map_coords: Vec::new(),
            query_map: None,
            path_field: String::new(),
            status: String::new(),
            log: Vec::new(),
            frames_while_busy: 0,
            duplicates: Vec::new(),
            longest_busy_frame_ms: 0.0,
            show_log: false,
            sent_title: String::new(),
        };
        let first = match database {
            Some(db) => Action::OpenDatabase {
                table: find_table(&db),
                db_dir: db,
            },
            None => match app.settings.last_db.clone().filter(|d| d.is_dir()) {
                Some(db) => Action::OpenDatabase {
                    db_dir: db,
                    table: app.settings.last_table.clone(),
                },
                None => Action::OpenDemo,
            },
        };
        app.apply(first);
        Ok(app)
    }

    fn send(&mut self, job: Job) {
        if self.worker.jobs.try_send(job).is_err() {
            self.report_error("the worker is busy; try again in a moment".into());
        } else {
            self.busy += 1;
        }
    }

    fn report_error(&mut self, message: String) {
        self.status = format!("⚠ {message}");
        self.log.push(message);
    }

    fn info(&mut self, message: String) {
        self.status = message.clone();
        self.log.push(message);
    }

    /// The one place actions take effect.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::OpenDemo => {
                self.is_demo = true;
                let dir = self.demo_dir.clone();
                self.db_field = dir.display().to_string();
                self.table_field = dir.join("synthesis.csv").display().to_string();
                let sketch = SketchConfig {
                    contours: self.settings.contours,
                    ..SketchConfig::default()
                };
                self.send(Job::OpenDemo {
                    dir,
                    images: self.demo_images,
                    index_path: self.index_file.clone(),
                    sketch,
                });
            }
            Action::OpenDatabase { db_dir, table } => {
                self.is_demo = db_dir == self.demo_dir;
                self.open(db_dir, table);
            }
            Action::QueryFile(path) => {
                self.crop = None;
                self.send(Job::SearchImage {
                    source: QuerySource::File(path),
                    crop: None,
                    k: self.settings.top_k,
                    allowed: self.allowed(),
                });
            }
            Action::QueryEntry(entry) => {
                self.crop = None;
                self.send(Job::SearchImage {
                    source: QuerySource::Entry(entry),
                    crop: None,
                    k: self.settings.top_k,
                    allowed: self.allowed(),
                });
                self.view = View::Results;
            }
            Action::Research => {
                if self.hits_are_sketch {
                    self.sketch_due = Some(Instant::now());
                } else if self.query_label.is_some() {
                    self.send(Job::Research {
                        crop: self.crop,
                        k: self.settings.top_k,
                        allowed: self.allowed(),
                    });
                }
            }
            Action::Select(entry) => {
                self.selected = Some(entry);
                if self.view == View::Contours {
                    self.apply(Action::Preview);
                }
            }
            Action::SketchChanged => {
                self.sketch_due = Some(Instant::now() + SKETCH_DEBOUNCE);
            }
            Action::Preview => {
                if let Some(entry) = self.selected {
                    self.send(Job::Preview {
                        entry,
                        settings: self.settings.contours,
                    });
                }
            }
            Action::ApplyContours(settings) => {
                self.settings.contours = settings;
                self.send(Job::ApplyContours(settings));
            }
            Action::Export { path, browse } => match self.export(&path, browse) {
                Ok(n) => self.info(format!("wrote {n} rows to {}", path.display())),
                Err(e) => self.report_error(format!("cannot export to {}: {e}", path.display())),
            },
            Action::CancelJob => {
                self.worker
                    .cancel
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Action::AnalyseParticles(target) => {
                let text = self.particle_fields.pixel_size_nm.trim().to_string();
                let pixel_size_nm = if text.is_empty() {
                    None
                } else {
                    match text.parse::<f64>() {
                        Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                        _ => {
                            self.report_error(format!(
                                "pixel size {text:?}: type a positive number of nanometres"
                            ));
                            return;
                        }
                    }
                };
                self.view = View::Particles;
                self.send(Job::Particles {
                    target,
                    pixel_size_nm,
                });
            }
            Action::ExportParticles(path) => match self.export_particles(&path) {
                Ok((n, written)) => {
                    self.info(format!("wrote {n} particles to {}", written.display()))
                }
                Err(e) => self.report_error(format!("{e:#}")),
            },
        }
    }

    /// Writes the particles on screen as CSV; returns their count and the absolute path.
    fn export_particles(&self, path: &Path) -> anyhow::Result<(usize, PathBuf)> {
        let view = self.particles.as_ref().ok_or_else(|| {
            anyhow::anyhow!("no particle analysis to export: measure an image first")
        })?;
        let nm = view.analysis.pixel_size.as_ref().map(|p| p.nm);
        let mut w = csv::Writer::from_path(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        w.write_record([
            "image",
            "particle",
            "area_px",
            "ecd_px",
            "ecd_nm",
            "feret_max_px",
            "feret_min_px",
            "aspect_ratio",
            "circularity",
            "solidity",
            "shape",
        ])?;
        for p in &view.analysis.particles {
            w.write_record([
                view.label.clone(),
                p.label.to_string(),
                p.area_px.to_string(),
                format!("{:.3}", p.ecd_px),
                nm.map(|nm| format!("{:.3}", p.ecd_px * nm))
                    .unwrap_or_default(),
                format!("{:.3}", p.feret_max_px),
                format!("{:.3}", p.feret_min_px),
                format!("{:.3}", p.aspect_ratio),
                format!("{:.3}", p.circularity),
                format!("{:.3}", p.solidity),
                p.shape.name().to_string(),
            ])?;
        }
        w.flush()?;
        let written = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        Ok((view.analysis.particles.len(), written))
    }

    fn open(&mut self, db_dir: PathBuf, table: Option<PathBuf>) {
        self.db_field = db_dir.display().to_string();
        self.table_field = table
            .as_ref()
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let sketch = SketchConfig {
            contours: self.settings.contours,
            ..SketchConfig::default()
        };
        self.status = format!("Opening {}", db_dir.display());
        self.send(Job::Open {
            db_dir,
            table,
            index_path: self.index_file.clone(),
            sketch,
        });
    }

    /// Handles every event the worker sent since the last frame.
    pub fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            match event {
                Event::Progress { done, total, what } => {
                    let started = self.progress.as_ref().map_or_else(Instant::now, |p| p.3);
                    self.progress = Some((done, total, what, started));
                    continue;
                }
                Event::Opened {
                    index,
                    report,
                    index_path,
                    elapsed_ms,
                } => {
                    self.progress = None;
                    if self.frames_while_busy > 0 {
                        self.log.push(format!(
                            "UI while the worker ran: {} frames, longest {:.1} ms",
                            self.frames_while_busy, self.longest_busy_frame_ms
                        ));
                    }
                    self.log.push(format!(
                        "database ready {:.2} s after the request",
                        elapsed_ms / 1e3
                    ));
                    self.duplicates = report.duplicates.clone();
                    self.settings.last_db = Some(index.db_dir.clone());
                    self.settings.last_table = index.table_path.clone();
                    let problems = report.problems.len();
                    self.info(format!(
                        "{} images ready in {:.2} s ({} described, {} unchanged){}",
                        index.len(),
                        elapsed_ms / 1e3,
                        report.described,
                        report.reused,
                        if problems > 0 {
                            format!("; {problems} unreadable, see the log")
                        } else {
                            String::new()
                        }
                    ));
                    for p in report
                        .problems
                        .iter()
                        .chain(&report.table_warnings)
                        .chain(&report.notes)
                    {
                        self.log.push(p.clone());
                    }
                    self.map_coords = index
                        .image_space
                        .projection
                        .as_ref()
                        .map_or_else(Vec::new, |p| {
                            index.entries.iter().map(|e| p.map_2d(&e.raw)).collect()
                        });
                    self.thumbs.clear();
                    self.thumb_generation += 1;
                    self.thumb_asked.clear();
                    self.thumb_failed.clear();
                    self.hits.clear();
                    self.selected = None;
                    self.index = Some(index);
                    self.index_path = Some(index_path);
                    self.report = Some(report);
                }
                Event::QueryImage { label, image } => {
                    self.query_texture = Some(texture(ctx, "query", &image));
                    self.query_label = Some(label);
                    continue;
                }
                Event::Results {
                    hits,
                    sketch,
                    elapsed_ms,
                    drawing,
                    query_map,
                } => {
                    self.selected = hits.first().map(|h| h.entry);
                    self.hits = hits;
                    self.hits_are_sketch = sketch;
                    self.last_query_ms = Some(elapsed_ms);
                    self.query_map = query_map;
                    if sketch {
                        self.sketch_textures = drawing
                            .iter()
                            .enumerate()
                            .map(|(i, d)| gray_texture(ctx, &format!("sketch{i}"), d))
                            .collect();
                    }
                    self.status = format!("{} results in {:.0} ms", self.hits.len(), elapsed_ms);
                }
                Event::Thumbnail {
                    generation,
                    entry,
                    image,
                } => {
                    if generation == self.thumb_generation {
                        match image {
                            Ok(image) => self
                                .thumbs
                                .insert(entry, texture(ctx, &format!("thumb{entry}"), &image)),
                            Err(e) => {
                                self.thumb_failed.insert(entry);
                                self.log.push(format!("thumbnail: {e}"));
                            }
                        }
                    }
                    continue;
                }
                Event::Preview { entry, steps } => {
                    if Some(entry) == self.selected {
                        self.preview_entry = Some(entry);
                        self.preview_used = Some((steps.canny_low, steps.canny_high));
                        self.preview_fingerprint = {
                            use std::hash::{Hash, Hasher};
                            let mut h = std::collections::hash_map::DefaultHasher::new();
                            steps.drawing.as_raw().hash(&mut h);
                            steps.edges.as_raw().hash(&mut h);
                            h.finish()
                        };
                        self.preview_textures = Some([
                            gray_texture(ctx, "p1", &steps.denoised),
                            gray_texture(ctx, "p2", &steps.binary),
                            gray_texture(ctx, "p3", &steps.edges),
                            gray_texture(ctx, "p4", &steps.drawing),
                        ]);
                    }
                }
                Event::Particles {
                    target,
                    label,
                    analysis,
                    overlay,
                } => {
                    let texture = crate::ui::texture(ctx, "particles", &overlay);
                    self.info(format!("{label}: {}", analysis.summary().describe()));
                    self.particles = Some(crate::ui::particles::ParticleView {
                        target,
                        label,
                        analysis: *analysis,
                        texture,
                    });
                }
                Event::Cancelled => {
                    self.progress = None;
                    self.info(
                        "Cancelled; the work done so far is kept and continues next time.".into(),
                    );
                }
                Event::Error(e) => {
                    self.progress = None;
                    self.report_error(e);
                }
            }
            self.busy = self.busy.saturating_sub(1);
        }
    }

    fn export(&self, path: &Path, browse: bool) -> anyhow::Result<usize> {
        let index = self
            .index
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no database is open"))?;
        let rows: Vec<(usize, Option<f32>)> = if browse {
            self.browse
                .filtered(index)
                .into_iter()
                .map(|i| (i, None))
                .collect()
        } else {
            self.hits.iter().map(|h| (h.entry, Some(h.score))).collect()
        };
        let mut w = csv::Writer::from_path(path)?;
        let mut header = vec!["rank".to_string(), "path".into(), "score".into()];
        header.extend(index.columns.iter().cloned());
        w.write_record(&header)?;
        for (rank, (entry, score)) in rows.iter().enumerate() {
            let mut rec = vec![
                (rank + 1).to_string(),
                index.entries[*entry].path.clone(),
                score.map(|s| format!("{s:.4}")).unwrap_or_default(),
            ];
            let params = index.params.get(*entry).cloned().unwrap_or_default();
            rec.extend(
                (0..index.columns.len())
                    .map(|c| params.get(c).map(|v| v.text.clone()).unwrap_or_default()),
            );
            w.write_record(&rec)?;
        }
        w.flush()?;
        Ok(rows.len())
    }

    /// Asks the loader for the thumbnails drawn this frame but not uploaded (replacing what
    /// it still had queued), when that set changed since the last frame.
    fn request_thumbnails(&mut self, missing: Vec<usize>) {
        let mut seen = HashSet::new();
        let wanted: Vec<usize> = missing
            .into_iter()
            .filter(|e| !self.thumb_failed.contains(e) && seen.insert(*e))
            .collect();
        if wanted == self.thumb_asked {
            return;
        }
        if let Some(index) = &self.index {
            let requests = wanted
                .iter()
                .filter_map(|&entry| {
                    index.entries.get(entry).map(|e| ThumbnailRequest {
                        entry,
                        path: index.db_dir.join(&e.path),
                    })
                })
                .collect();
            self.worker
                .thumbnails
                .request(self.thumb_generation, requests);
        }
        self.thumb_asked = wanted;
    }

    fn handle_input(&mut self, ctx: &egui::Context) -> Option<Action> {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let mut action = None;
        for path in dropped {
            action = Some(if path.is_dir() {
                Action::OpenDatabase {
                    table: find_table(&path),
                    db_dir: path,
                }
            } else {
                Action::QueryFile(path)
            });
        }
        let (undo, redo, pasted) = ctx.input(|i| {
            let cmd = i.modifiers.command;
            let pasted = i
                .events
                .iter()
                .find_map(|e| match e {
                    egui::Event::PasteImage(img) => Some(Pasted::Image(rgba_from_color(img))),
                    egui::Event::Paste(text) => Some(Pasted::Text(text.clone())),
                    _ => None,
                })
                .or_else(|| (cmd && i.key_pressed(egui::Key::V)).then_some(Pasted::Shortcut));
            (
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && i.modifiers.shift && i.key_pressed(egui::Key::Z),
                pasted,
            )
        });
        if undo && !ctx.egui_wants_keyboard_input() && self.canvas.undo() {
            action = Some(Action::SketchChanged);
        }
        if redo && !ctx.egui_wants_keyboard_input() && self.canvas.redo() {
            action = Some(Action::SketchChanged);
        }
        match pasted {
            // A text field has the keyboard: the paste is its text.
            _ if ctx.egui_wants_keyboard_input() => {}
            None => {}
            Some(Pasted::Image(image)) => self.search_pasted(image),
            Some(Pasted::Text(text)) => match pasted_file(&text) {
                Some(path) => action = Some(Action::QueryFile(path)),
                None => self.paste_from_clipboard(),
            },
            Some(Pasted::Shortcut) => self.paste_from_clipboard(),
        }
        action
    }

    /// The entries a search may return: those the Browse filter shows when "Search only
    /// these" is on (None: all).
    pub fn allowed(&self) -> crate::worker::Allowed {
        let index = self.index.as_ref()?;
        if !self.browse.restrict_search {
            return None;
        }
        let mut mask = vec![false; index.len()];
        for i in self.browse.filtered(index) {
            mask[i] = true;
        }
        Some(Arc::new(mask))
    }

    fn search_pasted(&mut self, image: image::RgbaImage) {
        self.crop = None;
        self.send(Job::SearchImage {
            source: QuerySource::Rgba {
                label: "pasted image".into(),
                image,
            },
            crop: None,
            k: self.settings.top_k,
            allowed: self.allowed(),
        });
    }

    /// Reads an image from the system clipboard itself (when the windowing layer passed on only
    /// the key press or some text).
    fn paste_from_clipboard(&mut self) {
        match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
            Ok(img) => match image::RgbaImage::from_raw(
                img.width as u32,
                img.height as u32,
                img.bytes.into_owned(),
            ) {
                Some(rgba) => self.search_pasted(rgba),
                None => self.report_error("the clipboard image has an unexpected size".into()),
            },
            Err(e) => self.report_error(format!(
                "no image or image file path on the clipboard ({e})"
            )),
        }
    }

    /// Draws the whole window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let frame_start = Instant::now();
        let was_busy = self.progress.is_some();
        self.draw(ui);
        if was_busy {
            self.frames_while_busy += 1;
            self.longest_busy_frame_ms = self
                .longest_busy_frame_ms
                .max(frame_start.elapsed().as_secs_f64() * 1e3);
        }
    }

    fn draw(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        let mut actions: Vec<Action> = self.handle_input(&ctx).into_iter().collect();
        let mut missing = Vec::new();
        if let Some(due) = self.sketch_due {
            if Instant::now() >= due {
                self.sketch_due = None;
                if !self.canvas.strokes.is_empty() && self.index.is_some() {
                    self.send(Job::SearchSketch {
                        strokes: self.canvas.strokes.clone(),
                        k: self.settings.top_k,
                        allowed: self.allowed(),
                    });
                }
            } else {
                ctx.request_repaint_after(due - Instant::now());
            }
        }

        egui::Panel::top("top").show(ui, |ui| actions.extend(self.top_ui(ui)));
        egui::Panel::bottom("status").show(ui, |ui| actions.extend(self.status_ui(ui)));
        egui::Panel::left("query")
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("query_scroll")
                    .show(ui, |ui| actions.extend(self.query_ui(ui)));
            });
        if let Some(index) = self.index.clone() {
            egui::Panel::right("detail")
                .default_size(320.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("detail_scroll")
                        .show(ui, |ui| {
                            if let Some(sel) = self.selected {
                                let score =
                                    self.hits.iter().find(|h| h.entry == sel).map(|h| h.score);
                                actions.extend(results::detail_ui(
                                    ui,
                                    &index,
                                    sel,
                                    score.map(|s| (s, self.hits_are_sketch)),
                                    &self.thumbs,
                                    &mut missing,
                                ));
                            } else {
                                ui.label("Click a sample to see its synthesis record.");
                            }
                        });
                });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.view, View::Results, "Results");
                ui.selectable_value(&mut self.view, View::Browse, "Browse");
                ui.selectable_value(&mut self.view, View::Map, "Map");
                ui.selectable_value(&mut self.view, View::Duplicates, format!("Duplicates ({})", self.duplicates.len()));
                if ui.selectable_value(&mut self.view, View::Contours, "Contours").clicked() {
                    actions.push(Action::Preview);
                }
                ui.selectable_value(&mut self.view, View::Particles, "Particles");
            });
            ui.separator();
            let Some(index) = self.index.clone() else {
                ui.label(if self.progress.is_some() { "Indexing the database…" } else { "Open a database to start: type its folder above and press Open, drop the folder on the window, or press Demo library. A cancelled indexing goes on where it stopped." });
                return;
            };
            match self.view {
                View::Results => {
                    if let Some(allowed) = self.allowed() {
                        let n = allowed.iter().filter(|&&a| a).count();
                        ui.colored_label(ui.visuals().warn_fg_color, format!("Searching only the {n} of {} samples the Browse filter shows (\"Search only these\" in Browse).", index.len()));
                    }
                    if self.hits.is_empty() {
                        ui.label("Drop a micrograph on the window, type its path on the left, paste one (Ctrl+V), or draw particles on the canvas.");
                    }
                    egui::ScrollArea::vertical().id_salt("results").show(ui, |ui| {
                        actions.extend(results::grid_ui(ui, &index, &self.hits, &self.thumbs, self.selected, &mut missing));
                        ui.separator();
                        results::summary_ui(ui, &index, &self.hits);
                    });
                }
                View::Browse => actions.extend(self.browse.browse_ui(ui, &index, &self.thumbs, self.selected, &mut missing)),
                View::Map => actions.extend(self.map.map_ui(ui, &index, &self.map_coords, self.query_map, &self.thumbs, self.selected, &mut missing)),
                View::Duplicates => actions.extend(crate::ui::duplicates::duplicates_ui(ui, &index, &self.duplicates, &self.thumbs, &mut missing)),
                View::Particles => {
                    let has_query = self.query_texture.is_some();
                    egui::ScrollArea::vertical().id_salt("particles").show(ui, |ui| {
                        actions.extend(crate::ui::particles::particles_ui(ui, self.particles.as_ref(), &mut self.particle_fields, &index, &self.hits, self.selected, has_query));
                    });
                }
                View::Contours => {
                    let textures = self.preview_textures.as_ref().filter(|_| self.preview_entry == self.selected);
                    actions.extend(preview::preview_ui(ui, &mut self.settings.contours, textures, self.preview_used));
                }
            }
        });
        self.request_thumbnails(missing);
        self.thumbs.end_frame();
        for a in actions {
            self.apply(a);
        }
        // While the worker runs, 4 frames a second keep the progress bar and time left
        // current (each worker event repaints too); more would only take CPU from the work,
        // which matters on a software renderer.
        if self.progress.is_some() || self.busy > 0 {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    /// The window title when it differs from the one last returned. Only changes may be sent
    /// to the window: every viewport command asks for another frame, so sending the title each
    /// frame repaints without end and keeps a core busy for nothing.
    pub fn title_update(&mut self) -> Option<String> {
        let title = self.title();
        (title != self.sent_title).then(|| {
            self.sent_title = title.clone();
            title
        })
    }

    fn title(&self) -> String {
        match &self.index {
            Some(i) => format!(
                "morphosearch: {}{} ({} images)",
                i.db_dir
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().to_string()),
                if self.is_demo {
                    " [synthetic demo]"
                } else {
                    ""
                },
                i.len()
            ),
            None => "morphosearch".into(),
        }
    }

    fn top_ui(&mut self, ui: &mut egui::Ui) -> Option<Action> {
        let mut action = None;
        ui.horizontal_wrapped(|ui| {
            ui.strong(self.title());
            if self.is_demo {
                ui.colored_label(egui::Color32::from_rgb(200, 120, 0), "Synthetic demo library: rendered SEM-like images with made-up recipes")
                    .on_hover_text("Generated by morphosearch at first start (src/engine/demo.rs). Open your own database to search real data.");
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Database");
            ui.add(
                egui::TextEdit::singleline(&mut self.db_field)
                    .hint_text("folder of images")
                    .desired_width(240.0),
            );
            ui.label("Table");
            ui.add(
                egui::TextEdit::singleline(&mut self.table_field)
                    .hint_text("optional CSV")
                    .desired_width(200.0),
            );
            if ui.button("Open").clicked() && !self.db_field.trim().is_empty() {
                let table = Some(self.table_field.trim())
                    .filter(|t| !t.is_empty())
                    .map(PathBuf::from);
                action = Some(Action::OpenDatabase {
                    db_dir: PathBuf::from(self.db_field.trim()),
                    table,
                });
            }
            if ui.button("Open database…").clicked() {
                if let Some(dir) = rfd::FileDialog::new()
                    .set_title("Folder of micrographs")
                    .pick_folder()
                {
                    let table = rfd::FileDialog::new()
                        .set_title("Synthesis table (cancel for none)")
                        .add_filter("CSV", &["csv"])
                        .set_directory(&dir)
                        .pick_file()
                        .or_else(|| find_table(&dir));
                    action = Some(Action::OpenDatabase { db_dir: dir, table });
                }
            }
            if ui.button("Demo library").clicked() {
                action = Some(Action::OpenDemo);
            }
        });
        action
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) -> Option<Action> {
        let mut action = None;
        if let Some((done, total, what, started)) = &self.progress {
            ui.horizontal(|ui| {
                let frac = if *total > 0 {
                    *done as f32 / *total as f32
                } else {
                    0.0
                };
                let secs = started.elapsed().as_secs_f32();
                let rate = if secs > 0.0 { *done as f32 / secs } else { 0.0 };
                let left = if rate > 0.0 {
                    (*total - *done) as f32 / rate
                } else {
                    0.0
                };
                ui.label(what);
                ui.add(
                    egui::ProgressBar::new(frac)
                        .desired_width(240.0)
                        .text(format!(
                            "{done}/{total}  {rate:.1} images/s  {left:.0} s left"
                        )),
                );
                if ui.button("Cancel").clicked() {
                    action = Some(Action::CancelJob);
                }
            });
        }
        ui.horizontal(|ui| {
            ui.label(&self.status);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.toggle_value(&mut self.show_log, format!("Log ({})", self.log.len()));
            });
        });
        if self.show_log {
            egui::ScrollArea::vertical()
                .id_salt("log")
                .max_height(140.0)
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    for line in &self.log {
                        ui.label(line);
                    }
                });
        }
        action
    }

    fn query_ui(&mut self, ui: &mut egui::Ui) -> Option<Action> {
        let mut action = None;
        ui.heading("Query by image");
        ui.horizontal(|ui| {
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path_field)
                    .hint_text("image path")
                    .desired_width(170.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Search").clicked() || enter) && !self.path_field.trim().is_empty() {
                action = Some(Action::QueryFile(PathBuf::from(self.path_field.trim())));
            }
        });
        if ui.button("Open image…").clicked() {
            if let Some(p) = rfd::FileDialog::new()
                .add_filter("Images", &["png", "jpg", "jpeg", "tif", "tiff", "bmp"])
                .pick_file()
            {
                action = Some(Action::QueryFile(p));
            }
        }
        if let (Some(tex), Some(label)) = (self.query_texture.clone(), self.query_label.clone()) {
            ui.label(label);
            ui.label("Drag on the image to search a region only.");
            let side = ui.available_width().min(280.0);
            let size = tex.size_vec2() * (side / tex.size_vec2().max_elem());
            let (rect, response) = ui.allocate_exact_size(size, egui::Sense::drag());
            egui::Image::new(&tex).paint_at(ui, rect);
            let to_norm = |p: egui::Pos2| {
                [
                    ((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0),
                    ((p.y - rect.top()) / rect.height()).clamp(0.0, 1.0),
                ]
            };
            if response.drag_started() {
                self.crop_drag = response.interact_pointer_pos();
            }
            if let (Some(start), Some(now)) = (self.crop_drag, response.interact_pointer_pos()) {
                let (a, b) = (to_norm(start), to_norm(now));
                self.crop = Some(Crop {
                    min: [a[0].min(b[0]), a[1].min(b[1])],
                    max: [a[0].max(b[0]), a[1].max(b[1])],
                });
            }
            if response.drag_stopped() {
                self.crop_drag = None;
                if self
                    .crop
                    .is_some_and(|c| (c.max[0] - c.min[0]) * (c.max[1] - c.min[1]) < 0.002)
                {
                    self.crop = None;
                }
                action = Some(Action::Research);
            }
            if let Some(c) = self.crop {
                let r = egui::Rect::from_min_max(
                    egui::pos2(
                        rect.left() + c.min[0] * rect.width(),
                        rect.top() + c.min[1] * rect.height(),
                    ),
                    egui::pos2(
                        rect.left() + c.max[0] * rect.width(),
                        rect.top() + c.max[1] * rect.height(),
                    ),
                );
                ui.painter().rect_stroke(
                    r,
                    0.0,
                    egui::Stroke::new(2.0, egui::Color32::YELLOW),
                    egui::StrokeKind::Outside,
                );
                if ui.button("Whole image").clicked() {
                    self.crop = None;
                    action = Some(Action::Research);
                }
            }
        }
        ui.separator();
        ui.heading("Query by drawing");
        if self.canvas.toolbar_ui(ui) {
            action = Some(Action::SketchChanged);
        }
        let side = ui.available_width().min(280.0);
        if self.canvas.canvas_ui(ui, side) {
            action = Some(Action::SketchChanged);
        }
        if !self.sketch_textures.is_empty() {
            ui.label(if self.sketch_textures.len() == 1 {
                "What the network compared (your drawing as a pseudo-micrograph):"
            } else {
                "What the network compared (your drawing, and as a pseudo-micrograph):"
            })
            .on_hover_text(
                "Enclosed outlines become bright particles on a dark background, as in an \
                     SEM image; this is compared with the database's contour drawings and \
                     micrographs.",
            );
            ui.horizontal(|ui| {
                for t in &self.sketch_textures {
                    ui.add(
                        egui::Image::new(t).fit_to_exact_size(egui::vec2(side / 2.0, side / 2.0)),
                    );
                }
            });
        }
        ui.separator();
        let mut k = self.settings.top_k;
        ui.add(egui::Slider::new(&mut k, 1..=50).text("Results (k)"));
        if k != self.settings.top_k {
            self.settings.top_k = k;
            action = Some(Action::Research);
        }
        if let Some(ms) = self.last_query_ms {
            ui.label(format!(
                "Last {} query: {ms:.0} ms",
                if self.hits_are_sketch {
                    "sketch"
                } else {
                    "image"
                }
            ));
        }
        ui.separator();
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.export_field)
                    .hint_text("CSV file to write")
                    .desired_width(140.0),
            );
            if ui.button("Export results").clicked() {
                action = Some(Action::Export {
                    path: PathBuf::from(self.export_field.trim()),
                    browse: false,
                });
            }
            if ui
                .button("Export browse")
                .on_hover_text("All samples passing the browse filter")
                .clicked()
            {
                action = Some(Action::Export {
                    path: PathBuf::from(self.export_field.trim()),
                    browse: true,
                });
            }
        });
        action
    }

    /// Whether a search space is ready (used by tests).
    pub fn has_space(&self, space: Space) -> bool {
        self.index
            .as_ref()
            .is_some_and(|i| !i.space(space).is_empty())
    }
}

/// A CSV table in the database folder, when there is exactly one.
pub fn find_table(dir: &Path) -> Option<PathBuf> {
    let csvs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .collect();
    match csvs.as_slice() {
        [one] => Some(one.clone()),
        many => many
            .iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("synthesis"))
            })
            .cloned(),
    }
}

/// What a paste brought.
enum Pasted {
    Image(image::RgbaImage),
    Text(String),
    /// Ctrl+V seen, nothing delivered with it.
    Shortcut,
}

fn rgba_from_color(img: &egui::ColorImage) -> image::RgbaImage {
    let bytes = img
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    image::RgbaImage::from_raw(img.size[0] as u32, img.size[1] as u32, bytes).unwrap_or_default()
}

/// The image file named by pasted text: a path or a `file://` URI (as file managers copy
/// them, percent-encoded), first line only; `None` unless it names an existing file.
pub fn pasted_file(text: &str) -> Option<PathBuf> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let raw = line.strip_prefix("file://").unwrap_or(line);
    let mut bytes = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex: Vec<u8> = it.clone().take(2).collect();
            if let Some(v) = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                bytes.push(v);
                it.nth(1);
                continue;
            }
        }
        bytes.push(b);
    }
    let path = PathBuf::from(String::from_utf8(bytes).ok()?);
    path.is_file().then_some(path)
}

/// eframe wrapper: persistence and the window title.
pub struct EframeApp(pub MorphoApp);

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.ui(ui);
        if let Some(title) = self.0.title_update() {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Title(title));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.0.settings);
    }
}

/// Starts the desktop app.
pub fn run(database: Option<PathBuf>, weights: Option<PathBuf>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_title("morphosearch")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "morphosearch",
        options,
        Box::new(move |cc| {
            let mut notes = Vec::new();
            let settings = match cc.storage {
                Some(storage) if storage.get_string(SETTINGS_KEY).is_some() => {
                    eframe::get_value(storage, SETTINGS_KEY).unwrap_or_else(|| {
                        notes.push(
                            "the saved settings could not be read; using defaults".to_string(),
                        );
                        Settings::default()
                    })
                }
                _ => Settings::default(),
            };
            let options = AppOptions {
                database,
                weights,
                ..AppOptions::default()
            };
            let mut app = MorphoApp::new(&cc.egui_ctx, settings, options)?;
            for n in notes {
                app.report_error(n);
            }
            Ok(Box::new(EframeApp(app)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_text_naming_a_file_is_a_query() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("my sample 1.png");
        std::fs::write(&file, b"x").expect("write");
        let plain = file.display().to_string();
        assert_eq!(pasted_file(&plain), Some(file.clone()));
        let uri = format!("file://{}\n", plain.replace(' ', "%20"));
        assert_eq!(pasted_file(&uri), Some(file.clone()));
        assert_eq!(pasted_file(&format!("\n  {plain}  \nother")), Some(file));
        assert_eq!(pasted_file("spheres, 5 um"), None);
        assert_eq!(
            pasted_file(&tmp.path().display().to_string()),
            None,
            "a folder"
        );
        assert_eq!(pasted_file("%zz%"), None);
    }
}
