//! The GUI's panels. Panels draw and return [`Action`]s; `app.rs` applies them in one place.
//! Nothing here runs the model or touches candle.

pub mod browser;
pub mod canvas;
pub mod duplicates;
pub mod map;
pub mod particles;
pub mod preview;
pub mod results;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::sketch::edges::ContourSettings;

/// A part of the query image, in 0..1 coordinates of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub min: [f32; 2],
    pub max: [f32; 2],
}

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Image,
    Sketch,
}

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
    /// Run the active query again (new k or restriction).
    Research,
    /// Search with the query image shown: a region of it, or all of it (None).
    SearchRegion(Option<Crop>),
    /// Remove the query and its results.
    ClearQuery,
    /// Read the filter bar's recipe conditions and search again.
    SetConditions,
    SketchChanged,
    Preview,
    ApplyContours(ContourSettings),
    Export {
        path: PathBuf,
        browse: bool,
    },
    CancelJob,
    /// Find and measure the particles of the query or a database image.
    AnalyseParticles(particles::ParticleTarget),
    /// Write the particles on screen as CSV.
    ExportParticles(PathBuf),
}

/// How many thumbnails stay uploaded: about 100 MB of 160 px textures, many screens' worth.
pub const THUMBNAIL_CAPACITY: usize = 1000;

/// Uploaded thumbnails, by entry, bounded: once more than `capacity` are held, the ones drawn
/// longest ago are dropped at the end of a frame (never one drawn in that frame), so scrolling
/// through 10,000 images keeps memory flat. A dropped one is loaded again when it is drawn.
pub struct Thumbnails {
    textures: HashMap<usize, (egui::TextureHandle, Cell<u64>)>,
    frame: u64,
    capacity: usize,
}

impl Thumbnails {
    pub fn new(capacity: usize) -> Self {
        Self {
            textures: HashMap::new(),
            frame: 0,
            capacity: capacity.max(1),
        }
    }

    /// The texture of `entry`, marked as drawn in this frame.
    pub fn get(&self, entry: usize) -> Option<&egui::TextureHandle> {
        self.textures.get(&entry).map(|(t, used)| {
            used.set(self.frame);
            t
        })
    }

    pub fn insert(&mut self, entry: usize, texture: egui::TextureHandle) {
        self.textures
            .insert(entry, (texture, Cell::new(self.frame)));
    }

    pub fn contains(&self, entry: usize) -> bool {
        self.textures.contains_key(&entry)
    }

    pub fn len(&self) -> usize {
        self.textures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.textures.is_empty()
    }

    pub fn clear(&mut self) {
        self.textures.clear();
    }

    /// Ends a frame: above capacity, drops the least recently drawn down to 90 % of it (the
    /// margin keeps this from sorting every frame while thumbnails stream in).
    pub fn end_frame(&mut self) {
        if self.textures.len() > self.capacity {
            let mut old: Vec<(u64, usize)> = self
                .textures
                .iter()
                .filter(|(_, (_, used))| used.get() < self.frame)
                .map(|(&e, (_, used))| (used.get(), e))
                .collect();
            old.sort_unstable();
            let excess = self.textures.len() - self.capacity * 9 / 10;
            for (_, e) in old.into_iter().take(excess) {
                self.textures.remove(&e);
            }
        }
        self.frame += 1;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_drop_the_least_recently_drawn() {
        let ctx = egui::Context::default();
        let img = egui::ColorImage::new([2, 2], vec![egui::Color32::WHITE; 4]);
        let mut t = Thumbnails::new(10);
        for e in 0..10 {
            t.insert(e, ctx.load_texture("t", img.clone(), Default::default()));
            t.end_frame();
        }
        assert_eq!(t.len(), 10, "at capacity nothing is dropped");
        // Entry 0 is drawn again; two new ones arrive in the same frame.
        assert!(t.get(0).is_some());
        for e in 10..12 {
            t.insert(e, ctx.load_texture("t", img.clone(), Default::default()));
        }
        t.end_frame();
        assert_eq!(t.len(), 9, "down to 90 % of capacity");
        for kept in [0, 10, 11, 7, 8, 9] {
            assert!(t.contains(kept), "{kept} was drawn recently and is kept");
        }
        for dropped in [1, 2, 3] {
            assert!(
                !t.contains(dropped),
                "{dropped} was the oldest and is dropped"
            );
        }
    }
}
