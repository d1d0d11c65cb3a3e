//! The MySQL source: chunk planning on the integer primary key and streaming reads in a
//! consistent snapshot, through the binary protocol where it reads every column exactly alike.

use arrow_array::RecordBatch;
use async_trait::async_trait;
use decant_core::hazard::HazardKind;
use decant_core::plan::ValuePolicy;
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, ConnectionUrl, Dialect, LogicalType, Table, TableName,
};
use mysql_async::prelude::Queryable;
use mysql_async::{BinaryProtocol, Pool, QueryResult, Row, TextProtocol, Value};
use tokio::sync::mpsc;

use super::decode::{Decoded, Decoder, text_form};
use super::types::NativeType;
use super::{ServerInfo, hazards, ident, introspect, open_pool, qualified};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::traits::{HazardCheck, HazardCount, ReadRequest, Source};

/// Reads a MySQL/MariaDB database: the one the URL names.
pub struct MysqlSource {
    pool: Pool,
    server: ServerInfo,
}

impl MysqlSource {
    pub async fn connect(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let (pool, server) = open_pool(url, &[]).await?;
        Ok(MysqlSource { pool, server })
    }
}

fn is_integer(logical: Option<&LogicalType>) -> bool {
    use LogicalType::*;
    matches!(
        logical,
        Some(Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64)
    )
}

#[async_trait]
impl Source for MysqlSource {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        introspect::introspect(&mut conn, &self.server).await
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let whole = |rows| {
            vec![ChunkSpec {
                id: "whole".into(),
                range: ChunkRange::Whole,
                estimated_rows: rows,
            }]
        };
        let key = match table.primary_key.as_slice() {
            [k] if is_integer(table.column(k).and_then(|c| c.logical.as_ref())) => k.clone(),
            _ => return Ok(whole(table.row_estimate)),
        };
        let mut conn = self.pool.get_conn().await?;
        let k = ident(&key);
        // MIN and MAX come from the key's index; the row count only sizes the chunks, so the
        // statistics' estimate serves (an exact COUNT(*) scans the table), unless there is none.
        let count = if table.row_estimate > 0 {
            table.row_estimate.to_string()
        } else {
            "COUNT(*)".into()
        };
        let stats: Option<(Option<String>, Option<String>, u64)> = conn
            .query_first(format!(
                "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR), {count} FROM {}",
                qualified(&table.name)
            ))
            .await?;
        let parse = |v: Option<String>| v.and_then(|s| s.parse::<i64>().ok());
        match stats {
            Some((min, max, count)) => match (parse(min), parse(max)) {
                (Some(min), Some(max)) => Ok(crate::chunking::int_key_chunks(
                    &key,
                    min,
                    max,
                    count,
                    chunk_rows.max(1),
                )),
                // Empty, or an unsigned key past i64: one chunk reads it all.
                _ => Ok(whole(count)),
            },
            None => Ok(whole(0)),
        }
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let range = &request.chunk.range;
        let value_error = |column: &str, message: String| ConnectorError::Value {
            table: request.table.to_string(),
            column: column.to_string(),
            range: range.describe(),
            message,
        };
        let capacity = request.batch_rows.max(1);
        let mut batch = BatchBuilder::new(request.schema.clone(), capacity)
            .map_err(|e| ConnectorError::Internal(format!("batch schema: {e}")))?;
        let natives: Vec<NativeType> = request
            .columns
            .iter()
            .map(|c| NativeType::parse(&c.native_type))
            .collect();
        let decoders: Vec<Decoder> = natives
            .iter()
            .zip(batch.columns_mut().iter())
            .map(|(n, b)| Decoder::for_column(n, b))
            .collect();
        let nullable: Vec<bool> = request
            .schema
            .fields()
            .iter()
            .map(|f| f.is_nullable())
            .collect();

        let mut select: Vec<String> = request
            .columns
            .iter()
            .zip(&natives)
            .map(|(c, n)| {
                let q = ident(&c.name);
                if n.is_geometry() {
                    format!("ST_AsText({q})")
                } else if n.is_single_float() {
                    // The text form of a float keeps 6 digits; as a double it is exact.
                    format!("({q} + 0e0)")
                } else {
                    q
                }
            })
            .collect();
        let mut sql = String::new();
        if let Some(p) =
            crate::chunking::read_condition(Dialect::Mysql, range, request.filter.as_deref())
        {
            sql = format!(" WHERE {p}");
        }
        let key_at = match range {
            ChunkRange::IntKey { column, .. } => {
                let k = ident(column);
                sql.push_str(&format!(" ORDER BY {k}"));
                select.push(k);
                Some(select.len() - 1)
            }
            ChunkRange::Whole => None,
            ChunkRange::CtidPages { .. }
            | ChunkRange::FileBytes { .. }
            | ChunkRange::HttpPages { .. } => {
                return Err(ConnectorError::Config(format!(
                    "{}: a MySQL source reads key ranges, not pages or file bytes",
                    request.table
                )));
            }
        };
        let sql = format!(
            "SELECT {} FROM {}{sql}",
            select.join(", "),
            qualified(&request.table)
        );

        // The binary protocol sends numbers, dates and times without the server formatting
        // them as text and this side parsing them back: a third less time per row on a
        // typical table. A column whose decoder wants the text form keeps the text protocol.
        let binary = request
            .columns
            .iter()
            .zip(&decoders)
            .all(|(c, d)| d.reads_binary(&c.native_type));

        let mut conn = self.pool.get_conn().await?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await?;
        let streamed = async {
            let mut rows_sent = 0u64;
            let mut result = if binary {
                Rows::Binary(conn.exec_iter(sql, ()).await?)
            } else {
                Rows::Text(conn.query_iter(sql).await?)
            };
            while let Some(row) = result.next().await? {
                let ordinal = rows_sent + batch.len() as u64 + 1;
                let row_key = || match key_at.and_then(|i| row.as_ref(i)) {
                    Some(v @ (Value::Bytes(_) | Value::Int(_) | Value::UInt(_))) => {
                        format!("row with {} = {}", range_column(range), text_form(v))
                    }
                    _ => format!("row {ordinal} of the chunk"),
                };
                for (i, column) in request.columns.iter().enumerate() {
                    let builder = batch.column(i);
                    let outcome = match row.as_ref(i) {
                        None | Some(Value::NULL) => {
                            builder.append_null();
                            Ok(Decoded::Value)
                        }
                        Some(v) => decoders[i].decode_value(builder, v),
                    };
                    match outcome {
                        Ok(Decoded::Value) => {}
                        Ok(hazard @ (Decoded::ZeroDate | Decoded::InvalidDate)) => {
                            let (kind, what) = match hazard {
                                Decoded::ZeroDate => (HazardKind::ZeroDate, "zero date"),
                                _ => (HazardKind::InvalidDate, "partial-zero date"),
                            };
                            match request.policies.for_column(&column.name, kind) {
                                ValuePolicy::Null if nullable[i] => {
                                    request.policies.changes.add(
                                        &column.name,
                                        kind,
                                        ValuePolicy::Null,
                                    );
                                    batch.column(i).append_null()
                                }
                                ValuePolicy::Null => {
                                    return Err(value_error(
                                        &column.name,
                                        format!(
                                            "{what} in a NOT NULL column ({}): policy `null` needs \
                                             the target column to be nullable",
                                            row_key()
                                        ),
                                    ));
                                }
                                ValuePolicy::Fail | ValuePolicy::Coerce | ValuePolicy::Reject => {
                                    return Err(value_error(
                                        &column.name,
                                        format!(
                                            "{what} `{}` ({}); set policies.{kind} = \"null\" to \
                                             load NULL instead",
                                            lossy(row.as_ref(i)),
                                            row_key()
                                        ),
                                    ));
                                }
                            }
                        }
                        Err(message) => {
                            return Err(value_error(
                                &column.name,
                                format!("{message} ({})", row_key()),
                            ));
                        }
                    }
                }
                batch.end_row();
                if batch.is_full() {
                    rows_sent += send(&mut batch, &tx).await?;
                }
            }
            drop(result);
            if !batch.is_empty() {
                rows_sent += send(&mut batch, &tx).await?;
            }
            Ok::<u64, ConnectorError>(rows_sent)
        }
        .await;
        match streamed {
            Ok(rows) => {
                conn.query_drop("COMMIT").await?;
                Ok(rows)
            }
            Err(e) => {
                // Stops the server streaming the rest of the chunk, then ends the snapshot now:
                // an open transaction holds metadata locks until the connection is recycled.
                if let Ok(mut killer) = self.pool.get_conn().await {
                    let _ = killer.query_drop(format!("KILL QUERY {}", conn.id())).await;
                }
                if conn.query_drop("ROLLBACK").await.is_err() {
                    let _ = conn.disconnect().await;
                }
                Err(e)
            }
        }
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {}", qualified(table)))
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn count_rows_where(
        &self,
        table: &TableName,
        filter: &str,
    ) -> Result<(u64, u64), ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        // `(f) IS TRUE` counts a NULL condition as not met, as a WHERE does.
        let n: Option<(u64, u64)> = conn
            .query_first(format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM(({filter}) IS TRUE), 0) AS UNSIGNED) FROM {}",
                qualified(table)
            ))
            .await?;
        Ok(n.unwrap_or((0, 0)))
    }

    async fn scan_hazards(
        &self,
        table: &Table,
        range: &ChunkRange,
        checks: &[HazardCheck],
    ) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
        let mut conn = self.pool.get_conn().await?;
        hazards::scan(&mut conn, table, range, checks).await
    }
}

fn range_column(range: &ChunkRange) -> &str {
    match range {
        ChunkRange::IntKey { column, .. } => column,
        _ => "key",
    }
}

fn lossy(v: Option<&Value>) -> String {
    v.map(text_form).unwrap_or_default()
}

/// A streaming result of either protocol.
enum Rows<'a, 't> {
    Text(QueryResult<'a, 't, TextProtocol>),
    Binary(QueryResult<'a, 't, BinaryProtocol>),
}

impl Rows<'_, '_> {
    async fn next(&mut self) -> Result<Option<Row>, mysql_async::Error> {
        match self {
            Rows::Text(r) => r.next().await,
            Rows::Binary(r) => r.next().await,
        }
    }
}

async fn send(
    batch: &mut BatchBuilder,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let rb = batch
        .finish()
        .map_err(|e| ConnectorError::Internal(format!("building a batch: {e}")))?;
    let n = rb.num_rows() as u64;
    tx.send(rb)
        .await
        .map_err(|_| ConnectorError::ChannelClosed)?;
    Ok(n)
}
