//! Rollback: undo what a job did to the target, from what it recorded.
//!
//! Tables the job created are dropped; rows an append load inserted into a table that existed
//! are deleted by the integer keys each committed chunk recorded. Swapped tables are swapped
//! back in one transaction and the loaded tables dropped; upserts restore the pre-images they
//! recorded and delete the rows they inserted. Truncate and drop loads destroyed the old rows
//! before loading and cannot be undone: rollback refuses them unless asked to go ahead anyway,
//! and then says what it could not restore. A finalized job dropped its backups: refused.

use std::path::Path;

use decant_connectors::{Target, connect_target_with};
use decant_core::ident::quote_qualified;
use decant_core::plan::Plan;
use decant_core::{TableName, quote_ident};
use decant_store::{JobState, Store};
use serde::Serialize;

use crate::error::EngineError;
use crate::planner::TableJob;
use crate::swap::{UndoNames, state};

/// Keys deleted per statement.
const DELETE_BATCH: usize = 1000;

/// What a rollback did, per table.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub job_id: String,
    pub tables: Vec<RolledBackTable>,
    /// What could not be restored (only with `force`).
    pub warnings: Vec<String>,
}

/// One table's rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBackTable {
    pub table: String,
    /// The job's decision for the table: `create`, `append`, `truncate`, `drop`, `swap` or
    /// `upsert`.
    pub decision: String,
    /// What rollback did, e.g. `dropped`, `deleted inserted rows`, `swapped back; ...`.
    pub action: String,
    /// Rows deleted (append loads).
    pub rows_deleted: Option<u64>,
}

/// Undoes job `job_id`: the job must not be running. `force` goes ahead with truncate and drop
/// loads, whose earlier rows are lost (they are reported in `warnings`).
pub async fn rollback(
    state_path: &Path,
    job_id: &str,
    force: bool,
) -> Result<RollbackReport, EngineError> {
    let store = Store::open(state_path).await?;
    let job = store
        .job(job_id)
        .await?
        .ok_or_else(|| EngineError::Plan(vec![format!("there is no job {job_id}")]))?;
    match job.state {
        JobState::Running | JobState::Queued | JobState::Paused => {
            return Err(EngineError::Plan(vec![format!(
                "job {job_id} is {}; cancel it first, then roll it back",
                job.state.as_str()
            )]));
        }
        JobState::RolledBack => {
            return Err(EngineError::Plan(vec![format!(
                "job {job_id} is already rolled back"
            )]));
        }
        _ => {}
    }
    if let Some(at) = store.finalized_at(job_id).await? {
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} was finalized at {at}: the backups of its swapped tables and the pre-images of its upserts were dropped, so it cannot be rolled back"
        )]));
    }
    let plan: Plan = serde_json::from_str(&job.plan_json)?;
    let mut mappings = store.mappings(job_id).await?;
    let lossy: Vec<String> = mappings
        .iter()
        .filter(|m| m.decision == "truncate" || m.decision == "drop")
        .map(|m| {
            format!(
                "{}: the job {} it before loading; the rows it held before cannot be restored",
                m.target_table,
                if m.decision == "drop" {
                    "dropped and re-created"
                } else {
                    "truncated"
                }
            )
        })
        .collect();
    if !lossy.is_empty() && !force {
        return Err(EngineError::Plan(
            lossy
                .into_iter()
                .chain(["roll back with force to go ahead anyway (the job's tables are dropped or emptied)".to_string()])
                .collect(),
        ));
    }
    let target = connect_target_with(&plan.target_url()?, plan.target.file.as_ref()).await?;
    let dialect = target.dialect();
    target.prepare_markers().await?;
    let committed = target.committed_chunks(job_id).await?;
    // Every swapped table at once, in one transaction: the old tables are live again together.
    let swaps = crate::swap::swap_back(&store, target.as_ref(), job_id).await?;
    // Children before parents: the reverse of the load order, which follows foreign keys.
    mappings.sort_by_key(|m| std::cmp::Reverse(m.load_order));
    let mut tables = Vec::new();
    for m in &mappings {
        let t: TableJob = serde_json::from_str(&m.mapping_json)?;
        let exists = target.table_exists(&t.target.name).await?;
        let (action, rows_deleted) = match m.decision.as_str() {
            "swap" => {
                // The mapping names the loaded table (the shadow, or again so after the swap back).
                target.execute(std::slice::from_ref(&t.ddl.drop)).await?;
                let was_swapped = swaps.iter().any(|(names, swapped)| {
                    *swapped && names.shadow.as_ref() == Some(&t.target.name)
                });
                let action = if was_swapped {
                    "swapped back; the loaded table is dropped"
                } else {
                    "dropped the loaded table (it had not been swapped in)"
                };
                (action.to_string(), None)
            }
            "upsert" => {
                undo_upsert(&store, target.as_ref(), job_id, &t).await?;
                (
                    "restored the pre-images, deleted the inserted rows".to_string(),
                    None,
                )
            }
            "create" | "drop" => {
                if exists {
                    target.execute(std::slice::from_ref(&t.ddl.drop)).await?;
                }
                ("dropped".to_string(), None)
            }
            "truncate" => {
                if exists {
                    target
                        .execute(std::slice::from_ref(&t.ddl.truncate))
                        .await?;
                }
                ("emptied".to_string(), None)
            }
            _ => {
                let [key] = t.target.primary_key.as_slice() else {
                    return Err(EngineError::Plan(vec![format!(
                        "{}: an append load into a table without a single-column integer key recorded no keys; it cannot be rolled back",
                        m.target_table
                    )]));
                };
                let table = quote_qualified(
                    dialect,
                    t.target.name.schema.as_deref(),
                    &t.target.name.name,
                );
                let column = quote_ident(dialect, key);
                let mut deleted = 0u64;
                for (chunk, keys) in store.inserted_keys(job_id, &m.target_table).await? {
                    let chunk_committed = committed
                        .iter()
                        .any(|c| c.table == m.target_table && c.chunk_id == chunk);
                    if !chunk_committed {
                        continue; // its rows rolled back with its transaction
                    }
                    // Integers recorded by the job: formatting them into the statement is safe.
                    let statements: Vec<String> = keys
                        .chunks(DELETE_BATCH)
                        .map(|part| {
                            let list: Vec<String> = part.iter().map(i64::to_string).collect();
                            format!(
                                "DELETE FROM {table} WHERE {column} IN ({})",
                                list.join(", ")
                            )
                        })
                        .collect();
                    target.execute(&statements).await?;
                    deleted += keys.len() as u64;
                }
                ("deleted inserted rows".to_string(), Some(deleted))
            }
        };
        let live = live_name(&swaps, &t.target.name);
        tables.push(RolledBackTable {
            table: live.unwrap_or_else(|| m.target_table.clone()),
            decision: m.decision.clone(),
            action,
            rows_deleted,
        });
    }
    target.delete_markers(job_id).await?;
    store
        .set_job_state(job_id, JobState::RolledBack, None)
        .await?;
    Ok(RollbackReport {
        job_id: job_id.to_string(),
        tables,
        warnings: if force { lossy } else { Vec::new() },
    })
}

/// The live name of a swap's shadow table.
fn live_name(swaps: &[(UndoNames, bool)], shadow: &TableName) -> Option<String> {
    swaps
        .iter()
        .find(|(n, _)| n.shadow.as_ref() == Some(shadow))
        .map(|(n, _)| n.live.to_string())
}

/// Undoes an upsert into `t` in one transaction (restore each changed row's pre-image, delete
/// the inserted rows), then drops its side table.
pub(crate) async fn undo_upsert(
    store: &Store,
    target: &dyn Target,
    job_id: &str,
    t: &TableJob,
) -> Result<(), EngineError> {
    let live = t.target.name.to_string();
    let Some(record) = store
        .undo_tables(job_id)
        .await?
        .into_iter()
        .find(|r| r.strategy == "upsert" && r.target_table == live)
    else {
        return Err(EngineError::Internal(format!(
            "{live}: the upsert recorded no pre-image table"
        )));
    };
    let names = UndoNames::from_record(&record)?;
    let side = names.preimages.as_ref().ok_or_else(|| {
        EngineError::Internal(format!("{live}: the upsert recorded no pre-image table"))
    })?;
    // No side table: the job stopped before its first chunk, nothing changed.
    if record.state != state::UNDONE && target.table_exists(side).await? {
        let upsert = target.upsert().ok_or_else(|| {
            EngineError::Internal(format!("{live}: this target cannot undo an upsert"))
        })?;
        target
            .execute_atomically(&upsert.undo_upsert_sql(&t.target, &names.key, side))
            .await?;
        store.set_undo_state(job_id, &live, state::UNDONE).await?;
    }
    let dialect = target.dialect();
    target
        .execute(&[format!(
            "DROP TABLE IF EXISTS {}",
            quote_qualified(dialect, side.schema.as_deref(), &side.name)
        )])
        .await?;
    Ok(())
}
