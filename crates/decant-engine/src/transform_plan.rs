//! Plans a table's transforms: turns the plan's `expr`, `value`, `mask`, `where` and `rules`
//! into a [`TransformSpec`], compiles it once (so expression errors surface in `decant plan`,
//! preflight and at run start, not at row 4 million) and gives computed columns a target type.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Schema, TimeUnit};
use decant_connectors::{Target, TargetColumn};
use decant_core::Dialect;
use decant_core::hazard::ValuePolicy;
use decant_core::plan::TableConfig;
use decant_core::types::split_type_args;
use decant_core::{LogicalType, TableName};
pub use decant_transform::Pushdown;
use decant_transform::{OutputSpec, PushKind, TableTransform, TransformSpec};

use crate::planner::{SourceColumn, TableJob};

/// The logical type of an expression's Arrow result, for a computed column without `type`.
fn logical_for(dt: &DataType) -> Option<LogicalType> {
    Some(match dt {
        DataType::Boolean => LogicalType::Bool,
        DataType::Int8 => LogicalType::Int8,
        DataType::Int16 => LogicalType::Int16,
        DataType::Int32 => LogicalType::Int32,
        DataType::Int64 => LogicalType::Int64,
        DataType::UInt8 | DataType::UInt16 => LogicalType::Int32,
        DataType::UInt32 | DataType::UInt64 => LogicalType::Int64,
        DataType::Float32 => LogicalType::Float32,
        DataType::Float64 => LogicalType::Float64,
        DataType::Decimal128(p, s) => LogicalType::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => LogicalType::Text,
        DataType::Date32 | DataType::Date64 => LogicalType::Date,
        DataType::Timestamp(
            TimeUnit::Microsecond | TimeUnit::Nanosecond | TimeUnit::Millisecond | TimeUnit::Second,
            None,
        ) => LogicalType::Timestamp { precision: 6 },
        DataType::Timestamp(_, Some(_)) => LogicalType::TimestampTz { precision: 6 },
        DataType::Binary | DataType::LargeBinary => LogicalType::Binary {
            length: None,
            fixed: false,
        },
        _ => return None,
    })
}

/// True when the table's config asks for any transform.
pub fn has_transforms(cfg: &TableConfig) -> bool {
    cfg.filter.is_some()
        || !cfg.rules.is_empty()
        || cfg.dedupe.is_some()
        || cfg
            .columns
            .values()
            .any(|c| c.expr.is_some() || c.value.is_some() || c.mask.is_some())
}

/// Builds and compiles the table's transforms; adjusts `target_columns` (appending computed
/// columns, typing masked and recomputed ones). `source_schema` is what the reader produces.
#[allow(clippy::too_many_arguments)]
pub fn plan_transform(
    table: &TableName,
    cfg: &TableConfig,
    source_columns: &[SourceColumn],
    target_columns: &mut Vec<TargetColumn>,
    primary_key: &[String],
    source_schema: Arc<Schema>,
    target: &dyn Target,
    problems: &mut Vec<String>,
) -> Option<TransformSpec> {
    if !has_transforms(cfg) {
        return None;
    }
    let mut outputs: Vec<OutputSpec> = source_columns
        .iter()
        .zip(target_columns.iter())
        .map(|(s, t)| {
            let c = cfg.columns.get(&s.name);
            OutputSpec {
                name: s.name.clone(),
                target_name: t.name.clone(),
                source: Some(s.name.clone()),
                expr: c.and_then(|c| c.expr.clone()),
                value: c.and_then(|c| c.value.clone()),
                mask: c.and_then(|c| c.mask.clone()),
            }
        })
        .collect();
    let mut new_columns = Vec::new();
    for (name, c) in &cfg.columns {
        if c.skip || source_columns.iter().any(|s| s.name == *name) {
            continue;
        }
        if c.expr.is_none() && c.value.is_none() {
            continue; // a setting for a column the source lacks is reported by the planner
        }
        new_columns.push((name.clone(), c));
        outputs.push(OutputSpec {
            name: name.clone(),
            target_name: c.rename.clone().unwrap_or_else(|| name.clone()),
            source: None,
            expr: c.expr.clone(),
            value: c.value.clone(),
            mask: c.mask.clone(),
        });
    }
    let spec = TransformSpec {
        outputs,
        filter: cfg.filter.clone(),
        rules: cfg.rules.clone(),
        key_columns: primary_key.to_vec(),
        dedupe: cfg.dedupe.clone(),
    };
    let compiled = match TableTransform::compile(&spec, source_schema) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                problems.push(format!("table {table}: {e}"));
            }
            return None;
        }
    };
    let out = compiled.output_schema();
    let type_of = |native: &Option<String>,
                   dt: &DataType,
                   col: &str,
                   problems: &mut Vec<String>| {
        let native = match native {
            Some(n) => n.clone(),
            None => {
                let Some(l) = logical_for(dt) else {
                    problems.push(format!(
                        "table {table}: column {col}: its expression gives {dt}, which has no default target type; set type = \"...\""
                    ));
                    return None;
                };
                match target.native_type(&l) {
                    Ok(n) => n,
                    Err(e) => {
                        problems.push(format!("table {table}: column {col}: {e}"));
                        return None;
                    }
                }
            }
        };
        match target.parse_native_type(&native) {
            Ok(l) => Some((native, l)),
            Err(e) => {
                problems.push(format!("table {table}: column {col}: {e}"));
                None
            }
        }
    };
    // Recomputed or masked source columns take the type of their new values unless the plan
    // set one: a hash in an integer column cannot load.
    for (i, s) in source_columns.iter().enumerate() {
        let Some(c) = cfg.columns.get(&s.name) else {
            continue;
        };
        let dt = out.field(i).data_type();
        let changes_type = (c.expr.is_some() || c.value.is_some() || c.mask.is_some())
            && *dt != s.logical.arrow_type();
        if changes_type
            && c.target_type.is_none()
            && let Some((native, logical)) = type_of(&None, dt, &s.name, problems)
        {
            target_columns[i].native_type = native;
            target_columns[i].logical = logical;
        }
        if c.mask.is_some() || c.value.is_some() && c.value.as_ref().is_some_and(|v| v.is_null()) {
            target_columns[i].nullable = true;
        }
    }
    for (k, (name, c)) in new_columns.iter().enumerate() {
        let i = source_columns.len() + k;
        if let Some((native, logical)) =
            type_of(&c.target_type, out.field(i).data_type(), name, problems)
        {
            target_columns.push(TargetColumn {
                name: c.rename.clone().unwrap_or_else(|| name.clone()),
                native_type: native,
                logical,
                nullable: true,
                auto_increment: false,
            });
        }
    }
    Some(spec)
}

/// How each source column of `t` compares in its database, for the columns whose values the
/// engine sees exactly as the database holds them: a hazard policy that rewrites a value
/// (`null`, `coerce`, `reject`) keeps the column out, and so do types whose comparisons differ
/// (floats, `char(n)`'s padding, enums, case-insensitive text types like `citext`).
pub fn push_kinds(dialect: Dialect, t: &TableJob) -> HashMap<String, PushKind> {
    use LogicalType as L;
    let mut kinds = HashMap::new();
    for s in &t.source_columns {
        let rewritten = t
            .checks
            .iter()
            .any(|c| c.check.column == s.name && c.policy != ValuePolicy::Fail);
        if rewritten {
            continue;
        }
        let base = split_type_args(&s.native_type).0;
        let base = base.split_whitespace().next().unwrap_or_default();
        let kind = match (dialect, &s.logical) {
            (Dialect::Postgres, L::Int16 | L::Int32 | L::Int64)
                if matches!(
                    base,
                    "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" | "int"
                ) =>
            {
                PushKind::Int
            }
            (
                Dialect::Mysql,
                L::Int8
                | L::Int16
                | L::Int32
                | L::Int64
                | L::UInt8
                | L::UInt16
                | L::UInt32
                | L::UInt64,
            ) if matches!(
                base,
                "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
            ) =>
            {
                PushKind::Int
            }
            (Dialect::Sqlite, L::Int64) => PushKind::Int,
            (Dialect::Postgres | Dialect::Mysql, L::Decimal { .. })
                if matches!(base, "numeric" | "decimal") =>
            {
                PushKind::Decimal
            }
            (Dialect::Postgres, L::Varchar { .. } | L::Text)
                if matches!(base, "text" | "varchar" | "character") =>
            {
                // `character varying` splits to `character`; `character(n)` maps to Char.
                PushKind::Text
            }
            (Dialect::Mysql, L::Varchar { .. } | L::Text)
                if matches!(
                    base,
                    "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                ) =>
            {
                PushKind::Text
            }
            (Dialect::Sqlite, L::Varchar { .. } | L::Text) => PushKind::Text,
            (Dialect::Postgres, L::Bool) if matches!(base, "boolean" | "bool") => PushKind::Bool,
            (Dialect::Postgres | Dialect::Mysql, L::Date) if base == "date" => PushKind::Date,
            (Dialect::Postgres, L::Timestamp { .. }) if base == "timestamp" => PushKind::Timestamp,
            (Dialect::Mysql, L::Timestamp { .. }) if base == "datetime" => PushKind::Timestamp,
            _ => continue,
        };
        kinds.insert(s.name.clone(), kind);
    }
    kinds
}

/// The part of `t`'s filter its source evaluates (see [`push_kinds`]).
pub fn pushdown(dialect: Dialect, t: &TableJob, compiled: &TableTransform) -> Pushdown {
    compiled.pushdown(dialect, &push_kinds(dialect, t))
}

/// What a run of `t` would push to its source, for `decant plan`: `None` without a filter.
pub fn planned_pushdown(dialect: Dialect, t: &TableJob) -> Option<Pushdown> {
    let spec = t.transform.as_ref().filter(|s| s.filter.is_some())?;
    let compiled = TableTransform::compile(spec, t.source_schema()).ok()?;
    Some(pushdown(dialect, t, &compiled))
}
