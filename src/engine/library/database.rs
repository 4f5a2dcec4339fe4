//! A database on disk: a folder of micrographs (found recursively) and an optional CSV table of
//! synthesis parameters, one row per image. Nothing here writes to the database folder.

use std::collections::{BTreeMap, HashMap};
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

/// The synthesis table, matched to the images of a database.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Parameter columns, in table order (the image column excluded).
    pub columns: Vec<String>,
    pub image_column: String,
    /// Image (relative path) -> values aligned with `columns`.
    pub rows: HashMap<String, Vec<ParamValue>>,
    /// Rows that name no image in the folder (their image cell).
    pub rows_without_image: Vec<String>,
    /// Problems that were worked around (ragged rows, bad bytes, repeated images).
    pub warnings: Vec<String>,
}

/// Matches table cells to image paths: exact relative path, then file name, then file stem.
struct Matcher<'a> {
    exact: HashMap<&'a str, &'a str>,
    by_name: HashMap<String, Option<&'a str>>,
    by_stem: HashMap<String, Option<&'a str>>,
}

impl<'a> Matcher<'a> {
    fn new(images: &'a [String]) -> Self {
        let mut m = Self {
            exact: HashMap::new(),
            by_name: HashMap::new(),
            by_stem: HashMap::new(),
        };
        for img in images {
            m.exact.insert(img.as_str(), img.as_str());
            let p = Path::new(img);
            let name = p
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            // A name shared by two images matches neither (None).
            m.by_name
                .entry(name)
                .and_modify(|v| *v = None)
                .or_insert(Some(img));
            m.by_stem
                .entry(stem)
                .and_modify(|v| *v = None)
                .or_insert(Some(img));
        }
        m
    }

    /// (image, strength): 2 for a path or file name, 1 for a bare stem.
    fn find(&self, cell: &str) -> Option<(&'a str, u32)> {
        let cell = cell.trim().replace('\\', "/");
        let cell = cell.trim_start_matches("./");
        if cell.is_empty() {
            return None;
        }
        if let Some(img) = self.exact.get(cell) {
            return Some((img, 2));
        }
        let name = cell.rsplit('/').next().unwrap_or(cell);
        if let Some(Some(img)) = self.by_name.get(name) {
            return Some((img, 2));
        }
        self.by_stem
            .get(name)
            .copied()
            .flatten()
            .map(|img| (img, 1))
    }
}

fn lossy(bytes: &[u8], what: &str, warnings: &mut Vec<String>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            warnings.push(format!(
                "{what} holds bytes that are not UTF-8; they are shown as \u{fffd}"
            ));
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Reads a CSV table and matches its rows to `images` (relative paths).
///
/// The image column is `image_column` when given, else the column whose values name the most
/// images. Ragged rows and non-UTF-8 bytes are worked around and reported in `warnings`.
pub fn read_table(path: &Path, images: &[String], image_column: Option<&str>) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(bytes);
    let mut warnings = Vec::new();
    let mut records = Vec::new();
    for (i, rec) in reader.byte_records().enumerate() {
        let rec =
            rec.map_err(|e| Error::Table(format!("{}: line {}: {e}", path.display(), i + 1)))?;
        let cells: Vec<String> = rec
            .iter()
            .map(|c| lossy(c, &format!("line {}", i + 1), &mut warnings))
            .collect();
        records.push(cells);
    }
    warnings.dedup();
    let Some(header) = records.first().cloned() else {
        return Err(Error::Table(format!("table {} is empty", path.display())));
    };
    let rows = &records[1..];
    let width = header.len();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != width {
            warnings.push(format!(
                "line {} has {} cells, the header has {width}: {}",
                i + 2,
                r.len(),
                if r.len() < width {
                    "missing cells left empty"
                } else {
                    "extra cells ignored"
                }
            ));
        }
    }
    let matcher = Matcher::new(images);
    let column = match image_column {
        Some(name) => header
            .iter()
            .position(|h| h.trim() == name.trim())
            .ok_or_else(|| {
                Error::Table(format!(
                    "table {} has no column {name:?}; its columns are: {}",
                    path.display(),
                    header.join(", ")
                ))
            })?,
        None => {
            let score = |c: usize| -> u32 {
                rows.iter()
                    .filter_map(|r| r.get(c).and_then(|cell| matcher.find(cell)).map(|(_, s)| s))
                    .sum()
            };
            let best = (0..width).max_by_key(|&c| (score(c), std::cmp::Reverse(c)));
            match best.filter(|&c| score(c) > 0) {
                Some(c) => c,
                None => {
                    return Err(Error::Table(format!(
                        "no column of table {} names image files of the database (columns: {}); \
                         name it with --image-column",
                        path.display(),
                        header.join(", ")
                    )))
                }
            }
        }
    };
    let mut table = Table {
        columns: header
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != column)
            .map(|(_, h)| h.trim().to_string())
            .collect(),
        image_column: header[column].trim().to_string(),
        warnings,
        ..Default::default()
    };
    for (i, r) in rows.iter().enumerate() {
        let cell = r.get(column).map(String::as_str).unwrap_or("");
        let Some((img, _)) = matcher.find(cell) else {
            if !r.iter().all(|c| c.trim().is_empty()) {
                table
                    .rows_without_image
                    .push(format!("line {}: {cell:?}", i + 2));
            }
            continue;
        };
        let values: Vec<ParamValue> = (0..width)
            .filter(|&c| c != column)
            .map(|c| parse_value(r.get(c).map(String::as_str).unwrap_or("")))
            .collect();
        if table.rows.insert(img.to_string(), values).is_some() {
            table.warnings.push(format!(
                "line {}: image {img} already had a row; the later row is used",
                i + 2
            ));
        }
    }
    Ok(table)
}

/// Reads one text column per image from a CSV (e.g. shape labels), keyed by image path.
pub fn read_column(
    path: &Path,
    images: &[String],
    image_column: Option<&str>,
    value_column: &str,
) -> Result<BTreeMap<String, String>> {
    let table = read_table(path, images, image_column)?;
    let idx = table
        .columns
        .iter()
        .position(|c| c == value_column)
        .ok_or_else(|| {
            Error::Table(format!(
                "{} has no column {value_column:?}; its columns are: {}",
                path.display(),
                table.columns.join(", ")
            ))
        })?;
    Ok(table
        .rows
        .into_iter()
        .filter_map(|(img, vals)| {
            let v = vals[idx].text.clone();
            (!v.is_empty()).then_some((img, v))
        })
        .collect())
}

/// Absolute form of a path (without touching the file system beyond the current dir).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

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

    #[test]
    fn detects_the_image_column_and_reports_leftovers() {
        let dir = tempfile::tempdir().expect("tmp");
        let csv = dir.path().join("t.csv");
        std::fs::write(
            &csv,
            "id,file,T\n0,a/0.tif,20\n1,a/1.tif,30\n2,a/9.tif,40\n",
        )
        .expect("w");
        let images = vec![
            "a/0.tif".to_string(),
            "a/1.tif".to_string(),
            "b.png".to_string(),
        ];
        let t = read_table(&csv, &images, None).expect("table");
        assert_eq!(t.image_column, "file");
        assert_eq!(t.columns, vec!["id", "T"]);
        assert_eq!(t.rows["a/1.tif"][1].number, Some(30.0));
        assert_eq!(t.rows_without_image.len(), 1);
        assert!(!t.rows.contains_key("b.png"));
    }

    #[test]
    fn ragged_rows_and_bad_bytes_are_warnings() {
        let dir = tempfile::tempdir().expect("tmp");
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, b"file,A,B\nx.png,1\ny.png,2,3,4\nz.png,\xff\xfe,5\n").expect("w");
        let images: Vec<String> = ["x.png", "y.png", "z.png"].map(String::from).to_vec();
        let t = read_table(&csv, &images, None).expect("table");
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows["x.png"][1].text, "");
        assert!(t.rows["z.png"][0].text.contains('\u{fffd}'));
        assert!(
            t.warnings.iter().any(|w| w.contains("not UTF-8")),
            "{:?}",
            t.warnings
        );
        assert!(
            t.warnings.iter().any(|w| w.contains("line 2 has 2 cells")),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn missing_image_column_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "a,b\n1,2\n").expect("w");
        let images = vec!["x.png".to_string()];
        let err = read_table(&csv, &images, None).expect_err("no column");
        assert!(err.to_string().contains("--image-column"), "{err}");
        let err = read_table(&csv, &images, Some("file")).expect_err("no such column");
        assert!(err.to_string().contains("has no column \"file\""), "{err}");
    }
}
