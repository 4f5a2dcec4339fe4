//! End-to-end on the real CaCO3 database (../shared/data/caco3): indexing with its table,
//! retrieval quality against the shape labels, duplicates, search output, map.
//! Without the data every test is reported as ignored, with the reason (build.rs looks for it),
//! and still skips with a printed reason if run anyway (`--include-ignored`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use morphosearch::engine::descriptor::features::FeatureConfig;
use morphosearch::engine::eval::{leave_one_out, CUTOFFS};
use morphosearch::engine::library::database::read_column;
use morphosearch::engine::library::index::{Index, Space, MAX_PCA_DIMS};
use morphosearch::engine::library::indexer::{build_index, IndexJob};
use morphosearch::engine::sketch::SketchConfig;

struct Built {
    _dir: tempfile::TempDir,
    path: PathBuf,
    index: Index,
}

/// The CaCO3 index with default settings, built once for all tests of this file.
fn built(data: &Path) -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("caco3.msidx");
        let job = IndexJob {
            pixel_size_column: None,
            query_sizes: morphosearch::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
            db_dir: data.to_path_buf(),
            table: Some(data.join("synthesis_conditions.csv")),
            image_column: None,
            index_path: path.clone(),
            features: FeatureConfig::default(),
            pca_dims: MAX_PCA_DIMS,
            whiten: false,
            sketch: SketchConfig::default(),
        };
        let (index, report) = build_index(
            &common::engine().vgg,
            &job,
            &mut |_, _| {},
            &AtomicBool::new(false),
        )
        .expect("index caco3");
        assert_eq!(report.problems, Vec::<String>::new());
        assert!(report.rows_without_image.is_empty() && report.images_without_row.is_empty());
        Built {
            _dir: dir,
            path,
            index,
        }
    })
}

/// The table's rows by image path, read independently with the csv crate.
fn table_rows(data: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(data.join("synthesis_conditions.csv")).expect("csv");
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            let row: BTreeMap<String, String> = headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (row["image_file"].clone(), row)
        })
        .collect()
}

fn labels(data: &Path, index: &Index) -> BTreeMap<String, String> {
    let paths: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();
    read_column(&data.join("labels.csv"), &paths, None, "label").expect("labels")
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn retrieval_quality_by_shape_label() {
    let Some(data) = common::caco3("retrieval_quality_by_shape_label") else {
        return;
    };
    let b = built(&data);
    assert_eq!(b.index.len(), 215);
    let r = leave_one_out(&b.index, &labels(&data, &b.index), Space::Image, &CUTOFFS);
    let p = |k: usize| {
        r.precision
            .iter()
            .find(|(c, _)| *c == k)
            .map(|(_, v)| *v)
            .expect("cutoff")
    };
    println!(
        "CaCO3 leave-one-out by label ({} queries): mAP {:.3} (chance {:.3}), P@1 {:.3}, P@3 {:.3}, P@10 {:.3}",
        r.queries, r.map, r.chance_map, p(1), p(3), p(10)
    );
    assert!(r.queries >= 200);
    // docs/quality.md: the default (conv5_3 and conv4_3) measured 0.301; GeM of conv5_3, the
    // plain baseline, 0.288.
    assert!(r.map > 0.295, "mAP {:.3}", r.map);
    assert!(p(10) >= 0.30, "P@10 {:.3}", p(10));
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn finds_the_77_identical_pairs_with_their_recipes() {
    let Some(data) = common::caco3("finds_the_77_identical_pairs") else {
        return;
    };
    let b = built(&data);
    let exact: Vec<_> = b
        .index
        .duplicates(2.0)
        .into_iter()
        .filter(|d| d.exact)
        .collect();
    assert_eq!(exact.len(), 77);
    let out = Command::new(env!("CARGO_BIN_EXE_morphosearch"))
        .args(["duplicates", "--json", "--index"])
        .arg(&b.path)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let identical = text.lines().filter(|l| l.contains("\"identical\"")).count();
    assert_eq!(identical, 77);
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    // Both recipes are the table's own rows for those two images.
    let table = table_rows(&data);
    for side in ["a", "b"] {
        let path = first[side].as_str().expect("path");
        let row = &table[path];
        assert_eq!(
            first[format!("params_{side}")]["Synthesis time"],
            row["Synthesis time"].as_str(),
            "{path}"
        );
        assert_eq!(
            first[format!("params_{side}")]["Temperature, C"].as_f64(),
            row["Temperature, C"].parse::<f64>().ok(),
            "{path}"
        );
    }
    assert!(
        first["differing"].as_array().is_some_and(|d| !d.is_empty()),
        "twins are filed under different recipes"
    );
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn search_prints_ranked_json_with_parameters() {
    let Some(data) = common::caco3("search_prints_ranked_json_with_parameters") else {
        return;
    };
    let b = built(&data);
    let query = data.join("images/100.tif");
    let out = Command::new(env!("CARGO_BIN_EXE_morphosearch"))
        .args(["search", "--json", "--top-k", "3", "--index"])
        .arg(&b.path)
        .arg(&query)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("json");
    assert_eq!(line["query"], query.to_string_lossy().as_ref());
    let results = line["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    let first = &results[0];
    assert!(
        first["score"].as_f64().expect("score") > 0.99,
        "the image finds itself (or its twin) first"
    );
    // The query itself, or an exact twin of it (same decoded pixels).
    let hash_of = |p: &str| {
        b.index
            .entries
            .iter()
            .find(|e| e.path == p)
            .map(|e| e.pixel_hash.clone())
            .expect("indexed")
    };
    let first_path = first["path"].as_str().expect("path");
    assert_eq!(
        hash_of(first_path),
        hash_of("images/100.tif"),
        "{first_path}"
    );
    // Its recipe is the table's row for that image.
    let row = &table_rows(&data)[first_path];
    assert_eq!(
        first["params"]["Ca ion, mM"].as_f64(),
        row["Ca ion, mM"].parse::<f64>().ok()
    );
    assert_eq!(
        first["params"]["Synthesis time"],
        row["Synthesis time"].as_str()
    );
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn search_where_ranks_only_the_recipes_asked_for() {
    let Some(data) = common::caco3("search_where_ranks_only_the_recipes_asked_for") else {
        return;
    };
    let b = built(&data);
    let run = |conditions: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_morphosearch"));
        cmd.args(["search", "--json", "--top-k", "10", "--index"])
            .arg(&b.path);
        for c in conditions {
            cmd.args(["--where", c]);
        }
        cmd.arg(data.join("images/100.tif")).output().expect("run")
    };
    let out = run(&["Polymer type=PEG", "Temperature, C<40"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The table has 3 PEG syntheses below 40 C: only they can be returned.
    let rows = table_rows(&data);
    let meets = |path: &str| {
        let row = &rows[path];
        row["Polymer type"] == "PEG" && row["Temperature, C"].parse::<f64>().is_ok_and(|t| t < 40.0)
    };
    let expected = b.index.entries.iter().filter(|e| meets(&e.path)).count();
    assert_eq!(expected, 3);
    assert!(
        stderr.contains("searching the 3 of 215 images where"),
        "{stderr}"
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("json");
    let results = line["results"].as_array().expect("results");
    assert_eq!(
        results.len(),
        3,
        "only the three samples meeting both conditions"
    );
    for r in results {
        let path = r["path"].as_str().expect("path");
        assert!(meets(path), "{path} does not meet the conditions");
    }
    // A typo in a column name: refused with the columns there are, before any search.
    let out = run(&["Temp<40"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no column \"Temp\"") && stderr.contains("Temperature, C"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let out = run(&["Temperature, C<warm"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not one"));
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn map_writes_coordinates_and_explained_variance() {
    let Some(data) = common::caco3("map_writes_coordinates_and_explained_variance") else {
        return;
    };
    let b = built(&data);
    let out_csv = b.path.with_file_name("map.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_morphosearch"))
        .args(["map", "--index"])
        .arg(&b.path)
        .arg("--out")
        .arg(&out_csv)
        .output()
        .expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("explained variance: PC1"), "{stdout}");
    let text = std::fs::read_to_string(&out_csv).expect("csv");
    assert!(text.starts_with("path,pc1,pc2,image_id"), "{}", &text[..80]);
    assert_eq!(text.lines().count(), 216);
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn sketch_search_by_shape_class_and_tracings() {
    let Some(data) = common::caco3("sketch_search_by_shape_class_and_tracings") else {
        return;
    };
    let b = built(&data);
    let shapes =
        morphosearch::cli::shape_labels(&data.join("labels.csv"), &b.index).expect("shape labels");
    let spec = morphosearch::engine::eval::sketches::SketchEvalSpec {
        per_class: 20,
        tracings: 100,
        seed: 1,
        outlines: None,
    };
    let weights = [None];
    let e = morphosearch::engine::eval::sketches::evaluate(
        common::engine(),
        &b.index,
        &shapes,
        &spec,
        &weights,
    )
    .expect("sketch evaluation");
    let r = &e.rows[0];
    for (class, p, chance, n) in &r.classes {
        println!(
            "sketch {:<6} P@5 {p:.3} (chance {chance:.3}, {n} generated sketches)",
            class.name()
        );
    }
    println!(
        "tracings: own image first for {:.1} %, in the top 10 for {:.1} % of {}",
        100.0 * r.tracing_recall_at_1,
        100.0 * r.tracing_recall_at_10,
        e.tracings
    );
    let p = |name: &str| {
        r.classes
            .iter()
            .find(|c| c.0.name() == name)
            .map(|c| (c.1, c.2))
            .expect("class")
    };
    assert!(p("Cube").0 >= 0.80, "Cube {:?}", p("Cube"));
    assert!(p("Stick").0 >= 0.60, "Stick {:?}", p("Stick"));
    // Spheres are the hard class (noisy labels, small particles): 0.51-0.58 over seeds 1-3
    // (docs/quality.md); the issue asks 0.50.
    assert!(p("Sphere").0 >= 0.50, "Sphere {:?}", p("Sphere"));
    assert!(
        e.tracings >= 95 && r.tracing_recall_at_10 >= 0.70,
        "tracings {}",
        r.tracing_recall_at_10
    );
}

#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn sketch_search_cli_prints_the_same_json_lines() {
    let Some(data) = common::caco3("sketch_search_cli_prints_the_same_json_lines") else {
        return;
    };
    let b = built(&data);
    let drawing = morphosearch::engine::sketch::rasterise_strokes(
        &morphosearch::engine::sketch::sketchgen::shape_sketch(
            morphosearch::engine::sketch::sketchgen::ShapeClass::Cube,
            &mut morphosearch::engine::library::demo::Rng::new(5),
        ),
        &b.index.config.sketch,
    )
    .expect("draw");
    let sketch_path = b.path.with_file_name("cubes.png");
    drawing.save(&sketch_path).expect("save sketch");
    let out = Command::new(env!("CARGO_BIN_EXE_morphosearch"))
        .args(["search", "--sketch", "--json", "--top-k", "4", "--index"])
        .arg(&b.path)
        .arg(&sketch_path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("json");
    let results = line["results"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["rank"], 1);
    assert!(results[0]["params"]["Temperature, C"].is_number());
}

/// A folder holding 20 of the 215 images, with the whole table: every image gets its own row
/// (the image column is found by the distinct images it names, not by cells like "0").
#[test]
#[cfg_attr(
    not(has_caco3),
    ignore = "needs ../shared/data/caco3 beside the project"
)]
fn twenty_images_with_the_whole_table_get_their_own_recipes() {
    let Some(data) = common::caco3("twenty_images_with_the_whole_table_get_their_own_recipes")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("{i}.tif");
        std::fs::copy(data.join("images").join(&name), tmp.path().join(&name)).expect("copy");
        names.push(name);
    }
    let table = data.join("synthesis_conditions.csv");
    let t =
        morphosearch::engine::library::database::read_table(&table, &names, None).expect("table");
    assert_eq!(t.image_column, "image_file");
    assert_eq!(t.rows.len(), 20);
    // The recipe of each image as the table gives it, read independently with the csv crate.
    let mut reader = csv::Reader::from_path(&table).expect("csv");
    let headers = reader.headers().expect("headers").clone();
    let file = headers
        .iter()
        .position(|h| h == "image_file")
        .expect("column");
    let temp = headers
        .iter()
        .position(|h| h == "Temperature, C")
        .expect("column");
    let col = t
        .columns
        .iter()
        .position(|c| c == "Temperature, C")
        .expect("column");
    for row in reader.records() {
        let row = row.expect("row");
        let name = row[file].trim_start_matches("images/").to_string();
        if let Some(values) = t.rows.get(&name) {
            assert_eq!(values[col].text, row[temp], "{name}");
        }
    }
}
