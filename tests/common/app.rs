//! The app driven headless with egui_kittest: a harness on a small demo library, stepping
//! until a condition holds, dropped files, pointer drags.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use morphosearch::app::{AppOptions, MorphoApp, Settings};

#[derive(Debug)]
pub struct DroppedPath(pub PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

pub fn harness(tmp: &Path) -> Harness<'static, MorphoApp> {
    harness_sized(tmp, egui::vec2(1400.0, 900.0))
}

/// The app on a 12-image demo library in `tmp`, in a window of `size` points.
pub fn harness_sized(tmp: &Path, size: egui::Vec2) -> Harness<'static, MorphoApp> {
    let options = AppOptions {
        database: None,
        weights: None,
        demo_dir: tmp.join("demo"),
        demo_images: 12,
        index_file: Some(tmp.join("demo.msidx")),
    };
    let app = MorphoApp::new(&egui::Context::default(), Settings::default(), options)
        .expect("app starts");
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut MorphoApp| app.ui(ui), app)
}

/// Steps the UI until `done` holds (the worker runs meanwhile), or fails after `secs`.
pub fn step_until(
    h: &mut Harness<'static, MorphoApp>,
    secs: u64,
    what: &str,
    done: impl Fn(&MorphoApp) -> bool,
) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; status: {}",
            h.state().status
        );
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

/// Presses the primary button at `from`, moves through `path` (offsets from `from`) a step
/// each, and releases at the last point.
pub fn drag(h: &mut Harness<'static, MorphoApp>, from: egui::Pos2, path: &[(f32, f32)]) {
    h.input_mut().events.push(egui::Event::PointerMoved(from));
    h.input_mut().events.push(egui::Event::PointerButton {
        pos: from,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
    let mut last = from;
    for &(dx, dy) in path {
        last = from + egui::vec2(dx, dy);
        h.input_mut().events.push(egui::Event::PointerMoved(last));
        h.step();
    }
    h.input_mut().events.push(egui::Event::PointerButton {
        pos: last,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
}

/// Whether the last frame asked for no further repaint (the app is idle).
pub fn idle(h: &Harness<'static, MorphoApp>) -> bool {
    h.output()
        .viewport_output
        .values()
        .all(|v| v.repaint_delay == Duration::MAX)
}
