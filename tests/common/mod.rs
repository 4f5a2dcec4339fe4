//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod cli;
pub mod pg;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{GrayImage, Luma, RgbImage};
use morphosearch::engine::Engine;

/// The engine with the shipped weights, loaded once per test binary.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::load(None, "cpu").expect("shipped weights in weights/"))
}

/// `../shared/data/caco3` when present; prints why a test is skipped otherwise.
pub fn caco3(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/caco3");
    if dir.join("synthesis_conditions.csv").is_file() {
        Some(dir)
    } else {
        println!("SKIPPED {test}: ../shared/data/caco3 is not present beside the project");
        None
    }
}

/// `../shared/data/emps_train` when present; prints why a test is skipped otherwise.
pub fn emps(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/emps_train");
    if dir.join("images.csv").is_file() {
        Some(dir)
    } else {
        println!("SKIPPED {test}: ../shared/data/emps_train is not present beside the project");
        None
    }
}

/// A small SEM-like picture: bright discs (or squares) on a dark noisy background.
pub fn particles(size: u32, seed: u32, squares: bool) -> GrayImage {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s % 10_000) as f32 / 10_000.0
    };
    let mut img = GrayImage::from_fn(size, size, |_, _| Luma([30]));
    for p in img.pixels_mut() {
        p[0] = (25.0 + 15.0 * next()) as u8;
    }
    for _ in 0..8 {
        let (cx, cy) = (next() * size as f32, next() * size as f32);
        let r = (0.05 + 0.1 * next()) * size as f32;
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let inside = if squares {
                    dx.abs() < r && dy.abs() < r
                } else {
                    dx * dx + dy * dy < r * r
                };
                if inside {
                    img.put_pixel(
                        x,
                        y,
                        Luma([(170.0 + 60.0 * (1.0 - (dx + dy).abs() / (3.0 * r)).max(0.0)) as u8]),
                    );
                }
            }
        }
    }
    img
}

/// Writes `n` particle images named `img{i}.png` into `dir`.
pub fn write_particles(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        particles(96, i, i % 2 == 0)
            .save(dir.join(format!("img{i}.png")))
            .expect("write png");
    }
}

/// An RGB copy of a grey image.
pub fn rgb(gray: &GrayImage) -> RgbImage {
    RgbImage::from_fn(gray.width(), gray.height(), |x, y| {
        let v = gray.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

pub mod tiff;

/// sha256 of every file under `dir` (relative path -> digest), to prove a folder unchanged.
pub fn folder_checksums(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                out.insert(rel, format!("{:x}", Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// Files whose headers claim huge images ("decompression bombs") in a few hundred bytes:
/// PNG 46000 x 46000 grey, BMP 30000 x 30000, TIFF 46000 x 46000, JPEG 60000 x 60000.
pub fn write_crafted_headers(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut out = Vec::new();
    // PNG: signature, IHDR (grey 8-bit), one empty IDAT, IEND, each chunk with its CRC.
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc = kind.to_vec();
        crc.extend_from_slice(data);
        c.extend_from_slice(&crc32fast::hash(&crc).to_be_bytes());
        c
    };
    let mut ihdr = 46000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&46000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    out.push(dir.join("bomb.png"));
    std::fs::write(&out[0], png).expect("png");
    // BMP: 24-bit, 30000 x 30000, no pixel data.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&(54u32 + 16).to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&30000i32.to_le_bytes());
    bmp.extend_from_slice(&30000i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp.extend_from_slice(&[0; 16]);
    let p = dir.join("bomb.bmp");
    std::fs::write(&p, bmp).expect("bmp");
    out.push(p);
    // TIFF: an 8 x 8 file whose width and length entries are patched to 46000.
    let p = dir.join("bomb.tif");
    tiff::write(&p, 8, 8, 8, vec![]);
    let mut t = std::fs::read(&p).expect("tiff");
    t[18..22].copy_from_slice(&46000u32.to_le_bytes());
    t[30..34].copy_from_slice(&46000u32.to_le_bytes());
    std::fs::write(&p, t).expect("tiff");
    out.push(p);
    // JPEG: SOI, a baseline SOF0 of 60000 x 60000 grey, EOI.
    let mut jpg = vec![0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08];
    jpg.extend_from_slice(&60000u16.to_be_bytes());
    jpg.extend_from_slice(&60000u16.to_be_bytes());
    jpg.extend_from_slice(&[0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);
    let p = dir.join("bomb.jpg");
    std::fs::write(&p, jpg).expect("jpg");
    out.push(p);
    out
}
