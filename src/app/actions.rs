//! The one place actions take effect: what each user request does to the state and which
//! job it sends; exports.

use super::*;

impl MorphoApp {
    /// The one place actions take effect.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::OpenDemo => {
                self.banner = None;
                self.is_demo = true;
                let dir = self.demo_dir.clone();
                self.db_field = dir.display().to_string();
                self.table_field = dir.join("synthesis.csv").display().to_string();
                let sketch = SketchConfig {
                    contours: self.settings.contours,
                    ..SketchConfig::default()
                };
                self.send(Job::OpenDemo {
                    dir,
                    images: self.demo_images,
                    index_path: self.index_file.clone(),
                    sketch,
                });
            }
            Action::OpenDatabase { db_dir, table } => {
                self.banner = None;
                self.is_demo = db_dir == self.demo_dir;
                self.open(db_dir, table);
            }
            Action::QueryFile(path) => {
                let label = path.display().to_string();
                self.search_image(QuerySource::File(path), label);
            }
            Action::QueryEntry(entry) => {
                let Some(label) = self
                    .index
                    .as_ref()
                    .and_then(|i| i.entries.get(entry))
                    .map(|e| e.path.clone())
                else {
                    return;
                };
                self.search_image(QuerySource::Entry(entry), label);
                self.view = View::Results;
            }
            Action::Research => self.rerun_query(),
            Action::SearchRegion(crop) => self.search_region(crop),
            Action::ClearQuery => {
                self.clear_query();
                self.canvas.strokes.clear();
            }
            Action::SetConditions => {
                if self.apply_conditions() {
                    self.rerun_query();
                }
            }
            Action::Select(entry) => {
                self.selected = Some(entry);
                if self.view == View::Contours {
                    self.apply(Action::Preview);
                }
            }
            Action::SketchChanged => {
                if self.canvas.strokes.is_empty() {
                    // Cleared: the sketch query ends now, not after the pause.
                    self.sketch_due = None;
                    self.search_sketch();
                } else {
                    self.sketch_due = Some(Instant::now() + SKETCH_DEBOUNCE);
                }
            }
            Action::Preview => {
                if let Some(entry) = self.selected {
                    self.send(Job::Preview {
                        entry,
                        settings: self.settings.contours,
                    });
                }
            }
            Action::ApplyContours(settings) => {
                self.confirm_apply = false;
                self.settings.contours = settings;
                self.send(Job::ApplyContours(settings));
            }
            Action::Export { path, browse } => match self.export(&path, browse) {
                Ok(n) => {
                    let written = path.canonicalize().unwrap_or(path);
                    self.info(format!("wrote {n} rows to {}", written.display()));
                }
                Err(e) => self.report_error(format!("cannot export to {}: {e}", path.display())),
            },
            Action::CancelJob => {
                self.worker
                    .cancel
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Action::AnalyseParticles(target) => {
                let text = self.particle_fields.pixel_size_nm.trim().to_string();
                let pixel_size_nm = if text.is_empty() {
                    None
                } else {
                    match text.parse::<f64>() {
                        Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                        _ => {
                            self.report_error(format!(
                                "pixel size {text:?}: type a positive number of nanometres"
                            ));
                            return;
                        }
                    }
                };
                self.view = View::Particles;
                self.send(Job::Particles {
                    target,
                    pixel_size_nm,
                });
            }
            Action::ExportParticles(path) => match self.export_particles(&path) {
                Ok((n, written)) => {
                    self.info(format!("wrote {n} particles to {}", written.display()))
                }
                Err(e) => self.report_error(format!("{e:#}")),
            },
        }
    }

    /// Writes the particles on screen as CSV; returns their count and the absolute path.
    pub(super) fn export_particles(&self, path: &Path) -> anyhow::Result<(usize, PathBuf)> {
        let view = self.particles.as_ref().ok_or_else(|| {
            anyhow::anyhow!("no particle analysis to export: measure an image first")
        })?;
        let nm = view.analysis.pixel_size.as_ref().map(|p| p.nm);
        let mut w = csv::Writer::from_path(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        w.write_record(crate::engine::particles::CSV_HEADER)?;
        for p in &view.analysis.particles {
            w.write_record(crate::engine::particles::csv_row(&view.label, p, nm))?;
        }
        w.flush()?;
        let written = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        Ok((view.analysis.particles.len(), written))
    }

    pub(super) fn export(&self, path: &Path, browse: bool) -> anyhow::Result<usize> {
        let index = self
            .index
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no database is open"))?;
        let rows: Vec<(usize, Option<f32>)> = if browse {
            self.browse
                .filtered(index)
                .into_iter()
                .map(|i| (i, None))
                .collect()
        } else {
            self.hits.iter().map(|h| (h.entry, Some(h.score))).collect()
        };
        let mut w = csv::Writer::from_path(path)?;
        let mut header = vec!["rank".to_string(), "path".into(), "score".into()];
        header.extend(index.columns.iter().cloned());
        w.write_record(&header)?;
        for (rank, (entry, score)) in rows.iter().enumerate() {
            let mut rec = vec![
                (rank + 1).to_string(),
                index.entries[*entry].path.clone(),
                score.map(|s| format!("{s:.4}")).unwrap_or_default(),
            ];
            let params = index.params.get(*entry).cloned().unwrap_or_default();
            rec.extend(
                (0..index.columns.len())
                    .map(|c| params.get(c).map(|v| v.text.clone()).unwrap_or_default()),
            );
            w.write_record(&rec)?;
        }
        w.flush()?;
        Ok(rows.len())
    }
    /// The entries a search may return: those the Browse filter shows when "Search only
    /// these" is on (None: all).
    pub fn allowed(&self) -> crate::app::worker::Allowed {
        let index = self.index.as_ref()?;
        if !self.browse.restrict_search && self.conditions.is_empty() {
            return None;
        }
        let mut mask = vec![!self.browse.restrict_search; index.len()];
        if self.browse.restrict_search {
            for i in self.browse.filtered(index) {
                mask[i] = true;
            }
        }
        for (i, m) in mask.iter_mut().enumerate() {
            *m = *m && self.conditions.admits(index, i);
        }
        Some(Arc::new(mask))
    }
}
