//! Worker events into state: results, progress, thumbnails, previews, particles, errors.

use super::*;

impl MorphoApp {
    /// Handles every event the worker sent since the last frame.
    pub fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            match event {
                Event::Progress { done, total, what } => {
                    let started = self.progress.as_ref().map_or_else(Instant::now, |p| p.3);
                    self.progress = Some((done, total, what, started));
                    continue;
                }
                Event::Opened {
                    index,
                    report,
                    index_path,
                    elapsed_ms,
                } => {
                    self.progress = None;
                    self.duplicates = report.duplicates.clone();
                    self.settings.last_db = Some(index.db_dir.clone());
                    self.settings.last_table = index.table_path.clone();
                    let problems = report.problems.len();
                    self.info(format!(
                        "{} images ready in {:.2} s ({} described, {} unchanged){}",
                        index.len(),
                        elapsed_ms / 1e3,
                        report.described,
                        report.reused,
                        if problems > 0 {
                            format!("; {problems} unreadable, see the log")
                        } else {
                            String::new()
                        }
                    ));
                    for p in report
                        .problems
                        .iter()
                        .chain(&report.table_warnings)
                        .chain(&report.notes)
                    {
                        self.log_line(p.clone(), false);
                    }
                    self.map_coords = index.map_coords();
                    self.thumbs.clear();
                    self.thumb_generation += 1;
                    self.thumb_asked.clear();
                    self.thumb_failed.clear();
                    // The same library again (new contour settings, a refresh): the selected
                    // sample stays selected; another library: nothing is.
                    let same = self
                        .index
                        .as_ref()
                        .is_some_and(|old| old.db_dir == index.db_dir);
                    // Entries are numbered in path order: with the same files the numbers
                    // hold, and the results stay on screen while the query is asked again.
                    let same_files = same
                        && self.index.as_ref().is_some_and(|old| {
                            old.len() == index.len()
                                && old
                                    .entries
                                    .iter()
                                    .zip(&index.entries)
                                    .all(|(a, b)| a.path == b.path)
                        });
                    let selected = self
                        .selected
                        .filter(|_| same)
                        .and_then(|s| self.index.as_ref()?.entries.get(s).map(|e| e.path.clone()))
                        .and_then(|path| index.entries.iter().position(|e| e.path == path));
                    self.index = Some(index);
                    self.index_path = Some(index_path);
                    self.report = Some(report);
                    // The query on screen is asked again of this library, so the results
                    // always answer the query the bar names.
                    if let Some(q) = &mut self.query {
                        if !same {
                            q.entry = None;
                        }
                    }
                    if !same_files {
                        self.hits.clear();
                    }
                    // The conditions name columns of this library now (or say why not).
                    if !self.apply_conditions() {
                        self.conditions = Default::default();
                    }
                    self.rerun_query();
                    self.selected = selected;
                }
                // Always shown, even when a newer query replaced the one that loaded it: it is
                // the image the worker now holds, which a region drag searches.
                Event::QueryImage { label, image } => {
                    let rgba = image::DynamicImage::ImageRgba8(image);
                    if crate::engine::imaging::preprocess::is_uniform(&rgba) {
                        self.report_error(format!(
                            "{label} is one grey level throughout (blank, all black or all \
                             white): its results say nothing about particles"
                        ));
                    }
                    let image = rgba.into_rgba8();
                    self.query_texture = Some(texture(ctx, "query", &image));
                    self.query_label = Some(label);
                    continue;
                }
                Event::Results {
                    query,
                    query_entry,
                    hits,
                    sketch,
                    elapsed_ms,
                    drawing,
                    query_map,
                } => {
                    let Some(q) = self.query.as_mut().filter(|q| q.id == query) else {
                        // An older query's answer: the one on screen replaced it.
                        continue;
                    };
                    q.state = QueryState::Done {
                        results: hits.len(),
                        ms: elapsed_ms,
                    };
                    if !sketch {
                        q.entry = query_entry;
                    }
                    let keep = self.selected.filter(|s| hits.iter().any(|h| h.entry == *s));
                    self.selected = keep.or_else(|| hits.first().map(|h| h.entry));
                    self.hits = hits;
                    self.hits_are_sketch = sketch;
                    self.query_map = query_map;
                    if sketch {
                        self.sketch_textures = drawing
                            .iter()
                            .enumerate()
                            .map(|(i, d)| gray_texture(ctx, &format!("sketch{i}"), d))
                            .collect();
                    }
                    self.status = format!("{} results in {:.0} ms", self.hits.len(), elapsed_ms);
                    continue;
                }
                Event::Thumbnail {
                    generation,
                    entry,
                    image,
                } => {
                    if generation == self.thumb_generation {
                        match image {
                            Ok(image) => self
                                .thumbs
                                .insert(entry, texture(ctx, &format!("thumb{entry}"), &image)),
                            Err(e) => {
                                self.thumb_failed.insert(entry);
                                self.log_line(format!("no thumbnail: {e}"), true);
                            }
                        }
                    }
                    continue;
                }
                Event::Preview { entry, steps } => {
                    if Some(entry) == self.selected {
                        self.preview_entry = Some(entry);
                        self.preview_used = Some((steps.canny_low, steps.canny_high));
                        self.preview_fingerprint = {
                            use std::hash::{Hash, Hasher};
                            let mut h = std::collections::hash_map::DefaultHasher::new();
                            steps.drawing.as_raw().hash(&mut h);
                            steps.edges.as_raw().hash(&mut h);
                            h.finish()
                        };
                        self.preview_textures = Some([
                            gray_texture(ctx, "p1", &steps.denoised),
                            gray_texture(ctx, "p2", &steps.binary),
                            gray_texture(ctx, "p3", &steps.edges),
                            gray_texture(ctx, "p4", &steps.drawing),
                        ]);
                    }
                }
                Event::Particles {
                    target,
                    label,
                    analysis,
                    overlay,
                } => {
                    let texture = crate::ui::texture(ctx, "particles", &overlay);
                    self.info(format!("{label}: {}", analysis.summary().describe()));
                    self.particles = Some(crate::ui::particles::ParticleView {
                        target,
                        label,
                        analysis: *analysis,
                        texture,
                    });
                }
                Event::Cancelled => {
                    self.progress = None;
                    self.info(
                        "Cancelled; the work done so far is kept and continues next time.".into(),
                    );
                }
                Event::Error { query, message } => {
                    match (query, self.query.as_mut()) {
                        // The query on screen failed: its old results go, the bar says why.
                        (Some(id), Some(q)) if q.id == id => {
                            q.state = QueryState::Failed(message.clone());
                            self.hits.clear();
                            self.selected = None;
                            self.report_error(message);
                        }
                        // An older query's failure: it was replaced, only the log keeps it.
                        (Some(_), _) => self.log_line(message, true),
                        (None, _) => {
                            self.progress = None;
                            self.report_error(message);
                        }
                    }
                }
            }
        }
    }

    /// Asks the loader for the thumbnails drawn this frame but not uploaded (replacing what
    /// it still had queued), when that set changed since the last frame.
    pub(super) fn request_thumbnails(&mut self, missing: Vec<usize>) {
        let mut seen = HashSet::new();
        let wanted: Vec<usize> = missing
            .into_iter()
            .filter(|e| !self.thumb_failed.contains(e) && seen.insert(*e))
            .collect();
        if wanted == self.thumb_asked {
            return;
        }
        if let Some(index) = &self.index {
            let requests = wanted
                .iter()
                .filter_map(|&entry| {
                    index.entries.get(entry).map(|e| ThumbnailRequest {
                        entry,
                        path: crate::engine::library::database::resolve(&index.db_dir, &e.path),
                        stored: self.index_path.clone().map(|l| (l, e.path.clone())),
                    })
                })
                .collect();
            self.worker
                .thumbnails
                .request(self.thumb_generation, requests);
        }
        self.thumb_asked = wanted;
    }
}
