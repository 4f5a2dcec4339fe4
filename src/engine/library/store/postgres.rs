//! The PostgreSQL engine of the store (the `postgres` crate, no TLS: a lab server on its own
//! network or a unix socket). Several indexers share one library: claims use
//! `FOR UPDATE SKIP LOCKED`, a claim belongs to a server backend (`pg_backend_pid`), and the
//! claims of backends that are gone (an indexer killed) are handed out again.

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use super::{redact_url, Db, Value};
use crate::engine::error::{Error, Result};

/// Key of the advisory lock that serialises queue and projection writers of one database.
const LIBRARY_LOCK: i64 = 0x6d6f_7270_686f;

pub struct Postgres {
    client: Client,
    /// The URL without its password, for messages.
    shown: String,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Connects to the server at `url`.
pub fn open(url: &str) -> Result<Postgres> {
    let shown = redact_url(url);
    let client = Client::connect(url, NoTls)
        .map_err(|e| Error::Index(format!("cannot connect to the library {shown}: {e}")))?;
    Ok(Postgres { client, shown })
}

impl Postgres {
    fn err(&self, e: postgres::Error) -> Error {
        Error::Index(format!("library {}: {e}", self.shown))
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Db for Postgres {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let r = self.client.execute(sql, &refs(params));
        r.map_err(|e| self.err(e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let rows = self.client.query(sql, &refs(params));
        let rows = rows.map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let ty = column.type_();
                let v = if *ty == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int))
                } else if *ty == Type::INT4 {
                    row.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|v| Value::Int(i64::from(v))))
                } else if *ty == Type::BYTEA {
                    row.try_get::<_, Option<Vec<u8>>>(i)
                        .map(|v| v.map(Value::Blob))
                } else {
                    row.try_get::<_, Option<String>>(i)
                        .map(|v| v.map(Value::Text))
                };
                values.push(v.map_err(|e| self.err(e))?.unwrap_or(Value::Null));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        let r = self.client.batch_execute(sql);
        r.map_err(|e| self.err(e))
    }

    fn worker_id(&mut self) -> Result<String> {
        let rows = self.query("SELECT pg_backend_pid()::text", &[])?;
        Ok(rows
            .first()
            .and_then(|r| match &r[0] {
                Value::Text(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default())
    }

    fn claim(&mut self, worker: &str, n: usize) -> Result<Vec<(String, bool)>> {
        let rows = self.query(
            "UPDATE images SET state = 'claimed', claimed_by = $1 WHERE path IN \
             (SELECT path FROM images WHERE state = 'pending' ORDER BY path LIMIT $2 \
              FOR UPDATE SKIP LOCKED) \
             RETURNING path, need_image",
            &[Value::Text(worker.into()), Value::Int(n as i64)],
        )?;
        let mut out: Vec<(String, bool)> = rows
            .into_iter()
            .map(|r| match (&r[0], &r[1]) {
                (Value::Text(p), Value::Int(need)) => (p.clone(), *need != 0),
                _ => (String::new(), true),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn release_dead_claims(&mut self) -> Result<()> {
        self.execute(
            "UPDATE images SET state = 'pending', claimed_by = NULL WHERE state = 'claimed' \
             AND claimed_by NOT IN \
             (SELECT pid::text FROM pg_stat_activity WHERE pid IS NOT NULL)",
            &[],
        )?;
        Ok(())
    }

    fn lock_library(&mut self) -> Result<()> {
        self.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[Value::Int(LIBRARY_LOCK)],
        )?;
        Ok(())
    }

    fn others_working(&mut self, worker: &str) -> Result<bool> {
        let rows = self.query(
            "SELECT COUNT(*) FROM images WHERE state = 'claimed' AND claimed_by <> $1 \
             AND claimed_by IN (SELECT pid::text FROM pg_stat_activity WHERE pid IS NOT NULL)",
            &[Value::Text(worker.into())],
        )?;
        Ok(matches!(rows.first().map(|r| &r[0]), Some(Value::Int(n)) if *n > 0))
    }

    fn library_confirmed(&mut self) -> Result<()> {
        Ok(())
    }

    fn has_foreign_tables(&mut self) -> Result<bool> {
        let rows = self.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name IN ('meta', 'images', 'descriptors', 'records', 'particles', \
             'thumbnails', 'projections')",
            &[],
        )?;
        Ok(matches!(rows.first().map(|r| &r[0]), Some(Value::Int(n)) if *n > 0))
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }
}
