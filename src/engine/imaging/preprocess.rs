//! Decoding micrographs of any format and bit depth, stripping the instrument's data bar, and
//! resizing to the network's square input (RGB, 0..255, channel-major).

use std::borrow::Cow;
use std::path::Path;

use image::{DynamicImage, GenericImageView, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// Side of the square network input.
pub const INPUT_SIZE: u32 = 224;

/// What to do with the data bar SEM instruments burn into the bottom of micrographs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DataBar {
    /// Detect it (a flat black or white band with text at the bottom) and cut it off.
    #[default]
    Auto,
    /// Keep the whole image.
    Keep,
    /// Always cut this many rows off the bottom.
    Rows(u32),
}

impl std::str::FromStr for DataBar {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "keep" | "off" => Ok(Self::Keep),
            n => n.parse().map(Self::Rows).map_err(|_| {
                Error::InvalidSetting(format!(
                    "data bar setting {s:?}: use auto, keep, or a number of rows"
                ))
            }),
        }
    }
}

/// Preprocessing settings recorded in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocess {
    pub input_size: u32,
    pub data_bar: DataBar,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            input_size: INPUT_SIZE,
            data_bar: DataBar::Auto,
        }
    }
}

/// A decoded image ready for the network: RGB planes of `size * size`, values 0..255.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub chw: Vec<f32>,
    pub size: u32,
    /// Rows cut off the bottom of the original as a data bar.
    pub data_bar_rows: u32,
    /// Size of the original image.
    pub original: (u32, u32),
}

/// Largest image we agree to decode (bytes of decoded pixels): 384 MiB, e.g. 16-bit RGB
/// 8192 x 8192 or 8-bit grey 19,000 x 19,000. Decoding, the data-bar copy and the reductions
/// each hold about one such buffer, so indexing stays within 1.5 GiB whatever a file claims.
pub const MAX_DECODED_BYTES: u64 = 384 << 20;

/// Decodes an image file (png, jpg, tif/tiff incl. 16-bit, bmp, ...) within
/// [`MAX_DECODED_BYTES`]: the size a file claims is checked before any pixel is allocated, so
/// a 2 MB "decompression bomb" claiming 46000 x 46000 pixels is refused with a message.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bad = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let mut reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let bytes = decoder.total_bytes();
    if bytes > MAX_DECODED_BYTES {
        return Err(bad(format!(
            "{w} x {h} px would take {} MB to decode, more than the {} MB allowed; \
             save a reduced copy (e.g. 8192 px a side) to index it",
            bytes >> 20,
            MAX_DECODED_BYTES >> 20
        )));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(bad("the image has no pixels".into()));
    }
    Ok(img)
}

/// Decodes an image from memory (clipboard, drag and drop of bytes).
pub fn decode_bytes(bytes: &[u8], label: &str) -> Result<DynamicImage> {
    let img = image::load_from_memory(bytes).map_err(|e| Error::Image {
        path: label.into(),
        reason: e.to_string(),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Image {
            path: label.into(),
            reason: "the image has no pixels".into(),
        });
    }
    Ok(img)
}

/// Rows at the bottom of `gray` (row-major, `width * height`) that form a data bar, or 0.
///
/// A data bar is a band of near-constant black or white rows (text and scale bar cover a
/// minority of each row) with some strongly contrasting pixels, sitting under image content.
pub fn detect_data_bar(gray: &[u8], width: u32, height: u32) -> u32 {
    let (w, h) = (width as usize, height as usize);
    if w < 16 || h < 32 {
        return 0;
    }
    let row_mode = |y: usize| -> (u8, f32) {
        let mut hist = [0u32; 256];
        for &v in &gray[y * w..(y + 1) * w] {
            hist[v as usize] += 1;
        }
        let mode = (0..256).max_by_key(|&v| hist[v]).unwrap_or(0);
        let near: u32 = hist[mode.saturating_sub(2)..=(mode + 2).min(255)]
            .iter()
            .sum();
        (mode as u8, near as f32 / w as f32)
    };
    let (bottom_mode, bottom_flat) = row_mode(h - 1);
    let dark = bottom_mode <= 40;
    if !(dark || bottom_mode >= 215) || bottom_flat < 0.6 {
        return 0;
    }
    let max_rows = h * 35 / 100;
    let mut rows = 0;
    while rows < max_rows {
        let (mode, flat) = row_mode(h - 1 - rows);
        if flat < 0.6 || mode.abs_diff(bottom_mode) > 6 {
            break;
        }
        rows += 1;
    }
    if rows < (h / 50).max(4) || rows >= max_rows {
        return 0;
    }
    let band = &gray[(h - rows) * w..];
    let contrasting = band
        .iter()
        .filter(|&&v| v.abs_diff(bottom_mode) >= 100)
        .count();
    if contrasting * 200 < band.len() {
        return 0;
    }
    rows as u32
}

/// The image without its bottom `bar` rows, ready to be resized to `size x size`. A large
/// micrograph (over 4x `size`) is box-reduced to about 2x `size` first, and its data bar cut
/// from the reduced copy: no full-size copy of it is ever made.
pub fn without_data_bar(img: &DynamicImage, bar: u32, size: u32) -> Cow<'_, DynamicImage> {
    let (w, h) = img.dimensions();
    let bar = bar.min(h.saturating_sub(1));
    let (cw, ch) = (w, h - bar);
    if cw > 4 * size || ch > 4 * size {
        let target = 2 * size;
        let full_h = ((target as u64 * h as u64).div_ceil(ch.max(1) as u64) as u32).max(target);
        let small = img.thumbnail_exact(target, full_h);
        return Cow::Owned(if full_h > target {
            small.crop_imm(0, 0, target, target)
        } else {
            small
        });
    }
    if bar > 0 {
        Cow::Owned(img.crop_imm(0, 0, cw, ch))
    } else {
        Cow::Borrowed(img)
    }
}

/// Decodes, strips the data bar, resizes to `size x size` RGB in 0..255.
pub fn prepare(img: &DynamicImage, settings: &Preprocess) -> Result<Prepared> {
    let (w, h) = img.dimensions();
    let size = settings.input_size;
    if size == 0 {
        return Err(Error::InvalidSetting("input size must be positive".into()));
    }
    let bar = match settings.data_bar {
        DataBar::Keep => 0,
        DataBar::Rows(n) => n.min(h.saturating_sub(1)),
        // Grey images are read in place; others are converted once (no copy of a large grey
        // micrograph is made just to look at its bottom rows).
        DataBar::Auto => match img.as_luma8() {
            Some(gray) => detect_data_bar(gray.as_raw(), w, h),
            None => detect_data_bar(img.to_luma8().as_raw(), w, h),
        },
    };
    let resized = without_data_bar(img, bar, size).resize_exact(
        size,
        size,
        image::imageops::FilterType::Triangle,
    );
    let chw = to_chw_0_255(&resized);
    Ok(Prepared {
        chw,
        size,
        data_bar_rows: bar,
        original: (w, h),
    })
}

/// Channel-major RGB in 0..255. 16-bit images are stretched from their darkest to brightest
/// value (SEM detectors often fill only 10-12 of the 16 bits).
fn to_chw_0_255(img: &DynamicImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let sixteen = matches!(
        img,
        DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
    );
    let rgb = img.to_rgb32f();
    let raw = rgb.as_raw();
    let (lo, hi) = if sixteen {
        raw.iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    } else {
        (0.0, 1.0)
    };
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let mut chw = vec![0f32; 3 * n];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * n + i] = ((px[c] - lo) * scale).clamp(0.0, 255.0);
        }
    }
    chw
}

/// Whether an image is one grey level throughout (all black, all white, blank): a query
/// with it ranks the library by nothing a chemist can see.
pub fn is_uniform(img: &DynamicImage) -> bool {
    let small = img.thumbnail(256, 256).to_luma8();
    let (lo, hi) = small
        .as_raw()
        .iter()
        .fold((u8::MAX, u8::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    hi.saturating_sub(lo) <= 2
}

/// sha256 of the decoded pixels (with their size and layout), to find byte-identical images
/// stored in different files or formats.
pub fn pixel_hash(img: &DynamicImage) -> String {
    use sha2::{Digest, Sha256};
    let (w, h) = img.dimensions();
    let mut hasher = Sha256::new();
    hasher.update(w.to_le_bytes());
    hasher.update(h.to_le_bytes());
    // As 8-bit RGB, in bands of rows: a large micrograph is never converted whole.
    const BAND: u32 = 256;
    for y in (0..h).step_by(BAND as usize) {
        let band = img.crop_imm(0, y, w, BAND.min(h - y)).to_rgb8();
        hasher.update(band.as_raw());
    }
    crate::engine::model::vgg::hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Any bytes as an image file, plain or behind a PNG / TIFF / JPEG / BMP signature:
        /// an image or a clear error, never a panic.
        #[test]
        fn arbitrary_image_bytes_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800),
            signature in 0usize..5,
        ) {
            let prefix: &[u8] = [&b""[..], b"\x89PNG\r\n\x1a\n", b"II*\0", b"\xff\xd8\xff", b"BM"][signature];
            let tmp = tempfile::tempdir().expect("tmp");
            let path = tmp.path().join("x.img");
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&body);
            std::fs::write(&path, &bytes).expect("write");
            if let Ok(img) = load_image(&path) {
                proptest::prop_assert!(img.width() > 0 && img.height() > 0);
                let _ = prepare(&img, &Preprocess::default());
            }
        }
    }

    #[test]
    fn uniform_images_are_recognised() {
        let black = DynamicImage::ImageLuma8(image::GrayImage::new(64, 64));
        assert!(is_uniform(&black));
        let mut dot = image::GrayImage::new(64, 64);
        dot.put_pixel(10, 10, image::Luma([200]));
        assert!(!is_uniform(&DynamicImage::ImageLuma8(dot)));
    }
    use image::{GrayImage, ImageBuffer, Luma};

    fn micrograph(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            Luma([(60.0 + 50.0 * ((x as f32 / 7.0).sin() * (y as f32 / 5.0).cos())) as u8])
        })
    }

    #[test]
    fn finds_a_black_data_bar_with_text() {
        let mut img = micrograph(400, 300);
        for y in 260..300 {
            for x in 0..400 {
                let text = (270..285).contains(&y) && (20..120).contains(&x) && (x / 3) % 2 == 0;
                img.put_pixel(x, y, Luma([if text { 255 } else { 0 }]));
            }
        }
        assert_eq!(detect_data_bar(img.as_raw(), 400, 300), 40);
    }

    #[test]
    fn plain_micrograph_has_no_data_bar() {
        let img = micrograph(400, 300);
        assert_eq!(detect_data_bar(img.as_raw(), 400, 300), 0);
        let black = GrayImage::new(400, 300);
        assert_eq!(
            detect_data_bar(black.as_raw(), 400, 300),
            0,
            "all black is not a bar"
        );
    }

    #[test]
    fn prepare_handles_tiny_and_sixteen_bit_images() {
        let one = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, image::Rgb([10, 20, 30])));
        let p = prepare(&one, &Preprocess::default()).expect("1x1");
        assert_eq!(p.chw.len(), 3 * 224 * 224);
        assert!((p.chw[0] - 10.0).abs() < 0.5);

        let deep: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(50, 40, |x, _| Luma([1000 + 40 * x as u16]));
        let p = prepare(&DynamicImage::ImageLuma16(deep), &Preprocess::default()).expect("16-bit");
        let (lo, hi) = p
            .chw
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(lo < 5.0 && hi > 250.0, "16-bit range stretched: {lo}..{hi}");
    }

    #[test]
    fn data_bar_setting_parses() {
        assert_eq!("auto".parse::<DataBar>().expect("auto"), DataBar::Auto);
        assert_eq!("keep".parse::<DataBar>().expect("keep"), DataBar::Keep);
        assert_eq!("64".parse::<DataBar>().expect("rows"), DataBar::Rows(64));
        assert!("x".parse::<DataBar>().is_err());
    }
}
