//! Validation: proves that the target holds what the source holds, and finds every row where it
//! does not. Both sides are read through the `Source` trait, source batches converted to the
//! target's types as `run` converts them, every value hashed in its canonical encoding
//! (`decant_core::canonical`), digests compared per unit, and differing units narrowed down to
//! rows. Then rules are checked on the target. See docs/validation.md.

mod diff;
mod digest;
pub mod html;
mod report;
mod rules;
mod sql;
mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use decant_connectors::{Source, connect_source, connect_target};
use decant_core::ChunkSpec;
use decant_core::plan::Plan;
use decant_store::{Store, ValidationRunRecord};
use futures::StreamExt;

pub use report::{
    ColumnDiff, DiffKind, Difference, Outcome, RuleKind, RuleResult, RuleStatus, TableReport,
    ValidationReport,
};

use self::digest::{Bucketing, Buckets, Filter, ScanError, ScanJob, Side, Sink, scan};
use self::table::{Method, TableCheck};
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
            Ok(report) => record(path, plan, report, &started_at).await,
            Err(e) => record_failure(path, plan, e, &started_at).await,
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
    let (source, target, target_writer) = tokio::try_join!(
        connect_source(&source_url),
        connect_source(&target_url),
        connect_target(&target_url)
    )?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job_plan = build_plan(plan, &catalog, source.dialect(), target_writer.as_ref())?;
    drop(target_writer);
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
                table::resolve(job, st, &target_catalog, source.as_ref(), target.as_ref()).await
            }
            None => Err(format!("{} vanished from the source's catalog", job.source)),
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
            span: None,
        });
    }

    let ctx = Ctx {
        source: source.clone(),
        target: target.clone(),
        plan,
        parallelism: plan.load.parallelism.max(1),
        batch_rows: plan.load.batch_rows.max(1),
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

/// What every task needs.
struct Ctx<'a> {
    source: Arc<dyn Source>,
    target: Arc<dyn Source>,
    plan: &'a Plan,
    parallelism: usize,
    batch_rows: usize,
}

impl Ctx<'_> {
    fn reader(&self, side: Side) -> Arc<dyn Source> {
        match side {
            Side::Source => self.source.clone(),
            Side::Target => self.target.clone(),
        }
    }

    /// One side of one chunk, retried with backoff when the connection drops.
    async fn scan(
        &self,
        side: Side,
        check: &Arc<TableCheck>,
        chunk: &ChunkSpec,
        bucketing: Bucketing,
        make: impl Fn() -> Sink,
        progress: Option<Arc<TableProgress>>,
    ) -> Result<Sink, ScanError> {
        let retries = self.plan.load.retries.max(1);
        let mut attempt = 1;
        loop {
            let job = ScanJob {
                reader: self.reader(side),
                side,
                check: check.clone(),
                chunk: chunk.clone(),
                batch_rows: self.batch_rows,
                policies: self.plan.policies.clone(),
                bucketing,
                progress: progress.clone(),
            };
            let result = scan(job, make()).await;
            match result {
                Err(e) if e.is_retriable() && attempt < retries => {
                    let wait = Duration::from_millis(500 * (1 << attempt.min(6)));
                    tracing::warn!(table = %check.target, chunk = %chunk.id, attempt, error = %e, "read failed, retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn side_error(side: Side, check: &TableCheck, chunk: &ChunkSpec, e: &ScanError) -> String {
    let (name, what) = match side {
        Side::Source => (&check.source, "source"),
        Side::Target => (&check.target, "target"),
    };
    format!(
        "reading the {what} {name} ({}) failed: {e}",
        chunk.range.describe()
    )
}

async fn count_tables(ctx: &Ctx<'_>, tables: &mut [TableState]) {
    for t in tables.iter_mut() {
        let Some(check) = t.check.clone() else {
            continue;
        };
        let started = Instant::now();
        let counted = tokio::try_join!(
            ctx.source.count_rows(&check.source),
            ctx.target.count_rows(&check.target)
        );
        match counted {
            Ok(c) => t.counts = Some(c),
            Err(e) => t.error = Some(format!("counting rows failed: {e}")),
        }
        t.worked(started);
    }
}

/// Reads every unit of every table on both sides, `parallelism` units at a time, and sums the
/// digests of each side.
async fn compare_digests(ctx: &Ctx<'_>, tables: &mut [TableState]) {
    struct Task {
        table: usize,
        unit: usize,
        side: Side,
        chunk: ChunkSpec,
        bucketing: Bucketing,
    }
    let mut tasks = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let Some(check) = &t.check else { continue };
        for (ui, unit) in check.units.iter().enumerate() {
            // Source and target chunks alternate, so both sides of a unit are read together.
            let n = unit.source_chunks.len().max(unit.target_chunks.len());
            for i in 0..n {
                for (side, chunks) in [
                    (Side::Source, &unit.source_chunks),
                    (Side::Target, &unit.target_chunks),
                ] {
                    if let Some(chunk) = chunks.get(i) {
                        tasks.push(Task {
                            table: ti,
                            unit: ui,
                            side,
                            chunk: chunk.clone(),
                            bucketing: unit.bucketing,
                        });
                    }
                }
            }
        }
    }
    let failed: Vec<std::sync::atomic::AtomicBool> =
        tables.iter().map(|_| Default::default()).collect();
    let prepared: Vec<(Task, Option<Arc<TableCheck>>, Arc<TableProgress>)> = tasks
        .into_iter()
        .map(|t| {
            let (check, progress) = (
                tables[t.table].check.clone(),
                tables[t.table].progress.clone(),
            );
            (t, check, progress)
        })
        .collect();
    let failed = &failed;
    let mut results = futures::stream::iter(prepared)
        .map(|(task, check, progress)| async move {
            let check = check?;
            if failed[task.table].load(Ordering::Relaxed) {
                return None;
            }
            let started = Instant::now();
            let by = task.bucketing;
            let result = ctx
                .scan(
                    task.side,
                    &check,
                    &task.chunk,
                    by,
                    || Sink::Digest(Buckets::new(by.len())),
                    Some(progress.clone()),
                )
                .await;
            progress.chunks_done.fetch_add(1, Ordering::Relaxed);
            let result = result.map_err(|e| {
                failed[task.table].store(true, Ordering::Relaxed);
                side_error(task.side, &check, &task.chunk, &e)
            });
            Some((task.table, task.unit, task.side, result, started))
        })
        .buffer_unordered(ctx.parallelism * 2);
    while let Some(done) = results.next().await {
        let Some((ti, ui, side, result, started)) = done else {
            continue;
        };
        let t = &mut tables[ti];
        t.worked(started);
        match result {
            Ok(Sink::Digest(b)) => match side {
                Side::Source => t.digests[ui].0.merge(&b),
                Side::Target => t.digests[ui].1.merge(&b),
            },
            Ok(Sink::Collect(..)) => {}
            Err(e) => {
                t.error.get_or_insert(e);
            }
        }
    }
    drop(results);
    for t in tables
        .iter_mut()
        .filter(|t| t.check.is_some() && t.error.is_none())
    {
        let rows = t
            .digests
            .iter()
            .fold((0, 0), |(s, g), (a, b)| (s + a.rows(), g + b.rows()));
        t.counts = Some(rows);
        t.chunks_differing = t.digests.iter().filter(|(a, b)| a != b).count();
    }
}

/// Re-reads the differing buckets of every differing unit and diffs their rows.
async fn narrow(ctx: &Ctx<'_>, opts: &ValidateOptions, tolerance: f64, tables: &mut [TableState]) {
    let per_side = (opts.max_rows_in_memory / (2 * ctx.parallelism)).max(1000) as u64;
    let mut tasks = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let (Some(check), None) = (&t.check, &t.error) else {
            continue;
        };
        for (ui, (src, tgt)) in t.digests.iter().enumerate() {
            let differing = src.differing(tgt);
            if differing.is_empty() {
                continue;
            }
            let unit = &check.units[ui];
            let reads: Vec<Reads> = match unit.bucketing {
                Bucketing::Range { .. } => {
                    diff::plan_runs(unit.bucketing.len(), &differing, per_side, MAX_GAP)
                        .into_iter()
                        .filter_map(|(first, last, filter)| {
                            let (source, target) = unit.sub_chunks(first, last)?;
                            Some(Reads {
                                source: vec![source],
                                target: vec![target],
                                filter,
                            })
                        })
                        .collect()
                }
                Bucketing::Hash { .. } => {
                    diff::plan_filters(unit.bucketing.len(), &differing, per_side)
                        .into_iter()
                        .map(|filter| Reads {
                            source: unit.source_chunks.clone(),
                            target: unit.target_chunks.clone(),
                            filter,
                        })
                        .collect()
                }
            };
            tasks.push((ti, check.clone(), unit.bucketing, reads));
        }
    }
    let found: Vec<AtomicUsize> = tables.iter().map(|_| AtomicUsize::new(0)).collect();
    let found = &found;
    let cap = opts.max_differences.max(1);
    let mut results = futures::stream::iter(tasks)
        .map(|(ti, check, by, reads)| async move {
            let started = Instant::now();
            let r = narrow_unit(ctx, &check, by, reads, tolerance, &found[ti], cap).await;
            (ti, r, started)
        })
        .buffer_unordered(ctx.parallelism);
    while let Some((ti, result, started)) = results.next().await {
        let t = &mut tables[ti];
        t.worked(started);
        match result {
            Ok(n) => {
                t.differences.extend(n.differences);
                t.tolerated += n.tolerated;
                t.truncated |= n.truncated;
            }
            Err(e) => {
                t.error.get_or_insert(e);
            }
        }
    }
}

struct Narrowed {
    differences: Vec<Difference>,
    tolerated: u64,
    truncated: bool,
}

/// Differing buckets merged into one re-read when fewer than this many equal buckets lie
/// between them: one query for neighbours, a query each for rows far apart.
const MAX_GAP: usize = 8;

/// One re-read of a differing unit: chunks on each side, and the rows to keep.
struct Reads {
    source: Vec<ChunkSpec>,
    target: Vec<ChunkSpec>,
    filter: Filter,
}

async fn narrow_unit(
    ctx: &Ctx<'_>,
    check: &Arc<TableCheck>,
    bucketing: Bucketing,
    reads: Vec<Reads>,
    tolerance: f64,
    found: &AtomicUsize,
    cap: usize,
) -> Result<Narrowed, String> {
    let mut out = Narrowed {
        differences: vec![],
        tolerated: 0,
        truncated: false,
    };
    for read in reads {
        if found.load(Ordering::Relaxed) >= cap {
            out.truncated = true;
            break;
        }
        let collect = |side: Side, chunks: Vec<ChunkSpec>| {
            let filter = read.filter.clone();
            async move {
                let mut rows = Vec::new();
                for chunk in &chunks {
                    let sink = ctx
                        .scan(
                            side,
                            check,
                            chunk,
                            bucketing,
                            || Sink::Collect(filter.clone(), Vec::new()),
                            None,
                        )
                        .await
                        .map_err(|e| side_error(side, check, chunk, &e))?;
                    if let Sink::Collect(_, kept) = sink {
                        rows.extend(kept);
                    }
                }
                Ok::<_, String>(rows)
            }
        };
        let (src, tgt) = tokio::try_join!(
            collect(Side::Source, read.source.clone()),
            collect(Side::Target, read.target.clone())
        )?;
        let (diffs, tolerated) = match check.method {
            Method::Multiset => (diff::diff_multiset(src, tgt), 0),
            Method::KeyRanges | Method::KeyHash => diff::diff_keyed(check, src, tgt, tolerance),
        };
        found.fetch_add(diffs.len(), Ordering::Relaxed);
        out.differences.extend(diffs);
        out.tolerated += tolerated;
    }
    Ok(out)
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
        duration_secs: t.span.map_or(0.0, |(a, b)| (b - a).as_secs_f64()),
        notes,
    }
}

/// A one-line account of a table's differences, for the control store's error log.
fn table_summary(t: &TableReport) -> String {
    if let Some(e) = &t.error {
        return format!("validation could not compare {}: {e}", t.target_table);
    }
    let (m, e, c) = t.counts();
    format!(
        "validation: {} differs from {}: rows {} vs {}, {m} missing, {e} extra, {c} changed{}",
        t.target_table,
        t.source_table,
        t.source_rows.map_or("?".into(), |v| v.to_string()),
        t.target_rows.map_or("?".into(), |v| v.to_string()),
        if t.differences_truncated {
            " (list truncated)"
        } else {
            ""
        }
    )
}

async fn record(
    path: &std::path::Path,
    plan: &Plan,
    report: &ValidationReport,
    started_at: &str,
) -> Result<(), EngineError> {
    let store = Store::open_sqlite(path).await?;
    let job = store.latest_job(plan.job_name()).await?;
    if let Some(job) = &job {
        for t in &report.tables {
            match (t.outcome, t.source_rows, t.target_rows) {
                (Outcome::Match, Some(s), Some(g)) => {
                    store
                        .record_success(&job.id, &t.target_table, s, g, Some(g))
                        .await?
                }
                (Outcome::Match, ..) => {}
                _ => {
                    store
                        .log_error(
                            &job.id,
                            Some(&t.target_table),
                            None,
                            "User",
                            &table_summary(t),
                        )
                        .await?
                }
            }
        }
        for r in report
            .rules
            .iter()
            .filter(|r| matches!(r.status, RuleStatus::Failed | RuleStatus::Error))
        {
            let message = format!(
                "validation rule `{}` {}: {}",
                r.name,
                if r.status == RuleStatus::Failed {
                    "failed"
                } else {
                    "could not run"
                },
                r.detail.as_deref().unwrap_or("")
            );
            store
                .log_error(&job.id, r.table.as_deref(), None, "User", &message)
                .await?;
        }
    }
    store
        .record_validation(&ValidationRunRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            job_name: plan.job_name().to_string(),
            job_id: job.map(|j| j.id),
            outcome: report.outcome.as_str().into(),
            tables: report.tables.len() as i64,
            differences: report.difference_count() as i64,
            rules_failed: report.rules_failed() as i64,
            report_json: serde_json::to_string(report)?,
            started_at: started_at.to_string(),
            finished_at: chrono::Utc::now().to_rfc3339(),
        })
        .await?;
    Ok(())
}

async fn record_failure(
    path: &std::path::Path,
    plan: &Plan,
    error: &EngineError,
    started_at: &str,
) -> Result<(), EngineError> {
    let store = Store::open_sqlite(path).await?;
    let job = store.latest_job(plan.job_name()).await?;
    let message = format!("validation failed: {error}");
    if let Some(job) = &job {
        let domain = format!("{:?}", error.domain());
        store
            .log_error(&job.id, None, None, &domain, &message)
            .await?;
    }
    store
        .record_validation(&ValidationRunRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            job_name: plan.job_name().to_string(),
            job_id: job.map(|j| j.id),
            outcome: Outcome::Error.as_str().into(),
            tables: 0,
            differences: 0,
            rules_failed: 0,
            report_json: serde_json::json!({ "error": message }).to_string(),
            started_at: started_at.to_string(),
            finished_at: chrono::Utc::now().to_rfc3339(),
        })
        .await?;
    Ok(())
}
