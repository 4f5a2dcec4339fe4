//! From prepared images to raw descriptors: batched VGG16 forward, pooling, optional flip
//! augmentation, L2 normalisation. The projection (PCA) is fitted later, on the whole database.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::pooling::{l2_normalise, pool, Pooling};
use crate::engine::error::{Error, Result};
use crate::engine::imaging::preprocess::{Prepared, Preprocess};
use crate::engine::model::vgg::{Vgg16, CONV5_CHANNELS};

/// Images per forward pass: large enough to keep the cores busy, small enough that indexing
/// stays well under 1.5 GiB (conv1's im2col buffer is ~115 MB per 224x224 image).
pub const BATCH_SIZE: usize = 4;

/// How raw descriptors are computed (recorded in the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FeatureConfig {
    pub pooling: Pooling,
    /// Average the descriptor of the image with those of its horizontal and vertical mirror.
    pub flips: bool,
    pub preprocess: Preprocess,
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
        let conv5 = vgg.conv5(&vgg.normalise(&batch)?)?;
        let rows: Vec<Vec<f32>> = if config.pooling == Pooling::Fc2 {
            let fc = vgg
                .fc2(&conv5)?
                .ok_or_else(|| Error::InvalidSetting("no fc layers".into()))?;
            fc.to_vec2()?
        } else {
            let (n, c, h, w) = conv5.dims4()?;
            debug_assert_eq!(c, CONV5_CHANNELS);
            let flat: Vec<f32> = conv5.flatten_all()?.to_vec1()?;
            (0..n)
                .map(|i| {
                    pool(
                        &flat[i * c * h * w..(i + 1) * c * h * w],
                        c,
                        h,
                        w,
                        config.pooling,
                    )
                })
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
    let layers: Vec<usize> = taps.iter().map(|&(layer, _)| layer).collect();
    let mut out = vec![Vec::new(); taps.len()];
    for chunk in images.chunks(BATCH_SIZE) {
        let size = chunk[0].size as usize;
        let mut planes = Vec::new();
        for p in chunk {
            planes.extend_from_slice(&p.chw);
        }
        let batch = Tensor::from_vec(planes, (chunk.len(), 3, size, size), vgg.device())?;
        let maps = vgg.conv_taps(&vgg.normalise(&batch)?, &layers)?;
        for ((map, &(_, pooling)), descriptors) in maps.iter().zip(taps).zip(out.iter_mut()) {
            let (n, c, h, w) = map.dims4()?;
            let flat: Vec<f32> = map.flatten_all()?.to_vec1()?;
            for i in 0..n {
                let mut v = pool(&flat[i * c * h * w..(i + 1) * c * h * w], c, h, w, pooling);
                l2_normalise(&mut v);
                descriptors.push(v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_twice_is_identity() {
        let chw: Vec<f32> = (0..3 * 5 * 5).map(|v| v as f32).collect();
        for horizontal in [true, false] {
            assert_eq!(mirrored(&mirrored(&chw, 5, horizontal), 5, horizontal), chw);
        }
        assert_ne!(mirrored(&chw, 5, true), chw);
    }
}
