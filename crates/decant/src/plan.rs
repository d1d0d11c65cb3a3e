//! `decant plan PLAN`: the type mapping, DDL, load order and chunks of a run, touching nothing.

use std::path::Path;
use std::process::ExitCode;

use decant_connectors::{connect_source_with, connect_target_with};
use decant_core::plan::Plan;
use decant_engine::build_plan;
use serde::Serialize;

#[derive(Serialize)]
struct PlannedTable<'a> {
    table: &'a decant_engine::TableJob,
    target_exists: bool,
    chunks: Vec<decant_core::ChunkSpec>,
    /// How the table's `where` splits between the source's query and the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<decant_engine::transform_plan::Pushdown>,
}

pub async fn plan(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_file(path)?;
    let source = connect_source_with(&plan.source_url()?, Some(&plan.source)).await?;
    let target = connect_target_with(&plan.target_url()?, plan.target.file.as_ref()).await?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job = build_plan(&plan, &catalog, source.dialect(), target.as_ref())?;
    let mut planned = Vec::new();
    for t in &job.tables {
        let table = catalog
            .table(&t.source)
            .expect("planned tables come from the catalog");
        planned.push(PlannedTable {
            table: t,
            target_exists: target.table_exists(&t.target.name).await?,
            chunks: source.plan_chunks(table, t.chunk_rows).await?,
            filter: decant_engine::transform_plan::planned_pushdown(source.dialect(), t),
        });
    }
    if json {
        let out = serde_json::json!({ "job": plan.job_name(), "tables": planned, "views_not_migrated": job.views_not_migrated, "warnings": job.warnings });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "job {}: {} → {}",
        plan.job_name(),
        plan.source_url()?,
        plan.target_url()?
    );
    for (i, p) in planned.iter().enumerate() {
        let t = p.table;
        let exists = if p.target_exists {
            format!(" — target exists, if_exists = {:?}", t.if_exists)
        } else {
            String::new()
        };
        outln!(
            "\n{}. {} → {}  ({} chunks, ~{} rows){exists}",
            i + 1,
            t.source,
            t.target.name,
            p.chunks.len(),
            p.chunks
                .iter()
                .map(|c| c.estimated_rows)
                .sum::<u64>()
                .max(t.row_estimate)
        );
        for (s, c) in t.source_columns.iter().zip(&t.target.columns) {
            outln!(
                "   {:<28} {:<30} → {:<28} {}",
                s.name,
                s.native_type,
                c.name,
                c.native_type
            );
        }
        for note in &t.notes {
            outln!("   note: {note}");
        }
        if let Some(f) = &p.filter {
            match &f.sql {
                Some(sql) => outln!("   where, in the source's query: {sql}"),
                None => outln!("   where: nothing the source can evaluate exactly"),
            }
            for e in &f.engine {
                outln!("   where, in the engine only: {e}");
            }
        }
        for stmt in t
            .ddl
            .create
            .iter()
            .chain(&t.ddl.indexes)
            .chain(&t.ddl.foreign_keys)
            .chain(&t.ddl.sequences)
        {
            outln!("   {};", stmt.replace('\n', "\n   "));
        }
    }
    for v in &job.views_not_migrated {
        outln!("\nview {v}: listed, not migrated");
    }
    for w in &job.warnings {
        outln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
