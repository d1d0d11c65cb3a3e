//! The Parquet source: the schema comes from the file's metadata, every row group is a chunk,
//! and a chunk streams its row group as Arrow batches of `batch_rows` rows (bounded memory).
//!
//! A row group's chunk is a `ChunkRange::FileBytes` whose `start`/`end` are the byte range of
//! its column chunks in the file; `line` is the row group's number (1-based).
//!
//! `[source.parquet] columns` pins a column's type: its values are converted as their text
//! would be from a CSV file, and a row with a value that does not fit is a reject
//! (parquet_rows.rs), as is a row whose text holds a NUL byte the target cannot hold.

use std::collections::HashMap;
use std::fs::File;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use async_trait::async_trait;
use decant_core::files::ParquetOptions;
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, Column, ConnectionUrl, Dialect, LogicalType, Table, TableName,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;
use tokio::sync::mpsc;

use super::parquet_rows::{self, Failures, Place};
use super::values::supported;
use super::{FileTable, PARQUET_EXTENSIONS, blocking, find_table, tables_of};
use crate::error::ConnectorError;
use crate::traits::{ReadRequest, Source};

/// Parquet files as a source; see the module docs.
pub struct ParquetSource {
    tables: Vec<FileTable>,
    /// Pinned types by column name.
    pinned: HashMap<String, LogicalType>,
}

fn perr(file: &str) -> impl Fn(parquet::errors::ParquetError) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("{file}: {e}"))
}

fn builder(file: &str) -> Result<ParquetRecordBatchReaderBuilder<File>, ConnectorError> {
    let f = File::open(file).map_err(|e| ConnectorError::Config(format!("{file}: {e}")))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(perr(file))
}

/// The decant type of a Parquet column, as the Arrow reader presents it.
pub(crate) fn logical_of(t: &DataType) -> Option<LogicalType> {
    use LogicalType as L;
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
    };
    Some(match t {
        DataType::Boolean => L::Bool,
        DataType::Int8 => L::Int8,
        DataType::Int16 => L::Int16,
        DataType::Int32 => L::Int32,
        DataType::Int64 => L::Int64,
        DataType::UInt8 => L::UInt8,
        DataType::UInt16 => L::UInt16,
        DataType::UInt32 => L::UInt32,
        DataType::UInt64 => L::UInt64,
        DataType::Float16 | DataType::Float32 => L::Float32,
        DataType::Float64 => L::Float64,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= 38 =>
        {
            L::Decimal {
                precision: *p,
                scale: *s,
            }
        }
        DataType::Decimal256(_, _) => L::BigDecimal,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => L::Text,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => L::Binary {
            length: None,
            fixed: false,
        },
        DataType::Date32 | DataType::Date64 => L::Date,
        DataType::Time32(u) | DataType::Time64(u) => L::Time {
            precision: precision(u),
        },
        DataType::Timestamp(u, None) => L::Timestamp {
            precision: precision(u),
        },
        DataType::Timestamp(u, Some(_)) => L::TimestampTz {
            precision: precision(u),
        },
        _ => return None,
    })
}

impl ParquetSource {
    /// Finds the files of `url` (one `.parquet` file, a glob of them, which is one table, or a
    /// directory, each file a table) and checks the pinned types.
    pub fn open(url: &ConnectionUrl, options: &ParquetOptions) -> Result<Self, ConnectorError> {
        let (path, _query) = url
            .file_path()
            .ok_or_else(|| ConnectorError::Config(format!("{url}: expected file://PATH")))?;
        let mut pinned = HashMap::new();
        for (col, ty) in &options.columns {
            let t: LogicalType = ty.parse().map_err(|e| {
                ConnectorError::Config(format!("source.parquet.columns.{col}: {e}"))
            })?;
            if !supported(&t) {
                return Err(ConnectorError::Config(format!(
                    "source.parquet.columns.{col} = \"{ty}\": a pinned column is bool, an integer, float, decimal, text, json, date, time, timestamp, uuid or bytes"
                )));
            }
            pinned.insert(col.clone(), t);
        }
        Ok(ParquetSource {
            tables: tables_of(path, options.table.as_deref(), PARQUET_EXTENSIONS)?,
            pinned,
        })
    }

    fn table(&self, name: &TableName) -> Result<FileTable, ConnectorError> {
        find_table(&self.tables, name)
    }
}

fn infer_table(
    t: &FileTable,
    pinned: &HashMap<String, LogicalType>,
) -> Result<Table, ConnectorError> {
    let first = &t.files[0];
    let b = builder(first)?;
    let schema = b.schema().clone();
    let mut missing: Vec<&String> = pinned
        .keys()
        .filter(|name| schema.field_with_name(name).is_err())
        .collect();
    missing.sort();
    if let Some(name) = missing.first() {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(ConnectorError::Config(format!(
            "source.parquet.columns.{name}: {first} has no such column (it has {})",
            names.join(", ")
        )));
    }
    let mut columns = Vec::new();
    for f in schema.fields() {
        let logical = logical_of(f.data_type()).ok_or_else(|| {
            ConnectorError::Config(format!(
                "{first}: column {} has Parquet/Arrow type {}, which decant does not load yet \
                 (nested lists, structs and maps are not supported)",
                f.name(),
                f.data_type()
            ))
        })?;
        columns.push(Column {
            name: f.name().clone(),
            native_type: f.data_type().to_string(),
            logical: Some(pinned.get(f.name()).cloned().unwrap_or(logical)),
            nullable: f.is_nullable(),
            default: None,
            auto_increment: false,
            generated: false,
        });
    }
    let (mut rows, mut size) = (0u64, 0u64);
    for file in &t.files {
        let b = builder(file)?;
        if b.schema().fields().len() != schema.fields().len()
            || b.schema()
                .fields()
                .iter()
                .zip(schema.fields())
                .any(|(a, c)| a.name() != c.name() || a.data_type() != c.data_type())
        {
            return Err(ConnectorError::Config(format!(
                "{file}: its columns differ from {first}'s; the files of one table share a schema"
            )));
        }
        rows += b.metadata().file_metadata().num_rows().max(0) as u64;
        size += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    }
    Ok(Table {
        name: TableName::new(None, &t.name),
        columns,
        primary_key: vec![],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        checks: vec![],
        row_estimate: rows,
        size_bytes: size,
        next_auto_increment: None,
    })
}

/// The byte range of row group `i`'s column chunks.
fn row_group_bytes(meta: &ParquetMetaData, i: usize) -> (u64, u64) {
    let rg = meta.row_group(i);
    let mut start = u64::MAX;
    let mut end = 0u64;
    for c in rg.columns() {
        let (s, len) = c.byte_range();
        start = start.min(s);
        end = end.max(s + len);
    }
    if start == u64::MAX {
        start = 0;
    }
    (start, end)
}

fn plan_file(file: &str) -> Result<Vec<ChunkSpec>, ConnectorError> {
    let b = builder(file)?;
    let meta = b.metadata();
    Ok((0..meta.num_row_groups())
        .map(|i| {
            let (start, end) = row_group_bytes(meta, i);
            ChunkSpec {
                id: format!("{file}#rg{i}"),
                range: ChunkRange::FileBytes {
                    file: file.to_string(),
                    start,
                    end: Some(end),
                    line: i as u64 + 1,
                },
                estimated_rows: meta.row_group(i).num_rows().max(0) as u64,
            }
        })
        .collect())
}

fn read_row_group(
    request: &ReadRequest,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let ChunkRange::FileBytes {
        file, start, line, ..
    } = &request.chunk.range
    else {
        return Err(ConnectorError::Config(format!(
            "a Parquet source reads row groups, not {}",
            request.chunk.range.describe()
        )));
    };
    let b = builder(file)?;
    let meta = b.metadata().clone();
    let index = (*line as usize)
        .checked_sub(1)
        .filter(|&i| i < meta.num_row_groups() && row_group_bytes(&meta, i).0 == *start)
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "{file}: row group {line} at byte {start} is not in the file any more; \
                 was the file replaced since the run was planned?"
            ))
        })?;
    let names: HashMap<&str, usize> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    let roots = request
        .columns
        .iter()
        .map(|c| {
            names
                .get(c.name.as_str())
                .copied()
                .ok_or_else(|| ConnectorError::Config(format!("{file}: no column {}", c.name)))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    // Each requested column's type in the file; a column whose requested type differs is
    // pinned, and converted value by value.
    let natural = roots
        .iter()
        .map(|&r| {
            let f = b.schema().field(r);
            logical_of(f.data_type()).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "{file}: column {} has type {}, which decant does not load",
                    f.name(),
                    f.data_type()
                ))
            })
        })
        .collect::<Result<Vec<LogicalType>, _>>()?;
    let reject_nul = request.rejects_nul();
    let mask = ProjectionMask::roots(meta.file_metadata().schema_descr(), roots.clone());
    let reader = b
        .with_row_groups(vec![index])
        .with_projection(mask)
        .with_batch_size(request.batch_rows.max(1))
        .build()
        .map_err(perr(file))?;
    // The projection keeps the file's column order; map each requested column to its place.
    let mut sorted = roots.clone();
    sorted.sort_unstable();
    let place: Vec<usize> = roots
        .iter()
        .map(|r| sorted.binary_search(r).unwrap_or(0))
        .collect();
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let file_name = std::path::Path::new(file)
        .file_name()
        .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
    let mut at = Place {
        file: &file_name,
        row_group: index,
        group_start: (0..index)
            .map(|i| meta.row_group(i).num_rows().max(0) as u64)
            .sum(),
        batch_start: 0,
    };
    let mut count = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| ConnectorError::Config(format!("{file}: {e}")))?;
        let mut failures: Failures = vec![None; batch.num_rows()];
        let mut columns = Vec::with_capacity(place.len());
        let mut shown = Vec::with_capacity(place.len());
        for (i, &p) in place.iter().enumerate() {
            let c = &request.columns[i];
            // The file's values in decant's form of their own type: a lossless cast.
            let own = natural[i].arrow_type();
            let col = batch.column(p);
            parquet_rows::find_partial_days(col.as_ref(), &c.name, &mut failures);
            let values = if col.data_type() == &own {
                col.clone()
            } else {
                arrow_cast::cast_with_options(col, &own, &options).map_err(|e| {
                    ConnectorError::Config(format!("{file}: column {}: {e}", c.name))
                })?
            };
            let out = if c.logical == natural[i] {
                values.clone()
            } else {
                parquet_rows::convert(values.as_ref(), &c.name, &c.logical, &mut failures)?
            };
            if reject_nul[i] {
                parquet_rows::find_nul(out.as_ref(), &c.name, &c.logical, &mut failures);
            }
            shown.push((c.name.clone(), values));
            columns.push(out);
        }
        let out = parquet_rows::keep_loadable(
            &request.schema,
            columns,
            &shown,
            failures,
            &at,
            &request.rejects,
        )?;
        at.batch_start += batch.num_rows() as u64;
        count += out.num_rows() as u64;
        if out.num_rows() > 0 {
            tx.blocking_send(out)
                .map_err(|_| ConnectorError::ChannelClosed)?;
        }
    }
    Ok(count)
}

#[async_trait]
impl Source for ParquetSource {
    fn dialect(&self) -> Dialect {
        Dialect::File
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let (tables, pinned) = (self.tables.clone(), self.pinned.clone());
        blocking(move || {
            let mut catalog = Catalog {
                server_version: format!(
                    "Parquet files ({} in {} tables)",
                    tables.iter().map(|t| t.files.len()).sum::<usize>(),
                    tables.len()
                ),
                ..Catalog::default()
            };
            for t in &tables {
                catalog.tables.push(infer_table(t, &pinned)?);
            }
            Ok(catalog)
        })
        .await
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        _chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let t = self.table(&table.name)?;
        blocking(move || {
            let mut chunks = Vec::new();
            for file in &t.files {
                chunks.extend(plan_file(file)?);
            }
            Ok(chunks)
        })
        .await
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let request = request.clone();
        blocking(move || read_row_group(&request, &tx)).await
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        let t = self.table(table)?;
        blocking(move || {
            let mut n = 0u64;
            for file in &t.files {
                n += builder(file)?.metadata().file_metadata().num_rows().max(0) as u64;
            }
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn parquet_types_map_to_decant_types() {
        let ts = |u, tz: Option<&str>| DataType::Timestamp(u, tz.map(Into::into));
        assert_eq!(
            logical_of(&DataType::Decimal128(12, 2)),
            Some(LogicalType::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            logical_of(&DataType::Decimal256(60, 4)),
            Some(LogicalType::BigDecimal)
        );
        assert_eq!(
            logical_of(&ts(TimeUnit::Nanosecond, None)),
            Some(LogicalType::Timestamp { precision: 6 })
        );
        assert_eq!(
            logical_of(&ts(TimeUnit::Millisecond, Some("UTC"))),
            Some(LogicalType::TimestampTz { precision: 3 })
        );
        assert_eq!(logical_of(&DataType::Utf8View), Some(LogicalType::Text));
        let list = DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Int32,
            true,
        )));
        assert_eq!(logical_of(&list), None);
        assert!(crate::files::is_parquet_path("data/*.PARQUET"));
        assert!(!crate::files::is_parquet_path("data/x.csv"));
    }
}
