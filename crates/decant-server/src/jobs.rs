//! The job manager: live jobs in memory (progress, control, state), a concurrency limit with a
//! queue, background runs and validations, and the resume of unfinished jobs at start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use decant_core::plan::Plan;
use decant_engine::{JobControl, Phase, Progress, RunOptions, Staging, ValidateOptions};
use decant_store::{JobState, Store};
use tokio::sync::Semaphore;

/// One job the service knows in memory.
pub struct LiveJob {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub control: JobControl,
    pub inner: Mutex<LiveState>,
    /// Held while a rollback or a finalize (a request's or the retention sweep's) changes the
    /// target's backups, so that the two never interleave on one job.
    pub undo: tokio::sync::Mutex<()>,
}

/// The mutable part of a live job.
pub struct LiveState {
    pub state: JobState,
    /// The staged phase last started (extract, transform, load); `None` for a one-shot run.
    pub phase: Option<Phase>,
    pub progress: Arc<Progress>,
    /// When the current run started loading (for rows/s).
    pub started: Option<Instant>,
    pub error: Option<String>,
    /// The last validation: `running`, or its report as JSON.
    pub validation: Option<serde_json::Value>,
    pub validating: bool,
    /// The store's rejects count and errors of a live job, refreshed in the background at most
    /// every 500 ms, so that status polls never wait on the store while jobs write to it.
    pub store_cache: Option<(Instant, u64, Vec<String>)>,
    /// A background read is refreshing `store_cache`.
    pub store_refreshing: bool,
}

/// Every job of this process, and the limit on how many run at once.
#[derive(Clone)]
pub struct JobManager {
    pub store: Store,
    pub state_path: PathBuf,
    /// Where staged phases write their Parquet files, one folder per job.
    pub staging: PathBuf,
    jobs: Arc<Mutex<HashMap<String, Arc<LiveJob>>>>,
    slots: Arc<Semaphore>,
    /// The runtime the jobs run on: the one `new` was called on, not the API's own
    /// (`Server::serve` answers requests from a separate thread, so CPU-heavy loads do not
    /// hold up status).
    runtime: tokio::runtime::Handle,
}

impl JobManager {
    pub fn new(
        store: Store,
        state_path: PathBuf,
        staging: PathBuf,
        max_concurrent: usize,
    ) -> JobManager {
        JobManager {
            store,
            state_path,
            staging,
            jobs: Arc::default(),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveJob>> {
        self.jobs.lock().expect("jobs lock").get(id).cloned()
    }

    /// Registers a stored job in memory (after initialize, or at start for unfinished jobs).
    pub fn register(&self, id: &str, name: &str, plan: Plan, state: JobState) -> Arc<LiveJob> {
        let job = Arc::new(LiveJob {
            id: id.to_string(),
            name: name.to_string(),
            plan,
            control: JobControl::default(),
            undo: tokio::sync::Mutex::new(()),
            inner: Mutex::new(LiveState {
                state,
                phase: Staging::new(&self.staging, id).recorded_phase(),
                progress: Arc::new(Progress::default()),
                started: None,
                error: None,
                validation: None,
                validating: false,
                store_cache: None,
                store_refreshing: false,
            }),
        });
        self.jobs
            .lock()
            .expect("jobs lock")
            .insert(id.to_string(), job.clone());
        job
    }

    /// Loads a stored job into memory when this process has not seen it yet.
    pub async fn load(&self, id: &str) -> Result<Option<Arc<LiveJob>>, decant_store::StoreError> {
        if let Some(j) = self.get(id) {
            return Ok(Some(j));
        }
        let Some(record) = self.store.job(id).await? else {
            return Ok(None);
        };
        let plan: Plan = serde_json::from_str(&record.plan_json)?;
        let job = self.register(&record.id, &record.name, plan, record.state);
        job.inner.lock().expect("job lock").error = record.error;
        Ok(Some(job))
    }

    async fn set_state(&self, job: &LiveJob, state: JobState, error: Option<&str>) {
        {
            let mut inner = job.inner.lock().expect("job lock");
            inner.state = state;
            if error.is_some() {
                inner.error = error.map(str::to_string);
            }
        }
        if let Err(e) = self.store.set_job_state(&job.id, state, error).await {
            tracing::error!(job = %job.id, error = %e, "cannot record the job state");
        }
    }

    /// Queues a run of `job` (all phases, or the staged `phase`); it starts when a slot is
    /// free. The runner resumes from the target's chunk markers (or the staged files), so a job
    /// that was running before a restart moves each chunk once.
    pub async fn start(&self, job: Arc<LiveJob>, phase: Option<Phase>) {
        let paused = job.control.is_paused();
        {
            let mut inner = job.inner.lock().expect("job lock");
            inner.progress = Arc::new(Progress::default());
            inner.error = None;
            inner.started = None;
            inner.phase = phase;
        }
        // Recorded before the job is queued, so that a restart resumes this phase.
        if let Err(e) = Staging::new(&self.staging, &job.id).record_phase(phase) {
            tracing::error!(job = %job.id, error = %e, "cannot record the job's phase");
        }
        self.set_state(
            &job,
            if paused {
                JobState::Paused
            } else {
                JobState::Queued
            },
            None,
        )
        .await;
        let manager = self.clone();
        self.runtime.spawn(async move {
            let Ok(_permit) = manager.slots.clone().acquire_owned().await else {
                return;
            };
            if job.control.is_cancelled() {
                manager.set_state(&job, JobState::Cancelled, None).await;
                return;
            }
            let progress = {
                let mut inner = job.inner.lock().expect("job lock");
                inner.started = Some(Instant::now());
                if inner.state == JobState::Queued {
                    inner.state = JobState::Running;
                }
                inner.progress.clone()
            };
            let opts = RunOptions {
                state_path: manager.state_path.clone(),
                progress,
                control: job.control.clone(),
                phase,
                staging: Some(manager.staging.clone()),
                ..Default::default()
            };
            let result = decant_engine::run(&job.plan, &opts).await;
            match result {
                Ok(summary) if matches!(phase, Some(Phase::Extract | Phase::Transform)) => {
                    // Staged, target untouched: the job waits for its next phase.
                    tracing::info!(job = %job.id, rows = summary.rows, phase = ?phase, "phase done");
                    manager.set_state(&job, JobState::Initialized, None).await;
                }
                Ok(summary) => {
                    tracing::info!(job = %job.id, rows = summary.rows, "job succeeded");
                    manager.set_state(&job, JobState::Succeeded, None).await;
                }
                Err(decant_engine::EngineError::Cancelled) => {
                    manager
                        .set_state(&job, JobState::Cancelled, Some("cancelled"))
                        .await;
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "job failed");
                    let message = if e.domain() == decant_core::ErrorDomain::Internal {
                        "internal error; the server log has the cause".to_string()
                    } else {
                        e.to_string()
                    };
                    manager
                        .set_state(&job, JobState::Failed, Some(&message))
                        .await;
                }
            }
        });
    }

    pub async fn pause(&self, job: &LiveJob) {
        job.control.pause();
        let state = job.inner.lock().expect("job lock").state;
        if matches!(state, JobState::Running | JobState::Queued) {
            self.set_state(job, JobState::Paused, None).await;
        }
    }

    pub async fn resume(&self, job: &LiveJob) {
        job.control.resume();
        let (state, started) = {
            let inner = job.inner.lock().expect("job lock");
            (inner.state, inner.started.is_some())
        };
        if state == JobState::Paused {
            let next = if started {
                JobState::Running
            } else {
                JobState::Queued
            };
            self.set_state(job, next, None).await;
        }
    }

    /// Cancels a queued or running job: a queued one at once, a running one once its chunks in
    /// flight have committed.
    pub async fn cancel(&self, job: &LiveJob) {
        job.control.cancel();
        let (state, started) = {
            let inner = job.inner.lock().expect("job lock");
            (inner.state, inner.started.is_some())
        };
        let waiting = matches!(state, JobState::Queued | JobState::Initialized)
            || (state == JobState::Paused && !started);
        if waiting {
            self.set_state(job, JobState::Cancelled, Some("cancelled"))
                .await;
        }
    }

    /// Runs the validation of `job`'s plan in the background; the report lands in the status.
    pub fn validate(&self, job: Arc<LiveJob>) {
        let progress = Arc::new(Progress::default());
        {
            let mut inner = job.inner.lock().expect("job lock");
            inner.validating = true;
            inner.validation = None;
        }
        let state_path = self.state_path.clone();
        self.runtime.spawn(async move {
            let opts = ValidateOptions {
                state_path: Some(state_path),
                progress,
                ..Default::default()
            };
            let outcome = match decant_engine::validate_plan(&job.plan, &opts).await {
                Ok(report) => serde_json::to_value(&report).unwrap_or_else(
                    |e| serde_json::json!({ "outcome": "error", "error": e.to_string() }),
                ),
                Err(e) => serde_json::json!({ "outcome": "error", "error": e.to_string() }),
            };
            let mut inner = job.inner.lock().expect("job lock");
            inner.validating = false;
            inner.validation = Some(outcome);
        });
    }

    /// At start: jobs that were queued, running or paused when the service stopped go back in
    /// the queue (paused ones stay paused).
    pub async fn resume_unfinished(&self) -> Result<usize, decant_store::StoreError> {
        let mut n = 0;
        for record in self.store.list_jobs().await? {
            if !matches!(
                record.state,
                JobState::Queued | JobState::Running | JobState::Paused
            ) {
                continue;
            }
            let plan: Plan = serde_json::from_str(&record.plan_json)?;
            let job = self.register(&record.id, &record.name, plan, record.state);
            if record.state == JobState::Paused {
                job.control.pause();
            }
            let phase = job.inner.lock().expect("job lock").phase;
            tracing::info!(job = %record.id, state = record.state.as_str(), phase = ?phase, "resuming job");
            self.start(job, phase).await;
            n += 1;
        }
        Ok(n)
    }
}
