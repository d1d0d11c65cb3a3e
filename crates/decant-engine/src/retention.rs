//! `load.swap_retention`: when a succeeded job's swap backups and upsert pre-images expire, and
//! the finalize of every job whose expiry passed (`decant finalize --expired`, the service's
//! sweep).

use std::path::Path;

use decant_core::plan::Plan;
use decant_store::Store;

use crate::error::EngineError;
use crate::swap::{FinalizeReport, finalize, state};

/// Records when the backups of `job_id`, which is succeeding, expire: now plus the plan's
/// `swap_retention`, when it has one and the job kept a swap backup or upsert pre-images.
/// Called before the job is marked succeeded, so a stop in between leaves a job that is not
/// swept, not one that is never swept. Returns the expiry recorded.
pub(crate) async fn record_expiry(
    store: &Store,
    plan: &Plan,
    job_id: &str,
) -> Result<Option<String>, EngineError> {
    let Some(retention) = plan.load.swap_retention()? else {
        return Ok(None);
    };
    let kept = store.undo_tables(job_id).await?.iter().any(|r| {
        (r.strategy == "swap" && r.state == state::SWAPPED)
            || (r.strategy == "upsert" && r.state == state::RECORDING)
    });
    if !kept {
        return Ok(None);
    }
    // A retention past the calendar's end (`"1e12d"`) never expires: keep the backups.
    let Some(at) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| chrono::Utc::now().checked_add_signed(r))
    else {
        tracing::warn!(job = %job_id, ?retention, "load.swap_retention is too long to expire; the backups are kept until finalized");
        return Ok(None);
    };
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    store.set_backups_expire_at(job_id, &at).await?;
    tracing::info!(job = %job_id, expires_at = %at, "backups kept until they expire");
    Ok(Some(at))
}

/// The succeeded, not finalized jobs in the store at `state_path` whose backups expired.
pub async fn expired_jobs(state_path: &Path) -> Result<Vec<String>, EngineError> {
    let store = Store::open(state_path).await?;
    Ok(store.expired_jobs(chrono::Utc::now()).await?)
}

/// Finalizes every job whose backups expired, each on its own: one that fails (its target is
/// unreachable, say) does not stop the others, and is tried again by the next call.
pub async fn finalize_expired(
    state_path: &Path,
) -> Result<Vec<(String, Result<FinalizeReport, EngineError>)>, EngineError> {
    let mut done = Vec::new();
    for job in expired_jobs(state_path).await? {
        let result = finalize(state_path, &job).await;
        match &result {
            Ok(report) => {
                tracing::info!(job = %job, dropped = ?report.dropped, "finalized: its backups expired");
            }
            Err(e) => tracing::warn!(job = %job, error = %e, "cannot finalize an expired job"),
        }
        done.push((job, result));
    }
    Ok(done)
}
