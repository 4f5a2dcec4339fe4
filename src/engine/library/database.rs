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

/// At most this many warnings of one kind are listed; the rest are counted.
const WARNINGS_PER_KIND: usize = 10;

/// Warnings grouped by kind, each kind capped at [`WARNINGS_PER_KIND`] with a count of the rest.
#[derive(Default)]
struct Warnings {
    kinds: Vec<(&'static str, Vec<String>, usize)>,
}

impl Warnings {
    fn push(&mut self, kind: &'static str, text: String) {
        let i = match self.kinds.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.kinds.push((kind, Vec::new(), 0));
                self.kinds.len() - 1
            }
        };
        let (_, list, more) = &mut self.kinds[i];
        if list.len() < WARNINGS_PER_KIND {
            list.push(text);
        } else {
            *more += 1;
        }
    }

    fn into_list(self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, list, more) in self.kinds {
            out.extend(list);
            if more > 0 {
                out.push(format!("… and {more} more {kind}"));
            }
        }
        out
    }
}

/// Text fit for a message: control characters escaped, at most `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The cells of a table file: `.xlsx` / `.xls` / `.ods` through calamine (first sheet), else
/// delimited text in UTF-8 or UTF-16 (with a byte-order mark) separated by commas, semicolons
/// (what European spreadsheet programs write) or tabs, whichever the header line uses most.
fn read_records(path: &Path, warnings: &mut Warnings) -> Result<Vec<Vec<String>>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    let is_ole = bytes.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]);
    if matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "ods") || is_zip || is_ole {
        return read_spreadsheet(path);
    }
    let text = if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        utf16(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        utf16(rest, u16::from_be_bytes)
    } else {
        let rest = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
        if rest.iter().take(4096).filter(|&&b| b == 0).count() > 0 {
            return Err(Error::Table(format!(
                "table {} is not text (it holds NUL bytes): use a CSV / TSV file (UTF-8 or \
                 UTF-16 with a byte-order mark) or an .xlsx / .ods spreadsheet",
                path.display()
            )));
        }
        rest.to_vec()
    };
    let first_line = text
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let count = |d: u8| {
        let mut quoted = false;
        first_line
            .iter()
            .filter(|&&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                !quoted && b == d
            })
            .count()
    };
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&d| (count(d), d == b','))
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(text.as_slice());
    let mut records = Vec::new();
    for (i, rec) in reader.byte_records().enumerate() {
        let rec =
            rec.map_err(|e| Error::Table(format!("{}: line {}: {e}", path.display(), i + 1)))?;
        let cells: Vec<String> = rec
            .iter()
            .map(|c| match std::str::from_utf8(c) {
                Ok(s) => s.to_string(),
                Err(_) => {
                    warnings.push(
                        "lines with bytes that are not UTF-8",
                        format!(
                            "line {} holds bytes that are not UTF-8; they are shown as \u{fffd}",
                            i + 1
                        ),
                    );
                    String::from_utf8_lossy(c).into_owned()
                }
            })
            .collect();
        records.push(cells);
    }
    Ok(records)
}

/// UTF-16 text (after its byte-order mark) as UTF-8 bytes.
fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Vec<u8> {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|p| unit([p[0], p[1]])).collect();
    String::from_utf16_lossy(&units).into_bytes()
}

/// The first sheet of a spreadsheet as text cells.
fn read_spreadsheet(path: &Path) -> Result<Vec<Vec<String>>> {
    use calamine::Reader;
    let bad = |e: String| Error::Table(format!("cannot read spreadsheet {}: {e}", path.display()));
    let mut book = calamine::open_workbook_auto(path).map_err(|e| bad(e.to_string()))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| bad("it has no sheet".into()))?
        .map_err(|e| bad(e.to_string()))?;
    Ok(range
        .rows()
        .map(|row| row.iter().map(|c| c.to_string()).collect())
        .collect())
}

/// Reads a table (CSV / TSV / semicolon-separated, UTF-8 or UTF-16; `.xlsx` / `.ods`) and
/// matches its rows to `images` (relative paths).
///
/// The image column is `image_column` when given, else the column whose cells name the most
/// distinct images of the folder (a column of zeros naming one image `0.tif` a hundred times
/// loses to one naming twenty different images). Ragged rows and non-UTF-8 bytes are worked
/// around and reported in `warnings`, at most ten of each kind.
pub fn read_table(path: &Path, images: &[String], image_column: Option<&str>) -> Result<Table> {
    let mut warn = Warnings::default();
    let records = read_records(path, &mut warn)?;
    let Some(header) = records.first().cloned() else {
        return Err(Error::Table(format!("table {} is empty", path.display())));
    };
    let rows = &records[1..];
    let width = header.len();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != width {
            warn.push(
                "lines of another length than the header",
                format!(
                    "line {} has {} cells, the header has {width}: {}",
                    i + 2,
                    r.len(),
                    if r.len() < width {
                        "missing cells left empty"
                    } else {
                        "extra cells ignored"
                    }
                ),
            );
        }
    }
    let shown_columns = || {
        header
            .iter()
            .take(40)
            .map(|h| printable(h, 40))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matcher = Matcher::new(images);
    let column = match image_column {
        Some(name) => header
            .iter()
            .position(|h| h.trim() == name.trim())
            .ok_or_else(|| {
                Error::Table(format!(
                    "table {} has no column {name:?}; its columns are: {}",
                    path.display(),
                    shown_columns()
                ))
            })?,
        None => {
            // (distinct images named, strength of the matches) per column. A runner-up close on
            // both counts makes the choice ambiguous.
            let score = |c: usize| -> (usize, u32) {
                let mut named = std::collections::HashSet::new();
                let mut strength = 0;
                for (img, st) in rows
                    .iter()
                    .filter_map(|r| r.get(c).and_then(|cell| matcher.find(cell)))
                {
                    named.insert(img);
                    strength += st;
                }
                (named.len(), strength)
            };
            let mut ranked: Vec<(usize, (usize, u32))> =
                (0..width).map(|c| (c, score(c))).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            match ranked.first().filter(|(_, (n, _))| *n > 0) {
                Some(&(c, (n, _))) => {
                    let strength = ranked[0].1 .1;
                    if let Some(&(other, (m, other_strength))) = ranked.get(1) {
                        if m > 0 && m * 5 >= n * 4 && other_strength * 5 >= strength * 4 {
                            warn.push(
                                "ambiguous image columns",
                                format!(
                                    "columns {:?} ({n} images) and {:?} ({m} images) both name \
                                     image files; using {:?} (choose with --image-column)",
                                    printable(&header[c], 40),
                                    printable(&header[other], 40),
                                    printable(&header[c], 40)
                                ),
                            );
                        }
                    }
                    c
                }
                None => {
                    return Err(Error::Table(format!(
                        "no column of table {} names image files of the database (columns: {}); \
                         name it with --image-column",
                        path.display(),
                        shown_columns()
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
            warn.push(
                "rows repeating an image",
                format!(
                    "line {}: image {img} already had a row; the later row is used",
                    i + 2
                ),
            );
        }
    }
    table.warnings = warn.into_list();
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

/// Canonical form of a path (symlinks and `..` resolved), so that one folder reached two ways
/// is one database; the plain absolute form when it does not exist (yet).
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
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

#[cfg(test)]
mod table_format_tests {
    use super::*;

    fn images(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i}.tif")).collect()
    }

    /// The CaCO3 shape: 215 rows, `image_id` = N, `image_file` = images/N.tif, a stirring column
    /// that is 0 in most rows; the folder holds only 20 of the images.
    fn caco3_like() -> String {
        let mut t = String::from("image_id,image_file,\"Stirring, rpm\",\"Temperature, C\"\n");
        for i in 0..215 {
            let stirring = if i % 2 == 0 { 0 } else { 300 };
            t.push_str(&format!("{i},images/{i}.tif,{stirring},{}\n", 20 + i));
        }
        t
    }

    #[test]
    fn a_column_of_zeros_does_not_win_over_the_image_column() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.csv");
        std::fs::write(&path, caco3_like()).expect("write");
        let t = read_table(&path, &images(20), None).expect("table");
        assert_eq!(t.image_column, "image_file");
        assert_eq!(t.rows.len(), 20);
        let temp = t
            .columns
            .iter()
            .position(|c| c == "Temperature, C")
            .expect("column");
        for i in 0..20 {
            let row = &t.rows[&format!("{i}.tif")];
            assert_eq!(row[temp].number, Some(20.0 + i as f64), "image {i}");
        }
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn semicolons_tabs_and_utf16_tables_read_alike() {
        let tmp = tempfile::tempdir().expect("tmp");
        let comma = caco3_like();
        let semicolon = comma.replace(",images", ";images").replace(',', ";");
        let semicolon = semicolon
            .replace("\"Stirring; rpm\"", "\"Stirring, rpm\"")
            .replace("\"Temperature; C\"", "\"Temperature, C\"");
        let tab = comma
            .replace(',', "\t")
            .replace("\"Stirring\t rpm\"", "\"Stirring, rpm\"")
            .replace("\"Temperature\t C\"", "\"Temperature, C\"");
        let mut utf16 = vec![0xff, 0xfe];
        for u in semicolon.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        for (name, bytes) in [
            ("semi.csv", semicolon.into_bytes()),
            ("tab.tsv", tab.into_bytes()),
            ("utf16.csv", utf16),
        ] {
            let path = tmp.path().join(name);
            std::fs::write(&path, &bytes).expect("write");
            let t = read_table(&path, &images(20), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.image_column, "image_file", "{name}");
            assert_eq!(t.rows.len(), 20, "{name}");
            assert_eq!(
                t.columns,
                vec!["image_id", "Stirring, rpm", "Temperature, C"],
                "{name}"
            );
            let again = read_table(&path, &images(20), Some("image_file")).expect("named column");
            assert_eq!(again.rows.len(), 20);
        }
    }

    #[test]
    fn xlsx_spreadsheets_are_read() {
        use std::io::Write;
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.xlsx");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
        let options = zip::write::SimpleFileOptions::default();
        let cell = |r: usize, c: usize, v: &str| {
            let col = (b'A' + c as u8) as char;
            format!("<c r=\"{col}{r}\" t=\"inlineStr\"><is><t>{v}</t></is></c>")
        };
        let mut rows = format!(
            "<row r=\"1\">{}{}</row>",
            cell(1, 0, "file"),
            cell(1, 1, "Polymer")
        );
        for i in 0..20 {
            rows.push_str(&format!(
                "<row r=\"{r}\">{}{}</row>",
                cell(i + 2, 0, &format!("{i}.tif")),
                cell(i + 2, 1, if i % 2 == 0 { "PEG" } else { "PVP" }),
                r = i + 2
            ));
        }
        let files = [
            ("[Content_Types].xml", "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/><Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/></Types>".to_string()),
            ("_rels/.rels", "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>".to_string()),
            ("xl/workbook.xml", "<?xml version=\"1.0\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"Sheet1\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>".to_string()),
            ("xl/_rels/workbook.xml.rels", "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".to_string()),
            ("xl/worksheets/sheet1.xml", format!("<?xml version=\"1.0\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{rows}</sheetData></worksheet>")),
        ];
        for (name, body) in files {
            zip.start_file(name, options).expect("entry");
            zip.write_all(body.as_bytes()).expect("write");
        }
        zip.finish().expect("zip");
        let t = read_table(&path, &images(20), None).expect("xlsx table");
        assert_eq!(t.image_column, "file");
        assert_eq!(t.rows.len(), 20);
        assert_eq!(t.rows["3.tif"][0].text, "PVP");
    }

    #[test]
    fn repeated_warnings_are_capped_with_a_count() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.csv");
        let mut t = String::from("file,x\n");
        for i in 0..5000 {
            t.push_str(&format!("{}.tif,{i}\n", i % 3));
        }
        std::fs::write(&path, t).expect("write");
        let table = read_table(&path, &images(3), None).expect("table");
        assert!(
            table.warnings.len() <= WARNINGS_PER_KIND + 1,
            "{}",
            table.warnings.len()
        );
        assert!(
            table
                .warnings
                .last()
                .is_some_and(|w| w.contains("4987 more rows repeating an image")),
            "{:?}",
            table.warnings.last()
        );
    }

    #[test]
    fn binary_files_are_refused_without_dumping_bytes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.csv");
        std::fs::write(&path, b"\x00\x01\x02\xff binary\x07\x1b[31m").expect("write");
        let e = read_table(&path, &images(3), None).expect_err("binary");
        let text = e.to_string();
        assert!(text.contains("not text"), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Any bytes, as a table: a table or a clear error, never a panic; every warning and
        /// error prints without control characters.
        #[test]
        fn arbitrary_table_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let tmp = tempfile::tempdir().expect("tmp");
            let path = tmp.path().join("t.csv");
            std::fs::write(&path, &bytes).expect("write");
            match read_table(&path, &images(5), None) {
                Ok(t) => proptest::prop_assert!(t.warnings.len() <= 4 * (WARNINGS_PER_KIND + 1)),
                Err(e) => proptest::prop_assert!(!e.to_string().chars().any(|c| c.is_control() && c != '\n')),
            }
        }

        /// Tables of random cells in every delimiter and encoding read back the same cells.
        #[test]
        fn delimiters_and_encodings_round_trip(
            cells in proptest::collection::vec("[a-z0-9 .µ]{0,6}", 3..30),
            delimiter in proptest::sample::select(vec![',', ';', '\t']),
            utf16 in proptest::prelude::any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().expect("tmp");
            let path = tmp.path().join("t.csv");
            let sep = delimiter.to_string();
            let mut text = format!("file{sep}a{sep}b\n");
            for (i, chunk) in cells.chunks(2).enumerate() {
                text.push_str(&format!("{}.tif{sep}{}{sep}{}\n", i % 5, chunk[0].trim(), chunk.get(1).map_or("", |c| c.trim())));
            }
            let bytes = if utf16 {
                let mut b = vec![0xff, 0xfe];
                for u in text.encode_utf16() {
                    b.extend_from_slice(&u.to_le_bytes());
                }
                b
            } else {
                text.into_bytes()
            };
            std::fs::write(&path, &bytes).expect("write");
            let t = read_table(&path, &images(5), Some("file")).expect("table");
            proptest::prop_assert_eq!(t.columns.clone(), vec!["a".to_string(), "b".to_string()]);
            proptest::prop_assert!(!t.rows.is_empty());
        }
    }
}
