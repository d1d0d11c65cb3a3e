//! Hazard checks pushed down to SQLite: one aggregate query per table.

use decant_core::hazard::HazardKind;
use decant_core::{ChunkRange, Dialect, Table, quote_ident, quote_literal};
use rusqlite::Connection;

use crate::error::ConnectorError;
use crate::traits::{HazardBound, HazardCheck, HazardCount};

/// The condition true for a row with the hazard; `None` where SQLite has no way to say it
/// (invalid UTF-8 is found by the reader during the load, naming the row).
fn predicate(check: &HazardCheck) -> Option<String> {
    let c = quote_ident(Dialect::Sqlite, &check.column);
    match (check.kind, &check.bound) {
        (HazardKind::NulByte, _) => Some(format!(
            "(typeof({c}) = 'text' AND instr(CAST({c} AS BLOB), x'00') > 0)"
        )),
        (HazardKind::TooLong, HazardBound::MaxChars { chars }) => Some(format!(
            "(typeof({c}) IN ('text', 'integer', 'real') AND length({c}) > {chars})"
        )),
        (HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes }) => {
            Some(format!("length(CAST({c} AS BLOB)) > {bytes}"))
        }
        (HazardKind::NotANumber, _) => {
            Some(format!("(typeof({c}) = 'real' AND {c} IN (9e999, -9e999))"))
        }
        (HazardKind::OutOfRange, HazardBound::AbsAtLeast { limit }) => Some(format!(
            "(typeof({c}) IN ('integer', 'real') AND abs({c}) >= {})",
            quote_literal(Dialect::Sqlite, limit)
        )),
        _ => None,
    }
}

pub fn scan(
    conn: &Connection,
    table: &Table,
    range: &ChunkRange,
    checks: &[HazardCheck],
) -> Result<Vec<Option<HazardCount>>, ConnectorError> {
    let key = match table.primary_key.as_slice() {
        [] => "rowid".to_string(),
        keys => keys
            .iter()
            .map(|k| quote_ident(Dialect::Sqlite, k))
            .collect::<Vec<_>>()
            .join(" || ',' || "),
    };
    let mut exprs = Vec::new();
    let mut slots = Vec::with_capacity(checks.len());
    for check in checks {
        match predicate(check) {
            Some(p) => {
                slots.push(Some(exprs.len()));
                exprs.push(format!("coalesce(sum(CASE WHEN {p} THEN 1 ELSE 0 END), 0)"));
                exprs.push(format!(
                    "group_concat(CASE WHEN {p} THEN {key} END, char(31))"
                ));
            }
            None => slots.push(None),
        }
    }
    if exprs.is_empty() {
        return Ok(vec![None; checks.len()]);
    }
    let sql = format!(
        "SELECT {} FROM {}{}",
        exprs.join(", "),
        quote_ident(Dialect::Sqlite, &table.name.name),
        crate::chunking::range_predicate(Dialect::Sqlite, range)
            .map(|p| format!(" WHERE {p}"))
            .unwrap_or_default()
    );
    let values: Vec<(i64, Option<String>)> = conn.query_row(&sql, [], |r| {
        (0..exprs.len() / 2)
            .map(|i| Ok((r.get(2 * i)?, r.get(2 * i + 1)?)))
            .collect()
    })?;
    Ok(slots
        .into_iter()
        .map(|slot| {
            slot.map(|i| {
                let (rows, keys) = &values[i / 2];
                HazardCount {
                    rows: (*rows).max(0) as u64,
                    sample_keys: keys
                        .as_deref()
                        .map(|k| k.split('\u{1f}').take(5).map(str::to_string).collect())
                        .unwrap_or_default(),
                }
            })
        })
        .collect())
}
