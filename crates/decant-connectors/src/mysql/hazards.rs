//! Hazard checks pushed down to MySQL: one aggregate query per table.

use decant_core::hazard::HazardKind;
use decant_core::{ChunkRange, Table};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::{ident, qualified};
use crate::error::ConnectorError;
use crate::traits::{HazardBound, HazardCheck, HazardCount};

/// The condition true for a row with the hazard, or `None` where MySQL cannot hold it (NaN) or
/// it cannot be said in SQL (invalid encoding: found by the reader during the load).
/// Zero dates are told apart exactly as the reader does: no digit but zeros at all.
fn predicate(check: &HazardCheck) -> Option<String> {
    let c = ident(&check.column);
    // Date parts are numbers: far cheaper than matching the text of 5M values. A zero date has
    // nothing but zeros, time included, exactly as the reader tells them apart.
    let zero =
        format!("(YEAR({c}) = 0 AND MONTH({c}) = 0 AND DAYOFMONTH({c}) = 0 AND TIME({c}) = 0)");
    match (check.kind, &check.bound) {
        (HazardKind::ZeroDate, _) => Some(zero),
        (HazardKind::InvalidDate, _) => Some(format!(
            "((MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0) AND NOT {zero})"
        )),
        (HazardKind::NulByte, _) => Some(format!("INSTR({c}, CHAR(0 USING utf8mb4)) > 0")),
        (HazardKind::TooLong, HazardBound::MaxChars { chars }) => {
            Some(format!("CHAR_LENGTH({c}) > {chars}"))
        }
        (HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes }) => {
            Some(format!("LENGTH({c}) > {bytes}"))
        }
        (HazardKind::OutOfRange, HazardBound::AbsAtLeast { limit }) => {
            // A number the planner wrote (`1e10`, `9223372036854775808`), checked before use.
            let numeric = !limit.is_empty()
                && limit
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'e' | b'E' | b'.' | b'+' | b'-'));
            numeric.then(|| format!("ABS({c}) >= {limit}"))
        }
        _ => None,
    }
}

/// The text of a row's key for sample keys: the primary key, comma-separated.
fn key_expression(table: &Table) -> Option<String> {
    match table.primary_key.as_slice() {
        [] => None,
        [k] => Some(format!("CAST({} AS CHAR)", ident(k))),
        keys => Some(format!(
            "CONCAT_WS(',', {})",
            keys.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
        )),
    }
}

pub async fn scan(
    conn: &mut Conn,
    table: &Table,
    range: &ChunkRange,
    checks: &[HazardCheck],
) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
    let key = key_expression(table);
    let range_filter = crate::chunking::range_predicate(decant_core::Dialect::Mysql, range);
    let mut exprs = Vec::new();
    let mut predicates = Vec::with_capacity(checks.len());
    for check in checks {
        let p = predicate(check);
        if let Some(p) = &p {
            exprs.push(format!(
                "CAST(SUM(CASE WHEN {p} THEN 1 ELSE 0 END) AS CHAR)"
            ));
        }
        predicates.push(p);
    }
    if exprs.is_empty() {
        return Ok(vec![None; checks.len()]);
    }
    // One aggregate scan counts every check; sample keys are then looked up only for the checks
    // that found rows, so a clean table costs one scan.
    let sql = format!(
        "SELECT {} FROM {}{}",
        exprs.join(", "),
        qualified(&table.name),
        range_filter
            .as_deref()
            .map(|r| format!(" WHERE {r}"))
            .unwrap_or_default()
    );
    let row: Option<mysql_async::Row> = conn.query_first(sql).await?;
    let mut row = row.ok_or_else(|| ConnectorError::Internal("an aggregate gave no row".into()))?;
    let counts: Vec<u64> = (0..exprs.len())
        .map(|i| {
            row.take::<Option<String>, _>(i)
                .flatten()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let mut out = Vec::with_capacity(checks.len());
    let mut next = 0;
    for p in predicates {
        let Some(p) = p else {
            out.push(None);
            continue;
        };
        let rows = counts[next];
        next += 1;
        let sample_keys = match (&key, rows) {
            (Some(k), 1..) => conn
                .query::<Option<String>, _>(format!(
                    "SELECT {k} FROM {} WHERE {p}{} ORDER BY {} LIMIT 5",
                    qualified(&table.name),
                    range_filter
                        .as_deref()
                        .map(|r| format!(" AND {r}"))
                        .unwrap_or_default(),
                    table
                        .primary_key
                        .iter()
                        .map(|c| ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .await?
                .into_iter()
                .flatten()
                .collect(),
            _ => Vec::new(),
        };
        out.push(Some(HazardCount { rows, sample_keys }));
    }
    Ok(out)
}
