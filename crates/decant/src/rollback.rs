//! `decant rollback JOB`: undo what a job did to the target; `decant finalize JOB`: drop what a
//! rollback would need; `decant finalize --expired`: the same for every job whose backups
//! expired.

use std::path::Path;
use std::process::ExitCode;

pub async fn rollback(
    state: &Path,
    job: &str,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match decant_engine::rollback(state, job, force).await {
        Ok(report) => {
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for t in &report.tables {
                    match t.rows_deleted {
                        Some(n) => outln!("{}: {} ({n} rows)", t.table, t.action),
                        None => outln!("{}: {}", t.table, t.action),
                    }
                }
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                outln!("job {} rolled back", report.job_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn finalize(state: &Path, job: &str, json: bool) -> anyhow::Result<ExitCode> {
    match decant_engine::finalize(state, job).await {
        Ok(report) => {
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for t in &report.dropped {
                    outln!("dropped {t}");
                }
                outln!(
                    "job {} finalized; it can no longer be rolled back",
                    report.job_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Finalizes every job whose backups expired; fails when one of them could not be finalized.
pub async fn finalize_expired(state: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let done = match decant_engine::finalize_expired(state).await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for (job, result) in done {
        match result {
            Ok(report) => {
                if !json {
                    for t in &report.dropped {
                        outln!("dropped {t}");
                    }
                    outln!("job {job} finalized: its backups expired");
                }
                reports.push(report);
            }
            Err(e) => {
                failed = true;
                eprintln!("error: job {job}: {e}");
            }
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() && !failed {
        outln!("no job's backups have expired");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
