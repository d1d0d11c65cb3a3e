//! Hazard checks pushed down to MySQL: one aggregate query per table.

use decant_core::Table;
use decant_core::hazard::HazardKind;
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
    let text = format!("CAST({c} AS CHAR)");
    match (check.kind, &check.bound) {
        (HazardKind::ZeroDate, _) => Some(format!("{text} NOT REGEXP '[1-9]'")),
        (HazardKind::InvalidDate, _) => Some(format!(
            "((SUBSTRING({text}, 6, 2) = '00' OR SUBSTRING({text}, 9, 2) = '00') \
             AND {text} REGEXP '[1-9]')"
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
    checks: &[HazardCheck],
) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
    let key = key_expression(table);
    let mut exprs = Vec::new();
    let mut slots = Vec::with_capacity(checks.len());
    for check in checks {
        match predicate(check) {
            Some(p) => {
                slots.push(Some(exprs.len()));
                exprs.push(format!(
                    "CAST(SUM(CASE WHEN {p} THEN 1 ELSE 0 END) AS CHAR)"
                ));
                exprs.push(match &key {
                    Some(k) => format!(
                        "SUBSTRING_INDEX(GROUP_CONCAT(CASE WHEN {p} THEN {k} END \
                         ORDER BY {k} SEPARATOR 0x1f), 0x1f, 5)"
                    ),
                    None => "NULL".into(),
                });
            }
            None => slots.push(None),
        }
    }
    if exprs.is_empty() {
        return Ok(vec![None; checks.len()]);
    }
    let sql = format!(
        "SELECT {} FROM {}",
        exprs.join(", "),
        qualified(&table.name)
    );
    let row: Option<mysql_async::Row> = conn.query_first(sql).await?;
    let mut row = row.ok_or_else(|| ConnectorError::Internal("an aggregate gave no row".into()))?;
    let mut cell = |i: usize| -> Option<String> { row.take::<Option<String>, _>(i).flatten() };
    let values: Vec<(u64, Option<String>)> = (0..exprs.len() / 2)
        .map(|i| {
            let rows = cell(2 * i).and_then(|n| n.parse().ok()).unwrap_or(0);
            (rows, cell(2 * i + 1))
        })
        .collect();
    Ok(slots
        .into_iter()
        .map(|slot| {
            slot.map(|i| {
                let (rows, keys) = &values[i / 2];
                HazardCount {
                    rows: *rows,
                    sample_keys: keys
                        .as_deref()
                        .filter(|k| !k.is_empty())
                        .map(|k| k.split('\u{1f}').take(5).map(str::to_string).collect())
                        .unwrap_or_default(),
                }
            })
        })
        .collect())
}
