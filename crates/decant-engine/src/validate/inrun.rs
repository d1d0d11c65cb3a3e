//! Digests computed while `decant run` loads: each chunk's rows are hashed as they stream to the
//! target, in the encoding and buckets the validation uses, so that `validate.mode = "checksum"`
//! compares them with the target's without reading the source a second time.
//!
//! A recorded digest is used only where the validation plans the same unit (chunk id, key range
//! and buckets) over the same encoding (column types, canonical kinds, key); a chunk loaded by an
//! earlier, interrupted process has none and is read from the source as usual.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use decant_core::canonical::Canonical;
use decant_core::{ChunkRange, ChunkSpec};

use super::digest::{Bucketing, Buckets, RowState, Sink, is_integer};
use super::table::{TableCheck, chunk_bucketing, chunk_step, copied_source, key_candidates};
use crate::planner::TableJob;

/// How a table's rows are hashed: equal layouts hash equal rows alike.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    types: Vec<DataType>,
    kinds: Vec<Canonical>,
    order: Vec<usize>,
    key_len: usize,
}

impl Layout {
    /// The layout the validation compares `check` in.
    pub(crate) fn of(check: &TableCheck) -> Layout {
        Layout {
            types: check
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            kinds: check.kinds.clone(),
            order: check.order.clone(),
            key_len: check.key_len,
        }
    }

    /// The layout of `job`'s rows as the runner sends them to a target table it created, or
    /// `None` when the table has no single integer key (its units are not the run's chunks).
    fn planned(job: &TableJob) -> Option<Layout> {
        let schema = job.target_schema();
        let names: Vec<&str> = job.target.columns.iter().map(|c| c.name.as_str()).collect();
        let key: Vec<usize> = key_candidates(job).find_map(|k| {
            k.iter()
                .map(|n| names.iter().position(|c| c == n))
                .collect::<Option<Vec<usize>>>()
        })?;
        let [k] = key.as_slice() else { return None };
        if !is_integer(schema.field(*k).data_type()) {
            return None;
        }
        let mut order = key.clone();
        order.extend((0..names.len()).filter(|i| !key.contains(i)));
        // Hinted as `table::resolve` hints them: a column a transform computes or masks by its
        // own type only.
        let kinds = schema
            .fields()
            .iter()
            .zip(&job.target.columns)
            .enumerate()
            .map(|(i, (f, t))| {
                Canonical::for_column(f.data_type(), &[Some(&t.logical), copied_source(job, i)])
                    .ok()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Layout {
            types: schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            kinds,
            order,
            key_len: 1,
        })
    }
}

/// One loaded chunk's digest.
struct Recorded {
    range: ChunkRange,
    bucketing: Bucketing,
    buckets: Buckets,
    left_out: LeftOut,
}

/// Source rows of a chunk that the plan's transforms kept off the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LeftOut {
    /// Left out by the `where` filter.
    pub filtered: u64,
    /// Rejected by a row rule, into the quarantine.
    pub rejected: u64,
}

#[derive(Default)]
struct TableDigests {
    /// `None`: the table's rows are not hashed during the run.
    layout: Option<Arc<Layout>>,
    step: Option<i128>,
    chunks: HashMap<String, Recorded>,
    /// Source rows the filter pushed into the run's chunk queries kept from being read: no
    /// chunk's digest saw them, so no chunk counted them as filtered.
    filtered_at_source: u64,
}

/// The digests of the chunks this process loaded, by target table and chunk id.
#[derive(Default)]
pub struct InRunDigests {
    tables: Mutex<HashMap<String, TableDigests>>,
}

impl InRunDigests {
    /// Prepares `job`'s table, whose chunks are `chunks`; call once per table before its chunks
    /// load.
    pub fn add_table(&self, job: &TableJob, chunks: &[ChunkSpec]) {
        let digests = TableDigests {
            layout: Layout::planned(job).map(Arc::new),
            step: chunk_step(chunks),
            chunks: HashMap::new(),
            filtered_at_source: 0,
        };
        self.lock().insert(job.target.name.to_string(), digests);
    }

    /// A hasher for one chunk of `job`, or `None` when its table is not hashed during the run.
    pub fn hasher(&self, job: &TableJob, chunk: &ChunkSpec) -> Option<ChunkHasher> {
        let tables = self.lock();
        let table = tables.get(&job.target.name.to_string())?;
        let layout = table.layout.clone()?;
        let bucketing = chunk_bucketing(&chunk.range, table.step, chunk.estimated_rows);
        Some(ChunkHasher {
            table: job.target.name.to_string(),
            chunk: chunk.clone(),
            layout,
            bucketing,
            buckets: Buckets::new(bucketing.len()),
            state: RowState::default(),
            left_out: LeftOut::default(),
        })
    }

    /// Keeps the digest of a chunk that committed.
    pub fn record(&self, hasher: ChunkHasher) {
        if let Some(t) = self.lock().get_mut(&hasher.table) {
            t.chunks.insert(
                hasher.chunk.id,
                Recorded {
                    range: hasher.chunk.range,
                    bucketing: hasher.bucketing,
                    buckets: hasher.buckets,
                    left_out: hasher.left_out,
                },
            );
        }
    }

    /// Records that the filter pushed into the source's queries left `rows` of `table`'s
    /// source rows unread (the run's count proof counts them).
    pub fn set_filtered_at_source(&self, table: &str, rows: u64) {
        if let Some(t) = self.lock().get_mut(table) {
            t.filtered_at_source = rows;
        }
    }

    /// The rows of `table` that the pushed filter left unread, as the run counted them.
    pub(crate) fn filtered_at_source(&self, table: &str) -> u64 {
        self.lock().get(table).map_or(0, |t| t.filtered_at_source)
    }

    /// The recorded source digest of the unit `chunk` of `table`, when it was hashed in the
    /// layout `layout` over the same range and buckets, and the rows its transforms left out.
    pub(crate) fn take(
        &self,
        table: &str,
        layout: &Layout,
        chunk: &ChunkSpec,
        bucketing: Bucketing,
    ) -> Option<(Buckets, LeftOut)> {
        let mut tables = self.lock();
        let t = tables.get_mut(table)?;
        if t.layout.as_deref() != Some(layout) {
            return None;
        }
        let recorded = t.chunks.remove(&chunk.id)?;
        (recorded.range == chunk.range && recorded.bucketing == bucketing)
            .then_some((recorded.buckets, recorded.left_out))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TableDigests>> {
        // A panic elsewhere cannot leave the map half-written: each change is one insert.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hashes one chunk's rows as the runner sends them to the target.
pub struct ChunkHasher {
    table: String,
    chunk: ChunkSpec,
    layout: Arc<Layout>,
    bucketing: Bucketing,
    buckets: Buckets,
    state: RowState,
    left_out: LeftOut,
}

impl ChunkHasher {
    /// Counts the chunk's source rows that its transforms kept off the target: the filter's
    /// and the rules' (reported by the validation as not expected on the target).
    pub fn left_out(&mut self, filtered: u64, rejected: u64) {
        self.left_out = LeftOut { filtered, rejected };
    }

    /// Adds a batch in the target's schema (`TableJob::target_schema`).
    pub fn add(&mut self, batch: &RecordBatch) {
        let mut sink = Sink::Digest(std::mem::replace(&mut self.buckets, Buckets::new(0)));
        self.state.visit_rows(
            &self.layout.kinds,
            &self.layout.order,
            self.layout.key_len,
            self.bucketing,
            batch,
            &mut sink,
        );
        if let Sink::Digest(b) = sink {
            self.buckets = b;
        }
    }
}
