//! Recipe conditions that restrict a search: `Polymer type=PEG`, `Temperature, C<40`,
//! `Main particle shape~cube`. One parser for the command line (`search --where`) and the
//! app's filter bar; a condition names a column of the table or a particle statistic.

use super::Index;
use crate::engine::error::{Error, Result};

/// How a cell is compared with the condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The cell's text contains the value (any case).
    Contains,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "~",
        }
    }
}

/// The operators, two-character ones first so `<=` is not read as `<`.
const OPS: [(&str, Op); 7] = [
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("!=", Op::Ne),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("~", Op::Contains),
];

/// One parsed condition on one column of an index.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Column number in [`Index::all_columns`].
    pub column: usize,
    pub name: String,
    pub op: Op,
    pub value: String,
    number: Option<f64>,
}

/// Column names compared without case, spaces or punctuation: "Temperature, C" finds
/// "Temperature (C)".
fn loose(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Condition {
    /// Parses `COLUMN OP VALUE` against the columns of `index`.
    pub fn parse(index: &Index, text: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidSetting(format!("condition {text:?}: {why}"));
        let at = text
            .char_indices()
            .find_map(|(i, _)| {
                OPS.iter()
                    .find(|(s, _)| text[i..].starts_with(s))
                    .map(|&(s, op)| (i, s.len(), op))
            })
            .ok_or_else(|| {
                bad(
                    "no comparison: write COLUMN=VALUE, COLUMN<NUMBER, COLUMN>=NUMBER, \
                     COLUMN!=VALUE or COLUMN~TEXT (contains)"
                        .into(),
                )
            })?;
        let (i, len, op) = at;
        let name = text[..i].trim();
        let value = text[i + len..].trim();
        if name.is_empty() {
            return Err(bad("no column name before the comparison".into()));
        }
        if value.is_empty() {
            return Err(bad(format!("no value after {:?}", op.symbol())));
        }
        let columns = index.all_columns();
        let column = columns
            .iter()
            .position(|c| c == name)
            .or_else(|| columns.iter().position(|c| c.eq_ignore_ascii_case(name)))
            .or_else(|| {
                let wanted = loose(name);
                let matches: Vec<usize> = (0..columns.len())
                    .filter(|&c| loose(&columns[c]) == wanted)
                    .collect();
                (matches.len() == 1).then(|| matches[0])
            })
            .ok_or_else(|| {
                let names: Vec<String> = columns.iter().map(|c| format!("{c:?}")).collect();
                bad(format!(
                    "no column {name:?}; the library has: {}",
                    names.join(", ")
                ))
            })?;
        let number = value.parse::<f64>().ok().filter(|n| n.is_finite());
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && number.is_none() {
            return Err(bad(format!(
                "{:?} compares numbers, and {value:?} is not one",
                op.symbol()
            )));
        }
        Ok(Self {
            column,
            name: columns[column].clone(),
            op,
            value: value.to_string(),
            number,
        })
    }

    /// Whether sample `entry` of `index` meets the condition. A sample without a number in
    /// the column fails a numeric comparison.
    pub fn admits(&self, index: &Index, entry: usize) -> bool {
        let cell = index.value(entry, self.column);
        let equal = || match (cell.number, self.number) {
            (Some(a), Some(b)) => a == b,
            _ => cell.text.trim().eq_ignore_ascii_case(&self.value),
        };
        let compare = |test: fn(f64, f64) -> bool| {
            cell.number
                .zip(self.number)
                .is_some_and(|(a, b)| test(a, b))
        };
        match self.op {
            Op::Eq => equal(),
            Op::Ne => !equal(),
            Op::Lt => compare(|a, b| a < b),
            Op::Le => compare(|a, b| a <= b),
            Op::Gt => compare(|a, b| a > b),
            Op::Ge => compare(|a, b| a >= b),
            Op::Contains => cell
                .text
                .to_lowercase()
                .contains(&self.value.to_lowercase()),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.name, self.op.symbol(), self.value)
    }
}

/// Several conditions, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    /// Parses each text (the command line's repeated `--where`).
    pub fn parse_all(index: &Index, texts: &[String]) -> Result<Self> {
        texts
            .iter()
            .map(|t| Condition::parse(index, t))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Parses conditions separated by `;` (the app's filter bar); blank parts are skipped.
    pub fn parse_list(index: &Index, text: &str) -> Result<Self> {
        let parts: Vec<String> = text
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        Self::parse_all(index, &parts)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn admits(&self, index: &Index, entry: usize) -> bool {
        self.0.iter().all(|c| c.admits(index, entry))
    }
}

impl std::fmt::Display for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(" and "))
    }
}
