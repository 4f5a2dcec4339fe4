//! Browsing the whole database: a virtual-scrolling thumbnail grid (only visible rows are
//! drawn), filtered by text (any parameter, label or file name) and a numeric range on one
//! parameter, sorted by any parameter.

use super::results::{file_name, tile_layout, tile_ui, CAPTION};
use super::{Action, Thumbnails};
use crate::engine::library::index::Index;

/// Filter and sort settings, and the entries they let through for the index they were last
/// applied to (filtering 10,000 records every frame would cost more than drawing them).
#[derive(Debug, Clone, Default)]
pub struct BrowseState {
    pub text: String,
    /// Parameter column for the numeric range.
    pub range_column: Option<usize>,
    pub min: String,
    pub max: String,
    pub sort_column: Option<usize>,
    pub descending: bool,
    /// Searches rank only the entries this filter shows.
    pub restrict_search: bool,
    shown: Option<(FilterKey, Vec<usize>)>,
}

/// What a filtered list depends on: the settings and which index (address and size).
#[derive(Debug, Clone, PartialEq)]
struct FilterKey {
    text: String,
    range_column: Option<usize>,
    min: String,
    max: String,
    sort_column: Option<usize>,
    descending: bool,
    index: usize,
    len: usize,
}

impl BrowseState {
    fn key(&self, index: &Index) -> FilterKey {
        FilterKey {
            text: self.text.clone(),
            range_column: self.range_column,
            min: self.min.clone(),
            max: self.max.clone(),
            sort_column: self.sort_column,
            descending: self.descending,
            index: std::ptr::from_ref(index) as usize,
            len: index.len(),
        }
    }

    /// [`Self::filtered`], computed again only when the settings or the index changed.
    pub fn shown(&mut self, index: &Index) -> &[usize] {
        let key = self.key(index);
        if self.shown.as_ref().is_none_or(|(k, _)| *k != key) {
            self.shown = Some((key, self.filtered(index)));
        }
        self.shown.as_ref().map_or(&[], |(_, v)| v.as_slice())
    }

    /// Entries passing the filters, in display order.
    pub fn filtered(&self, index: &Index) -> Vec<usize> {
        let needle = self.text.trim().to_lowercase();
        let min: Option<f64> = self.min.trim().parse().ok();
        let max: Option<f64> = self.max.trim().parse().ok();
        let columns = index.all_columns().len();
        let mut out: Vec<usize> = (0..index.len())
            .filter(|&i| {
                let text_ok = needle.is_empty()
                    || index.entries[i].path.to_lowercase().contains(&needle)
                    || (0..columns)
                        .any(|c| index.value(i, c).text.to_lowercase().contains(&needle));
                let range_ok = match self.range_column {
                    Some(c) if min.is_some() || max.is_some() => index
                        .value(i, c)
                        .number
                        .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
                    _ => true,
                };
                text_ok && range_ok
            })
            .collect();
        if let Some(c) = self.sort_column {
            let key = |i: &usize| index.value(*i, c);
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
        let all_columns = index.all_columns();
        let column_name = |c: Option<usize>| {
            c.and_then(|c| all_columns.get(c))
                .map_or("(none)".to_string(), Clone::clone)
        };
        // Two rows of fixed-width controls: the row never reflows as values change.
        ui.horizontal_wrapped(|ui| {
            ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.text)
                    .hint_text("text in any parameter, label or name")
                    .desired_width(200.0),
            );
            ui.label("Range of");
            egui::ComboBox::from_id_salt("range_column")
                .width(170.0)
                .truncate()
                .selected_text(column_name(self.range_column))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.range_column, None, "(none)");
                    // Only columns with numbers can take a numeric range (looked up while
                    // the list is open, not every frame).
                    let numeric = (0..all_columns.len())
                        .filter(|&c| (0..index.len()).any(|i| index.value(i, c).number.is_some()));
                    for c in numeric {
                        ui.selectable_value(&mut self.range_column, Some(c), &all_columns[c]);
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
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Sort by");
            egui::ComboBox::from_id_salt("sort_column")
                .width(170.0)
                .truncate()
                .selected_text(column_name(self.sort_column))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sort_column, None, "(none)");
                    for (c, name) in all_columns.iter().enumerate() {
                        ui.selectable_value(&mut self.sort_column, Some(c), name);
                    }
                });
            ui.checkbox(&mut self.descending, "Descending");
            ui.checkbox(&mut self.restrict_search, "Search only these")
                .on_hover_text("Image and sketch searches rank only the samples this filter shows (e.g. text \"cube\" and a particle size range)");
        });
        let shown = self.shown(index).to_vec();
        ui.label(format!("{} of {} samples", shown.len(), index.len()));
        // The vertical scroll bar takes its width from the grid, never from the last column.
        let bar = ui.spacing().scroll.allocated_width();
        let (per_row, side) = tile_layout(ui, ui.available_width() - bar);
        let rows = shown.len().div_ceil(per_row);
        let row_height = side + CAPTION + ui.spacing().item_spacing.y;
        egui::ScrollArea::vertical()
            .id_salt("browse")
            .auto_shrink([false, false])
            .show_rows(ui, row_height, rows, |ui, range| {
                for row in range {
                    ui.horizontal(|ui| {
                        for &i in shown.iter().skip(row * per_row).take(per_row) {
                            let path = &index.entries[i].path;
                            // The sorted value leads the caption, so the order can be read.
                            let (first, second, hover) = match self.sort_column {
                                Some(c) => {
                                    let mut v = index.value(i, c).text;
                                    if v.is_empty() {
                                        v = "—".to_string();
                                    }
                                    let hover = format!("{}: {v}\n{path}", all_columns[c]);
                                    (v, file_name(path).to_string(), hover)
                                }
                                None => {
                                    let e = &index.entries[i];
                                    let size = format!("{} × {} px", e.width, e.height);
                                    (file_name(path).to_string(), size, path.clone())
                                }
                            };
                            if tile_ui(
                                ui,
                                i,
                                side,
                                [&first, &second],
                                &hover,
                                thumbs,
                                selected == Some(i),
                                missing,
                            ) {
                                action = Some(Action::Select(i));
                            }
                        }
                    });
                }
            });
        action
    }
}

/// A context for drawing the grid without a window: scrolling applies at once (no animation).
pub fn headless_context() -> egui::Context {
    let ctx = egui::Context::default();
    ctx.all_styles_mut(|s| s.scroll_animation = egui::style::ScrollAnimation::none());
    ctx
}

/// One Browse frame drawn without a window of `size` points, the pointer over the grid and the
/// wheel turned `scroll` points down; `missing` gets the tiles drawn without a thumbnail. The
/// bench and the tests drive the grid with it.
pub fn headless_frame(
    ctx: &egui::Context,
    state: &mut BrowseState,
    index: &Index,
    thumbs: &Thumbnails,
    missing: &mut Vec<usize>,
    size: egui::Vec2,
    scroll: f32,
) -> egui::FullOutput {
    let mut input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, size)),
        ..Default::default()
    };
    input
        .events
        .push(egui::Event::PointerMoved((size / 2.0).to_pos2()));
    if scroll != 0.0 {
        input.events.push(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -scroll),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
    }
    ctx.run_ui(input, |ui| {
        egui::CentralPanel::default().show(ui, |ui| {
            state.browse_ui(ui, index, thumbs, None, missing);
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::library::database::ParamValue;
    use crate::engine::library::index::{Entry, IndexConfig};
    use crate::ui::THUMBNAIL_CAPACITY;

    /// `n` entries whose one parameter is "cube" for multiples of 4 and "sphere" otherwise.
    fn index(n: usize) -> Index {
        let config = IndexConfig {
            weights_sha256: String::new(),
            features: Default::default(),
            pca_dims: 2,
            whiten: false,
            sketch: Default::default(),
            query_sizes: Vec::new(),
            query_size_margin: 0.0,
            rescale_small_queries: false,
        };
        let mut index = Index::new(config, "db".into());
        index.columns = vec!["shape".into()];
        for i in 0..n {
            index.entries.push(Entry {
                path: format!("img{i:05}.png"),
                size_bytes: 1,
                modified_ns: 1,
                pixel_hash: i.to_string(),
                width: 8,
                height: 8,
                data_bar_rows: 0,
                raw: Vec::new(),
                sketch_raw: Vec::new(),
                edge_raw: Vec::new(),
                particles: None,
            });
            let shape = if i % 4 == 0 { "cube" } else { "sphere" };
            index.params.push(vec![ParamValue {
                text: shape.into(),
                number: None,
                unit: None,
            }]);
        }
        index
    }

    #[test]
    fn cached_list_follows_the_filter() {
        let index = index(100);
        let mut b = BrowseState::default();
        assert_eq!(b.shown(&index).len(), 100);
        b.text = "cube".into();
        assert_eq!(b.shown(&index).len(), 25);
        let other = super::tests::index(40);
        assert_eq!(b.shown(&other).len(), 10, "another index is filtered anew");
    }

    #[test]
    fn particle_statistics_filter_and_sort_like_columns() {
        use crate::engine::particles::{PixelSize, Summary};
        let mut index = index(8);
        for (i, e) in index.entries.iter_mut().enumerate() {
            let mut fractions = [0.0; 5];
            fractions[if i % 2 == 0 { 1 } else { 0 }] = 1.0; // cube : sphere
            e.particles = Some(Summary {
                count: 10 + i,
                median_ecd_px: Some(10.0 * (8 - i) as f64),
                shape_fractions: fractions,
                pixel_size: PixelSize::new(5.0, "test"),
                ..Summary::default()
            });
        }
        let columns = index.all_columns();
        let size = columns
            .iter()
            .position(|c| c == "Particle size, median (nm)")
            .expect("column");
        let shape = columns
            .iter()
            .position(|c| c == "Main particle shape")
            .expect("column");
        assert_eq!(index.value(0, shape).text, "cube");
        assert_eq!(index.value(3, size).number, Some(250.0));
        // "cubes, 200-300 nm": entries 2 (300 nm) and 4 (200 nm).
        let mut b = BrowseState {
            text: "cube".into(),
            range_column: Some(size),
            min: "200".into(),
            max: "300".into(),
            sort_column: Some(size),
            ..BrowseState::default()
        };
        assert_eq!(b.filtered(&index), vec![4, 2]);
        b.descending = true;
        assert_eq!(b.filtered(&index), vec![2, 4]);
    }

    /// 10,000 entries: a frame draws (and asks thumbnails for) only the rows in view, and
    /// scrolling through all of them keeps the uploaded thumbnails within capacity.
    #[test]
    fn only_visible_rows_are_drawn_and_thumbnails_stay_bounded() {
        let index = index(10_000);
        let ctx = headless_context();
        let tile = egui::ColorImage::new([4, 4], vec![egui::Color32::GRAY; 16]);
        let mut b = BrowseState::default();
        let mut thumbs = Thumbnails::new(THUMBNAIL_CAPACITY);
        let mut missing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for frame in 0..450 {
            for e in missing.drain(..) {
                seen.insert(e);
                thumbs.insert(e, ctx.load_texture("t", tile.clone(), Default::default()));
            }
            let scroll = if frame > 0 { 700.0 } else { 0.0 };
            let size = egui::vec2(1400.0, 900.0);
            let _ = headless_frame(&ctx, &mut b, &index, &thumbs, &mut missing, size, scroll);
            assert!(
                missing.len() <= 10 * 7,
                "frame {frame} asked for {} thumbnails",
                missing.len()
            );
            thumbs.end_frame();
            assert!(thumbs.len() <= THUMBNAIL_CAPACITY);
        }
        assert_eq!(seen.len(), 10_000, "scrolling reached every entry");
    }
}
