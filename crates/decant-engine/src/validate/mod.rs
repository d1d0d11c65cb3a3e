//! Validation: proves that the target holds what the source holds, and finds every row where it
//! does not. Both sides are read through the `Source` trait, source batches converted to the
//! target's types as `run` converts them, every value hashed in its canonical encoding
//! (`decant_core::canonical`), digests compared per unit, and differing units narrowed down to
//! rows. Then rules are checked on the target. See docs/validation.md.

mod compare;
mod diff;
mod digest;
pub mod html;
mod inrun;
mod record;
mod replay;
mod report;
mod rules;
mod sql;
mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use decant_connectors::{connect_source, connect_source_with, connect_target_with};
use decant_core::plan::Plan;

pub use inrun::{ChunkHasher, InRunDigests};
pub use report::{
    ColumnDiff, DiffKind, Difference, Outcome, RuleKind, RuleResult, RuleStatus, TableReport,
    ValidationReport,
};

use self::compare::{Ctx, compare_digests, count_tables, narrow};
use self::digest::Buckets;
use self::table::TableCheck;
use crate::error::EngineError;
use crate::planner::{TableJob, build_plan};
use crate::progress::{Progress, TableProgress};

/// How a validation runs, beyond the plan.
#[derive(Clone)]
pub struct ValidateOptions {
    /// Record the outcome in this control store (`None`: record nothing).
    pub state_path: Option<PathBuf>,
    /// Compare row counts only, no digests.
    pub counts_only: bool,
    /// Overrides the plan's `validate.float_tolerance`.
    pub float_tolerance: Option<f64>,
    /// Differences listed per table at most; past it the report says it is truncated.
    pub max_differences: usize,
    /// Rows held in memory at most while narrowing differences down (all tasks together).
    pub max_rows_in_memory: usize,
    /// Check integrity and business rules on the target.
    pub check_rules: bool,
    pub progress: Arc<Progress>,
    /// Source digests `decant run` recorded as it loaded (`validate.mode = "checksum"`).
    pub recorded: Option<Arc<InRunDigests>>,
    /// `(table, loaded into)`: tables whose rows are compared in another target table (a
    /// swap's shadow, before it replaces the live table).
    pub loaded_into: Vec<(decant_core::TableName, decant_core::TableName)>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            state_path: None,
            counts_only: false,
            float_tolerance: None,
            max_differences: 1000,
            max_rows_in_memory: 400_000,
            check_rules: true,
            progress: Arc::new(Progress::default()),
            recorded: None,
            loaded_into: Vec::new(),
        }
    }
}

/// What is known about one table while it is compared.
struct TableState {
    job: TableJob,
    check: Option<Arc<TableCheck>>,
    error: Option<String>,
    /// Per unit: the source's and the target's digests.
    digests: Vec<(Buckets, Buckets)>,
    differences: Vec<Difference>,
    truncated: bool,
    tolerated: u64,
    counts: Option<(u64, u64)>,
    chunks_differing: usize,
    /// Units proven equal by digests computed in the databases, without reading their rows.
    in_place_units: usize,
    /// Differing units narrowed down to buckets by digests computed in the databases.
    in_place_narrowed: usize,
    /// Units whose source digest was recorded as `decant run` loaded them.
    from_run_units: usize,
    /// Source rows the plan's `where` filter left out, in the units read here.
    filtered: u64,
    /// Source rows the plan's row rules rejected (the run quarantined them), same units.
    rejected: u64,
    /// When the table's first read started and its last ended: its wall time.
    span: Option<(Instant, Instant)>,
    progress: Arc<TableProgress>,
}

impl TableState {
    fn worked(&mut self, started: Instant) {
        let now = Instant::now();
        self.span = Some(match self.span {
            Some((a, b)) => (a.min(started), b.max(now)),
            None => (started, now),
        });
    }
}

/// Validates every table of `plan`: counts, digests, row-level differences, then rules.
/// `Err` only when nothing can be compared (a plan or connection error); a table that cannot
/// be compared is reported with its error and the outcome `error`.
pub async fn validate_plan(
    plan: &Plan,
    opts: &ValidateOptions,
) -> Result<ValidationReport, EngineError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let result = validate_inner(plan, opts, started).await;
    if let Some(path) = &opts.state_path {
        let recorded = match &result {
            Ok(report) => record::record(path, plan, report, &started_at).await,
            Err(e) => record::record_failure(path, plan, e, &started_at).await,
        };
        if let Err(e) = recorded {
            // The comparison stands on its own; a store that refuses it must not hide it.
            tracing::warn!(error = %e, "cannot record the validation in the control store");
        }
    }
    result.map(|mut r| {
        r.started_at = started_at;
        r
    })
}

async fn validate_inner(
    plan: &Plan,
    opts: &ValidateOptions,
    started: Instant,
) -> Result<ValidationReport, EngineError> {
    let tolerance = opts
        .float_tolerance
        .unwrap_or(plan.validate.float_tolerance);
    if !tolerance.is_finite() || tolerance < 0.0 {
        return Err(EngineError::Plan(vec![format!(
            "the float tolerance must be a number >= 0, not {tolerance}"
        )]));
    }
    let progress = opts.progress.clone();
    progress.set_phase("introspecting");
    let source_url = plan.source_url()?;
    let target_url = plan.target_url()?;
    if target_url.dialect() == decant_core::Dialect::File {
        return Err(EngineError::Plan(vec![
            "decant validate compares databases; a file target is checked by decant run, which counts the rows in the written files against the source and the chunk markers".into(),
        ]));
    }
    let (source, target, target_writer) = tokio::try_join!(
        connect_source_with(&source_url, Some(&plan.source)),
        connect_source(&target_url),
        connect_target_with(&target_url, plan.target.file.as_ref())
    )?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let mut job_plan = build_plan(plan, &catalog, source.dialect(), target_writer.as_ref())?;
    // `reference` rules look up tables on the target as the run did: unqualified names in
    // the plan's target schema, else the target's default.
    let mut lookups = crate::reference::ReferenceLoader::new(
        plan,
        source.clone(),
        plan.target
            .schema
            .clone()
            .or(target_writer.default_schema()),
    );
    drop(target_writer);
    for job in &mut job_plan.tables {
        if let Some((_, loaded)) = opts.loaded_into.iter().find(|(t, _)| *t == job.target.name) {
            job.target.name = loaded.clone();
        }
    }
    let mut target_schemas: Vec<String> = job_plan
        .tables
        .iter()
        .filter_map(|t| t.target.name.schema.clone())
        .collect();
    target_schemas.sort();
    target_schemas.dedup();
    let target_catalog = target.introspect(&target_schemas).await?;

    let mut tables = Vec::new();
    for job in &job_plan.tables {
        let resolved = match catalog.tables.iter().find(|t| t.name == job.source) {
            Some(st) => {
                table::resolve(
                    job,
                    st,
                    &target_catalog,
                    source.as_ref(),
                    target.as_ref(),
                    opts.recorded.is_some(),
                )
                .await
            }
            None => Err(format!("{} vanished from the source's catalog", job.source)),
        };
        let resolved = match resolved {
            Ok(c) => replay::prepare(job, &c, source.clone(), &mut lookups, plan, &progress)
                .await
                .map(|()| c),
            Err(e) => Err(e),
        };
        let (check, error) = match resolved {
            Ok(c) => (Some(Arc::new(c)), None),
            Err(e) => (None, Some(e)),
        };
        let (units, rows) = check.as_ref().map_or((0, 0), |c| {
            let chunks: usize = c
                .units
                .iter()
                .map(|u| u.source_chunks.len() + u.target_chunks.len())
                .sum();
            (chunks, job.row_estimate * 2)
        });
        tables.push(TableState {
            digests: check.as_ref().map_or_else(Vec::new, |c| {
                c.units
                    .iter()
                    .map(|u| {
                        (
                            Buckets::new(u.bucketing.len()),
                            Buckets::new(u.bucketing.len()),
                        )
                    })
                    .collect()
            }),
            progress: progress.add_table(&job.target.name.to_string(), rows, units as u64),
            job: job.clone(),
            check,
            error,
            differences: vec![],
            truncated: false,
            tolerated: 0,
            counts: None,
            chunks_differing: 0,
            in_place_units: 0,
            in_place_narrowed: 0,
            from_run_units: 0,
            filtered: 0,
            rejected: 0,
            span: None,
        });
    }

    let ctx = Ctx {
        source: source.clone(),
        target: target.clone(),
        plan,
        parallelism: plan.load.parallelism.max(1),
        batch_rows: plan.load.batch_rows.max(1),
        recorded: opts.recorded.clone(),
    };
    if opts.counts_only {
        progress.set_phase("counting rows");
        count_tables(&ctx, &mut tables).await;
    } else {
        progress.set_phase("comparing digests");
        compare_digests(&ctx, &mut tables).await;
        progress.set_phase("narrowing differences");
        narrow(&ctx, opts, tolerance, &mut tables).await;
    }

    let mut rule_results = Vec::new();
    if opts.check_rules {
        progress.set_phase("checking rules");
        let mut specs = Vec::new();
        for t in &tables {
            if let Some(actual) = t
                .check
                .as_ref()
                .and_then(|c| table::find_table(&target_catalog, &c.target))
            {
                specs.extend(rules::integrity_rules(
                    target.dialect(),
                    &t.job.target,
                    actual,
                    &target_catalog,
                ));
            }
        }
        specs.extend(rules::business_rules(&plan.validate.rules));
        if !specs.is_empty() {
            rule_results = rules::run_rules(&target_url, specs).await;
        }
    }
    progress.set_phase("done");

    let mut warnings = job_plan.warnings.clone();
    if !job_plan.views_not_migrated.is_empty() {
        warnings.push(format!(
            "views are not compared: {}",
            job_plan.views_not_migrated.join(", ")
        ));
    }
    let mut report = ValidationReport {
        job_name: plan.job_name().to_string(),
        source: source_url.to_string(),
        target: target_url.to_string(),
        mode: if opts.counts_only {
            "count"
        } else {
            "checksum"
        }
        .into(),
        float_tolerance: tolerance,
        started_at: String::new(),
        duration_secs: 0.0,
        outcome: Outcome::Match,
        tables: tables.into_iter().map(|t| table_report(t, opts)).collect(),
        rules: rule_results,
        warnings,
    };
    report.outcome = report.compute_outcome();
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn table_report(t: TableState, opts: &ValidateOptions) -> TableReport {
    let mut notes = t.job.notes.clone();
    let mut differences = t.differences;
    diff::sort_differences(&mut differences);
    let mut truncated = t.truncated;
    if differences.len() > opts.max_differences {
        differences.truncate(opts.max_differences);
        truncated = true;
    }
    let (method, key_columns, columns) = match &t.check {
        Some(c) => {
            notes.extend(c.notes.clone());
            (c.method.describe(), c.key_names(), c.column_names())
        }
        None => ("none", vec![], vec![]),
    };
    if t.in_place_units > 0 {
        let units = t.check.as_ref().map_or(0, |c| c.units.len());
        let rest = if t.in_place_units < units {
            "; the others were read and compared here"
        } else {
            ""
        };
        notes.push(format!(
            "{} of {units} chunks proven equal by digests computed in the databases (each column's extended hash){rest}",
            t.in_place_units
        ));
    }
    if t.from_run_units > 0 {
        let units = t.check.as_ref().map_or(0, |c| c.units.len());
        notes.push(format!(
            "{} of {units} chunks compared with the digests computed as the run loaded them: the source was not read again for them",
            t.from_run_units
        ));
    }
    if t.in_place_narrowed > 0 {
        notes.push(format!(
            "{} differing chunks narrowed down to key ranges by digests computed in the databases; only those ranges' rows were read",
            t.in_place_narrowed
        ));
    }
    let mut left_out = Vec::new();
    if t.filtered > 0 {
        left_out.push(format!("{} left out by the plan's filter", t.filtered));
    }
    if t.rejected > 0 {
        let dedupes = t.job.transform.as_ref().is_some_and(|s| s.dedupe.is_some());
        left_out.push(format!(
            "{} rejected by its rules{} (quarantined by the run, see `decant rejects`)",
            t.rejected,
            if dedupes {
                " or as duplicates (dedupe)"
            } else {
                ""
            }
        ));
    }
    if !left_out.is_empty() {
        notes.push(format!(
            "source rows {} are not expected on the target",
            left_out.join(" and ")
        ));
    }
    let counts_differ = t.counts.is_some_and(|(s, g)| s != g);
    let unexplained = t.chunks_differing > 0 && differences.is_empty() && t.tolerated == 0;
    if unexplained && t.error.is_none() {
        notes.push(
            "digests differed, but re-reading found no differing row: the data changed while it \
             was validated; validate again when it is at rest"
                .into(),
        );
    }
    let outcome = if t.error.is_some() {
        Outcome::Error
    } else if counts_differ || !differences.is_empty() || truncated || unexplained {
        Outcome::Differences
    } else {
        Outcome::Match
    };
    TableReport {
        source_table: t.job.source.to_string(),
        target_table: t
            .check
            .as_ref()
            .map_or_else(|| t.job.target.name.to_string(), |c| c.target.to_string()),
        method: method.into(),
        key_columns,
        columns,
        source_rows: t.counts.map(|c| c.0),
        target_rows: t.counts.map(|c| c.1),
        chunks: t.check.as_ref().map_or(0, |c| c.units.len()),
        chunks_differing: t.chunks_differing,
        outcome,
        error: t.error,
        differences,
        differences_truncated: truncated,
        rows_within_tolerance: t.tolerated,
        rows_filtered: t.filtered,
        rows_rejected: t.rejected,
        duration_secs: t.span.map_or(0.0, |(a, b)| (b - a).as_secs_f64()),
        notes,
    }
}
