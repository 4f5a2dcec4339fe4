//! VGG16 (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition", ICLR 2015) as a batched feature extractor in candle.
//!
//! Modelled on candle-transformers' `vgg.rs` but batched, stopping at the last conv block
//! (conv5_3 after ReLU) and keeping timm's tensor names (`features.N.*`, `pre_logits.fc1/fc2`).
//! The fully connected layers are optional: with a full timm `vgg16.tv_in1k` file the study's
//! original descriptor (fc2, 4096-d) is available too.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::engine::error::{Error, Result};
pub use crate::engine::model::weights::{
    cached_file_sha256, file_sha256, find_default_weights, hex, select_device, weights_file,
    SHIPPED_WEIGHTS,
};
use crate::engine::model::winograd::{max_pool_2x2_into, WinogradConv};

/// timm indices of the 13 conv layers inside `features`.
pub const CONV_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
/// (input, output) channels of the 13 conv layers.
pub const CONV_CHANNELS: [(usize, usize); 13] = [
    (3, 64),
    (64, 64),
    (64, 128),
    (128, 128),
    (128, 256),
    (256, 256),
    (256, 256),
    (256, 512),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
];
/// Conv layers followed by a 2x2 max-pool (the last block's pool only feeds the fc layers).
const POOL_AFTER: [usize; 4] = [2, 7, 14, 21];
/// Channels of the conv5_3 feature map.
pub const CONV5_CHANNELS: usize = 512;
/// Length of the fc2 descriptor.
pub const FC2_DIM: usize = 4096;

/// How the network expects its RGB input to be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputNorm {
    /// Oxford/Keras ("caffe") weights: 0..255 minus the ImageNet mean, no scaling.
    Caffe,
    /// torchvision/timm weights: 0..1, minus mean, divided by std.
    Torchvision,
}

impl InputNorm {
    /// (scale, mean) per RGB channel such that `input = value_0_255 * scale - mean`.
    fn affine(self) -> [(f32, f32); 3] {
        match self {
            Self::Caffe => [(1.0, 123.68), (1.0, 116.779), (1.0, 103.939)],
            Self::Torchvision => {
                let mean = [0.485f32, 0.456, 0.406];
                let std = [0.229f32, 0.224, 0.225];
                std::array::from_fn(|c| (1.0 / (255.0 * std[c]), mean[c] / std[c]))
            }
        }
    }
}

struct ConvLayer {
    weight: Tensor,
    bias: Tensor,
}

/// The VGG16 network, conv layers plus optional fully connected ones.
pub struct Vgg16 {
    convs: Vec<ConvLayer>,
    /// The same conv layers prepared for the fast CPU path (None on GPU devices).
    fast: Option<Vec<WinogradConv>>,
    fc: Option<(ConvLayer, ConvLayer)>,
    norm: InputNorm,
    device: Device,
    weights_sha256: String,
}

fn take(
    tensors: &mut HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    path: &Path,
    device: &Device,
) -> Result<Tensor> {
    let t = tensors.remove(name).ok_or_else(|| {
        Error::Weights(format!(
            "{} is not a VGG16 weights file: tensor {name} is missing (expected timm names \
             features.{{0,2,5,...,28}}.weight/bias, as in weights/{SHIPPED_WEIGHTS} or a timm \
             vgg16.tv_in1k safetensors)",
            path.display()
        ))
    })?;
    if t.dims() != shape {
        return Err(Error::Weights(format!(
            "{}: tensor {name} has shape {:?}, VGG16 needs {shape:?}",
            path.display(),
            t.dims()
        )));
    }
    Ok(t.to_dtype(DType::F32)?.to_device(device)?)
}

impl Vgg16 {
    /// Loads weights from a safetensors file (f16, bf16 or f32).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Weights(format!(
                "VGG16 weights file {} does not exist; use weights/{SHIPPED_WEIGHTS} from the \
                 source tree or see weights/README.md to regenerate it",
                path.display()
            )));
        }
        let weights_sha256 = cached_file_sha256(path)?;
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            Error::Weights(format!(
                "{} is not a readable safetensors file ({e}); expected VGG16 weights such as \
                 weights/{SHIPPED_WEIGHTS}",
                path.display()
            ))
        })?;
        let full = tensors.contains_key("pre_logits.fc1.weight");
        // Our importer writes caffe-normalised (Oxford) weights and says so in the file's
        // metadata; timm's files carry torchvision weights.
        let norm = if full {
            InputNorm::Torchvision
        } else {
            InputNorm::Caffe
        };
        Self::from_tensors(tensors, norm, path, device, weights_sha256)
    }

    /// Builds the network from named tensors (used by tests with random weights).
    pub fn from_tensors(
        mut tensors: HashMap<String, Tensor>,
        norm: InputNorm,
        path: &Path,
        device: &Device,
        weights_sha256: String,
    ) -> Result<Self> {
        let mut convs = Vec::new();
        for (&idx, &(c_in, c_out)) in CONV_INDICES.iter().zip(&CONV_CHANNELS) {
            convs.push(ConvLayer {
                weight: take(
                    &mut tensors,
                    &format!("features.{idx}.weight"),
                    &[c_out, c_in, 3, 3],
                    path,
                    device,
                )?,
                bias: take(
                    &mut tensors,
                    &format!("features.{idx}.bias"),
                    &[c_out],
                    path,
                    device,
                )?
                .reshape((1, c_out, 1, 1))?,
            });
        }
        let fc = if tensors.contains_key("pre_logits.fc1.weight") {
            let fc1 = ConvLayer {
                weight: take(
                    &mut tensors,
                    "pre_logits.fc1.weight",
                    &[FC2_DIM, CONV5_CHANNELS, 7, 7],
                    path,
                    device,
                )?,
                bias: take(
                    &mut tensors,
                    "pre_logits.fc1.bias",
                    &[FC2_DIM],
                    path,
                    device,
                )?
                .reshape((1, FC2_DIM, 1, 1))?,
            };
            let fc2 = ConvLayer {
                weight: take(
                    &mut tensors,
                    "pre_logits.fc2.weight",
                    &[FC2_DIM, FC2_DIM, 1, 1],
                    path,
                    device,
                )?,
                bias: take(
                    &mut tensors,
                    "pre_logits.fc2.bias",
                    &[FC2_DIM],
                    path,
                    device,
                )?
                .reshape((1, FC2_DIM, 1, 1))?,
            };
            Some((fc1, fc2))
        } else {
            None
        };
        let fast = if device.is_cpu() {
            let mut layers = Vec::new();
            for (layer, &(c_in, c_out)) in convs.iter().zip(&CONV_CHANNELS) {
                let w: Vec<f32> = layer.weight.flatten_all()?.to_vec1()?;
                let b: Vec<f32> = layer.bias.flatten_all()?.to_vec1()?;
                layers.push(WinogradConv::new(&w, &b, c_in, c_out));
            }
            Some(layers)
        } else {
            None
        };
        Ok(Self {
            convs,
            fast,
            fc,
            norm,
            device: device.clone(),
            weights_sha256,
        })
    }

    /// sha256 of the weights file this network was loaded from.
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Whether the fully connected layers (and so the fc2 descriptor) are available.
    pub fn has_fc(&self) -> bool {
        self.fc.is_some()
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Turns a batch of RGB images, `[N, 3, H, W]` in 0..255, into the network's input.
    pub fn normalise(&self, rgb_0_255: &Tensor) -> Result<Tensor> {
        let affine = self.norm.affine();
        let scale = Tensor::new(&affine.map(|(s, _)| s), &self.device)?.reshape((1, 3, 1, 1))?;
        let mean = Tensor::new(&affine.map(|(_, m)| m), &self.device)?.reshape((1, 3, 1, 1))?;
        Ok(rgb_0_255.broadcast_mul(&scale)?.broadcast_sub(&mean)?)
    }

    /// conv5_3 after ReLU, `[N, 512, H/16, W/16]`, from a normalised `[N, 3, H, W]` input.
    /// On the CPU this takes the fast Winograd path, elsewhere candle's `conv2d`.
    pub fn conv5(&self, input: &Tensor) -> Result<Tensor> {
        self.conv_until(input, CONV_INDICES[12])
    }

    /// The feature map after conv layer `last` (a timm `features` index such as 21 for conv4_3
    /// or 28 for conv5_3) and its ReLU, `[N, C, h, w]`.
    pub fn conv_until(&self, input: &Tensor, last: usize) -> Result<Tensor> {
        Ok(self.conv_taps(input, &[last])?.remove(0))
    }

    /// The feature maps after each conv layer in `taps` (timm `features` indices, in any
    /// order), from one forward pass that stops at the deepest: `[N, C, h, w]` each, in the
    /// order asked.
    pub fn conv_taps(&self, input: &Tensor, taps: &[usize]) -> Result<Vec<Tensor>> {
        if let Some(bad) = taps.iter().find(|t| !CONV_INDICES.contains(t)) {
            return Err(Error::InvalidSetting(format!(
                "{bad} is not a VGG16 conv layer index"
            )));
        }
        let Some(&last) = taps.iter().max() else {
            return Ok(Vec::new());
        };
        let maps = match &self.fast {
            Some(layers) => self.conv_fast(layers, input, taps, last)?,
            None => self.conv_reference_taps(input, taps, last)?,
        };
        // `maps` follows layer order; answer in the order asked.
        let mut order: Vec<usize> = taps.to_vec();
        order.sort_unstable();
        order.dedup();
        Ok(taps
            .iter()
            .map(|t| maps[order.binary_search(t).unwrap_or(0)].clone())
            .collect())
    }

    /// Maps after the distinct layers of `taps` in layer order (the fast channel-last path).
    fn conv_fast(
        &self,
        layers: &[WinogradConv],
        input: &Tensor,
        taps: &[usize],
        last: usize,
    ) -> Result<Vec<Tensor>> {
        let (n, c, h0, w0) = input.dims4()?;
        if c != 3 {
            return Err(Error::InvalidSetting(format!(
                "VGG16 takes 3 input channels, got {c}"
            )));
        }
        let nhwc: Vec<f32> = input.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1()?;
        // Ping-pong activation buffers kept per thread between calls: the first layers' maps
        // are 13 MB each, and fresh allocations would page-fault on every image.
        thread_local! {
            static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        let (mut a, mut b) = BUFFERS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        // Per tapped layer: the maps of the whole batch, and their shape.
        let mut taken: Vec<(Vec<f32>, (usize, usize, usize))> = Vec::new();
        for (i, image) in nhwc.chunks_exact(h0 * w0 * 3).enumerate() {
            a.clear();
            a.extend_from_slice(image);
            let (mut h, mut w) = (h0, w0);
            let mut tap = 0;
            for (layer, idx) in layers.iter().zip(CONV_INDICES) {
                layer.forward_into(&a, h, w, &mut b);
                std::mem::swap(&mut a, &mut b);
                if taps.contains(&idx) {
                    if i == 0 {
                        taken.push((Vec::with_capacity(n * a.len()), (h, w, layer.c_out)));
                    }
                    taken[tap].0.extend_from_slice(&a);
                    tap += 1;
                }
                if idx == last {
                    break;
                }
                if POOL_AFTER.contains(&idx) {
                    max_pool_2x2_into(&a, h, w, layer.c_out, &mut b);
                    std::mem::swap(&mut a, &mut b);
                    (h, w) = (h / 2, w / 2);
                }
            }
        }
        BUFFERS.with(|cell| *cell.borrow_mut() = (a, b));
        taken
            .into_iter()
            .map(|(data, (h, w, channels))| {
                Ok(Tensor::from_vec(data, (n, h, w, channels), &self.device)?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?)
            })
            .collect()
    }

    /// conv5_3 with candle's own `conv2d`: the straightforward path the fast one is checked
    /// against.
    pub fn conv5_reference(&self, input: &Tensor) -> Result<Tensor> {
        self.conv_reference_until(input, CONV_INDICES[12])
    }

    fn conv_reference_until(&self, input: &Tensor, last: usize) -> Result<Tensor> {
        Ok(self.conv_reference_taps(input, &[last], last)?.remove(0))
    }

    /// Maps after the distinct layers of `taps` in layer order, with candle's `conv2d`.
    fn conv_reference_taps(
        &self,
        input: &Tensor,
        taps: &[usize],
        last: usize,
    ) -> Result<Vec<Tensor>> {
        let mut x = input.clone();
        let mut maps = Vec::new();
        for (layer, idx) in self.convs.iter().zip(CONV_INDICES) {
            x = x
                .conv2d(&layer.weight, 1, 1, 1, 1)?
                .broadcast_add(&layer.bias)?
                .relu()?;
            if taps.contains(&idx) {
                maps.push(x.clone());
            }
            if idx == last {
                break;
            }
            if POOL_AFTER.contains(&idx) {
                x = x.max_pool2d(2)?;
            }
        }
        Ok(maps)
    }

    /// fc2 after ReLU, `[N, 4096]`, from conv5_3 of a 224x224 input; None without fc weights.
    pub fn fc2(&self, conv5: &Tensor) -> Result<Option<Tensor>> {
        let Some((fc1, fc2)) = &self.fc else {
            return Ok(None);
        };
        let x = conv5.max_pool2d(2)?;
        let (n, _, h, w) = x.dims4()?;
        if (h, w) != (7, 7) {
            return Err(Error::InvalidSetting(format!(
                "the fc2 descriptor needs a 224x224 input (7x7 after the last pool), got {h}x{w}"
            )));
        }
        let x = x
            .conv2d(&fc1.weight, 0, 1, 1, 1)?
            .broadcast_add(&fc1.bias)?
            .relu()?;
        let x = x
            .conv2d(&fc2.weight, 0, 1, 1, 1)?
            .broadcast_add(&fc2.bias)?
            .relu()?;
        Ok(Some(x.reshape((n, FC2_DIM))?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A VGG16 with small random weights (He-like scale so activations stay finite).
    pub(crate) fn random_tensors(with_fc: bool) -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        for (&idx, &(c_in, c_out)) in CONV_INDICES.iter().zip(&CONV_CHANNELS) {
            let std = (2.0 / (c_in as f64 * 9.0)).sqrt();
            map.insert(
                format!("features.{idx}.weight"),
                Tensor::randn(0f32, std as f32, (c_out, c_in, 3, 3), &dev).expect("randn"),
            );
            map.insert(
                format!("features.{idx}.bias"),
                Tensor::zeros(c_out, DType::F32, &dev).expect("zeros"),
            );
        }
        if with_fc {
            map.insert(
                "pre_logits.fc1.weight".into(),
                Tensor::randn(0f32, 0.01, (FC2_DIM, 512, 7, 7), &dev).expect("randn"),
            );
            map.insert(
                "pre_logits.fc1.bias".into(),
                Tensor::zeros(FC2_DIM, DType::F32, &dev).expect("z"),
            );
            map.insert(
                "pre_logits.fc2.weight".into(),
                Tensor::randn(0f32, 0.01, (FC2_DIM, FC2_DIM, 1, 1), &dev).expect("randn"),
            );
            map.insert(
                "pre_logits.fc2.bias".into(),
                Tensor::zeros(FC2_DIM, DType::F32, &dev).expect("z"),
            );
        }
        map
    }

    /// A whole model on [`random_tensors`].
    fn random_vgg(with_fc: bool, norm: InputNorm) -> Vgg16 {
        Vgg16::from_tensors(
            random_tensors(with_fc),
            norm,
            Path::new("r"),
            &Device::Cpu,
            "x".into(),
        )
        .expect("random weights")
    }

    #[test]
    fn conv5_has_vgg_shape_for_a_batch() {
        let vgg = random_vgg(false, InputNorm::Caffe);
        let x = Tensor::rand(0f32, 255.0, (2, 3, 64, 48), &Device::Cpu).expect("rand");
        let y = vgg
            .conv5(&vgg.normalise(&x).expect("norm"))
            .expect("forward");
        assert_eq!(y.dims(), &[2, 512, 4, 3]);
        assert!(!vgg.has_fc());
        assert!(vgg.fc2(&y).expect("no fc").is_none());
    }

    #[test]
    fn taps_of_one_pass_equal_separate_passes_in_the_order_asked() {
        let vgg = random_vgg(false, InputNorm::Caffe);
        let x = vgg
            .normalise(&Tensor::rand(0f32, 255.0, (2, 3, 64, 48), &Device::Cpu).expect("rand"))
            .expect("norm");
        let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().expect("f").to_vec1().expect("v") };
        let maps = vgg.conv_taps(&x, &[28, 21, 28]).expect("taps");
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].dims(), &[2, 512, 4, 3]);
        assert_eq!(maps[1].dims(), &[2, 512, 8, 6]);
        assert_eq!(
            flat(&maps[0]),
            flat(&vgg.conv_until(&x, 28).expect("conv5"))
        );
        assert_eq!(
            flat(&maps[1]),
            flat(&vgg.conv_until(&x, 21).expect("conv4"))
        );
        assert_eq!(flat(&maps[2]), flat(&maps[0]));
        assert!(
            vgg.conv_taps(&x, &[27]).is_err(),
            "27 is a ReLU, not a conv"
        );
        assert!(vgg.conv_taps(&x, &[]).expect("none").is_empty());
    }

    #[test]
    fn fc2_descriptor_with_full_weights() {
        let vgg = random_vgg(true, InputNorm::Torchvision);
        let x = Tensor::rand(0f32, 255.0, (1, 3, 224, 224), &Device::Cpu).expect("rand");
        let c5 = vgg
            .conv5(&vgg.normalise(&x).expect("norm"))
            .expect("forward");
        let fc = vgg.fc2(&c5).expect("fc").expect("has fc");
        assert_eq!(fc.dims(), &[1, FC2_DIM]);
    }

    #[test]
    fn batch_rows_equal_single_image_rows() {
        let vgg = random_vgg(false, InputNorm::Caffe);
        let x = Tensor::rand(0f32, 255.0, (2, 3, 32, 32), &Device::Cpu).expect("rand");
        let both = vgg.conv5(&vgg.normalise(&x).expect("n")).expect("f");
        let one = vgg
            .conv5(&vgg.normalise(&x.narrow(0, 1, 1).expect("n")).expect("n"))
            .expect("f");
        let diff = (both.narrow(0, 1, 1).expect("n") - &one)
            .expect("sub")
            .abs()
            .expect("abs")
            .max_all()
            .expect("max")
            .to_scalar::<f32>()
            .expect("scalar");
        assert!(diff < 1e-4, "{diff}");
    }

    #[test]
    fn fast_path_equals_candle_path() {
        let vgg = random_vgg(false, InputNorm::Caffe);
        let x = vgg
            .normalise(&Tensor::rand(0f32, 255.0, (2, 3, 64, 80), &Device::Cpu).expect("rand"))
            .expect("n");
        let fast: Vec<f32> = vgg
            .conv5(&x)
            .expect("fast")
            .flatten_all()
            .expect("f")
            .to_vec1()
            .expect("v");
        let slow: Vec<f32> = vgg
            .conv5_reference(&x)
            .expect("slow")
            .flatten_all()
            .expect("f")
            .to_vec1()
            .expect("v");
        let num: f32 = fast.iter().zip(&slow).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f32 = slow.iter().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        assert!(rel < 1e-4, "relative L2 {rel}");
    }

    #[test]
    fn caffe_normalisation_subtracts_the_mean() {
        let vgg = random_vgg(false, InputNorm::Caffe);
        let x = Tensor::full(123.68f32, (1, 3, 1, 1), &Device::Cpu).expect("full");
        let v: Vec<f32> = vgg
            .normalise(&x)
            .expect("n")
            .flatten_all()
            .expect("f")
            .to_vec1()
            .expect("v");
        assert!(
            (v[0]).abs() < 1e-4 && (v[1] - 6.901).abs() < 1e-3 && (v[2] - 19.741).abs() < 1e-3,
            "{v:?}"
        );
    }

    #[test]
    fn missing_tensor_is_a_clear_error() {
        let mut t = random_tensors(false);
        t.remove("features.12.weight");
        let err = Vgg16::from_tensors(
            t,
            InputNorm::Caffe,
            Path::new("w.safetensors"),
            &Device::Cpu,
            "x".into(),
        )
        .err()
        .expect("must fail");
        assert!(
            err.to_string().contains("features.12.weight is missing"),
            "{err}"
        );
    }
}
