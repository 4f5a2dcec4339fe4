//! The active query: the one place that decides what a new query replaces, the query bar
//! above the results that names it (and what the scores mean), and the recipe conditions
//! that restrict it.

use super::*;
use crate::engine::library::index::conditions::Conditions;
pub use crate::ui::results::{score_meaning, score_text};
pub use crate::ui::QueryKind;

/// Where the active query stands.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryState {
    Running,
    Done { results: usize, ms: f64 },
    Failed(String),
}

/// The query the results on screen answer (or will answer, while it runs).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveQuery {
    /// Numbers every query; results and errors of an older one are ignored.
    pub id: u64,
    pub kind: QueryKind,
    /// The image's file, "pasted image" or the sample's name; "drawing" for a sketch.
    pub label: String,
    pub crop: Option<Crop>,
    /// The library sample that is the query image (same pixels), left out of the summary.
    pub entry: Option<usize>,
    pub state: QueryState,
}

impl MorphoApp {
    /// Starts a query: a new number, and the results of another query (another kind or
    /// another image) leave the screen at once, so nothing shows under the wrong name; a
    /// rerun of the same query (region, k, restriction) keeps them until the new ones come.
    pub(super) fn begin_query(
        &mut self,
        kind: QueryKind,
        label: String,
        crop: Option<Crop>,
    ) -> u64 {
        self.next_query += 1;
        let same = self
            .query
            .as_ref()
            .is_some_and(|q| q.kind == kind && q.label == label);
        if !same {
            self.hits.clear();
            self.selected = None;
        }
        if kind == QueryKind::Image {
            self.sketch_textures.clear();
        }
        let entry = self.query.as_ref().filter(|_| same).and_then(|q| q.entry);
        self.banner = None;
        self.query = Some(ActiveQuery {
            id: self.next_query,
            kind,
            label,
            crop,
            entry,
            state: QueryState::Running,
        });
        self.next_query
    }

    /// Removes the query and its results.
    pub(super) fn clear_query(&mut self) {
        self.query = None;
        self.hits.clear();
        self.selected = None;
        self.sketch_textures.clear();
        self.query_map = None;
    }

    /// Searches with a new image.
    pub(super) fn search_image(&mut self, source: QuerySource, label: String) {
        self.crop = None;
        let query = self.begin_query(QueryKind::Image, label, None);
        self.send(Job::SearchImage {
            query,
            source,
            crop: None,
            k: self.settings.top_k,
            allowed: self.allowed(),
        });
    }

    /// Searches with the query image shown (all of it, or the region `crop`).
    pub(super) fn search_region(&mut self, crop: Option<Crop>) {
        let Some(label) = self.query_label.clone() else {
            return;
        };
        self.crop = crop;
        let query = self.begin_query(QueryKind::Image, label, crop);
        self.send(Job::Research {
            query,
            crop,
            k: self.settings.top_k,
            allowed: self.allowed(),
        });
    }

    /// Searches with the drawing on the canvas; an empty canvas ends a sketch query.
    pub(super) fn search_sketch(&mut self) {
        if self.canvas.strokes.is_empty() {
            if self
                .query
                .as_ref()
                .is_some_and(|q| q.kind == QueryKind::Sketch)
            {
                self.clear_query();
            }
            return;
        }
        if self.index.is_none() {
            return;
        }
        let query = self.begin_query(QueryKind::Sketch, "drawing".into(), None);
        self.send(Job::SearchSketch {
            query,
            strokes: self.canvas.strokes.clone(),
            k: self.settings.top_k,
            allowed: self.allowed(),
        });
    }

    /// Runs the active query again (new k, restriction or library).
    pub(super) fn rerun_query(&mut self) {
        match self.query.as_ref().map(|q| (q.kind, q.crop)) {
            Some((QueryKind::Image, crop)) => self.search_region(crop),
            Some((QueryKind::Sketch, _)) => self.search_sketch(),
            None => {}
        }
    }

    /// Reads the filter bar's conditions; false (and the reason under the field) when they
    /// do not parse.
    pub(super) fn apply_conditions(&mut self) -> bool {
        let Some(index) = self.index.clone() else {
            return false;
        };
        match Conditions::parse_list(&index, &self.where_field) {
            Ok(c) => {
                self.conditions = c;
                self.where_error = None;
                true
            }
            Err(e) => {
                let message = e.to_string();
                self.log_line(message.clone(), true);
                self.where_error = Some(message);
                false
            }
        }
    }

    /// The query bar: what was asked, how it went, what the scores mean, and the recipe
    /// conditions the search is restricted to.
    pub(super) fn query_bar_ui(&mut self, ui: &mut egui::Ui, index: &Index) -> Option<Action> {
        let mut action = None;
        ui.horizontal_wrapped(|ui| match &self.query {
            None => {
                ui.label(egui::RichText::new("No query yet").strong());
            }
            Some(q) => {
                let texture = match q.kind {
                    QueryKind::Image => self.query_texture.as_ref(),
                    QueryKind::Sketch => self.sketch_textures.first(),
                };
                if let Some(t) = texture {
                    ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(40.0, 40.0)));
                }
                let name = q.label.rsplit(['/', '\\']).next().unwrap_or(&q.label);
                let what = match (q.kind, q.crop) {
                    (QueryKind::Sketch, _) => format!(
                        "Sketch query: your drawing ({} strokes)",
                        self.canvas.strokes.len()
                    ),
                    (QueryKind::Image, None) => format!("Image query: {name}"),
                    (QueryKind::Image, Some(c)) => format!(
                        "Image query: {name}, region {:.0} % × {:.0} %",
                        (c.max[0] - c.min[0]) * 100.0,
                        (c.max[1] - c.min[1]) * 100.0
                    ),
                };
                ui.label(egui::RichText::new(what).strong())
                    .on_hover_text(&q.label);
                match &q.state {
                    QueryState::Running => {
                        ui.label("searching…");
                    }
                    QueryState::Done { results, ms } => {
                        ui.label(format!("{results} results in {ms:.0} ms"));
                        let scale = match q.kind {
                            QueryKind::Image => "scores: cosine similarity (1 = same features)",
                            QueryKind::Sketch => "scores: σ above the library's average sample",
                        };
                        ui.label(egui::RichText::new(scale).weak())
                            .on_hover_text(score_meaning(q.kind));
                    }
                    QueryState::Failed(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, format!("failed: {e}"));
                    }
                }
                if ui
                    .small_button("Clear query")
                    .on_hover_text("Remove the query and its results")
                    .clicked()
                {
                    action = Some(Action::ClearQuery);
                }
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Only samples where");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut self.where_field)
                        .hint_text("Polymer=PEG; Temperature (C)<40")
                        .desired_width(ui.available_width().clamp(120.0, 260.0)),
                )
                .on_hover_text(
                    "Conditions on the table's columns or the particle statistics, separated by \
                 ';', all of which must hold: = != < <= > >= and ~ (contains). Press Enter.",
                );
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                action = Some(Action::SetConditions);
            }
            let allowed = self.allowed();
            if let Some(mask) = &allowed {
                let n = mask.iter().filter(|&&a| a).count();
                let mut why = Vec::new();
                if !self.conditions.is_empty() {
                    why.push(self.conditions.to_string());
                }
                if self.browse.restrict_search {
                    why.push("the Browse filter".to_string());
                }
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!(
                        "searching {n} of {} samples: {}",
                        index.len(),
                        why.join(" and ")
                    ),
                );
            }
        });
        if let Some(e) = &self.where_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        action
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Wall-clock time (UTC) of the first occurrence, HH:MM:SS.
    pub at: String,
    pub text: String,
    /// How many times in a row it happened.
    pub repeats: usize,
    pub error: bool,
}

/// The time of day (UTC) as HH:MM:SS.
pub fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

impl MorphoApp {
    /// Adds a line to the log; the same text again right after only counts up.
    pub(super) fn log_line(&mut self, text: String, error: bool) {
        if let Some(last) = self.log.last_mut() {
            if last.text == text {
                last.repeats += 1;
                return;
            }
        }
        self.log.push(LogLine {
            at: clock(),
            text,
            repeats: 1,
            error,
        });
    }

    /// The log panel: time, message, errors in red; copy and clear.
    pub(super) fn log_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong(format!("Log ({} lines, times in UTC)", self.log.len()));
            if ui.small_button("Copy all").clicked() {
                let text: Vec<String> = self
                    .log
                    .iter()
                    .map(|l| format!("{} {}", l.at, l.text))
                    .collect();
                ui.ctx().copy_text(text.join("\n"));
            }
            if ui.small_button("Clear").clicked() {
                self.log.clear();
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("log")
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for line in &self.log {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(egui::RichText::new(&line.at).monospace().weak());
                        let text = if line.repeats > 1 {
                            format!("{} (×{})", line.text, line.repeats)
                        } else {
                            line.text.clone()
                        };
                        if line.error {
                            ui.colored_label(ui.visuals().error_fg_color, text);
                        } else {
                            ui.label(text);
                        }
                    });
                }
            });
    }
}
