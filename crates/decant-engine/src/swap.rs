//! Loads that replace or change a table that existed, reversibly: `swap` (load a shadow table,
//! then rename it in for the live one, which is kept as a backup) and `upsert` (pre-images in a
//! side table). The names of those tables, the swap, and `finalize`, which drops what a
//! rollback would need.

use std::path::Path;

use decant_connectors::Target;
use decant_core::TableName;
use decant_core::ident::quote_qualified;
use decant_store::{JobState, Store, UndoTableRecord};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::planner::TableJob;

/// Identifier length every target accepts (PostgreSQL's 63 bytes).
const MAX_NAME: usize = 63;

/// The tables behind one swap or upsert, as recorded in the control store (`names_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoNames {
    /// The table the user sees.
    pub live: TableName,
    /// Swap: the table the job loads, renamed to `live` at the swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<TableName>,
    /// Swap: the name `live` gets at the swap; dropped by finalize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<TableName>,
    /// Upsert: the side table of pre-images and inserted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimages: Option<TableName>,
    /// Upsert: the columns rows match on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
}

/// States of a swap's record.
pub mod state {
    pub const LOADING: &str = "loading";
    pub const SWAPPED: &str = "swapped";
    pub const SWAPPED_BACK: &str = "swapped_back";
    pub const RECORDING: &str = "recording";
    pub const UNDONE: &str = "undone";
    pub const FINALIZED: &str = "finalized";
}

/// A name for a job's companion of `table`, in the same schema: the table's name (cut to fit),
/// the role, and a hash of job and table, so that two jobs or two tables never share one.
pub fn derived_name(table: &TableName, job_id: &str, role: &str) -> TableName {
    let hash = xxhash_rust::xxh3::xxh3_64(format!("{job_id}\u{0}{table}").as_bytes());
    let suffix = format!("__decant_{role}_{:08x}", hash as u32);
    let mut cut = table.name.len().min(MAX_NAME - suffix.len());
    while !table.name.is_char_boundary(cut) {
        cut -= 1;
    }
    TableName {
        schema: table.schema.clone(),
        name: format!("{}{suffix}", &table.name[..cut]),
    }
}

impl UndoNames {
    pub fn for_swap(live: &TableName, job_id: &str) -> UndoNames {
        UndoNames {
            live: live.clone(),
            shadow: Some(derived_name(live, job_id, "new")),
            backup: Some(derived_name(live, job_id, "old")),
            preimages: None,
            key: Vec::new(),
        }
    }

    pub fn for_upsert(live: &TableName, job_id: &str, key: Vec<String>) -> UndoNames {
        UndoNames {
            live: live.clone(),
            shadow: None,
            backup: None,
            preimages: Some(derived_name(live, job_id, "pre")),
            key,
        }
    }

    pub fn record(&self, strategy: &str, state: &str) -> Result<UndoTableRecord, EngineError> {
        Ok(UndoTableRecord {
            target_table: self.live.to_string(),
            strategy: strategy.into(),
            backup_table: self.backup.as_ref().map(ToString::to_string),
            names_json: serde_json::to_string(self)?,
            state: state.into(),
            updated_at: String::new(),
        })
    }

    pub fn from_record(record: &UndoTableRecord) -> Result<UndoNames, EngineError> {
        Ok(serde_json::from_str(&record.names_json)?)
    }
}

fn swap_parts(names: &UndoNames) -> Result<(&TableName, &TableName), EngineError> {
    match (&names.shadow, &names.backup) {
        (Some(s), Some(b)) => Ok((s, b)),
        _ => Err(EngineError::Internal(format!(
            "the swap record of {} lacks its shadow or backup name",
            names.live
        ))),
    }
}

/// `(live, shadow)` of every swap of `job_id` not swapped in yet.
pub(crate) async fn shadows(
    store: &Store,
    job_id: &str,
) -> Result<Vec<(TableName, TableName)>, EngineError> {
    let mut pairs = Vec::new();
    for r in store.undo_tables(job_id).await? {
        if r.strategy == "swap" && r.state == state::LOADING {
            let names = UndoNames::from_record(&r)?;
            let (shadow, _) = swap_parts(&names)?;
            pairs.push((names.live.clone(), shadow.clone()));
        }
    }
    Ok(pairs)
}

/// Reports swapped tables under their live names, with where the old rows are kept.
pub(crate) fn rename_in_summary(tables: &mut [crate::runner::TableSummary], swapped: &[UndoNames]) {
    for names in swapped {
        let (Some(shadow), Some(backup)) = (&names.shadow, &names.backup) else {
            continue;
        };
        if let Some(t) = tables.iter_mut().find(|t| t.target == shadow.to_string()) {
            t.target = names.live.to_string();
            t.notes.push(format!(
                "swapped in; the old table is kept as {backup} until `decant finalize` or load.swap_retention (rollback swaps it back)"
            ));
        }
    }
}

/// Swaps every loaded shadow of `job_id` in, in one transaction: each live table becomes its
/// backup, each shadow the live table. Returns the names of every table swapped.
pub async fn swap_in(
    store: &Store,
    target: &dyn Target,
    job_id: &str,
) -> Result<Vec<UndoNames>, EngineError> {
    let pending: Vec<(UndoTableRecord, UndoNames)> = store
        .undo_tables(job_id)
        .await?
        .into_iter()
        .filter(|r| r.strategy == "swap" && r.state == state::LOADING)
        .map(|r| UndoNames::from_record(&r).map(|n| (r, n)))
        .collect::<Result<_, _>>()?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let mut renames = Vec::new();
    for (_, names) in &pending {
        let (shadow, backup) = swap_parts(names)?;
        renames.push((names.live.clone(), backup.name.clone()));
        renames.push((shadow.clone(), names.live.name.clone()));
    }
    target.rename_tables(&renames).await?;
    let mut swapped = Vec::new();
    for (record, names) in pending {
        store
            .set_undo_state(job_id, &record.target_table, state::SWAPPED)
            .await?;
        swapped.push(names);
    }
    Ok(swapped)
}

/// Swaps whose rename committed while their record still says `loading` (the process stopped
/// in between): the shadow is gone and the backup exists. Marks them swapped; returns how many.
pub(crate) async fn reconcile(
    store: &Store,
    target: &dyn Target,
    job_id: &str,
) -> Result<usize, EngineError> {
    let mut found = 0;
    for record in store.undo_tables(job_id).await? {
        if record.strategy != "swap" || record.state != state::LOADING {
            continue;
        }
        let names = UndoNames::from_record(&record)?;
        let (shadow, backup) = swap_parts(&names)?;
        if !target.table_exists(shadow).await? && target.table_exists(backup).await? {
            store
                .set_undo_state(job_id, &record.target_table, state::SWAPPED)
                .await?;
            found += 1;
        }
    }
    Ok(found)
}

/// Swaps the swapped tables of `job_id` back in one transaction (the backups become the live
/// tables again, the loaded tables their shadow names). Returns every swap of the job, and
/// whether it had been swapped in; the caller drops the shadows.
pub(crate) async fn swap_back(
    store: &Store,
    target: &dyn Target,
    job_id: &str,
) -> Result<Vec<(UndoNames, bool)>, EngineError> {
    reconcile(store, target, job_id).await?;
    let mut renames = Vec::new();
    let mut swaps = Vec::new();
    let records: Vec<UndoTableRecord> = store
        .undo_tables(job_id)
        .await?
        .into_iter()
        .filter(|r| r.strategy == "swap")
        .collect();
    for record in &records {
        let names = UndoNames::from_record(record)?;
        let (shadow, backup) = swap_parts(&names)?;
        let swapped = record.state == state::SWAPPED;
        if swapped {
            renames.push((names.live.clone(), shadow.name.clone()));
            renames.push((backup.clone(), names.live.name.clone()));
        }
        swaps.push((names, swapped));
    }
    if !renames.is_empty() {
        target.rename_tables(&renames).await?;
    }
    for record in &records {
        store
            .set_undo_state(job_id, &record.target_table, state::SWAPPED_BACK)
            .await?;
    }
    Ok(swaps)
}

/// The shadow twin of a table's job: the same definition under the shadow's name, with DDL
/// for that name (so its keys and indexes get names of their own).
pub(crate) fn shadow_job(
    t: &TableJob,
    shadow: &TableName,
    target: &dyn Target,
    primary_key_after_load: bool,
) -> TableJob {
    let mut s = t.clone();
    s.target.name = shadow.clone();
    s.ddl = target.ddl(&s.target, primary_key_after_load);
    s.notes.push(format!(
        "loaded into {shadow}, then swapped in for {} in one transaction; the old table is kept until `decant finalize` or load.swap_retention",
        t.target.name
    ));
    s
}

/// Why a table cannot be swapped: views or other tables' foreign keys that would follow the
/// old table to its backup name.
pub(crate) async fn swap_problems(
    t: &TableJob,
    target: &dyn Target,
) -> Result<Option<String>, EngineError> {
    let dependents = target.dependents(&t.target.name).await?;
    if dependents.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "target table {} cannot be swapped: {} would keep pointing at the old table under its backup name; \
         set if_exists for it to \"upsert\", \"append\", \"truncate\" or \"drop\"",
        t.target.name,
        dependents.join(", ")
    )))
}

/// The key an upsert of `t` matches rows on: the declared `key`, else the target's primary key.
pub(crate) fn upsert_key(
    t: &TableJob,
    declared: Option<&Vec<String>>,
) -> Result<Vec<String>, String> {
    let key = match declared {
        Some(k) => k.clone(),
        None if !t.target.primary_key.is_empty() => t.target.primary_key.clone(),
        None => {
            return Err(format!(
                "{}: if_exists = \"upsert\" needs a key, and the table has no primary key; declare one with [tables.\"{}\"] key = [\"column\", ...]",
                t.target.name, t.source
            ));
        }
    };
    let unknown: Vec<&String> = key
        .iter()
        .filter(|k| !t.target.columns.iter().any(|c| &c.name == *k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{}: the upsert key names {}, which the target table does not have (key columns are target names)",
            t.target.name,
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(key)
}

/// What `finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct FinalizeReport {
    pub job_id: String,
    /// The backup tables and pre-image tables dropped.
    pub dropped: Vec<String>,
}

/// Finalizes a succeeded job: drops the backups its swaps kept and the pre-images its upserts
/// recorded. The job can no longer be rolled back.
pub async fn finalize(state_path: &Path, job_id: &str) -> Result<FinalizeReport, EngineError> {
    let store = Store::open(state_path).await?;
    let job = store
        .job(job_id)
        .await?
        .ok_or_else(|| EngineError::Plan(vec![format!("there is no job {job_id}")]))?;
    if let Some(at) = store.finalized_at(job_id).await? {
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} was already finalized at {at}"
        )]));
    }
    if job.state != JobState::Succeeded {
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} is {}; only a succeeded job can be finalized (roll back or resume it instead)",
            job.state.as_str()
        )]));
    }
    let plan: decant_core::plan::Plan = serde_json::from_str(&job.plan_json)?;
    let target =
        decant_connectors::connect_target_with(&plan.target_url()?, plan.target.file.as_ref())
            .await?;
    let dialect = target.dialect();
    let mut dropped = Vec::new();
    for record in store.undo_tables(job_id).await? {
        let names = UndoNames::from_record(&record)?;
        let table = match record.strategy.as_str() {
            "swap" if record.state == state::SWAPPED => names.backup,
            "upsert" => names.preimages,
            _ => None,
        };
        if let Some(t) = table {
            target
                .execute(&[format!(
                    "DROP TABLE IF EXISTS {}",
                    quote_qualified(dialect, t.schema.as_deref(), &t.name)
                )])
                .await?;
            dropped.push(t.to_string());
        }
        store
            .set_undo_state(job_id, &record.target_table, state::FINALIZED)
            .await?;
    }
    store.finalize_job(job_id).await?;
    Ok(FinalizeReport {
        job_id: job_id.to_string(),
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_and_differ_per_job() {
        let t = TableName::new(Some("public"), &"x".repeat(80));
        let a = derived_name(&t, "job-1", "new");
        assert!(a.name.len() <= MAX_NAME, "{}", a.name);
        assert_eq!(a.schema.as_deref(), Some("public"));
        assert_ne!(a, derived_name(&t, "job-2", "new"));
        assert_ne!(a, derived_name(&t, "job-1", "old"));
        let short = derived_name(&TableName::new(None, "orders"), "j", "old");
        assert!(
            short.name.starts_with("orders__decant_old_"),
            "{}",
            short.name
        );
        let multibyte = derived_name(&TableName::new(None, &"é".repeat(40)), "j", "pre");
        assert!(multibyte.name.len() <= MAX_NAME);
    }
}
