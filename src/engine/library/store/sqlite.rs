//! The SQLite engine of the store (bundled SQLite): a file, one writer at a time (the indexer
//! holds the file lock beside it), readers concurrent through the write-ahead log.

use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use super::{Db, Value};
use crate::engine::error::{Error, Result};

pub struct Sqlite {
    conn: Connection,
    path: std::path::PathBuf,
}

fn err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Index(format!("library {}: {e}", path.display()))
}

/// Opens the file (creating it and its folder when `create`).
pub fn open(path: &Path, create: bool) -> Result<Sqlite> {
    // SQLite would take a short file of anything for an empty database and write over it.
    if let Ok(meta) = std::fs::metadata(path) {
        let mut head = [0u8; 16];
        let read = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| Error::io(path, e))?;
        if meta.len() > 0 && (read < 16 || &head != b"SQLite format 3\0") {
            return Err(Error::Index(format!(
                "library {}: file is not a database (no SQLite header)",
                path.display()
            )));
        }
    }
    if create {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        // A library on a read-only share can still be searched.
        Err(_) if !create => Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| err(path, e))?,
        Err(e) => return Err(err(path, e)),
    };
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| err(path, e))?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .map_err(|e| err(path, e))?;
    Ok(Sqlite {
        conn,
        path: path.to_path_buf(),
    })
}

/// `$n` placeholders as SQLite's numbered `?n`.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

fn bind(params: &[Value]) -> Vec<SqlValue> {
    params
        .iter()
        .map(|v| match v {
            Value::Null => SqlValue::Null,
            Value::Int(i) => SqlValue::Integer(*i),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Blob(b) => SqlValue::Blob(b.clone()),
        })
        .collect()
}

impl Db for Sqlite {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.conn
            .execute(&numbered(sql), rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(|e| err(&self.path, e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let path = self.path.clone();
        let mut stmt = self
            .conn
            .prepare_cached(&numbered(sql))
            .map_err(|e| err(&path, e))?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bind(params)), |row| {
                (0..n)
                    .map(|i| {
                        Ok(match row.get::<_, SqlValue>(i)? {
                            SqlValue::Null => Value::Null,
                            SqlValue::Integer(v) => Value::Int(v),
                            SqlValue::Real(v) => Value::Int(v as i64),
                            SqlValue::Text(s) => Value::Text(s),
                            SqlValue::Blob(b) => Value::Blob(b),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })
            .map_err(|e| err(&path, e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| err(&path, e))
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| err(&self.path, e))
    }

    fn worker_id(&mut self) -> Result<String> {
        Ok(format!("pid {}", std::process::id()))
    }

    fn claim(&mut self, worker: &str, n: usize) -> Result<Vec<(String, bool)>> {
        let rows = self.query(
            "UPDATE images SET state = 'claimed', claimed_by = $1 WHERE path IN \
             (SELECT path FROM images WHERE state = 'pending' ORDER BY path LIMIT $2) \
             RETURNING path, need_image",
            &[Value::Text(worker.into()), Value::Int(n as i64)],
        )?;
        let mut out: Vec<(String, bool)> = rows
            .into_iter()
            .map(|r| (r[0].text().unwrap_or("").to_string(), r[1].int() != 0))
            .collect();
        out.sort();
        Ok(out)
    }

    fn release_dead_claims(&mut self) -> Result<()> {
        // The writer holds the file lock: any claim left is from a run that ended.
        self.execute(
            "UPDATE images SET state = 'pending', claimed_by = NULL WHERE state = 'claimed'",
            &[],
        )?;
        Ok(())
    }

    fn lock_library(&mut self) -> Result<()> {
        Ok(())
    }

    fn others_working(&mut self, _worker: &str) -> Result<bool> {
        Ok(false)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        self.batch("BEGIN")
    }

    fn library_confirmed(&mut self) -> Result<()> {
        // Only now, the file known to be a library: the write-ahead log lets readers read
        // while an indexer writes (setting it writes the file header).
        if !self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            self.batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        }
        Ok(())
    }

    fn has_foreign_tables(&mut self) -> Result<bool> {
        let rows = self.query(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            &[],
        )?;
        Ok(rows.first().map_or(0, |r| r[0].int()) > 0)
    }
}
