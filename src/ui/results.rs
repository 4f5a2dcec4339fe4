//! Search results: a grid of thumbnails with rank and similarity, the selected sample's details
//! (larger image, every synthesis parameter, file name, score, "Find similar"), and a summary
//! of what the top matches have in common.

use std::collections::HashMap;

use egui_extras::{Column, TableBuilder};

use super::{Action, Thumbnails};
use crate::engine::library::index::{Hit, Index};

/// Side of a result tile in points.
const TILE: f32 = 116.0;

/// Draws one thumbnail tile; returns true when clicked. Missing thumbnails are requested.
pub fn tile_ui(
    ui: &mut egui::Ui,
    entry: usize,
    caption: &str,
    thumbs: &Thumbnails,
    selected: bool,
    missing: &mut Vec<usize>,
) -> bool {
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(TILE, TILE + 18.0), egui::Sense::click());
    let image_rect = egui::Rect::from_min_size(rect.min, egui::vec2(TILE, TILE));
    match thumbs.get(entry) {
        Some(t) => {
            egui::Image::new(t)
                .fit_to_exact_size(image_rect.size())
                .paint_at(ui, image_rect);
        }
        None => {
            ui.painter()
                .rect_filled(image_rect, 2.0, ui.visuals().faint_bg_color);
            missing.push(entry);
        }
    }
    if selected {
        ui.painter().rect_stroke(
            image_rect,
            2.0,
            egui::Stroke::new(3.0, ui.visuals().selection.stroke.color),
            egui::StrokeKind::Inside,
        );
    }
    // Clipped to the tile: a long caption must not run into its neighbour (the hover text
    // shows it whole).
    ui.painter_at(rect).text(
        egui::pos2(rect.min.x + 2.0, rect.max.y - 1.0),
        egui::Align2::LEFT_BOTTOM,
        caption,
        egui::FontId::proportional(12.0),
        ui.visuals().text_color(),
    );
    response.on_hover_text(caption).clicked()
}

/// The results grid.
pub fn grid_ui(
    ui: &mut egui::Ui,
    index: &Index,
    hits: &[Hit],
    thumbs: &Thumbnails,
    selected: Option<usize>,
    missing: &mut Vec<usize>,
) -> Option<Action> {
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        for (rank, h) in hits.iter().enumerate() {
            let name = index.entries[h.entry].path.rsplit('/').next().unwrap_or("");
            let caption = format!("#{} {:.3} {name}", rank + 1, h.score);
            if tile_ui(
                ui,
                h.entry,
                &caption,
                thumbs,
                selected == Some(h.entry),
                missing,
            ) {
                action = Some(Action::Select(h.entry));
            }
        }
    });
    action
}

/// What the given samples have in common: per parameter, the numeric range or the most common
/// text value (with its count).
pub fn summarise(index: &Index, entries: &[usize]) -> Vec<(String, String)> {
    index
        .columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let values: Vec<_> = entries
                .iter()
                .filter_map(|&e| index.params.get(e).and_then(|p| p.get(c)))
                .collect();
            let numbers: Vec<f64> = values.iter().filter_map(|v| v.number).collect();
            let text = if !numbers.is_empty()
                && numbers.len() == values.iter().filter(|v| !v.text.is_empty()).count()
            {
                let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let unit = values
                    .iter()
                    .find_map(|v| v.unit.clone())
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default();
                if lo == hi {
                    format!("{lo}{unit}")
                } else {
                    format!("{lo} – {hi}{unit}")
                }
            } else {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for v in &values {
                    *counts
                        .entry(if v.text.is_empty() {
                            "(none)"
                        } else {
                            v.text.as_str()
                        })
                        .or_default() += 1;
                }
                let mut best: Vec<_> = counts.into_iter().collect();
                best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                best.first().map_or_else(String::new, |(v, n)| {
                    format!("{v} ({n} of {})", values.len())
                })
            };
            (name.clone(), text)
        })
        .collect()
}

/// The summary row under the results.
pub fn summary_ui(ui: &mut egui::Ui, index: &Index, hits: &[Hit]) {
    if hits.is_empty() || index.columns.is_empty() {
        return;
    }
    let entries: Vec<usize> = hits.iter().map(|h| h.entry).collect();
    ui.label(egui::RichText::new(format!("What the top {} have in common", hits.len())).strong());
    ui.horizontal_wrapped(|ui| {
        for (name, value) in summarise(index, &entries) {
            ui.label(format!("{name}: {value};"));
        }
    });
}

/// Details of one sample; `score` is (value, from a sketch query).
pub fn detail_ui(
    ui: &mut egui::Ui,
    index: &Index,
    entry: usize,
    score: Option<(f32, bool)>,
    thumbs: &Thumbnails,
    missing: &mut Vec<usize>,
) -> Option<Action> {
    let mut action = None;
    let e = index.entries.get(entry)?;
    ui.heading(e.path.rsplit('/').next().unwrap_or(&e.path));
    ui.label(format!(
        "{}  ({} × {} px{})",
        e.path,
        e.width,
        e.height,
        if e.data_bar_rows > 0 {
            format!(", data bar of {} rows cut", e.data_bar_rows)
        } else {
            String::new()
        }
    ));
    if let Some(s) = score {
        match s {
            (s, false) => ui.label(format!("Similarity {s:.3} (cosine)")),
            (s, true) => ui.label(format!("Sketch match {s:.2}"))
                .on_hover_text("Blend of the contour and image similarities, each in standard deviations above the database average"),
        };
    }
    if let Some(p) = &e.particles {
        ui.horizontal(|ui| {
            ui.label(format!("Particles: {}", p.describe()));
            if ui
                .small_button("Measure…")
                .on_hover_text("Outline and measure every particle (Particles view)")
                .clicked()
            {
                action = Some(Action::AnalyseParticles(
                    crate::ui::particles::ParticleTarget::Entry(entry),
                ));
            }
        });
        crate::ui::particles::shape_bar_ui(ui, &p.shape_fractions, 200.0);
    }
    match thumbs.get(entry) {
        Some(t) => {
            let side = ui.available_width().min(260.0);
            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(side, side)));
        }
        None => missing.push(entry),
    }
    if ui
        .button("Find similar")
        .on_hover_text("Search the database with this sample's image")
        .clicked()
    {
        action = Some(Action::QueryEntry(entry));
    }
    let params = index.params.get(entry).cloned().unwrap_or_default();
    if params.is_empty() {
        ui.label("No synthesis record for this image.");
        return action;
    }
    ui.push_id(("params", entry), |ui| {
        TableBuilder::new(ui)
            .striped(true)
            .column(Column::auto().at_least(120.0))
            .column(Column::remainder())
            .header(18.0, |mut h| {
                h.col(|ui| {
                    ui.strong("Parameter");
                });
                h.col(|ui| {
                    ui.strong("Value");
                });
            })
            .body(|mut body| {
                for (name, v) in index.columns.iter().zip(&params) {
                    body.row(18.0, |mut row| {
                        row.col(|ui| {
                            ui.label(name);
                        });
                        row.col(|ui| {
                            let shown = match (v.number, &v.unit) {
                                (Some(n), Some(u)) if u == "s" => format!("{} ({n} s)", v.text),
                                _ if v.text.is_empty() => "—".to_string(),
                                _ => v.text.clone(),
                            };
                            ui.label(shown);
                        });
                    });
                }
            });
    });
    action
}
