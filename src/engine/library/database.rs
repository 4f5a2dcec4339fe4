//! A database on disk: a folder of micrographs (found recursively) and an optional CSV table of
//! synthesis parameters, one row per image. Nothing here writes to the database folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// File extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

/// Whether `path` has an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files under `dir`, as sorted paths relative to it with `/` separators.
pub fn scan_images(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Err(Error::Table(format!(
            "database folder {} does not exist or is not a folder",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
                stack.push(path);
            } else if is_image_path(&path) {
                if let Ok(rel) = path.strip_prefix(dir) {
                    out.push(rel_string(rel));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The file `rel` (a relative path as [`scan_images`] gives it) names inside `db_dir`. Names
/// that are not UTF-8 are kept as their lossy text (with U+FFFD for the bad bytes), which is
/// what tables and the app show; such a component is found again by comparing the folder's
/// entries' lossy names, so these files are indexed and opened like any other.
pub fn resolve(db_dir: &Path, rel: &str) -> PathBuf {
    let direct = db_dir.join(rel);
    if !rel.contains('\u{fffd}') || direct.exists() {
        return direct;
    }
    let mut path = db_dir.to_path_buf();
    for part in rel.split('/') {
        let exact = path.join(part);
        if !part.contains('\u{fffd}') || exact.exists() {
            path = exact;
            continue;
        }
        let found = std::fs::read_dir(&path).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name())
                .find(|name| name.to_string_lossy() == part)
        });
        path = match found {
            Some(name) => path.join(name),
            None => exact,
        };
    }
    path
}

fn rel_string(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// One synthesis parameter of one sample: the text as written, and a number where it parses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ParamValue {
    pub text: String,
    pub number: Option<f64>,
    /// Unit of `number` when one was recognised ("s" for durations, "C", "kDa", ...).
    pub unit: Option<String>,
}

fn seconds_per(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().trim_end_matches('.') {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    })
}

/// Parses a table cell: plain numbers, "number unit", and durations such as "89 min 0 sec"
/// (-> 5340 s).
pub fn parse_value(text: &str) -> ParamValue {
    let t = text.trim();
    let mut value = ParamValue {
        text: t.to_string(),
        ..Default::default()
    };
    if t.is_empty() {
        return value;
    }
    if let Ok(n) = t.parse::<f64>() {
        value.number = n.is_finite().then_some(n);
        return value;
    }
    let tokens: Vec<&str> = t.split_whitespace().collect();
    // Durations: (number unit)+, all units of time.
    if tokens.len() >= 2 && tokens.len().is_multiple_of(2) {
        let mut total = 0.0;
        let all_time =
            tokens.chunks(2).all(
                |pair| match (pair[0].parse::<f64>(), seconds_per(pair[1])) {
                    (Ok(n), Some(s)) => {
                        total += n * s;
                        true
                    }
                    _ => false,
                },
            );
        if all_time {
            value.number = Some(total);
            value.unit = Some("s".into());
            return value;
        }
    }
    if let [number, unit] = tokens.as_slice() {
        if let Ok(n) = number.parse::<f64>() {
            value.number = n.is_finite().then_some(n);
            value.unit = Some((*unit).to_string());
        }
    }
    value
}

/// Canonical form of a path (symlinks and `..` resolved), so that one folder reached two ways
/// is one database; the plain absolute form when it does not exist (yet).
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

pub use crate::engine::library::table::{read_column, read_table, Table};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_units_and_durations() {
        assert_eq!(parse_value("89 min 0 sec").number, Some(5340.0));
        assert_eq!(parse_value("89 min 0 sec").unit.as_deref(), Some("s"));
        assert_eq!(parse_value("1 h 30 min").number, Some(5400.0));
        assert_eq!(parse_value(" 0.335 ").number, Some(0.335));
        let t = parse_value("25 C");
        assert_eq!((t.number, t.unit.as_deref()), (Some(25.0), Some("C")));
        assert_eq!(parse_value("PVP").number, None);
        assert_eq!(parse_value("").text, "");
    }
}
