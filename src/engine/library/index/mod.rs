//! The index in memory: per-image raw descriptors, the fitted projections, the synthesis
//! parameters, and everything needed to tell whether it still matches its database, weights
//! and settings. It lives in a library store (`library::store`: SQLite or PostgreSQL).

pub mod conditions;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::descriptor::features::FeatureConfig;
use crate::engine::descriptor::pca::Projection;
use crate::engine::descriptor::pooling::l2_normalise;
use crate::engine::error::Result;
use crate::engine::library::database::ParamValue;
use crate::engine::sketch::SketchConfig;

/// At most this many PCA axes, as in the study.
pub const MAX_PCA_DIMS: usize = 200;
/// Extra input sizes image queries are described at by default (docs/quality.md).
pub const DEFAULT_QUERY_SIZES: &[u32] = &[];
/// Their margin ([`IndexConfig::query_size_margin`]).
pub const DEFAULT_QUERY_SIZE_MARGIN: f32 = 0.0;
/// Whether small queries are described at their own scale too, by default.
pub const DEFAULT_RESCALE_SMALL_QUERIES: bool = true;
/// Cosine similarity above which two different images count as near-duplicates.
pub const NEAR_DUPLICATE_THRESHOLD: f32 = 0.97;

/// Everything that decides what the stored descriptors mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    pub weights_sha256: String,
    pub features: FeatureConfig,
    pub pca_dims: usize,
    pub whiten: bool,
    pub sketch: SketchConfig,
    /// Input sizes an image query is described at besides the database's (a query-time
    /// setting): a crop shows its particles larger than its source does, so it is also
    /// described smaller, and each image scores its best match over the sizes. Empty: the
    /// database's size only.
    #[serde(default)]
    pub query_sizes: Vec<u32>,
    /// How much better (in cosine) a match at an extra query size must be than at the
    /// database's size to count: whole-image queries keep their ranking, crops gain.
    #[serde(default)]
    pub query_size_margin: f32,
    /// Also describe an image query markedly smaller than the library's images (a crop) at its
    /// own scale ([`rescaled_query_size`]).
    #[serde(default)]
    pub rescale_small_queries: bool,
}

/// The extra input size for a query image whose longer side is `side` px when the library's
/// images typically have `typical` px: a query under 3/4 of that is most likely a crop, which
/// shows its particles larger than the library's images do at `input` px; described at
/// `input` times the ratio (at least 64 px), its particles come out at the library's scale.
pub fn rescaled_query_size(side: u32, typical: u32, input: u32) -> Option<u32> {
    let ratio = side as f32 / typical.max(1) as f32;
    (ratio < 0.75).then(|| ((input as f32 * ratio).round() as u32).clamp(64, input.max(65) - 1))
}

/// One indexed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the database folder, `/`-separated.
    pub path: String,
    pub size_bytes: u64,
    pub modified_ns: u64,
    /// sha256 of the decoded pixels: equal hashes are identical images.
    pub pixel_hash: String,
    pub width: u32,
    pub height: u32,
    pub data_bar_rows: u32,
    /// L2-normalised pooled descriptor of the image, before projection.
    pub raw: Vec<f32>,
    /// L2-normalised descriptor of the image's contour drawing, before projection.
    pub sketch_raw: Vec<f32>,
    /// L2-normalised edge-map descriptor of the contour drawing (its lines), before projection.
    pub edge_raw: Vec<f32>,
    /// Particle statistics (count, sizes, shape fractions, scale) measured while indexing.
    pub particles: Option<crate::engine::particles::Summary>,
}

/// The particle statistics offered as columns after the table's (Browse filters and sorting).
pub const PARTICLE_COLUMNS: [&str; 4] = [
    "Particles (count)",
    "Particle size, median (nm)",
    "Particle size, median (px)",
    "Main particle shape",
];

/// Which descriptor a search compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Image,
    Sketch,
}

/// A compact search space: projection plus the projected vectors of all entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchSpace {
    pub projection: Option<Projection>,
    pub dims: usize,
    /// `entries x dims`, row-major, unit rows.
    pub vectors: Vec<f32>,
}

impl SearchSpace {
    /// Fits the projection on `raws` and projects them.
    pub fn fit(raws: &[&[f32]], pca_dims: usize, whiten: bool) -> Self {
        let rows: Vec<Vec<f32>> = raws.iter().map(|r| r.to_vec()).collect();
        let projection = if pca_dims > 0 {
            Projection::fit(&rows, pca_dims, whiten)
        } else {
            None
        };
        let mut vectors = Vec::new();
        let mut dims = 0;
        for r in &rows {
            let v = match &projection {
                Some(p) => p.apply(r),
                None => {
                    let mut v = r.clone();
                    l2_normalise(&mut v);
                    v
                }
            };
            dims = v.len();
            vectors.extend(v);
        }
        Self {
            projection,
            dims,
            vectors,
        }
    }

    /// A raw descriptor in this space.
    pub fn project(&self, raw: &[f32]) -> Vec<f32> {
        match &self.projection {
            Some(p) => p.apply(raw),
            None => {
                let mut v = raw.to_vec();
                l2_normalise(&mut v);
                v
            }
        }
    }

    /// Number of stored vectors.
    pub fn len(&self) -> usize {
        self.vectors.len().checked_div(self.dims).unwrap_or(0)
    }

    /// Whether no vectors are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }
}

fn map_point(v: &[f32]) -> [f32; 2] {
    [v[0], v[1]]
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub entry: usize,
    /// Cosine similarity, -1..1.
    pub score: f32,
}

/// Dot product with 16 independent partial sums, which the compiler keeps in vector lanes: a
/// single running sum is one chain of dependent adds and made the 100k-vector scan 2x slower.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Exact top-k by dot product over unit rows `vectors` (`dims` wide), best first.
/// Ties are broken by entry order so results are deterministic.
pub fn top_k(
    vectors: &[f32],
    dims: usize,
    query: &[f32],
    k: usize,
    skip: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Hit> {
    if dims == 0 || query.len() != dims {
        return Vec::new();
    }
    const CHUNK: usize = 4096;
    let score_chunk = |(c, rows): (usize, &[f32])| -> Vec<Hit> {
        let mut hits: Vec<Hit> = rows
            .chunks_exact(dims)
            .enumerate()
            .map(|(i, r)| Hit {
                entry: c * CHUNK + i,
                score: dot(r, query),
            })
            .filter(|h| !skip(h.entry))
            .collect();
        partial_top(&mut hits, k);
        hits
    };
    let n = vectors.len() / dims;
    let mut hits: Vec<Hit> = if n > 2 * CHUNK {
        vectors
            .par_chunks(CHUNK * dims)
            .enumerate()
            .map(score_chunk)
            .flatten()
            .collect()
    } else {
        vectors
            .chunks(CHUNK * dims)
            .enumerate()
            .flat_map(score_chunk)
            .collect()
    };
    partial_top(&mut hits, k);
    hits
}

/// Keeps the best `k` hits, sorted best first (ties by entry order).
pub fn partial_top(hits: &mut Vec<Hit>, k: usize) {
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.entry.cmp(&b.entry));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    if k == 0 {
        hits.clear();
    }
    hits.sort_by(order);
}

/// A pair of images that look the same.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatePair {
    pub a: usize,
    pub b: usize,
    /// Identical pixels (else: similarity above the threshold).
    pub exact: bool,
    pub score: f32,
}

/// The whole index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub config: IndexConfig,
    /// Absolute path of the database folder.
    pub db_dir: PathBuf,
    pub table_path: Option<PathBuf>,
    /// Synthesis parameter names.
    pub columns: Vec<String>,
    pub entries: Vec<Entry>,
    /// Per entry, values aligned with `columns` (empty when the image has no table row).
    pub params: Vec<Vec<ParamValue>>,
    /// Images that could not be read, with the reason.
    pub problems: Vec<String>,
    pub image_space: SearchSpace,
    pub sketch_space: SearchSpace,
    pub edge_space: SearchSpace,
    /// Images of the folder not yet described when this was saved: 0 for a complete index,
    /// more for a checkpoint of an interrupted run (searched with a warning).
    pub pending: usize,
}

impl Index {
    /// An empty index for `db_dir` with `config`.
    pub fn new(config: IndexConfig, db_dir: PathBuf) -> Self {
        Self {
            config,
            db_dir,
            table_path: None,
            columns: Vec::new(),
            entries: Vec::new(),
            params: Vec::new(),
            problems: Vec::new(),
            image_space: SearchSpace::default(),
            sketch_space: SearchSpace::default(),
            edge_space: SearchSpace::default(),
            pending: 0,
        }
    }

    /// A warning for an index whose indexing was interrupted, if it is one.
    pub fn partial_warning(&self) -> Option<String> {
        (self.pending > 0).then(|| {
            format!(
                "this index is partial: indexing stopped with {} of {} images not yet described; \
                 run `morphosearch index` on {} again to finish it",
                self.pending,
                self.pending + self.len(),
                self.db_dir.display()
            )
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index holds no images.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Refits the three projections (image, contour, edge map) from the raw descriptors (an
    /// index read for searching only has none: read it whole first).
    pub fn refit(&mut self) {
        debug_assert!(
            self.entries.iter().all(|e| !e.raw.is_empty()),
            "refit needs the raw descriptors"
        );
        let raws: Vec<&[f32]> = self.entries.iter().map(|e| e.raw.as_slice()).collect();
        self.image_space = SearchSpace::fit(&raws, self.config.pca_dims, self.config.whiten);
        let fit = |raws: Vec<&[f32]>| {
            if raws.iter().all(|s| !s.is_empty()) {
                SearchSpace::fit(&raws, self.config.pca_dims, self.config.whiten)
            } else {
                SearchSpace::default()
            }
        };
        let sketch = fit(self
            .entries
            .iter()
            .map(|e| e.sketch_raw.as_slice())
            .collect());
        let edge = fit(self.entries.iter().map(|e| e.edge_raw.as_slice()).collect());
        self.sketch_space = sketch;
        self.edge_space = edge;
    }

    /// The search space for `space`.
    pub fn space(&self, space: Space) -> &SearchSpace {
        match space {
            Space::Image => &self.image_space,
            Space::Sketch => &self.sketch_space,
        }
    }

    /// Top `k` entries for a raw query descriptor (a `k` beyond the size gives all).
    pub fn search(&self, raw: &[f32], space: Space, k: usize) -> Vec<Hit> {
        let s = self.space(space);
        let q = s.project(raw);
        top_k(&s.vectors, s.dims, &q, k, &|_| false)
    }

    /// [`Self::search`] over the entries `admit` lets through.
    pub fn search_where(
        &self,
        raw: &[f32],
        space: Space,
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        let s = self.space(space);
        let q = s.project(raw);
        top_k(&s.vectors, s.dims, &q, k, &|i| !admit(i))
    }

    /// The median longer side of the library's images, in pixels.
    pub fn typical_side(&self) -> u32 {
        let mut sides: Vec<u32> = self.entries.iter().map(|e| e.width.max(e.height)).collect();
        if sides.is_empty() {
            return 0;
        }
        let mid = sides.len() / 2;
        *sides.select_nth_unstable(mid).1
    }

    /// [`Self::search_where`] for one query described at several sizes (the database's first):
    /// each entry scores its best similarity over the descriptors, those of the extra sizes
    /// less [`IndexConfig::query_size_margin`].
    pub fn search_multi_where(
        &self,
        raws: &[Vec<f32>],
        k: usize,
        admit: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Hit> {
        if let [one] = raws {
            return self.search_where(one, Space::Image, k, admit);
        }
        let s = &self.image_space;
        let qs: Vec<Vec<f32>> = raws.iter().map(|r| s.project(r)).collect();
        let mut hits: Vec<Hit> = (0..s.len())
            .into_par_iter()
            .filter(|&i| admit(i))
            .map(|i| Hit {
                entry: i,
                score: qs
                    .iter()
                    .enumerate()
                    .map(|(k, q)| {
                        let margin = if k == 0 {
                            0.0
                        } else {
                            self.config.query_size_margin
                        };
                        dot(q, s.row(i)) - margin
                    })
                    .fold(f32::NEG_INFINITY, f32::max),
            })
            .collect();
        partial_top(&mut hits, k);
        hits
    }

    /// The browsable columns: the table's, then the particle statistics ([`PARTICLE_COLUMNS`]).
    pub fn all_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .cloned()
            .chain(PARTICLE_COLUMNS.iter().map(|c| c.to_string()))
            .collect()
    }

    /// Value of column `c` of [`Self::all_columns`] for entry `i` (empty when unknown).
    pub fn value(&self, i: usize, c: usize) -> ParamValue {
        if c < self.columns.len() {
            return self
                .params
                .get(i)
                .and_then(|p| p.get(c))
                .cloned()
                .unwrap_or_default();
        }
        let Some(s) = self.entries.get(i).and_then(|e| e.particles.as_ref()) else {
            return ParamValue::default();
        };
        let number = |v: Option<f64>, digits: usize| ParamValue {
            text: v.map_or(String::new(), |v| format!("{v:.digits$}")),
            number: v,
            unit: None,
        };
        match c - self.columns.len() {
            0 => number(Some(s.count as f64), 0),
            1 => number(s.median_ecd_nm(), 0),
            2 => number(s.median_ecd_px, 1),
            3 => ParamValue {
                text: s
                    .main_shape()
                    .map_or(String::new(), |m| m.name().to_string()),
                number: None,
                unit: None,
            },
            _ => ParamValue::default(),
        }
    }

    /// Parameter `name` of entry `i`, if it has one.
    pub fn param(&self, i: usize, name: &str) -> Option<&ParamValue> {
        let c = self.columns.iter().position(|n| n == name)?;
        self.params.get(i)?.get(c)
    }

    /// Parameters (name, value of `a`, value of `b`) whose text differs between two entries.
    pub fn differing_params(&self, a: usize, b: usize) -> Vec<(String, String, String)> {
        let text = |e: usize, c: usize| {
            self.params
                .get(e)
                .and_then(|p| p.get(c))
                .map_or("", |v| v.text.as_str())
        };
        self.columns
            .iter()
            .enumerate()
            .filter(|&(c, _)| text(a, c) != text(b, c))
            .map(|(c, name)| (name.clone(), text(a, c).to_string(), text(b, c).to_string()))
            .collect()
    }

    /// Pairs of identical images (same pixels) and near-identical ones (image similarity at
    /// least `threshold`), exact ones first.
    pub fn duplicates(&self, threshold: f32) -> Vec<DuplicatePair> {
        let s = &self.image_space;
        let n = self.entries.len().min(s.len());
        let mut pairs: Vec<DuplicatePair> = (0..n)
            .into_par_iter()
            .flat_map_iter(|a| {
                let ra = s.row(a);
                (a + 1..n).filter_map(move |b| {
                    let exact = self.entries[a].pixel_hash == self.entries[b].pixel_hash;
                    let score = dot(ra, s.row(b));
                    (exact || score >= threshold).then_some(DuplicatePair { a, b, exact, score })
                })
            })
            .collect();
        pairs.sort_by(|x, y| {
            y.exact
                .cmp(&x.exact)
                .then(y.score.total_cmp(&x.score))
                .then((x.a, x.b).cmp(&(y.a, y.b)))
        });
        pairs
    }

    /// Writes the whole index into the library at `path` (an SQLite file, created when
    /// missing, or a `postgresql://` URL), replacing what it held.
    pub fn save(&self, path: &Path) -> Result<()> {
        if self.entries.iter().any(|e| e.raw.is_empty()) {
            return Err(crate::engine::error::Error::Index(
                "this library was read for searching only (without its raw descriptors) and \
                 cannot be saved from it; read it whole (Index::load)"
                    .into(),
            ));
        }
        let location = crate::engine::library::store::Location::of(path);
        crate::engine::library::store::Store::open(&location, true)?.write_whole(self)
    }

    /// Reads the library at `path` (an SQLite file or a `postgresql://` URL).
    pub fn load(path: &Path) -> Result<Self> {
        crate::engine::library::store::read_library(path)
    }

    /// [`Self::load`] for searching only: without the raw descriptors when the library is
    /// finished (what the app opens; it cannot be saved or refitted).
    pub fn load_for_search(path: &Path) -> Result<Self> {
        crate::engine::library::store::read_library_for_search(path)
    }

    /// Each entry's place on the 2-D map: the first two coordinates of its projected image
    /// descriptor (the PCA plane of the space searches rank in); empty without a projection.
    pub fn map_coords(&self) -> Vec<[f32; 2]> {
        let space = &self.image_space;
        if space.projection.is_none() || space.dims < 2 {
            return Vec::new();
        }
        (0..space.len()).map(|i| map_point(space.row(i))).collect()
    }

    /// A query's place on the 2-D map ([`Self::map_coords`]) from its raw image descriptor.
    pub fn map_point_of(&self, raw: &[f32]) -> Option<[f32; 2]> {
        let space = &self.image_space;
        (space.projection.is_some() && space.dims >= 2).then(|| map_point(&space.project(raw)))
    }
}

#[cfg(test)]
pub(crate) mod tests;
