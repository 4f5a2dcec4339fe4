//! Identical and near-identical micrographs side by side with the parameters in which their
//! recipes differ: the same image filed under two recipes is what a chemist checking a database
//! needs to see.

use super::results::{file_name, tile_ui, CAPTION};
use super::{Action, Thumbnails};
use crate::engine::library::index::{DuplicatePair, Index};

/// The list of duplicate pairs (virtual scrolling).
pub fn duplicates_ui(
    ui: &mut egui::Ui,
    index: &Index,
    pairs: &[DuplicatePair],
    thumbs: &Thumbnails,
    missing: &mut Vec<usize>,
) -> Option<Action> {
    let mut action = None;
    let exact = pairs.iter().filter(|p| p.exact).count();
    ui.label(format!(
        "{exact} pairs of identical images, {} near-identical pairs",
        pairs.len() - exact
    ));
    egui::ScrollArea::vertical()
        .id_salt("duplicates")
        .show_rows(ui, 116.0 + CAPTION + 8.0, pairs.len(), |ui, range| {
            for d in &pairs[range] {
                ui.horizontal(|ui| {
                    for e in [d.a, d.b] {
                        let entry = &index.entries[e];
                        let size = format!("{} × {} px", entry.width, entry.height);
                        let lines = [file_name(&entry.path), size.as_str()];
                        if tile_ui(ui, e, 116.0, lines, &entry.path, thumbs, false, missing) {
                            action = Some(Action::Select(e));
                        }
                    }
                    ui.vertical(|ui| {
                        ui.strong(if d.exact {
                            "Identical pixels".to_string()
                        } else {
                            format!("Near-identical (similarity {:.3})", d.score)
                        });
                        let diff = index.differing_params(d.a, d.b);
                        if diff.is_empty() {
                            ui.label("Same recipe.");
                        }
                        for (name, va, vb) in diff.iter().take(6) {
                            ui.label(format!("{name}: {va} | {vb}"));
                        }
                        if diff.len() > 6 {
                            ui.label(format!("… and {} more differences", diff.len() - 6));
                        }
                    });
                });
            }
        });
    action
}
