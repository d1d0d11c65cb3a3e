//! Hazard checks pushed down to PostgreSQL: one aggregate query per table.

use decant_core::hazard::HazardKind;
use decant_core::{ChunkRange, Dialect, LogicalType, Table, quote_ident, quote_literal};
use tokio_postgres::Client;

use super::qualified;
use crate::error::ConnectorError;
use crate::traits::{HazardBound, HazardCheck, HazardCount};

/// The SQL condition that is true for a row with the hazard, or `None` when PostgreSQL cannot
/// hold the hazard at all (NUL bytes, zero dates) or it cannot be expressed.
fn predicate(check: &HazardCheck, logical: Option<&LogicalType>) -> Option<String> {
    let c = quote_ident(Dialect::Postgres, &check.column);
    let lit = |s: &str| quote_literal(Dialect::Postgres, s);
    match (check.kind, &check.bound) {
        (HazardKind::TooLong, HazardBound::MaxChars { chars }) => {
            Some(format!("char_length({c}::text) > {chars}"))
        }
        (HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes }) => {
            Some(format!("octet_length({c}) > {bytes}"))
        }
        (HazardKind::OutOfRange, HazardBound::DateRange { min, max }) => Some(format!(
            "(NOT isfinite({c}) OR {c} < {}::date OR {c} >= {}::date + 1)",
            lit(min),
            lit(max)
        )),
        (HazardKind::OutOfRange, HazardBound::AbsAtLeast { limit }) => Some(format!(
            "({c} NOT IN ('NaN', 'Infinity', '-Infinity') AND abs({c}) >= {}::numeric)",
            lit(limit)
        )),
        (HazardKind::NotANumber, _) => match logical {
            // Compared as numbers: formatting every value as text costs more than the scan.
            Some(LogicalType::Float32 | LogicalType::Float64) => Some(format!(
                "({c} = 'NaN' OR {c} = 'Infinity' OR {c} = '-Infinity')"
            )),
            Some(LogicalType::BigDecimal | LogicalType::Decimal { .. }) => Some(format!(
                "({c} = 'NaN'::numeric OR {c} = 'Infinity'::numeric OR {c} = '-Infinity'::numeric)"
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The text of a row's key, for sample keys: the primary key, else the physical position.
fn key_expression(table: &Table) -> String {
    match table.primary_key.as_slice() {
        [] => "ctid::text".into(),
        [k] => format!("{}::text", quote_ident(Dialect::Postgres, k)),
        keys => format!(
            "row({})::text",
            keys.iter()
                .map(|k| quote_ident(Dialect::Postgres, k))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn where_clause(range: &ChunkRange) -> String {
    crate::chunking::range_predicate(Dialect::Postgres, range)
        .map(|p| format!(" WHERE {p}"))
        .unwrap_or_default()
}

pub async fn scan(
    client: &Client,
    table: &Table,
    range: &ChunkRange,
    checks: &[HazardCheck],
) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
    let key = key_expression(table);
    let order = if table.primary_key.is_empty() {
        "ctid".to_string()
    } else {
        table
            .primary_key
            .iter()
            .map(|k| quote_ident(Dialect::Postgres, k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut exprs = Vec::new();
    let mut slots = Vec::with_capacity(checks.len());
    for check in checks {
        let logical = table.column(&check.column).and_then(|c| c.logical.as_ref());
        match predicate(check, logical) {
            Some(p) => {
                slots.push(Some(exprs.len()));
                exprs.push(format!("count(*) FILTER (WHERE {p})::int8"));
                exprs.push(format!(
                    "(array_agg({key} ORDER BY {order}) FILTER (WHERE {p}))[1:5]"
                ));
            }
            None => slots.push(None),
        }
    }
    if exprs.is_empty() {
        return Ok(vec![None; checks.len()]);
    }
    let row = client
        .query_one(
            &format!(
                "SELECT {} FROM {}{}",
                exprs.join(", "),
                qualified(&table.name),
                where_clause(range)
            ),
            &[],
        )
        .await?;
    Ok(slots
        .into_iter()
        .map(|slot| {
            slot.map(|i| HazardCount {
                rows: row.get::<_, i64>(i) as u64,
                sample_keys: row.get::<_, Option<Vec<String>>>(i + 1).unwrap_or_default(),
            })
        })
        .collect())
}
