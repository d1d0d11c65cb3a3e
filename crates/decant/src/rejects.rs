//! `decant rejects JOB`: lists or exports the quarantine (rejected records with their rule and
//! reason; masked columns appear masked).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use decant_store::Store;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for people (the record is shortened).
    Text,
    /// CSV with a header: table, chunk, location, rule, reason, record.
    Csv,
    /// One JSON object per line; `record` is the row as a JSON object.
    Jsonl,
}

pub struct Flags {
    pub format: Format,
    pub output: Option<PathBuf>,
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
    let rejects = store.rejects(&record.id).await?;
    let mut out: Box<dyn Write> = match &flags.output {
        Some(f) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(f).with_context(|| format!("cannot create {}", f.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match flags.format {
        Format::Csv => {
            writeln!(out, "table,chunk,location,rule,reason,record")?;
            for r in &rejects {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    csv_field(&r.table),
                    csv_field(&r.chunk_id),
                    csv_field(&r.reject.location),
                    csv_field(&r.reject.rule),
                    csv_field(&r.reject.reason),
                    csv_field(&r.reject.record)
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
                    "created_at": r.created_at,
                });
                writeln!(out, "{line}")?;
            }
        }
        Format::Text => {
            writeln!(
                out,
                "job {}: {} rejected record(s)",
                record.id,
                rejects.len()
            )?;
            for r in &rejects {
                let mut rec = r.reject.record.clone();
                if rec.chars().count() > 100 {
                    rec = rec.chars().take(99).collect::<String>() + "…";
                }
                writeln!(
                    out,
                    "  {} {} [{}] {}\n    {rec}",
                    r.table, r.reject.location, r.reject.rule, r.reject.reason
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
