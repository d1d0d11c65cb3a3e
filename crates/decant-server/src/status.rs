//! The status of a job: from memory while this process runs it, else from the control store.

use std::sync::Arc;

use decant_store::JobState;
use serde::Serialize;

use crate::error::ApiError;
use crate::jobs::{JobManager, LiveJob};

/// A job's state and progress, as `GET /migration/status` answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub job_id: String,
    pub name: String,
    /// `initialized`, `queued`, `running`, `paused`, `succeeded`, `failed`, `cancelled` or
    /// `rolled_back`.
    pub state: String,
    /// What the runner is doing: `introspecting`, `creating tables`, `loading`,
    /// `building indexes`, `verifying`, `done`...; for a staged job the phase last started:
    /// `extract`, `transform` or `load` (then `step` says what it does).
    pub phase: String,
    /// The runner's current step: `introspecting`, `extracting`, `extracted`, `transforming`,
    /// `transformed`, `creating tables`, `loading`, `building indexes`, `verifying`, `done`...
    pub step: String,
    pub tables: Vec<TableStatus>,
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub bytes_done: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Rows per second since the load started (live runs only).
    pub rows_per_second: f64,
    /// Seconds left at the current rate, when there is one.
    pub eta_seconds: Option<f64>,
    /// Records quarantined so far.
    pub rejects: u64,
    /// The errors recorded for the job, oldest first.
    pub errors: Vec<String>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// `true` while a validation runs.
    pub validating: bool,
    /// The last validation's report (`outcome`: `match`, `differences` or `error`).
    #[schema(value_type = Option<Object>)]
    pub validation: Option<serde_json::Value>,
    /// When a succeeded job's swap backups and upsert pre-images expire (RFC 3339): the
    /// service then finalizes the job by itself. Set only when the plan has
    /// `load.swap_retention` and the job kept a backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups_expire_at: Option<String>,
    /// When the job was finalized (explicitly or because its backups expired); after that it
    /// cannot be rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalized_at: Option<String>,
}

/// One table's progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableStatus {
    pub name: String,
    pub rows_estimated: u64,
    pub rows_done: u64,
    pub bytes_done: u64,
    pub chunks_total: u64,
    pub chunks_done: u64,
}

/// The status of `job`, from its live progress (memory only: fast while it loads) plus the
/// store's error and reject counts.
pub async fn job_status(manager: &JobManager, job: &Arc<LiveJob>) -> Result<JobStatus, ApiError> {
    let (state, staged, phase, tables, started, error, validating, validation) = {
        let inner = job.inner.lock().expect("job lock");
        (
            inner.state,
            inner.phase,
            inner.progress.phase(),
            inner.progress.tables(),
            inner.started,
            inner.error.clone(),
            inner.validating,
            inner.validation.clone(),
        )
    };
    let mut tables: Vec<TableStatus> = tables
        .into_iter()
        .map(|t| TableStatus {
            name: t.name,
            rows_estimated: t.rows_estimated,
            rows_done: t.rows_done,
            bytes_done: t.bytes_done,
            chunks_total: t.chunks_total,
            chunks_done: t.chunks_done,
        })
        .collect();
    if tables.is_empty() {
        // Not run by this process (yet): the store's chunk progress.
        let done_state = match staged {
            Some(decant_engine::Phase::Extract) => "extracted",
            Some(decant_engine::Phase::Transform) => "transformed",
            _ => "done",
        };
        tables = stored_tables(manager, &job.id, done_state).await?;
    }
    let rows_done: u64 = tables.iter().map(|t| t.rows_done).sum();
    let rows_estimated: u64 = tables.iter().map(|t| t.rows_estimated).sum();
    let live = matches!(state, JobState::Running | JobState::Paused);
    let elapsed = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let rows_per_second = if live && elapsed > 0.0 {
        rows_done as f64 / elapsed
    } else {
        0.0
    };
    let eta_seconds = (live && rows_per_second > 0.0)
        .then(|| rows_estimated.saturating_sub(rows_done) as f64 / rows_per_second);
    // A live job answers from the cache and, when it is older than 500 ms, refreshes it in the
    // background: a status poll never waits on the store while ten jobs write to it. A finished
    // job (or the first poll) reads the store, so its final counts are exact.
    let cached = {
        let mut inner = job.inner.lock().expect("job lock");
        let stale = inner
            .store_cache
            .as_ref()
            .is_none_or(|(at, _, _)| at.elapsed() >= std::time::Duration::from_millis(500));
        if live && stale && inner.store_cache.is_some() && !inner.store_refreshing {
            inner.store_refreshing = true;
            let (manager, job) = (manager.clone(), job.clone());
            tokio::spawn(async move {
                let read = store_counts(&manager, &job.id).await;
                let mut inner = job.inner.lock().expect("job lock");
                inner.store_refreshing = false;
                if let Ok((rejects, errors)) = read {
                    inner.store_cache = Some((std::time::Instant::now(), rejects, errors));
                }
            });
        }
        inner.store_cache.clone().filter(|_| live)
    };
    let (rejects, errors) = match cached {
        Some((_, rejects, errors)) => (rejects, errors),
        None => {
            let (rejects, errors) = store_counts(manager, &job.id).await?;
            job.inner.lock().expect("job lock").store_cache =
                Some((std::time::Instant::now(), rejects, errors.clone()));
            (rejects, errors)
        }
    };
    let step = match state {
        JobState::Initialized | JobState::Queued if phase == "planning" => "waiting".to_string(),
        JobState::Queued => "waiting".to_string(),
        _ if phase == "planning" && !live => state.as_str().to_string(),
        _ => phase,
    };
    let phase = match staged {
        Some(p) => p.as_str().to_string(),
        None => step.clone(),
    };
    // Only a succeeded job has backups to expire or finalize; running jobs stay off the store.
    let retention = if state == JobState::Succeeded {
        manager.store.retention(&job.id).await?
    } else {
        decant_store::Retention::default()
    };
    Ok(JobStatus {
        job_id: job.id.clone(),
        name: job.name.clone(),
        state: state.as_str().to_string(),
        phase,
        step,
        rows_done,
        rows_estimated,
        bytes_done: tables.iter().map(|t| t.bytes_done).sum(),
        chunks_done: tables.iter().map(|t| t.chunks_done).sum(),
        chunks_total: tables.iter().map(|t| t.chunks_total).sum(),
        tables,
        rows_per_second,
        eta_seconds,
        rejects,
        errors,
        error,
        validating,
        validation,
        backups_expire_at: retention.backups_expire_at,
        finalized_at: retention.finalized_at,
    })
}

/// The job's quarantined records and error messages, from the store.
async fn store_counts(manager: &JobManager, job: &str) -> Result<(u64, Vec<String>), ApiError> {
    let rejects: u64 = manager.store.reject_counts(job).await?.values().sum();
    let errors: Vec<String> = manager
        .store
        .error_records(job)
        .await?
        .into_iter()
        .map(|e| match e.table_name {
            Some(t) => format!("{t}: {}", e.message),
            None => e.message,
        })
        .collect();
    Ok((rejects, errors))
}

/// Per-table progress from `progress_tracking`, counting the chunks in `done_state`
/// (`done`, or `extracted`/`transformed` for the staged phase last started).
async fn stored_tables(
    manager: &JobManager,
    job: &str,
    done_state: &str,
) -> Result<Vec<TableStatus>, ApiError> {
    let mut tables: Vec<TableStatus> = Vec::new();
    for c in manager.store.chunks(job).await? {
        if tables.last().is_none_or(|t| t.name != c.table_name) {
            tables.push(TableStatus {
                name: c.table_name.clone(),
                rows_estimated: 0,
                rows_done: 0,
                bytes_done: 0,
                chunks_total: 0,
                chunks_done: 0,
            });
        }
        let t = tables.last_mut().expect("pushed above");
        t.rows_estimated += c.estimated_rows.max(0) as u64;
        t.chunks_total += 1;
        if c.state == done_state {
            t.chunks_done += 1;
            t.rows_done += c.rows_done.max(0) as u64;
        }
    }
    Ok(tables)
}
