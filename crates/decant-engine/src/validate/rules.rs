//! Rules on the target: integrity checks derived from the plan (foreign-key orphans, duplicate
//! keys, NULLs in NOT NULL columns) and the plan's business rules, each a query returning one
//! number that must equal what is expected.

use std::time::Instant;

use decant_connectors::TargetTable;
use decant_core::ident::quote_qualified;
use decant_core::plan::ValidationRule;
use decant_core::{Catalog, ConnectionUrl, Dialect, Table, TableName, quote_ident};

use super::report::{RuleKind, RuleResult, RuleStatus};
use super::sql::SqlConn;
use super::table::find_table;

/// A rule to check, before it runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub kind: RuleKind,
    pub table: Option<String>,
    pub sql: String,
    pub expected: i64,
    /// What the number counts, for the failure message (`orphan rows`).
    pub counts: String,
    /// Set when a constraint on the target already guarantees the rule: it is not run.
    pub enforced_by: Option<String>,
}

fn qualified(dialect: Dialect, t: &TableName) -> String {
    quote_qualified(dialect, t.schema.as_deref(), &t.name)
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// The integrity rules of one table as the plan describes it (`planned`), checked against the
/// table found on the target (`actual`).
pub(crate) fn integrity_rules(
    dialect: Dialect,
    planned: &TargetTable,
    actual: &Table,
    catalog: &Catalog,
) -> Vec<RuleSpec> {
    let q = |c: &str| quote_ident(dialect, c);
    let table = qualified(dialect, &actual.name);
    let shown = actual.name.to_string();
    let mut out = Vec::new();
    let rule = |name: String, sql: String, counts: &str, enforced_by: Option<String>| RuleSpec {
        name,
        kind: RuleKind::Integrity,
        table: Some(shown.clone()),
        sql,
        expected: 0,
        counts: counts.to_string(),
        enforced_by,
    };

    let mut keys: Vec<(&str, &[String])> = Vec::new();
    if !planned.primary_key.is_empty() {
        keys.push(("primary key", &planned.primary_key));
    }
    keys.extend(
        planned
            .unique_keys
            .iter()
            .map(|u| ("unique key", u.columns.as_slice())),
    );
    for (what, columns) in keys {
        let enforced = if same_columns(&actual.primary_key, columns) {
            Some(format!("the primary key of {shown}"))
        } else {
            actual
                .unique_keys
                .iter()
                .chain(actual.indexes.iter().filter(|i| i.unique))
                .find(|u| same_columns(&u.columns, columns))
                .map(|u| format!("unique constraint {}", u.name))
        };
        let cols: Vec<String> = columns.iter().map(|c| q(c)).collect();
        let not_null: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 AS one FROM {table} WHERE {} GROUP BY {} HAVING count(*) > 1) AS dup",
            not_null.join(" AND "),
            cols.join(", ")
        );
        out.push(rule(
            format!("{what} ({}) of {shown} is unique", columns.join(", ")),
            sql,
            "key values held by more than one row",
            enforced,
        ));
    }

    let required: Vec<&str> = planned
        .columns
        .iter()
        .filter(|c| !c.nullable)
        .map(|c| c.name.as_str())
        .collect();
    let unenforced: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| {
            actual
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .is_none_or(|c| c.nullable)
        })
        .collect();
    if !required.is_empty() {
        let checked = if unenforced.is_empty() {
            &required
        } else {
            &unenforced
        };
        let cond: Vec<String> = checked
            .iter()
            .map(|c| format!("{} IS NULL", q(c)))
            .collect();
        out.push(rule(
            format!(
                "NOT NULL columns of {shown} hold no NULL ({})",
                checked.join(", ")
            ),
            format!("SELECT count(*) FROM {table} WHERE {}", cond.join(" OR ")),
            "rows with NULL in a NOT NULL column",
            unenforced
                .is_empty()
                .then(|| format!("NOT NULL constraints of {shown}")),
        ));
    }

    // Foreign keys are always checked: SQLite does not enforce them unless asked, and any
    // system lets a bulk load switch them off.
    for fk in &planned.foreign_keys {
        let parent = find_table(catalog, &fk.ref_table)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| fk.ref_table.clone());
        let present: Vec<String> = fk
            .columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", q(c)))
            .collect();
        let join: Vec<String> = fk
            .columns
            .iter()
            .zip(&fk.ref_columns)
            .map(|(c, r)| format!("p.{} = c.{}", q(r), q(c)))
            .collect();
        out.push(rule(
            format!(
                "foreign key {} of {shown} ({}) finds its row in {parent}",
                fk.name,
                fk.columns.join(", ")
            ),
            format!(
                "SELECT count(*) FROM {table} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                present.join(" AND "),
                qualified(dialect, &parent),
                join.join(" AND ")
            ),
            "orphan rows (their referenced row does not exist)",
            None,
        ));
    }
    out
}

/// The plan's business rules.
pub(crate) fn business_rules(rules: &[ValidationRule]) -> Vec<RuleSpec> {
    rules
        .iter()
        .map(|r| RuleSpec {
            name: r.name.clone(),
            kind: RuleKind::Business,
            table: None,
            sql: r.sql.clone(),
            expected: r.expect,
            counts: "returned".into(),
            enforced_by: None,
        })
        .collect()
}

/// Runs the rules on the target, one after another on one connection.
pub(crate) async fn run_rules(url: &ConnectionUrl, specs: Vec<RuleSpec>) -> Vec<RuleResult> {
    let result = |s: &RuleSpec, actual, status, detail, secs| RuleResult {
        name: s.name.clone(),
        kind: s.kind,
        table: s.table.clone(),
        sql: s.sql.clone(),
        expected: s.expected,
        actual,
        status,
        detail,
        duration_secs: secs,
    };
    if specs.iter().all(|s| s.enforced_by.is_some()) {
        return specs
            .iter()
            .map(|s| {
                let detail = s.enforced_by.as_ref().map(|e| format!("enforced by {e}"));
                result(s, None, RuleStatus::Enforced, detail, 0.0)
            })
            .collect();
    }
    let mut conn = match SqlConn::connect(url).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot connect to check rules");
            return specs
                .iter()
                .map(|s| result(s, None, RuleStatus::Error, Some(e.clone()), 0.0))
                .collect();
        }
    };
    let mut out = Vec::new();
    for s in &specs {
        if let Some(by) = &s.enforced_by {
            let detail = Some(format!("enforced by {by}"));
            out.push(result(s, None, RuleStatus::Enforced, detail, 0.0));
            continue;
        }
        let Some(c) = conn.as_mut() else { break };
        let started = Instant::now();
        let answer = c.numbers(&s.sql).await;
        let secs = started.elapsed().as_secs_f64();
        out.push(match answer {
            Ok(values) => match values.first() {
                Some(Some(v)) if *v == s.expected => {
                    result(s, Some(*v), RuleStatus::Passed, None, secs)
                }
                Some(Some(v)) => {
                    let detail = Some(format!("{v} {} (expected {})", s.counts, s.expected));
                    result(s, Some(*v), RuleStatus::Failed, detail, secs)
                }
                Some(None) => {
                    let detail = Some(format!("returned NULL (expected {})", s.expected));
                    result(s, None, RuleStatus::Failed, detail, secs)
                }
                None => {
                    let detail =
                        Some("the query returned no row; it must return one number".into());
                    result(s, None, RuleStatus::Error, detail, secs)
                }
            },
            Err(e) => result(s, None, RuleStatus::Error, Some(e), secs),
        });
    }
    if let Some(c) = conn {
        c.close().await;
    }
    out
}

#[cfg(test)]
mod tests {
    use decant_connectors::TargetColumn;
    use decant_core::{Column, ForeignKey, Index, LogicalType};

    use super::*;

    fn column(name: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            native_type: "integer".into(),
            logical: Some(LogicalType::Int32),
            nullable,
            default: None,
            auto_increment: false,
            generated: false,
        }
    }

    fn planned() -> TargetTable {
        let col = |name: &str, nullable| TargetColumn {
            name: name.into(),
            native_type: "integer".into(),
            logical: LogicalType::Int32,
            nullable,
            auto_increment: false,
        };
        TargetTable {
            name: TableName::new(Some("public"), "line"),
            columns: vec![col("id", false), col("order_id", false), col("n", true)],
            primary_key: vec!["id".into()],
            unique_keys: vec![Index {
                name: "line_n".into(),
                columns: vec!["n".into()],
                unique: true,
                unsupported: None,
            }],
            indexes: vec![],
            foreign_keys: vec![ForeignKey {
                name: "line_order".into(),
                columns: vec!["order_id".into()],
                ref_table: TableName::new(Some("public"), "order"),
                ref_columns: vec!["id".into()],
                on_delete: None,
                on_update: None,
            }],
        }
    }

    #[test]
    fn enforced_constraints_are_not_rechecked() {
        let actual = Table {
            name: TableName::new(Some("public"), "line"),
            columns: vec![
                column("id", false),
                column("order_id", true),
                column("n", true),
            ],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            row_estimate: 0,
            size_bytes: 0,
            next_auto_increment: None,
        };
        let rules = integrity_rules(Dialect::Postgres, &planned(), &actual, &Catalog::default());
        let names: Vec<(&str, bool)> = rules
            .iter()
            .map(|r| (r.name.as_str(), r.enforced_by.is_some()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("primary key (id) of public.line is unique", true),
                ("unique key (n) of public.line is unique", false),
                (
                    "NOT NULL columns of public.line hold no NULL (order_id)",
                    false
                ),
                (
                    "foreign key line_order of public.line (order_id) finds its row in public.order",
                    false
                ),
            ]
        );
        assert_eq!(
            rules[3].sql,
            r#"SELECT count(*) FROM "public"."line" c WHERE c."order_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "public"."order" p WHERE p."id" = c."order_id")"#
        );
        assert!(rules[1].sql.contains(r#"GROUP BY "n" HAVING count(*) > 1"#));
    }
}
