//! `decant rejects JOB --retry PLAN`: runs a finished job's quarantined rows through the plan's
//! current transforms and rules and loads those that now pass, exactly once.
//!
//! Exactly once across two databases: the rows and a chunk marker (`retry-…`) commit in one
//! target transaction, as every chunk does. Before writing, the records are marked `retrying`
//! with that chunk id in the control store; after the commit they become `loaded`. A crash in
//! between leaves `retrying` records, which the next retry settles by the target's marker:
//! loaded if the marker is there, back in the quarantine (and retried) if not. So no record is
//! loaded twice and none is lost, whatever instant the process dies at.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use decant_connectors::{
    Target, TargetTable, chunk_channel, connect_source_with, connect_target_with,
};
use decant_core::Reject;
use decant_core::plan::Plan;
use decant_store::{JobState, RejectRecord, RejectStatus, Store};
use decant_transform::{InputRow, TableTransform, decode_rows};
use serde::Serialize;

use crate::convert::convert_batch;
use crate::error::EngineError;
use crate::planner::{TableJob, build_plan};

/// Quarantined rows loaded per retry chunk (one target transaction, one marker).
const RETRY_BATCH: usize = 1000;

/// What a retry did to one table's quarantined records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetriedTable {
    pub table: String,
    /// Records loaded into the target by this retry.
    pub loaded: u64,
    /// Records that still break a rule (with the new rule and reason).
    pub still_rejected: u64,
    /// Records the current plan's filter leaves out (they leave the quarantine, unloaded).
    pub filtered: u64,
    /// Records this retry cannot rerun, and why (`notes`).
    pub not_retried: u64,
    /// Records an interrupted earlier retry had loaded (settled by its target marker).
    pub settled: u64,
    pub notes: Vec<String>,
}

/// The outcome of `decant rejects JOB --retry`.
#[derive(Debug, Clone, Serialize)]
pub struct RetryReport {
    pub job_id: String,
    pub tables: Vec<RetriedTable>,
}

/// Retries the quarantine of job `job_id` with `plan` (the plan file, passed again).
pub async fn retry_rejects(
    plan: &Plan,
    state_path: &Path,
    job_id: &str,
) -> Result<RetryReport, EngineError> {
    let store = Store::open(state_path).await?;
    let job = store
        .job(job_id)
        .await?
        .ok_or_else(|| EngineError::Plan(vec![format!("there is no job {job_id}")]))?;
    if job.state != JobState::Succeeded {
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} is {}: only a job that finished can retry its rejects (`decant run` resumes an unfinished one)",
            job.state.as_str()
        )]));
    }
    if job.name != plan.job_name() {
        return Err(EngineError::Plan(vec![format!(
            "job {job_id} ran the plan named `{}`, not `{}`",
            job.name,
            plan.job_name()
        )]));
    }
    let source = connect_source_with(&plan.source_url()?, Some(&plan.source)).await?;
    let target = connect_target_with(&plan.target_url()?, plan.target.file.as_ref()).await?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job_plan = build_plan(plan, &catalog, source.dialect(), target.as_ref())?;
    target.prepare_markers().await?;

    let mut report: BTreeMap<String, RetriedTable> = BTreeMap::new();
    settle_interrupted(&store, target.as_ref(), job_id, &mut report).await?;

    let mut stored: HashMap<String, (TableJob, String)> = HashMap::new();
    for m in store.mappings(job_id).await? {
        let t: TableJob = serde_json::from_str(&m.mapping_json)?;
        stored.insert(t.target.name.to_string(), (t, m.decision));
    }
    let mut by_table: BTreeMap<String, Vec<RejectRecord>> = BTreeMap::new();
    for r in store.rejects(job_id).await? {
        if r.status == RejectStatus::Quarantined.as_str() {
            by_table.entry(r.table.clone()).or_default().push(r);
        }
    }
    for (table, rejects) in by_table {
        let entry = report.entry(table.clone()).or_insert_with(|| RetriedTable {
            table: table.clone(),
            ..Default::default()
        });
        let current = job_plan
            .tables
            .iter()
            .find(|t| t.target.name.to_string() == table);
        let (Some(current), Some((old, decision))) = (current, stored.get(&table)) else {
            entry.not_retried += rejects.len() as u64;
            entry
                .notes
                .push("the table is not in the plan any more".into());
            continue;
        };
        if let Some(why) = shape_change(&old.target, &current.target) {
            entry.not_retried += rejects.len() as u64;
            entry.notes.push(format!(
                "{why}: the retried rows would not fit the table the job loaded; keep the columns and their types as they were"
            ));
            continue;
        }
        let retry = TableRetry {
            store: &store,
            target: target.as_ref(),
            job_id,
            table: current,
            plan,
            source: source.clone(),
            written_to: &old.target,
            key_capture: crate::runner::key_capture(current, decision),
        };
        retry.run(rejects, entry).await?;
    }
    Ok(RetryReport {
        job_id: job_id.to_string(),
        tables: report.into_values().collect(),
    })
}

/// Settles the retry chunks an interrupted retry left `retrying`, by the target's markers.
async fn settle_interrupted(
    store: &Store,
    target: &dyn Target,
    job_id: &str,
    report: &mut BTreeMap<String, RetriedTable>,
) -> Result<(), EngineError> {
    let pending: HashSet<(String, String)> = store
        .rejects(job_id)
        .await?
        .into_iter()
        .filter(|r| r.status == RejectStatus::Retrying.as_str())
        .filter_map(|r| r.retry_chunk.map(|c| (r.table, c)))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let markers: HashSet<(String, String)> = target
        .committed_chunks(job_id)
        .await?
        .into_iter()
        .map(|m| (m.table, m.chunk_id))
        .collect();
    for (table, chunk) in pending {
        let committed = markers.contains(&(table.clone(), chunk.clone()));
        let n = store.finish_retry_chunk(job_id, &chunk, committed).await?;
        if committed {
            tracing::info!(table = %table, chunk = %chunk, rows = n, "an interrupted retry had loaded these rows");
            report
                .entry(table.clone())
                .or_insert_with(|| RetriedTable {
                    table,
                    ..Default::default()
                })
                .settled += n;
        }
    }
    Ok(())
}

/// Why rows of the stored table shape would not fit the current one, if they would not.
fn shape_change(old: &TargetTable, new: &TargetTable) -> Option<String> {
    let names = |t: &TargetTable| -> Vec<(String, String)> {
        t.columns
            .iter()
            .map(|c| (c.name.clone(), c.native_type.clone()))
            .collect()
    };
    let (a, b) = (names(old), names(new));
    (a != b).then(|| {
        let show = |v: &[(String, String)]| {
            v.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "the plan now gives the target columns ({}) instead of ({})",
            show(&b),
            show(&a)
        )
    })
}

/// One table's retry.
struct TableRetry<'a> {
    store: &'a Store,
    target: &'a dyn Target,
    job_id: &'a str,
    /// The table as the current plan maps it.
    table: &'a TableJob,
    plan: &'a Plan,
    source: Arc<dyn decant_connectors::Source>,
    /// The table as the job created it (same columns, checked).
    written_to: &'a TargetTable,
    key_capture: Option<usize>,
}

impl TableRetry<'_> {
    async fn run(
        &self,
        rejects: Vec<RejectRecord>,
        entry: &mut RetriedTable,
    ) -> Result<(), EngineError> {
        let mut rows = Vec::new();
        let (mut by_reader, mut masked) = (0u64, BTreeMap::<String, u64>::new());
        for r in rejects {
            let input = r
                .reject
                .input
                .as_deref()
                .and_then(|i| serde_json::from_str::<InputRow>(i).ok());
            match input {
                None => by_reader += 1,
                Some(i) if !i.masked.is_empty() => {
                    *masked.entry(i.masked.join(", ")).or_default() += 1;
                }
                Some(i) => rows.push((r.id, i)),
            }
        }
        if by_reader > 0 {
            entry.not_retried += by_reader;
            entry.notes.push(format!(
                "{by_reader} record(s) were refused by the reader (no row to rerun): fix the source and load them again"
            ));
        }
        for (columns, n) in masked {
            entry.not_retried += n;
            entry.notes.push(format!(
                "{n} record(s) are stored with masked column(s) {columns}: the quarantine never holds their raw values, \
                 so loading them would load masked values as if they were real; fix them in the source and load them again"
            ));
        }
        let compiled = match &self.table.transform {
            Some(spec) => Some(Arc::new(
                TableTransform::compile(spec, self.table.source_schema()).map_err(|errors| {
                    EngineError::Plan(
                        errors
                            .iter()
                            .map(|e| format!("table {}: {e}", self.table.source))
                            .collect(),
                    )
                })?,
            )),
            None => None,
        };
        if let Some(c) = &compiled
            && !c.references().is_empty()
        {
            let mut lookups = crate::reference::ReferenceLoader::new(
                self.plan,
                self.source.clone(),
                self.plan
                    .target
                    .schema
                    .clone()
                    .or(self.target.default_schema()),
            );
            lookups.load(&self.table.source.to_string(), c).await?;
        }
        if let Some(c) = &compiled
            && c.needs_dedupe_scan()
        {
            // The same choice as the run made (by primary key), over the source as it is now.
            let mut chunks = Vec::new();
            for r in self.store.chunks(self.job_id).await? {
                if r.table_name == self.written_to.name.to_string() {
                    chunks.push(decant_core::ChunkSpec {
                        id: r.chunk_id,
                        range: serde_json::from_str(&r.range_json)?,
                        estimated_rows: r.estimated_rows as u64,
                    });
                }
            }
            let policies = self.table.reader_policies(&self.plan.policies);
            crate::dedupe::scan(
                self.source.clone(),
                self.table,
                &chunks,
                c,
                self.plan.load.batch_rows,
                &policies,
            )
            .await?;
        }
        for (n, part) in rows.chunks(RETRY_BATCH).enumerate() {
            let chunk_id = format!(
                "retry-{}-{n}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f")
            );
            self.batch(part, &chunk_id, compiled.as_ref(), entry)
                .await?;
        }
        Ok(())
    }

    /// Reruns and loads one batch of records as retry chunk `chunk_id`.
    async fn batch(
        &self,
        part: &[(i64, InputRow)],
        chunk_id: &str,
        compiled: Option<&Arc<TableTransform>>,
        entry: &mut RetriedTable,
    ) -> Result<(), EngineError> {
        let name = self.table.source.to_string();
        let inputs: Vec<InputRow> = part.iter().map(|(_, i)| i.clone()).collect();
        let batch = decode_rows(&self.table.source_schema(), &inputs)
            .map_err(|e| EngineError::Plan(vec![format!("table {name}: {e}")]))?;
        let ids: Vec<i64> = part.iter().map(|(id, _)| *id).collect();
        let (out, loading, updates, run) = match compiled {
            Some(c) => {
                let mut run = c.begin_chunk(chunk_id);
                let applied = run.apply(&batch).map_err(|e| {
                    EngineError::Connector(crate::transform_run::chunk_error(
                        &name,
                        "quarantined rows".into(),
                        e,
                    ))
                })?;
                let loading: Vec<i64> = applied.rows.iter().map(|r| ids[*r as usize]).collect();
                let mut updates: Vec<(i64, RejectStatus, Option<Reject>)> = applied
                    .reject_rows
                    .iter()
                    .zip(applied.rejects)
                    .map(|(r, reject)| (ids[*r as usize], RejectStatus::Quarantined, Some(reject)))
                    .collect();
                let decided: HashSet<i64> = loading
                    .iter()
                    .chain(updates.iter().map(|(id, _, _)| id))
                    .copied()
                    .collect();
                for id in ids.iter().filter(|id| !decided.contains(id)) {
                    updates.push((*id, RejectStatus::Filtered, None));
                }
                (applied.batch, loading, updates, Some(run))
            }
            None => (batch, ids.clone(), Vec::new(), None),
        };
        entry.still_rejected += updates
            .iter()
            .filter(|(_, s, _)| *s == RejectStatus::Quarantined)
            .count() as u64;
        entry.filtered += updates
            .iter()
            .filter(|(_, s, _)| *s == RejectStatus::Filtered)
            .count() as u64;
        let refs: Vec<(i64, RejectStatus, Option<&Reject>)> = updates
            .iter()
            .map(|(id, s, r)| (*id, *s, r.as_ref()))
            .collect();
        self.store.update_rejects(&refs).await?;
        if loading.is_empty() {
            return Ok(());
        }
        let converted = convert_batch(&out, &self.table.target_schema()).map_err(|(col, e)| {
            EngineError::Plan(vec![format!(
                "table {name}: column {}: cannot convert to the target type: {e}",
                self.table.target.columns.get(col).map_or("", |c| &c.name)
            )])
        })?;
        let table_key = self.written_to.name.to_string();
        if let Some(col) = self.key_capture {
            let keys = arrow_cast::cast(converted.column(col), &arrow_schema::DataType::Int64)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            let keys: Vec<i64> =
                arrow_array::cast::as_primitive_array::<arrow_array::types::Int64Type>(&keys)
                    .iter()
                    .flatten()
                    .collect();
            self.store
                .replace_inserted_keys(self.job_id, &table_key, chunk_id, &keys)
                .await?;
        }
        self.store.mark_retrying(&loading, chunk_id).await?;
        let (tx, rx) = chunk_channel(1);
        let send = async move {
            tx.send(converted).await?;
            tx.finish().await
        };
        let write = self
            .target
            .write_chunk(self.job_id, self.written_to, chunk_id, rx);
        let (sent, written) = tokio::join!(send, write);
        let outcome = written.and_then(|w| sent.map(|_| w));
        // A commit whose answer was lost still left its marker: the marker decides.
        let committed = match &outcome {
            Ok(_) => true,
            Err(_) => self
                .target
                .committed_chunks(self.job_id)
                .await
                .map(|m| {
                    m.iter()
                        .any(|m| m.table == table_key && m.chunk_id == chunk_id)
                })
                .unwrap_or(false),
        };
        let n = self
            .store
            .finish_retry_chunk(self.job_id, chunk_id, committed)
            .await?;
        if let Some(run) = run {
            let _ = run.commit();
        }
        match outcome {
            Err(e) if !committed => Err(EngineError::Chunk {
                table: name,
                chunk: chunk_id.to_string(),
                range: "quarantined rows".into(),
                source: Box::new(e),
            }),
            _ => {
                entry.loaded += n;
                Ok(())
            }
        }
    }
}
