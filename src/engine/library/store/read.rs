//! Reading a library: one consistent snapshot into an in-memory [`Index`].

use std::path::{Path, PathBuf};

use super::{blob_f32, from_json, Location, Store, Value, SPACES};
use crate::engine::descriptor::pca::Projection;
use crate::engine::error::{Error, Result};
use crate::engine::library::index::{Entry, Index, SearchSpace};

/// What a read does with the raw (unprojected) descriptors.
#[derive(Clone, Copy, PartialEq)]
enum Raws {
    /// Read them, and refit incomplete projections from them.
    Refit,
    /// Read them; leave the projections as stored.
    Read,
    /// Leave them out (searching only); the projections as stored.
    Skip,
}

impl Store {
    /// The whole library as one consistent snapshot. Projected vectors are used as stored
    /// when every image has them (a finished run); otherwise (an interrupted run) the
    /// projections are refitted in memory.
    pub fn read(&mut self) -> Result<Index> {
        self.read_state().map(|(index, _)| index)
    }

    /// [`Self::read`], and whether the stored projections were complete and used as they are
    /// (false: they were refitted in memory).
    pub fn read_state(&mut self) -> Result<(Index, bool)> {
        self.snapshot(Raws::Refit)
    }

    /// The whole library with its projections as stored, unrefitted even when incomplete (for
    /// a caller that refits it anyway).
    pub fn read_unfitted(&mut self) -> Result<Index> {
        self.snapshot(Raws::Read).map(|(index, _)| index)
    }

    /// [`Self::read`] for searching only: a finished library is read without the raw
    /// (unprojected) descriptors, which only refitting the projections needs; they are most of
    /// its bytes. An unfinished library is read whole (its projections are refitted). The
    /// result cannot be saved ([`Index::save`] refuses it).
    pub fn read_for_search(&mut self) -> Result<Index> {
        let (index, finished) = self.read_state_for_search()?;
        if finished {
            return Ok(index);
        }
        self.read()
    }

    /// The library without its raw descriptors, and whether it is finished; an unfinished
    /// one comes back with its projections as stored, incomplete (read it whole to refit).
    pub fn read_state_for_search(&mut self) -> Result<(Index, bool)> {
        self.snapshot(Raws::Skip)
    }

    fn snapshot(&mut self, raws: Raws) -> Result<(Index, bool)> {
        self.db.begin_snapshot()?;
        let r = self.read_in_snapshot(raws);
        let _ = self.db.batch("COMMIT");
        r
    }

    /// The library in one snapshot, and whether its stored projections were complete.
    fn read_in_snapshot(&mut self, raws: Raws) -> Result<(Index, bool)> {
        let Some((config, db_dir)) = self.settings()? else {
            return Err(Error::Index(format!(
                "library {} holds no images yet (run `morphosearch index` on a folder)",
                self.location.display()
            )));
        };
        let mut index = Index::new(config, db_dir);
        if let Some(c) = self.meta("columns")? {
            index.columns = from_json(&c, "columns")?;
        }
        index.table_path = self.table_path()?;
        let raw_columns = if raws == Raws::Skip {
            "NULL, NULL, NULL"
        } else {
            "d.raw, d.sketch_raw, d.edge_raw"
        };
        let rows = self.db.query(
            &format!(
                "SELECT i.path, i.size_bytes, i.modified_ns, i.pixel_hash, i.width, i.height, \
                 i.data_bar_rows, {raw_columns}, d.image_vec, d.sketch_vec, d.edge_vec, r.cells, \
                 p.summary \
                 FROM images i JOIN descriptors d ON d.path = i.path \
                 LEFT JOIN records r ON r.path = i.path \
                 LEFT JOIN particles p ON p.path = i.path \
                 WHERE i.state = 'done' ORDER BY i.path"
            ),
            &[],
        )?;
        let mut vectors: [Vec<f32>; 3] = Default::default();
        let mut complete = true;
        for r in &rows {
            index.entries.push(Entry {
                path: r[0].text().unwrap_or("").to_string(),
                size_bytes: r[1].int() as u64,
                modified_ns: r[2].int() as u64,
                pixel_hash: r[3].text().unwrap_or("").to_string(),
                width: r[4].int() as u32,
                height: r[5].int() as u32,
                data_bar_rows: r[6].int() as u32,
                raw: blob_f32(r[7].blob()),
                sketch_raw: blob_f32(r[8].blob()),
                edge_raw: blob_f32(r[9].blob()),
                particles: match r[14].text() {
                    Some(s) => Some(from_json(s, "particle statistics")?),
                    None => None,
                },
            });
            index.params.push(match r[13].text() {
                Some(s) => from_json(s, "synthesis records")?,
                None => Vec::new(),
            });
            for (k, v) in vectors.iter_mut().enumerate() {
                match &r[10 + k] {
                    Value::Blob(b) => v.extend(blob_f32(b)),
                    _ => complete = false,
                }
            }
        }
        index.problems = self
            .db
            .query(
                "SELECT path, error FROM images WHERE state = 'failed' ORDER BY path",
                &[],
            )?
            .into_iter()
            .map(|r| r[1].text().unwrap_or("cannot be read").to_string())
            .collect();
        index.pending = self.count_pending()?;
        let projections = self
            .db
            .query("SELECT space, projection, dims FROM projections", &[])?;
        if complete && projections.len() == SPACES.len() {
            for r in projections {
                let projection: Option<Projection> =
                    from_json(r[1].text().unwrap_or("null"), "projection")?;
                let dims = r[2].int() as usize;
                let k = SPACES
                    .iter()
                    .position(|s| Some(*s) == r[0].text())
                    .unwrap_or(0);
                let space = SearchSpace {
                    projection,
                    dims,
                    vectors: std::mem::take(&mut vectors[k]),
                };
                match k {
                    0 => index.image_space = space,
                    1 => index.sketch_space = space,
                    _ => index.edge_space = space,
                }
            }
            let n = index.len();
            let consistent = [&index.image_space, &index.sketch_space, &index.edge_space]
                .iter()
                .all(|s| s.len() == n || (n == 0 && s.dims == 0));
            if !consistent {
                if raws == Raws::Refit {
                    index.refit();
                }
                return Ok((index, false));
            }
            Ok((index, true))
        } else {
            if raws == Raws::Refit {
                index.refit();
            }
            Ok((index, false))
        }
    }

    /// The synthesis table the library was last finished with, if any.
    pub fn table_path(&mut self) -> Result<Option<PathBuf>> {
        Ok(match self.meta("table_path")? {
            Some(t) => from_json::<Option<String>>(&t, "table path")?.map(PathBuf::from),
            None => None,
        })
    }

    /// The stored thumbnail (JPEG) of `path`, for when the image folder is not reachable.
    pub fn thumbnail(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.db.query(
            "SELECT jpeg FROM thumbnails WHERE path = $1",
            &[Value::Text(path.into())],
        )?;
        Ok(rows.first().map(|r| r[0].blob().to_vec()))
    }
}

/// Reads the library at `index` (a file path or a `postgresql://` URL).
pub fn read_library(index: &Path) -> Result<Index> {
    open_library(index)?.read()
}

/// [`read_library`] for searching only ([`Store::read_for_search`]).
pub fn read_library_for_search(index: &Path) -> Result<Index> {
    open_library(index)?.read_for_search()
}

fn open_library(index: &Path) -> Result<Store> {
    let location = Location::of(index);
    if let Location::Sqlite(path) = &location {
        if !path.exists() {
            return Err(Error::Io {
                path: path.clone(),
                io: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        if is_old_single_file(path) {
            return Err(Error::Index(format!(
                "{} is an index in the old single-file format; run `morphosearch index` again \
                 to rebuild it as a library database",
                path.display()
            )));
        }
    }
    Store::open(&location, false)
}

/// Whether `path` is an index file of the format before the library database.
pub fn is_old_single_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"MORPHIDX")
}
