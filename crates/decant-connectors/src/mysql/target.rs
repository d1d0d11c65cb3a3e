//! The MySQL target: exactly-once chunk writes, streamed with `LOAD DATA LOCAL INFILE` (or
//! multi-row INSERTs where the server forbids it), checked row for row because LOCAL turns data
//! errors and duplicate keys into warnings.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use decant_core::{ConnectionUrl, Dialect, LogicalType, TableName};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Pool, Value};
use tokio::sync::{mpsc, oneshot};

use super::encode::{
    Encoded, check_width, encode_stream, insert_statement, insert_uses, is_binary_native,
    load_statement, push_params,
};
use super::{ServerInfo, ddl, ident, open_pool, qualified, types};
use crate::MARKER_TABLE;
use crate::error::ConnectorError;
use crate::preimage;
use crate::traits::{ChunkMarker, ChunkReceiver, DdlSet, Target, TargetTable, UpsertTarget};

/// Strict for every statement (so bad values are errors, not silent truncations), and an
/// explicit 0 in an AUTO_INCREMENT column stays 0.
const STRICT_MODE: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,\
    NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO'";

/// Bytes of bound values per INSERT statement on the fallback path.
const INSERT_BYTES: usize = 4 << 20;

/// How rows reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMethod {
    /// `LOAD DATA LOCAL INFILE` from an in-memory stream (the fast path).
    LocalInfile,
    /// Multi-row INSERTs with bound parameters (servers with `local_infile` OFF).
    Insert,
}

/// Writes into the database the URL names.
pub struct MysqlTarget {
    pool: Pool,
    server: ServerInfo,
    use_inserts: AtomicBool,
}

impl MysqlTarget {
    pub async fn connect(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let (pool, server) = open_pool(url, &[STRICT_MODE]).await?;
        let mut conn = pool.get_conn().await?;
        let local: Option<i64> = conn.query_first("SELECT @@GLOBAL.local_infile").await?;
        drop(conn);
        let use_inserts = local != Some(1);
        if use_inserts {
            tracing::warn!(
                server = %server.version,
                "local_infile is OFF on the target server: loading with multi-row INSERTs, \
                 which is slower; SET GLOBAL local_infile = ON enables LOAD DATA LOCAL INFILE"
            );
        }
        Ok(MysqlTarget {
            pool,
            server,
            use_inserts: AtomicBool::new(use_inserts),
        })
    }

    /// Chooses how rows are loaded (the INSERT path is chosen by itself when the server forbids
    /// LOCAL INFILE).
    pub fn with_load_method(self, method: LoadMethod) -> Self {
        self.use_inserts
            .store(method == LoadMethod::Insert, Ordering::Relaxed);
        self
    }

    pub fn load_method(&self) -> LoadMethod {
        if self.use_inserts.load(Ordering::Relaxed) {
            LoadMethod::Insert
        } else {
            LoadMethod::LocalInfile
        }
    }

    async fn load(
        &self,
        conn: &mut Conn,
        table: &TargetTable,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let raw: Arc<[bool]> = table
            .columns
            .iter()
            .map(|c| is_binary_native(&c.native_type))
            .collect();
        let (data_tx, mut data_rx) = mpsc::channel::<io::Result<Bytes>>(2);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let ncols = table.columns.len();
        let encoder = tokio::spawn(encode_stream(rx, raw, ncols, data_tx, stop_rx));
        conn.set_infile_handler(async move {
            Ok(futures::stream::poll_fn(move |cx| data_rx.poll_recv(cx)).boxed())
        });
        let loaded = conn
            .query_drop(load_statement(&qualified(&table.name), &table.columns))
            .await;
        // If the server never asked for the data, the encoder must not wait for batches.
        drop(stop_tx);
        let rows = match (encoder.await?, loaded) {
            (Encoded::Failed(e), _) => return Err(e),
            (_, Err(e)) => return Err(self.load_error(e)),
            (Encoded::Rows(rows), Ok(())) => rows,
            (Encoded::Stopped, Ok(())) => {
                return Err(ConnectorError::Internal(
                    "LOAD DATA finished before its data".into(),
                ));
            }
        };
        check_loaded(conn, &table.name, rows).await?;
        Ok(rows)
    }

    /// A refused LOCAL INFILE switches this target to INSERTs; the chunk is retried.
    fn load_error(&self, e: mysql_async::Error) -> ConnectorError {
        if let mysql_async::Error::Server(s) = &e
            && matches!(s.code, 1148 | 3948)
        {
            self.use_inserts.store(true, Ordering::Relaxed);
            tracing::warn!(error = %s.message, "LOAD DATA LOCAL INFILE refused: switching to multi-row INSERTs");
            return ConnectorError::Database {
                system: Dialect::Mysql,
                message: format!(
                    "LOAD DATA LOCAL INFILE refused ({}); retrying with INSERTs",
                    s.message
                ),
                retriable: true,
            };
        }
        e.into()
    }

    async fn insert(
        &self,
        conn: &mut Conn,
        table: &TargetTable,
        mut rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let ncols = table.columns.len();
        let uses = insert_uses(&table.columns);
        // At most 65535 placeholders per statement.
        let per_statement = (60_000 / uses.iter().sum::<usize>().max(1)).clamp(1, 1000);
        let raw: Vec<bool> = table
            .columns
            .iter()
            .map(|c| is_binary_native(&c.native_type))
            .collect();
        let q = qualified(&table.name);
        let mut params: Vec<Value> = Vec::new();
        let (mut pending, mut bytes, mut total) = (0usize, 0usize, 0u64);
        loop {
            let batch = rx.recv().await?;
            if let Some(batch) = &batch {
                check_width(batch, ncols)?;
                for row in 0..batch.num_rows() {
                    let before = params.len();
                    push_params(batch, &raw, &uses, row, &mut params);
                    bytes += params[before..].iter().map(value_len).sum::<usize>();
                    pending += 1;
                    if pending == per_statement || bytes >= INSERT_BYTES {
                        total += flush(conn, &q, table, pending, &mut params).await?;
                        (pending, bytes) = (0, 0);
                    }
                }
            } else {
                if pending > 0 {
                    total += flush(conn, &q, table, pending, &mut params).await?;
                }
                return Ok(total);
            }
        }
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}

async fn flush(
    conn: &mut Conn,
    q: &str,
    table: &TargetTable,
    rows: usize,
    params: &mut Vec<Value>,
) -> Result<u64, ConnectorError> {
    let sql = insert_statement(q, &table.columns, rows);
    conn.exec_drop(sql, Params::Positional(std::mem::take(params)))
        .await?;
    check_loaded(conn, &table.name, rows as u64).await?;
    Ok(rows as u64)
}

/// Fails unless the last statement stored exactly `rows` rows without a warning: LOCAL INFILE
/// skips duplicate keys and coerces bad values with only a warning to show for it.
async fn check_loaded(conn: &mut Conn, table: &TableName, rows: u64) -> Result<(), ConnectorError> {
    let affected = conn.affected_rows();
    let warnings = conn.get_warnings();
    if affected == rows && warnings == 0 {
        return Ok(());
    }
    let shown: Vec<(String, u32, String)> = conn
        .query("SHOW WARNINGS LIMIT 10")
        .await
        .unwrap_or_default();
    let text = shown
        .iter()
        .map(|(level, code, msg)| format!("{level} {code}: {msg}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ConnectorError::Database {
        system: Dialect::Mysql,
        message: format!(
            "loading {table}: {rows} rows sent, {affected} stored, {warnings} warnings: {text}"
        ),
        retriable: false,
    })
}

impl MysqlTarget {
    async fn write_rows(
        &self,
        conn: &mut Conn,
        table: &TargetTable,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        match self.load_method() {
            LoadMethod::LocalInfile => self.load(conn, table, rx).await,
            LoadMethod::Insert => self.insert(conn, table, rx).await,
        }
    }
}

/// Records the chunk's marker and commits.
async fn commit_with_marker(
    conn: &mut Conn,
    job: &str,
    table: &TargetTable,
    chunk_id: &str,
    rows: u64,
) -> Result<u64, ConnectorError> {
    let marker = format!(
        "INSERT INTO {} (job_id, table_name, chunk_id, row_count, committed_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
        ident(MARKER_TABLE)
    );
    conn.exec_drop(marker, (job, table.name.to_string(), chunk_id, rows))
        .await?;
    conn.query_drop("COMMIT").await?;
    Ok(rows)
}

async fn rollback_unless_ok<T>(mut conn: Conn, outcome: &Result<T, ConnectorError>) {
    if outcome.is_err() && conn.query_drop("ROLLBACK").await.is_err() {
        // A connection that cannot roll back is closed, which rolls back too.
        let _ = conn.disconnect().await;
    }
}

#[async_trait]
impl UpsertTarget for MysqlTarget {
    fn preimage_ddl(&self, table: &TargetTable, side: &TableName) -> Vec<String> {
        let cols: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        // Strict mode checks CREATE ... SELECT's defaults even for no rows: the operation needs
        // one, though every insert names it.
        vec![format!(
            "CREATE TABLE {} ({} BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, {} CHAR(1) NOT NULL DEFAULT '') \
             ENGINE=InnoDB SELECT {} FROM {} LIMIT 0",
            qualified(side),
            ident(preimage::SEQ_COLUMN),
            ident(preimage::OP_COLUMN),
            cols.join(", "),
            qualified(&table.name)
        )]
    }

    async fn write_chunk_upsert(
        &self,
        job: &str,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
        chunk_id: &str,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let stage_name = TableName {
            schema: None,
            name: preimage::STAGE_TABLE.into(),
        };
        let stage = qualified(&stage_name);
        let cols: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        // Temporary tables neither commit the transaction nor outlive the session; the one
        // of an earlier failed chunk on this pooled connection goes first.
        conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {stage}"))
            .await?;
        conn.query_drop("START TRANSACTION").await?;
        let committed = async {
            conn.query_drop(format!(
                "CREATE TEMPORARY TABLE {stage} SELECT {} FROM {} LIMIT 0",
                cols.join(", "),
                qualified(&table.name)
            ))
            .await?;
            let staged = TargetTable {
                name: stage_name.clone(),
                ..table.clone()
            };
            let rows = self.write_rows(&mut conn, &staged, rx).await?;
            let mut statements =
                preimage::record_statements(Dialect::Mysql, table, key, side, &stage);
            statements.push(preimage::merge_statement(
                Dialect::Mysql,
                table,
                key,
                &stage,
            ));
            for s in &statements {
                conn.query_drop(s).await?;
            }
            commit_with_marker(&mut conn, job, table, chunk_id, rows).await
        }
        .await;
        if committed.is_ok() {
            conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {stage}"))
                .await?;
        }
        rollback_unless_ok(conn, &committed).await;
        committed
    }

    async fn upsert_key_problems(
        &self,
        table: &TableName,
        key: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let indexes = super::upsert_keys::unique_indexes(&self.pool, table).await?;
        Ok(super::upsert_keys::problems(table, key, &indexes))
    }

    fn undo_upsert_sql(
        &self,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
    ) -> Vec<String> {
        preimage::undo_statements(Dialect::Mysql, table, key, side)
    }
}

#[async_trait]
impl Target for MysqlTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn default_schema(&self) -> Option<String> {
        None
    }

    fn native_type(&self, logical: &LogicalType) -> Result<String, ConnectorError> {
        types::to_native(logical).map_err(ConnectorError::Config)
    }

    fn parse_native_type(&self, native: &str) -> Result<LogicalType, ConnectorError> {
        types::to_logical(native).ok_or_else(|| {
            ConnectorError::Config(format!("`{native}` is not a MySQL type Decant can create"))
        })
    }

    fn ddl(&self, table: &TargetTable, _primary_key_after_load: bool) -> DdlSet {
        // InnoDB clusters rows on the primary key: adding it later rebuilds the table.
        ddl::ddl(table, self.server.mariadb)
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                (table.schema.as_deref(), table.name.as_str()),
            )
            .await?;
        Ok(n.unwrap_or(0) > 0)
    }

    async fn execute(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        for s in statements {
            conn.query_drop(s).await?;
        }
        Ok(())
    }

    async fn prepare_markers(&self) -> Result<(), ConnectorError> {
        self.execute(&[format!(
            "CREATE TABLE IF NOT EXISTS {} (job_id varchar(190) NOT NULL, \
             table_name varchar(190) NOT NULL, chunk_id varchar(190) NOT NULL, \
             row_count bigint NOT NULL, committed_at datetime(6) NOT NULL, \
             PRIMARY KEY (job_id, table_name, chunk_id)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ident(MARKER_TABLE)
        )])
        .await
    }

    async fn committed_chunks(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let sql = format!(
            "SELECT table_name, chunk_id, row_count FROM {} WHERE job_id = ?",
            ident(MARKER_TABLE)
        );
        let rows: Vec<(String, String, u64)> = match conn.exec(sql, (job,)).await {
            Ok(rows) => rows,
            // No marker table yet: nothing was committed.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => vec![],
            Err(e) => return Err(e.into()),
        };
        Ok(rows
            .into_iter()
            .map(|(table, chunk_id, rows)| ChunkMarker {
                table,
                chunk_id,
                rows,
            })
            .collect())
    }

    async fn delete_markers(&self, job: &str) -> Result<(), ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let sql = format!("DELETE FROM {} WHERE job_id = ?", ident(MARKER_TABLE));
        match conn.exec_drop(sql, (job,)).await {
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(()),
            other => Ok(other?),
        }
    }

    async fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        conn.query_drop("START TRANSACTION").await?;
        let committed = async {
            let rows = self.write_rows(&mut conn, table, rx).await?;
            commit_with_marker(&mut conn, job, table, chunk_id, rows).await
        }
        .await;
        rollback_unless_ok(conn, &committed).await;
        committed
    }

    async fn execute_atomically(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        conn.query_drop("START TRANSACTION").await?;
        let done = async {
            for s in statements {
                conn.query_drop(s).await?;
            }
            conn.query_drop("COMMIT").await?;
            Ok::<_, ConnectorError>(())
        }
        .await;
        rollback_unless_ok(conn, &done).await;
        done
    }

    async fn rename_tables(&self, renames: &[(TableName, String)]) -> Result<(), ConnectorError> {
        // One RENAME TABLE statement renames every pair atomically (MySQL's DDL is not
        // transactional, this statement is).
        let pairs: Vec<String> = renames
            .iter()
            .map(|(from, to)| {
                let to = TableName {
                    schema: from.schema.clone(),
                    name: to.clone(),
                };
                format!("{} TO {}", qualified(from), qualified(&to))
            })
            .collect();
        self.execute(&[format!("RENAME TABLE {}", pairs.join(", "))])
            .await
    }

    async fn dependents(&self, table: &TableName) -> Result<Vec<String>, ConnectorError> {
        // Views name their tables, so they read the new table after a swap; foreign keys of
        // other tables would follow the old one to its backup name.
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<String> = conn
            .exec(
                "SELECT CONCAT('foreign key ', CONSTRAINT_NAME, ' of ', TABLE_NAME) \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE UNIQUE_CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) \
                   AND REFERENCED_TABLE_NAME = ? AND TABLE_NAME <> ?",
                (
                    table.schema.as_deref(),
                    table.name.as_str(),
                    table.name.as_str(),
                ),
            )
            .await?;
        Ok(rows)
    }

    fn upsert(&self) -> Option<&dyn UpsertTarget> {
        Some(self)
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {}", qualified(table)))
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn max_value(
        &self,
        table: &TargetTable,
        column: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let c = ident(column);
        let expr = match table
            .columns
            .iter()
            .find(|x| x.name == column)
            .map(|x| &x.logical)
        {
            // TIMESTAMP columns are read in the session's UTC (see `open_pool`).
            Some(LogicalType::TimestampTz { .. }) => {
                format!("DATE_FORMAT(MAX({c}), '%Y-%m-%dT%H:%i:%s.%fZ')")
            }
            Some(LogicalType::Timestamp { .. }) => {
                format!("DATE_FORMAT(MAX({c}), '%Y-%m-%dT%H:%i:%s.%f')")
            }
            _ => format!("CAST(MAX({c}) AS CHAR)"),
        };
        let mut conn = self.pool.get_conn().await?;
        let v: Option<Option<String>> = conn
            .query_first(format!("SELECT {expr} FROM {}", qualified(&table.name)))
            .await?;
        Ok(v.flatten().map(crate::traits::trim_zero_fraction))
    }
}
