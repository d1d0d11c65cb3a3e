//! The retention sweep: finalizes, by itself, every succeeded job whose backups expired
//! (`load.swap_retention`), once at start and then every period.

use std::time::Duration;

use decant_store::JobState;

use crate::jobs::JobManager;

/// How often the service looks for expired jobs, unless `--retention-sweep` says otherwise.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30);

/// Finalizes every expired job the way `POST /migration/finalize` does; returns the ids
/// finalized. A job that cannot be finalized now (validating, its target unreachable) is
/// logged and tried again at the next sweep.
pub async fn sweep(manager: &JobManager) -> Vec<String> {
    let expired = match manager.store.expired_jobs(chrono::Utc::now()).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "retention sweep: cannot read the expired jobs");
            return Vec::new();
        }
    };
    let mut finalized = Vec::new();
    for id in expired {
        let job = match manager.load(&id).await {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "retention sweep: cannot load the job");
                continue;
            }
        };
        // A rollback that holds the job first wins: finalize then finds it rolled back.
        let _undo = job.undo.lock().await;
        let (state, validating) = {
            let inner = job.inner.lock().expect("job lock");
            (inner.state, inner.validating)
        };
        if state != JobState::Succeeded || validating {
            continue;
        }
        match decant_engine::finalize(&manager.state_path, &id).await {
            Ok(report) => {
                tracing::info!(
                    job = %id,
                    dropped = ?report.dropped,
                    "retention sweep: finalized, its backups expired"
                );
                finalized.push(id);
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "retention sweep: cannot finalize"),
        }
    }
    finalized
}

/// Runs `sweep` at once and then every `period`, on the caller's runtime, until the handle
/// is aborted.
pub fn spawn(manager: JobManager, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            sweep(&manager).await;
        }
    })
}
