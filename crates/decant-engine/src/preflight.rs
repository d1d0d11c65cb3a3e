//! Preflight: every hazard of a plan — counted on the source with one aggregate scan per table —
//! and the per-table facts, before the target is touched.

use std::collections::BTreeSet;

use decant_connectors::{HazardCount, Source};
use decant_core::hazard::{HazardKind, ScanMode, ValuePolicy};
use decant_core::{Catalog, LogicalType};
use serde::Serialize;

use crate::error::EngineError;
use crate::planner::{JobPlan, TableJob};

/// One data hazard found on the source.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    pub kind: HazardKind,
    /// Exact number of rows with the hazard.
    pub rows: u64,
    /// Up to five primary keys (or row positions when the table has no key) of such rows.
    pub sample_keys: Vec<String>,
    /// The plan key that resolves it.
    pub resolve: String,
    /// The policy the plan gives it now (`fail` unless the plan says otherwise).
    pub policy: ValuePolicy,
}

/// Per-table facts: how it will be chunked and resumed, what its mapping loses.
#[derive(Debug, Clone, Serialize)]
pub struct TableFacts {
    pub table: String,
    pub target: String,
    pub row_estimate: u64,
    pub size_bytes: u64,
    /// `primary key (id)`, or a statement that there is none and what that means.
    pub key: String,
    pub chunking: String,
    pub lossy_mappings: Vec<String>,
    pub generated_columns: Vec<String>,
    pub auto_increment: Vec<String>,
    /// Checks the source could not run in SQL: their hazards are caught during the load.
    pub unchecked: Vec<String>,
    pub notes: Vec<String>,
}

/// The whole preflight report (`decant preflight --json`).
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub scan: ScanMode,
    pub findings: Vec<Finding>,
    pub tables: Vec<TableFacts>,
    /// Schema hazards: views, foreign-key cycles, identifiers.
    pub schema: Vec<String>,
    /// Predicted duration and peak memory of `decant run`.
    pub estimate: crate::estimate::JobEstimate,
}

impl PreflightReport {
    /// Findings with rows and no policy: the run refuses to start while there are any.
    pub fn blocking(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.rows > 0 && f.policy == ValuePolicy::Fail)
            .collect()
    }
}

fn lossy(t: &TableJob) -> Vec<String> {
    use LogicalType as L;
    let mut out = Vec::new();
    for (s, c) in t.source_columns.iter().zip(&t.target.columns) {
        let what = match (&s.logical, &c.logical) {
            (a, b) if a == b => continue,
            (L::TimestampTz { .. }, L::Timestamp { .. }) => {
                "the time zone (values are stored in UTC)".to_string()
            }
            (L::Time { precision: a }, L::Time { precision: b })
            | (L::Timestamp { precision: a }, L::Timestamp { precision: b })
            | (L::TimestampTz { precision: a }, L::TimestampTz { precision: b })
                if b < a =>
            {
                format!("fractional seconds beyond {b} digits")
            }
            (L::Enum { .. } | L::Set { .. }, b)
                if b.is_textual() && !matches!(b, L::Enum { .. }) =>
            {
                "the list of allowed values (stored as text)".into()
            }
            (a, b) if !a.is_textual() && b.is_textual() => {
                format!("the type {} (values are kept as text)", s.native_type)
            }
            (L::Float64, L::Float32) => "float precision (double to single)".into(),
            (L::Json, _) => "JSON validation (stored as text)".into(),
            _ => continue,
        };
        out.push(format!(
            "{} {} → {}: loses {what}",
            s.name, s.native_type, c.native_type
        ));
    }
    out
}

fn facts(t: &TableJob, chunking: String, unchecked: Vec<String>, catalog: &Catalog) -> TableFacts {
    let source = catalog.table(&t.source);
    let key = match source.map(|s| s.primary_key.clone()).unwrap_or_default() {
        k if !k.is_empty() => format!("primary key ({})", k.join(", ")),
        _ => match source.and_then(|s| s.unique_keys.first()) {
            Some(u) => format!("no primary key; unique key {} ({})", u.name, u.columns.join(", ")),
            None => "no primary or unique key: rows cannot be told apart; chunks are fixed when the job starts \
                     and resume by chunk, so a resumed run loads each row once"
                .into(),
        },
    };
    TableFacts {
        table: t.source.to_string(),
        target: t.target.name.to_string(),
        row_estimate: t.row_estimate,
        size_bytes: t.size_bytes,
        key,
        chunking,
        lossy_mappings: lossy(t),
        generated_columns: source
            .map(|s| {
                s.columns
                    .iter()
                    .filter(|c| c.generated)
                    .map(|c| format!("{} (copied as data)", c.name))
                    .collect()
            })
            .unwrap_or_default(),
        auto_increment: source
            .map(|s| {
                s.columns
                    .iter()
                    .filter(|c| c.auto_increment)
                    .map(|c| match s.next_auto_increment {
                        Some(n) => format!(
                            "{} (next value {n}; set past the loaded maximum on the target)",
                            c.name
                        ),
                        None => format!("{} (set past the loaded maximum on the target)", c.name),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        unchecked,
        notes: t.notes.clone(),
    }
}

/// Adds up the counts of each range (ranges in key order, so the first five sample keys overall
/// are the first five of the concatenation).
fn merge_counts(parts: Vec<Vec<Option<HazardCount>>>, n: usize) -> Vec<Option<HazardCount>> {
    let mut out: Vec<Option<HazardCount>> = vec![None; n];
    for part in parts {
        for (slot, count) in out.iter_mut().zip(part) {
            let Some(count) = count else { continue };
            let merged = slot.get_or_insert_with(HazardCount::default);
            merged.rows += count.rows;
            merged.sample_keys.extend(count.sample_keys);
            merged.sample_keys.truncate(5);
        }
    }
    out
}

/// Scans the source for every planned check — each table's key ranges side by side,
/// `parallelism` of them — and gathers the facts.
pub async fn preflight(
    job: &JobPlan,
    catalog: &Catalog,
    source: &dyn Source,
    scan: ScanMode,
    load: &decant_core::plan::LoadConfig,
) -> Result<PreflightReport, EngineError> {
    let parallelism = load.parallelism.max(1);
    let mut findings = Vec::new();
    let mut tables = Vec::new();
    let mut planned_chunks = Vec::new();
    let mut scan_secs = 0f64;
    for t in &job.tables {
        let table = catalog.table(&t.source).ok_or_else(|| {
            EngineError::Internal(format!("{} vanished from the catalog", t.source))
        })?;
        let chunks = source.plan_chunks(table, t.chunk_rows).await?;
        let chunking = match chunks.first().map(|c| &c.range) {
            Some(decant_core::ChunkRange::IntKey { column, .. }) => {
                format!("{} chunks on key {column}", chunks.len())
            }
            Some(decant_core::ChunkRange::CtidPages { .. }) => {
                format!("{} chunks of physical pages (ctid)", chunks.len())
            }
            Some(decant_core::ChunkRange::HttpPages { .. }) => {
                format!("{} chunks of API pages", chunks.len())
            }
            _ => "one chunk (no integer key to split on)".into(),
        };
        let mut unchecked = Vec::new();
        let scan_started = std::time::Instant::now();
        if scan == ScanMode::Full && !t.checks.is_empty() {
            let checks: Vec<_> = t.checks.iter().map(|c| c.check.clone()).collect();
            // The table's key ranges, scanned side by side: one aggregate query per range.
            let ranges = decant_connectors::chunking::merge_ranges(&chunks, parallelism);
            let parts = futures::future::try_join_all(
                ranges
                    .iter()
                    .map(|r| source.scan_hazards(table, r, &checks)),
            )
            .await?;
            let counts = merge_counts(parts, checks.len());
            for (planned, count) in t.checks.iter().zip(counts) {
                match count {
                    Some(c) if c.rows > 0 => findings.push(Finding {
                        table: t.source.to_string(),
                        column: planned.check.column.clone(),
                        kind: planned.check.kind,
                        rows: c.rows,
                        sample_keys: c.sample_keys,
                        resolve: planned.resolve.clone(),
                        policy: planned.policy,
                    }),
                    Some(_) => {}
                    None => {
                        unchecked.push(format!("{} {}", planned.check.column, planned.check.kind))
                    }
                }
            }
        }
        scan_secs += scan_started.elapsed().as_secs_f64();
        tables.push(facts(t, chunking, unchecked, catalog));
        let rows = chunks
            .iter()
            .map(|c| c.estimated_rows)
            .sum::<u64>()
            .max(t.row_estimate);
        planned_chunks.push((table, chunks, rows));
    }
    // A short timed read of the largest tables' first chunk calibrates the estimate.
    let sizes: Vec<u64> = job.tables.iter().map(|t| t.size_bytes).collect();
    let sampled = crate::estimate::tables_to_sample(&sizes);
    let mut rates = vec![None; job.tables.len()];
    for i in sampled {
        if let Some(first) = planned_chunks[i].1.first() {
            rates[i] = crate::estimate::sample_read(
                source,
                &job.tables[i],
                first,
                load.max_memory_bytes()?,
            )
            .await;
        }
    }
    let inputs: Vec<(&crate::planner::TableJob, &decant_core::Table, u64)> = job
        .tables
        .iter()
        .zip(&planned_chunks)
        .map(|(t, (table, _, rows))| (t, *table, *rows))
        .collect();
    let max_memory = load.max_memory_bytes()?;
    let estimate = crate::estimate::estimate(
        &inputs,
        &rates,
        parallelism,
        load.batch_rows,
        max_memory,
        scan_secs,
    );
    let mut schema: Vec<String> = job
        .views_not_migrated
        .iter()
        .map(|v| format!("view {v} is not migrated"))
        .collect();
    schema.extend(job.warnings.iter().cloned());
    let migrated: BTreeSet<String> = job.tables.iter().map(|t| t.source.to_string()).collect();
    schema.extend(
        catalog
            .triggers
            .iter()
            .filter(|t| migrated.contains(&t.table.to_string()))
            .map(|t| format!("trigger {} on {} is not carried", t.name, t.table)),
    );
    let names: BTreeSet<String> = job
        .tables
        .iter()
        .map(|t| t.target.name.name.to_lowercase())
        .collect();
    if names.len() < job.tables.len() {
        schema.push("two tables have names that differ only in case".into());
    }
    Ok(PreflightReport {
        scan,
        findings,
        tables,
        schema,
        estimate,
    })
}
