//! Writes into PostgreSQL with `COPY ... FROM STDIN` — binary where every column has a binary
//! encoder, text otherwise — and commits each chunk's rows with its marker in one transaction.

use std::sync::Mutex;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use decant_core::{ConnectionUrl, Dialect, LogicalType, TableName, quote_ident};
use futures::SinkExt;
use tokio_postgres::{Client, Transaction};

use super::codec::{COPY_HEADER, Encoder, encode_batch};
use super::types::{normalize, to_logical, to_native};
use super::{connect, ddl, qualified};
use crate::MARKER_TABLE;
use crate::batch::write_text;
use crate::error::ConnectorError;
use crate::preimage;
use crate::traits::{
    ChunkMarker, ChunkReceiver, DdlSet, Target, TargetColumn, TargetTable, UpsertTarget,
};

/// Bytes of encoded rows sent to the server per COPY message.
const SEND_BYTES: usize = 1 << 20;

/// A PostgreSQL target with a small pool of connections, one per chunk in flight.
pub struct PostgresTarget {
    url: String,
    control: Client,
    idle: Mutex<Vec<Client>>,
}

impl PostgresTarget {
    pub async fn connect(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let control = connect(url.expose()).await?;
        // Keys and indexes are built after the data by this session: sort in memory when we can.
        control
            .batch_execute("SET maintenance_work_mem = '256MB'")
            .await?;
        Ok(PostgresTarget {
            url: url.expose().to_string(),
            control,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn take(&self) -> Result<Client, ConnectorError> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => {
                let c = connect(&self.url).await?;
                // Safe with exactly-once: a chunk's rows and marker are lost or kept together.
                c.batch_execute("SET synchronous_commit = off").await?;
                Ok(c)
            }
        }
    }

    fn give_back(&self, client: Client) {
        if !client.is_closed() {
            self.idle.lock().expect("pool lock").push(client);
        }
    }

    fn marker_table(&self) -> String {
        format!("public.{}", quote_ident(Dialect::Postgres, MARKER_TABLE))
    }
}

/// The binary encoders of a table, or `None` when some column needs text COPY.
fn binary_encoders(columns: &[TargetColumn]) -> Option<Vec<Encoder>> {
    columns
        .iter()
        .map(|c| {
            let is_enum = matches!(c.logical, LogicalType::Enum { name: Some(_), .. });
            Encoder::for_column(&normalize(&c.native_type), &c.logical.arrow_type(), is_enum)
        })
        .collect()
}

/// Appends rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn encode_text_batch(
    batch: &RecordBatch,
    columns: &[TargetColumn],
    buf: &mut BytesMut,
) -> Result<(), (usize, String)> {
    let mut value = String::new();
    for row in 0..batch.num_rows() {
        for (i, col) in batch.columns().iter().enumerate() {
            if i > 0 {
                buf.put_u8(b'\t');
            }
            if col.is_null(row) {
                buf.put_slice(b"\\N");
                continue;
            }
            value.clear();
            if let Some(bin) = col.as_any().downcast_ref::<arrow_array::BinaryArray>() {
                value.push_str("\\x");
                for b in bin.value(row) {
                    value.push_str(&format!("{b:02x}"));
                }
            } else {
                write_text(col.as_ref(), row, &mut value);
                if matches!(columns[i].logical, LogicalType::Array(_))
                    && columns[i].native_type.ends_with("[]")
                {
                    value = json_to_pg_array(&value).map_err(|e| (i, e))?;
                }
            }
            if value.contains('\0') {
                return Err((
                    i,
                    "text contains a NUL byte (0x00), which PostgreSQL text cannot hold".into(),
                ));
            }
            for b in value.bytes() {
                match b {
                    b'\\' => buf.put_slice(b"\\\\"),
                    b'\t' => buf.put_slice(b"\\t"),
                    b'\n' => buf.put_slice(b"\\n"),
                    b'\r' => buf.put_slice(b"\\r"),
                    b => buf.put_u8(b),
                }
            }
        }
        buf.put_u8(b'\n');
    }
    Ok(())
}

/// Converts a JSON array (`[1,"a b",null,[2]]`) to PostgreSQL's array literal (`{1,"a b",NULL,{2}}`).
pub fn json_to_pg_array(json: &str) -> Result<String, String> {
    fn walk(v: &serde_json::Value, out: &mut String) -> Result<(), String> {
        match v {
            serde_json::Value::Array(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(item, out)?;
                }
                out.push('}');
            }
            serde_json::Value::Null => out.push_str("NULL"),
            serde_json::Value::String(s) => {
                out.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            other => {
                let s = other.to_string();
                out.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
        Ok(())
    }
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("array value is not JSON: {e}"))?;
    let mut out = String::new();
    walk(&v, &mut out)?;
    Ok(out)
}

/// COPYs every batch received on `rx` into the table `into` (quoted), inside `tx`.
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &TargetTable,
    into: &str,
    chunk_id: &str,
    mut rx: ChunkReceiver,
) -> Result<u64, ConnectorError> {
    let encoders = binary_encoders(&table.columns);
    let column_list: Vec<String> = table
        .columns
        .iter()
        .map(|c| quote_ident(Dialect::Postgres, &c.name))
        .collect();
    let format = if encoders.is_some() {
        " (FORMAT binary)"
    } else {
        ""
    };
    let sql = format!(
        "COPY {into} ({}) FROM STDIN{format}",
        column_list.join(", ")
    );
    let sink = tx.copy_in::<_, bytes::Bytes>(&sql).await?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(SEND_BYTES * 2);
    if encoders.is_some() {
        buf.put_slice(COPY_HEADER);
    }
    let mut rows = 0u64;
    let fail = |(col, message): (usize, String)| ConnectorError::Value {
        table: table.name.to_string(),
        column: table
            .columns
            .get(col)
            .map_or_else(String::new, |c| c.name.clone()),
        range: format!("chunk {chunk_id}"),
        message,
    };
    while let Some(batch) = rx.recv().await? {
        match &encoders {
            Some(enc) => encode_batch(&batch, enc, &mut buf).map_err(fail)?,
            None => encode_text_batch(&batch, &table.columns, &mut buf).map_err(fail)?,
        }
        rows += batch.num_rows() as u64;
        if buf.len() >= SEND_BYTES {
            sink.send(buf.split().freeze()).await?;
        }
    }
    if encoders.is_some() {
        buf.put_i16(-1);
    }
    sink.send(buf.split().freeze()).await?;
    let copied = sink.finish().await?;
    if copied != rows {
        return Err(ConnectorError::Internal(format!(
            "COPY stored {copied} rows of {rows} sent"
        )));
    }
    Ok(rows)
}

impl PostgresTarget {
    async fn insert_marker(
        &self,
        tx: &Transaction<'_>,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        rows: u64,
    ) -> Result<(), ConnectorError> {
        tx.execute(
            &format!(
                "INSERT INTO {} (job_id, table_name, chunk_id, row_count) VALUES ($1, $2, $3, $4)",
                self.marker_table()
            ),
            &[&job, &table.name.to_string(), &chunk_id, &(rows as i64)],
        )
        .await?;
        Ok(())
    }
}

/// Adds the statement to a database error, so the user sees what failed.
fn in_statement(e: tokio_postgres::Error, statement: &str) -> ConnectorError {
    let (message, retriable) = match ConnectorError::from(e) {
        ConnectorError::Database {
            message, retriable, ..
        } => (message, retriable),
        other => (other.to_string(), other.is_retriable()),
    };
    ConnectorError::Database {
        system: Dialect::Postgres,
        message: format!("{message}, in: {statement}"),
        retriable,
    }
}

#[async_trait]
impl UpsertTarget for PostgresTarget {
    fn preimage_ddl(&self, table: &TargetTable, side: &TableName) -> Vec<String> {
        let cols: Vec<String> = table
            .columns
            .iter()
            .map(|c| quote_ident(Dialect::Postgres, &c.name))
            .collect();
        let p = qualified(side);
        vec![
            format!(
                "CREATE TABLE {p} AS SELECT {} FROM {} WITH NO DATA",
                cols.join(", "),
                qualified(&table.name)
            ),
            format!(
                "ALTER TABLE {p} ADD COLUMN {} text NOT NULL, ADD COLUMN {} bigint GENERATED ALWAYS AS IDENTITY",
                quote_ident(Dialect::Postgres, preimage::OP_COLUMN),
                quote_ident(Dialect::Postgres, preimage::SEQ_COLUMN)
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
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let mut client = self.take().await?;
        let tx = client.transaction().await?;
        let stage = quote_ident(Dialect::Postgres, preimage::STAGE_TABLE);
        let cols: Vec<String> = table
            .columns
            .iter()
            .map(|c| quote_ident(Dialect::Postgres, &c.name))
            .collect();
        // The stage has the target's own column types, so COPY converts exactly as an
        // append into the table would.
        let create = format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
            cols.join(", "),
            qualified(&table.name)
        );
        tx.batch_execute(&create)
            .await
            .map_err(|e| in_statement(e, &create))?;
        let rows = copy_rows(&tx, table, &stage, chunk_id, rx).await?;
        let mut statements =
            preimage::record_statements(Dialect::Postgres, table, key, side, &stage);
        statements.push(preimage::merge_statement(
            Dialect::Postgres,
            table,
            key,
            &stage,
        ));
        for s in &statements {
            tx.batch_execute(s).await.map_err(|e| in_statement(e, s))?;
        }
        self.insert_marker(&tx, job, table, chunk_id, rows).await?;
        tx.commit().await?;
        self.give_back(client);
        Ok(rows)
    }

    fn undo_upsert_sql(
        &self,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
    ) -> Vec<String> {
        preimage::undo_statements(Dialect::Postgres, table, key, side)
    }
}

#[async_trait]
impl Target for PostgresTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn default_schema(&self) -> Option<String> {
        Some("public".into())
    }

    fn native_type(&self, logical: &LogicalType) -> Result<String, ConnectorError> {
        Ok(to_native(logical))
    }

    fn parse_native_type(&self, native: &str) -> Result<LogicalType, ConnectorError> {
        to_logical(native).ok_or_else(|| {
            ConnectorError::Config(format!(
                "`{native}` is not a PostgreSQL type Decant can write; use a built-in type"
            ))
        })
    }

    fn ddl(&self, table: &TargetTable, primary_key_after_load: bool) -> DdlSet {
        ddl::ddl(table, primary_key_after_load)
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool, ConnectorError> {
        let row = self
            .control
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(table)])
            .await?;
        Ok(row.get(0))
    }

    async fn execute(&self, statements: &[String]) -> Result<(), ConnectorError> {
        for s in statements {
            self.control
                .batch_execute(s)
                .await
                .map_err(|e| in_statement(e, s))?;
        }
        Ok(())
    }

    async fn execute_atomically(&self, statements: &[String]) -> Result<(), ConnectorError> {
        let mut client = self.take().await?;
        let tx = client.transaction().await?;
        for s in statements {
            tx.batch_execute(s).await.map_err(|e| in_statement(e, s))?;
        }
        tx.commit().await?;
        self.give_back(client);
        Ok(())
    }

    async fn rename_tables(&self, renames: &[(TableName, String)]) -> Result<(), ConnectorError> {
        // PostgreSQL's DDL is transactional: the renames commit together or not at all.
        let statements: Vec<String> = renames
            .iter()
            .map(|(from, to)| {
                format!(
                    "ALTER TABLE {} RENAME TO {}",
                    qualified(from),
                    quote_ident(Dialect::Postgres, to)
                )
            })
            .collect();
        self.execute_atomically(&statements).await
    }

    async fn dependents(&self, table: &TableName) -> Result<Vec<String>, ConnectorError> {
        let name = qualified(table);
        // Views (their rewrite rules depend on the table) and foreign keys of other tables:
        // both hold the table's oid, so they would follow it to its backup name.
        let rows = self
            .control
            .query(
                "SELECT DISTINCT 'view ' || quote_ident(n.nspname) || '.' || quote_ident(v.relname) \
                 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
                 JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace \
                 WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::text::regclass \
                   AND v.oid <> $1::text::regclass \
                 UNION ALL \
                 SELECT 'foreign key ' || quote_ident(c.conname) || ' of ' || quote_ident(n.nspname) || '.' || quote_ident(k.relname) \
                 FROM pg_constraint c JOIN pg_class k ON k.oid = c.conrelid JOIN pg_namespace n ON n.oid = k.relnamespace \
                 WHERE c.contype = 'f' AND c.confrelid = $1::text::regclass AND c.conrelid <> $1::text::regclass",
                &[&name],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn upsert(&self) -> Option<&dyn UpsertTarget> {
        Some(self)
    }

    async fn prepare_markers(&self) -> Result<(), ConnectorError> {
        self.control
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (job_id text, table_name text, chunk_id text, row_count bigint, \
                 committed_at timestamptz DEFAULT now(), PRIMARY KEY (job_id, table_name, chunk_id))",
                self.marker_table()
            ))
            .await?;
        Ok(())
    }

    async fn committed_chunks(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError> {
        let rows = self
            .control
            .query(
                &format!(
                    "SELECT table_name, chunk_id, row_count FROM {} WHERE job_id = $1",
                    self.marker_table()
                ),
                &[&job],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ChunkMarker {
                table: r.get(0),
                chunk_id: r.get(1),
                rows: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    async fn delete_markers(&self, job: &str) -> Result<(), ConnectorError> {
        self.control
            .execute(
                &format!("DELETE FROM {} WHERE job_id = $1", self.marker_table()),
                &[&job],
            )
            .await?;
        Ok(())
    }

    async fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError> {
        let mut client = self.take().await?;
        let tx = client.transaction().await?;
        let rows = copy_rows(&tx, table, &qualified(&table.name), chunk_id, rx).await?;
        self.insert_marker(&tx, job, table, chunk_id, rows).await?;
        tx.commit().await?;
        self.give_back(client);
        Ok(rows)
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let row = self
            .control
            .query_one(
                &format!("SELECT count(*)::int8 FROM {}", qualified(table)),
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn max_value(
        &self,
        table: &TargetTable,
        column: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let c = quote_ident(Dialect::Postgres, column);
        let expr = match table
            .columns
            .iter()
            .find(|x| x.name == column)
            .map(|x| &x.logical)
        {
            Some(LogicalType::TimestampTz { .. }) => {
                format!("to_char(max({c}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            Some(LogicalType::Timestamp { .. }) => {
                format!("to_char(max({c}), 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
            }
            _ => format!("max({c})::text"),
        };
        let row = self
            .control
            .query_one(
                &format!("SELECT {expr} FROM {}", qualified(&table.name)),
                &[],
            )
            .await?;
        Ok(row
            .get::<_, Option<String>>(0)
            .map(crate::traits::trim_zero_fraction))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_arrays_become_pg_literals() {
        assert_eq!(
            super::json_to_pg_array(r#"[1,"a \"b\"",null,[2,3]]"#).unwrap(),
            r#"{"1","a \"b\"",NULL,{"2","3"}}"#
        );
    }
}
