//! `morphosearch eval` (image retrieval: leave-one-out by label, crops -> source) and
//! `sketch-eval` (generated sketches, tracings, aligned outlines), on any collection: CaCO3
//! with its shape labels, EMPS with its papers and true outlines.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde_json::{json, Map, Value};

use crate::engine::eval::sketches::{emps_outlines, SketchEvalSpec};
use crate::engine::eval::{
    crops, leave_one_out, leave_one_out_expanded, leave_one_out_from_files, sketches, CUTOFFS,
};
use crate::engine::library::database::read_column;
use crate::engine::library::index::{Index, Space, MAX_PCA_DIMS};
use crate::engine::sketch::{SketchWeights, TILED_SHARE};
use crate::engine::Engine;

use super::{shape_labels, ModelArgs};

/// Options of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[arg(long)]
    index: PathBuf,
    /// CSV with an image column and a label column (leave-one-out by label).
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Column of the labels file naming the images (default: detected).
    #[arg(long)]
    image_column: Option<String>,
    /// Evaluate the sketch (contour drawing) descriptors instead of the image ones.
    #[arg(long)]
    sketch: bool,
    /// Refit the projection with this many PCA dimensions (0 = none) before evaluating.
    #[arg(long)]
    pca_dims: Option<usize>,
    /// Refit the projection with (true) or without (false) whitening.
    #[arg(long)]
    whiten: Option<bool>,
    /// Also search this many random crops (20-40 % of a side, brightness and blur changed)
    /// and report how often their source is first / in the top 10.
    #[arg(long, default_value_t = 0)]
    crops: usize,
    /// Search each labelled image from its file, as a user's query (at the query sizes),
    /// instead of comparing stored descriptors.
    #[arg(long)]
    from_files: bool,
    /// Describe image queries at these extra input sizes (e.g. 112,64; default: the index's).
    #[arg(long, value_delimiter = ',')]
    query_sizes: Option<Vec<u32>>,
    /// Describe small queries (crops) at their own scale too (default: the index's setting).
    #[arg(long)]
    rescale_small_queries: Option<bool>,
    /// Margin of the extra query sizes (default: the index's).
    #[arg(long)]
    query_size_margin: Option<f32>,
    /// Query expansion measured on the stored descriptors: each query joined with its N
    /// nearest entries (weights: similarity to the power --qe-alpha) and searched again.
    #[arg(long, default_value_t = 0)]
    query_expansion: usize,
    #[arg(long, default_value_t = 3.0)]
    qe_alpha: f32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

/// Options of `sketch-eval`.
#[derive(Debug, Args)]
pub struct SketchEvalArgs {
    #[arg(long)]
    index: PathBuf,
    /// CSV with 0/1 columns named after the shapes (Cube, Stick, Sphere).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A folder with true particle outlines (EMPS layout: images.csv with file and segmap
    /// columns): tracings are drawn from them, aligned outline drawings are added, and the
    /// shape classes of each image come from its particles when --labels is not given.
    #[arg(long)]
    outlines: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    per_class: usize,
    #[arg(long, default_value_t = 100)]
    tracings: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Weight of the image-descriptor similarity (default: the index's setting; blending by
    /// density, the weight for sparse drawings).
    #[arg(long)]
    image_weight: Option<f32>,
    /// Weight of the edge-map similarity (default: the index's setting; blending by density,
    /// the weight for sparse drawings).
    #[arg(long)]
    edge_weight: Option<f32>,
    /// Blend by drawing density (true) or with the fixed weights (false); default: the index's.
    #[arg(long)]
    by_density: Option<bool>,
    /// Share of the image part from the drawing repeated 2 x 2 at half size (default: the
    /// index's setting).
    #[arg(long)]
    tiled_share: Option<f32>,
    /// Evaluate these blends instead, each IMAGE,EDGE[,TILED] (repeatable; TILED defaults to
    /// the shipped share): one row per blend, from the same queries.
    #[arg(long, value_parser = parse_blend)]
    blend: Vec<SketchWeights>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

fn parse_blend(s: &str) -> Result<SketchWeights, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |t: &str| {
        t.parse::<f32>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| format!("{t:?} is not a weight between 0 and 1"))
    };
    let (image, edge, tiled) = match parts.as_slice() {
        [image, edge] => (image, edge, None),
        [image, edge, tiled] => (image, edge, Some(tiled)),
        _ => {
            return Err(format!(
                "a blend is IMAGE,EDGE[,TILED] (weights, e.g. 0.4,0.3 or 0.5,0,0.5), not {s:?}"
            ))
        }
    };
    let w = SketchWeights {
        image: num(image)?,
        edge: num(edge)?,
        tiled: tiled.map_or(Ok(TILED_SHARE), |t| num(t))?,
    };
    if w.image + w.edge > 1.0 + 1e-6 {
        return Err(format!("the weights of {s:?} add up to more than 1"));
    }
    Ok(w)
}

/// `morphosearch eval`.
pub fn eval_command(args: &EvalArgs) -> anyhow::Result<i32> {
    let mut idx = Index::load(&args.index)?;
    if args.pca_dims.is_some() || args.whiten.is_some() {
        idx.config.pca_dims = args
            .pca_dims
            .unwrap_or(idx.config.pca_dims)
            .min(MAX_PCA_DIMS);
        idx.config.whiten = args.whiten.unwrap_or(idx.config.whiten);
        idx.refit();
    }
    if let Some(sizes) = &args.query_sizes {
        idx.config.query_sizes = sizes.clone();
    }
    if let Some(rescale) = args.rescale_small_queries {
        idx.config.rescale_small_queries = rescale;
    }
    if let Some(margin) = args.query_size_margin {
        idx.config.query_size_margin = margin;
    }
    let engine = if args.crops > 0 || args.from_files {
        let engine = Engine::load(args.model.weights.as_deref(), args.model.device.name())?;
        engine.check_index(&idx)?;
        Some(engine)
    } else {
        None
    };
    if args.labels.is_none() && args.crops == 0 {
        bail!("nothing to evaluate: give --labels (leave-one-out by label) and/or --crops N");
    }
    let mut out = Map::new();
    if let Some(labels) = &args.labels {
        let paths: Vec<String> = idx.entries.iter().map(|e| e.path.clone()).collect();
        let labels = read_column(
            labels,
            &paths,
            args.image_column.as_deref(),
            &args.label_column,
        )?;
        let space = if args.sketch {
            Space::Sketch
        } else {
            Space::Image
        };
        let r = match &engine {
            Some(engine) if args.from_files => {
                leave_one_out_from_files(engine, &idx, &labels, &CUTOFFS)?
            }
            _ if args.query_expansion > 0 => leave_one_out_expanded(
                &idx,
                &labels,
                space,
                &CUTOFFS,
                args.query_expansion,
                args.qe_alpha,
            ),
            _ => leave_one_out(&idx, &labels, space, &CUTOFFS),
        };
        if r.queries == 0 {
            bail!("no labelled image shares its label with another one: nothing to evaluate");
        }
        let p = |v: &[(usize, f64)]| -> Map<String, Value> {
            v.iter()
                .map(|(k, v)| (format!("p@{k}"), json!(v)))
                .collect()
        };
        out.insert("queries".into(), json!(r.queries));
        out.insert("labelled".into(), json!(r.labelled));
        out.insert("map".into(), json!(r.map));
        out.insert("precision".into(), Value::Object(p(&r.precision)));
        out.insert(
            "chance".into(),
            json!({"map": r.chance_map, "precision": p(&r.chance_precision)}),
        );
        if !args.json {
            println!("queries: {} (of {} labelled images)", r.queries, r.labelled);
            println!("mAP:     {:.3}   (chance {:.3})", r.map, r.chance_map);
            for ((k, p), (_, c)) in r.precision.iter().zip(&r.chance_precision) {
                println!("P@{k:<3}    {p:.3}   (chance {c:.3})");
            }
        }
    }
    if let (Some(engine), true) = (&engine, args.crops > 0) {
        let c = crops::evaluate(engine, &idx, args.crops, args.seed)?;
        out.insert(
            "crops".into(),
            json!({"queries": c.queries, "r@1": c.recall_at_1, "r@10": c.recall_at_10}),
        );
        if !args.json {
            println!(
                "crops -> source: R@1 {:.3}, R@10 {:.3} ({} crops, seed {})",
                c.recall_at_1, c.recall_at_10, c.queries, args.seed
            );
        }
    }
    if args.json {
        println!("{}", Value::Object(out));
    }
    Ok(0)
}

/// `morphosearch sketch-eval`.
pub fn sketch_eval_command(args: &SketchEvalArgs) -> anyhow::Result<i32> {
    let mut idx = Index::load(&args.index)?;
    if let Some(by_density) = args.by_density {
        idx.config.sketch.by_density = by_density;
    }
    if let Some(share) = args.tiled_share {
        idx.config.sketch.tiled_share = share.clamp(0.0, 1.0);
    }
    if let Some(w) = args.image_weight {
        idx.config.sketch.image_weight = w.clamp(0.0, 1.0);
    }
    if let Some(w) = args.edge_weight {
        idx.config.sketch.edge_weight = w.clamp(0.0, 1.0);
    }
    let engine = Engine::load(args.model.weights.as_deref(), args.model.device.name())?;
    engine.check_index(&idx)?;
    let (outlines, mut shapes) = match &args.outlines {
        Some(dir) => {
            let (o, s) = emps_outlines(dir, &idx)?;
            (Some(o), s)
        }
        None => (None, Default::default()),
    };
    if let Some(labels) = &args.labels {
        shapes = shape_labels(labels, &idx)?;
    }
    if shapes.is_empty() && outlines.is_none() {
        bail!("give --labels (shape columns) and/or --outlines (a folder with true outlines)");
    }
    let weights: Vec<Option<SketchWeights>> = if !args.blend.is_empty() {
        args.blend.iter().copied().map(Some).collect()
    } else {
        // The index's own rule (fixed, or by the drawing's density), with the weights given.
        vec![None]
    };
    let spec = SketchEvalSpec {
        per_class: args.per_class,
        tracings: args.tracings,
        seed: args.seed,
        outlines,
    };
    let r = sketches::evaluate(&engine, &idx, &shapes, &spec, &weights)?;
    for row in &r.rows {
        let (c, e, i) = row.weights.map_or((-1.0, -1.0, -1.0), |w| w.normalised());
        if args.json {
            let classes: Map<String, Value> = row
                .classes
                .iter()
                .map(|(class, p, chance, n)| {
                    (
                        class.name().into(),
                        json!({"p@5": p, "chance": chance, "sketches": n}),
                    )
                })
                .collect();
            println!(
                "{}",
                json!({"weights": row.weights.map(|w| json!({"contour": c, "edge": e, "image": i,
                                                             "tiled": w.tiled_share()})),
                       "ink": r.ink, "classes": classes,
                       "tracings": {"source": r.tracing_source, "n": r.tracings,
                                    "r@1": row.tracing_recall_at_1, "r@10": row.tracing_recall_at_10},
                       "aligned": {"n": r.aligned, "r@10": row.aligned_recall_at_10}})
            );
            continue;
        }
        match row.weights {
            Some(w) => println!(
                "weights: contour {c:.2}, edge map {e:.2}, image {i:.2} (tiled share {:.2})",
                w.tiled_share()
            ),
            None if idx.config.sketch.by_density => println!(
                "weights: the index's, by drawing density (ink 10/50/90 %: sketches \
                 {:.3?}, tracings {:.3?}, aligned {:.3?})",
                r.ink[0], r.ink[1], r.ink[2]
            ),
            None => {
                let (c, e, i) = idx.config.sketch.weights().normalised();
                println!("weights: contour {c:.2}, edge map {e:.2}, image {i:.2} (the index's)")
            }
        }
        for (class, p, chance, n) in &row.classes {
            println!(
                "  {:<8} P@5 {p:.3}  (chance {chance:.3}, {n} sketches)",
                class.name()
            );
        }
        println!(
            "  tracings of {} ({}): own image first {:.3}, in the top 10 {:.3}",
            r.tracing_source, r.tracings, row.tracing_recall_at_1, row.tracing_recall_at_10
        );
        if let Some(a) = row.aligned_recall_at_10 {
            println!(
                "  aligned outlines ({}): own image in the top 10 {a:.3}",
                r.aligned
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_are_two_or_three_weights_in_range() {
        let w = parse_blend("0.4, 0.3").expect("valid");
        assert_eq!((w.image, w.edge, w.tiled), (0.4, 0.3, TILED_SHARE));
        let w = parse_blend("0.5,0,0.25").expect("valid");
        assert_eq!((w.image, w.edge, w.tiled), (0.5, 0.0, 0.25));
        for (blend, why) in [
            ("0.5,0,2", "between 0 and 1"),
            ("0.1,0.1,0.1,0.1", "IMAGE,EDGE[,TILED]"),
            ("0.4", "IMAGE,EDGE"),
            ("0.8,0.5", "more than 1"),
            ("x,0.1", "between 0 and 1"),
        ] {
            let message = parse_blend(blend).expect_err("refused");
            assert!(message.contains(why), "{blend}: {message}");
        }
        assert!(parse_blend("1.5,0").is_err());
    }
}
