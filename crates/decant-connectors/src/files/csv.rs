//! The CSV/TSV source: schema inference from a sample, chunks as byte ranges aligned to record
//! starts, and reads that turn every record into a row or a quarantined reject.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use decant_core::files::CsvOptions;
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, Column, ConnectionUrl, Dialect, LogicalType, Reject, Table,
    TableName,
};
use tokio::sync::mpsc;

use super::input::{self, Compression, Encoding};
use super::records::{Fields, RecordReader, Syntax};
use super::values::{Cell, Kind, ValueFormats, append, nul_byte_reject, parse_cell, supported};
use super::{FileTable, blocking, file_chunk, find_table, tables_of};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::traits::{ReadRequest, Source};

/// Characters of a raw record kept in the quarantine.
const MAX_REJECT_CHARS: usize = 64 * 1024;

/// Options after checking: what the reader needs, per file.
#[derive(Debug, Clone)]
struct Settings {
    syntax: Syntax,
    /// Whether the delimiter was given (else `.tsv` files get a tab).
    delimiter_given: bool,
    header: bool,
    nulls: Vec<Vec<u8>>,
    encoding: Encoding,
    compression: String,
    formats: ValueFormats,
    sample_rows: usize,
    infer_not_null: bool,
    pinned: HashMap<String, LogicalType>,
}

fn one_byte(key: &str, v: &str) -> Result<u8, ConnectorError> {
    let v = match v {
        "tab" | "\\t" => "\t",
        other => other,
    };
    match v.as_bytes() {
        [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
        _ => Err(ConnectorError::Config(format!(
            "source.csv.{key} = \"{v}\": expected one ASCII character (or \"tab\")"
        ))),
    }
}

impl Settings {
    fn new(o: &CsvOptions) -> Result<Settings, ConnectorError> {
        let delimiter = match &o.delimiter {
            Some(d) => one_byte("delimiter", d)?,
            None => b',',
        };
        let quote = match o.quote.as_str() {
            "" => None,
            q => Some(one_byte("quote", q)?),
        };
        let escape = match o.escape.as_deref() {
            None | Some("") => None,
            Some(e) => Some(one_byte("escape", e)?),
        };
        if quote == Some(delimiter) {
            return Err(ConnectorError::Config(
                "source.csv: the quote and the delimiter must differ".into(),
            ));
        }
        let mut pinned = HashMap::new();
        for (col, ty) in &o.columns {
            let t: LogicalType = ty
                .parse()
                .map_err(|e| ConnectorError::Config(format!("source.csv.columns.{col}: {e}")))?;
            if !supported(&t) {
                return Err(ConnectorError::Config(format!(
                    "source.csv.columns.{col} = \"{ty}\": files carry bool, integers, floats, decimals, text, json, dates, times, timestamps and uuids"
                )));
            }
            pinned.insert(col.clone(), t);
        }
        Compression::resolve(&o.compression, std::path::Path::new(""))?;
        Ok(Settings {
            syntax: Syntax {
                delimiter,
                quote,
                escape,
                newlines_in_quotes: o.newlines_in_quotes,
            },
            delimiter_given: o.delimiter.is_some(),
            header: o.header,
            nulls: o.null.iter().map(|n| n.as_bytes().to_vec()).collect(),
            encoding: Encoding::parse(&o.encoding)?,
            compression: o.compression.clone(),
            formats: ValueFormats {
                date_formats: o.date_formats.clone(),
                timestamp_formats: o.timestamp_formats.clone(),
                decimal_comma: o.decimal_comma,
            },
            sample_rows: o.sample_rows.max(1),
            infer_not_null: o.infer_not_null,
            pinned,
        })
    }

    fn syntax_for(&self, file: &str) -> Syntax {
        let tsv = file.contains(".tsv");
        Syntax {
            delimiter: if !self.delimiter_given && tsv {
                b'\t'
            } else {
                self.syntax.delimiter
            },
            ..self.syntax
        }
    }

    fn compression_for(&self, file: &str) -> Result<Compression, ConnectorError> {
        Compression::resolve(&self.compression, std::path::Path::new(file))
    }

    fn is_null(&self, bytes: &[u8], quoted: bool) -> bool {
        !quoted && self.nulls.iter().any(|n| n == bytes)
    }

    /// A reader of `file` from `start`, past the BOM and the header when `start` is 0.
    fn reader(
        &self,
        file: &str,
        start: u64,
        end: Option<u64>,
        line: u64,
    ) -> Result<RecordReader<Box<dyn std::io::Read + Send>>, ConnectorError> {
        let compression = self.compression_for(file)?;
        let inner = input::open(file, compression, start, end).map_err(io_err(file))?;
        let mut r = RecordReader::new(inner, self.syntax_for(file), start, line);
        if start == 0 {
            r.skip_bom().map_err(io_err(file))?;
            if self.header {
                r.next_record().map_err(io_err(file))?;
            }
        }
        Ok(r)
    }
}

fn io_err(file: &str) -> impl Fn(std::io::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("{file}: {e}"))
}

/// CSV/TSV files as a source; see the module docs of `files`.
pub struct CsvSource {
    tables: Vec<FileTable>,
    settings: Arc<Settings>,
    /// Records per table, counted when chunks were planned (a resumed run counts again).
    counts: Mutex<HashMap<String, u64>>,
}

impl CsvSource {
    /// Finds the files of `url`; options come from the plan's `[source.csv]`, then the URL's
    /// query on top.
    pub fn open(url: &ConnectionUrl, options: Option<&CsvOptions>) -> Result<Self, ConnectorError> {
        let (path, query) = url
            .file_path()
            .ok_or_else(|| ConnectorError::Config(format!("{url}: expected file://PATH")))?;
        let mut o = options.cloned().unwrap_or_default();
        if let Some(q) = query {
            o.apply_query(q)
                .map_err(|e| ConnectorError::Config(e.to_string()))?;
        }
        let settings = Settings::new(&o)?;
        Ok(CsvSource {
            tables: tables_of(path, o.table.as_deref(), super::CSV_EXTENSIONS)?,
            settings: Arc::new(settings),
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn table(&self, name: &TableName) -> Result<FileTable, ConnectorError> {
        find_table(&self.tables, name)
    }
}

#[async_trait]
impl Source for CsvSource {
    fn dialect(&self) -> Dialect {
        Dialect::File
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let (tables, settings) = (self.tables.clone(), self.settings.clone());
        blocking(move || {
            let mut catalog = Catalog {
                server_version: format!(
                    "CSV files ({} in {} tables)",
                    tables.iter().map(|t| t.files.len()).sum::<usize>(),
                    tables.len()
                ),
                ..Catalog::default()
            };
            for t in &tables {
                catalog.tables.push(infer_table(t, &settings)?);
            }
            Ok(catalog)
        })
        .await
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let (t, settings) = (self.table(&table.name)?, self.settings.clone());
        let chunk_rows = chunk_rows.max(1);
        let (chunks, total) = blocking(move || {
            let mut chunks = Vec::new();
            for file in &t.files {
                chunks.extend(plan_file(file, &settings, chunk_rows)?);
            }
            let total = chunks.iter().map(|c| c.estimated_rows).sum::<u64>();
            Ok((chunks, total))
        })
        .await?;
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
        let t = self.table(&request.table)?;
        let (settings, request) = (self.settings.clone(), request.clone());
        blocking(move || read_range(&t, &settings, &request, &tx)).await
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
        let (t, settings) = (self.table(table)?, self.settings.clone());
        blocking(move || {
            let mut n = 0;
            for file in &t.files {
                let mut r = settings.reader(file, 0, None, 1)?;
                while r.next_record().map_err(io_err(file))?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

/// Column names from the header (or `column_1`...), made unique and never empty.
fn column_names(header: Option<&Fields>, width: usize, encoding: Encoding) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(width);
    for i in 0..width {
        let raw = header
            .map(|h| encoding.lossy(h.get(i).0).trim().to_string())
            .unwrap_or_default();
        let base = if raw.is_empty() {
            format!("column_{}", i + 1)
        } else {
            raw
        };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    names
}

/// Reads the header and the first `sample_rows` records of a table's files into a schema.
fn infer_table(t: &FileTable, s: &Settings) -> Result<Table, ConnectorError> {
    let first = &t.files[0];
    let compression = s.compression_for(first)?;
    let syntax = s.syntax_for(first);
    let inner = input::open(first, compression, 0, None).map_err(io_err(first))?;
    let mut r = RecordReader::new(inner, syntax, 0, 1);
    r.skip_bom().map_err(io_err(first))?;
    let mut fields = Fields::default();
    let mut header: Option<Fields> = None;
    if s.header
        && let Some(rec) = r.next_record().map_err(io_err(first))?
    {
        let mut h = Fields::default();
        h.split(rec.bytes, &syntax)
            .map_err(|e| ConnectorError::Config(format!("{first}:1: the header: {e}")))?;
        header = Some(h);
    }
    let mut kinds: Vec<Kind> = Vec::new();
    let mut nulls: Vec<bool> = Vec::new();
    let mut width = header.as_ref().map_or(0, Fields::len);
    let (mut sampled, mut sample_bytes) = (0usize, 0u64);
    while sampled < s.sample_rows {
        let Some(rec) = r.next_record().map_err(io_err(first))? else {
            break;
        };
        sample_bytes += rec.bytes.len() as u64 + 1;
        if rec.open_quote || fields.split(rec.bytes, &syntax).is_err() {
            continue; // malformed: the load rejects it
        }
        if header.is_none() && width == 0 {
            width = fields.len();
        }
        if fields.len() != width {
            continue;
        }
        if kinds.is_empty() {
            kinds = vec![Kind::Unknown; width];
            nulls = vec![false; width];
        }
        for i in 0..width {
            let (bytes, quoted) = fields.get(i);
            if s.is_null(bytes, quoted) {
                nulls[i] = true;
                continue;
            }
            let kind = match s.encoding.decode(bytes) {
                Ok(text) => Kind::of(&text, &s.formats),
                Err(_) => Kind::Text,
            };
            kinds[i] = kinds[i].widen(kind);
        }
        sampled += 1;
    }
    if width == 0 {
        return Err(ConnectorError::Config(format!(
            "{first}: no header and no record to infer columns from"
        )));
    }
    kinds.resize(width, Kind::Unknown);
    nulls.resize(width, true);
    let names = column_names(header.as_ref(), width, s.encoding);
    for pinned in s.pinned.keys() {
        if !names.contains(pinned) {
            return Err(ConnectorError::Config(format!(
                "source.csv.columns.{pinned}: {first} has no such column (it has {})",
                names.join(", ")
            )));
        }
    }
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let logical = s
                .pinned
                .get(name)
                .cloned()
                .unwrap_or_else(|| kinds[i].logical());
            // With no record sampled nothing is known: nullable.
            let nullable = !s.infer_not_null || nulls[i] || sampled == 0;
            Column {
                name: name.clone(),
                native_type: logical.to_string(),
                logical: Some(logical),
                nullable,
                default: None,
                auto_increment: false,
                generated: false,
            }
        })
        .collect();
    let size: u64 = t
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let per_record = if sampled > 0 {
        (sample_bytes / sampled as u64).max(1)
    } else {
        100
    };
    Ok(Table {
        name: TableName::new(None, &t.name),
        columns,
        primary_key: vec![],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        checks: vec![],
        row_estimate: size / per_record,
        size_bytes: size,
        next_auto_increment: None,
    })
}

/// Chunks of one file: byte ranges of `chunk_rows` records each (plain files), or the whole
/// file (compressed). Every record is scanned once, so the counts are exact.
fn plan_file(file: &str, s: &Settings, chunk_rows: u64) -> Result<Vec<ChunkSpec>, ConnectorError> {
    let seekable = s.compression_for(file)?.seekable();
    let mut r = s.reader(file, 0, None, 1)?;
    let mut chunks = Vec::new();
    let (mut start, mut line, mut rows) = (0u64, 1u64, 0u64);
    loop {
        let (at, at_line) = r.position();
        if r.next_record().map_err(io_err(file))?.is_none() {
            break;
        }
        // A new chunk starts only where a record follows: no empty chunk at the end.
        if seekable && rows == chunk_rows {
            chunks.push(file_chunk(file, start, Some(at), line, rows));
            (start, line, rows) = (at, at_line, 0);
        }
        rows += 1;
    }
    chunks.push(file_chunk(file, start, None, line, rows));
    Ok(chunks)
}

/// Where each requested column sits in the file's records.
fn positions(
    t: &FileTable,
    s: &Settings,
    request: &ReadRequest,
) -> Result<(Vec<usize>, usize), ConnectorError> {
    let first = &t.files[0];
    let syntax = s.syntax_for(first);
    let inner = input::open(first, s.compression_for(first)?, 0, None).map_err(io_err(first))?;
    let mut r = RecordReader::new(inner, syntax, 0, 1);
    r.skip_bom().map_err(io_err(first))?;
    let mut f = Fields::default();
    let names = match r.next_record().map_err(io_err(first))? {
        Some(rec) => {
            f.split(rec.bytes, &syntax)
                .map_err(|e| ConnectorError::Config(format!("{first}:1: {e}")))?;
            column_names(s.header.then_some(&f), f.len(), s.encoding)
        }
        None => vec![],
    };
    let pos = request
        .columns
        .iter()
        .map(|c| {
            names.iter().position(|n| *n == c.name).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "{first}: no column {} (the file has {})",
                    c.name,
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((pos, names.len()))
}

fn read_range(
    t: &FileTable,
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
        return Err(ConnectorError::Config(format!(
            "a file source reads file byte ranges, not {}",
            request.chunk.range.describe()
        )));
    };
    let (pos, width) = positions(t, s, request)?;
    let syntax = s.syntax_for(file);
    let mut r = s.reader(file, *start, *end, *line)?;
    let internal = |e: arrow_schema::ArrowError| ConnectorError::Internal(e.to_string());
    let mut builder =
        BatchBuilder::new(request.schema.clone(), request.batch_rows.max(1)).map_err(internal)?;
    let nullable: Vec<bool> = request
        .schema
        .fields()
        .iter()
        .map(|f| f.is_nullable())
        .collect();
    let reject_nul = request.rejects_nul();
    let name = std::path::Path::new(file)
        .file_name()
        .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
    let mut fields = Fields::default();
    let mut count = 0u64;
    while let Some(rec) = r.next_record().map_err(io_err(file))? {
        let reject = |rule: String, reason: String| Reject {
            location: format!("{name}:{}", rec.line),
            rule,
            reason,
            record: s
                .encoding
                .lossy(rec.bytes)
                .chars()
                .take(MAX_REJECT_CHARS)
                .collect(),
            input: None,
        };
        if rec.open_quote {
            request.rejects.push(reject(
                "malformed_record".into(),
                "unbalanced quote: a quoted field is not closed before the end of the record"
                    .into(),
            ));
            continue;
        }
        if let Err(e) = fields.split(rec.bytes, &syntax) {
            request.rejects.push(reject("malformed_record".into(), e));
            continue;
        }
        if fields.len() != width {
            request.rejects.push(reject(
                "malformed_record".into(),
                format!("expected {width} fields, found {}", fields.len()),
            ));
            continue;
        }
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(pos.len());
        let mut failed = None;
        for (i, &p) in pos.iter().enumerate() {
            let (bytes, quoted) = fields.get(p);
            let column = &request.columns[i].name;
            if s.is_null(bytes, quoted) {
                if !nullable[i] {
                    failed = Some((
                        format!("not_null({column})"),
                        format!("{column} is empty (NULL), but the column is NOT NULL"),
                    ));
                    break;
                }
                cells.push(Cell::Null);
                continue;
            }
            let text: Cow<'_, str> = match s.encoding.decode(bytes) {
                Ok(t) => t,
                Err(e) => {
                    failed = Some(("invalid_encoding".into(), format!("{column}: {e}")));
                    break;
                }
            };
            let logical = &request.columns[i].logical;
            match parse_cell(text, logical, &s.formats) {
                Ok(c) => {
                    if reject_nul[i]
                        && let Some(nul) = nul_byte_reject(column, &c, logical)
                    {
                        failed = Some(nul);
                        break;
                    }
                    cells.push(c)
                }
                Err(e) => {
                    failed = Some((
                        format!("bad_value({column})"),
                        format!("{column} ({}): {e}", request.columns[i].logical),
                    ));
                    break;
                }
            }
        }
        if let Some((rule, reason)) = failed {
            request.rejects.push(reject(rule, reason));
            continue;
        }
        for (i, cell) in cells.into_iter().enumerate() {
            append(builder.column(i), cell).map_err(ConnectorError::Internal)?;
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
