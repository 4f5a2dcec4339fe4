//! Browsing the whole database: a virtual-scrolling thumbnail grid (only visible rows are
//! drawn), filtered by text (any parameter, label or file name) and a numeric range on one
//! parameter, sorted by any parameter.

use super::results::tile_ui;
use super::{Action, Thumbnails};
use crate::engine::index::Index;

/// Filter and sort settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrowseState {
    pub text: String,
    /// Parameter column for the numeric range.
    pub range_column: Option<usize>,
    pub min: String,
    pub max: String,
    pub sort_column: Option<usize>,
    pub descending: bool,
}

impl BrowseState {
    /// Entries passing the filters, in display order.
    pub fn filtered(&self, index: &Index) -> Vec<usize> {
        let needle = self.text.trim().to_lowercase();
        let min: Option<f64> = self.min.trim().parse().ok();
        let max: Option<f64> = self.max.trim().parse().ok();
        let mut out: Vec<usize> = (0..index.len())
            .filter(|&i| {
                let params = index.params.get(i).map(Vec::as_slice).unwrap_or(&[]);
                let text_ok = needle.is_empty()
                    || index.entries[i].path.to_lowercase().contains(&needle)
                    || params
                        .iter()
                        .any(|v| v.text.to_lowercase().contains(&needle));
                let range_ok = match self.range_column {
                    Some(c) if min.is_some() || max.is_some() => params
                        .get(c)
                        .and_then(|v| v.number)
                        .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
                    _ => true,
                };
                text_ok && range_ok
            })
            .collect();
        if let Some(c) = self.sort_column {
            let key = |i: &usize| {
                index
                    .params
                    .get(*i)
                    .and_then(|p| p.get(c))
                    .cloned()
                    .unwrap_or_default()
            };
            out.sort_by(|a, b| {
                let (ka, kb) = (key(a), key(b));
                let ord = match (ka.number, kb.number) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => ka.text.cmp(&kb.text),
                };
                if self.descending {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
        out
    }

    /// Filter bar and grid.
    pub fn browse_ui(
        &mut self,
        ui: &mut egui::Ui,
        index: &Index,
        thumbs: &Thumbnails,
        selected: Option<usize>,
        missing: &mut Vec<usize>,
    ) -> Option<Action> {
        let mut action = None;
        let column_name = |c: Option<usize>| {
            c.and_then(|c| index.columns.get(c))
                .map_or("(none)".to_string(), Clone::clone)
        };
        ui.horizontal_wrapped(|ui| {
            ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.text)
                    .hint_text("text in any parameter, label or name")
                    .desired_width(200.0),
            );
            egui::ComboBox::from_id_salt("range_column")
                .selected_text(column_name(self.range_column))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.range_column, None, "(none)");
                    for (c, name) in index.columns.iter().enumerate() {
                        ui.selectable_value(&mut self.range_column, Some(c), name);
                    }
                });
            ui.add(
                egui::TextEdit::singleline(&mut self.min)
                    .hint_text("min")
                    .desired_width(50.0),
            );
            ui.add(
                egui::TextEdit::singleline(&mut self.max)
                    .hint_text("max")
                    .desired_width(50.0),
            );
            ui.label("Sort by");
            egui::ComboBox::from_id_salt("sort_column")
                .selected_text(column_name(self.sort_column))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sort_column, None, "(none)");
                    for (c, name) in index.columns.iter().enumerate() {
                        ui.selectable_value(&mut self.sort_column, Some(c), name);
                    }
                });
            ui.checkbox(&mut self.descending, "Descending");
        });
        let shown = self.filtered(index);
        ui.label(format!("{} of {} samples", shown.len(), index.len()));
        let per_row = ((ui.available_width() / 122.0).floor() as usize).max(1);
        let rows = shown.len().div_ceil(per_row);
        egui::ScrollArea::vertical()
            .id_salt("browse")
            .show_rows(ui, 140.0, rows, |ui, range| {
                for row in range {
                    ui.horizontal(|ui| {
                        for &i in shown.iter().skip(row * per_row).take(per_row) {
                            let caption = index.entries[i]
                                .path
                                .rsplit('/')
                                .next()
                                .unwrap_or("")
                                .to_string();
                            if tile_ui(ui, i, &caption, thumbs, selected == Some(i), missing) {
                                action = Some(Action::Select(i));
                            }
                        }
                    });
                }
            });
        action
    }
}
