//! The synthesis table of a database: reading it whatever program wrote it (CSV / TSV /
//! semicolon-separated in UTF-8 or UTF-16, `.xlsx` / `.ods`), finding its image column, and
//! matching its rows to the images, with warnings capped per kind.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::engine::error::{Error, Result};
use crate::engine::library::database::{parse_value, ParamValue};

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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod table_format_tests;
