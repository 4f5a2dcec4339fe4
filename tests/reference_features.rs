//! The shipped conv weights against an independent reference: onnxruntime running the original
//! Keras VGG16 ONNX file (BGR input), computed by tools/reference_features.py.

use std::path::Path;

use candle_core::{Device, Tensor};
use morphosearch::engine::descriptor::pooling::{pool, Pooling};
use morphosearch::engine::imaging::preprocess::{load_image, prepare, Preprocess};
use morphosearch::engine::model::vgg::{Vgg16, SHIPPED_WEIGHTS};

fn rel_l2(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn shipped_weights_match_onnxruntime_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let weights = root.join("weights").join(SHIPPED_WEIGHTS);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/data/reference_features.json"))
            .expect("reference file"),
    )
    .expect("json");
    let vgg = Vgg16::load(&weights, &Device::Cpu).expect("shipped weights load");
    let img = load_image(&root.join("tests/data/reference_input.png")).expect("test image");
    let prepared = prepare(&img, &Preprocess::default()).expect("prepare");
    assert_eq!(prepared.data_bar_rows, 0, "the test image has no data bar");
    let x = Tensor::from_vec(prepared.chw, (1, 3, 224, 224), &Device::Cpu).expect("tensor");
    let conv5 = vgg
        .conv5(&vgg.normalise(&x).expect("normalise"))
        .expect("forward");
    assert_eq!(conv5.dims(), &[1, 512, 14, 14]);
    let flat: Vec<f32> = conv5.flatten_all().expect("flat").to_vec1().expect("vec");
    for (name, pooling) in [
        ("max", Pooling::Max),
        ("avg", Pooling::Avg),
        ("gem", Pooling::Gem),
    ] {
        let ours = pool(&flat, 512, 14, 14, pooling);
        let theirs: Vec<f64> = reference[name]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        let err = rel_l2(&ours, &theirs);
        println!("{name}: relative L2 difference to onnxruntime = {err:.2e}");
        assert!(
            err < 1e-4,
            "{name} pooled conv5_3 differs from the reference by {err:.2e}"
        );
    }
}
