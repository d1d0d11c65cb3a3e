//! Reads SQLite tables in rowid ranges, decoding SQLite's dynamically typed values into the
//! logical type of each column; a value that does not fit is an error, never a silent change.

use arrow_array::RecordBatch;
use arrow_buffer::IntervalMonthDayNano;
use async_trait::async_trait;
use decant_core::hazard::{HazardKind, ValuePolicy};
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, ConnectionUrl, Dialect, LogicalType, Table, TableName,
    quote_ident,
};
use rusqlite::types::ValueRef;
use tokio::sync::mpsc;

use super::types::parse_interval;
use super::{blocking, open_read, path_of, row_key};
use crate::batch::{BatchBuilder, ColumnBuilder, parse_timestamp};
use crate::error::ConnectorError;
use crate::traits::{ReadRequest, Source};

fn q(name: &str) -> String {
    quote_ident(Dialect::Sqlite, name)
}

/// A SQLite file read through read-only connections, one per call.
pub struct SqliteSource {
    path: String,
}

impl SqliteSource {
    /// Checks that the file exists; nothing is opened until the first call.
    pub fn open(url: &ConnectionUrl) -> Result<Self, ConnectorError> {
        let path = path_of(url)?;
        if !std::path::Path::new(&path).is_file() {
            return Err(ConnectorError::Config(format!(
                "sqlite source {path} does not exist (or is not a file)"
            )));
        }
        Ok(SqliteSource { path })
    }
}

#[async_trait]
impl Source for SqliteSource {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let path = self.path.clone();
        blocking(move || super::introspect::introspect(&open_read(&path)?)).await
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let (path, name) = (self.path.clone(), table.name.name.clone());
        blocking(move || {
            let conn = open_read(&path)?;
            let Some(key) = row_key(&conn, &name)? else {
                let rows: i64 =
                    conn.query_row(&format!("SELECT count(*) FROM {}", q(&name)), [], |r| {
                        r.get(0)
                    })?;
                return Ok(vec![whole(rows.max(0) as u64)]);
            };
            let k = q(&key);
            let (min, max, count): (Option<i64>, Option<i64>, i64) = conn.query_row(
                &format!("SELECT min({k}), max({k}), count(*) FROM {}", q(&name)),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            Ok(match (min, max) {
                (Some(min), Some(max)) => crate::chunking::int_key_chunks(
                    &key,
                    min,
                    max,
                    count.max(0) as u64,
                    chunk_rows.max(1),
                ),
                _ => vec![whole(0)],
            })
        })
        .await
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let (path, request) = (self.path.clone(), request.clone());
        blocking(move || read_blocking(&path, &request, &tx)).await
    }

    async fn scan_hazards(
        &self,
        table: &Table,
        range: &ChunkRange,
        checks: &[crate::traits::HazardCheck],
    ) -> Result<Vec<Option<crate::traits::HazardCount>>, ConnectorError> {
        let (path, table, range, checks) = (
            self.path.clone(),
            table.clone(),
            range.clone(),
            checks.to_vec(),
        );
        blocking(move || super::hazards::scan(&open_read(&path)?, &table, &range, &checks)).await
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let (path, name) = (self.path.clone(), table.name.clone());
        blocking(move || {
            let conn = open_read(&path)?;
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {}", q(&name)), [], |r| {
                    r.get(0)
                })?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn count_rows_where(
        &self,
        table: &TableName,
        filter: &str,
    ) -> Result<(u64, u64), ConnectorError> {
        let (path, name) = (self.path.clone(), table.name.clone());
        // `(f) IS TRUE` counts a NULL condition as not met, as a WHERE does.
        let sql = format!(
            "SELECT count(*), coalesce(sum(({filter}) IS TRUE), 0) FROM {}",
            q(&name)
        );
        blocking(move || {
            let conn = open_read(&path)?;
            let (all, meeting): (i64, i64) =
                conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok((all.max(0) as u64, meeting.max(0) as u64))
        })
        .await
    }
}

fn whole(rows: u64) -> ChunkSpec {
    ChunkSpec {
        id: "whole".into(),
        range: ChunkRange::Whole,
        estimated_rows: rows,
    }
}

/// The SELECT of one chunk; the row key, when there is one, comes last (for error messages).
fn chunk_query(request: &ReadRequest, key: Option<&str>) -> String {
    let mut select: Vec<String> = request.columns.iter().map(|c| q(&c.name)).collect();
    let mut sql = String::from("SELECT ");
    if let Some(k) = key {
        select.push(q(k));
    }
    sql.push_str(&select.join(", "));
    sql.push_str(" FROM ");
    sql.push_str(&q(&request.table.name));
    if let Some(p) = crate::chunking::read_condition(
        Dialect::Sqlite,
        &request.chunk.range,
        request.filter.as_deref(),
    ) {
        sql.push_str(" WHERE ");
        sql.push_str(&p);
    }
    if let Some(k) = key {
        sql.push_str(" ORDER BY ");
        sql.push_str(&q(k));
    }
    sql
}

fn read_blocking(
    path: &str,
    request: &ReadRequest,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let conn = open_read(path)?;
    let key = match &request.chunk.range {
        ChunkRange::IntKey { column, .. } => Some(column.clone()),
        ChunkRange::Whole => row_key(&conn, &request.table.name)?,
        other => {
            return Err(ConnectorError::Config(format!(
                "sqlite cannot read a chunk of {}",
                other.describe()
            )));
        }
    };
    let mut stmt = conn.prepare(&chunk_query(request, key.as_deref()))?;
    let internal = |e: arrow_schema::ArrowError| ConnectorError::Internal(e.to_string());
    let mut builder =
        BatchBuilder::new(request.schema.clone(), request.batch_rows.max(1)).map_err(internal)?;
    let ncols = request.columns.len();
    let exact_text: Vec<bool> = request
        .columns
        .iter()
        .map(|c| c.logical == LogicalType::BigDecimal)
        .collect();
    let mut rows = stmt.query([])?;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        for (i, &exact) in exact_text.iter().enumerate() {
            let v = row.get_ref(i)?;
            let checked = if exact { check_decimal(v) } else { Ok(()) };
            let mut decoded = checked.and_then(|()| decode(v, builder.column(i)));
            // Text that is not UTF-8 follows its `invalid_encoding` policy.
            if let (Err(_), ValueRef::Text(t)) = (&decoded, v)
                && std::str::from_utf8(t).is_err()
                && let ColumnBuilder::Utf8(b) = builder.column(i)
            {
                let name = &request.columns[i].name;
                match request
                    .policies
                    .for_column(name, HazardKind::InvalidEncoding)
                {
                    ValuePolicy::Null => {
                        b.append_null();
                        request.policies.changes.add(
                            name,
                            HazardKind::InvalidEncoding,
                            ValuePolicy::Null,
                        );
                        decoded = Ok(());
                    }
                    ValuePolicy::Coerce => {
                        b.append_value(String::from_utf8_lossy(t));
                        request.policies.changes.add(
                            name,
                            HazardKind::InvalidEncoding,
                            ValuePolicy::Coerce,
                        );
                        decoded = Ok(());
                    }
                    _ => {}
                }
            }
            if let Err(message) = decoded {
                let at = match &key {
                    Some(k) => format!("{k} {}", row.get::<_, i64>(ncols)?),
                    None => format!("row {} of the chunk", count + 1),
                };
                return Err(ConnectorError::Value {
                    table: request.table.to_string(),
                    column: request.columns[i].name.clone(),
                    range: request.chunk.range.describe(),
                    message: format!("{at}: {message}"),
                });
            }
        }
        builder.end_row();
        count += 1;
        if builder.is_full() {
            let batch = builder.finish().map_err(internal)?;
            tx.blocking_send(batch)
                .map_err(|_| ConnectorError::ChannelClosed)?;
        }
    }
    if !builder.is_empty() {
        let batch = builder.finish().map_err(internal)?;
        tx.blocking_send(batch)
            .map_err(|_| ConnectorError::ChannelClosed)?;
    }
    Ok(count)
}

/// Milliseconds from the Julian day epoch to 1970-01-01 (SQLite computes dates in these).
const UNIX_EPOCH_JD_MS: i64 = 210_866_760_000_000;
/// SQLite's last valid Julian day instant, 9999-12-31 23:59:59.999, in milliseconds.
const MAX_JD_MS: f64 = 464_269_060_799_999.0;
const DAY_MICROS: i64 = 86_400_000_000;

/// A Julian day number (SQLite's REAL form of a date) as microseconds since the Unix epoch,
/// rounded to the millisecond as SQLite's date functions do.
pub(super) fn julian_day_micros(jd: f64) -> Option<i64> {
    let ms = (jd * 86_400_000.0 + 0.5).floor();
    (0.0..=MAX_JD_MS)
        .contains(&ms)
        .then(|| (ms as i64 - UNIX_EPOCH_JD_MS) * 1000)
}

/// Timestamps as SQLite writes them: ISO text, optionally with `T`, `Z`, an offset, or no seconds.
pub(super) fn parse_sqlite_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    let mut t = match t.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => t.to_string(),
    };
    if t.get(10..11).is_some_and(|c| c.eq_ignore_ascii_case("t")) {
        t.replace_range(10..11, " ");
    }
    parse_timestamp(&t).or_else(|| {
        (t.len() == 16)
            .then(|| parse_timestamp(&format!("{t}:00")))
            .flatten()
    })
}

fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))
}

fn days_of(micros: i64, what: &str) -> Result<i32, String> {
    if micros % DAY_MICROS != 0 {
        return Err(format!("{what} has a time of day, so it is not a date"));
    }
    i32::try_from(micros / DAY_MICROS).map_err(|_| format!("{what} is out of range for a date"))
}

/// Appends one SQLite value to a column. Integers in date and time columns are Unix seconds,
/// reals are Julian day numbers (SQLite's own conventions); see docs/type-mapping/sqlite.md.
fn decode(v: ValueRef<'_>, b: &mut ColumnBuilder) -> Result<(), String> {
    match (v, b) {
        (ValueRef::Null, b) => {
            b.append_null();
            Ok(())
        }
        (ValueRef::Integer(i), ColumnBuilder::Timestamp { builder, .. }) => {
            let us = i
                .checked_mul(1_000_000)
                .ok_or_else(|| format!("{i} (Unix seconds) is out of range for a timestamp"))?;
            builder.append_value(us);
            Ok(())
        }
        (ValueRef::Integer(i), ColumnBuilder::Date(d)) => {
            let us = i
                .checked_mul(1_000_000)
                .ok_or_else(|| format!("{i} (Unix seconds) is out of range for a date"))?;
            d.append_value(days_of(us, &format!("{i} (Unix seconds)"))?);
            Ok(())
        }
        (ValueRef::Real(f), ColumnBuilder::Timestamp { builder, .. }) => {
            let us = julian_day_micros(f)
                .ok_or_else(|| format!("{f} is not a valid Julian day number"))?;
            builder.append_value(us);
            Ok(())
        }
        (ValueRef::Real(f), ColumnBuilder::Date(d)) => {
            let us = julian_day_micros(f)
                .ok_or_else(|| format!("{f} is not a valid Julian day number"))?;
            d.append_value(days_of(us, &format!("{f} (Julian day)"))?);
            Ok(())
        }
        (
            ValueRef::Integer(_) | ValueRef::Real(_),
            ColumnBuilder::Binary(_) | ColumnBuilder::FixedBinary(_),
        ) => Err("a number is not binary data".into()),
        (ValueRef::Integer(i), b) => b.append_i128(i as i128),
        (ValueRef::Real(f), ColumnBuilder::Utf8(s)) => {
            // `{:?}` is the shortest text that reads back as the same double, and keeps `.0`.
            s.append_value(format!("{f:?}"));
            Ok(())
        }
        (ValueRef::Real(f), b) => b.append_f64(f),
        (ValueRef::Text(t) | ValueRef::Blob(t), ColumnBuilder::Timestamp { builder, .. }) => {
            let s = utf8(t)?;
            let us = parse_sqlite_timestamp(s)
                .ok_or_else(|| format!("`{}` is not a valid timestamp", preview(s)))?;
            builder.append_value(us);
            Ok(())
        }
        (ValueRef::Text(t) | ValueRef::Blob(t), ColumnBuilder::Interval(i)) => {
            let s = utf8(t)?;
            let (months, days, us) = parse_interval(s)
                .ok_or_else(|| format!("`{}` is not an ISO 8601 interval", preview(s)))?;
            i.append_value(IntervalMonthDayNano::new(months, days, us * 1000));
            Ok(())
        }
        (ValueRef::Text(t), b @ ColumnBuilder::FixedBinary(_)) => b.append_text(utf8(t)?),
        (ValueRef::Text(t) | ValueRef::Blob(t), b) => b.append_bytes(t),
    }
}

/// A `bigdecimal` column is carried as text, so its values are checked to be numbers here.
fn check_decimal(v: ValueRef<'_>) -> Result<(), String> {
    match v {
        ValueRef::Real(f) if !f.is_finite() => Err(format!("{f} is not a decimal number")),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = utf8(t)?;
            is_decimal(s)
                .then_some(())
                .ok_or_else(|| format!("`{}` is not a decimal number", preview(s)))
        }
        _ => Ok(()),
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, with digits on at least one side of the point.
fn is_decimal(s: &str) -> bool {
    let s = s.trim();
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exp_ok
}

fn preview(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_time_forms() {
        assert_eq!(julian_day_micros(2440587.5), Some(0));
        assert_eq!(julian_day_micros(2440588.0), Some(43_200_000_000));
        assert_eq!(julian_day_micros(f64::NAN), None);
        assert_eq!(
            parse_sqlite_timestamp("1970-01-01T00:00:01Z"),
            Some(1_000_000)
        );
        assert_eq!(parse_sqlite_timestamp("1970-01-01 01:00:00+01:00"), Some(0));
        assert_eq!(parse_sqlite_timestamp("1970-01-01 00:01"), Some(60_000_000));
        assert_eq!(parse_sqlite_timestamp("yesterday"), None);
    }

    #[test]
    fn values_that_do_not_fit_are_errors() {
        use arrow_schema::DataType;
        let mut int = ColumnBuilder::new(&DataType::Int64, 4).unwrap();
        assert!(decode(ValueRef::Text(b"abc"), &mut int).is_err());
        assert!(decode(ValueRef::Real(1.5), &mut int).is_err());
        assert!(decode(ValueRef::Text(b"42"), &mut int).is_ok());
        let mut date = ColumnBuilder::new(&DataType::Date32, 4).unwrap();
        assert!(decode(ValueRef::Integer(86_400), &mut date).is_ok());
        assert!(decode(ValueRef::Integer(86_401), &mut date).is_err());
        let mut text = ColumnBuilder::new(&DataType::Utf8, 4).unwrap();
        assert!(decode(ValueRef::Text(&[0x61, 0xff]), &mut text).is_err());
        assert!(decode(ValueRef::Real(1.0), &mut text).is_ok());
        assert!(check_decimal(ValueRef::Text(b"-12.5e3")).is_ok());
        assert!(check_decimal(ValueRef::Text(b".5")).is_ok());
        assert!(check_decimal(ValueRef::Text(b"12abc")).is_err());
        assert!(check_decimal(ValueRef::Text(b".")).is_err());
        assert!(check_decimal(ValueRef::Real(f64::INFINITY)).is_err());
        let mut blob = ColumnBuilder::new(&DataType::Binary, 4).unwrap();
        assert!(decode(ValueRef::Integer(1), &mut blob).is_err());
    }
}
