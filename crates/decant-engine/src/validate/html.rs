//! The validation report as one standalone HTML file: styles inline, no scripts, no external
//! assets, so it can be attached to a change ticket and opened anywhere.

use std::fmt::Write as _;

use super::report::{DiffKind, Difference, Outcome, RuleStatus, TableReport, ValidationReport};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#1d2330;padding:0 1em}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccd}\
h3{font-size:1.05em;margin-top:1.5em}table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{border:1px solid #d5d9e2;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f1f3f7}td.n{text-align:right;font-variant-numeric:tabular-nums}\
code,pre{font-family:ui-monospace,monospace;font-size:.92em}pre{white-space:pre-wrap;margin:0}\
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600;font-size:.9em}\
.match,.passed{background:#dcf5e3;color:#13632e}.differences,.failed{background:#fde2cf;color:#8a3a00}\
.error{background:#fbd5d5;color:#8a1111}.enforced{background:#e6e9f0;color:#3b4256}\
.null{color:#8a93a6;font-style:italic}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dt{color:#5a6478}dd{margin:0}.muted{color:#5a6478}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn value(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("<code>{}</code>", esc(s)),
        None => "<span class=\"null\">NULL</span>".into(),
    }
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

fn outcome_badge(o: Outcome) -> String {
    let text = match o {
        Outcome::Match => "match",
        Outcome::Differences => "differences",
        Outcome::Error => "error",
    };
    badge(o.as_str(), text)
}

fn rows(v: Option<u64>) -> String {
    v.map_or("–".into(), |n| n.to_string())
}

/// Renders the whole report.
pub fn render(r: &ValidationReport) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Validation of {job}: {outcome}</title><style>{STYLE}</style></head><body>\
         <h1>Validation of {job} {badge}</h1>",
        job = esc(&r.job_name),
        outcome = r.outcome.as_str(),
        badge = outcome_badge(r.outcome)
    );
    let (tables_ok, rules_failed) = (
        r.tables
            .iter()
            .filter(|t| t.outcome == Outcome::Match)
            .count(),
        r.rules_failed(),
    );
    let enforced = r
        .rules
        .iter()
        .filter(|x| x.status == RuleStatus::Enforced)
        .count();
    let _ = write!(
        h,
        "<dl><dt>Source</dt><dd><code>{}</code></dd><dt>Target</dt><dd><code>{}</code></dd>\
         <dt>Started</dt><dd>{}</dd><dt>Duration</dt><dd>{:.2} s</dd>\
         <dt>Comparison</dt><dd>{} (float tolerance {})</dd>\
         <dt>Tables</dt><dd>{tables_ok} of {} match</dd><dt>Differing rows listed</dt><dd>{}</dd>\
         <dt>Rules</dt><dd>{} rules: {rules_failed} failed, {enforced} enforced by the target's constraints</dd></dl>",
        esc(&r.source),
        esc(&r.target),
        esc(&r.started_at),
        r.duration_secs,
        esc(&r.mode),
        r.float_tolerance,
        r.tables.len(),
        r.difference_count(),
        r.rules.len()
    );
    for w in &r.warnings {
        let _ = write!(h, "<p class=\"muted\">Warning: {}</p>", esc(w));
    }

    h.push_str(
        "<h2>Tables</h2><table><tr><th>Source</th><th>Target</th><th>Method</th>\
         <th>Source rows</th><th>Target rows</th><th>Chunks</th><th>Differing chunks</th>\
         <th>Missing</th><th>Extra</th><th>Changed</th><th>Time</th><th>Outcome</th></tr>",
    );
    for t in &r.tables {
        let (m, e, c) = t.counts();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{m}</td>\
             <td class=\"n\">{e}</td><td class=\"n\">{c}</td><td class=\"n\">{:.2} s</td><td>{}</td></tr>",
            esc(&t.source_table),
            esc(&t.target_table),
            esc(&t.method),
            rows(t.source_rows),
            rows(t.target_rows),
            t.chunks,
            t.chunks_differing,
            t.duration_secs,
            outcome_badge(t.outcome)
        );
    }
    h.push_str("</table>");

    if !r.rules.is_empty() {
        h.push_str(
            "<h2>Rules on the target</h2><table><tr><th>Rule</th><th>Kind</th><th>Expected</th>\
             <th>Actual</th><th>Status</th><th>Detail</th></tr>",
        );
        for rule in &r.rules {
            let (class, text) = match rule.status {
                RuleStatus::Passed => ("passed", "passed"),
                RuleStatus::Failed => ("failed", "failed"),
                RuleStatus::Enforced => ("enforced", "enforced"),
                RuleStatus::Error => ("error", "error"),
            };
            let _ = write!(
                h,
                "<tr><td>{}<details><summary class=\"muted\">SQL</summary><pre>{}</pre></details></td>\
                 <td>{:?}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&rule.name),
                esc(&rule.sql),
                rule.kind,
                rule.expected,
                rule.actual.map_or("–".into(), |v| v.to_string()),
                badge(class, text),
                esc(rule.detail.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }

    for t in &r.tables {
        if t.outcome == Outcome::Match && t.notes.is_empty() && t.rows_within_tolerance == 0 {
            continue;
        }
        table_section(&mut h, t);
    }
    let _ = write!(
        h,
        "<p class=\"muted\">Generated by decant {}. Values are shown in Decant's text forms; \
         NULL is shown as <span class=\"null\">NULL</span>.</p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn table_section(h: &mut String, t: &TableReport) {
    let _ = write!(
        h,
        "<h3>{} → {} {}</h3>",
        esc(&t.source_table),
        esc(&t.target_table),
        outcome_badge(t.outcome)
    );
    if let Some(e) = &t.error {
        let _ = write!(h, "<p class=\"error\">{}</p>", esc(e));
    }
    for n in &t.notes {
        let _ = write!(h, "<p class=\"muted\">Note: {}</p>", esc(n));
    }
    if t.rows_within_tolerance > 0 {
        let _ = write!(
            h,
            "<p class=\"muted\">{} rows differ only in floats within the tolerance.</p>",
            t.rows_within_tolerance
        );
    }
    if t.differences.is_empty() {
        return;
    }
    if t.key_columns.is_empty() {
        h.push_str("<table><tr><th>Kind</th><th>Count</th>");
        for c in &t.columns {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr>");
        for d in &t.differences {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td>",
                kind(d),
                d.count
            );
            for v in &d.row {
                let _ = write!(h, "<td>{}</td>", value(v));
            }
            h.push_str("</tr>");
        }
    } else {
        let _ = write!(
            h,
            "<table><tr><th>Kind</th><th>Key ({})</th><th>Column</th><th>Source</th><th>Target</th></tr>",
            esc(&t.key_columns.join(", "))
        );
        for d in &t.differences {
            let key = d.key.iter().map(value).collect::<Vec<_>>().join(", ");
            if d.columns.is_empty() {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{key}</td><td></td><td></td><td></td></tr>",
                    kind(d)
                );
            }
            for (i, c) in d.columns.iter().enumerate() {
                let lead = if i == 0 {
                    format!(
                        "<td rowspan=\"{n}\">{}</td><td rowspan=\"{n}\">{key}</td>",
                        kind(d),
                        n = d.columns.len()
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    h,
                    "<tr>{lead}<td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.column),
                    value(&c.source),
                    value(&c.target)
                );
            }
        }
    }
    h.push_str("</table>");
    if t.differences_truncated {
        h.push_str(
            "<p class=\"muted\">More differences exist than are listed (raise --max-diffs).</p>",
        );
    }
}

fn kind(d: &Difference) -> String {
    let class = match d.kind {
        DiffKind::Changed => "differences",
        DiffKind::Missing | DiffKind::Extra => "error",
    };
    badge(class, d.kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::report::ColumnDiff;

    #[test]
    fn html_is_standalone_and_escaped() {
        let table = TableReport {
            source_table: "public.<t>".into(),
            target_table: "public.t".into(),
            method: "key ranges".into(),
            key_columns: vec!["id".into()],
            columns: vec!["id".into(), "v".into()],
            source_rows: Some(2),
            target_rows: Some(2),
            chunks: 1,
            chunks_differing: 1,
            outcome: Outcome::Differences,
            error: None,
            differences: vec![Difference {
                kind: DiffKind::Changed,
                key: vec![Some("1".into())],
                row: vec![],
                count: 1,
                columns: vec![ColumnDiff {
                    column: "v".into(),
                    source: Some("<script>".into()),
                    target: None,
                }],
            }],
            differences_truncated: false,
            rows_within_tolerance: 0,
            rows_filtered: 0,
            rows_rejected: 0,
            duration_secs: 0.1,
            notes: vec![],
        };
        let report = ValidationReport {
            job_name: "shop".into(),
            source: "postgres://a/b".into(),
            target: "sqlite://c.db".into(),
            mode: "checksum".into(),
            float_tolerance: 0.0,
            started_at: "now".into(),
            duration_secs: 1.0,
            outcome: Outcome::Differences,
            tables: vec![table],
            rules: vec![],
            warnings: vec![],
        };
        let html = render(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("public.&lt;t&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
        assert!(html.contains(">NULL<"));
    }
}
