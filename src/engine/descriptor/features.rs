//! From prepared images to raw descriptors: batched VGG16 forward, pooling, optional flip
//! augmentation, L2 normalisation. The projection (PCA) is fitted later, on the whole database.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::pooling::{l2_normalise, pool, Pooling};
use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::{Prepared, Preprocess};
use crate::engine::model::vgg::Vgg16;

/// Images per forward pass: large enough to keep the cores busy, small enough that indexing
/// stays well under 1.5 GiB (conv1's im2col buffer is ~115 MB per 224x224 image).
pub const BATCH_SIZE: usize = 4;

/// conv5_3, the last conv layer (timm `features` index): the only layer libraries built before
/// 2026-12-08 pooled, and the one fc2 reads.
pub const CONV5_3: usize = 28;
/// conv4_3 (stride 8): finer texture and particle detail.
pub const CONV4_3: usize = 21;

/// Which conv maps are pooled into an image descriptor: a main layer and, optionally, a second
/// one beside it. Each layer's pooled vector is L2-normalised and weighted so that the second
/// holds `second_percent` % of the descriptor's squared norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layers {
    pub main: usize,
    pub second: Option<usize>,
    pub second_percent: u8,
}

impl Layers {
    /// conv5_3 alone: what a library that does not record its layers was built with.
    pub const CONV5_ONLY: Self = Self {
        main: CONV5_3,
        second: None,
        second_percent: 0,
    };
    /// The default, chosen on CaCO3 and EMPS together (docs/quality.md, "Image descriptor"):
    /// conv5_3 and conv4_3 side by side, conv4_3 with 60 % of the weight.
    pub const DEFAULT: Self = Self {
        main: CONV5_3,
        second: Some(CONV4_3),
        second_percent: 60,
    };

    /// (layer, weight) of each pooled layer; the squared weights sum to 1.
    pub fn weighted(&self) -> Vec<(usize, f32)> {
        match self.second {
            Some(second) if self.second_percent > 0 => {
                let share = f32::from(self.second_percent.min(100)) / 100.0;
                vec![(self.main, (1.0 - share).sqrt()), (second, share.sqrt())]
            }
            _ => vec![(self.main, 1.0)],
        }
    }

    /// Short text for reports, e.g. `conv5_3 + conv4_3 (60 %)`.
    pub fn describe(&self) -> String {
        let name = |l: usize| match l {
            CONV5_3 => "conv5_3".to_string(),
            CONV4_3 => "conv4_3".to_string(),
            other => format!("layer {other}"),
        };
        match self.weighted().as_slice() {
            [_, (second, _)] => format!(
                "{} + {} ({} %)",
                name(self.main),
                name(*second),
                self.second_percent
            ),
            _ => name(self.main),
        }
    }
}

impl Default for Layers {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn conv5_only() -> Layers {
    Layers::CONV5_ONLY
}

/// How raw descriptors are computed (recorded in the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FeatureConfig {
    pub pooling: Pooling,
    /// Average the descriptor of the image with those of its horizontal and vertical mirror.
    pub flips: bool,
    pub preprocess: Preprocess,
    /// The conv maps pooled ([`Layers::DEFAULT`]; a library that does not record them was
    /// built at conv5_3 alone). fc2 always reads conv5_3 alone.
    #[serde(default = "conv5_only")]
    pub layers: Layers,
}

impl FeatureConfig {
    /// Refuses settings that cannot describe an image: a layer that is not a VGG16 conv
    /// layer, a share over 100 %, or fc2 with any layers but conv5_3 alone.
    pub fn validate(&self) -> Result<()> {
        let Layers {
            main,
            second,
            second_percent,
        } = self.layers;
        for layer in std::iter::once(main).chain(second) {
            if !crate::engine::model::vgg::CONV_INDICES.contains(&layer) {
                return Err(Error::InvalidSetting(format!(
                    "layer {layer} is not a VGG16 conv layer: use 21 (conv4_3) or 28 (conv5_3)"
                )));
            }
        }
        if second_percent > 100 {
            return Err(Error::InvalidSetting(format!(
                "the second layer's share is {second_percent} %: give 0 to 100"
            )));
        }
        if self.pooling == Pooling::Fc2 && self.layers.weighted() != vec![(CONV5_3, 1.0)] {
            return Err(Error::InvalidSetting(format!(
                "fc2 pooling reads conv5_3 alone, not {}",
                self.layers.describe()
            )));
        }
        Ok(())
    }
}

/// The image descriptor from each layer's map (in [`Layers::weighted`] order): each pooled,
/// L2-normalised, weighted and joined.
pub fn join_layers(pooled: Vec<Vec<f32>>, weights: &[(usize, f32)]) -> Vec<f32> {
    let mut out = Vec::with_capacity(pooled.iter().map(Vec::len).sum());
    for (mut v, &(_, w)) in pooled.into_iter().zip(weights) {
        l2_normalise(&mut v);
        out.extend(v.into_iter().map(|x| x * w));
    }
    out
}

/// Mirror of a channel-major square image: `horizontal` flips left-right, else top-bottom.
fn mirrored(chw: &[f32], size: usize, horizontal: bool) -> Vec<f32> {
    let mut out = vec![0f32; chw.len()];
    for (plane_in, plane_out) in chw
        .chunks_exact(size * size)
        .zip(out.chunks_exact_mut(size * size))
    {
        for y in 0..size {
            for x in 0..size {
                let (sy, sx) = if horizontal {
                    (y, size - 1 - x)
                } else {
                    (size - 1 - y, x)
                };
                plane_out[y * size + x] = plane_in[sy * size + sx];
            }
        }
    }
    out
}

/// Raw descriptors of `images` (all of the same size), one unit vector each.
pub fn describe(
    vgg: &Vgg16,
    images: &[&Prepared],
    config: &FeatureConfig,
) -> Result<Vec<Vec<f32>>> {
    if config.pooling == Pooling::Fc2 && !vgg.has_fc() {
        return Err(Error::InvalidSetting(
            "fc2 pooling (the study's original descriptor) needs the full VGG16 weights: pass \
             --weights with a timm vgg16.tv_in1k safetensors (528 MB); the shipped file has the \
             conv layers only"
                .into(),
        ));
    }
    config.validate()?;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH_SIZE) {
        let size = chunk[0].size as usize;
        let mut planes = Vec::new();
        for p in chunk {
            if p.size as usize != size {
                return Err(Error::InvalidSetting(
                    "images in one batch differ in size".into(),
                ));
            }
            planes.extend_from_slice(&p.chw);
            if config.flips {
                planes.extend(mirrored(&p.chw, size, true));
                planes.extend(mirrored(&p.chw, size, false));
            }
        }
        let views = if config.flips { 3 } else { 1 };
        let batch = Tensor::from_vec(planes, (chunk.len() * views, 3, size, size), vgg.device())?;
        let input = vgg.normalise(&batch)?;
        let rows: Vec<Vec<f32>> = if config.pooling == Pooling::Fc2 {
            let fc = vgg
                .fc2(&vgg.conv5(&input)?)?
                .ok_or_else(|| Error::InvalidSetting("no fc layers".into()))?;
            fc.to_vec2()?
        } else {
            let weights = config.layers.weighted();
            let taps: Vec<(usize, Pooling)> =
                weights.iter().map(|&(l, _)| (l, config.pooling)).collect();
            let per_layer = pool_taps(vgg, &input, &taps)?;
            (0..chunk.len() * views)
                .map(|i| join_layers(per_layer.iter().map(|p| p[i].clone()).collect(), &weights))
                .collect()
        };
        for group in rows.chunks(views) {
            let mut acc = vec![0f32; group[0].len()];
            for r in group {
                let mut r = r.clone();
                l2_normalise(&mut r);
                acc.iter_mut().zip(&r).for_each(|(a, b)| *a += b);
            }
            l2_normalise(&mut acc);
            out.push(acc);
        }
    }
    Ok(out)
}

/// Descriptors of same-size images under several poolings of one layer's map (no flips):
/// `out[p][i]` is image i pooled with `poolings[p]`, each a unit vector.
pub fn describe_pooled(
    vgg: &Vgg16,
    images: &[&Prepared],
    poolings: &[Pooling],
    layer: usize,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let taps: Vec<(usize, Pooling)> = poolings.iter().map(|&p| (layer, p)).collect();
    describe_taps(vgg, images, &taps)
}

/// Descriptors of same-size images at several (conv layer, pooling) taps from a single forward
/// pass per batch (no flips): `out[t][i]` is image i's map after layer `taps[t].0` pooled with
/// `taps[t].1`, each a unit vector.
pub fn describe_taps(
    vgg: &Vgg16,
    images: &[&Prepared],
    taps: &[(usize, Pooling)],
) -> Result<Vec<Vec<Vec<f32>>>> {
    if taps.iter().any(|&(_, p)| p == Pooling::Fc2) {
        return Err(Error::InvalidSetting(
            "fc2 is not available for drawings".into(),
        ));
    }
    let mut out = vec![Vec::new(); taps.len()];
    for chunk in images.chunks(BATCH_SIZE) {
        let size = chunk[0].size as usize;
        let mut planes = Vec::new();
        for p in chunk {
            planes.extend_from_slice(&p.chw);
        }
        let batch = Tensor::from_vec(planes, (chunk.len(), 3, size, size), vgg.device())?;
        for (pooled, descriptors) in pool_taps(vgg, &vgg.normalise(&batch)?, taps)?
            .into_iter()
            .zip(out.iter_mut())
        {
            descriptors.extend(pooled);
        }
    }
    Ok(out)
}

/// One forward pass of a normalised batch, tapped at each `(layer, pooling)`: `out[t][i]` is
/// image i's map after layer `taps[t].0` pooled with `taps[t].1`, a unit vector.
fn pool_taps(vgg: &Vgg16, input: &Tensor, taps: &[(usize, Pooling)]) -> Result<Vec<Vec<Vec<f32>>>> {
    let layers: Vec<usize> = taps.iter().map(|&(layer, _)| layer).collect();
    let maps = vgg.conv_taps(input, &layers)?;
    maps.iter()
        .zip(taps)
        .map(|(map, &(_, pooling))| {
            let (n, c, h, w) = map.dims4()?;
            let flat: Vec<f32> = map.flatten_all()?.to_vec1()?;
            Ok((0..n)
                .map(|i| {
                    let mut v = pool(&flat[i * c * h * w..(i + 1) * c * h * w], c, h, w, pooling);
                    l2_normalise(&mut v);
                    v
                })
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_weights_square_to_one_and_joined_descriptors_are_unit() {
        for layers in [Layers::DEFAULT, Layers::CONV5_ONLY] {
            let w = layers.weighted();
            let sum: f32 = w.iter().map(|(_, w)| w * w).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{w:?}");
            let parts: Vec<Vec<f32>> = w.iter().map(|_| vec![3.0, 4.0, 0.0]).collect();
            let joined = join_layers(parts, &w);
            assert_eq!(joined.len(), 3 * w.len());
            let norm: f32 = joined.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        assert_eq!(
            Layers::DEFAULT
                .weighted()
                .iter()
                .map(|(l, _)| *l)
                .collect::<Vec<_>>(),
            vec![CONV5_3, CONV4_3]
        );
        assert_eq!(Layers::DEFAULT.describe(), "conv5_3 + conv4_3 (60 %)");
    }

    #[test]
    fn a_library_that_does_not_record_its_layers_was_built_at_conv5_3() {
        let mut value = serde_json::to_value(FeatureConfig::default()).expect("json");
        value.as_object_mut().expect("object").remove("layers");
        let old: FeatureConfig = serde_json::from_value(value).expect("old config");
        assert_eq!(old.layers, Layers::CONV5_ONLY);
        assert_eq!(FeatureConfig::default().layers, Layers::DEFAULT);
    }

    #[test]
    fn impossible_layer_settings_are_refused() {
        let with = |layers: Layers, pooling: Pooling| FeatureConfig {
            layers,
            pooling,
            ..FeatureConfig::default()
        };
        assert!(with(Layers::DEFAULT, Pooling::MaxGem).validate().is_ok());
        let not_conv = Layers {
            main: 27,
            ..Layers::DEFAULT
        };
        assert!(with(not_conv, Pooling::Max).validate().is_err());
        let too_much = Layers {
            second_percent: 101,
            ..Layers::DEFAULT
        };
        assert!(with(too_much, Pooling::Max).validate().is_err());
        assert!(with(Layers::DEFAULT, Pooling::Fc2).validate().is_err());
        assert!(with(Layers::CONV5_ONLY, Pooling::Fc2).validate().is_ok());
    }

    #[test]
    fn mirror_twice_is_identity() {
        let chw: Vec<f32> = (0..3 * 5 * 5).map(|v| v as f32).collect();
        for horizontal in [true, false] {
            assert_eq!(mirrored(&mirrored(&chw, 5, horizontal), 5, horizontal), chw);
        }
        assert_ne!(mirrored(&chw, 5, true), chw);
    }
}
