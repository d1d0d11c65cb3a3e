//! `decant validate PLAN`: prove the target matches the source, list every difference, check
//! the rules; exit 0 (match), 1 (differences or failed rules) or 2 (errors), like `diff`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use decant_core::plan::Plan;
use decant_engine::validate::{Outcome, RuleStatus, TableReport, ValidationReport, html};
use decant_engine::{Progress, ValidateOptions};

/// Differences printed per table in the terminal; the reports hold them all.
const SHOWN_PER_TABLE: usize = 20;

pub struct Flags {
    pub report: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    pub counts_only: bool,
    pub float_tolerance: Option<f64>,
    pub max_diffs: usize,
    pub no_rules: bool,
    pub state: PathBuf,
}

pub async fn validate(path: &Path, flags: Flags) -> anyhow::Result<ExitCode> {
    let plan = match Plan::from_file(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let progress = Arc::new(Progress::default());
    let opts = ValidateOptions {
        state_path: Some(flags.state.clone()),
        counts_only: flags.counts_only,
        float_tolerance: flags.float_tolerance,
        max_differences: flags.max_diffs.max(1),
        check_rules: !flags.no_rules,
        progress: progress.clone(),
        ..ValidateOptions::default()
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    let renderer = (!flags.quiet && !flags.json)
        .then(|| tokio::spawn(crate::render::show_progress(progress.clone(), stop.clone())));
    let result = decant_engine::validate_plan(&plan, &opts).await;
    if let Some(r) = renderer {
        stop.notify_one();
        let _ = r.await;
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(file) = &flags.report {
        std::fs::write(file, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write the report to {}", file.display()))?;
    }
    if let Some(file) = &flags.html {
        std::fs::write(file, html::render(&report))
            .with_context(|| format!("cannot write the HTML report to {}", file.display()))?;
    }
    if flags.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Match => "✓",
        Outcome::Differences => "✗",
        Outcome::Error => "!",
    }
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "NULL".into())
}

fn rows(v: Option<u64>) -> String {
    v.map_or("?".into(), |n| n.to_string())
}

fn print_table(t: &TableReport) {
    let (m, e, c) = t.counts();
    outln!(
        "{} {} → {}: rows {}/{}, {} chunks compared ({} differing), {m} missing, {e} extra, {c} changed, {:.2}s",
        mark(t.outcome),
        t.source_table,
        t.target_table,
        rows(t.source_rows),
        rows(t.target_rows),
        t.chunks,
        t.chunks_differing,
        t.duration_secs
    );
    if let Some(err) = &t.error {
        outln!("    error: {err}");
    }
    for d in t.differences.iter().take(SHOWN_PER_TABLE) {
        let key = if t.key_columns.is_empty() {
            let row: Vec<String> = d.row.iter().map(show).collect();
            format!("row ({}) ×{}", row.join(", "), d.count)
        } else {
            let parts: Vec<String> = t
                .key_columns
                .iter()
                .zip(&d.key)
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect();
            parts.join(", ")
        };
        outln!("    {:<8} {key}", d.kind.as_str());
        for col in &d.columns {
            outln!(
                "             {}: {} → {}",
                col.column,
                show(&col.source),
                show(&col.target)
            );
        }
    }
    if t.differences.len() > SHOWN_PER_TABLE || t.differences_truncated {
        outln!(
            "    … {} more{} (see --report or --html)",
            t.differences.len().saturating_sub(SHOWN_PER_TABLE),
            if t.differences_truncated {
                ", and the list was cut at --max-diffs"
            } else {
                ""
            }
        );
    }
    if t.rows_within_tolerance > 0 {
        outln!(
            "    {} rows differ only in floats within the tolerance",
            t.rows_within_tolerance
        );
    }
    for n in &t.notes {
        outln!("    note: {n}");
    }
}

fn print_summary(r: &ValidationReport) {
    for t in &r.tables {
        print_table(t);
    }
    let enforced = r
        .rules
        .iter()
        .filter(|x| x.status == RuleStatus::Enforced)
        .count();
    if enforced > 0 {
        outln!("✓ {enforced} integrity rules are enforced by the target's constraints");
    }
    for rule in r.rules.iter().filter(|x| x.status != RuleStatus::Enforced) {
        let (mark, word) = match rule.status {
            RuleStatus::Passed | RuleStatus::Enforced => ("✓", "passed"),
            RuleStatus::Failed => ("✗", "failed"),
            RuleStatus::Error => ("!", "error"),
        };
        let detail = rule
            .detail
            .as_deref()
            .map_or(String::new(), |d| format!(": {d}"));
        outln!("{mark} rule {}: {word}{detail}", rule.name);
    }
    for w in &r.warnings {
        outln!("warning: {w}");
    }
    let differing = r
        .tables
        .iter()
        .filter(|t| t.outcome == Outcome::Differences)
        .count();
    let errors = r
        .tables
        .iter()
        .filter(|t| t.outcome == Outcome::Error)
        .count()
        + r.rules
            .iter()
            .filter(|x| x.status == RuleStatus::Error)
            .count();
    outln!(
        "{} {}: {} tables, {differing} differ, {} differing rows listed, {} of {} rules failed, {errors} errors, in {:.1}s",
        mark(r.outcome),
        r.outcome.as_str(),
        r.tables.len(),
        r.difference_count(),
        r.rules_failed(),
        r.rules.len(),
        r.duration_secs
    );
}
