//! The library commands' work: indexing with progress and its report, search output (text and
//! JSON lines), the 2-D map and duplicates listings.

use super::*;
use crate::engine::library::index::conditions::Conditions;

pub(super) fn index_command(
    engine: &Engine,
    job: &IndexJob,
    json_line: bool,
) -> anyhow::Result<i32> {
    let shown = crate::engine::library::store::Location::of(&job.index_path).display();
    let cancel = install_cancel_handler();
    let bar = progress_bar(0, "describing");
    let result = build_index(
        &engine.vgg,
        job,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        &cancel,
    );
    bar.finish_and_clear();
    let (index, report) = match result {
        Err(Error::Cancelled) => {
            eprintln!(
                "Interrupted. The work done so far is saved in {shown}; run the same command again to continue."
            );
            return Ok(130);
        }
        other => other?,
    };
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for w in &report.table_warnings {
        eprintln!("table: {w}");
    }
    for p in &report.problems {
        eprintln!("skipped: {p}");
    }
    if !report.rows_without_image.is_empty() {
        eprintln!(
            "{} table rows name no image in the folder:",
            report.rows_without_image.len()
        );
        for r in report.rows_without_image.iter().take(10) {
            eprintln!("  {r}");
        }
    }
    if !report.images_without_row.is_empty() && job.table.is_some() {
        eprintln!(
            "{} images have no table row:",
            report.images_without_row.len()
        );
        for r in report.images_without_row.iter().take(10) {
            eprintln!("  {r}");
        }
    }
    let summary = format!(
        "indexed {} images ({} described, {} unchanged, {} removed, {} unreadable) into {shown}\n\
         projection: {} dimensions; {} pairs of identical images, {} near-identical (see \
         `morphosearch duplicates`)",
        index.len(),
        report.described,
        report.reused,
        report.removed,
        report.problems.len(),
        index.image_space.dims,
        report.exact_duplicate_pairs,
        report.near_duplicate_pairs
    );
    if index.is_empty() {
        eprintln!("warning: the database has no readable images");
    }
    if json_line {
        // The human summary to stderr, this run's counts as the one line on stdout.
        eprintln!("{summary}");
        println!(
            "{}",
            json!({"described": report.described, "unchanged": report.reused,
                   "removed": report.removed, "failed": report.problems.len(),
                   "images": index.len()})
        );
    } else {
        println!("{summary}");
    }
    Ok(0)
}

/// A parameter value as JSON: a number where the cell is a plain number, else its text.
pub(super) fn param_json(v: &ParamValue) -> Value {
    match (v.number, &v.unit) {
        (Some(n), None) => json!(n),
        _ if v.text.is_empty() => Value::Null,
        _ => json!(v.text),
    }
}

pub(super) fn params_json(index: &Index, entry: usize) -> Map<String, Value> {
    index
        .columns
        .iter()
        .zip(index.params.get(entry).map(Vec::as_slice).unwrap_or(&[]))
        .map(|(c, v)| (c.clone(), param_json(v)))
        .collect()
}

/// What a search may return: particle restrictions and recipe conditions (`--where`).
pub(super) struct Restriction {
    pub particles: crate::engine::particles::ParticleFilter,
    pub conditions: Vec<String>,
}

pub(super) fn search_command(
    index_path: &Path,
    top_k: usize,
    json: bool,
    sketch: bool,
    restrict: &Restriction,
    model: &ModelArgs,
    queries: &[PathBuf],
) -> anyhow::Result<i32> {
    if top_k == 0 {
        bail!("--top-k 0 asks for no results: give 1 or more");
    }
    let index = Index::load(index_path)?;
    if let Some(w) = index.partial_warning() {
        eprintln!("warning: {w}");
    }
    // Conditions are checked before the model loads: a typo fails at once.
    let conditions = Conditions::parse_all(&index, &restrict.conditions)?;
    let filter = &restrict.particles;
    let engine = Engine::load(model.weights.as_deref(), model.device.name())?;
    engine.check_index(&index)?;
    let admit = |i: usize| {
        filter.admits(index.entries[i].particles.as_ref()) && conditions.admits(&index, i)
    };
    if !filter.is_empty() || !conditions.is_empty() {
        let passing = (0..index.len()).filter(|&i| admit(i)).count();
        let mut what = Vec::new();
        if !filter.is_empty() {
            what.push(format!("whose particles are {}", filter.describe()));
        }
        if !conditions.is_empty() {
            what.push(format!("where {conditions}"));
        }
        eprintln!(
            "searching the {passing} of {} images {}",
            index.len(),
            what.join(" and ")
        );
        if passing == 0 {
            eprintln!("warning: no image meets these restrictions; the results are empty");
        }
    }
    let mut failed = 0;
    let stdout = std::io::stdout();
    for q in queries {
        let hits: Result<Vec<Hit>, Error> = load_image(q).and_then(|img| {
            if crate::engine::imaging::preprocess::is_uniform(&img) {
                eprintln!(
                    "warning: {} is one grey level throughout (blank, all black or all white); \
                     its results say nothing about particles",
                    q.display()
                );
            }
            if sketch {
                engine.search_sketch_image_where(&index, &img, top_k, &admit)
            } else {
                engine.search_image_where(&index, &img, top_k, &admit)
            }
        });
        let mut out = stdout.lock();
        match hits {
            Ok(hits) if json => {
                let results: Vec<Value> = hits
                    .iter()
                    .enumerate()
                    .map(|(r, h)| {
                        json!({"rank": r + 1, "path": index.entries[h.entry].path,
                               "score": (f64::from(h.score) * 1e4).round() / 1e4,
                               "params": params_json(&index, h.entry),
                               "particles": particles::summary_json(index.entries[h.entry].particles.as_ref())})
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    json!({"query": q.to_string_lossy(), "results": results})
                )?;
            }
            Ok(hits) => {
                writeln!(out, "{}", q.display())?;
                for (r, h) in hits.iter().enumerate() {
                    let params: Vec<String> = index
                        .columns
                        .iter()
                        .zip(index.params.get(h.entry).map(Vec::as_slice).unwrap_or(&[]))
                        .filter(|(_, v)| !v.text.is_empty())
                        .map(|(c, v)| format!("{c}={}", v.text))
                        .collect();
                    writeln!(
                        out,
                        "  {:>3}. {:.3}  {}  {}",
                        r + 1,
                        h.score,
                        index.entries[h.entry].path,
                        params.join("; ")
                    )?;
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"query": q.to_string_lossy(), "error": e.to_string()})
                    )?;
                } else {
                    eprintln!("error: {}: {e}", q.display());
                }
            }
        }
    }
    Ok(i32::from(failed > 0))
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn map_command(index: &Index, out: &Path) -> anyhow::Result<()> {
    let coords = index.map_coords();
    let (Some(p), false) = (&index.image_space.projection, coords.is_empty()) else {
        bail!("the index has fewer than two images or no PCA projection: no map to draw");
    };
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut header = vec!["path".to_string(), "pc1".into(), "pc2".into()];
    header.extend(index.columns.iter().cloned());
    w.write_record(&header)?;
    for (i, (e, [x, y])) in index.entries.iter().zip(coords).enumerate() {
        let mut row = vec![e.path.clone(), format!("{x:.6}"), format!("{y:.6}")];
        row.extend(
            index.params[i]
                .iter()
                .map(|v| v.text.clone())
                .chain(std::iter::repeat(String::new()))
                .take(index.columns.len()),
        );
        w.write_record(&row)?;
    }
    w.flush()?;
    let ev = |k: usize| p.explained.get(k).copied().unwrap_or(0.0) * 100.0;
    println!("wrote {} points to {}", index.len(), out.display());
    println!("explained variance: PC1 {:.1} %, PC2 {:.1} %", ev(0), ev(1));
    Ok(())
}

pub(super) fn duplicates_command(index: &Index, threshold: f32, json: bool) {
    let pairs = index.duplicates(threshold);
    for d in &pairs {
        let (a, b) = (&index.entries[d.a], &index.entries[d.b]);
        let differing = index.differing_params(d.a, d.b);
        if json {
            let diff: Vec<Value> = differing
                .iter()
                .map(|(n, x, y)| json!({"parameter": n, "a": x, "b": y}))
                .collect();
            println!(
                "{}",
                json!({"a": a.path, "b": b.path, "kind": if d.exact { "identical" } else { "near-identical" },
                       "score": d.score, "params_a": params_json(index, d.a), "params_b": params_json(index, d.b),
                       "differing": diff})
            );
        } else {
            println!(
                "{} {}  <->  {}  (similarity {:.3})",
                if d.exact { "IDENTICAL" } else { "NEAR     " },
                a.path,
                b.path,
                d.score
            );
            if index.columns.is_empty() {
                continue;
            }
            if differing.is_empty() {
                println!("    same recipe");
            }
            for (n, x, y) in differing {
                println!("    {:<28} {:>24} | {}", n, csv_field(&x), csv_field(&y));
            }
        }
    }
    if !json {
        let exact = pairs.iter().filter(|d| d.exact).count();
        println!(
            "{} identical pairs, {} near-identical pairs (similarity >= {threshold})",
            exact,
            pairs.len() - exact
        );
    }
}

/// Shape names per image from 0/1 columns (`Cube`, `Stick`, `Sphere`, ...) of a labels CSV.
pub fn shape_labels(
    path: &Path,
    index: &Index,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<&'static str>>> {
    let paths: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();
    let mut out: std::collections::BTreeMap<String, Vec<&'static str>> =
        std::collections::BTreeMap::new();
    for class in crate::engine::sketch::sketchgen::ShapeClass::ALL {
        let column = read_column(path, &paths, None, class.name())?;
        for (img, v) in column {
            let entry = out.entry(img).or_default();
            if v.trim() == "1" {
                entry.push(class.name());
            }
        }
    }
    Ok(out)
}
