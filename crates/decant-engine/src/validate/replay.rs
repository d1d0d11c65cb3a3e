//! The transforms that decide a row by other rows, made ready before a table is compared: the
//! `dedupe` scan and the `reference` rules' lookups, done as `decant run` does them (the same
//! `dedupe::scan` and `ReferenceLoader`), so that the source side keeps exactly the rows the
//! run kept.

use std::sync::Arc;

use decant_connectors::Source;

use super::table::TableCheck;
use crate::error::EngineError;
use crate::planner::TableJob;
use crate::progress::Progress;
use crate::reference::ReferenceLoader;

/// Loads the reference keys of `check`'s transforms and chooses its deduplicated rows, over the
/// whole source table. Tables without such transforms are left as they are. An `Err` is a
/// message for the table's report.
pub(crate) async fn prepare(
    job: &TableJob,
    check: &TableCheck,
    source: Arc<dyn Source>,
    lookups: &mut ReferenceLoader,
    plan: &decant_core::plan::Plan,
    progress: &Progress,
) -> Result<(), String> {
    let Some(transform) = &check.transform else {
        return Ok(());
    };
    let compiled = &transform.digests;
    let table = job.target.name.to_string();
    if !compiled.references().is_empty() {
        progress.set_phase("loading reference keys");
        lookups
            .load(&table, compiled)
            .await
            .map_err(|e| message(e, "cannot load the keys of its `reference` rules"))?;
    }
    if compiled.needs_dedupe_scan() {
        progress.set_phase("scanning for duplicates");
        // The choice is by primary key, not by the order chunks are read: any split of the
        // table gives the run's choice.
        let chunks: Vec<_> = check
            .units
            .iter()
            .flat_map(|u| u.source_chunks.iter().cloned())
            .collect();
        // The policies the run's own dedupe scan reads with.
        let policies = job.reader_policies(&plan.policies);
        crate::dedupe::scan(
            source,
            job,
            &chunks,
            compiled,
            plan.load.batch_rows.max(1),
            &policies,
        )
        .await
        .map_err(|e| message(e, "cannot scan it for its duplicates"))?;
    }
    Ok(())
}

/// A plan error's own lines, without the "the plan cannot run" of a run.
fn message(e: EngineError, what: &str) -> String {
    match e {
        EngineError::Plan(lines) => format!("{what}: {}", lines.join("; ")),
        other => format!("{what}: {other}"),
    }
}
