//! The HTTP handlers: the seed's `/migration/*` verbs and the `/api/v1/` resources.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use decant_core::plan::Plan;
use decant_engine::Phase;
use decant_store::JobState;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::jobs::{JobManager, LiveJob};
use crate::status::{JobStatus, job_status};

/// The body of every job verb.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job_id: String,
    /// Rollback only: go ahead with truncate and drop loads, whose earlier rows are lost.
    #[serde(default)]
    pub force: bool,
}

/// `?job=ID`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct JobQuery {
    /// The job id `initialize` returned.
    pub job: String,
}

/// What a job verb answers: the job and its state after the call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub job_id: String,
    pub state: String,
}

/// `POST /migration/initialize`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InitializeResponse {
    pub job_id: String,
    pub state: String,
    /// The computed plan: per table the mapping, DDL, decision and chunks; warnings; hazards.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
}

/// A job in `GET /api/v1/jobs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub state: String,
    pub error: Option<String>,
    pub created_at: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

async fn live_job(manager: &JobManager, id: &str) -> Result<std::sync::Arc<LiveJob>, ApiError> {
    manager
        .load(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))
}

fn state_of(job: &LiveJob) -> JobState {
    job.inner.lock().expect("job lock").state
}

fn accepted(job: &LiveJob) -> Json<Accepted> {
    Json(Accepted {
        job_id: job.id.clone(),
        state: state_of(job).as_str().to_string(),
    })
}

/// Parses a JSON body ourselves, so that a bad one gets the API's error shape.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

/// Validates a plan, introspects source and target, computes mapping, DDL and chunks, and
/// stores the job (nothing on the target is touched).
#[utoipa::path(post, path = "/migration/initialize", tag = "migration",
    request_body(content = Object, description = "A plan: the same keys as the TOML plan (docs/service.md)"),
    responses(
        (status = 201, description = "The job is stored", body = InitializeResponse),
        (status = 400, description = "The body is not a plan", body = crate::error::ErrorBody),
        (status = 409, description = "An unfinished job has the same name", body = crate::error::ErrorBody),
        (status = 422, description = "The plan cannot run; every problem is listed", body = crate::error::ErrorBody),
    ))]
pub async fn create_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<InitializeResponse>), ApiError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let plan = Plan::from_json(text).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_plan",
        message: "the body is not a valid plan".into(),
        details: vec![e.to_string()],
    })?;
    if let Some(job) = manager.store.latest_job(plan.job_name()).await?
        && !job.state.is_final()
    {
        return Err(ApiError::conflict(format!(
            "job {} of the same name ({}) is {}; give the plan another `name`, or roll back or finish that job",
            job.id,
            job.name,
            job.state.as_str()
        )));
    }
    let opts = decant_engine::RunOptions {
        state_path: manager.state_path.clone(),
        ..Default::default()
    };
    let init = decant_engine::initialize(&plan, &opts).await?;
    manager.register(&init.job_id, &init.job_name, plan, JobState::Initialized);
    let computed = serde_json::to_value(&init).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(InitializeResponse {
            job_id: init.job_id,
            state: JobState::Initialized.as_str().to_string(),
            plan: computed,
        }),
    ))
}

/// Runs a job in the background (all phases, no staging); it queues while the concurrency
/// limit is reached. Also restarts a failed or cancelled job, resuming from its markers.
#[utoipa::path(post, path = "/migration/run", tag = "migration", request_body = JobRef,
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is running or finished", body = crate::error::ErrorBody),
    ))]
pub async fn run_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    start_verb(&manager, &body, None).await
}

/// Extracts a job in the background: every chunk's source rows, as read, into Parquet files
/// under the staging directory (`<staging>/<job>/<table>/extract/chunk-000012.parquet`); the
/// target is not touched. Runs again after a failure or a cancel to stage the missing chunks.
#[utoipa::path(post, path = "/migration/extract", tag = "migration", request_body = JobRef,
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is running or finished", body = crate::error::ErrorBody),
    ))]
pub async fn extract_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    start_verb(&manager, &body, Some(Phase::Extract)).await
}

/// Transforms an extracted job in the background: reads the extracted chunks, applies the
/// plan's policies, transforms, rules and masks (the code path of run) and writes the result
/// to `<staging>/<job>/<table>/transform/`; rejects go to the quarantine
/// (`/api/v1/jobs/{id}/errors`) before anything touches the target.
#[utoipa::path(post, path = "/migration/transform", tag = "migration", request_body = JobRef,
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is running or finished, or not extracted yet", body = crate::error::ErrorBody),
    ))]
pub async fn transform_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    start_verb(&manager, &body, Some(Phase::Transform)).await
}

/// Loads the staged chunks into the target in the background, with the run's exactly-once
/// chunk markers: the transformed chunks, or the extracted ones when the plan has no transforms.
#[utoipa::path(post, path = "/migration/load", tag = "migration", request_body = JobRef,
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is running or finished, or its chunks are not staged yet", body = crate::error::ErrorBody),
    ))]
pub async fn load_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    start_verb(&manager, &body, Some(Phase::Load)).await
}

/// Queues a run (`phase` none) or one staged phase of the job named in `body`.
async fn start_verb(
    manager: &JobManager,
    body: &[u8],
    phase: Option<Phase>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let r: JobRef = parse_body(body)?;
    let job = live_job(manager, &r.job_id).await?;
    let state = state_of(&job);
    let verb = phase.map_or("run", Phase::as_str);
    if !matches!(
        state,
        JobState::Initialized | JobState::Failed | JobState::Cancelled
    ) {
        return Err(ApiError::conflict(format!(
            "job {} is {}; only an initialized, failed or cancelled job can {verb}",
            job.id,
            state.as_str()
        )));
    }
    if let Some(phase) = phase {
        match decant_engine::staging::check_ready(&manager.store, &manager.staging, &job.id, phase)
            .await
        {
            Ok(_) => {}
            Err(decant_engine::EngineError::NotReady(message)) => {
                return Err(ApiError::conflict(message));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A cancelled job runs again with a fresh control. A pause that came while the last
    // chunks were in flight ended with that run: the job is not paused any more (its state
    // says so), and the next verb must not wait for a resume.
    let job = if job.control.is_cancelled() {
        manager.register(&job.id, &job.name, job.plan.clone(), state)
    } else {
        job.control.resume();
        job
    };
    manager.start(job.clone(), phase).await;
    Ok((StatusCode::ACCEPTED, accepted(&job)))
}

/// Validates the job's target against its source in the background (counts, digests, row
/// diff, rules); the report appears in the status under `validation`.
#[utoipa::path(post, path = "/migration/validate", tag = "migration", request_body = JobRef,
    responses(
        (status = 202, description = "Validation started", body = Accepted),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is loading, or a validation runs", body = crate::error::ErrorBody),
    ))]
pub async fn validate_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let (state, validating) = {
        let inner = job.inner.lock().expect("job lock");
        (inner.state, inner.validating)
    };
    if matches!(
        state,
        JobState::Queued | JobState::Running | JobState::Paused
    ) || validating
    {
        return Err(ApiError::conflict(format!(
            "job {} is {}{}; validate once it has stopped",
            job.id,
            state.as_str(),
            if validating { " and validating" } else { "" }
        )));
    }
    manager.validate(job.clone());
    Ok((StatusCode::ACCEPTED, accepted(&job)))
}

/// Holds a running or queued job between chunks (chunks in flight commit first).
#[utoipa::path(post, path = "/migration/pause", tag = "migration", request_body = JobRef,
    responses((status = 200, body = Accepted), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn pause_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<Json<Accepted>, ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let state = state_of(&job);
    if !matches!(
        state,
        JobState::Queued | JobState::Running | JobState::Paused
    ) {
        return Err(ApiError::conflict(format!(
            "job {} is {}; only a queued or running job can pause",
            job.id,
            state.as_str()
        )));
    }
    manager.pause(&job).await;
    Ok(accepted(&job))
}

/// Lets a paused job go on.
#[utoipa::path(post, path = "/migration/resume", tag = "migration", request_body = JobRef,
    responses((status = 200, body = Accepted), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn resume_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<Json<Accepted>, ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let state = state_of(&job);
    if state != JobState::Paused {
        return Err(ApiError::conflict(format!(
            "job {} is {}; only a paused job can resume",
            job.id,
            state.as_str()
        )));
    }
    manager.resume(&job).await;
    Ok(accepted(&job))
}

/// Cancels a job: a queued one at once; a running one starts no new chunk, its chunks in flight
/// commit, then it ends as `cancelled` (run it again to resume, or roll it back).
#[utoipa::path(post, path = "/migration/cancel", tag = "migration", request_body = JobRef,
    responses((status = 200, body = Accepted), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn cancel_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<Json<Accepted>, ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let state = state_of(&job);
    if !matches!(
        state,
        JobState::Initialized | JobState::Queued | JobState::Running | JobState::Paused
    ) {
        return Err(ApiError::conflict(format!(
            "job {} is {}; there is nothing to cancel",
            job.id,
            state.as_str()
        )));
    }
    manager.cancel(&job).await;
    Ok(accepted(&job))
}

/// Undoes a stopped job on the target: tables it created are dropped, rows an append load
/// inserted are deleted by the keys it recorded, swapped tables are swapped back, upserts
/// restore their pre-images. Truncate and drop loads need `force`; a finalized job is refused.
#[utoipa::path(post, path = "/migration/rollback", tag = "migration", request_body = JobRef,
    responses((status = 200, description = "What was undone, per table", body = Object),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "The job is running or already rolled back", body = crate::error::ErrorBody),
        (status = 422, description = "The job cannot be undone without loss (retry with force), or was finalized (explicitly, or by the service once its load.swap_retention passed)", body = crate::error::ErrorBody)))]
pub async fn rollback_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<Json<decant_engine::RollbackReport>, ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let _undo = job.undo.lock().await;
    let (state, validating) = {
        let inner = job.inner.lock().expect("job lock");
        (inner.state, inner.validating)
    };
    if matches!(
        state,
        JobState::Queued | JobState::Running | JobState::Paused | JobState::RolledBack
    ) || validating
    {
        return Err(ApiError::conflict(format!(
            "job {} is {}; cancel a running job first, a rolled-back job has nothing left to undo",
            job.id,
            state.as_str()
        )));
    }
    let report = decant_engine::rollback(&manager.state_path, &job.id, r.force).await?;
    job.inner.lock().expect("job lock").state = JobState::RolledBack;
    Ok(Json(report))
}

/// Finalizes a succeeded job: drops the backups its swaps kept and the pre-images its upserts
/// recorded. The job can no longer be rolled back. A job whose plan has `load.swap_retention`
/// is finalized by the service itself once that time has passed since it succeeded.
#[utoipa::path(post, path = "/migration/finalize", tag = "migration", request_body = JobRef,
    responses((status = 200, description = "The backup and pre-image tables dropped", body = Object),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "The job has not succeeded", body = crate::error::ErrorBody),
        (status = 422, description = "The job was already finalized (explicitly, or because its backups expired)", body = crate::error::ErrorBody)))]
pub async fn finalize_migration(
    State(manager): State<JobManager>,
    body: axum::body::Bytes,
) -> Result<Json<decant_engine::FinalizeReport>, ApiError> {
    let r: JobRef = parse_body(&body)?;
    let job = live_job(&manager, &r.job_id).await?;
    let _undo = job.undo.lock().await;
    let (state, validating) = {
        let inner = job.inner.lock().expect("job lock");
        (inner.state, inner.validating)
    };
    if state != JobState::Succeeded || validating {
        return Err(ApiError::conflict(format!(
            "job {} is {}; only a succeeded job can be finalized",
            job.id,
            state.as_str()
        )));
    }
    Ok(Json(
        decant_engine::finalize(&manager.state_path, &job.id).await?,
    ))
}

/// State, phase, per-table and total rows, bytes, rows/s, ETA, rejects and errors of a job.
#[utoipa::path(get, path = "/migration/status", tag = "migration", params(JobQuery),
    responses((status = 200, body = JobStatus), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_status(
    State(manager): State<JobManager>,
    Query(q): Query<JobQuery>,
) -> Result<Json<JobStatus>, ApiError> {
    let job = live_job(&manager, &q.job).await?;
    Ok(Json(job_status(&manager, &job).await?))
}

/// The status as server-sent events (`event: status`), every 500 ms until the job stops; the
/// last event has the final state.
#[utoipa::path(get, path = "/migration/status/stream", tag = "migration", params(JobQuery),
    responses((status = 200, description = "text/event-stream of JobStatus", content_type = "text/event-stream", body = JobStatus),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn stream_status(
    State(manager): State<JobManager>,
    Query(q): Query<JobQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = live_job(&manager, &q.job).await?;
    let stream = futures::stream::unfold(
        (manager, job, false, true),
        |(manager, job, done, first)| async move {
            if done {
                return None;
            }
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let status = job_status(&manager, &job).await.ok()?;
            let stopped = !matches!(
                status.state.as_str(),
                "initialized" | "queued" | "running" | "paused"
            ) && !status.validating;
            let event = Event::default()
                .event("status")
                .json_data(&status)
                .unwrap_or_else(|_| Event::default().event("status"));
            Some((Ok(event), (manager, job, stopped, false)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Every job, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, body = Vec<JobSummary>)))]
pub async fn list_jobs(
    State(manager): State<JobManager>,
) -> Result<Json<Vec<JobSummary>>, ApiError> {
    let jobs = manager.store.list_jobs().await?;
    Ok(Json(
        jobs.into_iter()
            .map(|j| {
                // The live state wins: the store's lags a pause by a write.
                let state = manager.get(&j.id).map_or(j.state, |l| state_of(&l));
                JobSummary {
                    id: j.id,
                    name: j.name,
                    state: state.as_str().to_string(),
                    error: j.error,
                    created_at: j.created_at,
                }
            })
            .collect(),
    ))
}

/// One job: its status, stored plan, table mappings and run summary.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_job(
    State(manager): State<JobManager>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = live_job(&manager, &id).await?;
    let status = job_status(&manager, &job).await?;
    let mappings = manager.store.mappings(&id).await?;
    let summary = manager
        .store
        .summary(&id)
        .await?
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
    let tables: Vec<serde_json::Value> = mappings
        .iter()
        .map(|m| {
            serde_json::json!({
                "source_table": m.source_table,
                "target_table": m.target_table,
                "load_order": m.load_order,
                "decision": m.decision,
                "mapping": serde_json::from_str::<serde_json::Value>(&m.mapping_json).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "status": status,
        "plan": job.plan,
        "tables": tables,
        "summary": summary,
    })))
}

/// The job's chunks (`progress_tracking`): range, state, rows, attempts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/chunks", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Vec<Object>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_chunks(
    State(manager): State<JobManager>,
    Path(id): Path<String>,
) -> Result<Json<Vec<decant_store::ChunkRecord>>, ApiError> {
    live_job(&manager, &id).await?;
    Ok(Json(manager.store.chunks(&id).await?))
}

/// The job's progress per table (`progress_tracking` summed, or live while it runs).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/progress", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Vec<crate::status::TableStatus>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_progress(
    State(manager): State<JobManager>,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::status::TableStatus>>, ApiError> {
    let job = live_job(&manager, &id).await?;
    Ok(Json(job_status(&manager, &job).await?.tables))
}

/// The job's errors and quarantined records (`error_logs`).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/errors", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_errors(
    State(manager): State<JobManager>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    live_job(&manager, &id).await?;
    let errors = manager.store.error_records(&id).await?;
    let rejects = manager.store.rejects(&id).await?;
    Ok(Json(
        serde_json::json!({ "errors": errors, "rejects": rejects }),
    ))
}

/// The job's per-table results (`success_records`): rows read, written, in the target.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/results", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Vec<Object>), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_results(
    State(manager): State<JobManager>,
    Path(id): Path<String>,
) -> Result<Json<Vec<decant_store::SuccessRecord>>, ApiError> {
    live_job(&manager, &id).await?;
    Ok(Json(manager.store.results(&id).await?))
}

/// Liveness: the process answers and its control store does.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = Health),
    (status = 500, body = crate::error::ErrorBody)))]
pub async fn get_health(State(manager): State<JobManager>) -> Result<Json<Health>, ApiError> {
    manager.store.list_jobs().await.map(|_| ())?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}
