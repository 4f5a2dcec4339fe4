//! The desktop app: joins the engine (through the worker thread) and the ui panels.
//! Data flow: UI -> Action -> Job -> (worker) -> Event -> state. Panels return actions;
//! `apply` is the one place they take effect. The UI thread never runs the model.

mod actions;
pub mod bench;
mod events;
mod input;
mod jobs;
mod panels;
pub mod query;
pub mod thumbnails;
pub mod worker;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::library::files::cache_dir;
use crate::engine::library::index::conditions::Conditions;
use crate::engine::library::index::{Hit, Index, Space};
use crate::engine::library::indexer::IndexReport;
use crate::engine::sketch::edges::ContourSettings;
use crate::engine::sketch::SketchConfig;
use crate::ui::browser::BrowseState;
use crate::ui::canvas::CanvasState;
use crate::ui::map::MapState;
use crate::ui::{gray_texture, preview, results, texture, Action, Thumbnails, THUMBNAIL_CAPACITY};
pub use query::{ActiveQuery, LogLine, QueryKind, QueryState};
use worker::{spawn, Crop, Event, Job, QuerySource, ThumbnailRequest, WorkerHandle};

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
    pub hits: Vec<Hit>,
    pub hits_are_sketch: bool,
    pub selected: Option<usize>,
    /// The query the results answer (None: no query).
    pub query: Option<ActiveQuery>,
    next_query: u64,
    /// The image shown in the query panel (its file or "pasted image"), searchable by region.
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
    /// The last error, shown in a banner above the results until dismissed or replaced.
    pub banner: Option<String>,
    pub log: Vec<LogLine>,
    /// The filter bar's recipe conditions, as typed and as parsed; why they do not parse.
    pub where_field: String,
    pub conditions: Conditions,
    pub where_error: Option<String>,
    /// Why the typed k was changed (more than the library holds).
    pub k_note: Option<String>,
    /// "Apply to library" asks once before redrawing every image.
    pub confirm_apply: bool,
    pub show_query_panel: bool,
    /// None until the first frame decides it from the window's width.
    pub show_detail_panel: Option<bool>,
    /// Identical / near-identical pairs of the open database.
    pub duplicates: Vec<crate::engine::library::index::DuplicatePair>,
    pub show_log: bool,
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
            export_field: default_export_path().display().to_string(),
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
            hits: Vec::new(),
            hits_are_sketch: false,
            selected: None,
            query: None,
            next_query: 0,
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
            banner: None,
            log: Vec::new(),
            where_field: String::new(),
            conditions: Conditions::default(),
            where_error: None,
            k_note: None,
            confirm_apply: false,
            show_query_panel: true,
            show_detail_panel: None,
            duplicates: Vec::new(),
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
        if !self.worker.send(job) {
            self.report_error("the worker is busy; try again in a moment".into());
        }
    }

    /// Jobs sent to the worker and not finished yet.
    pub fn busy(&self) -> usize {
        self.worker.pending()
    }

    /// An error the user must see: the banner above the results, the status line and the log.
    pub fn report_error(&mut self, message: String) {
        self.status = format!("Error: {message}");
        self.banner = Some(message.clone());
        self.log_line(message, true);
    }

    fn info(&mut self, message: String) {
        self.status = message.clone();
        self.log_line(message, false);
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
        let shown = crate::engine::library::store::Location::of(&db_dir).display();
        self.status = format!("Opening {shown}");
        self.send(Job::Open {
            db_dir,
            table,
            index_path: self.index_file.clone(),
            sketch,
        });
    }
    /// Draws the whole window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        let mut actions: Vec<Action> = self.handle_input(&ctx).into_iter().collect();
        let mut missing = Vec::new();
        if let Some(due) = self.sketch_due {
            if Instant::now() >= due {
                self.sketch_due = None;
                self.search_sketch();
            } else {
                ctx.request_repaint_after(due - Instant::now());
            }
        }
        let width = ctx.content_rect().width();
        // Side panels give way on small windows: the details start closed below 1000 points
        // (one click opens them), and neither may take more than a third of the width.
        let show_detail = *self.show_detail_panel.get_or_insert(width >= 1000.0);
        let side_max = (width / 3.0).max(200.0);

        egui::Panel::top("top").show(ui, |ui| actions.extend(self.top_ui(ui)));
        egui::Panel::bottom("status").show(ui, |ui| actions.extend(self.status_ui(ui)));
        if self.show_log {
            egui::Panel::bottom("log")
                .resizable(true)
                .default_size(220.0)
                .size_range(80.0..=(ctx.content_rect().height() * 0.6).max(100.0))
                .show(ui, |ui| self.log_ui(ui));
        }
        if self.show_query_panel {
            egui::Panel::left("query")
                .resizable(true)
                .default_size(if width < 1000.0 { 230.0 } else { 300.0 })
                .size_range(200.0..=side_max)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("query_scroll")
                        .show(ui, |ui| actions.extend(self.query_ui(ui)));
                });
        }
        if let Some(index) = self.index.clone().filter(|_| show_detail) {
            egui::Panel::right("detail")
                .resizable(true)
                .default_size(if width < 1400.0 { 260.0 } else { 340.0 })
                .size_range(200.0..=side_max)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("detail_scroll")
                        .auto_shrink([false, false])
                        .show(ui, |ui| {
                            if let Some(sel) = self.selected {
                                let score = self
                                    .hits
                                    .iter()
                                    .find(|h| h.entry == sel)
                                    .zip(self.query.as_ref())
                                    .map(|(h, q)| (h.score, q.kind));
                                actions.extend(results::detail_ui(
                                    ui,
                                    &index,
                                    sel,
                                    score,
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
            if let Some(message) = self.banner.clone() {
                egui::Frame::new()
                    .fill(ui.visuals().error_fg_color.gamma_multiply(0.18))
                    .stroke(egui::Stroke::new(1.0, ui.visuals().error_fg_color))
                    .inner_margin(6.0)
                    .corner_radius(4.0)
                    .show(ui, |ui| {
                        ui.horizontal_wrapped(|ui| {
                            ui.colored_label(ui.visuals().error_fg_color, egui::RichText::new("Error").strong());
                            ui.label(&message);
                            if ui.small_button("Dismiss").clicked() {
                                self.banner = None;
                            }
                        });
                    });
            }
            let Some(index) = self.index.clone() else {
                ui.label(if self.progress.is_some() { "Indexing the database…" } else { "Open a database to start: type its folder above and press Open, drop the folder on the window, or press Demo library. A cancelled indexing goes on where it stopped." });
                return;
            };
            actions.extend(self.query_bar_ui(ui, &index));
            ui.separator();
            egui::ScrollArea::horizontal().id_salt("tabs").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.view, View::Results, "Results");
                    ui.selectable_value(&mut self.view, View::Browse, "Browse");
                    ui.selectable_value(&mut self.view, View::Map, "Map");
                    if ui.selectable_value(&mut self.view, View::Contours, "Contours").clicked() {
                        actions.push(Action::Preview);
                    }
                    ui.selectable_value(&mut self.view, View::Particles, "Particles");
                    ui.selectable_value(&mut self.view, View::Duplicates, format!("Duplicates ({})", self.duplicates.len()));
                });
            });
            ui.separator();
            match self.view {
                View::Results => {
                    if self.hits.is_empty() {
                        ui.label("Drop a micrograph on the window, type its path on the left, paste one (Ctrl+V), or draw particles on the canvas.");
                    }
                    let kind = self.query.as_ref().map_or(QueryKind::Image, |q| q.kind);
                    let exclude = self.query.as_ref().and_then(|q| q.entry);
                    egui::ScrollArea::vertical().id_salt("results").auto_shrink([false, false]).show(ui, |ui| {
                        actions.extend(results::grid_ui(ui, &index, &self.hits, kind, &self.thumbs, self.selected, &mut missing));
                        ui.separator();
                        results::summary_ui(ui, &index, &self.hits, exclude);
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
                    egui::ScrollArea::vertical().id_salt("contours").show(ui, |ui| {
                        actions.extend(preview::preview_ui(ui, &mut self.settings.contours, textures, self.preview_used, &mut self.confirm_apply, index.len()));
                    });
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
        // which matters on a software renderer. Idle, nothing is asked for.
        if self.progress.is_some() || self.busy() > 0 {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    /// Thumbnails uploaded now, and entries whose thumbnail could not be made (used by tests).
    pub fn thumbnail_counts(&self) -> (usize, usize) {
        (self.thumbs.len(), self.thumb_failed.len())
    }

    /// Whether a search space is ready (used by tests).
    pub fn has_space(&self, space: Space) -> bool {
        self.index
            .as_ref()
            .is_some_and(|i| !i.space(space).is_empty())
    }
}

/// Where exports go unless another path is typed: the user's documents folder (else home,
/// else the working directory), always shown as an absolute path.
pub fn default_export_path() -> PathBuf {
    let dir = directories::UserDirs::new()
        .and_then(|u| {
            u.document_dir()
                .map(Path::to_path_buf)
                .or_else(|| Some(u.home_dir().to_path_buf()))
        })
        .filter(|d| d.is_dir())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    dir.join("morphosearch-results.csv")
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
pub fn run(
    database: Option<PathBuf>,
    weights: Option<PathBuf>,
    window: Option<[f32; 2]>,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size(window.unwrap_or([1400.0, 900.0]))
            .with_min_inner_size([400.0, 300.0])
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
