//! The runner: creates or resumes a job, prepares target tables, moves chunks in parallel over
//! bounded channels, builds keys and foreign keys after the data, and proves the row counts.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use decant_connectors::{
    ChunkMarker, ConnectorError, ReadRequest, Source, Target, chunk_channel, connect_source_with,
    connect_target_with,
};
use decant_core::plan::{IfExists, Plan};
use decant_core::{ChunkSpec, Table};
use decant_store::{ChunkRecord, JobState, MappingRecord, Store};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::convert::convert_batch;
use crate::error::EngineError;
use crate::planner::{JobPlan, TableJob, build_plan};
use crate::policy::{LocalCounts, PolicyCounters};
use crate::preflight::{Finding, preflight};
use crate::progress::{Progress, TableProgress};
use crate::staging::{ChunkFlow, Phase, Stage, Staging};
use crate::swap::UndoNames;
use decant_core::hazard::ScanMode;

/// How a run is carried out, beyond the plan.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The control store file (default `./.decant/state.db`).
    pub state_path: PathBuf,
    /// Drop what an unfinished job of this name loaded, and start over.
    pub restart: bool,
    /// Overrides `load.max_memory` (bytes).
    pub max_memory: Option<u64>,
    pub progress: Arc<Progress>,
    /// Pause, resume and cancel between chunks (the HTTP service holds the other end).
    pub control: crate::control::JobControl,
    /// Run one staged phase instead of all of them at once (docs/service.md, staged phases).
    pub phase: Option<Phase>,
    /// The staging root of staged phases: `<staging>/<job>/<table>/<stage>/chunk-N.parquet`.
    pub staging: Option<PathBuf>,
}

/// A job planned and stored by [`initialize`], ready for [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Initialized {
    pub job_id: String,
    pub job_name: String,
    /// Per table: mapping, DDL and what happens to an existing target table.
    pub tables: Vec<InitializedTable>,
    pub chunks: usize,
    pub warnings: Vec<String>,
    pub views_not_migrated: Vec<String>,
    pub hazards: Vec<Finding>,
}

/// One table of an initialized job.
#[derive(Debug, Clone, Serialize)]
pub struct InitializedTable {
    pub decision: String,
    pub chunks: usize,
    #[serde(flatten)]
    pub table: TableJob,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One table's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub source: String,
    pub target: String,
    /// Rows the source holds (counted at the end of the run, in the run's snapshot where the
    /// source has one).
    pub source_rows: u64,
    /// Rows committed by this job, from the target's chunk markers.
    pub rows_written: u64,
    /// Records quarantined by this job (see `decant rejects`): written + rejected + filtered =
    /// source rows.
    pub rows_rejected: u64,
    /// Rows the table's `where` filter left out (those the source left out included).
    pub rows_filtered: u64,
    /// Of those, rows the source's own query left out: the part of the filter pushed down.
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_filtered_at_source: u64,
    /// The condition pushed into the source's query, in its SQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_pushed: Option<String>,
    /// Per transform step (computed columns, filter, rules, masks): rows seen, changed,
    /// rejected, warned, in this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<crate::transform_run::StepSummary>,
    /// Rows the target table holds, when the job owns the whole table.
    pub target_rows: Option<u64>,
    pub bytes: u64,
    pub chunks: usize,
    /// Chunks already committed by an earlier, interrupted run of the same job.
    pub chunks_resumed: usize,
    pub decision: String,
    pub notes: Vec<String>,
}

/// The outcome of a run, also written as JSON with `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub job_id: String,
    pub job_name: String,
    pub state: String,
    pub resumed: bool,
    pub tables: Vec<TableSummary>,
    pub rows: u64,
    pub bytes: u64,
    pub rejects: u64,
    pub duration_secs: f64,
    pub views_not_migrated: Vec<String>,
    pub warnings: Vec<String>,
    /// The planning scan that ran: "full", "schema" or "off" (a resumed job does not scan again).
    pub scan: ScanMode,
    /// Hazards the planning scan found, with the policy that handled them.
    pub hazards: Vec<Finding>,
    /// Values changed by a policy during the load, per table, column, kind and policy.
    pub policy_changes: Vec<crate::policy::PolicyChange>,
    /// The outcome of `validate.mode = "checksum"`, when the plan asks for it.
    pub validation: Option<String>,
    /// What the planning scan predicted (compare with `duration_secs`); none when it did not run.
    pub estimate: Option<crate::estimate::JobEstimate>,
}

fn fingerprint(value: &impl Serialize) -> Result<String, EngineError> {
    Ok(format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(value)?)
    ))
}

/// The source-side facts that must not change under a resumed job.
fn schema_facts(plan: &JobPlan) -> Vec<(String, Vec<(String, String)>)> {
    plan.tables
        .iter()
        .map(|t| {
            (
                t.source.to_string(),
                t.source_columns
                    .iter()
                    .map(|c| (c.name.clone(), c.native_type.clone()))
                    .collect(),
            )
        })
        .collect()
}

struct Loaded {
    job_id: String,
    resumed: bool,
    tables: Vec<(TableJob, String)>,
    chunks: HashMap<String, Vec<ChunkSpec>>,
}

/// The plan and source-schema fingerprints a resumed job must match.
fn fingerprints(plan: &Plan, job_plan: &JobPlan) -> Result<(String, String), EngineError> {
    // What the load depends on: validation settings may change between a crash and a resume.
    let plan_fp = fingerprint(&decant_core::plan::Plan {
        validate: Default::default(),
        ..plan.clone()
    })?;
    Ok((plan_fp, fingerprint(&schema_facts(job_plan))?))
}

/// Validates `plan`, introspects source and target, runs the planning scan, computes mapping,
/// DDL and chunks, and stores the job without touching the target. [`run`] with the same plan
/// then loads it. Refuses while an unfinished job of the same name exists.
pub async fn initialize(plan: &Plan, opts: &RunOptions) -> Result<Initialized, EngineError> {
    plan.check()?;
    let store = Store::open(&opts.state_path).await?;
    let name = plan.job_name().to_string();
    if let Some(job) = store
        .latest_job(&name)
        .await?
        .filter(|j| !j.state.is_final())
    {
        return Err(EngineError::Plan(vec![format!(
            "job {} of the same name ({name}) is {}; give the plan another `name`, or roll back or finish that job",
            job.id,
            job.state.as_str()
        )]));
    }
    let source = connect_source_with(&plan.source_url()?, Some(&plan.source)).await?;
    let target = connect_target_with(&plan.target_url()?, plan.target.file.as_ref()).await?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job_plan = build_plan(plan, &catalog, source.dialect(), target.as_ref())?;
    let (plan_fp, schema_fp) = fingerprints(plan, &job_plan)?;
    let mut hazards = Vec::new();
    if plan.policies.scan != ScanMode::Off {
        opts.progress.set_phase("scanning for hazards");
        let report = preflight(
            &job_plan,
            &catalog,
            source.as_ref(),
            plan.policies.scan,
            &plan.load,
        )
        .await?;
        let blocking = blocking_hazards(&report);
        if !blocking.is_empty() {
            return Err(EngineError::Hazards(blocking));
        }
        hazards = report.findings;
    }
    let loaded = create_job(
        plan,
        &job_plan,
        &catalog.tables,
        source.as_ref(),
        target.as_ref(),
        &store,
        &plan_fp,
        &schema_fp,
    )
    .await?;
    let tables: Vec<InitializedTable> = loaded
        .tables
        .iter()
        .map(|(t, d)| InitializedTable {
            decision: d.clone(),
            chunks: loaded
                .chunks
                .get(&t.target.name.to_string())
                .map_or(0, Vec::len),
            table: t.clone(),
        })
        .collect();
    Ok(Initialized {
        job_id: loaded.job_id,
        job_name: name,
        chunks: tables.iter().map(|t| t.chunks).sum(),
        tables,
        warnings: job_plan.warnings.clone(),
        views_not_migrated: job_plan.views_not_migrated.clone(),
        hazards,
    })
}

fn blocking_hazards(report: &crate::preflight::PreflightReport) -> Vec<String> {
    report
        .blocking()
        .iter()
        .map(|f| {
            format!(
                "{}.{}: {} in {} rows (e.g. {}); resolve with {}",
                f.table,
                f.column,
                f.kind,
                f.rows,
                f.sample_keys.join(", "),
                f.resolve
            )
        })
        .collect()
}

/// Runs (or resumes) the job of `plan` to the end.
pub async fn run(plan: &Plan, opts: &RunOptions) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let progress = opts.progress.clone();
    let store = Store::open(&opts.state_path).await?;
    let source_url = plan.source_url()?;
    let target_url = plan.target_url()?;
    progress.set_phase("introspecting");
    let source = connect_source_with(&source_url, Some(&plan.source)).await?;
    let target = connect_target_with(&target_url, plan.target.file.as_ref()).await?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job_plan = build_plan(plan, &catalog, source.dialect(), target.as_ref())?;
    let (plan_fp, schema_fp) = fingerprints(plan, &job_plan)?;
    let name = plan.job_name().to_string();

    let mut scan_findings = Vec::new();
    let mut run_estimate = None;
    let unfinished = store
        .latest_job(&name)
        .await?
        .filter(|j| !j.state.is_final());
    let loaded = match unfinished {
        Some(job) if opts.restart => {
            progress.set_phase("restarting");
            undo_job(&store, target.as_ref(), &job.id).await?;
            None
        }
        Some(job) => {
            if job.plan_fingerprint != plan_fp {
                let old: Plan = serde_json::from_str(&job.plan_json)?;
                return Err(EngineError::Changed(format!(
                    "the plan changed since job {} started ({}); resuming it could load rows twice or miss some",
                    job.id,
                    describe_plan_change(&old, plan)
                )));
            }
            if job.schema_fingerprint != schema_fp {
                return Err(EngineError::Changed(format!(
                    "the source schema changed since job {} started (columns of a migrated table differ)",
                    job.id
                )));
            }
            let mut tables = Vec::new();
            for m in store.mappings(&job.id).await? {
                tables.push((
                    serde_json::from_str::<TableJob>(&m.mapping_json)?,
                    m.decision,
                ));
            }
            let mut chunks: HashMap<String, Vec<ChunkSpec>> = HashMap::new();
            for c in store.chunks(&job.id).await? {
                let range = serde_json::from_str(&c.range_json)?;
                chunks.entry(c.table_name).or_default().push(ChunkSpec {
                    id: c.chunk_id,
                    range,
                    estimated_rows: c.estimated_rows as u64,
                });
            }
            Some(Loaded {
                // A job that `initialize` stored has loaded nothing yet: its first run is no resume.
                resumed: job.state != JobState::Initialized,
                job_id: job.id,
                tables,
                chunks,
            })
        }
        None => None,
    };
    let loaded = match loaded {
        Some(l) => l,
        None => {
            // Planning scan: refuse before any DDL while a hazard has no policy.
            if plan.policies.scan != ScanMode::Off {
                progress.set_phase("scanning for hazards");
                let report = preflight(
                    &job_plan,
                    &catalog,
                    source.as_ref(),
                    plan.policies.scan,
                    &plan.load,
                )
                .await?;
                let blocking = blocking_hazards(&report);
                if !blocking.is_empty() {
                    return Err(EngineError::Hazards(blocking));
                }
                scan_findings = report.findings;
                run_estimate = Some(report.estimate);
            }
            create_job(
                plan,
                &job_plan,
                &catalog.tables,
                source.as_ref(),
                target.as_ref(),
                &store,
                &plan_fp,
                &schema_fp,
            )
            .await?
        }
    };
    let job_id = loaded.job_id.clone();
    let loaded_resumed = loaded.resumed;
    let flow = chunk_flow(&store, opts, &job_id).await?;
    // The run that stopped had already swapped its tables in (only the record of it was
    // lost): its load was complete and validated, so the job is done, not to be loaded again.
    if loaded_resumed
        && flow.writes_target()
        && crate::swap::reconcile(&store, target.as_ref(), &job_id).await? > 0
    {
        crate::retention::record_expiry(&store, plan, &job_id).await?;
        store
            .set_job_state(&job_id, JobState::Succeeded, None)
            .await?;
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} had swapped its tables in before it stopped; it is succeeded now: `decant finalize {job_id}` keeps it, `decant rollback {job_id}` swaps back"
        )]));
    }
    store
        .set_job_state(&job_id, JobState::Running, None)
        .await?;
    // With `validate.mode = "checksum"`, every chunk is hashed as it loads, so that the
    // validation reads only the target for the chunks this process loaded.
    let checksum =
        flow.writes_target() && plan.validate.mode == decant_core::plan::ValidateMode::Checksum;
    let recorded = checksum.then(|| Arc::new(crate::validate::InRunDigests::default()));
    let result = execute(
        plan,
        opts,
        &store,
        source.clone(),
        target.clone(),
        &loaded,
        recorded.clone(),
        &flow,
    )
    .await;
    // `validate.mode = "checksum"`: the run proves every value, not only the counts, before it
    // reports success.
    let result = match result {
        Ok(mut summary) if checksum => {
            progress.set_phase("validating");
            let vopts = crate::validate::ValidateOptions {
                state_path: Some(opts.state_path.clone()),
                progress: progress.clone(),
                recorded,
                // A swap is validated in its shadow, before it replaces the live table.
                loaded_into: crate::swap::shadows(&store, &job_id).await?,
                ..Default::default()
            };
            match crate::validate::validate_plan(plan, &vopts).await {
                Ok(report) if report.outcome == crate::validate::Outcome::Match => {
                    summary.validation =
                        Some(format!("checksum: match ({} tables)", report.tables.len()));
                    Ok(summary)
                }
                Ok(report) => Err(EngineError::Verification(vec![format!(
                    "validation (checksum) found differences in {} table(s); run `decant validate` for the rows",
                    report
                        .tables
                        .iter()
                        .filter(|t| t.outcome != crate::validate::Outcome::Match)
                        .count()
                )])),
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    // Validated: now the shadows replace the live tables, all in one transaction.
    // Staged extract and transform phases never touch the target: nothing to swap, and the
    // step they ended on (`extracted`, `transformed`) stays what status shows.
    let result = match result {
        Ok(mut summary) if flow.writes_target() => {
            progress.set_phase("swapping");
            match crate::swap::swap_in(&store, target.as_ref(), &job_id).await {
                Ok(swapped) => {
                    crate::swap::rename_in_summary(&mut summary.tables, &swapped);
                    progress.set_phase("done");
                    Ok(summary)
                }
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match result {
        Ok(mut summary) => {
            summary.duration_secs = started.elapsed().as_secs_f64();
            summary.views_not_migrated = job_plan.views_not_migrated.clone();
            summary.scan = if loaded_resumed {
                ScanMode::Off
            } else {
                plan.policies.scan
            };
            summary.hazards = scan_findings;
            summary.estimate = run_estimate;
            summary.warnings.extend(job_plan.warnings.clone());
            if flow.writes_target() {
                store
                    .set_summary(&job_id, &serde_json::to_string(&summary)?)
                    .await?;
                crate::retention::record_expiry(&store, plan, &job_id).await?;
                store
                    .set_job_state(&job_id, JobState::Succeeded, None)
                    .await?;
            } else {
                // Extracted or transformed: the job waits for its next phase, target untouched.
                store
                    .set_job_state(&job_id, JobState::Initialized, None)
                    .await?;
            }
            Ok(summary)
        }
        Err(e) => {
            let message = e.to_string();
            store
                .log_error(&job_id, None, None, &format!("{:?}", e.domain()), &message)
                .await?;
            let state = if matches!(e, EngineError::Cancelled) {
                JobState::Cancelled
            } else {
                JobState::Failed
            };
            store.set_job_state(&job_id, state, Some(&message)).await?;
            Err(e)
        }
    }
}

/// How this run moves chunks: all steps at once, or one staged phase once the phase before it
/// has staged every chunk.
async fn chunk_flow(
    store: &Store,
    opts: &RunOptions,
    job_id: &str,
) -> Result<ChunkFlow, EngineError> {
    let Some(phase) = opts.phase else {
        return Ok(ChunkFlow::direct());
    };
    let root = opts.staging.clone().ok_or_else(|| {
        EngineError::Plan(vec![format!(
            "the {} phase stages Parquet files: give it a staging directory (--staging DIR)",
            phase.as_str()
        )])
    })?;
    let input = crate::staging::check_ready(store, &root, job_id, phase).await?;
    Ok(ChunkFlow {
        phase: Some(phase),
        input,
        staging: Some(Staging::new(&root, job_id)),
    })
}

fn describe_plan_change(old: &Plan, new: &Plan) -> String {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let keys: Vec<String> = match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let all: HashSet<&String> = a.keys().chain(b.keys()).collect();
            let mut k: Vec<String> = all
                .into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| format!("`{k}`"))
                .collect();
            k.sort();
            k
        }
        _ => vec![],
    };
    if keys.is_empty() {
        "its settings differ".into()
    } else {
        format!("changed: {}", keys.join(", "))
    }
}

/// Drops the tables an unfinished job created and forgets its markers and records.
async fn undo_job(store: &Store, target: &dyn Target, job_id: &str) -> Result<(), EngineError> {
    for m in store.mappings(job_id).await? {
        let t: TableJob = serde_json::from_str(&m.mapping_json)?;
        match m.decision.as_str() {
            // A swap's mapping is its shadow: the live table was not touched yet.
            "create" | "drop" | "swap" => target.execute(std::slice::from_ref(&t.ddl.drop)).await?,
            "truncate" => {
                target
                    .execute(std::slice::from_ref(&t.ddl.truncate))
                    .await?
            }
            "upsert" => {
                crate::rollback::undo_upsert(store, target, job_id, &t).await?;
            }
            _ => {
                tracing::warn!(table = %t.target.name, "append-mode rows of the restarted job stay in the table");
            }
        }
    }
    target.prepare_markers().await?;
    target.delete_markers(job_id).await?;
    store.delete_job(job_id).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn create_job(
    plan: &Plan,
    job_plan: &JobPlan,
    catalog: &[Table],
    source: &dyn Source,
    target: &dyn Target,
    store: &Store,
    plan_fp: &str,
    schema_fp: &str,
) -> Result<Loaded, EngineError> {
    let job_id = format!(
        "{}-{}",
        plan.job_name(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    let mut undo = Vec::new();
    for t in &job_plan.tables {
        let exists = target.table_exists(&t.target.name).await?;
        let decision = match (exists, t.if_exists) {
            (false, IfExists::Append | IfExists::Truncate) => {
                problems.push(format!(
                    "target table {} does not exist, and if_exists = {:?} needs it",
                    t.target.name, t.if_exists
                ));
                continue;
            }
            (false, _) => "create",
            (true, IfExists::Fail) => {
                problems.push(format!(
                    "target table {} exists; set load.if_exists (or [tables.\"{}\"] if_exists) to \"swap\", \"upsert\", \"truncate\", \"append\" or \"drop\"",
                    t.target.name, t.source
                ));
                continue;
            }
            (true, IfExists::Truncate) => "truncate",
            // Files have no rows to add to: a second export would replace the first.
            (true, IfExists::Append) if target.dialect() == decant_core::Dialect::File => {
                problems.push(format!(
                    "{} exists in the target directory, and files cannot be appended to; set if_exists to \"drop\" (or \"truncate\") to replace it",
                    t.target.name
                ));
                continue;
            }
            (true, IfExists::Append) => "append",
            (true, IfExists::Swap | IfExists::Upsert)
                if target.dialect() == decant_core::Dialect::File =>
            {
                problems.push(format!(
                    "{} exists in the target directory; swap and upsert need a database target: set if_exists to \"drop\" (or \"truncate\") to replace the file",
                    t.target.name
                ));
                continue;
            }
            (true, IfExists::Drop) => "drop",
            (true, IfExists::Swap) => "swap",
            (true, IfExists::Upsert) => "upsert",
        };
        match decision {
            "swap" => {
                if let Some(problem) = crate::swap::swap_problems(t, target).await? {
                    problems.push(problem);
                    continue;
                }
                let names = UndoNames::for_swap(&t.target.name, &job_id);
                let shadow = names.shadow.clone().expect("a swap has a shadow");
                tables.push((
                    crate::swap::shadow_job(t, &shadow, target, plan.load.primary_key_after_load),
                    decision.to_string(),
                ));
                undo.push(names.record("swap", crate::swap::state::LOADING)?);
            }
            "upsert" => {
                let declared = plan
                    .tables
                    .get(&t.source.to_string())
                    .or_else(|| plan.tables.get(&t.source.name))
                    .and_then(|c| c.key.as_ref());
                match crate::swap::upsert_key(t, declared) {
                    Err(problem) => problems.push(problem),
                    Ok(_) if target.upsert().is_none() => problems.push(format!(
                        "{}: this target cannot upsert; set if_exists to \"swap\", \"append\" or \"truncate\"",
                        t.target.name
                    )),
                    Ok(key) => {
                        let key_problems = match target.upsert() {
                            Some(u) => u.upsert_key_problems(&t.target.name, &key).await?,
                            None => vec![],
                        };
                        if !key_problems.is_empty() {
                            problems.extend(key_problems);
                            continue;
                        }
                        let names = UndoNames::for_upsert(&t.target.name, &job_id, key);
                        undo.push(names.record("upsert", crate::swap::state::RECORDING)?);
                        tables.push((t.clone(), decision.to_string()));
                    }
                }
            }
            _ => tables.push((t.clone(), decision.to_string())),
        }
    }
    let swapped: Vec<&TableJob> = job_plan
        .tables
        .iter()
        .filter(|t| {
            tables
                .iter()
                .any(|(s, d)| d == "swap" && s.source == t.source)
        })
        .collect();
    problems.extend(swapped_parents(&swapped));
    if !problems.is_empty() {
        return Err(EngineError::Plan(problems));
    }
    let mut chunks = HashMap::new();
    let mut chunk_records = Vec::new();
    for (t, d) in &tables {
        let table = catalog.iter().find(|c| c.name == t.source).ok_or_else(|| {
            EngineError::Internal(format!("{} vanished from the catalog", t.source))
        })?;
        let specs = match source.incremental_field(&table.name) {
            Some(field) => {
                let watermark = incremental_watermark(plan, t, d, &field, target).await?;
                source
                    .plan_chunks_since(table, t.chunk_rows, watermark)
                    .await?
            }
            None => source.plan_chunks(table, t.chunk_rows).await?,
        };
        for (i, c) in specs.iter().enumerate() {
            chunk_records.push(ChunkRecord {
                table_name: t.target.name.to_string(),
                chunk_id: c.id.clone(),
                chunk_order: i as i64,
                range_json: serde_json::to_string(&c.range)?,
                estimated_rows: c.estimated_rows as i64,
                state: "pending".into(),
                rows_done: 0,
                attempts: 0,
            });
        }
        chunks.insert(t.target.name.to_string(), specs);
    }
    let mappings: Vec<MappingRecord> = tables
        .iter()
        .enumerate()
        .map(|(i, (t, d))| {
            Ok(MappingRecord {
                source_table: t.source.to_string(),
                target_table: t.target.name.to_string(),
                load_order: i as i64,
                decision: d.clone(),
                mapping_json: serde_json::to_string(t)?,
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let source_url = plan.source_url()?.to_string();
    let target_url = plan.target_url()?.to_string();
    store
        .create_job(
            &job_id,
            plan.job_name(),
            &serde_json::to_string(plan)?,
            plan_fp,
            schema_fp,
            &source_url,
            &target_url,
        )
        .await?;
    store.save_plan(&job_id, &mappings, &chunk_records).await?;
    for record in &undo {
        store.record_undo_table(&job_id, record).await?;
    }
    Ok(Loaded {
        job_id,
        resumed: false,
        tables,
        chunks,
    })
}

/// The highest value of an incremental source's `field` already in the target table: what
/// the next read starts after. Only an `append` or `upsert` load keeps the earlier rows; a table
/// that is created, truncated, dropped or swapped in starts empty, so it reads everything.
async fn incremental_watermark(
    plan: &Plan,
    t: &TableJob,
    decision: &str,
    field: &str,
    target: &dyn Target,
) -> Result<Option<String>, EngineError> {
    if decision != "append" && decision != "upsert" {
        return Ok(None);
    }
    let renamed = plan
        .tables
        .get(&t.source.to_string())
        .or_else(|| plan.tables.get(&t.source.name))
        .and_then(|c| c.columns.get(field))
        .and_then(|c| c.rename.clone())
        .unwrap_or_else(|| field.to_string());
    if !t.target.columns.iter().any(|c| c.name == renamed) {
        return Err(EngineError::Plan(vec![format!(
            "table {}: the incremental field `{field}` must be loaded into the target (as `{renamed}`): its highest value there is where the next run starts",
            t.source
        )]));
    }
    Ok(target.max_value(&t.target, &renamed).await?)
}

/// The upsert records of a job, by live table name.
async fn upsert_names(
    store: &Store,
    job_id: &str,
) -> Result<HashMap<String, UndoNames>, EngineError> {
    let mut names = HashMap::new();
    for record in store.undo_tables(job_id).await? {
        if record.strategy == "upsert" {
            names.insert(
                record.target_table.clone(),
                UndoNames::from_record(&record)?,
            );
        }
    }
    Ok(names)
}

/// Swapped tables whose new definition references another table swapped by the same job: the
/// shadow's foreign key would be created against the old parent, and follow it to its backup.
fn swapped_parents(swapped: &[&TableJob]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in swapped {
        for fk in &t.target.foreign_keys {
            let parent = &fk.ref_table;
            if *parent != t.target.name && swapped.iter().any(|p| p.target.name == *parent) {
                problems.push(format!(
                    "{}: its foreign key {} references {parent}, which this job swaps too; swap them in separate jobs, or set if_exists = \"drop\" for both",
                    t.target.name, fk.name
                ));
            }
        }
    }
    problems
}

struct ChunkTask {
    table: Arc<TableJob>,
    chunk: ChunkSpec,
    /// The chunk's position in its table's plan (names its staged file).
    order: usize,
    /// What this phase reads, applies and writes.
    flow: Arc<ChunkFlow>,
    /// The schema of the batches read: the source's, or the transforms' output when reading
    /// transformed chunks.
    input_schema: arrow_schema::SchemaRef,
    progress: Arc<TableProgress>,
    batch_rows: usize,
    /// Chunks of this table allowed in flight at once (fewer than `parallelism` for wide rows).
    slots: Arc<tokio::sync::Semaphore>,
    /// The run's memory ceiling, in bytes.
    max_memory: u64,
    /// The job's rejects so far (committed chunks plus those reserved by chunks about to commit).
    rejected: Arc<std::sync::atomic::AtomicU64>,
    /// `load.max_rejects`.
    max_rejects: u64,
    /// Where the chunk's digest goes once it commits (`validate.mode = "checksum"`).
    recorded: Option<Arc<crate::validate::InRunDigests>>,
    /// For an append load into a table that existed: the target column (index) of its integer
    /// key, whose values each chunk records so that a rollback can delete exactly its rows.
    key_capture: Option<usize>,
    /// For an upsert: the key and the side table of pre-images.
    upsert: Option<Arc<UndoNames>>,
    /// The table's transforms and limits.
    transforms: Arc<crate::transform_run::TableTransforms>,
    /// Records read for the whole job (for `load.max_reject_ratio`).
    job_seen: Arc<std::sync::atomic::AtomicU64>,
    max_reject_ratio: Option<f64>,
}

/// The column whose inserted values an append load records for rollback: the target's
/// single-column integer primary key.
pub(crate) fn key_capture(t: &TableJob, decision: &str) -> Option<usize> {
    if decision != "append" {
        return None;
    }
    match t.target.primary_key.as_slice() {
        [key] => t.target.columns.iter().position(|c| {
            &c.name == key
                && matches!(
                    c.logical.arrow_type(),
                    arrow_schema::DataType::Int8
                        | arrow_schema::DataType::Int16
                        | arrow_schema::DataType::Int32
                        | arrow_schema::DataType::Int64
                        | arrow_schema::DataType::UInt8
                        | arrow_schema::DataType::UInt16
                        | arrow_schema::DataType::UInt32
                )
        }),
        _ => None,
    }
}

/// Batches of one chunk held at once: two in each of the two channels, one being built by the
/// reader and one being written.
const BATCHES_IN_FLIGHT: usize = 6;

/// Average bytes per row from the source's size and row count; 256 bytes when the source has no
/// figures (an empty or never-analyzed table), so that a missing statistic never means
/// one-row batches.
fn row_width(size_bytes: u64, rows: u64) -> usize {
    if rows == 0 || size_bytes == 0 {
        return 256;
    }
    (size_bytes / rows).clamp(16, 1 << 30) as usize
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    plan: &Plan,
    opts: &RunOptions,
    store: &Store,
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    loaded: &Loaded,
    recorded: Option<Arc<crate::validate::InRunDigests>>,
    flow: &ChunkFlow,
) -> Result<RunSummary, EngineError> {
    let progress = opts.progress.clone();
    let job_id = loaded.job_id.as_str();
    let counters = PolicyCounters::default();
    // What this phase has committed: the target's markers, or the staged files it wrote.
    let committed: Vec<ChunkMarker> = match flow.output() {
        None => {
            target.prepare_markers().await?;
            target.committed_chunks(job_id).await?
        }
        Some(stage) => flow.staging()?.done(stage, &loaded.chunks).await?,
    };
    let done: HashSet<(String, String)> = committed
        .iter()
        .map(|m| (m.table.clone(), m.chunk_id.clone()))
        .collect();
    let tables_with_rows: HashSet<&str> = committed.iter().map(|m| m.table.as_str()).collect();

    progress.set_phase("creating tables");
    for (t, decision) in loaded.tables.iter().filter(|_| flow.writes_target()) {
        if tables_with_rows.contains(t.target.name.to_string().as_str()) {
            continue; // prepared by the interrupted run, which already committed rows into it
        }
        let mut statements = Vec::new();
        match decision.as_str() {
            "drop" => {
                statements.push(t.ddl.drop.clone());
                statements.extend(t.ddl.create.clone());
            }
            "truncate" => statements.push(t.ddl.truncate.clone()),
            // A swap creates its shadow table: the live one is not touched until the swap.
            "create" | "swap" => statements.extend(t.ddl.create.clone()),
            _ => {}
        }
        target.execute(&statements).await?;
    }
    // Upserts keep their pre-images in a side table next to the target table.
    let upserts = upsert_names(store, job_id).await?;
    for (t, decision) in &loaded.tables {
        if decision != "upsert" {
            continue;
        }
        let names = upserts.get(&t.target.name.to_string()).ok_or_else(|| {
            EngineError::Internal(format!(
                "the upsert of {} has no pre-image table",
                t.target.name
            ))
        })?;
        let side = names.preimages.as_ref().ok_or_else(|| {
            EngineError::Internal(format!(
                "the upsert of {} has no pre-image table",
                t.target.name
            ))
        })?;
        if !target.table_exists(side).await? {
            let upsert = target.upsert().ok_or_else(|| {
                EngineError::Plan(vec![format!(
                    "{}: this target cannot upsert",
                    t.target.name
                )])
            })?;
            target
                .execute(&upsert.preimage_ddl(&t.target, side))
                .await?;
        }
    }

    let max_memory = match opts.max_memory {
        Some(m) => m,
        None => plan.load.max_memory_bytes()?,
    };
    let parallelism = plan.load.parallelism.max(1);
    // Only committed chunks' rejects count: an interrupted chunk runs again and replaces its own.
    let rejected_before = committed_rejects(store, job_id, &done).await?;
    let rejected = Arc::new(std::sync::atomic::AtomicU64::new(
        rejected_before.values().sum(),
    ));
    let filtered_before = committed_filtered(store, job_id, &done).await?;
    let job_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut table_transforms = HashMap::new();
    let mut tasks = Vec::new();
    for (t, decision) in &loaded.tables {
        let key = t.target.name.to_string();
        let key_capture = key_capture(t, decision).filter(|_| flow.writes_target());
        let upsert = if decision == "upsert" && flow.writes_target() {
            upserts.get(&key).cloned().map(Arc::new)
        } else {
            None
        };
        let specs = loaded.chunks.get(&key).cloned().unwrap_or_default();
        let estimated: u64 = specs.iter().map(|c| c.estimated_rows).sum();
        let tp = progress.add_table(&key, estimated.max(t.row_estimate), specs.len() as u64);
        for m in committed.iter().filter(|m| m.table == key) {
            tp.rows_done.fetch_add(m.rows, Ordering::Relaxed);
            tp.chunks_done.fetch_add(1, Ordering::Relaxed);
        }
        // Batches in flight per chunk: 2 in each of two channels, plus one being built and one
        // being written; size them so that all chunks together stay under the memory ceiling.
        let rows = estimated.max(t.row_estimate);
        let row_width = row_width(t.size_bytes, rows);
        let budget_rows =
            (max_memory as usize / (parallelism * BATCHES_IN_FLIGHT) / row_width).max(1);
        let batch_rows = plan.load.batch_rows.min(budget_rows).max(1);
        // Rows so wide that even one-row batches of every chunk would pass the ceiling: load
        // fewer of this table's chunks at once (counting each batch twice: a growing Arrow
        // buffer briefly holds its old and its new copy).
        let slots =
            (max_memory as usize / (BATCHES_IN_FLIGHT * 2 * row_width)).clamp(1, parallelism);
        let slots = Arc::new(tokio::sync::Semaphore::new(slots));
        if let Some(r) = &recorded {
            r.add_table(t, &specs);
        }
        let table = Arc::new(t.clone());
        // Compiled once per table; every chunk evaluates the same physical expressions.
        let compiled = match &t.transform {
            Some(spec) => Some(Arc::new(
                decant_transform::TableTransform::compile(spec, t.source_schema()).map_err(
                    |errors| {
                        EngineError::Plan(
                            errors
                                .iter()
                                .map(|e| format!("table {}: {e}", t.source))
                                .collect(),
                        )
                    },
                )?,
            )),
            None => None,
        };
        let input_schema = match (&flow.input, &compiled) {
            (Some(Stage::Transform), Some(c)) => c.output_schema(),
            _ => t.source_schema(),
        };
        let table_rejected = rejected_before.get(&key).copied().unwrap_or(0);
        let table_seen = committed
            .iter()
            .filter(|m| m.table == key)
            .map(|m| m.rows)
            .sum::<u64>()
            + table_rejected
            + filtered_before.get(&key).copied().unwrap_or(0);
        job_seen.fetch_add(table_seen, Ordering::Relaxed);
        let cfg = plan
            .tables
            .get(&t.source.to_string())
            .or_else(|| plan.tables.get(&t.source.name));
        // A one-shot run applies the filter as it reads, so the source can drop what the
        // filter would; staged phases read or write whole tables.
        let pushed = match (&compiled, flow.phase) {
            (Some(c), None) if plan.load.push_filters => {
                crate::transform_plan::pushdown(source.dialect(), t, c).sql
            }
            _ => None,
        };
        let mut transforms = crate::transform_run::TableTransforms::new(
            compiled,
            table_rejected,
            table_seen,
            cfg.and_then(|c| c.max_rejects),
            cfg.and_then(|c| c.max_reject_ratio),
        );
        transforms.pushed = pushed;
        let transforms = Arc::new(transforms);
        table_transforms.insert(key.clone(), transforms.clone());
        let flow = Arc::new(flow.clone());
        for (order, c) in specs
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !done.contains(&(key.clone(), c.id.clone())))
        {
            tasks.push(ChunkTask {
                table: table.clone(),
                chunk: c,
                order,
                flow: flow.clone(),
                input_schema: input_schema.clone(),
                progress: tp.clone(),
                batch_rows,
                slots: slots.clone(),
                max_memory,
                rejected: rejected.clone(),
                max_rejects: plan.load.max_rejects,
                recorded: recorded.clone(),
                key_capture,
                upsert: upsert.clone(),
                transforms: transforms.clone(),
                job_seen: job_seen.clone(),
                max_reject_ratio: plan.load.max_reject_ratio,
            });
        }
    }

    // Tables whose `reference` rules look up a table of this job on the target load in a later
    // wave than that table, so the lookup reads it whole; without such rules all is one wave.
    let table_list: Vec<(String, Option<Arc<decant_transform::TableTransform>>)> = loaded
        .tables
        .iter()
        .map(|(t, _)| {
            let key = t.target.name.to_string();
            let compiled = table_transforms
                .get(&key)
                .and_then(|tt: &Arc<crate::transform_run::TableTransforms>| tt.compiled.clone());
            (key, compiled)
        })
        .collect();
    let wave_of = crate::reference::waves(&table_list, target.default_schema().as_deref())?;
    let waves = wave_of.values().copied().max().map_or(1, |w| w + 1);
    let mut by_wave: Vec<Vec<ChunkTask>> = (0..waves).map(|_| Vec::new()).collect();
    for task in tasks {
        let w = wave_of
            .get(&task.table.target.name.to_string())
            .copied()
            .unwrap_or(0);
        by_wave[w].push(task);
    }
    let mut lookups = crate::reference::ReferenceLoader::new(
        plan,
        source.clone(),
        plan.target.schema.clone().or(target.default_schema()),
    );
    progress.set_phase(flow.moving_step());
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for tasks in by_wave {
        // The lookups of this wave's tables, read once the earlier waves committed.
        // Staged phases that do not transform (extract, load) need neither lookups nor scans.
        for (key, compiled) in table_list.iter().filter(|_| flow.applies_steps()) {
            if let Some(c) = compiled
                && !c.references().is_empty()
                && !c.references_loaded()
                && tasks
                    .iter()
                    .any(|t| t.table.target.name.to_string() == *key)
            {
                progress.set_phase("loading reference keys");
                lookups.load(key, c).await?;
                progress.set_phase(flow.moving_step());
            }
            if let Some(c) = compiled
                && c.needs_dedupe_scan()
                && let Some(task) = tasks
                    .iter()
                    .find(|t| t.table.target.name.to_string() == *key)
            {
                progress.set_phase("scanning for duplicates");
                let policies = task.table.reader_policies(&plan.policies);
                let chunks = loaded.chunks.get(key).cloned().unwrap_or_default();
                crate::dedupe::scan(
                    source.clone(),
                    &task.table,
                    &chunks,
                    c,
                    task.batch_rows,
                    &policies,
                )
                .await?;
                progress.set_phase(flow.moving_step());
            }
        }
        let results: Vec<Result<(), EngineError>> = futures::stream::iter(tasks)
            .map(|task| {
                let (source, target, failed) = (source.clone(), target.clone(), failed.clone());
                let retries = plan.load.retries.max(1);
                let policies = task.table.reader_policies(&plan.policies);
                let counters = counters.clone();
                async move {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(()); // a chunk failed for good: start nothing new
                    }
                    // Paused: wait here, before the chunk starts; cancelled: start nothing new.
                    // Chunks already past this point run to their commit.
                    if !opts.control.proceed().await {
                        return Err(EngineError::Cancelled);
                    }
                    let _slot = task
                        .slots
                        .acquire()
                        .await
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    let key = task.table.target.name.to_string();
                    store
                        .update_chunk(job_id, &key, &task.chunk.id, "running", 0, 0, None)
                        .await?;
                    let outcome =
                        run_chunk(source, target, store, job_id, &task, retries, policies).await;
                    match outcome {
                        Ok((rows, bytes, changed)) => {
                            counters.merge(&key, &changed);
                            task.progress.chunks_done.fetch_add(1, Ordering::Relaxed);
                            let state = task.flow.done_state();
                            store
                                .update_chunk(
                                    job_id,
                                    &key,
                                    &task.chunk.id,
                                    state,
                                    rows,
                                    bytes,
                                    None,
                                )
                                .await?;
                            Ok(())
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            let err = EngineError::Chunk {
                                table: key.clone(),
                                chunk: task.chunk.id.clone(),
                                range: task.chunk.range.describe(),
                                source: Box::new(e),
                            };
                            let msg = err.to_string();
                            store
                                .update_chunk(
                                    job_id,
                                    &key,
                                    &task.chunk.id,
                                    "failed",
                                    0,
                                    0,
                                    Some(&msg),
                                )
                                .await?;
                            store
                                .log_error(
                                    job_id,
                                    Some(&key),
                                    Some(&task.chunk.id),
                                    &format!("{:?}", err.domain()),
                                    &msg,
                                )
                                .await?;
                            Err(err)
                        }
                    }
                }
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(err);
        }
    }
    if let Some(stage) = flow.output() {
        let summary = staged_summary(plan, store, loaded, flow, stage, &table_transforms).await?;
        progress.set_phase(if stage == Stage::Extract {
            "extracted"
        } else {
            "transformed"
        });
        return Ok(summary);
    }

    // The source's counts (for the proof at the end) are taken while the target builds its
    // keys and indexes: two servers, two cores, one wait.
    let source_counts = if flow.input.is_some() {
        // Loading staged chunks: the proof counts against what was extracted, not against a
        // source that may have moved on since.
        let extracted = flow.staging()?.extracted_records(&loaded.chunks).await?;
        let keys: Vec<String> = loaded
            .tables
            .iter()
            .map(|(t, _)| t.target.name.to_string())
            .collect();
        tokio::spawn(async move {
            Ok::<_, ConnectorError>(
                keys.iter()
                    .map(|k| {
                        let n = extracted.get(k).copied().unwrap_or(0);
                        (n, n)
                    })
                    .collect(),
            )
        })
    } else {
        let (source, names) = (
            source.clone(),
            loaded
                .tables
                .iter()
                .map(|(t, _)| {
                    let pushed = table_transforms.get(&t.target.name.to_string()).and_then(
                        |tt: &Arc<crate::transform_run::TableTransforms>| tt.pushed.clone(),
                    );
                    (t.source.clone(), pushed)
                })
                .collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            let mut counts = Vec::with_capacity(names.len());
            for (n, pushed) in &names {
                // With a pushed filter the chunks read only the rows that meet it; the same
                // condition counts them (in the same scan), and the rest were filtered at the
                // source.
                counts.push(match pushed {
                    Some(f) => source.count_rows_where(n, f).await?,
                    None => {
                        let all = source.count_rows(n).await?;
                        (all, all)
                    }
                });
            }
            Ok::<_, ConnectorError>(counts)
        })
    };
    progress.set_phase("building indexes");
    for (t, _) in &loaded.tables {
        target.execute(&t.ddl.indexes).await?;
    }
    progress.set_phase("adding foreign keys");
    for (t, _) in &loaded.tables {
        target.execute(&t.ddl.foreign_keys).await?;
        target.execute(&t.ddl.sequences).await?;
    }

    progress.set_phase("verifying");
    let markers = target.committed_chunks(job_id).await?;
    let committed_now: HashSet<(String, String)> = markers
        .iter()
        .map(|m| (m.table.clone(), m.chunk_id.clone()))
        .collect();
    let rejected = committed_rejects(store, job_id, &committed_now).await?;
    let filtered = committed_filtered(store, job_id, &committed_now).await?;
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    let snapshot = progress.tables();
    let source_counts = source_counts
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    for (i, (t, decision)) in loaded.tables.iter().enumerate() {
        let key = t.target.name.to_string();
        let mine: Vec<&ChunkMarker> = markers.iter().filter(|m| m.table == key).collect();
        let rows_written: u64 = mine.iter().map(|m| m.rows).sum();
        let expected_chunks = loaded.chunks.get(&key).map_or(0, Vec::len);
        let (source_rows, rows_read) = source_counts[i];
        let filtered_at_source = source_rows - rows_read.min(source_rows);
        let target_rows = if decision == "append" || decision == "upsert" {
            None
        } else {
            Some(target.count_rows(&t.target.name).await?)
        };
        if mine.len() != expected_chunks {
            problems.push(format!(
                "{key}: {} of {expected_chunks} chunks committed",
                mine.len()
            ));
        }
        let rows_rejected = rejected.get(&key).copied().unwrap_or(0);
        let rows_filtered = filtered.get(&key).copied().unwrap_or(0);
        if rows_written + rows_rejected + rows_filtered != rows_read {
            let pushed = if filtered_at_source > 0 || rows_read != source_rows {
                format!(" ({rows_read} meet the filter pushed to the source)")
            } else {
                String::new()
            };
            problems.push(format!(
                "{key}: source has {source_rows} rows{pushed}, {rows_written} were written, {rows_rejected} rejected and {rows_filtered} filtered"
            ));
        }
        let rows_filtered = rows_filtered + filtered_at_source;
        if let Some(recorded) = &recorded {
            recorded.set_filtered_at_source(&key, filtered_at_source);
        }
        if let Some(tr) = target_rows.filter(|tr| *tr != rows_written) {
            problems.push(format!(
                "{key}: target table holds {tr} rows, {rows_written} were written"
            ));
        }
        let resumed = mine.len()
            - loaded
                .chunks
                .get(&key)
                .map_or(0, |c| {
                    c.iter()
                        .filter(|c| !done.contains(&(key.clone(), c.id.clone())))
                        .count()
                })
                .min(mine.len());
        let bytes = snapshot
            .iter()
            .find(|s| s.name == key)
            .map_or(0, |s| s.bytes_done);
        store
            .record_success(job_id, &key, source_rows, rows_written, target_rows)
            .await?;
        let step_counts = table_transforms
            .get(&key)
            .map(|t: &Arc<crate::transform_run::TableTransforms>| t.summary())
            .unwrap_or_default();
        tables.push(TableSummary {
            source: t.source.to_string(),
            target: key,
            source_rows,
            rows_written,
            rows_rejected,
            rows_filtered,
            rows_filtered_at_source: filtered_at_source,
            filter_pushed: table_transforms
                .get(&t.target.name.to_string())
                .and_then(|tt| tt.pushed.clone()),
            transforms: step_counts,
            target_rows,
            bytes,
            chunks: expected_chunks,
            chunks_resumed: resumed,
            decision: decision.clone(),
            notes: t.notes.clone(),
        });
    }
    if !problems.is_empty() {
        return Err(EngineError::Verification(problems));
    }
    progress.set_phase("done");
    Ok(RunSummary {
        job_id: job_id.to_string(),
        job_name: plan.job_name().to_string(),
        state: "succeeded".into(),
        resumed: loaded.resumed,
        rows: tables.iter().map(|t| t.rows_written).sum(),
        bytes: tables.iter().map(|t| t.bytes).sum(),
        rejects: tables.iter().map(|t| t.rows_rejected).sum(),
        tables,
        duration_secs: 0.0,
        views_not_migrated: vec![],
        warnings: vec![],
        scan: ScanMode::Off,
        hazards: vec![],
        policy_changes: counters.changes(),
        validation: None,
        estimate: None,
    })
}

/// The outcome of an extract or transform phase: per table the chunks and rows staged, and the
/// records quarantined and filtered on the way (the transform phase owns the quarantine; the
/// extract phase counts only the reader's rejects, kept beside the chunks).
async fn staged_summary(
    plan: &Plan,
    store: &Store,
    loaded: &Loaded,
    flow: &ChunkFlow,
    stage: Stage,
    table_transforms: &HashMap<String, Arc<crate::transform_run::TableTransforms>>,
) -> Result<RunSummary, EngineError> {
    let staging = flow.staging()?;
    let markers = staging.done(stage, &loaded.chunks).await?;
    let committed: HashSet<(String, String)> = markers
        .iter()
        .map(|m| (m.table.clone(), m.chunk_id.clone()))
        .collect();
    let (rejected, filtered) = match stage {
        Stage::Transform => (
            committed_rejects(store, &loaded.job_id, &committed).await?,
            committed_filtered(store, &loaded.job_id, &committed).await?,
        ),
        Stage::Extract => {
            let mut rejected: HashMap<String, u64> = HashMap::new();
            for (table, specs) in &loaded.chunks {
                for order in 0..specs.len() {
                    *rejected.entry(table.clone()).or_default() +=
                        staging.read_rejects(table, order)?.len() as u64;
                }
            }
            (rejected, HashMap::new())
        }
    };
    let mut tables = Vec::new();
    for (t, decision) in &loaded.tables {
        let key = t.target.name.to_string();
        let rows: u64 = markers
            .iter()
            .filter(|m| m.table == key)
            .map(|m| m.rows)
            .sum();
        let rows_rejected = rejected.get(&key).copied().unwrap_or(0);
        let rows_filtered = filtered.get(&key).copied().unwrap_or(0);
        tables.push(TableSummary {
            source: t.source.to_string(),
            target: key.clone(),
            source_rows: rows + rows_rejected + rows_filtered,
            rows_written: rows,
            rows_rejected,
            rows_filtered,
            rows_filtered_at_source: 0,
            filter_pushed: None,
            transforms: table_transforms
                .get(&key)
                .map(|t| t.summary())
                .unwrap_or_default(),
            target_rows: None,
            bytes: 0,
            chunks: loaded.chunks.get(&key).map_or(0, Vec::len),
            chunks_resumed: 0,
            decision: decision.clone(),
            notes: vec![format!(
                "staged in {}",
                staging.stage_dir(&key, stage).display()
            )],
        });
    }
    Ok(RunSummary {
        job_id: loaded.job_id.clone(),
        job_name: plan.job_name().to_string(),
        state: if stage == Stage::Extract {
            "extracted".into()
        } else {
            "transformed".into()
        },
        resumed: loaded.resumed,
        rows: tables.iter().map(|t| t.rows_written).sum(),
        bytes: 0,
        rejects: tables.iter().map(|t| t.rows_rejected).sum(),
        tables,
        duration_secs: 0.0,
        views_not_migrated: vec![],
        warnings: vec![],
        scan: ScanMode::Off,
        hazards: vec![],
        policy_changes: vec![],
        validation: None,
        estimate: None,
    })
}

/// Runs one chunk with retries. A retry first checks the markers: a chunk whose commit went
/// through before the connection dropped is done, not loaded twice.
async fn run_chunk(
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    store: &Store,
    job_id: &str,
    task: &ChunkTask,
    retries: u32,
    policies: decant_core::plan::Policies,
) -> Result<(u64, u64, LocalCounts), ConnectorError> {
    let key = task.table.target.name.to_string();
    let mut attempt = 1;
    loop {
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let result = attempt_chunk(
            source.clone(),
            target.clone(),
            store,
            job_id,
            task,
            &policies,
            counted.clone(),
        )
        .await;
        match result {
            Ok(r) => return Ok(r),
            Err(e) if e.is_retriable() && attempt < retries => {
                task.progress
                    .rows_done
                    .fetch_sub(counted.load(Ordering::Relaxed), Ordering::Relaxed);
                let wait = Duration::from_millis(500 * (1 << attempt.min(6)));
                tracing::warn!(table = %key, chunk = %task.chunk.id, attempt, error = %e, "chunk failed, retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                // A staged file is renamed into place last: a failed attempt never left one.
                if task.flow.writes_target()
                    && let Ok(markers) = target.committed_chunks(job_id).await
                    && let Some(m) = markers
                        .iter()
                        .find(|m| m.table == key && m.chunk_id == task.chunk.id)
                {
                    // Committed before the connection dropped: its policy counts are lost with
                    // the attempt, so the summary may undercount them (logged, never silent).
                    tracing::warn!(table = %key, chunk = %task.chunk.id, "chunk committed before the connection dropped");
                    task.progress.rows_done.fetch_add(m.rows, Ordering::Relaxed);
                    return Ok((m.rows, 0, LocalCounts::new()));
                }
                attempt += 1;
            }
            Err(e) => {
                task.progress
                    .rows_done
                    .fetch_sub(counted.load(Ordering::Relaxed), Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

async fn attempt_chunk(
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    store: &Store,
    job_id: &str,
    task: &ChunkTask,
    policies: &decant_core::plan::Policies,
    counted: Arc<std::sync::atomic::AtomicU64>,
) -> Result<(u64, u64, LocalCounts), ConnectorError> {
    let t = &task.table;
    let request = ReadRequest {
        table: t.source.clone(),
        columns: t.read_columns(),
        chunk: task.chunk.clone(),
        batch_rows: task.batch_rows,
        schema: t.source_schema(),
        // A fresh change log per attempt: only a committed attempt's counts are kept.
        policies: decant_core::plan::Policies {
            changes: Default::default(),
            ..policies.clone()
        },
        rejects: Default::default(),
        filter: task.transforms.pushed.clone(),
    };
    let reader_changes = request.policies.changes.clone();
    let rejects = request.rejects.clone();
    let mut reserved = RejectReservation {
        total: &task.rejected,
        rows: 0,
    };
    let target_schema = t.target_schema();
    let flow = task.flow.clone();
    let mut transform = task
        .transforms
        .compiled
        .as_ref()
        .filter(|_| flow.applies_steps())
        .map(|c| c.begin_chunk(&task.chunk.id));
    // Batches of transformed chunks carry the target's columns already.
    let transformed = transform.is_some()
        || (flow.input == Some(Stage::Transform) && task.transforms.compiled.is_some());
    let mut limits = crate::transform_run::Reservation::default();
    let (rtx, mut rrx) = mpsc::channel(2);
    let (wtx, wrx) = chunk_channel(2);
    let reader = spawn_reader(source, request, task, rtx)?;
    let mut hasher = task
        .recorded
        .as_ref()
        .and_then(|r| r.hasher(t, &task.chunk));
    let relay = async {
        let mut keys: Vec<i64> = Vec::new();
        let mut bytes = 0u64;
        let mut changed = LocalCounts::new();
        let (mut filtered, mut rule_rejects) = (0u64, 0u64);
        // With transforms, converted columns are the target's, named by the target.
        let column_name = |col: usize| -> String {
            if transformed {
                t.target
                    .columns
                    .get(col)
                    .map_or_else(String::new, |c| c.name.clone())
            } else {
                t.source_columns
                    .get(col)
                    .map_or_else(String::new, |c| c.name.clone())
            }
        };
        while let Some(batch) = rrx.recv().await {
            // A row larger than the whole ceiling cannot be held to it: stop with a message
            // rather than let the process grow (a reader allocates one row at a time at most).
            if batch.num_rows() == 1 && batch.get_array_memory_size() as u64 > task.max_memory {
                return Err(ConnectorError::Value {
                    table: t.source.to_string(),
                    column: "(row)".into(),
                    range: task.chunk.range.describe(),
                    message: format!(
                        "a single row of {} MB is larger than the memory ceiling of {} MB; raise --max-memory or load.max_memory",
                        batch.get_array_memory_size() >> 20,
                        task.max_memory >> 20
                    ),
                });
            }
            let batch = if flow.applies_steps() {
                crate::policy::apply(&batch, &t.checks, &mut changed).map_err(
                    |(col, message)| ConnectorError::Value {
                        table: t.source.to_string(),
                        column: t
                            .source_columns
                            .get(col)
                            .map_or_else(String::new, |c| c.name.clone()),
                        range: task.chunk.range.describe(),
                        message,
                    },
                )?
            } else {
                batch
            };
            let batch = match transform.as_mut() {
                Some(run) => {
                    let applied = run.apply(&batch).map_err(|e| {
                        crate::transform_run::chunk_error(
                            &t.source.to_string(),
                            task.chunk.range.describe(),
                            e,
                        )
                    })?;
                    filtered += applied.filtered;
                    rule_rejects += applied.rejects.len() as u64;
                    for r in applied.rejects {
                        rejects.push(r);
                    }
                    if applied.batch.num_rows() == 0 {
                        continue;
                    }
                    applied.batch
                }
                None => batch,
            };
            // Staged chunks keep the source's (or the transforms') types: inspectable as they
            // were read, converted on the way into the target.
            let converted = if !flow.converts() {
                batch
            } else {
                convert_batch(&batch, &target_schema).map_err(|(col, message)| {
                    ConnectorError::Value {
                        table: t.source.to_string(),
                        column: column_name(col),
                        range: task.chunk.range.describe(),
                        message: format!(
                            "cannot convert to the target type {}: {message}",
                            t.target.columns.get(col).map_or("", |c| &c.native_type)
                        ),
                    }
                })?
            };
            if let Some(col) = task.key_capture {
                let values =
                    arrow_cast::cast(converted.column(col), &arrow_schema::DataType::Int64)
                        .map_err(|e| ConnectorError::Internal(e.to_string()))?;
                keys.extend(
                    arrow_array::cast::as_primitive_array::<arrow_array::types::Int64Type>(&values)
                        .iter()
                        .flatten(),
                );
            }
            let n = converted.num_rows() as u64;
            bytes += converted.get_array_memory_size() as u64;
            counted.fetch_add(n, Ordering::Relaxed);
            task.progress.rows_done.fetch_add(n, Ordering::Relaxed);
            task.progress
                .bytes_done
                .fetch_add(converted.get_array_memory_size() as u64, Ordering::Relaxed);
            if let Some(h) = hasher.as_mut() {
                h.add(&converted);
            }
            wtx.send(converted).await?;
        }
        let read = reader.await??;
        if let Some(h) = hasher.as_mut() {
            h.left_out(filtered, rule_rejects);
        }
        if !flow.applies_steps() {
            if flow.output() == Some(Stage::Extract) {
                // The reader's rejects wait beside the chunk for the phase that quarantines.
                let staging = flow.staging().map_err(internal)?.clone();
                let (key, order, found) = (t.target.name.to_string(), task.order, rejects.take());
                tokio::task::spawn_blocking(move || {
                    staging.write_rejects(&key, order, &found).map_err(internal)
                })
                .await??;
            }
            // Transformed chunks were quarantined, filtered and counted by the transform phase;
            // what rollback deletes is still this load's to record.
            if task.key_capture.is_some() {
                store
                    .replace_inserted_keys(
                        job_id,
                        &t.target.name.to_string(),
                        &task.chunk.id,
                        &keys,
                    )
                    .await
                    .map_err(|e| ConnectorError::Internal(e.to_string()))?;
            }
            wtx.finish().await?;
            return Ok::<_, ConnectorError>((read, bytes, changed));
        }
        // The chunk's rejects reach the quarantine before the chunk may commit, replacing an
        // earlier attempt's: if the commit then fails, the retry replaces them again.
        // They are stored even when they pass the limit, so the user sees what stopped the job.
        let quarantined = rejects.take();
        store
            .replace_rejects(
                job_id,
                &t.target.name.to_string(),
                &task.chunk.id,
                &quarantined,
            )
            .await
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        reserved.reserve(quarantined.len() as u64, task.max_rejects)?;
        // What rollback deletes, stored before the chunk may commit (a chunk whose marker
        // never commits has its keys ignored by rollback).
        if task.key_capture.is_some() {
            store
                .replace_inserted_keys(job_id, &t.target.name.to_string(), &task.chunk.id, &keys)
                .await
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        }
        store
            .replace_filtered(job_id, &t.target.name.to_string(), &task.chunk.id, filtered)
            .await
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        // Records this chunk read: rows (some filtered or rejected by rules) plus the records
        // the reader itself refused.
        let records = read + quarantined.len() as u64 - rule_rejects;
        let tt = &task.transforms;
        let table_rejected = limits.add(&tt.rejected, quarantined.len() as u64);
        let table_seen = limits.add(&tt.seen, records);
        let job_seen = limits.add(&task.job_seen, records);
        if let Some(limit) = tt.max_rejects
            && table_rejected > limit
        {
            return Err(ConnectorError::Config(format!(
                "{table_rejected} records of {} rejected, more than its max_rejects = {limit}; `decant rejects` lists them: \
                 fix the data or the rules, or raise the limit, and run again to resume",
                t.source
            )));
        }
        crate::transform_run::check_ratio(
            &format!("[tables.\"{}\"] max_reject_ratio", t.source),
            table_rejected,
            table_seen,
            tt.max_reject_ratio,
        )?;
        crate::transform_run::check_ratio(
            "load.max_reject_ratio",
            task.rejected.load(Ordering::SeqCst),
            job_seen,
            task.max_reject_ratio,
        )?;
        // Only a reader that finished cleanly lets the writer commit.
        wtx.finish().await?;
        Ok::<_, ConnectorError>((read - filtered - rule_rejects, bytes, changed))
    };
    let writer: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<u64, ConnectorError>> + Send + '_>,
    > = match (flow.output(), &task.upsert) {
        (None, Some(names)) => {
            let upsert = target.upsert().ok_or_else(|| {
                ConnectorError::Config(format!("{}: this target cannot upsert", t.target.name))
            })?;
            let side = names.preimages.as_ref().ok_or_else(|| {
                ConnectorError::Internal(format!("{}: no pre-image table", t.target.name))
            })?;
            Box::pin(upsert.write_chunk_upsert(
                job_id,
                &t.target,
                &names.key,
                side,
                &task.chunk.id,
                wrx,
            ))
        }
        (None, None) => Box::pin(target.write_chunk(job_id, &t.target, &task.chunk.id, wrx)),
        (Some(stage), _) => {
            let staging = flow.staging().map_err(internal)?;
            let path = staging.chunk_file(&t.target.name.to_string(), stage, task.order);
            let schema = match (stage, &task.transforms.compiled) {
                (Stage::Transform, Some(c)) => c.output_schema(),
                _ => t.source_schema(),
            };
            Box::pin(decant_connectors::staged::write_staged(path, schema, wrx))
        }
    };
    // Both halves run to their end, so the error reported is the cause, not its echo: a failed
    // reader makes the writer see a closed channel, a failed writer makes the relay see one.
    let (relayed, written) = tokio::join!(relay, writer);
    let ((read, bytes, changed), written) = match (relayed, written) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), Err(ConnectorError::ChannelClosed) | Ok(_)) => return Err(e),
        (Err(ConnectorError::ChannelClosed) | Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(_)) => return Err(e),
    };
    if read != written {
        return Err(ConnectorError::Internal(format!(
            "chunk {}: read {read} rows but wrote {written}",
            task.chunk.id
        )));
    }
    let mut changed = changed;
    for (key, n) in reader_changes.snapshot() {
        *changed.entry(key).or_default() += n;
    }
    reserved.keep();
    if let (Some(r), Some(h)) = (&task.recorded, hasher) {
        r.record(h);
    }
    limits.keep();
    if let Some(run) = transform {
        task.transforms.merge(&run.commit());
    }
    Ok((written, bytes, changed))
}

fn internal(e: EngineError) -> ConnectorError {
    ConnectorError::Internal(e.to_string())
}

/// Starts the chunk's reader: the source, or the staged file of the stage this phase reads
/// (an extracted chunk's reader rejects join the chunk's reject log, for the phase that
/// quarantines them).
fn spawn_reader(
    source: Arc<dyn Source>,
    request: ReadRequest,
    task: &ChunkTask,
    tx: mpsc::Sender<arrow_array::RecordBatch>,
) -> Result<tokio::task::JoinHandle<Result<u64, ConnectorError>>, ConnectorError> {
    let Some(stage) = task.flow.input else {
        return Ok(tokio::spawn(async move {
            source.read_chunk(&request, tx).await
        }));
    };
    let staging = task.flow.staging().map_err(internal)?.clone();
    let key = task.table.target.name.to_string();
    let (order, schema, batch_rows) = (task.order, task.input_schema.clone(), task.batch_rows);
    Ok(tokio::task::spawn_blocking(move || {
        if stage == Stage::Extract {
            for r in staging.read_rejects(&key, order).map_err(internal)? {
                request.rejects.push(r);
            }
        }
        let path = staging.chunk_file(&key, stage, order);
        decant_connectors::staged::read_staged(&path, &schema, batch_rows, &tx)
    }))
}

/// Quarantined records per target table, of the chunks in `committed` only.
async fn committed_rejects(
    store: &Store,
    job_id: &str,
    committed: &HashSet<(String, String)>,
) -> Result<HashMap<String, u64>, EngineError> {
    let mut per_table = HashMap::new();
    for ((table, chunk), n) in store.reject_counts(job_id).await? {
        if committed.contains(&(table.clone(), chunk)) {
            *per_table.entry(table).or_default() += n;
        }
    }
    Ok(per_table)
}

/// Rows left out by `where` filters per target table, of the chunks in `committed` only.
async fn committed_filtered(
    store: &Store,
    job_id: &str,
    committed: &HashSet<(String, String)>,
) -> Result<HashMap<String, u64>, EngineError> {
    let mut per_table = HashMap::new();
    for ((table, chunk), n) in store.filtered_counts(job_id).await? {
        if committed.contains(&(table.clone(), chunk)) {
            *per_table.entry(table).or_default() += n;
        }
    }
    Ok(per_table)
}

/// A chunk's share of the job's reject budget, taken before it commits and given back if the
/// attempt fails, so that chunks committing at the same time cannot together pass the limit.
struct RejectReservation<'a> {
    total: &'a std::sync::atomic::AtomicU64,
    rows: u64,
}

impl RejectReservation<'_> {
    fn reserve(&mut self, rows: u64, limit: u64) -> Result<(), ConnectorError> {
        let before = self.total.fetch_add(rows, Ordering::SeqCst);
        self.rows = rows;
        if before + rows > limit {
            return Err(ConnectorError::TooManyRejects {
                rejected: before + rows,
                limit,
            });
        }
        Ok(())
    }

    /// The chunk committed: its rejects stay counted.
    fn keep(mut self) {
        self.rows = 0;
    }
}

impl Drop for RejectReservation<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.rows, Ordering::SeqCst);
    }
}
