//! Reads PostgreSQL tables with binary `COPY (SELECT ...) TO STDOUT`, every reader inside one
//! exported snapshot so a live source migrates as of one instant.

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use decant_core::hazard::{HazardKind, ValuePolicy};
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, ConnectionUrl, Dialect, LogicalType, Table, TableName,
    quote_ident,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::codec::{Decoder, decode_value};
use super::types::read_expression;
use super::{connect, qualified};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::traits::{InPlaceDigest, KeyBuckets, ReadColumn, ReadRequest, Source};

/// A PostgreSQL source. Holds the transaction whose snapshot every reader imports.
pub struct PostgresSource {
    url: String,
    /// The connection that exported the snapshot; it stays open, idle in its transaction.
    holder: Client,
    snapshot: String,
    /// `server_version_num`: in-place digests need 14 or later.
    version: i32,
    /// Readers in the snapshot that ran a digest query and are free for the next one: a chunk's
    /// digest is a few dozen milliseconds of work, a new backend a few more on top.
    idle_digesters: std::sync::Mutex<Vec<Client>>,
}

impl PostgresSource {
    pub async fn connect(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let holder = connect(url.expose()).await?;
        holder
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let snapshot: String = holder
            .query_one("SELECT pg_export_snapshot()", &[])
            .await?
            .get(0);
        let version: String = holder
            .query_one("SELECT current_setting('server_version_num')", &[])
            .await?
            .get(0);
        Ok(PostgresSource {
            url: url.expose().to_string(),
            holder,
            snapshot,
            version: version.parse().unwrap_or(0),
            idle_digesters: Default::default(),
        })
    }

    /// Runs an in-place digest (see `digest.rs`) in the shared snapshot: one digest per bucket
    /// (one in all without buckets), or `None` when the server or a column type cannot.
    async fn digest_query(
        &self,
        table: &TableName,
        range: &ChunkRange,
        columns: &[ReadColumn],
        distinct: bool,
        buckets: Option<&KeyBuckets>,
    ) -> Result<Option<Vec<InPlaceDigest>>, ConnectorError> {
        if self.in_place_digest_family().is_none() {
            return Ok(None);
        }
        let Some(sql) =
            super::digest::digest_query(&qualified(table), range, columns, distinct, buckets)
        else {
            return Ok(None);
        };
        let idle = self.idle_digesters.lock().ok().and_then(|mut v| v.pop());
        let client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => {
                let c = self.reader().await?;
                // The planner cannot tell that a chunk's rows fall into a few hundred
                // buckets; it expects a group per row and sorts the whole chunk, spilling
                // its rows to disk, where hashing them into the buckets needs a few kB.
                // Validation already runs `parallelism` chunks on each side at once: parallel
                // workers per query would only add a process start each and crowd the cores.
                c.batch_execute(
                    "SET LOCAL enable_sort = off; SET LOCAL max_parallel_workers_per_gather = 0",
                )
                .await?;
                c
            }
        };
        let mut out = vec![InPlaceDigest::default(); buckets.map_or(1, |b| b.count.max(1))];
        // A failed query leaves its transaction aborted: that reader is dropped, not reused.
        for row in client.query(&sql, &[]).await? {
            let (bucket, digest) =
                super::digest::digest_from_row(&row).map_err(ConnectorError::Internal)?;
            let last = out.len() - 1;
            out[bucket.min(last)].merge(&digest);
        }
        if let Ok(mut idle) = self.idle_digesters.lock() {
            idle.push(client);
        }
        Ok(Some(out))
    }

    /// The id of the exported snapshot all readers share.
    pub fn snapshot_id(&self) -> &str {
        &self.snapshot
    }

    async fn reader(&self) -> Result<Client, ConnectorError> {
        let client = connect(&self.url).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                self.snapshot.replace('\'', "''")
            ))
            .await?;
        Ok(client)
    }
}

fn decoder_for(logical: &LogicalType) -> Decoder {
    use LogicalType::*;
    match logical {
        Bool => Decoder::Bool,
        Int16 => Decoder::Int16,
        Int32 => Decoder::Int32,
        Int64 => Decoder::Int64,
        Float32 => Decoder::Float32,
        Float64 => Decoder::Float64,
        Decimal { .. } => Decoder::Numeric,
        BigDecimal => Decoder::NumericText,
        Binary { .. } => Decoder::Bytea,
        Date => Decoder::Date,
        Time { .. } => Decoder::Time,
        Timestamp { .. } | TimestampTz { .. } => Decoder::Timestamp,
        Uuid => Decoder::Uuid,
        Interval => Decoder::Interval,
        _ => Decoder::Text,
    }
}

/// The WHERE clause of a chunk.
pub(super) fn chunk_predicate(range: &ChunkRange) -> String {
    crate::chunking::range_predicate(Dialect::Postgres, range).unwrap_or_else(|| "true".into())
}

#[async_trait]
impl Source for PostgresSource {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn introspect(&self, schemas: &[String]) -> Result<Catalog, ConnectorError> {
        super::introspect::introspect(&self.holder, schemas).await
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let qname = qualified(&table.name);
        let int_key = match table.primary_key.as_slice() {
            [k] => table
                .column(k)
                .filter(|c| {
                    matches!(
                        c.logical,
                        Some(LogicalType::Int16 | LogicalType::Int32 | LogicalType::Int64)
                    )
                })
                .map(|c| c.name.clone()),
            _ => None,
        };
        let chunk_rows = chunk_rows.max(1);
        if let Some(key) = int_key {
            let k = quote_ident(Dialect::Postgres, &key);
            // The bounds come from the key's index; the row count, which only sizes the
            // chunks, from the planner's statistics when they are fresh (fewer rows changed
            // since the last ANALYZE than a tenth of the table), else from counting, which
            // reads the whole table.
            let row = self
                .holder
                .query_one(
                    &format!(
                        "SELECT min({k})::int8, max({k})::int8, \
                                (SELECT CASE WHEN c.reltuples > 0 \
                                              AND coalesce(s.n_mod_since_analyze, 0) <= c.reltuples / 10 \
                                         THEN c.reltuples::int8 END \
                                 FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
                                 WHERE c.oid = $1::text::regclass) \
                         FROM {qname}"
                    ),
                    &[&qname],
                )
                .await?;
            let (min, max, estimate): (Option<i64>, Option<i64>, Option<i64>) =
                (row.get(0), row.get(1), row.get(2));
            let count = match estimate {
                Some(n) => n,
                None => self
                    .holder
                    .query_one(&format!("SELECT count(*)::int8 FROM {qname}"), &[])
                    .await?
                    .get(0),
            };
            let (Some(min), Some(max)) = (min, max) else {
                return Ok(vec![ChunkSpec {
                    id: "whole".into(),
                    range: ChunkRange::Whole,
                    estimated_rows: 0,
                }]);
            };
            return Ok(crate::chunking::int_key_chunks(
                &key,
                min,
                max,
                count as u64,
                chunk_rows,
            ));
        }
        // No integer key: split on physical pages, read by ctid (TID range scans).
        let row = self
            .holder
            .query_one(
                "SELECT greatest(relpages, 1)::int8, greatest(reltuples, 0)::float8, \
                        (pg_relation_size(oid) / current_setting('block_size')::int8)::int8 \
                 FROM pg_class WHERE oid = $1::text::regclass",
                &[&qname],
            )
            .await?;
        let (relpages, reltuples, pages): (i64, f64, i64) = (row.get(0), row.get(1), row.get(2));
        let rows_per_page = (reltuples / relpages as f64).max(1.0);
        let pages_per_chunk = ((chunk_rows as f64 / rows_per_page).ceil() as u64).max(1);
        let pages = pages.max(1) as u64;
        let mut out = Vec::new();
        let mut lo = 0u64;
        while lo < pages {
            let hi = lo + pages_per_chunk;
            let range = ChunkRange::CtidPages {
                lo,
                hi: (hi < pages).then_some(hi),
            };
            out.push(ChunkSpec {
                id: format!("p{lo}"),
                range,
                estimated_rows: (pages_per_chunk as f64 * rows_per_page) as u64,
            });
            lo = hi;
        }
        Ok(out)
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let client = self.reader().await?;
        let select: Vec<String> = request
            .columns
            .iter()
            .map(|c| {
                read_expression(
                    &c.native_type,
                    &c.logical,
                    &quote_ident(Dialect::Postgres, &c.name),
                )
            })
            .collect();
        let sql = format!(
            "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT binary)",
            select.join(", "),
            qualified(&request.table),
            crate::chunking::read_condition(
                Dialect::Postgres,
                &request.chunk.range,
                request.filter.as_deref()
            )
            .unwrap_or_else(|| "true".into())
        );
        let decoders: Vec<Decoder> = request
            .columns
            .iter()
            .map(|c| decoder_for(&c.logical))
            .collect();
        let keep_infinity: Vec<bool> = request
            .columns
            .iter()
            .map(|c| {
                request.policies.for_column(&c.name, HazardKind::OutOfRange) != ValuePolicy::Fail
            })
            .collect();
        let stream = client.copy_out(&sql).await?;
        futures::pin_mut!(stream);
        let mut builder = BatchBuilder::new(request.schema.clone(), request.batch_rows)
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        let mut pending = BytesMut::new();
        let mut header_seen = false;
        let mut rows = 0u64;
        let value_error = |col: usize, message: String| ConnectorError::Value {
            table: request.table.to_string(),
            column: request.columns[col].name.clone(),
            range: request.chunk.range.describe(),
            message,
        };
        while let Some(chunk) = stream.next().await {
            pending.extend_from_slice(&chunk?);
            if !header_seen {
                if pending.len() < 19 {
                    continue;
                }
                let ext = u32::from_be_bytes(pending[15..19].try_into().expect("4 bytes")) as usize;
                if pending.len() < 19 + ext {
                    continue;
                }
                pending.advance(19 + ext);
                header_seen = true;
            }
            loop {
                match parse_row(&pending, &decoders, &keep_infinity, &mut builder) {
                    RowParse::Incomplete => break,
                    RowParse::Trailer => {
                        pending.clear();
                        break;
                    }
                    RowParse::Row(len) => {
                        pending.advance(len);
                        builder.end_row();
                        rows += 1;
                        if builder.is_full() {
                            let batch = builder
                                .finish()
                                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
                            tx.send(batch)
                                .await
                                .map_err(|_| ConnectorError::ChannelClosed)?;
                        }
                    }
                    RowParse::Error(col, message) => return Err(value_error(col, message)),
                }
            }
        }
        if !builder.is_empty() {
            let batch = builder
                .finish()
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
            tx.send(batch)
                .await
                .map_err(|_| ConnectorError::ChannelClosed)?;
        }
        client.batch_execute("COMMIT").await?;
        Ok(rows)
    }

    async fn scan_hazards(
        &self,
        table: &Table,
        range: &ChunkRange,
        checks: &[crate::traits::HazardCheck],
    ) -> Result<Vec<Option<crate::traits::HazardCount>>, ConnectorError> {
        // Its own connection in the run's snapshot, so that scans of several ranges run in parallel.
        let client = self.reader().await?;
        let counts = super::hazards::scan(&client, table, range, checks).await?;
        client.batch_execute("COMMIT").await?;
        Ok(counts)
    }

    fn in_place_digest_family(&self) -> Option<&'static str> {
        (self.version >= super::digest::MIN_VERSION).then_some("postgres-extended-hashes")
    }

    async fn digest_in_place(
        &self,
        table: &TableName,
        range: &ChunkRange,
        columns: &[ReadColumn],
        distinct: bool,
    ) -> Result<Option<InPlaceDigest>, ConnectorError> {
        Ok(self
            .digest_query(table, range, columns, distinct, None)
            .await?
            .map(|d| d[0]))
    }

    async fn digest_buckets_in_place(
        &self,
        table: &TableName,
        range: &ChunkRange,
        columns: &[ReadColumn],
        distinct: bool,
        buckets: &KeyBuckets,
    ) -> Result<Option<Vec<InPlaceDigest>>, ConnectorError> {
        self.digest_query(table, range, columns, distinct, Some(buckets))
            .await
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let row = self
            .holder
            .query_one(
                &format!("SELECT count(*)::int8 FROM {}", qualified(table)),
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn count_rows_where(
        &self,
        table: &TableName,
        filter: &str,
    ) -> Result<(u64, u64), ConnectorError> {
        let row = self
            .holder
            .query_one(
                &format!(
                    "SELECT count(*)::int8, (count(*) FILTER (WHERE {filter}))::int8 FROM {}",
                    qualified(table)
                ),
                &[],
            )
            .await?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }
}

enum RowParse {
    Incomplete,
    Trailer,
    /// A row of this many bytes was decoded into the builder.
    Row(usize),
    Error(usize, String),
}

/// Decodes the next row of `buf` if it is complete. The row's length is checked before any
/// value is appended, so a partial row never leaves a builder half-filled.
fn parse_row(
    buf: &[u8],
    decoders: &[Decoder],
    keep_infinity: &[bool],
    builder: &mut BatchBuilder,
) -> RowParse {
    if buf.len() < 2 {
        return RowParse::Incomplete;
    }
    let nfields = i16::from_be_bytes([buf[0], buf[1]]);
    if nfields == -1 {
        return RowParse::Trailer;
    }
    if nfields as usize != decoders.len() {
        return RowParse::Error(
            0,
            format!("row has {nfields} fields, expected {}", decoders.len()),
        );
    }
    let mut pos = 2;
    for _ in 0..nfields {
        if buf.len() < pos + 4 {
            return RowParse::Incomplete;
        }
        let len = i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4 + len.max(0) as usize;
    }
    if buf.len() < pos {
        return RowParse::Incomplete;
    }
    let mut pos = 2;
    let columns = builder.columns_mut();
    for (i, dec) in decoders.iter().enumerate() {
        let len = i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4;
        if len < 0 {
            columns[i].append_null();
            continue;
        }
        let v = &buf[pos..pos + len as usize];
        pos += len as usize;
        if let Err(e) = decode_value(*dec, v, &mut columns[i], keep_infinity[i]) {
            return RowParse::Error(i, e);
        }
    }
    RowParse::Row(pos)
}
