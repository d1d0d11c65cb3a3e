//! Validation results in the control store: every run in `validation_runs`, and, when the plan
//! was run as a job, matching tables in `success_records` and problems in `error_logs`.

use decant_core::plan::Plan;
use decant_store::{Store, ValidationRunRecord};

use super::report::{Outcome, RuleStatus, TableReport, ValidationReport};
use crate::error::EngineError;

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

pub(super) async fn record(
    path: &std::path::Path,
    plan: &Plan,
    report: &ValidationReport,
    started_at: &str,
) -> Result<(), EngineError> {
    let store = Store::open(path).await?;
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

pub(super) async fn record_failure(
    path: &std::path::Path,
    plan: &Plan,
    error: &EngineError,
    started_at: &str,
) -> Result<(), EngineError> {
    let store = Store::open(path).await?;
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
