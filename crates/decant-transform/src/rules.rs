//! Row rules as boolean expressions over the transformed columns, and the reasons a broken rule
//! gives (which never quote the value: it may be masked).

use arrow_schema::DataType;
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, cast, lit};
use datafusion::prelude::SessionContext;
use decant_core::transform::RuleCheck;

use crate::table::literal;

fn column(name: &str, schema: &DFSchema) -> Result<Expr, String> {
    if schema.has_column_with_unqualified_name(name) {
        Ok(Expr::Column(Column::new_unqualified(name)))
    } else {
        Err(format!(
            "no column `{name}` (rules see source and computed columns by name)"
        ))
    }
}

fn bound(v: &Option<serde_json::Value>) -> Result<Option<Expr>, String> {
    v.as_ref().map(literal).transpose()
}

/// The condition a good row satisfies. `unique` is not an expression; the caller handles it.
pub fn rule_expr(
    ctx: &SessionContext,
    check: &RuleCheck,
    schema: &DFSchema,
) -> Result<Expr, String> {
    let or_null = |c: Expr, cond: Expr| c.is_null().or(cond);
    Ok(match check {
        RuleCheck::NotNull { column: c } => column(c, schema)?.is_not_null(),
        RuleCheck::Range {
            column: c,
            min,
            max,
        } => {
            let col = column(c, schema)?;
            let mut cond = lit(true);
            if let Some(min) = bound(min)? {
                cond = cond.and(col.clone().gt_eq(min));
            }
            if let Some(max) = bound(max)? {
                cond = cond.and(col.clone().lt_eq(max));
            }
            or_null(col, cond)
        }
        RuleCheck::Regex { column: c, pattern } => {
            regex_check(pattern)?;
            let col = column(c, schema)?;
            let text = cast(col.clone(), DataType::Utf8);
            or_null(
                col,
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(text),
                    Operator::RegexMatch,
                    Box::new(lit(pattern.clone())),
                )),
            )
        }
        RuleCheck::InSet { column: c, values } => {
            let col = column(c, schema)?;
            let list = values.iter().map(literal).collect::<Result<Vec<_>, _>>()?;
            or_null(col.clone(), col.in_list(list, false))
        }
        RuleCheck::Length {
            column: c,
            min,
            max,
        } => {
            let col = column(c, schema)?;
            let len = datafusion::functions::unicode::expr_fn::character_length(cast(
                col.clone(),
                DataType::Utf8,
            ));
            let mut cond = lit(true);
            if let Some(min) = min {
                cond = cond.and(len.clone().gt_eq(lit(*min as i64)));
            }
            if let Some(max) = max {
                cond = cond.and(len.lt_eq(lit(*max as i64)));
            }
            or_null(col, cond)
        }
        RuleCheck::Expr { sql } => ctx
            .parse_sql_expr(sql, schema)
            .map_err(|e| format!("`{sql}`: {e}"))?,
        RuleCheck::Unique { .. } | RuleCheck::Reference { .. } => {
            return Err("unique and reference are checked by the runner".into());
        }
    })
}

fn regex_check(pattern: &str) -> Result<(), String> {
    // DataFusion compiles the pattern lazily; an invalid one must fail at plan time.
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid regex `{pattern}`: {e}"))
}

fn range_text(
    min: &Option<impl std::fmt::Display>,
    max: &Option<impl std::fmt::Display>,
) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "any".into(),
    }
}

/// Why a row broke the rule, in words (without the value).
pub fn rule_reason(check: &RuleCheck) -> String {
    match check {
        RuleCheck::NotNull { column } => format!("{column} is null"),
        RuleCheck::Range { column, min, max } => {
            format!("{column} is not {}", range_text(min, max))
        }
        RuleCheck::Regex { column, pattern } => format!("{column} does not match /{pattern}/"),
        RuleCheck::InSet { column, values } => {
            format!("{column} is not one of {} allowed values", values.len())
        }
        RuleCheck::Length { column, min, max } => {
            format!("{column} has a length that is not {}", range_text(min, max))
        }
        RuleCheck::Expr { sql } => format!("`{sql}` is not true"),
        RuleCheck::Unique { columns } => {
            format!("{} repeats a value already loaded", columns.join(", "))
        }
        RuleCheck::Reference {
            column,
            table,
            key,
            side,
            ..
        } => format!(
            "{} has no match in {} {table} ({})",
            column.names().join(", "),
            match side {
                decant_core::transform::ReferenceSide::Target => "target",
                decant_core::transform::ReferenceSide::Source => "source",
            },
            key.names().join(", ")
        ),
    }
}
