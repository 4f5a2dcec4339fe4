//! The GUI's panels. Panels draw and return [`Action`]s; `app.rs` applies them in one place.
//! Nothing here runs the model or touches candle.

pub mod browser;
pub mod canvas;
pub mod duplicates;
pub mod map;
pub mod preview;
pub mod results;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::edges::ContourSettings;

/// Something the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    OpenDatabase {
        db_dir: PathBuf,
        table: Option<PathBuf>,
    },
    OpenDemo,
    QueryFile(PathBuf),
    QueryEntry(usize),
    Select(usize),
    Research,
    SketchChanged,
    Preview,
    ApplyContours(ContourSettings),
    Export {
        path: PathBuf,
        browse: bool,
    },
    CancelJob,
}

/// Uploaded thumbnails, by entry.
pub type Thumbnails = HashMap<usize, egui::TextureHandle>;

/// An image texture from RGBA bytes.
pub fn texture(ctx: &egui::Context, name: &str, rgba: &image::RgbaImage) -> egui::TextureHandle {
    let img = egui::ColorImage::from_rgba_unmultiplied(
        [rgba.width() as usize, rgba.height() as usize],
        rgba.as_raw(),
    );
    ctx.load_texture(name, img, egui::TextureOptions::LINEAR)
}

/// A grey image as a texture.
pub fn gray_texture(
    ctx: &egui::Context,
    name: &str,
    gray: &image::GrayImage,
) -> egui::TextureHandle {
    let rgba = image::DynamicImage::ImageLuma8(gray.clone()).to_rgba8();
    texture(ctx, name, &rgba)
}
