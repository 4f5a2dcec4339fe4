//! Input that is not a widget: dropped files and folders, pasted images and paths, keys.

use super::*;

impl MorphoApp {
    pub(super) fn handle_input(&mut self, ctx: &egui::Context) -> Option<Action> {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let mut action = None;
        for path in dropped {
            action = Some(if path.is_dir() {
                Action::OpenDatabase {
                    table: find_table(&path),
                    db_dir: path,
                }
            } else {
                Action::QueryFile(path)
            });
        }
        let (undo, redo, pasted) = ctx.input(|i| {
            let cmd = i.modifiers.command;
            let pasted = i
                .events
                .iter()
                .find_map(|e| match e {
                    egui::Event::PasteImage(img) => Some(Pasted::Image(rgba_from_color(img))),
                    egui::Event::Paste(text) => Some(Pasted::Text(text.clone())),
                    _ => None,
                })
                .or_else(|| (cmd && i.key_pressed(egui::Key::V)).then_some(Pasted::Shortcut));
            (
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && i.modifiers.shift && i.key_pressed(egui::Key::Z),
                pasted,
            )
        });
        if undo && !ctx.egui_wants_keyboard_input() && self.canvas.undo() {
            action = Some(Action::SketchChanged);
        }
        if redo && !ctx.egui_wants_keyboard_input() && self.canvas.redo() {
            action = Some(Action::SketchChanged);
        }
        match pasted {
            // A text field has the keyboard: the paste is its text.
            _ if ctx.egui_wants_keyboard_input() => {}
            None => {}
            Some(Pasted::Image(image)) => self.search_pasted(image),
            Some(Pasted::Text(text)) => match pasted_file(&text) {
                Some(path) => action = Some(Action::QueryFile(path)),
                None => self.paste_from_clipboard(),
            },
            Some(Pasted::Shortcut) => self.paste_from_clipboard(),
        }
        action
    }

    pub(super) fn search_pasted(&mut self, image: image::RgbaImage) {
        let label = "pasted image".to_string();
        self.search_image(
            QuerySource::Rgba {
                label: label.clone(),
                image,
            },
            label,
        );
    }

    /// Reads an image from the system clipboard itself (when the windowing layer passed on only
    /// the key press or some text).
    pub(super) fn paste_from_clipboard(&mut self) {
        match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
            Ok(img) => match image::RgbaImage::from_raw(
                img.width as u32,
                img.height as u32,
                img.bytes.into_owned(),
            ) {
                Some(rgba) => self.search_pasted(rgba),
                None => self.report_error("the clipboard image has an unexpected size".into()),
            },
            Err(e) => self.report_error(format!(
                "no image or image file path on the clipboard ({e})"
            )),
        }
    }
}

/// What a paste brought.
enum Pasted {
    Image(image::RgbaImage),
    Text(String),
    /// Ctrl+V seen, nothing delivered with it.
    Shortcut,
}

fn rgba_from_color(img: &egui::ColorImage) -> image::RgbaImage {
    let bytes = img
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    image::RgbaImage::from_raw(img.size[0] as u32, img.size[1] as u32, bytes).unwrap_or_default()
}

/// The image file named by pasted text: a path or a `file://` URI (as file managers copy
/// them, percent-encoded), first line only; `None` unless it names an existing file.
pub fn pasted_file(text: &str) -> Option<PathBuf> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let raw = line.strip_prefix("file://").unwrap_or(line);
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let path = PathBuf::from(decoded.as_ref());
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn pasted_text_naming_a_file_is_a_query() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("my sample 1.png");
        std::fs::write(&file, b"x").expect("write");
        let plain = file.display().to_string();
        assert_eq!(pasted_file(&plain), Some(file.clone()));
        let uri = format!("file://{}\n", plain.replace(' ', "%20"));
        assert_eq!(pasted_file(&uri), Some(file.clone()));
        assert_eq!(pasted_file(&format!("\n  {plain}  \nother")), Some(file));
        assert_eq!(pasted_file("spheres, 5 um"), None);
        assert_eq!(
            pasted_file(&tmp.path().display().to_string()),
            None,
            "a folder"
        );
        assert_eq!(pasted_file("%zz%"), None);
    }
}
