//! The two traits every system implements: `Source` (introspect, chunk, read) and `Target`
//! (types, DDL, exactly-once chunk writes).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use decant_core::RejectLog;
use decant_core::hazard::HazardKind;
use decant_core::plan::Policies;
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, Dialect, ForeignKey, Index, LogicalType, Table, TableName,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::ConnectorError;

/// One column to read, with the logical type the source must produce for it.
#[derive(Debug, Clone)]
pub struct ReadColumn {
    pub name: String,
    pub native_type: String,
    pub logical: LogicalType,
}

/// What to read: some columns of one table, one chunk of it, in batches of `batch_rows`.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub table: TableName,
    pub columns: Vec<ReadColumn>,
    pub chunk: ChunkSpec,
    pub batch_rows: usize,
    /// The Arrow schema of the batches to send: one field per column, `logical.arrow_type()`.
    pub schema: SchemaRef,
    pub policies: Policies,
    /// Where the reader puts records it cannot turn into rows (files: malformed lines, values
    /// that do not parse). A database reader never rejects; it fails the chunk instead.
    pub rejects: RejectLog,
    /// A condition in the source's SQL that every row read must also meet: the part of the
    /// table's filter the source evaluates (`decant_transform::Pushdown`). SQL sources only.
    pub filter: Option<String>,
}

impl ReadRequest {
    /// Per requested column, whether a NUL byte in its text makes the record a reject
    /// (`Policies::reject_nul`), for readers with a quarantine.
    pub fn rejects_nul(&self) -> Vec<bool> {
        self.columns
            .iter()
            .map(|c| self.policies.reject_nul.contains(&c.name))
            .collect()
    }
}

/// What a hazard check compares a value against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "bound", rename_all = "snake_case")]
pub enum HazardBound {
    /// No bound: the kind says it all (zero dates, NUL bytes, NaN).
    None,
    /// More characters than this.
    MaxChars { chars: u64 },
    /// More bytes than this.
    MaxBytes { bytes: u64 },
    /// Dates or timestamps outside `[min, max]` (ISO dates), or not finite.
    DateRange { min: String, max: String },
    /// Numbers whose absolute value is at least `limit` (decimal text, e.g. `1e10`).
    AbsAtLeast { limit: String },
}

/// One check of one column, pushed down to the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardCheck {
    pub column: String,
    pub kind: HazardKind,
    pub bound: HazardBound,
}

/// What a check found: exact row count and up to five sample keys (or row positions).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HazardCount {
    pub rows: u64,
    pub sample_keys: Vec<String>,
}

/// A digest of some rows computed inside the database: their count and order-independent folds
/// of each row's hash. Equal digests from two sources of the same
/// [`Source::in_place_digest_family`] mean equal rows (up to a hash collision); unequal ones
/// only mean "look closer" — the caller then compares the rows themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InPlaceDigest {
    pub rows: u64,
    /// XOR of the rows' 64-bit hashes: a set digest, enough when no row can appear twice.
    pub xor: u64,
    /// The exact sum of the hashes, when rows may repeat (a XOR cancels a row present twice;
    /// a sum counts it twice); 0 when not asked for.
    pub sum: i128,
}

impl InPlaceDigest {
    pub fn merge(&mut self, other: &InPlaceDigest) {
        self.rows += other.rows;
        self.xor ^= other.xor;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// Buckets of equal width over an integer key: row `k` falls in bucket
/// `clamp((k - lo) / width, 0, count - 1)`, so rows outside `[lo, lo + width * count)` land in
/// the first or the last bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBuckets {
    pub column: String,
    pub lo: i64,
    pub width: i64,
    pub count: usize,
}

/// A source system: introspection, chunk planning and streaming reads.
#[async_trait]
pub trait Source: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// Tables (with columns, keys, indexes, foreign keys, checks, estimates) and views.
    /// `schemas` limits PostgreSQL to those schemas; empty means every non-system schema.
    async fn introspect(&self, schemas: &[String]) -> Result<Catalog, ConnectorError>;

    /// Splits a table into chunks of about `chunk_rows` rows with stable ids.
    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError>;

    /// The field whose highest value already in the target makes the next run incremental
    /// (an API table with `incremental`); `None`: every run reads every row.
    fn incremental_field(&self, table: &TableName) -> Option<String> {
        let _ = table;
        None
    }

    /// [`Source::plan_chunks`] for an incremental read: only rows changed after `watermark`
    /// (the highest [`Source::incremental_field`] value in the target, `None` when it holds no
    /// row). The watermark is part of the chunks, so a resumed job reads the same rows.
    async fn plan_chunks_since(
        &self,
        table: &Table,
        chunk_rows: u64,
        watermark: Option<String>,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let _ = watermark;
        self.plan_chunks(table, chunk_rows).await
    }

    /// Streams one chunk's rows as batches into `tx`, returning the number of rows sent.
    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError>;

    /// Exact row count of a table.
    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError>;

    /// Exact counts of a table's rows, all and those that meet `filter` (a condition in this
    /// source's SQL: a pushed-down filter, see [`ReadRequest::filter`]), in one scan. Only SQL
    /// sources can.
    async fn count_rows_where(
        &self,
        table: &TableName,
        filter: &str,
    ) -> Result<(u64, u64), ConnectorError> {
        let _ = filter;
        Err(ConnectorError::Config(format!(
            "{table}: this source evaluates no SQL condition"
        )))
    }

    /// Runs every check of one table (the rows of `range`) in a single aggregate scan on the
    /// source, returning one
    /// count per check, in order. Checks a system cannot express in SQL return `None`, so the
    /// caller knows they were not run (they are then caught during the load).
    async fn scan_hazards(
        &self,
        table: &Table,
        range: &ChunkRange,
        checks: &[HazardCheck],
    ) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
        let _ = (table, range);
        Ok(vec![None; checks.len()])
    }

    /// Names the hash function behind [`Source::digest_in_place`], or `None` when the source
    /// cannot digest rows in place. Only digests of the same family compare.
    fn in_place_digest_family(&self) -> Option<&'static str> {
        None
    }

    /// Digests the rows of `range` over `columns` inside the database, without sending them.
    /// `distinct` says no row can appear twice (a unique key holds on both sides), so the
    /// cheaper XOR suffices; otherwise the digest also sums the hashes. `None` when a column's
    /// type has no hash there that tells every two different values apart (the caller then
    /// reads the rows).
    async fn digest_in_place(
        &self,
        table: &TableName,
        range: &ChunkRange,
        columns: &[ReadColumn],
        distinct: bool,
    ) -> Result<Option<InPlaceDigest>, ConnectorError> {
        let _ = (table, range, columns, distinct);
        Ok(None)
    }

    /// [`Source::digest_in_place`] per bucket of `buckets`: one digest per bucket, in order, so
    /// a chunk whose digest differs is narrowed down to buckets without reading its rows.
    async fn digest_buckets_in_place(
        &self,
        table: &TableName,
        range: &ChunkRange,
        columns: &[ReadColumn],
        distinct: bool,
        buckets: &KeyBuckets,
    ) -> Result<Option<Vec<InPlaceDigest>>, ConnectorError> {
        let _ = (table, range, columns, distinct, buckets);
        Ok(None)
    }
}

/// A column as it will be created on the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetColumn {
    pub name: String,
    /// The native type used in DDL.
    pub native_type: String,
    /// The logical type of the values the writer receives (Arrow type: `logical.arrow_type()`).
    pub logical: LogicalType,
    pub nullable: bool,
    pub auto_increment: bool,
}

/// A table as it will be created on the target: names are target names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetTable {
    pub name: TableName,
    pub columns: Vec<TargetColumn>,
    pub primary_key: Vec<String>,
    pub unique_keys: Vec<Index>,
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// The statements that create a table, split by when they run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DdlSet {
    /// Before the data: schema and table (with the primary key inline where the system needs it).
    pub create: Vec<String>,
    /// After the data: primary key (where it was not inline), unique constraints, indexes.
    pub indexes: Vec<String>,
    /// After every table's data and indexes: foreign keys.
    pub foreign_keys: Vec<String>,
    /// After the data: identity / auto-increment positions set past the loaded maximum.
    pub sequences: Vec<String>,
    pub drop: String,
    pub truncate: String,
}

enum ChunkMessage {
    Batch(RecordBatch),
    End,
}

/// The sending half of one chunk's batch stream; see [`ChunkReceiver`].
pub struct ChunkSender {
    tx: mpsc::Sender<ChunkMessage>,
}

impl ChunkSender {
    /// Sends a batch, waiting while the channel is full (backpressure).
    pub async fn send(&self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.tx
            .send(ChunkMessage::Batch(batch))
            .await
            .map_err(|_| ConnectorError::ChannelClosed)
    }

    /// Marks the chunk complete: only now may the writer commit.
    pub async fn finish(self) -> Result<(), ConnectorError> {
        self.tx
            .send(ChunkMessage::End)
            .await
            .map_err(|_| ConnectorError::ChannelClosed)
    }
}

/// The receiving half of one chunk's batch stream. `recv` gives `Ok(None)` only after the
/// sender called [`ChunkSender::finish`]; a sender dropped without finishing (its source failed,
/// the job was cancelled) makes `recv` return an error. A writer therefore commits a chunk only
/// when every row of it has arrived — never a partial chunk.
pub struct ChunkReceiver {
    rx: mpsc::Receiver<ChunkMessage>,
    ended: bool,
}

impl ChunkReceiver {
    fn map(&mut self, msg: Option<ChunkMessage>) -> Result<Option<RecordBatch>, ConnectorError> {
        match msg {
            _ if self.ended => Ok(None),
            Some(ChunkMessage::Batch(b)) => Ok(Some(b)),
            Some(ChunkMessage::End) => {
                self.ended = true;
                Ok(None)
            }
            None => Err(ConnectorError::ChannelClosed),
        }
    }

    pub async fn recv(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        let msg = if self.ended {
            None
        } else {
            self.rx.recv().await
        };
        self.map(msg)
    }

    /// For writers running on a blocking thread (`spawn_blocking`).
    pub fn blocking_recv(&mut self) -> Result<Option<RecordBatch>, ConnectorError> {
        let msg = if self.ended {
            None
        } else {
            self.rx.blocking_recv()
        };
        self.map(msg)
    }
}

/// A bounded channel for one chunk's batches; `capacity` batches may wait in it.
pub fn chunk_channel(capacity: usize) -> (ChunkSender, ChunkReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChunkSender { tx }, ChunkReceiver { rx, ended: false })
}

/// A committed chunk, as recorded in the target's marker table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMarker {
    pub table: String,
    pub chunk_id: String,
    pub rows: u64,
}

/// A target system: type mapping, DDL, and chunk writes that commit rows and marker together.
#[async_trait]
pub trait Target: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// The schema tables go to when the plan names none (`public` on PostgreSQL).
    fn default_schema(&self) -> Option<String>;

    /// The native type this target creates for a logical type (its half of the mapping table).
    fn native_type(&self, logical: &LogicalType) -> Result<String, ConnectorError>;

    /// The logical type of one of this target's native types (for plan overrides).
    fn parse_native_type(&self, native: &str) -> Result<LogicalType, ConnectorError>;

    /// The DDL for a table; `primary_key_after_load` asks for the key after the data where the
    /// system can add it later.
    fn ddl(&self, table: &TargetTable, primary_key_after_load: bool) -> DdlSet;

    async fn table_exists(&self, table: &TableName) -> Result<bool, ConnectorError>;

    /// Runs statements in order.
    async fn execute(&self, statements: &[String]) -> Result<(), ConnectorError>;

    /// Creates the marker table if it does not exist.
    async fn prepare_markers(&self) -> Result<(), ConnectorError>;

    /// The chunks of `job` already committed.
    async fn committed_chunks(&self, job: &str) -> Result<Vec<ChunkMarker>, ConnectorError>;

    /// Forgets the markers of `job` (used by `--restart`).
    async fn delete_markers(&self, job: &str) -> Result<(), ConnectorError>;

    /// Writes every batch received on `rx` into `table` and records the marker
    /// (`job`, `table.name.to_string()`, `chunk_id`, rows) in the same transaction. Commits only
    /// when `rx.recv()` returned `Ok(None)` (the sender finished); on any error it rolls back, so
    /// neither rows nor marker stay. Returns rows written.
    async fn write_chunk(
        &self,
        job: &str,
        table: &TargetTable,
        chunk_id: &str,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError>;

    /// Exact row count of a table.
    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError>;

    /// The highest value of `column` in `table` as text (`None` for an empty table): an
    /// incremental source's watermark. Timestamps are ISO 8601 (`2024-05-01T10:00:00Z` with a
    /// time zone, without one otherwise; a fraction only when there is one). A target that
    /// cannot tell says so, and an incremental load into it fails before it reads anything.
    async fn max_value(
        &self,
        table: &TargetTable,
        column: &str,
    ) -> Result<Option<String>, ConnectorError> {
        Err(ConnectorError::Config(format!(
            "{}: a {} target cannot give the highest {column} for an incremental read; load it with if_exists = \"truncate\" or \"drop\"",
            table.name,
            self.dialect()
        )))
    }

    /// Runs statements in one transaction: all of them or none.
    async fn execute_atomically(&self, statements: &[String]) -> Result<(), ConnectorError>;

    /// Renames tables in one transaction, in order: each `(from, to)` gives `from` the bare
    /// name `to` in its own schema. Either every rename happens or none.
    async fn rename_tables(&self, renames: &[(TableName, String)]) -> Result<(), ConnectorError>;

    /// What would follow `table` to its new name if it were renamed — views that read it and
    /// foreign keys of other tables that reference it — described for the user. A swap refuses
    /// a table with any: after the rename they would point at the old rows.
    async fn dependents(&self, table: &TableName) -> Result<Vec<String>, ConnectorError>;

    /// The upsert capability, where the system has one.
    fn upsert(&self) -> Option<&dyn UpsertTarget> {
        None
    }
}

/// Drops a zero fraction of a timestamp's text (`...:00.000000Z` → `...:00Z`).
pub fn trim_zero_fraction(text: String) -> String {
    let (body, zone) = match text.strip_suffix('Z') {
        Some(b) => (b, "Z"),
        None => (text.as_str(), ""),
    };
    match body.rsplit_once('.') {
        Some((head, frac))
            if !frac.is_empty() && frac.bytes().all(|b| b == b'0') && head.contains(':') =>
        {
            format!("{head}{zone}")
        }
        _ => text,
    }
}

/// A target that can insert-or-update on a key, keeping the pre-image of every row it changes
/// in a side table of the same database, written in the chunk's own transaction.
#[async_trait]
pub trait UpsertTarget: Send + Sync {
    /// Statements that create the side table `side` for `table` (idempotent): the columns of
    /// `table.columns` as the target holds them, plus the operation (`u` pre-image of an
    /// updated row, `i` a row the job inserted) and an increasing sequence number.
    fn preimage_ddl(&self, table: &TargetTable, side: &TableName) -> Vec<String>;

    /// Like [`Target::write_chunk`], but rows whose `key` exists are updated instead of
    /// inserted. Before the rows change, the chunk records in `side` the old row of every key
    /// it updates and the key of every row it inserts — in the same transaction as the rows
    /// and the marker, so no change ever commits without its pre-image.
    async fn write_chunk_upsert(
        &self,
        job: &str,
        table: &TargetTable,
        key: &[String],
        side: &TableName,
        chunk_id: &str,
        rx: ChunkReceiver,
    ) -> Result<u64, ConnectorError>;

    /// Why an upsert of the live `table` on `key` would not match rows on `key` alone, one
    /// message per problem that names the index and says what to do (empty: it is safe). A
    /// target whose upsert names the key it matches on (`ON CONFLICT (key)`) has nothing to
    /// report; MySQL's `ON DUPLICATE KEY UPDATE` matches on every unique key of the table, so
    /// a row colliding on another unique index would overwrite a different row.
    async fn upsert_key_problems(
        &self,
        _table: &TableName,
        _key: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        Ok(vec![])
    }

    /// Statements (run with [`Target::execute_atomically`]) that undo every change recorded
    /// in `side`: restore each updated row to its earliest pre-image, then delete the rows the
    /// job inserted.
    fn undo_upsert_sql(&self, table: &TargetTable, key: &[String], side: &TableName)
    -> Vec<String>;
}
