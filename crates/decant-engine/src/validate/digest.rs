//! Digests: each row's canonical encoding hashed with xxh3-128, summed per bucket. A sum does not
//! depend on the order rows arrive in, and adds up over any split of a table into chunks.
//!
//! A chunk is read by its source task into a bounded channel and hashed on a blocking thread as
//! the batches arrive: memory holds a few batches per chunk, whatever the table's size.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use decant_connectors::batch::write_text;
use decant_connectors::{ConnectorError, ReadRequest, Source};
use decant_core::ChunkSpec;
use decant_core::canonical::{RowEncoder, row_hash};
use decant_core::plan::Policies;
use decant_transform::TableTransform;
use tokio::sync::mpsc;

use super::table::TableCheck;
use crate::convert::convert_batch;
use crate::progress::TableProgress;

/// Longest value text kept for a report; longer values are cut with `…`.
const DISPLAY_CHARS: usize = 1000;

/// Rows and the wrapping sum of their hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    pub rows: u64,
    pub sum: u128,
}

impl Digest {
    fn add(&mut self, hash: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    fn merge(&mut self, other: &Digest) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

/// How the rows of a unit are spread over its digest buckets. Both sides use the same
/// function of the key, so a row falls in the same bucket on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucketing {
    /// By the hash of the key (or, without a key, of the row): `buckets` is a power of two.
    Hash { buckets: usize },
    /// By the integer key's place in `[lo, lo + width * buckets)`; keys outside fall in the
    /// first or the last bucket. A differing bucket is then a key range to re-read, not the
    /// whole unit.
    Range {
        lo: i128,
        width: i128,
        buckets: usize,
    },
}

impl Bucketing {
    pub fn len(&self) -> usize {
        match self {
            Bucketing::Hash { buckets } | Bucketing::Range { buckets, .. } => (*buckets).max(1),
        }
    }

    fn bucket(&self, key: Option<i128>, hash: u64) -> usize {
        match *self {
            Bucketing::Hash { buckets } => (hash & (buckets.max(1) as u64 - 1)) as usize,
            Bucketing::Range { lo, width, buckets } => match key {
                Some(k) => (k - lo)
                    .div_euclid(width.max(1))
                    .clamp(0, buckets.max(1) as i128 - 1) as usize,
                None => 0,
            },
        }
    }

    /// The key range `[lo, hi)` of buckets `first..=last` within a chunk bounded by
    /// `chunk_lo`, `chunk_hi` (`None`: unbounded).
    pub fn key_range(
        &self,
        first: usize,
        last: usize,
        chunk_lo: Option<i64>,
        chunk_hi: Option<i64>,
    ) -> (Option<i64>, Option<i64>) {
        let Bucketing::Range { lo, width, buckets } = *self else {
            return (chunk_lo, chunk_hi);
        };
        let at = |b: usize| i64::try_from(lo + width * b as i128).ok();
        let from = if first == 0 { chunk_lo } else { at(first) };
        let to = if last + 1 >= buckets {
            chunk_hi
        } else {
            at(last + 1)
        };
        // A bound past i64 is no bound at all: the range reaches the chunk's edge.
        (
            from.or(chunk_lo).max(chunk_lo),
            match (to, chunk_hi) {
                (Some(t), Some(h)) => Some(t.min(h)),
                (t, h) => t.or(h),
            },
        )
    }
}

/// The digests of one side of a unit, by bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Buckets(Vec<Digest>);

impl Buckets {
    pub fn new(n: usize) -> Buckets {
        Buckets(vec![Digest::default(); n.max(1)])
    }

    /// A side of a unit proven equal to the other without reading it: `rows` rows, and digests
    /// that compare equal to those of the other side settled alike.
    pub fn settled(n: usize, rows: u64) -> Buckets {
        let mut b = Buckets::new(n);
        b.0[0].rows = rows;
        b
    }

    /// Buckets from per-bucket digests computed in a database: equal exactly when the two
    /// sides' in-place digests (same family) are equal, bucket by bucket.
    pub fn from_in_place(digests: &[decant_connectors::InPlaceDigest]) -> Buckets {
        Buckets(
            digests
                .iter()
                .map(|d| Digest {
                    rows: d.rows,
                    sum: (d.sum as u128) ^ (u128::from(d.xor) << 64),
                })
                .collect(),
        )
    }

    fn add(&mut self, bucket: usize, hash: u128) {
        self.0[bucket].add(hash);
    }

    pub fn merge(&mut self, other: &Buckets) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.merge(b);
        }
    }

    pub fn rows(&self) -> u64 {
        self.0.iter().map(|d| d.rows).sum()
    }

    /// Buckets that differ, with the larger of their two row counts.
    pub fn differing(&self, other: &Buckets) -> Vec<(usize, u64)> {
        self.0
            .iter()
            .zip(&other.0)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, a.rows.max(b.rows)))
            .collect()
    }
}

/// Which rows a re-read keeps: those in `buckets`, and of those, the `part`-th of `parts`
/// slices (a bucket too big for memory is re-read in slices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub buckets: Vec<bool>,
    pub parts: u64,
    pub part: u64,
}

impl Filter {
    fn wants(&self, bucket: usize, hash: u64) -> bool {
        self.buckets[bucket] && (hash >> 32).wrapping_mul(0x9e37_79b9) % self.parts == self.part
    }
}

/// A row kept for the diff: its key, hash, per-column canonical bytes and display values.
#[derive(Debug, Clone)]
pub(crate) struct KeptRow {
    /// The canonical bytes of the key columns (the whole row hash for a table without a key).
    pub key: Vec<u8>,
    pub hash: u128,
    /// Canonical bytes of every column, in encoding order (`TableCheck::order`).
    pub encoded: Vec<u8>,
    /// Where each column starts in `encoded`, plus the end.
    pub offsets: Vec<u32>,
    /// Display text per column in schema order (`None` is NULL).
    pub display: Vec<Option<String>>,
}

impl KeptRow {
    /// Canonical bytes of the column at encoding position `pos`.
    pub fn value(&self, pos: usize) -> &[u8] {
        &self.encoded[self.offsets[pos] as usize..self.offsets[pos + 1] as usize]
    }
}

/// What a scan produces.
pub(crate) enum Sink {
    Digest(Buckets),
    Collect(Filter, Vec<KeptRow>),
}

/// Which side a read is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    /// The database read failed.
    #[error(transparent)]
    Read(#[from] ConnectorError),
    /// A source value could not be converted to the target's type.
    #[error("{0}")]
    Convert(String),
    /// The plan's transforms failed on a source row (a rule with action "fail", an expression
    /// that cannot be evaluated).
    #[error("{0}")]
    Transform(String),
    /// The hashing thread failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ScanError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, ScanError::Read(e) if e.is_retriable())
    }
}

/// One side of one chunk to read.
pub(crate) struct ScanJob {
    pub reader: Arc<dyn Source>,
    pub side: Side,
    pub check: Arc<TableCheck>,
    pub chunk: ChunkSpec,
    pub batch_rows: usize,
    pub policies: Policies,
    pub bucketing: Bucketing,
    /// Counts rows as they are hashed, when given.
    pub progress: Option<Arc<TableProgress>>,
    /// The table's transforms, run on source batches before they are converted (source side
    /// only; `None` on the target side and for tables without transforms).
    pub transform: Option<Arc<TableTransform>>,
}

/// What a scan produced, and the source rows its transforms left out.
pub(crate) struct Scanned {
    pub sink: Sink,
    /// Rows the `where` filter left out.
    pub filtered: u64,
    /// Rows a row rule rejected: `decant run` quarantined them.
    pub rejected: u64,
}

/// Reads one chunk of one side and feeds every row to `sink`.
pub(crate) async fn scan(job: ScanJob, mut sink: Sink) -> Result<Scanned, ScanError> {
    let ScanJob {
        reader,
        side,
        check,
        chunk,
        batch_rows,
        policies,
        bucketing,
        progress,
        transform,
    } = job;
    // A chunk attempt of its own, as in the run: a failed attempt forgets the keys its
    // `unique` rules took, so that a retry does not reject its own rows.
    let mut transform = match side {
        Side::Source => transform.map(|t| t.begin_chunk(&chunk.id)),
        Side::Target => None,
    };
    let (table, columns, schema) = match side {
        Side::Source => (
            check.source.clone(),
            check.source_read.clone(),
            check.source_schema.clone(),
        ),
        Side::Target => (
            check.target.clone(),
            check.target_read.clone(),
            check.schema.clone(),
        ),
    };
    let range = chunk.range.describe();
    let request = ReadRequest {
        table,
        columns,
        chunk,
        batch_rows,
        schema,
        policies,
        rejects: Default::default(),
        filter: None,
    };
    let (tx, mut rx) = mpsc::channel::<RecordBatch>(2);
    let reading = tokio::spawn(async move { reader.read_chunk(&request, tx).await });
    let source_table = check.source.to_string();
    let hashing = tokio::task::spawn_blocking(move || {
        let mut state = RowState::default();
        let (mut filtered, mut rejected) = (0u64, 0u64);
        while let Some(batch) = rx.blocking_recv() {
            // The values the run's hazard policies rewrote in the engine, rewritten alike
            // before the transforms, as the run does.
            let batch = match side {
                Side::Source if !check.source_checks.is_empty() => {
                    let mut changed = crate::policy::LocalCounts::new();
                    crate::policy::apply(&batch, &check.source_checks, &mut changed).map_err(
                        |(col, e)| {
                            let name = batch
                                .schema()
                                .fields()
                                .get(col)
                                .map_or_else(String::new, |f| f.name().clone());
                            ScanError::Convert(format!(
                                "{}.{name} ({range}): a hazard policy cannot be applied: {e}",
                                check.source
                            ))
                        },
                    )?
                }
                _ => batch,
            };
            let batch = match transform.as_mut() {
                Some(run) => {
                    let applied = run.apply(&batch).map_err(|e| {
                        ScanError::Transform(
                            crate::transform_run::chunk_error(&source_table, range.clone(), e)
                                .to_string(),
                        )
                    })?;
                    filtered += applied.filtered;
                    rejected += applied.rejects.len() as u64;
                    applied.batch
                }
                None => batch,
            };
            let batch = match side {
                Side::Source => convert_batch(&relabel_timestamps(batch, &check.schema), &check.schema).map_err(|(col, e)| {
                    let name = check.schema.fields().get(col).map_or("", |f| f.name());
                    ScanError::Convert(format!(
                        "{}.{name} ({range}): a source value cannot be converted to the target's type: {e}",
                        check.source
                    ))
                })?,
                Side::Target => batch,
            };
            state.visit(&check, bucketing, &batch, &mut sink);
            if let Some(p) = &progress {
                p.rows_done
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
        }
        let scanned = Scanned {
            sink,
            filtered,
            rejected,
        };
        Ok::<_, ScanError>((scanned, transform))
    });
    let (read, hashed) = tokio::join!(reading, hashing);
    let read = read.map_err(|e| ScanError::Internal(e.to_string()))?;
    let hashed = hashed.map_err(|e| ScanError::Internal(e.to_string()))?;
    // The cause, not its echo: a failed hasher makes the reader see a closed channel.
    match (read, hashed) {
        (Ok(_), Ok((scanned, transform))) => {
            if let Some(run) = transform {
                run.commit();
            }
            Ok(scanned)
        }
        (Err(ConnectorError::ChannelClosed), Err(e)) | (Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(e.into()),
    }
}

/// Buffers reused from row to row.
#[derive(Default)]
pub(crate) struct RowState {
    buf: Vec<u8>,
    offsets: Vec<u32>,
}

impl RowState {
    fn visit(&mut self, check: &TableCheck, by: Bucketing, batch: &RecordBatch, sink: &mut Sink) {
        self.visit_rows(&check.kinds, &check.order, check.key_len, by, batch, sink);
    }

    /// Hashes every row of `batch`: `kinds` per column, columns in `order`, the first `key_len`
    /// of them the key.
    pub(crate) fn visit_rows(
        &mut self,
        kinds: &[decant_core::canonical::Canonical],
        order: &[usize],
        key_len: usize,
        by: Bucketing,
        batch: &RecordBatch,
        sink: &mut Sink,
    ) {
        let encoder = RowEncoder::new(batch.columns(), kinds);
        let range_key = match by {
            Bucketing::Range { .. } => order.first().map(|&k| batch.column(k).as_ref()),
            Bucketing::Hash { .. } => None,
        };
        for row in 0..batch.num_rows() {
            self.buf.clear();
            self.offsets.clear();
            for &col in order {
                self.offsets.push(self.buf.len() as u32);
                encoder.encode(col, row, &mut self.buf);
            }
            self.offsets.push(self.buf.len() as u32);
            let hash = row_hash(&self.buf);
            let key_end = self.offsets[key_len] as usize;
            let key_hash = if key_len > 0 {
                xxhash_rust::xxh3::xxh3_64(&self.buf[..key_end])
            } else {
                (hash >> 64) as u64
            };
            let bucket = by.bucket(range_key.and_then(|a| int_at(a, row)), key_hash);
            match sink {
                Sink::Digest(buckets) => buckets.add(bucket, hash),
                Sink::Collect(filter, rows) => {
                    if !filter.wants(bucket, key_hash) {
                        continue;
                    }
                    let key = if key_len > 0 {
                        self.buf[..key_end].to_vec()
                    } else {
                        hash.to_le_bytes().to_vec()
                    };
                    rows.push(KeptRow {
                        key,
                        hash,
                        encoded: self.buf.clone(),
                        offsets: self.offsets.clone(),
                        display: batch
                            .columns()
                            .iter()
                            .map(|a| display_value(a.as_ref(), row))
                            .collect(),
                    });
                }
            }
        }
    }
}

/// Gives naive timestamps the zone of the target's column and the other way round, keeping the
/// values: a naive timestamp compared with an instant is taken as UTC, as Decant's sessions run
/// in UTC. (Arrow's cast would need a time-zone database for that.)
fn relabel_timestamps(batch: RecordBatch, schema: &arrow_schema::SchemaRef) -> RecordBatch {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use arrow_schema::TimeUnit;
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (col, field) in columns.iter_mut().zip(schema.fields()) {
        if let (
            DataType::Timestamp(TimeUnit::Microsecond, from),
            DataType::Timestamp(TimeUnit::Microsecond, to),
        ) = (col.data_type(), field.data_type())
            && from.is_some() != to.is_some()
        {
            let relabeled = col
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone_opt(to.clone());
            *col = std::sync::Arc::new(relabeled);
            changed = true;
        }
    }
    if !changed {
        return batch;
    }
    let fields: Vec<arrow_schema::FieldRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| std::sync::Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone())))
        .collect();
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
    RecordBatch::try_new(schema, columns).unwrap_or(batch)
}

/// An integer key's value, for range bucketing.
fn int_at(array: &dyn Array, row: usize) -> Option<i128> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        _ => return None,
    })
}

/// True for the Arrow types range bucketing can read a key from.
pub(crate) fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// A value as a person reads it: the text forms Decant writes, `\x…` hex for bytes.
pub(crate) fn display_value(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    let mut out = String::new();
    match array.data_type() {
        DataType::Binary => {
            use arrow_array::cast::AsArray;
            out.push_str("\\x");
            for b in array.as_binary::<i32>().value(row) {
                out.push_str(&format!("{b:02x}"));
            }
        }
        _ => {
            write_text(array, row, &mut out);
        }
    }
    if out.chars().count() > DISPLAY_CHARS {
        out = out.chars().take(DISPLAY_CHARS).collect::<String>() + "…";
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_sums_ignore_order_and_add_up_over_splits() {
        let rows: Vec<(usize, u128)> = (0..100u64)
            .map(|i| ((i % 8) as usize, i as u128 * 31))
            .collect();
        let mut forward = Buckets::new(8);
        rows.iter().for_each(|(b, h)| forward.add(*b, *h));
        let (mut left, mut right) = (Buckets::new(8), Buckets::new(8));
        rows.iter().rev().enumerate().for_each(|(i, (b, h))| {
            if i % 3 == 0 {
                left.add(*b, *h)
            } else {
                right.add(*b, *h)
            }
        });
        left.merge(&right);
        assert_eq!(forward, left);
        assert_eq!(forward.rows(), 100);
        let mut changed = forward.clone();
        changed.add(5, 1);
        assert_eq!(forward.differing(&changed), vec![(5, 13)]);
    }

    #[test]
    fn a_duplicate_row_changes_the_digest() {
        let (mut once, mut twice) = (Buckets::new(1), Buckets::new(1));
        once.add(0, 42);
        twice.add(0, 42);
        twice.add(0, 42);
        assert_ne!(
            once, twice,
            "a sum counts duplicates, where a xor would cancel them"
        );
    }

    #[test]
    fn filter_slices_partition_a_bucket() {
        let hashes: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut seen = 0;
        for part in 0..3 {
            let f = Filter {
                buckets: vec![true, false],
                parts: 3,
                part,
            };
            seen += hashes.iter().filter(|h| f.wants(0, **h)).count();
        }
        assert_eq!(seen, hashes.len());
    }

    #[test]
    fn range_buckets_map_back_to_key_ranges() {
        let by = Bucketing::Range {
            lo: 100,
            width: 10,
            buckets: 5,
        };
        let b = |k: i128| by.bucket(Some(k), 0);
        assert_eq!(
            (b(-7), b(100), b(109), b(110), b(149), b(10_000)),
            (0, 0, 0, 1, 4, 4)
        );
        // The first chunk is open below, the last open above: their edge buckets are too.
        assert_eq!(by.key_range(0, 0, None, Some(150)), (None, Some(110)));
        assert_eq!(by.key_range(1, 2, None, Some(150)), (Some(110), Some(130)));
        assert_eq!(by.key_range(4, 4, Some(100), None), (Some(140), None));
        assert_eq!(
            by.key_range(0, 4, Some(100), Some(150)),
            (Some(100), Some(150))
        );
        let hashed = Bucketing::Hash { buckets: 8 };
        assert_eq!(hashed.bucket(Some(3), 0xff), 7);
        assert_eq!(hashed.key_range(2, 3, Some(1), None), (Some(1), None));
    }
}
