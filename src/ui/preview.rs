//! Live preview of the contour pipeline on the selected sample: the four steps side by side,
//! sliders for contrast, blur sigma and Canny thresholds. Each change asks the worker for a new
//! preview (latest wins); "Apply to library" rebuilds the sketch descriptors with the settings.

use super::Action;
use crate::engine::sketch::edges::{ContourSettings, EdgeSource};

/// The preview panel; `steps` are the four textures when computed. "Apply to library" asks
/// first (`confirm`): it redraws every one of the library's `images`.
pub fn preview_ui(
    ui: &mut egui::Ui,
    settings: &mut ContourSettings,
    steps: Option<&[egui::TextureHandle; 4]>,
    used: Option<(f32, f32)>,
    confirm: &mut bool,
    images: usize,
) -> Option<Action> {
    let mut action = None;
    // Measured before the slider rows, which may run wider than the view.
    let width = ui.available_width();
    let before = *settings;
    let mut clip = settings.contrast_low_pct;
    ui.horizontal_wrapped(|ui| {
        ui.add(egui::Slider::new(&mut clip, 0.0..=20.0).text("Contrast clip %"));
        ui.add(egui::Slider::new(&mut settings.blur_sigma, 0.3..=6.0).text("Blur sigma"));
        let mut auto = settings.canny_high.is_none();
        ui.checkbox(&mut auto, "Automatic thresholds");
        if auto {
            settings.canny_low = None;
            settings.canny_high = None;
        } else {
            let (lo0, hi0) = used.unwrap_or((40.0, 100.0));
            let mut lo = settings.canny_low.unwrap_or(lo0);
            let mut hi = settings.canny_high.unwrap_or(hi0);
            ui.add(egui::Slider::new(&mut lo, 0.0..=600.0).text("Canny low"));
            ui.add(egui::Slider::new(&mut hi, 0.0..=600.0).text("Canny high"));
            settings.canny_low = Some(lo.min(hi));
            settings.canny_high = Some(hi.max(lo));
        }
        let mut binary = settings.edge_source == EdgeSource::Binary;
        ui.checkbox(&mut binary, "Edges of the binarised image");
        settings.edge_source = if binary {
            EdgeSource::Binary
        } else {
            EdgeSource::Denoised
        };
        let mut width = u32::from(settings.line_width_px);
        ui.add(egui::Slider::new(&mut width, 1..=7).text("Line width"));
        settings.line_width_px = width as u8;
    });
    settings.contrast_low_pct = clip;
    settings.contrast_high_pct = 100.0 - clip;
    if *settings != before {
        action = Some(Action::Preview);
    }
    if let Some((lo, hi)) = used {
        ui.label(format!("Canny thresholds in use: {lo:.0} / {hi:.0}"));
    }
    match steps {
        Some(t) => {
            let side = ((width - 32.0) / 4.0).clamp(80.0, 300.0);
            ui.horizontal_wrapped(|ui| {
                for (tex, name) in t.iter().zip([
                    "1. Contrast + denoise",
                    "2. Binarised",
                    "3. Canny edges",
                    "4. Contours",
                ]) {
                    ui.vertical(|ui| {
                        ui.label(name);
                        ui.add(egui::Image::new(tex).fit_to_exact_size(egui::vec2(side, side)));
                    });
                }
            });
        }
        None => {
            ui.label("Select a sample to preview its contour drawing.");
        }
    }
    if *confirm {
        ui.group(|ui| {
            ui.label(format!(
                "Redraw the contour drawings of all {images} samples with these settings? Their \
                 image descriptors and particle measurements are kept; the query on screen is \
                 searched again when it is done. Sketch searches wait until then."
            ));
            ui.horizontal(|ui| {
                if ui.button(format!("Redraw all {images}")).clicked() {
                    action = Some(Action::ApplyContours(*settings));
                }
                if ui.button("Cancel").clicked() {
                    *confirm = false;
                }
            });
        });
    } else if ui
        .button("Apply to library…")
        .on_hover_text(
            "Redraw every database image with these settings and rebuild the sketch index",
        )
        .clicked()
    {
        *confirm = true;
    }
    action
}
