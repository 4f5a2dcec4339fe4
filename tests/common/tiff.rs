//! A minimal TIFF writer for tests: one uncompressed grey strip plus any extra tags, so that
//! instrument metadata (FEI, Zeiss, TESCAN, ImageJ) can be written without instrument files.

use std::path::Path;

/// A tag value of a test TIFF.
pub enum TagValue {
    Ascii(String),
    Bytes(Vec<u8>),
    Rational(u32, u32),
    Short(u16),
}

/// Writes a little-endian TIFF of `width x height` grey pixels (8 or 16 bits, a gradient)
/// with `extra` tags.
pub fn write(path: &Path, width: u32, height: u32, bits: u16, extra: Vec<(u16, TagValue)>) {
    let bytes_per = (bits / 8) as u32;
    let mut pixels = Vec::with_capacity((width * height * bytes_per) as usize);
    for y in 0..height {
        for x in 0..width {
            let v = ((x + y) * 65535 / (width + height)) as u16;
            if bits == 16 {
                pixels.extend_from_slice(&v.to_le_bytes());
            } else {
                pixels.push((v >> 8) as u8);
            }
        }
    }
    // (code, type, count, payload)
    let mut tags: Vec<(u16, u16, u32, Vec<u8>)> = vec![
        (256, 4, 1, width.to_le_bytes().to_vec()),
        (257, 4, 1, height.to_le_bytes().to_vec()),
        (258, 3, 1, bits.to_le_bytes().to_vec()),
        (259, 3, 1, 1u16.to_le_bytes().to_vec()),
        (262, 3, 1, 1u16.to_le_bytes().to_vec()),
        (273, 4, 1, vec![0; 4]), // patched below
        (277, 3, 1, 1u16.to_le_bytes().to_vec()),
        (278, 4, 1, height.to_le_bytes().to_vec()),
        (279, 4, 1, (pixels.len() as u32).to_le_bytes().to_vec()),
    ];
    for (code, value) in extra {
        tags.push(match value {
            TagValue::Ascii(s) => {
                let mut b = s.into_bytes();
                b.push(0);
                (code, 2, b.len() as u32, b)
            }
            TagValue::Bytes(b) => (code, 1, b.len() as u32, b),
            TagValue::Rational(n, d) => {
                let mut b = n.to_le_bytes().to_vec();
                b.extend_from_slice(&d.to_le_bytes());
                (code, 5, 1, b)
            }
            TagValue::Short(v) => (code, 3, 1, v.to_le_bytes().to_vec()),
        });
    }
    tags.sort_by_key(|t| t.0);
    let ifd_len = 2 + 12 * tags.len() + 4;
    let mut data_offset = 8 + ifd_len;
    let mut blobs = Vec::new();
    let mut entries = Vec::new();
    for (code, kind, count, payload) in &tags {
        let mut entry = Vec::with_capacity(12);
        entry.extend_from_slice(&code.to_le_bytes());
        entry.extend_from_slice(&kind.to_le_bytes());
        entry.extend_from_slice(&count.to_le_bytes());
        if payload.len() <= 4 {
            let mut v = payload.clone();
            v.resize(4, 0);
            entry.extend_from_slice(&v);
        } else {
            entry.extend_from_slice(&(data_offset as u32).to_le_bytes());
            blobs.extend_from_slice(payload);
            data_offset += payload.len();
            if data_offset % 2 == 1 {
                blobs.push(0);
                data_offset += 1;
            }
        }
        entries.push((*code, entry));
    }
    let strip_offset = data_offset as u32;
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    for (code, mut entry) in entries {
        if code == 273 {
            entry[8..12].copy_from_slice(&strip_offset.to_le_bytes());
        }
        out.extend_from_slice(&entry);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&blobs);
    out.extend_from_slice(&pixels);
    std::fs::write(path, out).expect("write tiff");
}

/// FEI / Thermo Fisher metadata (tag 34682) with `[Scan] PixelWidth` in metres.
pub fn fei_text(pixel_width_m: &str) -> String {
    format!(
        "[User]\r\nDate=12/02/2026\r\n[Beam]\r\nHV=5000\r\n[Scan]\r\nInternalScan=true\r\n\
         PixelWidth={pixel_width_m}\r\nPixelHeight={pixel_width_m}\r\n[Image]\r\nResolutionX=1024\r\n"
    )
}

/// Zeiss SmartSEM metadata (tag 34118): unnamed values first (index 3 = pixel size in
/// metres for a 1024-px frame), then `AP_` keys, each followed by its `Name = value` line.
pub fn zeiss_text(pixel_size_m: &str, rounded_nm: &str) -> String {
    format!(
        "0\r\n0\r\n\r\n{pixel_size_m}\r\n0\r\nAP_PIXEL_SIZE\r\nPixel Size = {rounded_nm} nm\r\n\
         AP_WD\r\nWD = 5.1 mm\r\nDP_DETECTOR_CHANNEL\r\nSignal A = InLens\r\n"
    )
}
