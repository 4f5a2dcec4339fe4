//! Search results: a grid of thumbnails with rank and similarity, the selected sample's details
//! (larger image, every synthesis parameter, file name, score, "Find similar"), and a summary
//! of what the top matches have in common.

use std::collections::HashMap;

use super::{Action, QueryKind, Thumbnails};
use crate::engine::library::index::{Hit, Index};

/// What the scores of a kind of query mean, in a chemist's words.
pub fn score_meaning(kind: QueryKind) -> &'static str {
    match kind {
        QueryKind::Image => {
            "Scores are the cosine similarity of the VGG16 image features: 1 means the same \
             features, about 0.5 and below little in common."
        }
        QueryKind::Sketch => {
            "Scores say how much better than the library's average sample the drawing \
             matches, in standard deviations (σ): the best matches are usually +2 to +4 σ, \
             0 is an average sample, negative is worse than average."
        }
    }
}

/// A score as a caption shows it.
pub fn score_text(kind: QueryKind, score: f32) -> String {
    match kind {
        QueryKind::Image => format!("{score:.3}"),
        QueryKind::Sketch => format!("{score:+.1}σ"),
    }
}

/// Smallest and largest side of a thumbnail tile in points; tiles grow with the window.
const TILE_MIN: f32 = 100.0;
const TILE_MAX: f32 = 300.0;
/// Aimed-at side: as many tiles of about this size as fit in a row.
const TILE_AIM: f32 = 150.0;
/// Height of a tile's two caption lines.
pub const CAPTION: f32 = 32.0;

/// How many tiles fit side by side in `width` points, and their side.
pub fn tile_layout(ui: &egui::Ui, width: f32) -> (usize, f32) {
    let gap = ui.spacing().item_spacing.x;
    let per_row = (((width + gap) / (TILE_AIM + gap)).floor() as usize).max(1);
    let side = ((width + gap) / per_row as f32 - gap).clamp(TILE_MIN, TILE_MAX);
    (per_row, side)
}

/// `text` shortened in the middle with "…" to fit `width` points in `font` (file names keep
/// their start and their number/extension, which tell them apart).
pub fn elide_middle(ui: &egui::Ui, text: &str, font: &egui::FontId, width: f32) -> String {
    let fits = |t: &str| {
        ui.painter()
            .layout_no_wrap(t.to_string(), font.clone(), egui::Color32::WHITE)
            .size()
            .x
            <= width
    };
    if fits(text) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let shortened = |keep: usize| {
        let tail = keep / 2;
        let head = keep - tail;
        let mut s: String = chars[..head].iter().collect();
        s.push('…');
        s.extend(&chars[chars.len() - tail..]);
        s
    };
    // The most characters that still fit (binary search on how many are kept).
    let (mut lo, mut hi) = (0usize, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&shortened(mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    shortened(lo)
}

/// Draws one thumbnail tile of `side` points with two caption lines (each shortened to fit;
/// `hover` shows them whole); returns true when clicked. Missing thumbnails are requested.
#[allow(clippy::too_many_arguments)]
pub fn tile_ui(
    ui: &mut egui::Ui,
    entry: usize,
    side: f32,
    lines: [&str; 2],
    hover: &str,
    thumbs: &Thumbnails,
    selected: bool,
    missing: &mut Vec<usize>,
) -> bool {
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(side, side + CAPTION), egui::Sense::click());
    let image_rect = egui::Rect::from_min_size(rect.min, egui::vec2(side, side));
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
    let font = egui::FontId::proportional(12.0);
    for (k, line) in lines.iter().enumerate() {
        let shown = elide_middle(ui, line, &font, side - 4.0);
        ui.painter_at(rect).text(
            egui::pos2(rect.min.x + 2.0, image_rect.max.y + 1.0 + 15.0 * k as f32),
            egui::Align2::LEFT_TOP,
            shown,
            font.clone(),
            if k == 0 {
                ui.visuals().strong_text_color()
            } else {
                ui.visuals().text_color()
            },
        );
    }
    response.on_hover_text(hover).clicked()
}

/// The file name of a library path.
pub fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The results grid: rank and score, then the file name, under each thumbnail.
pub fn grid_ui(
    ui: &mut egui::Ui,
    index: &Index,
    hits: &[Hit],
    kind: QueryKind,
    thumbs: &Thumbnails,
    selected: Option<usize>,
    missing: &mut Vec<usize>,
) -> Option<Action> {
    let mut action = None;
    let (per_row, side) = tile_layout(ui, ui.available_width());
    for (row, chunk) in hits.chunks(per_row).enumerate() {
        ui.horizontal(|ui| {
            for (col, h) in chunk.iter().enumerate() {
                let rank = row * per_row + col + 1;
                let path = &index.entries[h.entry].path;
                let first = format!("#{rank}  {}", score_text(kind, h.score));
                let hover = format!("#{rank}, score {}: {path}", score_text(kind, h.score));
                if tile_ui(
                    ui,
                    h.entry,
                    side,
                    [&first, file_name(path)],
                    &hover,
                    thumbs,
                    selected == Some(h.entry),
                    missing,
                ) {
                    action = Some(Action::Select(h.entry));
                }
            }
        });
    }
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

/// The summary under the results; `exclude` is the sample that is the query itself, which
/// says nothing about what the matches have in common.
pub fn summary_ui(ui: &mut egui::Ui, index: &Index, hits: &[Hit], exclude: Option<usize>) {
    let entries: Vec<usize> = hits
        .iter()
        .map(|h| h.entry)
        .filter(|e| Some(*e) != exclude)
        .collect();
    if entries.is_empty() || index.columns.is_empty() {
        return;
    }
    let left_out = entries.len() < hits.len();
    ui.label(
        egui::RichText::new(format!(
            "What the top {} have in common{}",
            entries.len(),
            if left_out {
                " (the query's own sample left out)"
            } else {
                ""
            }
        ))
        .strong(),
    );
    ui.horizontal_wrapped(|ui| {
        for (name, value) in summarise(index, &entries) {
            ui.label(format!("{name}: {value};"));
        }
    });
}

/// Details of one sample; `score` is its score for the query of `kind`.
pub fn detail_ui(
    ui: &mut egui::Ui,
    index: &Index,
    entry: usize,
    score: Option<(f32, QueryKind)>,
    thumbs: &Thumbnails,
    missing: &mut Vec<usize>,
) -> Option<Action> {
    let mut action = None;
    let e = index.entries.get(entry)?;
    ui.heading(file_name(&e.path));
    let full = crate::engine::library::database::resolve(&index.db_dir, &e.path);
    ui.add(
        egui::Label::new(
            egui::RichText::new(full.display().to_string())
                .small()
                .weak(),
        )
        .wrap(),
    )
    .on_hover_text("The image file");
    ui.label(format!(
        "{} × {} px{}",
        e.width,
        e.height,
        if e.data_bar_rows > 0 {
            format!(", data bar of {} rows cut", e.data_bar_rows)
        } else {
            String::new()
        }
    ));
    if let Some((s, kind)) = score {
        ui.label(format!("Score {}", score_text(kind, s)))
            .on_hover_text(score_meaning(kind));
    }
    if let Some(p) = &e.particles {
        ui.add(egui::Label::new(format!("Particles: {}", p.describe())).wrap());
        crate::ui::particles::shape_bar_ui(ui, &p.shape_fractions, ui.available_width().min(220.0));
        if ui
            .small_button("Measure…")
            .on_hover_text("Outline and measure every particle (Particles view)")
            .clicked()
        {
            action = Some(Action::AnalyseParticles(
                crate::ui::particles::ParticleTarget::Entry(entry),
            ));
        }
    }
    match thumbs.get(entry) {
        Some(t) => {
            let side = ui.available_width().min(300.0);
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
    // A grid whose cells wrap: long values make rows taller, never the panel wider.
    let half = (ui.available_width() / 2.0 - 8.0).max(60.0);
    egui::Grid::new(("params", entry))
        .striped(true)
        .num_columns(2)
        .max_col_width(half)
        .show(ui, |ui| {
            ui.strong("Parameter");
            ui.strong("Value");
            ui.end_row();
            for (name, v) in index.columns.iter().zip(&params) {
                ui.add(egui::Label::new(name).wrap());
                let shown = match (v.number, &v.unit) {
                    (Some(n), Some(u)) if u == "s" => format!("{} ({n} s)", v.text),
                    _ if v.text.is_empty() => "—".to_string(),
                    _ => v.text.clone(),
                };
                ui.add(egui::Label::new(shown).wrap());
                ui.end_row();
            }
        });
    action
}
