//! Writes into SQLite with one prepared INSERT per chunk inside a `BEGIN IMMEDIATE`
//! transaction that also records the chunk's marker, so rows and marker commit together.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use async_trait::async_trait;
use decant_core::{ConnectionUrl, Dialect, LogicalType, TableName, quote_ident};
use rusqlite::types::Null;
use rusqlite::{Connection, Statement, TransactionBehavior, params};

use super::{blocking, ddl, open_write, path_of, types};
use crate::MARKER_TABLE;
use crate::batch::{write_decimal, write_text};
use crate::error::ConnectorError;
use crate::preimage;
use crate::traits::{ChunkMarker, ChunkReceiver, DdlSet, Target, TargetTable, UpsertTarget};

fn q(name: &str) -> String {
    quote_ident(Dialect::Sqlite, name)
}

/// A SQLite file written through one connection per call; the file is created if missing.
pub struct SqliteTarget {
    path: String,
}

impl SqliteTarget {
    /// Checks that the file's folder exists; the file itself is created by the first call.
    pub fn open(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let path = path_of(url)?;
        let parent = std::path::Path::new(&path).parent();
        if parent.is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
            return Err(ConnectorError::Config(format!(
                "sqlite target {path}: its folder does not exist"
            )));
        }
        Ok(SqliteTarget { path })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, ConnectorError>
    where
        F: FnOnce(&mut Connection) -> Result<T, ConnectorError> + Send + 'static,
        T: Send + 'static,
    {
        let path = self.path.clone();
        blocking(move || f(&mut open_write(&path)?)).await
    }
}

fn marker_table_exists(conn: &Connection) -> Result<bool, ConnectorError> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [MARKER_TABLE],
        |r| r.get(0),
    )?)
}

#[async_trait]
impl Target for SqliteTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn default_schema(&self) -> Option<String> {
        None
    }

    fn native_type(&self, logical: &LogicalType) -> Result<String, ConnectorError> {
        Ok(types::to_native(logical))
    }

    /// Any name is a valid SQLite type; only characters of a type name are accepted, since
    /// the name goes into DDL text.
    fn parse_native_type(&self, native: &str) -> Result<LogicalType, ConnectorError> {
        let ok = native
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '(' | ')' | ',' | '-' | '+'));
        if !ok || native.trim().is_empty() {
            return Err(ConnectorError::Config(format!(
                "`{native}` is not a SQLite type name (letters, digits, spaces and (p,s) only)"
            )));
        }
        Ok(types::to_logical(native))
    }

    /// SQLite cannot add keys later, so `primary_key_after_load` is ignored.
    fn ddl(&self, table: &TargetTable, _primary_key_after_load: bool) -> DdlSet {
        ddl::table_ddl(table)
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool, ConnectorError> {
        let name = table.name.clone();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema \
                 WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn execute(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let statements = statements.to_vec();
        self.with_conn(move |conn| {
            for s in &statements {
                conn.execute_batch(s)?;
            }
            Ok(())
        })
        .await
    }

    async fn prepare_markers(&self) -> Result<(), ConnectorError> {
        self.with_conn(|conn| Ok(conn.execute_batch(&ddl::marker_table_ddl())?))
            .await
    }

    async fn committed_chunks(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        let job = job.to_string();
        self.with_conn(move |conn| {
            if !marker_table_exists(conn)? {
                return Ok(vec![]);
            }
            let mut stmt = conn.prepare(&format!(
                "SELECT table_name, chunk_id, row_count FROM {} WHERE job_id = ?1",
                q(MARKER_TABLE)
            ))?;
            let markers = stmt
                .query_map([job], |r| {
                    Ok(ChunkMarker {
                        table: r.get(0)?,
                        chunk_id: r.get(1)?,
                        rows: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(markers)
        })
        .await
    }

    async fn delete_markers(&self, job: &str) -> Result<(), ConnectorError> {
        let job = job.to_string();
        self.with_conn(move |conn| {
            if marker_table_exists(conn)? {
                conn.execute(
                    &format!("DELETE FROM {} WHERE job_id = ?1", q(MARKER_TABLE)),
                    [job],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        mut rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let (job, table, chunk_id) = (job.to_string(), table.clone(), chunk_id.to_string());
        self.with_conn(move |conn| {
            // Wait for data before taking SQLite's single write lock, so a slow source holds
            // the other chunks' writers back no longer than needed.
            let mut next = rx.blocking_recv()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut rows = 0u64;
            {
                let mut insert = tx.prepare(&insert_sql(&table))?;
                let mut text = String::new();
                while let Some(batch) = next {
                    rows += write_batch(&mut insert, &table, &chunk_id, &batch, &mut text)?;
                    next = rx.blocking_recv()?;
                }
                tx.execute(
                    &format!(
                        "INSERT INTO {} (job_id, table_name, chunk_id, row_count, committed_at) \
                         VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                        q(MARKER_TABLE)
                    ),
                    params![job, table.name.to_string(), chunk_id, rows as i64],
                )?;
            }
            // Dropping `tx` on any error above rolls back: neither rows nor marker stay.
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    async fn execute_atomically(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let statements = statements.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for s in &statements {
                tx.execute_batch(s)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn rename_tables(&self, renames: &[(TableName, String)]) -> Result<(), ConnectorError> {
        let statements: Vec<String> = renames
            .iter()
            .map(|(from, to)| format!("ALTER TABLE {} RENAME TO {}", q(&from.name), q(to)))
            .collect();
        self.execute_atomically(&statements).await
    }

    async fn dependents(&self, table: &TableName) -> Result<Vec<String>, ConnectorError> {
        let name = table.name.clone();
        // SQLite's rename rewrites every view, trigger and foreign key that names the table,
        // so they would follow it to its backup. Which ones it rewrites is best asked of SQLite
        // itself: rename in a transaction, see what changed, roll back.
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let probe = "_decant_rename_probe";
            let others = |tx: &rusqlite::Transaction<'_>,
                          own: &str|
             -> Result<Vec<(String, String, String)>, ConnectorError> {
                let mut stmt = tx.prepare(
                    "SELECT type, name, sql FROM sqlite_schema \
                     WHERE sql IS NOT NULL AND tbl_name <> ?1 COLLATE NOCASE ORDER BY type, name",
                )?;
                let rows = stmt
                    .query_map([own], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            };
            let before = others(&tx, &name)?;
            tx.execute_batch(&format!("ALTER TABLE {} RENAME TO {}", q(&name), q(probe)))?;
            let after = others(&tx, probe)?;
            tx.rollback()?;
            Ok(before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b.2 != a.2)
                .map(|((kind, other, _), _)| {
                    let kind = if kind == "table" {
                        "foreign key of table"
                    } else {
                        kind
                    };
                    format!("{kind} {other}")
                })
                .collect())
        })
        .await
    }

    fn upsert(&self) -> Option<&dyn UpsertTarget> {
        Some(self)
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let name = table.name.clone();
        self.with_conn(move |conn| {
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {}", q(&name)), [], |r| {
                    r.get(0)
                })?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn max_value(
        &self,
        table: &TargetTable,
        column: &str,
    ) -> Result<Option<String>, ConnectorError> {
        // SQLite keeps the text (or number) that was written; max() compares it as stored.
        let (name, column) = (table.name.name.clone(), column.to_string());
        self.with_conn(move |conn| {
            let v: Option<String> = conn.query_row(
                &format!("SELECT CAST(max({}) AS TEXT) FROM {}", q(&column), q(&name)),
                [],
                |r| r.get(0),
            )?;
            Ok(v)
        })
        .await
    }
}

#[async_trait]
impl UpsertTarget for SqliteTarget {
    fn preimage_ddl(&self, table: &TargetTable, side: &TableName) -> Vec<String> {
        let cols: Vec<String> = table.columns.iter().map(|c| q(&c.name)).collect();
        // The side table's rowid orders its rows.
        vec![
            format!(
                "CREATE TABLE {} AS SELECT {} FROM {} WHERE 0",
                q(&side.name),
                cols.join(", "),
                q(&table.name.name)
            ),
            format!(
                "ALTER TABLE {} ADD COLUMN {} TEXT",
                q(&side.name),
                q(preimage::OP_COLUMN)
            ),
        ]
    }

    async fn write_chunk_upsert(
        &self,
        job: &str,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
        chunk_id: &str,
        mut rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let (job, table, chunk_id) = (job.to_string(), table.clone(), chunk_id.to_string());
        let (key, side) = (key.to_vec(), side.clone());
        self.with_conn(move |conn| {
            let mut next = rx.blocking_recv()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stage = q(preimage::STAGE_TABLE);
            let cols: Vec<String> = table.columns.iter().map(|c| q(&c.name)).collect();
            tx.execute_batch(&format!(
                "DROP TABLE IF EXISTS temp.{stage}; CREATE TEMP TABLE {stage} AS SELECT {} FROM {} WHERE 0",
                cols.join(", "),
                q(&table.name.name)
            ))?;
            let staged = TargetTable {
                name: TableName {
                    schema: None,
                    name: preimage::STAGE_TABLE.into(),
                },
                ..table.clone()
            };
            let mut rows = 0u64;
            {
                let mut insert = tx.prepare(&insert_sql(&staged))?;
                let mut text = String::new();
                while let Some(batch) = next {
                    rows += write_batch(&mut insert, &table, &chunk_id, &batch, &mut text)?;
                    next = rx.blocking_recv()?;
                }
            }
            let mut statements =
                preimage::record_statements(Dialect::Sqlite, &table, &key, &side, &stage);
            statements.push(preimage::merge_statement(Dialect::Sqlite, &table, &key, &stage));
            statements.push(format!("DROP TABLE temp.{stage}"));
            for s in &statements {
                tx.execute_batch(s)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO {} (job_id, table_name, chunk_id, row_count, committed_at) \
                     VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    q(MARKER_TABLE)
                ),
                params![job, table.name.to_string(), chunk_id, rows as i64],
            )?;
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    fn undo_upsert_sql(
        &self,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
    ) -> Vec<String> {
        preimage::undo_statements(Dialect::Sqlite, table, key, side)
    }
}

fn insert_sql(table: &TargetTable) -> String {
    let columns: Vec<String> = table.columns.iter().map(|c| q(&c.name)).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        q(&table.name.name),
        columns.join(", "),
        params.join(", ")
    )
}

/// Widens small integers to `Int64` and `Float32` to `Float64` once per batch, so the row loop
/// sees few array types.
fn widen(array: &ArrayRef) -> Result<ArrayRef, arrow_schema::ArrowError> {
    use DataType::*;
    match array.data_type() {
        Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32 => arrow_cast::cast(array, &Int64),
        Float32 => arrow_cast::cast(array, &Float64),
        _ => Ok(array.clone()),
    }
}

/// Binds and inserts every row of a batch; returns the rows inserted.
fn write_batch(
    insert: &mut Statement<'_>,
    table: &TargetTable,
    chunk_id: &str,
    batch: &RecordBatch,
    text: &mut String,
) -> Result<u64, ConnectorError> {
    if batch.num_columns() != table.columns.len() {
        return Err(ConnectorError::Internal(format!(
            "batch for {} has {} columns, the table {}",
            table.name,
            batch.num_columns(),
            table.columns.len()
        )));
    }
    let arrays: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(widen)
        .collect::<Result<_, _>>()
        .map_err(|e| ConnectorError::Internal(e.to_string()))?;
    let value_error = |col: usize, message: String| ConnectorError::Value {
        table: table.name.to_string(),
        column: table.columns[col].name.clone(),
        range: format!("chunk {chunk_id}"),
        message,
    };
    for row in 0..batch.num_rows() {
        for (i, a) in arrays.iter().enumerate() {
            let p = i + 1;
            if a.is_null(row) {
                insert.raw_bind_parameter(p, Null)?;
                continue;
            }
            match a.data_type() {
                DataType::Boolean => {
                    insert.raw_bind_parameter(p, a.as_boolean().value(row) as i64)?
                }
                DataType::Int64 => {
                    insert.raw_bind_parameter(p, a.as_primitive::<Int64Type>().value(row))?
                }
                DataType::UInt64 => {
                    let v = a.as_primitive::<UInt64Type>().value(row);
                    let v = i64::try_from(v).map_err(|_| {
                        value_error(
                            i,
                            format!("{v} does not fit SQLite's 64-bit signed INTEGER"),
                        )
                    })?;
                    insert.raw_bind_parameter(p, v)?
                }
                DataType::Float64 => {
                    let v = a.as_primitive::<Float64Type>().value(row);
                    if v.is_nan() {
                        return Err(value_error(
                            i,
                            "NaN cannot be stored: SQLite turns it into NULL".into(),
                        ));
                    }
                    insert.raw_bind_parameter(p, v)?
                }
                DataType::Decimal128(_, scale) => {
                    let v = a.as_primitive::<Decimal128Type>().value(row);
                    match i64::try_from(v) {
                        Ok(int) if *scale == 0 => insert.raw_bind_parameter(p, int)?,
                        _ => {
                            text.clear();
                            write_decimal(text, v, *scale);
                            insert.raw_bind_parameter(p, text.as_str())?
                        }
                    }
                }
                DataType::Utf8 => insert.raw_bind_parameter(p, a.as_string::<i32>().value(row))?,
                DataType::LargeUtf8 => {
                    insert.raw_bind_parameter(p, a.as_string::<i64>().value(row))?
                }
                DataType::Binary => {
                    insert.raw_bind_parameter(p, a.as_binary::<i32>().value(row))?
                }
                DataType::LargeBinary => {
                    insert.raw_bind_parameter(p, a.as_binary::<i64>().value(row))?
                }
                // Dates, times, timestamps, intervals and UUIDs: their ISO text.
                DataType::Date32
                | DataType::Time64(TimeUnit::Microsecond)
                | DataType::Timestamp(TimeUnit::Microsecond, _)
                | DataType::Interval(IntervalUnit::MonthDayNano)
                | DataType::FixedSizeBinary(16) => {
                    text.clear();
                    write_text(a.as_ref(), row, text);
                    insert.raw_bind_parameter(p, text.as_str())?
                }
                other => {
                    return Err(ConnectorError::Internal(format!(
                        "column {}: the sqlite writer has no encoding for Arrow {other}",
                        table.columns[i].name
                    )));
                }
            }
        }
        insert.raw_execute()?;
    }
    Ok(batch.num_rows() as u64)
}
