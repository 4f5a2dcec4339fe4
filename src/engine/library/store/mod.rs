//! The library store: one schema in an SQLite file (the default, in the user's cache folder)
//! or in a PostgreSQL database (a `postgresql://` URL, for a lab's shared library).
//!
//! Tables: `meta` (schema version, settings, folder, table columns), `images` (one row per
//! image file: stamp, pixel hash, size, its state in the work queue), `descriptors` (raw and
//! projected vectors as little-endian f32 blobs), `records` (synthesis cells), `particles`,
//! `thumbnails` and `projections` (the fitted PCA of each search space). Every write that
//! belongs together is one transaction: an image's rows land together, the projection and
//! the projected vectors of a finished run land together, so a reader or a killed run never
//! sees half of either.
//!
//! Indexers share the work through the `images.state` queue (`pending` -> `claimed` ->
//! `done` / `failed`): each claims a few pending images at a time (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL), so several indexers on one library describe every image exactly once.

mod location;
mod postgres;
mod read;
mod schema;
mod sqlite;

pub use location::{redact_url, Location};
pub use read::{is_old_single_file, read_library, read_library_for_search};
use schema::schema;

use std::path::{Path, PathBuf};

use crate::engine::error::{Error, Result};
use crate::engine::library::database::ParamValue;
use crate::engine::library::index::{Entry, Index, IndexConfig, SearchSpace};

/// The schema this program writes; a library with a newer one is refused, never rewritten.
pub const SCHEMA_VERSION: i64 = 1;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn int(&self) -> i64 {
        match self {
            Self::Int(v) => *v,
            _ => 0,
        }
    }
    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }
    fn blob(&self) -> &[u8] {
        match self {
            Self::Blob(b) => b,
            _ => &[],
        }
    }
}

/// The little a store needs from a database connection. Statements number their parameters
/// `$1, $2, ...` (SQLite gets them as `?1, ?2, ...`) and always bind them: no value is ever
/// written into SQL text.
trait Db: Send {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;
    /// Statements without parameters, separated by `;`.
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// This connection's name in claims (a server backend id, or a fixed one for a file).
    fn worker_id(&mut self) -> Result<String>;
    /// Claims up to `n` pending images for `worker`; returns (path, need the image
    /// descriptor).
    fn claim(&mut self, worker: &str, n: usize) -> Result<Vec<(String, bool)>>;
    /// Frees the claims of indexers that no longer run.
    fn release_dead_claims(&mut self) -> Result<()>;
    /// Serialises writers of the queue and of the projection within one transaction.
    fn lock_library(&mut self) -> Result<()>;
    /// Whether another live indexer still holds claims.
    fn others_working(&mut self, worker: &str) -> Result<bool>;
    /// Begins a read-only transaction that sees one consistent state of the library.
    fn begin_snapshot(&mut self) -> Result<()>;
    /// Whether the database holds tables of our names without being a library (another
    /// program's database): it is then never written.
    fn has_foreign_tables(&mut self) -> Result<bool>;
    /// Called once the database is known to be a library (or was just made one).
    fn library_confirmed(&mut self) -> Result<()>;
}

/// An open library.
pub struct Store {
    db: Box<dyn Db>,
    location: Location,
    worker: String,
}

/// What `sync` found: images unchanged since the last run and rows removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub unchanged: usize,
    pub removed: usize,
    /// Images still to describe (by anyone) after the sync.
    pub pending: usize,
}

/// How stored descriptors relate to the settings of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Keep every descriptor of an unchanged file.
    All,
    /// Keep the image descriptors; redraw the contours (sketch settings changed).
    ImageOnly,
    /// Describe everything again.
    Nothing,
}

pub(crate) fn f32_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Index(format!("cannot encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| Error::Index(format!("the library's {what} is corrupt: {e}")))
}

const SPACES: [&str; 3] = ["image", "sketch", "edge"];

impl Store {
    /// Opens (creating when `create`) the library at `location` and checks its schema.
    pub fn open(location: &Location, create: bool) -> Result<Self> {
        let mut db: Box<dyn Db> = match location {
            Location::Sqlite(path) => Box::new(sqlite::open(path, create)?),
            Location::Postgres(url) => Box::new(postgres::open(url)?),
        };
        let found = db.query("SELECT value FROM meta WHERE key = 'schema_version'", &[]);
        let version = match found {
            Ok(rows) => rows
                .first()
                .and_then(|r| r[0].text().and_then(|t| t.parse::<i64>().ok())),
            Err(_) => None,
        };
        match version {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(Error::Index(format!(
                    "library {} was written by a newer morphosearch (schema {v}; this one \
                     reads {SCHEMA_VERSION}); update morphosearch to use it (it is left as it is)",
                    location.display()
                )))
            }
            Some(_) => {}
            None if create => {
                // Another indexer may have just created the library: then it has a version.
                let created_meanwhile = db
                    .query("SELECT value FROM meta WHERE key = 'schema_version'", &[])
                    .is_ok_and(|rows| !rows.is_empty());
                if db.has_foreign_tables()? && !created_meanwhile {
                    return Err(Error::Index(format!(
                        "{} is a database of something else (it has tables but is not a \
                         morphosearch library); pass another --index",
                        location.display()
                    )));
                }
                let ddl = match location {
                    Location::Sqlite(_) => schema("INTEGER", "BLOB"),
                    Location::Postgres(_) => schema("BIGINT", "BYTEA"),
                };
                // Two indexers starting on a fresh server database create it once.
                db.batch("BEGIN")?;
                let created = db
                    .lock_library()
                    .and_then(|()| db.batch(&ddl))
                    .and_then(|()| {
                        db.execute(
                            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
                         ON CONFLICT (key) DO NOTHING",
                            &[Value::Text(SCHEMA_VERSION.to_string())],
                        )
                    });
                match created {
                    Ok(_) => db.batch("COMMIT")?,
                    Err(e) => {
                        let _ = db.batch("ROLLBACK");
                        return Err(e);
                    }
                }
            }
            None => {
                return Err(Error::Index(format!(
                    "{} is not a morphosearch library (run `morphosearch index` to build one)",
                    location.display()
                )))
            }
        }
        db.library_confirmed()?;
        let worker = db.worker_id()?;
        Ok(Self {
            db,
            location: location.clone(),
            worker,
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        let rows = self.db.query(
            "SELECT value FROM meta WHERE key = $1",
            &[Value::Text(key.into())],
        )?;
        Ok(rows.first().and_then(|r| r[0].text().map(str::to_string)))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[Value::Text(key.into()), Value::Text(value.into())],
        )?;
        Ok(())
    }

    /// The settings and folder the library was built with, if it has been.
    pub fn settings(&mut self) -> Result<Option<(IndexConfig, PathBuf)>> {
        let (Some(config), Some(dir)) = (self.meta("config")?, self.meta("db_dir")?) else {
            return Ok(None);
        };
        Ok(Some((from_json(&config, "settings")?, PathBuf::from(dir))))
    }

    /// A counter bumped by every finished indexing run (readers refresh when it moves).
    pub fn generation(&mut self) -> Result<i64> {
        Ok(self
            .meta("generation")?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0))
    }

    /// Brings the work queue in line with the folder's `images` ((path, size, mtime)): new
    /// and changed files become pending, files gone are removed, descriptors no longer valid
    /// under `reuse` are dropped. Records `config` and the folder. One transaction.
    pub fn sync(
        &mut self,
        config: &IndexConfig,
        db_dir: &Path,
        images: &[(String, u64, u64)],
        reuse: Reuse,
    ) -> Result<SyncCounts> {
        self.transaction(|s| s.sync_in_transaction(config, db_dir, images, reuse))
    }

    /// Runs `work` in one transaction: committed when it succeeds, rolled back otherwise.
    fn transaction<T>(&mut self, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.db.batch("BEGIN")?;
        let r = work(self);
        match r {
            Ok(v) => {
                self.db.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn sync_in_transaction(
        &mut self,
        config: &IndexConfig,
        db_dir: &Path,
        images: &[(String, u64, u64)],
        reuse: Reuse,
    ) -> Result<SyncCounts> {
        self.db.lock_library()?;
        self.db.release_dead_claims()?;
        match reuse {
            Reuse::All => {}
            Reuse::ImageOnly => {
                self.db.execute(
                    "UPDATE images SET state = 'pending', need_image = 0 WHERE state = 'done'",
                    &[],
                )?;
            }
            Reuse::Nothing => {
                self.db.execute("DELETE FROM descriptors", &[])?;
                self.db.execute(
                    "UPDATE images SET state = 'pending', need_image = 1, claimed_by = NULL",
                    &[],
                )?;
            }
        }
        self.set_meta("config", &json(config)?)?;
        self.set_meta("db_dir", &db_dir.to_string_lossy())?;
        let stored: std::collections::HashMap<String, (i64, i64, String)> = self
            .db
            .query(
                "SELECT path, size_bytes, modified_ns, state FROM images",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let state = r[3].text().unwrap_or("").to_string();
                (
                    r[0].text().unwrap_or("").to_string(),
                    (r[1].int(), r[2].int(), state),
                )
            })
            .collect();
        let mut counts = SyncCounts::default();
        let present: std::collections::HashSet<&str> =
            images.iter().map(|(p, _, _)| p.as_str()).collect();
        for path in stored.keys() {
            if !present.contains(path.as_str()) {
                self.db.execute(
                    "DELETE FROM images WHERE path = $1",
                    &[Value::Text(path.clone())],
                )?;
                counts.removed += 1;
            }
        }
        for (path, size, mtime) in images {
            let stamp = (*size as i64, *mtime as i64);
            match stored.get(path) {
                Some((s, m, state)) if (*s, *m) == stamp => match state.as_str() {
                    "done" => counts.unchanged += 1,
                    // Retried: the file may be readable now.
                    "failed" => {
                        self.db.execute(
                            "UPDATE images SET state = 'pending', need_image = 1, error = NULL \
                             WHERE path = $1",
                            &[Value::Text(path.clone())],
                        )?;
                    }
                    _ => {}
                },
                Some(_) => {
                    self.db.execute(
                        "UPDATE images SET state = 'pending', need_image = 1, claimed_by = NULL, \
                         size_bytes = $1, modified_ns = $2 WHERE path = $3",
                        &[
                            Value::Int(stamp.0),
                            Value::Int(stamp.1),
                            Value::Text(path.clone()),
                        ],
                    )?;
                }
                None => {
                    self.db.execute(
                        "INSERT INTO images (path, state, need_image, size_bytes, modified_ns) \
                         VALUES ($1, 'pending', 1, $2, $3) ON CONFLICT (path) DO NOTHING",
                        &[
                            Value::Text(path.clone()),
                            Value::Int(stamp.0),
                            Value::Int(stamp.1),
                        ],
                    )?;
                }
            }
        }
        counts.pending = self.count_pending()?;
        Ok(counts)
    }

    fn count_pending(&mut self) -> Result<usize> {
        let rows = self.db.query(
            "SELECT COUNT(*) FROM images WHERE state IN ('pending', 'claimed')",
            &[],
        )?;
        Ok(rows.first().map_or(0, |r| r[0].int()) as usize)
    }

    /// Claims up to `n` images to describe: (path, whether the image descriptor is needed
    /// too; false: only the contours are redrawn). Empty when none is left.
    pub fn claim(&mut self, n: usize) -> Result<Vec<(String, bool)>> {
        let worker = self.worker.clone();
        self.db.claim(&worker, n)
    }

    /// Whether another indexer still describes images of this library.
    pub fn others_working(&mut self) -> Result<bool> {
        let worker = self.worker.clone();
        self.db.others_working(&worker)
    }

    /// Stores described images, each with its synthesis record and thumbnail, in one
    /// transaction; an entry with an empty `raw` keeps its stored image descriptor.
    pub fn put(&mut self, done: &[(Entry, Vec<ParamValue>, Vec<u8>)]) -> Result<()> {
        self.transaction(|s| s.put_in_transaction(done))
    }

    fn put_in_transaction(&mut self, done: &[(Entry, Vec<ParamValue>, Vec<u8>)]) -> Result<()> {
        for (e, params, thumb) in done {
            let path = Value::Text(e.path.clone());
            self.db.execute(
                "UPDATE images SET state = 'done', claimed_by = NULL, error = NULL, \
                 size_bytes = $1, modified_ns = $2, pixel_hash = $3, width = $4, height = $5, \
                 data_bar_rows = $6 WHERE path = $7",
                &[
                    Value::Int(e.size_bytes as i64),
                    Value::Int(e.modified_ns as i64),
                    Value::Text(e.pixel_hash.clone()),
                    Value::Int(i64::from(e.width)),
                    Value::Int(i64::from(e.height)),
                    Value::Int(i64::from(e.data_bar_rows)),
                    path.clone(),
                ],
            )?;
            if e.raw.is_empty() {
                self.db.execute(
                    "UPDATE descriptors SET sketch_raw = $1, edge_raw = $2, image_vec = NULL, \
                     sketch_vec = NULL, edge_vec = NULL WHERE path = $3",
                    &[
                        Value::Blob(f32_blob(&e.sketch_raw)),
                        Value::Blob(f32_blob(&e.edge_raw)),
                        path.clone(),
                    ],
                )?;
            } else {
                self.db.execute(
                    "INSERT INTO descriptors (path, raw, sketch_raw, edge_raw) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO UPDATE SET \
                     raw = excluded.raw, sketch_raw = excluded.sketch_raw, \
                     edge_raw = excluded.edge_raw, image_vec = NULL, sketch_vec = NULL, \
                     edge_vec = NULL",
                    &[
                        path.clone(),
                        Value::Blob(f32_blob(&e.raw)),
                        Value::Blob(f32_blob(&e.sketch_raw)),
                        Value::Blob(f32_blob(&e.edge_raw)),
                    ],
                )?;
            }
            self.upsert("records", "cells", &e.path, Value::Text(json(params)?))?;
            if let Some(p) = &e.particles {
                self.upsert("particles", "summary", &e.path, Value::Text(json(p)?))?;
            }
            if !thumb.is_empty() {
                self.upsert("thumbnails", "jpeg", &e.path, Value::Blob(thumb.clone()))?;
            }
        }
        Ok(())
    }

    fn upsert(&mut self, table: &str, column: &str, path: &str, value: Value) -> Result<()> {
        // Table and column names are this module's constants, never user input.
        let sql = format!(
            "INSERT INTO {table} (path, {column}) VALUES ($1, $2) \
             ON CONFLICT (path) DO UPDATE SET {column} = excluded.{column}"
        );
        self.db.execute(&sql, &[Value::Text(path.into()), value])?;
        Ok(())
    }

    /// Marks an image that could not be described, with the reason.
    pub fn fail(&mut self, path: &str, reason: &str) -> Result<()> {
        self.db.execute(
            "UPDATE images SET state = 'failed', claimed_by = NULL, error = $1 WHERE path = $2",
            &[Value::Text(reason.into()), Value::Text(path.into())],
        )?;
        Ok(())
    }

    /// The raw image descriptor stored for `path` (kept when only contours are redrawn).
    pub fn raw_of(&mut self, path: &str) -> Result<Vec<f32>> {
        let rows = self.db.query(
            "SELECT raw FROM descriptors WHERE path = $1",
            &[Value::Text(path.into())],
        )?;
        Ok(rows
            .first()
            .map(|r| blob_f32(r[0].blob()))
            .unwrap_or_default())
    }

    /// Writes the finished library in one transaction: the table's columns, every image's
    /// record, the problems, the fitted projections and every projected vector.
    pub fn finish(&mut self, index: &Index) -> Result<()> {
        self.transaction(|s| s.finish_in_transaction(index))
    }

    fn finish_in_transaction(&mut self, index: &Index) -> Result<()> {
        self.db.lock_library()?;
        self.set_meta("columns", &json(&index.columns)?)?;
        let table = index
            .table_path
            .as_ref()
            .map(|p| p.to_string_lossy().to_string());
        self.set_meta("table_path", &json(&table)?)?;
        for (e, params) in index.entries.iter().zip(&index.params) {
            self.upsert("records", "cells", &e.path, Value::Text(json(params)?))?;
            if let Some(p) = &e.particles {
                self.upsert("particles", "summary", &e.path, Value::Text(json(p)?))?;
            }
        }
        let spaces = [&index.image_space, &index.sketch_space, &index.edge_space];
        for (name, space) in SPACES.iter().zip(spaces) {
            self.db.execute(
                "INSERT INTO projections (space, projection, dims) VALUES ($1, $2, $3) \
                 ON CONFLICT (space) DO UPDATE SET projection = excluded.projection, \
                 dims = excluded.dims",
                &[
                    Value::Text((*name).into()),
                    Value::Text(json(&space.projection)?),
                    Value::Int(space.dims as i64),
                ],
            )?;
        }
        for (i, e) in index.entries.iter().enumerate() {
            let row = |s: &SearchSpace| {
                if i < s.len() {
                    Value::Blob(f32_blob(s.row(i)))
                } else {
                    Value::Null
                }
            };
            self.db.execute(
                "UPDATE descriptors SET image_vec = $1, sketch_vec = $2, edge_vec = $3 \
                 WHERE path = $4",
                &[
                    row(&index.image_space),
                    row(&index.sketch_space),
                    row(&index.edge_space),
                    Value::Text(e.path.clone()),
                ],
            )?;
        }
        let generation = self.generation()? + 1;
        self.set_meta("generation", &generation.to_string())?;
        Ok(())
    }

    /// Writes a whole in-memory library (all its images described) into this store, replacing
    /// what it held: one transaction for the images, then the finished state.
    pub fn write_whole(&mut self, index: &Index) -> Result<()> {
        self.transaction(|s| {
            s.db.lock_library()?;
            s.db.execute("DELETE FROM images", &[])?;
            s.set_meta("config", &json(&index.config)?)?;
            s.set_meta("db_dir", &index.db_dir.to_string_lossy())?;
            for e in &index.entries {
                s.db.execute(
                    "INSERT INTO images (path, state, need_image, size_bytes, modified_ns) \
                     VALUES ($1, 'claimed', 1, 0, 0)",
                    &[Value::Text(e.path.clone())],
                )?;
            }
            let done: Vec<(Entry, Vec<ParamValue>, Vec<u8>)> = index
                .entries
                .iter()
                .zip(&index.params)
                .map(|(e, p)| (e.clone(), p.clone(), Vec::new()))
                .collect();
            s.put_in_transaction(&done)
        })?;
        self.finish(index)
    }
}

#[cfg(test)]
mod tests;
