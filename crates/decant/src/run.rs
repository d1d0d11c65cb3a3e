//! `decant run PLAN`: migrate with live progress; rerun to resume.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use decant_core::plan::Plan;
use decant_engine::{EngineError, Phase, Progress, RunOptions};

pub struct Flags {
    pub restart: bool,
    pub quiet: bool,
    pub summary_json: Option<PathBuf>,
    pub max_memory: Option<String>,
    pub state: PathBuf,
    pub phase: Option<PhaseArg>,
    pub staging: Option<PathBuf>,
}

/// `--phase`: one staged phase of the job.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PhaseArg {
    Extract,
    Transform,
    Load,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::Extract => Phase::Extract,
            PhaseArg::Transform => Phase::Transform,
            PhaseArg::Load => Phase::Load,
        }
    }
}

pub async fn run(path: &Path, flags: Flags) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_file(path)?;
    let max_memory = flags
        .max_memory
        .as_deref()
        .map(decant_core::size::parse_size)
        .transpose()?;
    let progress = Arc::new(Progress::default());
    let opts = RunOptions {
        state_path: flags.state.clone(),
        restart: flags.restart,
        max_memory,
        progress: progress.clone(),
        phase: flags.phase.map(Phase::from),
        // Beside the control store unless given: `.decant/staging` for `.decant/state.db`.
        staging: Some(flags.staging.clone().unwrap_or_else(|| {
            flags
                .state
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("staging")
        })),
        ..Default::default()
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let renderer = (!flags.quiet)
        .then(|| tokio::spawn(crate::render::show_progress(progress.clone(), stop.clone())));
    let result = decant_engine::run(&plan, &opts).await;
    if let Some(r) = renderer {
        stop.notify_one();
        let _ = r.await;
    }
    match result {
        Ok(summary) => {
            if let Some(file) = &flags.summary_json {
                std::fs::write(file, serde_json::to_string_pretty(&summary)?)
                    .with_context(|| format!("cannot write {}", file.display()))?;
            }
            crate::render::print_summary(&summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            let hint = match &e {
                EngineError::Chunk { .. } | EngineError::Connector(_) => Some(
                    "fix the cause, then run the same command again: committed chunks are kept and the job resumes where it stopped",
                ),
                EngineError::Verification(_) => {
                    Some("the target does not match the source; inspect the tables named above")
                }
                _ => None,
            };
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            if let Some(file) = &flags.summary_json {
                let failed = serde_json::json!({ "state": "failed", "error": e.to_string() });
                let _ = std::fs::write(file, serde_json::to_string_pretty(&failed)?);
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
