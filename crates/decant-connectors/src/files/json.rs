//! The JSON source: JSON Lines (`.jsonl`, `.ndjson`) and files of one top-level array (`.json`),
//! plain or compressed. Columns are inferred from a sample of records (json_values.rs); JSON
//! Lines chunk into byte ranges aligned to line starts, an array file is one chunk streamed
//! element by element; every record becomes a row or a quarantined reject.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use decant_core::files::{JsonFormat, JsonOptions, UnknownFields};
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, Column, ConnectionUrl, Dialect, LogicalType, Reject, Table,
    TableName,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::input::{self, Compression};
use super::json_records::{self, JsonRecords, RawJson};
use super::json_values::{JsonColumn, JsonInference, JsonRows, JsonShape, RecordError};
use super::values::{ValueFormats, supported};
use super::{FileTable, blocking, file_chunk, find_table, tables_of};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::traits::{ReadRequest, Source};

/// Characters of a raw record kept in the quarantine.
const MAX_REJECT_CHARS: usize = 64 * 1024;
/// Bytes read from a `.json` file to tell an array from JSON Lines.
const HEAD_BYTES: u64 = 4096;

/// Options after checking.
#[derive(Debug)]
struct Settings {
    format: JsonFormat,
    compression: String,
    shape: JsonShape,
    unknown: UnknownFields,
    sample_rows: usize,
    infer_not_null: bool,
    pinned: HashMap<String, LogicalType>,
}

fn config(m: String) -> ConnectorError {
    ConnectorError::Config(m)
}

fn io_err(file: &str) -> impl Fn(std::io::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("{file}: {e}"))
}

impl Settings {
    fn new(o: &JsonOptions) -> Result<Settings, ConnectorError> {
        let mut pinned = HashMap::new();
        for (col, ty) in &o.columns {
            let t: LogicalType = ty
                .parse()
                .map_err(|e| config(format!("source.json.columns.{col}: {e}")))?;
            if !supported(&t) {
                return Err(config(format!(
                    "source.json.columns.{col} = \"{ty}\": files carry bool, integers, floats, decimals, text, json, dates, times, timestamps and uuids"
                )));
            }
            pinned.insert(col.clone(), t);
        }
        let declared = o
            .paths
            .iter()
            .map(|(col, path)| {
                JsonShape::parse_path(path)
                    .map(|p| (col.clone(), p))
                    .map_err(|e| config(format!("source.json.paths.{col}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Compression::resolve(&o.compression, std::path::Path::new(""))?;
        Ok(Settings {
            format: o.format,
            compression: o.compression.clone(),
            shape: JsonShape {
                flatten: o.flatten,
                declared,
                formats: ValueFormats {
                    date_formats: o.date_formats.clone(),
                    timestamp_formats: o.timestamp_formats.clone(),
                    decimal_comma: false,
                },
            },
            unknown: o.unknown_fields,
            sample_rows: o.sample_rows.max(1),
            infer_not_null: o.infer_not_null,
            pinned,
        })
    }

    fn compression_for(&self, file: &str) -> Result<Compression, ConnectorError> {
        Compression::resolve(&self.compression, std::path::Path::new(file))
    }

    /// Lines or array, for this file: the option, else the extension, else the first byte.
    fn format_for(&self, file: &str) -> Result<JsonFormat, ConnectorError> {
        let lower = file.to_ascii_lowercase();
        if self.format != JsonFormat::Auto || lower.contains(".jsonl") || lower.contains(".ndjson")
        {
            return Ok(json_records::detect(self.format, file, b""));
        }
        let mut head = Vec::new();
        input::open(file, self.compression_for(file)?, 0, None)
            .and_then(|r| r.take(HEAD_BYTES).read_to_end(&mut head))
            .map_err(io_err(file))?;
        Ok(json_records::detect(self.format, file, &head))
    }

    /// The records of `file` from byte `start` (a line start; arrays always read from 0).
    fn records(
        &self,
        file: &str,
        start: u64,
        end: Option<u64>,
        line: u64,
    ) -> Result<JsonRecords<Box<dyn Read + Send>>, ConnectorError> {
        let inner =
            input::open(file, self.compression_for(file)?, start, end).map_err(io_err(file))?;
        JsonRecords::new(inner, self.format_for(file)?, start, line).map_err(io_err(file))
    }
}

/// Parses one raw record into an object, or says why it is not one.
pub(crate) fn parse_record(raw: &RawJson<'_>) -> Result<Map<String, Value>, RecordError> {
    if raw.truncated {
        return Err(RecordError::new(
            "malformed_record",
            "the file ends inside this array element (an unclosed bracket or string)",
        ));
    }
    let text = std::str::from_utf8(raw.bytes).map_err(|e| {
        let at = e.valid_up_to();
        RecordError::new(
            "invalid_encoding",
            format!(
                "invalid UTF-8 at byte {at} of the record (0x{:02x}); JSON files are UTF-8",
                raw.bytes[at]
            ),
        )
    })?;
    if let Some(e) = inexact_number_error(text) {
        return Err(e);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RecordError::new(
            "malformed_record",
            format!(
                "a record must be a JSON object, not {}",
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ),
        )),
        Err(e) => Err(RecordError::new(
            "malformed_record",
            format!("not valid JSON: {e}"),
        )),
    }
}

/// Why the JSON `text` (a record, or a whole response) cannot load exactly: it holds a number
/// that parsing would round (`inexact_number`). `None` when every number is exact.
pub(crate) fn inexact_number_error(text: &str) -> Option<RecordError> {
    let number = inexact_number(text)?;
    Some(RecordError::new(
        "inexact_number",
        format!(
            "the number {number} has more digits than the JSON reader carries exactly (15 significant digits, or an integer within 64 bits); rather than load a rounded value, the record is quarantined"
        ),
    ))
}

/// The first number token of `text` (outside strings) that a JSON number of this build cannot
/// carry exactly: parsed as an `f64` (or a 64-bit integer) and written back, its value would
/// differ. `None` when every number is exact.
fn inexact_number(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let token = &text[start..i];
                if !exact_number(token) {
                    return Some(token);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `token` survives serde_json's number: an integer within i64 or u64, or a decimal
/// whose nearest `f64`, written back in its shortest form, has the same value (`0.1`, and any
/// double a program printed; not `0.1000000000000000055`, nor 23-digit integers). A malformed
/// token counts as exact: the parser reports it.
fn exact_number(token: &str) -> bool {
    if !token.contains(['.', 'e', 'E'])
        && (token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok())
    {
        return true;
    }
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => decimal_value(token) == decimal_value(&format!("{v}")),
        Ok(_) => false,
        Err(_) => true,
    }
}

/// A decimal literal as (negative, significant digits, exponent): the value is
/// `0.DIGITS × 10^exponent`; zero is `(false, "", 0)`.
fn decimal_value(text: &str) -> (bool, String, i64) {
    let (negative, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    let exp = int.len() as i64 + exponent - leading as i64;
    (negative, significant.to_string(), exp)
}

/// JSON Lines and JSON array files as a source; see the module docs.
pub struct JsonSource {
    tables: Vec<FileTable>,
    settings: Arc<Settings>,
    /// Records per table, counted when chunks were planned.
    counts: Mutex<HashMap<String, u64>>,
    /// Each table's inferred columns: the reader needs every column's path, which a column
    /// name alone does not give back once nested keys are flattened.
    layouts: Mutex<HashMap<String, Arc<Vec<JsonColumn>>>>,
}

impl JsonSource {
    /// Finds the files of `url`; options come from the plan's `[source.json]`, then the URL's
    /// query on top.
    pub fn open(
        url: &ConnectionUrl,
        options: Option<&JsonOptions>,
    ) -> Result<Self, ConnectorError> {
        let (path, query) = url
            .file_path()
            .ok_or_else(|| config(format!("{url}: expected file://PATH")))?;
        let mut o = options.cloned().unwrap_or_default();
        if let Some(q) = query {
            o.apply_query(q).map_err(|e| config(e.to_string()))?;
        }
        Ok(JsonSource {
            tables: tables_of(path, o.table.as_deref(), super::JSON_EXTENSIONS)?,
            settings: Arc::new(Settings::new(&o)?),
            counts: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
        })
    }

    /// The table's columns, inferred once per source.
    async fn layout(&self, t: &FileTable) -> Result<Arc<Vec<JsonColumn>>, ConnectorError> {
        if let Some(l) = self
            .layouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&t.name)
        {
            return Ok(l.clone());
        }
        let (t2, settings) = (t.clone(), self.settings.clone());
        let (_, columns) = blocking(move || infer_table(&t2, &settings)).await?;
        let columns = Arc::new(columns);
        self.layouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.name.clone(), columns.clone());
        Ok(columns)
    }
}

#[async_trait]
impl Source for JsonSource {
    fn dialect(&self) -> Dialect {
        Dialect::File
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let (tables, settings) = (self.tables.clone(), self.settings.clone());
        let inferred = blocking(move || {
            tables
                .iter()
                .map(|t| infer_table(t, &settings))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let mut catalog = Catalog {
            server_version: format!(
                "JSON files ({} in {} tables)",
                self.tables.iter().map(|t| t.files.len()).sum::<usize>(),
                self.tables.len()
            ),
            ..Catalog::default()
        };
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        for (table, columns) in inferred {
            layouts.insert(table.name.name.clone(), Arc::new(columns));
            catalog.tables.push(table);
        }
        Ok(catalog)
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let t = find_table(&self.tables, &table.name)?;
        let settings = self.settings.clone();
        let chunk_rows = chunk_rows.max(1);
        let chunks = blocking(move || {
            let mut chunks = Vec::new();
            for file in &t.files {
                chunks.extend(plan_file(file, &settings, chunk_rows)?);
            }
            Ok(chunks)
        })
        .await?;
        let total = chunks.iter().map(|c| c.estimated_rows).sum::<u64>();
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(table.name.name.clone(), total);
        Ok(chunks)
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let t = find_table(&self.tables, &request.table)?;
        let layout = self.layout(&t).await?;
        let (settings, request) = (self.settings.clone(), request.clone());
        blocking(move || read_range(&layout, &settings, &request, &tx)).await
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        if let Some(n) = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&table.name)
        {
            return Ok(*n);
        }
        let (t, settings) = (find_table(&self.tables, table)?, self.settings.clone());
        blocking(move || {
            let mut n = 0;
            for file in &t.files {
                let mut r = settings.records(file, 0, None, 1)?;
                while r.next_record().map_err(io_err(file))?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

/// Infers a table from its first `sample_rows` well-formed records, across its files in name
/// order (records that do not parse are left to the load, which rejects them).
fn infer_table(t: &FileTable, s: &Settings) -> Result<(Table, Vec<JsonColumn>), ConnectorError> {
    let first = &t.files[0];
    let mut inference = JsonInference::new(s.shape.clone()).map_err(config)?;
    let (mut seen, mut sample_bytes) = (0u64, 0u64);
    'files: for file in &t.files {
        let mut r = s.records(file, 0, None, 1)?;
        while let Some(raw) = r.next_record().map_err(io_err(file))? {
            seen += 1;
            sample_bytes += raw.bytes.len() as u64 + 1;
            if let Ok(record) = parse_record(&raw) {
                inference
                    .add(&record)
                    .map_err(|e| config(format!("{file}:{}: {e}", raw.line)))?;
            }
            if inference.records() >= s.sample_rows as u64 {
                break 'files;
            }
        }
    }
    let columns = inference
        .finish(&s.pinned, s.infer_not_null)
        .map_err(|e| config(format!("source.json.{e}")))?;
    if columns.is_empty() {
        return Err(config(format!(
            "{first}: no record to infer columns from (an empty file, or no line is a JSON object)"
        )));
    }
    let size: u64 = t
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let per_record = sample_bytes.checked_div(seen).map_or(100, |b| b.max(1));
    let table = Table {
        name: TableName::new(None, &t.name),
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                native_type: c.logical.to_string(),
                logical: Some(c.logical.clone()),
                nullable: c.nullable,
                default: None,
                auto_increment: false,
                generated: false,
            })
            .collect(),
        primary_key: vec![],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        checks: vec![],
        row_estimate: size / per_record,
        size_bytes: size,
        next_auto_increment: None,
    };
    Ok((table, columns))
}

/// Chunks of one file: byte ranges of `chunk_rows` lines (plain JSON Lines), or the whole file
/// (compressed, or an array). Every record is scanned, so the counts are exact.
fn plan_file(file: &str, s: &Settings, chunk_rows: u64) -> Result<Vec<ChunkSpec>, ConnectorError> {
    let seekable = s.compression_for(file)?.seekable();
    let mut r = s.records(file, 0, None, 1)?;
    let mut chunks = Vec::new();
    let (mut start, mut line, mut rows) = (0u64, 1u64, 0u64);
    loop {
        let at = r.position();
        if r.next_record().map_err(io_err(file))?.is_none() {
            break;
        }
        if let (true, Some((at, at_line))) = (seekable && rows == chunk_rows, at) {
            chunks.push(file_chunk(file, start, Some(at), line, rows));
            (start, line, rows) = (at, at_line, 0);
        }
        rows += 1;
    }
    chunks.push(file_chunk(file, start, None, line, rows));
    Ok(chunks)
}

/// The requested columns with their paths in the table's layout.
fn requested(
    layout: &[JsonColumn],
    request: &ReadRequest,
) -> Result<Vec<JsonColumn>, ConnectorError> {
    request
        .columns
        .iter()
        .zip(request.schema.fields())
        .map(|(c, field)| {
            let col = layout.iter().find(|l| l.name == c.name).ok_or_else(|| {
                let names: Vec<&str> = layout.iter().map(|l| l.name.as_str()).collect();
                config(format!(
                    "{}: no column {} (the records have {})",
                    request.table,
                    c.name,
                    names.join(", ")
                ))
            })?;
            Ok(JsonColumn {
                name: c.name.clone(),
                path: col.path.clone(),
                logical: c.logical.clone(),
                nullable: field.is_nullable(),
            })
        })
        .collect()
}

fn read_range(
    layout: &[JsonColumn],
    s: &Settings,
    request: &ReadRequest,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let ChunkRange::FileBytes {
        file,
        start,
        end,
        line,
    } = &request.chunk.range
    else {
        return Err(config(format!(
            "a file source reads file byte ranges, not {}",
            request.chunk.range.describe()
        )));
    };
    let rows = JsonRows::new(layout, &requested(layout, request)?, &s.shape, s.unknown)
        .reject_nul(&request.policies.reject_nul);
    let mut r = s.records(file, *start, *end, *line)?;
    let internal = |e: arrow_schema::ArrowError| ConnectorError::Internal(e.to_string());
    let mut builder =
        BatchBuilder::new(request.schema.clone(), request.batch_rows.max(1)).map_err(internal)?;
    let name = std::path::Path::new(file)
        .file_name()
        .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
    let mut count = 0u64;
    while let Some(raw) = r.next_record().map_err(io_err(file))? {
        let outcome = parse_record(&raw).and_then(|record| rows.append(&record, &mut builder));
        match outcome {
            Ok(()) => count += 1,
            Err(e) if e.rule == "internal" => return Err(ConnectorError::Internal(e.reason)),
            Err(e) => {
                request.rejects.push(Reject {
                    location: format!("{name}:{}", raw.line),
                    rule: e.rule,
                    reason: e.reason,
                    record: String::from_utf8_lossy(raw.bytes)
                        .chars()
                        .take(MAX_REJECT_CHARS)
                        .collect(),
                    input: None,
                });
                continue;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_double_cannot_carry_are_found() {
        for exact in [
            r#"{"a": 1, "b": -0.5, "c": 0.1, "d": 1e5, "e": 18446744073709551615}"#,
            r#"{"a": 0.30000000000000004, "b": 1.2345678901234568e22, "c": 0, "d": -0.0}"#,
            r#"{"s": "12345678901234567890123 in a string", "t": "a\" 99999999999999999999999", "u": 7}"#,
        ] {
            assert_eq!(inexact_number(exact), None, "{exact}");
        }
        assert_eq!(
            inexact_number(r#"{"id": 1, "n": 12345678901234567890123}"#),
            Some("12345678901234567890123")
        );
        assert_eq!(
            inexact_number(r#"{"f": 0.1000000000000000055511151231257827}"#),
            Some("0.1000000000000000055511151231257827")
        );
        assert_eq!(inexact_number(r#"{"tiny": 1e-400}"#), Some("1e-400"));
        // The check assumes the parser reads a double exactly; without serde_json's
        // float_roundtrip it reads this one an ulp off, and such values would load changed.
        for t in [
            "394301.33835633675",
            "212918.90726713458",
            "1.0715660391465826e-75",
        ] {
            let parsed: f64 = serde_json::from_str(t).unwrap();
            assert_eq!(parsed, t.parse::<f64>().unwrap(), "{t}");
        }
        assert_eq!(
            inexact_number(r#"{"x": [1, 2.50, 99999999999999999999.5]}"#),
            Some("99999999999999999999.5")
        );
    }
}
