//! Terminal rendering: live progress bars (indicatif) and the final summary.

use std::sync::Arc;
use std::time::Duration;

use decant_engine::{Progress, RunSummary};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// Draws the job's progress until `stop` is notified.
pub async fn show_progress(progress: Arc<Progress>, stop: Arc<tokio::sync::Notify>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let style =
        ProgressStyle::with_template("{prefix:>24.bold} [{bar:30}] {pos:>10}/{len:<10} rows {msg}")
            .expect("valid template")
            .progress_chars("=> ");
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(style.clone());
    overall.set_prefix("all tables");
    let mut bars: Vec<ProgressBar> = Vec::new();
    let mut last_rows = 0u64;
    let mut rate = 0f64;
    let (mut last_bytes, mut byte_rate) = (0u64, 0f64);
    let tick = Duration::from_millis(250);
    loop {
        let tables = progress.tables();
        while bars.len() < tables.len() {
            let b = multi.insert_before(&overall, ProgressBar::new(0));
            b.set_style(style.clone());
            bars.push(b);
        }
        let (mut done, mut total, mut bytes_done) = (0u64, 0u64, 0u64);
        for (b, t) in bars.iter().zip(&tables) {
            let len = t.rows_estimated.max(t.rows_done);
            b.set_prefix(truncate(&t.name, 24));
            b.set_length(len);
            b.set_position(t.rows_done);
            b.set_message(format!(
                "{} chunks {}/{}",
                bytes(t.bytes_done),
                t.chunks_done,
                t.chunks_total
            ));
            done += t.rows_done;
            total += len;
            bytes_done += t.bytes_done;
        }
        // Rate smoothed over about two seconds; the ETA says "estimating" until there is a rate.
        let instant = (done.saturating_sub(last_rows)) as f64 / tick.as_secs_f64();
        rate = if rate == 0.0 {
            instant
        } else {
            rate * 0.875 + instant * 0.125
        };
        last_rows = done;
        let instant_bytes = (bytes_done.saturating_sub(last_bytes)) as f64 / tick.as_secs_f64();
        byte_rate = if byte_rate == 0.0 {
            instant_bytes
        } else {
            byte_rate * 0.875 + instant_bytes * 0.125
        };
        last_bytes = bytes_done;
        let eta = match eta_secs(&tables, byte_rate) {
            _ if total <= done => String::new(),
            Some(secs) => format!(", ETA {secs}s"),
            None => ", ETA estimating".into(),
        };
        overall.set_length(total);
        overall.set_position(done);
        overall.set_message(format!(
            "{} {:.0} rows/s{eta} — {}",
            bytes(bytes_done),
            rate,
            progress.phase()
        ));
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    for b in bars {
        b.finish();
    }
    overall.finish();
}

/// Seconds left: the bytes still to move (each table's remaining rows at that table's measured
/// bytes per row, or the run's average before it has any) over the measured byte rate. `None`
/// until there is a rate; never 0 while work remains.
fn eta_secs(tables: &[decant_engine::progress::TableSnapshot], byte_rate: f64) -> Option<u64> {
    let (rows, bytes) = tables.iter().fold((0u64, 0u64), |(r, b), t| {
        (r + t.rows_done, b + t.bytes_done)
    });
    if byte_rate < 1.0 || rows == 0 {
        return None;
    }
    let average = bytes as f64 / rows as f64;
    let remaining: f64 = tables
        .iter()
        .map(|t| {
            let width = if t.rows_done > 0 {
                t.bytes_done as f64 / t.rows_done as f64
            } else {
                average
            };
            t.rows_estimated.saturating_sub(t.rows_done) as f64 * width
        })
        .sum();
    Some(((remaining / byte_rate).ceil() as u64).max(1))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(n - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// The final summary, one line per table.
pub fn print_summary(s: &RunSummary) {
    outln!(
        "{} job {}: {} tables, {} rows, {} in {:.1}s ({:.0} rows/s), {} rejects{}",
        if matches!(s.state.as_str(), "succeeded" | "extracted" | "transformed") {
            "✓"
        } else {
            "✗"
        },
        s.job_id,
        s.tables.len(),
        s.rows,
        bytes(s.bytes),
        s.duration_secs,
        s.rows as f64 / s.duration_secs.max(0.001),
        s.rejects,
        if s.resumed { " (resumed)" } else { "" }
    );
    if let Some(e) = &s.estimate {
        outln!(
            "  estimate before the run: {:.1}s and {} peak memory; took {:.1}s",
            e.seconds,
            bytes(e.peak_memory_bytes),
            s.duration_secs
        );
    }
    if s.state != "succeeded" {
        outln!("  {}; the target is untouched", s.state);
    }
    for t in &s.tables {
        let resumed = if t.chunks_resumed > 0 {
            format!(", {} chunks from the earlier run", t.chunks_resumed)
        } else {
            String::new()
        };
        outln!(
            "  {} → {}: {} rows ({}, source {}){resumed}",
            t.source,
            t.target,
            t.rows_written,
            t.decision,
            t.source_rows
        );
        if t.rows_rejected > 0 || t.rows_filtered > 0 {
            let at_source = if t.rows_filtered_at_source > 0 {
                format!(
                    " ({} of them by the source's query)",
                    t.rows_filtered_at_source
                )
            } else {
                String::new()
            };
            outln!(
                "    {} rejected (decant rejects {}), {} filtered by where{at_source}",
                t.rows_rejected,
                s.job_id,
                t.rows_filtered
            );
        }
        for step in &t.transforms {
            outln!(
                "    {} {}: seen {}, changed {}, rejected {}, warned {}",
                step.kind,
                step.name,
                step.seen,
                step.changed,
                step.rejected,
                step.warned
            );
        }
        for n in &t.notes {
            outln!("    note: {n}");
        }
    }
    if let Some(v) = &s.validation {
        outln!("  validation: {v}");
    }
    for c in &s.policy_changes {
        outln!(
            "  policy {:?} changed {} value(s) of {}.{} ({})",
            c.policy,
            c.values,
            c.table,
            c.column,
            c.kind
        );
    }
    for v in &s.views_not_migrated {
        outln!("  view {v}: not migrated");
    }
    for w in &s.warnings {
        outln!("  warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use decant_engine::progress::TableSnapshot;

    fn table(rows_estimated: u64, rows_done: u64, bytes_done: u64) -> TableSnapshot {
        TableSnapshot {
            name: "t".into(),
            rows_estimated,
            rows_done,
            bytes_done,
            chunks_total: 1,
            chunks_done: 0,
        }
    }

    #[test]
    fn eta_weighs_each_table_by_its_row_width() {
        // 900 rows left of a table moving at 10 B/row, and 10 rows of a table not started yet,
        // counted at the run's average so far (10 B/row): 9,100 B at 100 B/s.
        let tables = [table(1000, 100, 1000), table(10, 0, 0)];
        assert_eq!(super::eta_secs(&tables, 100.0), Some(91));
        assert_eq!(
            super::eta_secs(&tables, 0.0),
            None,
            "no rate yet: estimating"
        );
        let done = [table(10, 10, 100)];
        assert_eq!(
            super::eta_secs(&done, 50.0),
            Some(1),
            "never 0 s while the bar is open"
        );
    }
}
