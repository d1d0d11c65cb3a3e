//! The runner's side of transforms: per table, the compiled transforms, the reject limits and
//! the counts of every step, merged as chunks commit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use decant_connectors::ConnectorError;
use decant_transform::{StepCounts, TableTransform, TransformError};
use serde::Serialize;

/// One transform step's counts for a table, as the summary shows them.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    /// `expr`, `value`, `where`, `mask:hmac`, `rule:not_null`, …
    pub kind: String,
    /// The column, the filter's text, or the rule's name.
    pub name: String,
    pub seen: u64,
    pub changed: u64,
    pub rejected: u64,
    pub warned: u64,
}

/// A table's transforms and limits, shared by its chunks.
pub struct TableTransforms {
    pub compiled: Option<std::sync::Arc<TableTransform>>,
    /// Records this table quarantined, committed or reserved by a chunk about to commit.
    pub rejected: AtomicU64,
    /// Records read from the source for this table, same accounting.
    pub seen: AtomicU64,
    pub max_rejects: Option<u64>,
    pub max_reject_ratio: Option<f64>,
    /// The part of the filter the source evaluates, in its SQL (direct runs only).
    pub pushed: Option<String>,
    counts: Mutex<Vec<StepCounts>>,
}

impl TableTransforms {
    pub fn new(
        compiled: Option<std::sync::Arc<TableTransform>>,
        rejected: u64,
        seen: u64,
        max_rejects: Option<u64>,
        max_reject_ratio: Option<f64>,
    ) -> TableTransforms {
        let steps = compiled.as_ref().map_or(0, |c| c.steps().len());
        TableTransforms {
            compiled,
            rejected: AtomicU64::new(rejected),
            seen: AtomicU64::new(seen),
            max_rejects,
            max_reject_ratio,
            pushed: None,
            counts: Mutex::new(vec![StepCounts::default(); steps]),
        }
    }

    /// Adds a committed chunk's counts.
    pub fn merge(&self, counts: &[StepCounts]) {
        let mut all = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (a, c) in all.iter_mut().zip(counts) {
            a.seen += c.seen;
            a.changed += c.changed;
            a.rejected += c.rejected;
            a.warned += c.warned;
        }
    }

    /// The counts of this run's committed chunks, per step.
    pub fn summary(&self) -> Vec<StepSummary> {
        let Some(c) = &self.compiled else {
            return vec![];
        };
        let all = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.steps()
            .iter()
            .zip(all.iter())
            .map(|(s, n)| StepSummary {
                kind: s.kind.clone(),
                name: s.name.clone(),
                seen: n.seen,
                changed: n.changed,
                rejected: n.rejected,
                warned: n.warned,
            })
            .collect()
    }
}

/// A transform failure as a chunk error: the table, the column or rule, and why.
pub fn chunk_error(table: &str, range: String, e: TransformError) -> ConnectorError {
    match e {
        TransformError::RuleFailed {
            rule,
            location,
            reason,
        } => ConnectorError::Value {
            table: table.to_string(),
            column: format!("rule `{rule}`"),
            range,
            message: format!(
                "{reason} at {location}; the rule's action is \"fail\", so the job stops before this chunk commits"
            ),
        },
        other => ConnectorError::Value {
            table: table.to_string(),
            column: "(transform)".into(),
            range,
            message: other.to_string(),
        },
    }
}

/// Shares of counters taken by a chunk before it commits and given back if the attempt fails,
/// so that chunks committing at the same time cannot together pass a limit.
#[derive(Default)]
pub struct Reservation<'a> {
    taken: Vec<(&'a AtomicU64, u64)>,
}

impl<'a> Reservation<'a> {
    /// Adds `n` to `counter` and returns the new total.
    pub fn add(&mut self, counter: &'a AtomicU64, n: u64) -> u64 {
        self.taken.push((counter, n));
        counter.fetch_add(n, Ordering::SeqCst) + n
    }

    /// The chunk committed: what it took stays counted.
    pub fn keep(mut self) {
        self.taken.clear();
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for (c, n) in self.taken.drain(..) {
            c.fetch_sub(n, Ordering::SeqCst);
        }
    }
}

/// Checks a ratio limit: `rejected / seen` must not pass `limit`.
pub fn check_ratio(
    what: &str,
    rejected: u64,
    seen: u64,
    limit: Option<f64>,
) -> Result<(), ConnectorError> {
    match limit {
        Some(limit) if seen > 0 && rejected as f64 / seen as f64 > limit => {
            Err(ConnectorError::Config(format!(
                "{rejected} of {seen} records rejected ({:.2} %), more than {what} = {limit}; `decant rejects` lists them: \
             fix the data or the rules, or raise the limit, and run again to resume",
                100.0 * rejected as f64 / seen as f64
            )))
        }
        _ => Ok(()),
    }
}
