//! The scan before a deduplicated table loads: reads every chunk of it once, through the
//! hazard policies and the table's columns and filter, so that each key's row is chosen by
//! primary key before any chunk commits (chunks then run in parallel and agree).

use std::sync::Arc;

use decant_connectors::{ReadRequest, Source};
use decant_core::ChunkSpec;
use decant_transform::{DedupeScan, TableTransform};
use tokio::sync::mpsc;

use crate::error::EngineError;
use crate::planner::TableJob;

/// Scans `chunks` of `table` and hands the chosen rows to `compiled`.
pub async fn scan(
    source: Arc<dyn Source>,
    table: &TableJob,
    chunks: &[ChunkSpec],
    compiled: &Arc<TableTransform>,
    batch_rows: usize,
    policies: &decant_core::plan::Policies,
) -> Result<(), EngineError> {
    let mut dedupe = DedupeScan::new(compiled.clone());
    let name = table.source.to_string();
    let fail = |e: String| EngineError::Plan(vec![format!("table {name}: {e}")]);
    for chunk in chunks {
        let request = ReadRequest {
            table: table.source.clone(),
            columns: table.read_columns(),
            chunk: chunk.clone(),
            batch_rows,
            schema: table.source_schema(),
            policies: decant_core::plan::Policies {
                changes: Default::default(),
                ..policies.clone()
            },
            rejects: Default::default(),
            filter: None,
        };
        let (tx, mut rx) = mpsc::channel(2);
        let reader = {
            let source = source.clone();
            tokio::spawn(async move { source.read_chunk(&request, tx).await })
        };
        let mut failed = None;
        while let Some(batch) = rx.recv().await {
            let mut ignored = crate::policy::LocalCounts::new();
            let step = crate::policy::apply(&batch, &table.checks, &mut ignored)
                .map_err(|(_, m)| m)
                .and_then(|b| dedupe.observe(&b).map_err(|e| e.to_string()));
            if let Err(e) = step {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        let read = reader
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if let Some(e) = failed {
            return Err(fail(e));
        }
        read?;
    }
    dedupe.finish();
    Ok(())
}
