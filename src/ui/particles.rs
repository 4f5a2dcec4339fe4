//! The Particles view: outlines over the image coloured by shape, the size histogram, shape
//! abundance, the per-particle table, and the study's query-vs-matches comparison (shape
//! fractions, median size ± SD, histograms overlaid), all from the engine's measures.

use egui::{Color32, Rect, Stroke, StrokeKind};
use egui_extras::{Column, TableBuilder};

use crate::engine::library::index::{Hit, Index};
use crate::engine::particles::{shape_colour, Analysis, Shape, Summary};
use crate::ui::Action;

/// What a particle analysis was made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticleTarget {
    /// The last query image.
    Query,
    /// A database image.
    Entry(usize),
}

/// An analysis on screen.
pub struct ParticleView {
    pub target: ParticleTarget,
    pub label: String,
    pub analysis: Analysis,
    pub texture: egui::TextureHandle,
}

/// Text fields of the view.
#[derive(Default)]
pub struct ParticleFields {
    pub pixel_size_nm: String,
    pub csv_path: String,
}

/// A colour swatch and its name (drawn, not a glyph: the bundled fonts have no "■").
fn swatch_ui(ui: &mut egui::Ui, colour: Color32, text: &str) {
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, colour);
        ui.label(text);
    });
}

fn colour(shape: Shape) -> Color32 {
    let [r, g, b] = shape_colour(shape);
    Color32::from_rgb(r, g, b)
}

/// Sizes in nm when the scale is known, else px.
fn sizes(summary: &Summary) -> (Vec<f32>, &'static str) {
    sizes_in(summary, summary.pixel_size.is_some())
}

/// Sizes in nm (when `nm` and the scale is known) or px: a comparison uses one unit for all.
fn sizes_in(summary: &Summary, nm: bool) -> (Vec<f32>, &'static str) {
    match (&summary.pixel_size, nm) {
        (Some(p), true) => (
            summary.ecd_px.iter().map(|v| v * p.nm as f32).collect(),
            "nm",
        ),
        _ => (summary.ecd_px.clone(), "px"),
    }
}

/// One stacked bar of shape fractions, `width` wide, with the fractions on hover.
pub fn shape_bar_ui(ui: &mut egui::Ui, fractions: &[f32; 5], width: f32) {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, 14.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let mut x = rect.left();
    for shape in Shape::ALL {
        let w = fractions[shape.index()] * rect.width();
        if w > 0.0 {
            let r = Rect::from_min_size(egui::pos2(x, rect.top()), egui::vec2(w, rect.height()));
            painter.rect_filled(r, 0.0, colour(shape));
            x += w;
        }
    }
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::GRAY),
        StrokeKind::Inside,
    );
    let text: Vec<String> = Shape::ALL
        .iter()
        .filter(|s| fractions[s.index()] > 0.0)
        .map(|s| format!("{:.0} % {}", 100.0 * fractions[s.index()], s.name()))
        .collect();
    response.on_hover_text(if text.is_empty() {
        "no particles".to_string()
    } else {
        text.join(", ")
    });
}

/// Histograms of several size distributions on common bins, each normalised to its own count
/// (so a query and the pooled matches compare by shape, not by number).
pub fn histogram_ui(ui: &mut egui::Ui, series: &[(&[f32], Color32, String)], unit: &str) {
    let mut all: Vec<f32> = series
        .iter()
        .flat_map(|(v, _, _)| v.iter().copied())
        .collect();
    if all.is_empty() {
        ui.label("No particles to plot.");
        return;
    }
    all.sort_by(f32::total_cmp);
    let top = all[(all.len() * 98 / 100).min(all.len() - 1)].max(1e-3);
    const BINS: usize = 24;
    let width = ui.available_width().clamp(200.0, 520.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 120.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::GRAY),
        StrokeKind::Inside,
    );
    let counts: Vec<Vec<f32>> = series
        .iter()
        .map(|(values, _, _)| {
            let mut c = vec![0f32; BINS];
            for &v in values.iter() {
                c[((v / top * BINS as f32) as usize).min(BINS - 1)] +=
                    1.0 / values.len().max(1) as f32;
            }
            c
        })
        .collect();
    let peak = counts
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f32::max)
        .max(1e-6);
    let bin_w = rect.width() / BINS as f32;
    for (c, (_, col, _)) in counts.iter().zip(series) {
        for (i, &f) in c.iter().enumerate() {
            let h = f / peak * (rect.height() - 4.0);
            let r = Rect::from_min_max(
                egui::pos2(rect.left() + i as f32 * bin_w + 1.0, rect.bottom() - h),
                egui::pos2(rect.left() + (i + 1) as f32 * bin_w - 1.0, rect.bottom()),
            );
            painter.rect_filled(r, 0.0, col.gamma_multiply(0.45));
            painter.rect_stroke(r, 0.0, Stroke::new(1.0, *col), StrokeKind::Inside);
        }
    }
    ui.horizontal(|ui| {
        ui.label(format!("0 … {top:.0} {unit} (ECD)"));
        for (_, col, name) in series {
            swatch_ui(ui, *col, name);
        }
    });
}

fn summary_text(s: &Summary) -> String {
    match &s.pixel_size {
        Some(p) => format!(
            "{} (scale {:.3} nm/px from {})",
            s.describe(),
            p.nm,
            p.source
        ),
        None => format!("{} (unknown scale: sizes in px)", s.describe()),
    }
}

/// The whole view. Returns what the user asked for.
pub fn particles_ui(
    ui: &mut egui::Ui,
    view: Option<&ParticleView>,
    fields: &mut ParticleFields,
    index: &Index,
    hits: &[Hit],
    selected: Option<usize>,
    has_query: bool,
) -> Option<Action> {
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        ui.label("Measure the particles of");
        if ui
            .add_enabled(has_query, egui::Button::new("the query image"))
            .on_disabled_hover_text("Search with an image first")
            .clicked()
        {
            action = Some(Action::AnalyseParticles(ParticleTarget::Query));
        }
        if ui
            .add_enabled(selected.is_some(), egui::Button::new("the selected sample"))
            .on_disabled_hover_text("Click a sample first")
            .clicked()
        {
            if let Some(e) = selected {
                action = Some(Action::AnalyseParticles(ParticleTarget::Entry(e)));
            }
        }
        ui.separator();
        ui.label("Pixel size (nm) when the file has none:");
        let field =
            ui.add(egui::TextEdit::singleline(&mut fields.pixel_size_nm).desired_width(60.0));
        if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            if let Some(v) = view {
                action = Some(Action::AnalyseParticles(v.target));
            }
        }
    });
    ui.horizontal(|ui| {
        for shape in Shape::ALL {
            swatch_ui(ui, colour(shape), shape.name());
        }
    });
    ui.separator();
    let Some(view) = view else {
        ui.label("Choose an image above: its particles are found, outlined by shape class and measured (size in nm where the file or table gives the scale).");
        return action;
    };
    let summary = view.analysis.summary();
    ui.strong(&view.label);
    ui.label(summary_text(&summary));
    let side = ui.available_width().min(360.0);
    let aspect = view.analysis.height as f32 / view.analysis.width.max(1) as f32;
    ui.add(egui::Image::new(&view.texture).fit_to_exact_size(egui::vec2(side, side * aspect)));
    shape_bar_ui(ui, &summary.shape_fractions, side.min(400.0));
    let (own, unit) = sizes(&summary);
    let blue = Color32::from_rgb(0, 114, 178);
    histogram_ui(ui, &[(&own, blue, view.label.clone())], unit);

    if view.target == ParticleTarget::Query && !hits.is_empty() {
        ui.separator();
        ui.strong(format!("Query vs the top {} matches", hits.len()));
        let matches: Vec<&Summary> = hits
            .iter()
            .filter_map(|h| index.entries.get(h.entry)?.particles.as_ref())
            .collect();
        // One unit for the whole comparison: nm only when every image has a scale.
        let in_nm = summary.pixel_size.is_some() && matches.iter().all(|m| m.pixel_size.is_some());
        let (own, unit) = sizes_in(&summary, in_nm);
        let pooled: Vec<f32> = matches.iter().flat_map(|m| sizes_in(m, in_nm).0).collect();
        let orange = Color32::from_rgb(230, 159, 0);
        histogram_ui(
            ui,
            &[
                (&own, blue, "query".into()),
                (&pooled, orange, "matches (pooled)".into()),
            ],
            unit,
        );
        egui::Grid::new("compare").striped(true).show(ui, |ui| {
            ui.strong("Image");
            ui.strong("Particles");
            ui.strong(format!("Median ± SD ({unit})"));
            ui.strong("Shapes");
            ui.end_row();
            let row = |ui: &mut egui::Ui, name: &str, s: &Summary| {
                ui.label(name);
                ui.label(s.count.to_string());
                let (v, _) = sizes_in(s, in_nm);
                let mean = v.iter().sum::<f32>() / v.len().max(1) as f32;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>()
                    / v.len().max(1) as f32)
                    .sqrt();
                let median = v.get(v.len() / 2).copied();
                ui.label(median.map_or("—".into(), |m| format!("{m:.0} ± {sd:.0}")));
                shape_bar_ui(ui, &s.shape_fractions, 160.0);
                ui.end_row();
            };
            row(ui, "query", &summary);
            for h in hits {
                if let Some(e) = index.entries.get(h.entry) {
                    match &e.particles {
                        Some(s) => row(ui, e.path.rsplit('/').next().unwrap_or(&e.path), s),
                        None => {
                            ui.label(&e.path);
                            ui.label("not measured");
                            ui.end_row();
                        }
                    }
                }
            }
        });
    }

    ui.separator();
    ui.horizontal(|ui| {
        ui.label("CSV file:");
        ui.add(
            egui::TextEdit::singleline(&mut fields.csv_path)
                .hint_text("particles.csv")
                .desired_width(220.0),
        );
        if ui.button("Export particles").clicked() {
            let path = if fields.csv_path.trim().is_empty() {
                "particles.csv"
            } else {
                fields.csv_path.trim()
            };
            action = Some(Action::ExportParticles(path.into()));
        }
    });
    let nm = view.analysis.pixel_size.as_ref().map(|p| p.nm);
    ui.push_id("particle_table", |ui| {
        TableBuilder::new(ui)
            .striped(true)
            .max_scroll_height(260.0)
            .columns(Column::auto().at_least(48.0), 7)
            .header(18.0, |mut h| {
                for name in [
                    "#",
                    "ECD",
                    "Feret max",
                    "Feret min",
                    "Aspect",
                    "Circularity",
                    "Shape",
                ] {
                    h.col(|ui| {
                        ui.strong(name);
                    });
                }
            })
            .body(|body| {
                let particles = &view.analysis.particles;
                body.rows(18.0, particles.len(), |mut row| {
                    let p = &particles[row.index()];
                    let length = |px: f64| match nm {
                        Some(nm) => format!("{:.0} nm", px * nm),
                        None => format!("{px:.1} px"),
                    };
                    for text in [
                        p.label.to_string(),
                        length(p.ecd_px),
                        length(p.feret_max_px),
                        length(p.feret_min_px),
                        format!("{:.2}", p.aspect_ratio),
                        format!("{:.2}", p.circularity),
                        p.shape.name().to_string(),
                    ] {
                        row.col(|ui| {
                            ui.label(text);
                        });
                    }
                });
            });
    });
    action
}
