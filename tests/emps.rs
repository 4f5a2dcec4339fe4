//! Retrieval on EMPS train (../shared/data/emps_train: 366 SEM/TEM images from 247 papers with
//! human particle outlines), the collection unlike CaCO3: same-paper retrieval with the image
//! descriptor, tracings of the true outlines and aligned outline drawings with the sketch
//! search, against plain baselines on this collection (docs/quality.md): max pooling without
//! PCA for same-paper retrieval, the edge-map channel alone (R-MAC of conv5_3 over the contour
//! drawings' lines) for tracings, measured in the same run. Without the data the tests are
//! reported as ignored with the reason, and skip with a printed reason if run anyway.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use morphosearch::engine::descriptor::features::FeatureConfig;
use morphosearch::engine::eval::sketches::{emps_outlines, evaluate, SketchEvalSpec};
use morphosearch::engine::eval::{leave_one_out, CUTOFFS};
use morphosearch::engine::library::database::read_column;
use morphosearch::engine::library::index::{Index, Space, MAX_PCA_DIMS};
use morphosearch::engine::library::indexer::{build_index, IndexJob};
use morphosearch::engine::sketch::{SketchConfig, SketchWeights};

fn build(data: &Path, dir: &Path) -> Index {
    let job = IndexJob {
        pixel_size_column: None,
        query_sizes: morphosearch::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
        db_dir: data.join("images"),
        table: None,
        image_column: None,
        index_path: dir.join("emps.db"),
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
    .expect("index emps_train");
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(index.len(), 366);
    index
}

// Same-paper mAP on emps_train (docs/quality.md, "EMPS train"): GeM + PCA, the default before
// (0.399), and plain max pooling without PCA (0.425); the default max + GeM + PCA measured
// 0.424. The floor: at most a rounding below plain max (so well above GeM).
const SAME_PAPER_MAP_GEM: f64 = 0.399;
const SAME_PAPER_MAP_MAX_POOLING: f64 = 0.425;

#[test]
#[cfg_attr(
    not(has_emps),
    ignore = "needs ../shared/data/emps_train beside the project"
)]
fn same_paper_retrieval_and_tracings_beat_the_plain_baselines() {
    let Some(data) = common::emps("same_paper_retrieval_and_tracings_beat_the_plain_baselines")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let index = build(&data, tmp.path());
    let paths: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();
    let papers = read_column(&data.join("images.csv"), &paths, Some("file"), "doi").expect("doi");
    assert_eq!(
        papers.len(),
        366,
        "every image matched to its paper by file name"
    );
    let r = leave_one_out(&index, &papers, Space::Image, &CUTOFFS);
    println!(
        "same-paper retrieval: mAP {:.3} over {} queries (GeM {SAME_PAPER_MAP_GEM}, plain max \
         pooling {SAME_PAPER_MAP_MAX_POOLING})",
        r.map, r.queries
    );
    assert_eq!(r.queries, 187, "the 187 images of papers with two or more");
    assert!(
        r.map >= SAME_PAPER_MAP_MAX_POOLING - 0.005,
        "same-paper mAP {:.3}",
        r.map
    );

    let (outlines, shapes) = emps_outlines(&data, &index).expect("outlines");
    let spec = SketchEvalSpec {
        per_class: 0,
        tracings: 100,
        seed: 1,
        outlines: Some(outlines),
    };
    let edge_only = SketchWeights {
        image: 0.0,
        edge: 1.0,
        tiled: 0.0,
    };
    let e = evaluate(
        common::engine(),
        &index,
        &shapes,
        &spec,
        &[None, Some(edge_only)],
    )
    .expect("sketch evaluation");
    let (default, plain) = (&e.rows[0], &e.rows[1]);
    println!(
        "tracings of true outlines ({}): R@1 {:.3}, R@10 {:.3} (edge map alone: {:.3}, {:.3}); \
         aligned outlines ({}): R@10 {:.3} (edge map alone {:.3})",
        e.tracings,
        default.tracing_recall_at_1,
        default.tracing_recall_at_10,
        plain.tracing_recall_at_1,
        plain.tracing_recall_at_10,
        e.aligned,
        default.aligned_recall_at_10.unwrap_or(0.0),
        plain.aligned_recall_at_10.unwrap_or(0.0),
    );
    assert!(e.tracings >= 95, "{} tracings", e.tracings);
    // The plain edge-map channel alone is measured in the same run, on the same tracings.
    assert!(
        default.tracing_recall_at_10 > plain.tracing_recall_at_10 + 0.05
            && default.tracing_recall_at_1 > plain.tracing_recall_at_1,
        "tracing R@10 {:.3} / R@1 {:.3} vs the edge map alone {:.3} / {:.3}",
        default.tracing_recall_at_10,
        default.tracing_recall_at_1,
        plain.tracing_recall_at_10,
        plain.tracing_recall_at_1
    );
    assert!(
        default.tracing_recall_at_10 >= 0.56,
        "tracing R@10 {:.3}",
        default.tracing_recall_at_10
    );
}
