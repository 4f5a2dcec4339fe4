//! The 2-D PCA map of the database (the study's figure of clusters): one point per image,
//! coloured by a parameter or by k-means cluster; hover shows the thumbnail, click selects, the
//! current query is drawn as a cross; the axes say how much variance they explain.

use egui::{Color32, Pos2, Rect, Sense, Vec2};

use super::{Action, Thumbnails};
use crate::engine::library::index::Index;

/// What colours the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorBy {
    #[default]
    Cluster,
    Column(usize),
}

/// Map settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub color_by: ColorBy,
    pub clusters: usize,
}

impl Default for MapState {
    fn default() -> Self {
        Self {
            color_by: ColorBy::Cluster,
            clusters: 4,
        }
    }
}

const PALETTE: [Color32; 10] = [
    Color32::from_rgb(31, 119, 180),
    Color32::from_rgb(255, 127, 14),
    Color32::from_rgb(44, 160, 44),
    Color32::from_rgb(214, 39, 40),
    Color32::from_rgb(148, 103, 189),
    Color32::from_rgb(140, 86, 75),
    Color32::from_rgb(227, 119, 194),
    Color32::from_rgb(127, 127, 127),
    Color32::from_rgb(188, 189, 34),
    Color32::from_rgb(23, 190, 207),
];

/// Colour of category `i`: the ten-colour palette first, then further hues around the colour
/// wheel (golden-angle steps, alternating lightness), so no two categories share a colour.
pub fn category_colour(i: usize) -> Color32 {
    if let Some(c) = PALETTE.get(i) {
        return *c;
    }
    let k = i - PALETTE.len();
    let hue = (0.13 + k as f32 * 0.618_034).fract();
    let value = if k.is_multiple_of(2) { 0.95 } else { 0.65 };
    let saturation = if k % 3 == 2 { 0.45 } else { 0.8 };
    egui::ecolor::Hsva::new(hue, saturation, value, 1.0).into()
}

/// The colour ramp of a numeric colouring, `t` in 0..1 (blue, through purple, to red).
fn ramp(t: f32) -> Color32 {
    Color32::from_rgb(
        (40.0 + 215.0 * t) as u8,
        (60.0 + 80.0 * (1.0 - (2.0 * t - 1.0).abs())) as u8,
        (255.0 * (1.0 - t)) as u8,
    )
}

/// How the points are coloured, for the legend.
#[derive(Debug, Clone, PartialEq)]
pub enum Legend {
    /// One colour per category (cluster or text value).
    Categories(Vec<(String, Color32)>),
    /// A numeric column: its range, drawn as a colour bar.
    Range { name: String, lo: f64, hi: f64 },
}

/// k-means on 2-D points (deterministic k-means++-like start: farthest-point seeding).
pub fn kmeans(points: &[[f32; 2]], k: usize) -> Vec<usize> {
    if points.is_empty() || k == 0 {
        return vec![0; points.len()];
    }
    let d2 = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let mut centres = vec![points[0]];
    while centres.len() < k.min(points.len()) {
        let far = points
            .iter()
            .copied()
            .max_by(|&a, &b| {
                let da = centres.iter().map(|&c| d2(a, c)).fold(f32::MAX, f32::min);
                let db = centres.iter().map(|&c| d2(b, c)).fold(f32::MAX, f32::min);
                da.total_cmp(&db)
            })
            .unwrap_or(points[0]);
        centres.push(far);
    }
    let mut labels = vec![0; points.len()];
    for _ in 0..50 {
        let mut changed = false;
        for (l, &p) in labels.iter_mut().zip(points) {
            let best = (0..centres.len())
                .min_by(|&a, &b| d2(p, centres[a]).total_cmp(&d2(p, centres[b])))
                .unwrap_or(0);
            changed |= *l != best;
            *l = best;
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<[f32; 2]> = points
                .iter()
                .zip(&labels)
                .filter(|(_, &l)| l == c)
                .map(|(p, _)| *p)
                .collect();
            if !members.is_empty() {
                let n = members.len() as f32;
                *centre = [
                    members.iter().map(|p| p[0]).sum::<f32>() / n,
                    members.iter().map(|p| p[1]).sum::<f32>() / n,
                ];
            }
        }
        if !changed {
            break;
        }
    }
    labels
}

impl MapState {
    /// Colour of each point under the current setting, and a legend.
    pub fn colours(&self, index: &Index, coords: &[[f32; 2]]) -> (Vec<Color32>, Legend) {
        match self.color_by {
            ColorBy::Cluster => {
                let labels = kmeans(coords, self.clusters);
                let legend = (0..self.clusters.min(coords.len()))
                    .map(|c| (format!("cluster {}", c + 1), category_colour(c)))
                    .collect();
                (
                    labels.iter().map(|&l| category_colour(l)).collect(),
                    Legend::Categories(legend),
                )
            }
            ColorBy::Column(c) => {
                let values: Vec<_> = (0..index.len())
                    .map(|i| {
                        index
                            .params
                            .get(i)
                            .and_then(|p| p.get(c))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                let numbers: Vec<f64> = values.iter().filter_map(|v| v.number).collect();
                if numbers.len() * 2 > values.len() {
                    let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let colours = values
                        .iter()
                        .map(|v| {
                            v.number.map_or(Color32::GRAY, |n| {
                                ramp(if hi > lo {
                                    ((n - lo) / (hi - lo)) as f32
                                } else {
                                    0.5
                                })
                            })
                        })
                        .collect();
                    let unit = values.iter().find_map(|v| v.unit.clone());
                    let name = match unit {
                        Some(u) if !index.columns[c].contains(&u) => {
                            format!("{} ({u})", index.columns[c])
                        }
                        _ => index.columns[c].clone(),
                    };
                    (colours, Legend::Range { name, lo, hi })
                } else {
                    let mut cats: Vec<String> = values.iter().map(|v| v.text.clone()).collect();
                    cats.sort();
                    cats.dedup();
                    let colour = |t: &str| {
                        cats.iter()
                            .position(|c| c == t)
                            .map_or(Color32::GRAY, category_colour)
                    };
                    let legend = cats
                        .iter()
                        .map(|c| {
                            (
                                if c.is_empty() {
                                    "(none)".into()
                                } else {
                                    c.clone()
                                },
                                colour(c),
                            )
                        })
                        .collect();
                    (
                        values.iter().map(|v| colour(&v.text)).collect(),
                        Legend::Categories(legend),
                    )
                }
            }
        }
    }

    /// The map view.
    #[allow(clippy::too_many_arguments)]
    pub fn map_ui(
        &mut self,
        ui: &mut egui::Ui,
        index: &Index,
        coords: &[[f32; 2]],
        query: Option<[f32; 2]>,
        thumbs: &Thumbnails,
        selected: Option<usize>,
        missing: &mut Vec<usize>,
    ) -> Option<Action> {
        let mut action = None;
        ui.horizontal_wrapped(|ui| {
            ui.label("Colour by");
            let current = match self.color_by {
                ColorBy::Cluster => "k-means cluster".to_string(),
                ColorBy::Column(c) => index.columns.get(c).cloned().unwrap_or_default(),
            };
            egui::ComboBox::from_id_salt("colour_by")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.color_by, ColorBy::Cluster, "k-means cluster");
                    for (c, name) in index.columns.iter().enumerate() {
                        ui.selectable_value(&mut self.color_by, ColorBy::Column(c), name);
                    }
                });
            if self.color_by == ColorBy::Cluster {
                ui.add(egui::Slider::new(&mut self.clusters, 2..=10).text("k"));
            }
            if let Some(p) = &index.image_space.projection {
                let ev = |k: usize| p.explained.get(k).copied().unwrap_or(0.0) * 100.0;
                ui.label(format!(
                    "PC1 explains {:.1} %, PC2 {:.1} % of the variance",
                    ev(0),
                    ev(1)
                ));
            }
        });
        if coords.is_empty() {
            ui.label("The map needs at least two indexed images.");
            return None;
        }
        let (colours, legend) = self.colours(index, coords);
        match legend {
            Legend::Categories(items) => {
                ui.horizontal_wrapped(|ui| {
                    for (name, c) in items {
                        let (r, _) = ui.allocate_exact_size(Vec2::splat(10.0), Sense::hover());
                        ui.painter().circle_filled(r.center(), 4.5, c);
                        ui.label(name);
                    }
                });
            }
            Legend::Range { name, lo, hi } => colour_bar_ui(ui, &name, lo, hi),
        }
        let size = ui.available_size().max(Vec2::splat(100.0));
        let (response, painter) = ui.allocate_painter(size, Sense::click());
        let rect = response.rect.shrink(12.0);
        painter.rect_filled(response.rect, 2.0, ui.visuals().extreme_bg_color);
        let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
        for p in coords.iter().chain(query.iter()) {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let to_screen = |p: [f32; 2]| -> Pos2 {
            let t = |k: usize| {
                if hi[k] > lo[k] {
                    (p[k] - lo[k]) / (hi[k] - lo[k])
                } else {
                    0.5
                }
            };
            Pos2::new(
                rect.left() + t(0) * rect.width(),
                rect.bottom() - t(1) * rect.height(),
            )
        };
        let mut nearest: Option<(usize, f32)> = None;
        let hover = response.hover_pos();
        for (i, (&p, &c)) in coords.iter().zip(&colours).enumerate() {
            let s = to_screen(p);
            painter.circle_filled(s, if selected == Some(i) { 6.0 } else { 3.5 }, c);
            if selected == Some(i) {
                painter.circle_stroke(s, 8.0, egui::Stroke::new(2.0, ui.visuals().text_color()));
            }
            if let Some(h) = hover {
                let d = s.distance(h);
                if d < 10.0 && nearest.is_none_or(|(_, best)| d < best) {
                    nearest = Some((i, d));
                }
            }
        }
        if let Some(q) = query {
            let s = to_screen(q);
            let stroke = egui::Stroke::new(2.5, Color32::RED);
            painter.line_segment([s - Vec2::splat(7.0), s + Vec2::splat(7.0)], stroke);
            painter.line_segment([s + Vec2::new(-7.0, 7.0), s + Vec2::new(7.0, -7.0)], stroke);
            // The label goes to whichever side of the cross has room for it.
            let (offset, align) = if s.x + 60.0 < response.rect.right() {
                (Vec2::new(9.0, -9.0), egui::Align2::LEFT_BOTTOM)
            } else {
                (Vec2::new(-9.0, -9.0), egui::Align2::RIGHT_BOTTOM)
            };
            painter.text(
                s + offset,
                align,
                "query",
                egui::FontId::proportional(12.0),
                Color32::RED,
            );
        }
        painter.text(
            Pos2::new(rect.center().x, response.rect.bottom() - 2.0),
            egui::Align2::CENTER_BOTTOM,
            "PC1",
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
        );
        painter.text(
            Pos2::new(response.rect.left() + 2.0, rect.center().y),
            egui::Align2::LEFT_CENTER,
            "PC2",
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
        );
        if let Some((i, _)) = nearest {
            // Beside the point, on whichever side keeps the preview (and its name) inside.
            let p = to_screen(coords[i]);
            let size = Vec2::new(120.0, 136.0);
            let area = response.rect;
            let x = if p.x + 12.0 + size.x <= area.right() {
                p.x + 12.0
            } else {
                p.x - 12.0 - size.x
            };
            let y = if p.y + 12.0 + size.y <= area.bottom() {
                p.y + 12.0
            } else {
                p.y - 12.0 - size.y
            };
            let x = x.clamp(area.left(), (area.right() - size.x).max(area.left()));
            let y = y.clamp(area.top(), (area.bottom() - size.y).max(area.top()));
            let tip = Rect::from_min_size(Pos2::new(x, y), Vec2::splat(120.0));
            match thumbs.get(i) {
                Some(t) => egui::Image::new(t)
                    .fit_to_exact_size(tip.size())
                    .paint_at(ui, tip),
                None => missing.push(i),
            }
            let font = egui::FontId::proportional(12.0);
            let name = super::results::elide_middle(
                ui,
                super::results::file_name(&index.entries[i].path),
                &font,
                size.x,
            );
            painter.text(
                tip.left_bottom() + Vec2::new(0.0, 2.0),
                egui::Align2::LEFT_TOP,
                name,
                font,
                ui.visuals().text_color(),
            );
            if response.clicked() {
                action = Some(Action::Select(i));
            }
        }
        action
    }
}

/// A horizontal colour bar from `lo` to `hi`, with the column's name and its ends.
fn colour_bar_ui(ui: &mut egui::Ui, name: &str, lo: f64, hi: f64) {
    ui.horizontal(|ui| {
        ui.label(name);
        ui.label(format!("{lo}"));
        let (rect, _) = ui.allocate_exact_size(Vec2::new(180.0, 12.0), Sense::hover());
        let steps = 36;
        for k in 0..steps {
            let t = k as f32 / (steps - 1) as f32;
            let x0 = rect.left() + rect.width() * k as f32 / steps as f32;
            let x1 = rect.left() + rect.width() * (k + 1) as f32 / steps as f32;
            let r = Rect::from_min_max(Pos2::new(x0, rect.top()), Pos2::new(x1, rect.bottom()));
            ui.painter().rect_filled(r, 0.0, ramp(t));
        }
        ui.label(format!("{hi}"));
        ui.label("(grey: no value)");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_colours_do_not_repeat() {
        let colours: Vec<Color32> = (0..40).map(category_colour).collect();
        for (i, a) in colours.iter().enumerate() {
            for b in &colours[i + 1..] {
                assert_ne!(a, b, "two categories of 40 share a colour");
            }
        }
    }

    #[test]
    fn kmeans_separates_two_blobs() {
        let mut pts = Vec::new();
        for i in 0..20 {
            let j = i as f32 * 0.01;
            pts.push([j, j]);
            pts.push([10.0 + j, 10.0 - j]);
        }
        let labels = kmeans(&pts, 2);
        assert!(labels.iter().step_by(2).all(|&l| l == labels[0]));
        assert!(labels.iter().skip(1).step_by(2).all(|&l| l == labels[1]));
        assert_ne!(labels[0], labels[1]);
    }
}
