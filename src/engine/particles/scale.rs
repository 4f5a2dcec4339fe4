//! The physical pixel size of a micrograph, read where the instrument wrote it.
//!
//! Sources, in order (the reference for each is rosettasciio's TIFF reader, which reads the same
//! tags through tifffile):
//! - FEI / Thermo Fisher TIFF tag 34682: INI text, `[Scan] PixelWidth` in metres (else
//!   `[IRBeam] HFW / [Image] ResolutionX`).
//! - Zeiss TIFF tag 34118 (`CZ_SEM`): text; the unnamed values before the first key hold the
//!   pixel size in metres at index 3, stored for a 1024-px-wide frame, so rosettasciio scales
//!   it by 1024 / image width. `AP_IMAGE_PIXEL_SIZE` / `AP_PIXEL_SIZE` (`Pixel Size = 5.825 nm`,
//!   rounded) are the fallback, scaled the same way.
//! - TESCAN TIFF tag 50431: `key=value` lines, `PixelSizeX` in metres.
//! - ImageJ TIFFs: ImageDescription starting `ImageJ=` with `unit=` (micron, nm, ...) and
//!   XResolution in pixels per unit.
//! - Hitachi `.txt` sidecar (same stem): `PixelSize=` in nm.
//! - JEOL `.txt` sidecar: `$$SM_MICRON_BAR` (scale bar length in px) and `$$SM_MICRON_MARKER`
//!   (its length, e.g. `500nm`).
//!
//! The TIFF directory is read here (a few dozen lines) rather than through the `tiff` crate's
//! decoder, which validates the whole image first and rejects non-ASCII bytes in text tags
//! (`µm`); every offset and count is checked, and anything malformed is "unknown scale".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A pixel size and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelSize {
    pub nm: f64,
    /// Human-readable source: "FEI tag 34682", "Zeiss tag 34118", "table column …", "typed", …
    pub source: String,
}

impl PixelSize {
    pub fn new(nm: f64, source: impl Into<String>) -> Option<Self> {
        (nm.is_finite() && nm > 0.0 && nm < 1e9).then(|| Self {
            nm,
            source: source.into(),
        })
    }
}

/// The pixel size recorded in `path` (TIFF tags) or beside it (`.txt` sidecar), if any.
/// `width` is the image width in pixels.
pub fn from_file(path: &Path, width: u32) -> Option<PixelSize> {
    let tags = read_tiff_tags(path).ok();
    if let Some(tags) = &tags {
        if let Some(found) = from_tags(tags, width) {
            return Some(found);
        }
    }
    from_sidecar(&path.with_extension("txt"))
}

/// The TIFF tags this module reads, from the first image directory.
#[derive(Debug, Default, Clone)]
pub struct TiffTags {
    pub description: Option<Vec<u8>>,
    pub x_resolution: Option<f64>,
    pub resolution_unit: Option<u32>,
    pub fei: Option<Vec<u8>>,
    pub zeiss: Option<Vec<u8>>,
    pub tescan: Option<Vec<u8>>,
}

const MAX_TAG_BYTES: u64 = 1 << 20;

/// Reads the tags of the first directory of a TIFF file; errors for anything that is not a
/// well-formed classic TIFF header and directory.
pub fn read_tiff_tags(path: &Path) -> std::io::Result<TiffTags> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut header = [0u8; 8];
    file.read_exact(&mut header)?;
    let little = match &header[..4] {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return Err(bad("not a classic TIFF file")),
    };
    let u16_at = |b: &[u8]| {
        let a = [b[0], b[1]];
        if little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    };
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let ifd = u32_at(&header[4..]) as u64;
    if ifd + 2 > len {
        return Err(bad("directory offset beyond the end of the file"));
    }
    file.seek(SeekFrom::Start(ifd))?;
    let mut count = [0u8; 2];
    file.read_exact(&mut count)?;
    let entries = u16_at(&count) as u64;
    if ifd + 2 + entries * 12 > len {
        return Err(bad("directory runs past the end of the file"));
    }
    let mut table = vec![0u8; entries as usize * 12];
    file.read_exact(&mut table)?;
    let mut tags = TiffTags::default();
    for entry in table.chunks_exact(12) {
        let (tag, kind, n) = (
            u16_at(entry),
            u16_at(&entry[2..]),
            u32_at(&entry[4..]) as u64,
        );
        let unit = match kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => continue,
        };
        let size = n.saturating_mul(unit);
        if !matches!(tag, 270 | 282 | 296 | 34682 | 34118 | 50431) || size > MAX_TAG_BYTES {
            continue;
        }
        let bytes = if size <= 4 {
            entry[8..8 + size as usize].to_vec()
        } else {
            let offset = u32_at(&entry[8..]) as u64;
            if offset.saturating_add(size) > len {
                continue;
            }
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; size as usize];
            file.read_exact(&mut buf)?;
            buf
        };
        match tag {
            270 => tags.description = Some(bytes),
            282 if kind == 5 && bytes.len() >= 8 => {
                let (num, den) = (u32_at(&bytes), u32_at(&bytes[4..]));
                if den > 0 {
                    tags.x_resolution = Some(num as f64 / den as f64);
                }
            }
            296 if kind == 3 => tags.resolution_unit = Some(u16_at(&bytes) as u32),
            34682 => tags.fei = Some(bytes),
            34118 => tags.zeiss = Some(bytes),
            50431 => tags.tescan = Some(bytes),
            _ => {}
        }
    }
    Ok(tags)
}

/// Text of a tag: UTF-8 where valid, else Latin-1; NULs end it.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// A leading number of `s` ("5.825 nm" -> 5.825).
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || c == '-'
                || c == '+'
                || ((c == 'e' || c == 'E') && i > 0))
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    s[..end].parse().ok().filter(|v: &f64| v.is_finite())
}

/// Nanometres per `unit` ("nm", "µm", "micron", "mm", "m", "pm", "Å").
fn unit_nm(unit: &str) -> Option<f64> {
    let u = unit.trim().trim_matches('"').to_lowercase();
    Some(match u.as_str() {
        "pm" => 1e-3,
        "a" | "å" | "angstrom" => 0.1,
        "nm" | "nanometer" | "nanometre" | "nanometers" => 1.0,
        "um" | "µm" | "μm" | "micron" | "microns" | "micrometer" | "micrometre" | "\\u00b5m" => {
            1e3
        }
        "mm" | "millimeter" | "millimetre" => 1e6,
        "cm" | "centimeter" => 1e7,
        "m" | "meter" | "metre" => 1e9,
        _ => return None,
    })
}

/// A length like "500nm", "1 µm", "2.5um" in nm.
fn length_nm(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|&(_, c)| c.is_alphabetic() || c == 'µ' || c == 'μ')
        .map(|(i, _)| i)?;
    Some(s[..split].trim().parse::<f64>().ok()? * unit_nm(&s[split..])?)
}

/// Values of `key=value` lines, optionally within an INI `[section]`.
fn ini_value(text: &str, section: Option<&str>, key: &str) -> Option<f64> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if section.is_some_and(|s| s != current) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                return leading_number(v);
            }
        }
    }
    None
}

/// The pixel size recorded in the tags of a TIFF `width` pixels wide.
pub fn from_tags(tags: &TiffTags, width: u32) -> Option<PixelSize> {
    if let Some(fei) = &tags.fei {
        let t = text(fei);
        if let Some(m) = ini_value(&t, Some("Scan"), "PixelWidth") {
            return PixelSize::new(m * 1e9, "FEI tag 34682 [Scan] PixelWidth");
        }
        let hfw = ini_value(&t, Some("IRBeam"), "HFW");
        let columns = ini_value(&t, Some("Image"), "ResolutionX");
        if let (Some(hfw), Some(columns)) = (hfw, columns) {
            if columns > 0.0 {
                return PixelSize::new(hfw / columns * 1e9, "FEI tag 34682 [IRBeam] HFW");
            }
        }
    }
    if let Some(zeiss) = &tags.zeiss {
        if let Some(found) = zeiss_pixel_size(&text(zeiss), width) {
            return Some(found);
        }
    }
    if let Some(tescan) = &tags.tescan {
        if let Some(m) = ini_value(&text(tescan), None, "PixelSizeX") {
            return PixelSize::new(m * 1e9, "TESCAN tag 50431 PixelSizeX");
        }
    }
    if let (Some(description), Some(per_unit)) = (&tags.description, tags.x_resolution) {
        let d = text(description);
        if d.starts_with("ImageJ=") && per_unit > 0.0 {
            let unit = d
                .lines()
                .find_map(|l| l.trim().strip_prefix("unit="))
                .and_then(unit_nm)?;
            return PixelSize::new(unit / per_unit, "ImageJ unit + XResolution");
        }
    }
    None
}

fn zeiss_pixel_size(t: &str, width: u32) -> Option<PixelSize> {
    let frame = 1024.0 / width.max(1) as f64;
    // Unnamed values: lines before the first upper-case key (tifffile's reading of CZ_SEM).
    let unnamed: Vec<&str> = t
        .lines()
        .take_while(|l| !(l.chars().any(|c| c.is_alphabetic()) && *l == l.to_uppercase()))
        .collect();
    if let Some(m) = unnamed.get(3).and_then(|v| leading_number(v)) {
        if m > 0.0 {
            return PixelSize::new(m * 1e9 * frame, "Zeiss tag 34118 (frame pixel size)");
        }
    }
    let lines: Vec<&str> = t.lines().map(str::trim).collect();
    for key in ["AP_IMAGE_PIXEL_SIZE", "AP_PIXEL_SIZE"] {
        let Some(i) = lines.iter().position(|l| *l == key) else {
            continue;
        };
        let value = lines.get(i + 1)?.split_once('=')?.1.trim();
        if let Some(nm) = length_nm(value) {
            return PixelSize::new(nm * frame, format!("Zeiss tag 34118 {key}"));
        }
    }
    None
}

/// Hitachi (`PixelSize=` nm) or JEOL (`$$SM_MICRON_BAR`, `$$SM_MICRON_MARKER`) sidecar text.
pub fn from_sidecar(path: &Path) -> Option<PixelSize> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_TAG_BYTES {
        return None;
    }
    let t = text(&std::fs::read(path).ok()?);
    if let Some(nm) = ini_value(&t, None, "PixelSize") {
        return PixelSize::new(nm, "Hitachi sidecar PixelSize");
    }
    let field = |key: &str| {
        t.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let bar_px = field("$$SM_MICRON_BAR").and_then(|v| leading_number(&v))?;
    let marker_nm = field("$$SM_MICRON_MARKER").and_then(|v| length_nm(&v))?;
    if bar_px <= 0.0 {
        return None;
    }
    PixelSize::new(
        marker_nm / bar_px,
        "JEOL sidecar SM_MICRON_MARKER / SM_MICRON_BAR",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_units_parse() {
        assert_eq!(length_nm("500nm"), Some(500.0));
        assert_eq!(length_nm("2 µm"), Some(2000.0));
        assert_eq!(length_nm("1.5um"), Some(1500.0));
        assert_eq!(length_nm("nm"), None);
        assert_eq!(leading_number("3.3724e-006"), Some(3.3724e-6));
        assert_eq!(leading_number(" 5.825 nm"), Some(5.825));
    }

    #[test]
    fn malformed_text_is_unknown_scale() {
        let tags = TiffTags {
            fei: Some(b"[Scan]\nPixelWidth=abc\n".to_vec()),
            zeiss: Some(vec![0xff, 0xfe, 0x00]),
            tescan: Some(b"PixelSizeX=-1".to_vec()),
            description: Some(b"ImageJ=1.5\nunit=parsec\n".to_vec()),
            x_resolution: Some(10.0),
            resolution_unit: None,
        };
        assert_eq!(from_tags(&tags, 512), None);
    }
}
