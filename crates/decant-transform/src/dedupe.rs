//! Deduplication by key: one row per key loads, the first or the last by the table's primary
//! key on the source. Which row that is cannot depend on which chunk runs first, so the runner
//! scans the table once before loading it ([`DedupeScan`]) and every chunk then keeps exactly
//! the row the scan chose; the others go to the quarantine as duplicates.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use datafusion::arrow::compute::filter_record_batch;
use decant_core::transform::{Dedupe, Keep};

use crate::error::TransformError;
use crate::table::{StepCounts, TableTransform, key_hash, text};

/// One primary key value, ordered as the source orders it: integers as numbers, the rest as
/// text (byte order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ordinal {
    Int(i64),
    Text(String),
}

/// Default cap on distinct keys.
const MAX_KEYS: u64 = 2_000_000;

pub(crate) struct CompiledDedupe {
    spec: Dedupe,
    /// The key columns, in the stage batch.
    key: Vec<usize>,
    /// The primary key columns, in the stage batch, with their target names; true = integer.
    order: Vec<(usize, String, bool)>,
    pub(crate) step: usize,
    /// Per key hash, the primary key of the row that loads (set by the scan; shared with
    /// other compilations of the table by [`TableTransform::share_decisions`]).
    pub(crate) winners: Arc<OnceLock<HashMap<u128, Vec<Ordinal>>>>,
}

fn is_int(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

impl CompiledDedupe {
    /// `key_columns` are the stage indices of the unmasked primary key (empty when there is
    /// none or it is masked: then first and last mean nothing).
    pub(crate) fn compile(
        spec: &Dedupe,
        stage: &arrow_schema::Schema,
        key_columns: &[usize],
        target_names: &[String],
        step: usize,
    ) -> Result<CompiledDedupe, String> {
        if spec.key.is_empty() {
            return Err("dedupe needs at least one key column".into());
        }
        if key_columns.is_empty() {
            return Err(
                "dedupe needs an (unmasked) primary key on the source: first and last are by primary key order"
                    .into(),
            );
        }
        let key = spec
            .key
            .iter()
            .map(|c| {
                stage
                    .index_of(c)
                    .map_err(|_| format!("dedupe: no column `{c}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let order = key_columns
            .iter()
            .map(|i| {
                (
                    *i,
                    target_names[*i].clone(),
                    is_int(stage.field(*i).data_type()),
                )
            })
            .collect();
        Ok(CompiledDedupe {
            spec: spec.clone(),
            key,
            order,
            step,
            winners: Arc::default(),
        })
    }

    fn ordinal(&self, stage: &RecordBatch, row: usize) -> Vec<Ordinal> {
        self.order
            .iter()
            .map(|(c, _, int)| {
                let v = text(stage.column(*c).as_ref(), row).unwrap_or_default();
                match v.parse::<i64>() {
                    Ok(i) if *int => Ordinal::Int(i),
                    _ => Ordinal::Text(v),
                }
            })
            .collect()
    }

    fn describe(&self, ord: &[Ordinal]) -> String {
        self.order
            .iter()
            .zip(ord)
            .map(|((_, name, _), v)| match v {
                Ordinal::Int(i) => format!("{name}={i}"),
                Ordinal::Text(t) => format!("{name}={t}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Marks every row that is not its key's chosen row as rejected (rows already rejected
    /// are left as they are).
    pub(crate) fn check(
        &self,
        stage: &RecordBatch,
        rejected: &mut [Option<(String, String)>],
        counts: &mut [StepCounts],
    ) -> Result<(), TransformError> {
        let winners = self.winners.get().ok_or_else(|| {
            TransformError::Eval("dedupe: the table was not scanned for its duplicates".into())
        })?;
        let c = &mut counts[self.step];
        c.seen += stage.num_rows() as u64;
        for (row, r) in rejected.iter_mut().enumerate() {
            if r.is_some() {
                continue;
            }
            let Some(k) = key_hash(stage, &self.key, row) else {
                continue;
            };
            let mine = self.ordinal(stage, row);
            match winners.get(&k) {
                Some(w) if *w == mine => {}
                // A row the scan did not see (it changed since) also keeps out of the way.
                w => {
                    c.rejected += 1;
                    let kept = w.map_or_else(
                        || "a row the scan saw".to_string(),
                        |w| format!("the row at {}", self.describe(w)),
                    );
                    *r = Some((
                        format!("dedupe({})", self.spec.key.join(", ")),
                        format!(
                            "duplicate of key ({}): keep = {}, so {kept} loads instead",
                            self.spec.key.join(", "),
                            match self.spec.keep {
                                Keep::First => "first",
                                Keep::Last => "last",
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The scan that chooses, per key, the row that loads. Feed it every batch of the table (in
/// any order: the choice is by primary key, not by arrival), then [`DedupeScan::finish`].
pub struct DedupeScan {
    transform: Arc<TableTransform>,
    winners: HashMap<u128, Vec<Ordinal>>,
}

impl DedupeScan {
    pub fn new(transform: Arc<TableTransform>) -> DedupeScan {
        DedupeScan {
            transform,
            winners: HashMap::new(),
        }
    }

    /// Takes the keys of a batch of the source schema (after the columns and the filter: a
    /// filtered row never wins).
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<(), TransformError> {
        let t = &self.transform;
        let Some(d) = t.dedupe.as_ref() else {
            return Ok(());
        };
        let mut stage = t.columns(batch, None)?;
        if let Some(keep) = t.filter_mask(&stage)? {
            stage = filter_record_batch(&stage, &keep)
                .map_err(|e| TransformError::Eval(e.to_string()))?;
        }
        let cap = d.spec.max_keys.unwrap_or(MAX_KEYS);
        for row in 0..stage.num_rows() {
            let Some(k) = key_hash(&stage, &d.key, row) else {
                continue;
            };
            let mine = d.ordinal(&stage, row);
            match self.winners.get_mut(&k) {
                Some(w) => {
                    let better = match d.spec.keep {
                        Keep::First => mine < *w,
                        Keep::Last => mine > *w,
                    };
                    if better {
                        *w = mine;
                    }
                }
                None => {
                    if self.winners.len() as u64 >= cap {
                        return Err(TransformError::Eval(format!(
                            "dedupe: more than max_keys = {cap} distinct keys; raise max_keys (about 80 bytes of memory per key)"
                        )));
                    }
                    self.winners.insert(k, mine);
                }
            }
        }
        Ok(())
    }

    /// Hands the choice to the table's chunks.
    pub fn finish(self) {
        if let Some(d) = self.transform.dedupe.as_ref() {
            let _ = d.winners.set(self.winners);
        }
    }
}
