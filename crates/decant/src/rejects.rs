//! `decant rejects JOB`: lists or exports the quarantine (rejected records with their rule and
//! reason; masked columns appear masked); `--retry PLAN` reruns and loads those that now pass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use decant_store::Store;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for people (the record is shortened).
    Text,
    /// CSV with a header: table, chunk, location, rule, reason, record, status.
    Csv,
    /// One JSON object per line; `record` is the row as a JSON object.
    Jsonl,
}

pub struct Flags {
    pub format: Format,
    pub output: Option<PathBuf>,
    pub retry: Option<PathBuf>,
    pub state: PathBuf,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub async fn rejects(job: &str, flags: Flags) -> anyhow::Result<ExitCode> {
    if !flags.state.exists() {
        anyhow::bail!(
            "no control store at {} (run from the directory of the run, or pass --state)",
            flags.state.display()
        );
    }
    let store = Store::open_sqlite(Path::new(&flags.state)).await?;
    // A job id, or a job name (its latest job).
    let record = match store.job(job).await? {
        Some(j) => j,
        None => store.latest_job(job).await?.with_context(|| {
            format!(
                "no job with id or name `{job}` in {}",
                flags.state.display()
            )
        })?,
    };
    if let Some(plan) = &flags.retry {
        return retry(&record.id, plan, &flags).await;
    }
    let rejects = store.rejects(&record.id).await?;
    let mut out: Box<dyn Write> = match &flags.output {
        Some(f) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(f).with_context(|| format!("cannot create {}", f.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match flags.format {
        Format::Csv => {
            writeln!(out, "table,chunk,location,rule,reason,record,status")?;
            for r in &rejects {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{}",
                    csv_field(&r.table),
                    csv_field(&r.chunk_id),
                    csv_field(&r.reject.location),
                    csv_field(&r.reject.rule),
                    csv_field(&r.reject.reason),
                    csv_field(&r.reject.record),
                    r.status
                )?;
            }
        }
        Format::Jsonl => {
            for r in &rejects {
                let record_json = serde_json::from_str::<serde_json::Value>(&r.reject.record)
                    .unwrap_or_else(|_| serde_json::Value::String(r.reject.record.clone()));
                let line = serde_json::json!({
                    "job": record.id,
                    "table": r.table,
                    "chunk": r.chunk_id,
                    "location": r.reject.location,
                    "rule": r.reject.rule,
                    "reason": r.reject.reason,
                    "record": record_json,
                    "status": r.status,
                    "created_at": r.created_at,
                });
                writeln!(out, "{line}")?;
            }
        }
        Format::Text => {
            let quarantined = rejects
                .iter()
                .filter(|r| r.status == "quarantined" || r.status == "retrying")
                .count();
            writeln!(
                out,
                "job {}: {quarantined} record(s) in the quarantine{}",
                record.id,
                if quarantined < rejects.len() {
                    format!(", {} settled by --retry", rejects.len() - quarantined)
                } else {
                    String::new()
                }
            )?;
            for r in &rejects {
                let mut rec = r.reject.record.clone();
                if rec.chars().count() > 100 {
                    rec = rec.chars().take(99).collect::<String>() + "…";
                }
                let status = if r.status == "quarantined" {
                    String::new()
                } else {
                    format!(" ({})", r.status)
                };
                writeln!(
                    out,
                    "  {} {} [{}] {}{status}\n    {rec}",
                    r.table, r.reject.location, r.reject.rule, r.reject.reason
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--retry PLAN`: one line per table, exit 1 while records stay in the quarantine.
async fn retry(job_id: &str, plan: &Path, flags: &Flags) -> anyhow::Result<ExitCode> {
    let plan = decant_core::plan::Plan::from_file(plan)?;
    let report = match decant_engine::retry_rejects(&plan, &flags.state, job_id).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if flags.format == Format::Jsonl {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        for t in &report.tables {
            outln!(
                "{}: {} loaded, {} still rejected, {} filtered out, {} not retried{}",
                t.table,
                t.loaded + t.settled,
                t.still_rejected,
                t.filtered,
                t.not_retried,
                if t.settled > 0 {
                    format!(" ({} by an interrupted earlier retry)", t.settled)
                } else {
                    String::new()
                }
            );
            for n in &t.notes {
                outln!("  {n}");
            }
        }
        if report.tables.is_empty() {
            outln!("job {job_id}: the quarantine is empty");
        }
    }
    let left: u64 = report
        .tables
        .iter()
        .map(|t| t.still_rejected + t.not_retried)
        .sum();
    Ok(if left == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
