//! `decant preflight PLAN`: every hazard and per-table fact, touching nothing.

use std::path::Path;
use std::process::ExitCode;

use decant_connectors::{connect_source_with, connect_target_with};
use decant_core::plan::Plan;
use decant_engine::{build_plan, preflight as scan};

/// Exit 0 when clean, 1 when a hazard has no policy (the run would refuse), 2 on errors.
pub async fn preflight(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_file(path)?;
    let source = connect_source_with(&plan.source_url()?, Some(&plan.source)).await?;
    let target = connect_target_with(&plan.target_url()?, plan.target.file.as_ref()).await?;
    let catalog = source.introspect(&plan.source.schemas).await?;
    let job = build_plan(&plan, &catalog, source.dialect(), target.as_ref())?;
    let mode = match plan.policies.scan {
        decant_core::hazard::ScanMode::Off => decant_core::hazard::ScanMode::Full,
        m => m,
    };
    let report = scan(&job, &catalog, source.as_ref(), mode, &plan.load).await?;
    let blocking = report.blocking().len();
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for t in &report.tables {
            outln!(
                "{} → {}  (~{} rows, {})",
                t.table,
                t.target,
                t.row_estimate,
                crate::render::bytes(t.size_bytes)
            );
            outln!("  key: {}", t.key);
            outln!("  chunking: {}", t.chunking);
            for l in &t.lossy_mappings {
                outln!("  lossy: {l}");
            }
            for g in &t.generated_columns {
                outln!("  generated column: {g}");
            }
            for a in &t.auto_increment {
                outln!("  auto-increment: {a}");
            }
            for u in &t.unchecked {
                outln!("  not checked in SQL (caught during the load): {u}");
            }
        }
        outln!(
            "estimate: {:.1}s, peak memory {} ({})",
            report.estimate.seconds,
            crate::render::bytes(report.estimate.peak_memory_bytes),
            report
                .estimate
                .tables
                .iter()
                .map(|t| format!("{} {:.1}s {}", t.table, t.seconds, t.basis))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for s in &report.schema {
            outln!("schema: {s}");
        }
        if report.findings.is_empty() {
            outln!("\nno data hazards found ({:?} scan)", report.scan);
        }
        for f in &report.findings {
            outln!(
                "\n{} {}.{}: {} rows; sample keys: {}\n  policy: {:?}{}",
                f.kind,
                f.table,
                f.column,
                f.rows,
                f.sample_keys.join(", "),
                f.policy,
                if f.policy == decant_core::hazard::ValuePolicy::Fail {
                    format!("\n  resolve: {}", f.resolve)
                } else {
                    String::new()
                }
            );
        }
        if blocking > 0 {
            outln!("\n{blocking} hazard(s) without a policy: `decant run` would refuse to start.");
        }
    }
    Ok(if blocking > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
