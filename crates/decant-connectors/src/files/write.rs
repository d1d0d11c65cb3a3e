//! Writing the files of a file target: compressed text streams and Parquet, always to a
//! temporary name that is fsynced and renamed into place, so a name only ever shows a
//! complete file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::IntervalMonthDayNanoType;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, IntervalUnit, Schema, SchemaRef};
use decant_core::files::{FileCompression, FileFormat};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::encode::{self, CsvStyle};
use crate::batch::write_interval;
use crate::error::ConnectorError;
use crate::traits::TargetTable;

/// Rows per Parquet row group at most; a group is also closed past [`ROW_GROUP_BYTES`].
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Encoded bytes a Parquet writer buffers before it closes the row group (bounded memory).
const ROW_GROUP_BYTES: usize = 64 << 20;

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("{}: {e}", path.display()))
}

/// Flushes a directory's entries (a rename is durable only once its directory is).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ConnectorError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A file being written under a temporary name next to its final one; removed unless
/// [`TempFile::commit`] renamed it.
pub(crate) struct TempFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// Removes the temp files an earlier, killed writer of `target` left (a SIGKILL runs no
/// destructor). One writer per name runs at a time: the runner gives each chunk to one task.
pub(crate) fn remove_stale_temps(target: &Path) -> Result<(), ConnectorError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}.",
        target.file_name().unwrap_or_default().to_string_lossy()
    );
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
        }
    }
    Ok(())
}

impl TempFile {
    pub fn new(target: &Path) -> Result<(TempFile, File), ConnectorError> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A leading dot and a `.tmp` end keep readers' `*.csv` globs off half-written files.
        let tmp = dir.join(format!(
            ".{name}.{}.tmp",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok((
            TempFile {
                tmp,
                target: target.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// fsyncs `file` (this temp file's handle), renames it to the final name and fsyncs the
    /// directory.
    pub fn commit(mut self, file: File) -> Result<(), ConnectorError> {
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.target).map_err(io_err(&self.target))?;
        self.committed = true;
        sync_dir(self.target.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically (temp name, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConnectorError> {
    remove_stale_temps(path)?;
    let (tmp, mut file) = TempFile::new(path)?;
    file.write_all(bytes).map_err(io_err(path))?;
    tmp.commit(file)
}

/// A byte stream into a file, compressed or not.
pub(crate) enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Sink {
    pub fn new(file: File, compression: FileCompression) -> io::Result<Sink> {
        let buf = BufWriter::with_capacity(256 << 10, file);
        Ok(match compression {
            FileCompression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                buf,
                flate2::Compression::default(),
            )),
            FileCompression::Zstd => Sink::Zstd(zstd::stream::write::Encoder::new(buf, 3)?),
            FileCompression::None | FileCompression::Snappy => Sink::Plain(buf),
        })
    }

    /// Ends the compressed stream and gives the file back for fsync.
    pub fn finish(self) -> io::Result<File> {
        let buf = match self {
            Sink::Plain(b) => b,
            Sink::Gzip(g) => g.finish()?,
            Sink::Zstd(z) => z.finish()?,
        };
        buf.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Gzip(w) => w.write(data),
            Sink::Zstd(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }
}

/// The Parquet writer settings of a compression choice.
fn parquet_properties(compression: FileCompression) -> WriterProperties {
    let c = match compression {
        FileCompression::None => PqCompression::UNCOMPRESSED,
        FileCompression::Zstd => PqCompression::ZSTD(ZstdLevel::default()),
        FileCompression::Snappy | FileCompression::Gzip => PqCompression::SNAPPY,
    };
    WriterProperties::builder()
        .set_compression(c)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// The Arrow schema a table's Parquet files carry: the logical types' Arrow types (with the
/// decant types in field metadata), intervals as ISO 8601 text since Parquet's interval type
/// holds milliseconds only.
pub(crate) fn parquet_schema(table: &TargetTable) -> SchemaRef {
    let fields: Vec<_> = table
        .columns
        .iter()
        .map(|c| {
            let f = c.logical.arrow_field(&c.name, c.nullable, &c.native_type);
            if matches!(f.data_type(), DataType::Interval(_)) {
                f.with_data_type(DataType::Utf8)
            } else {
                f
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn interval_text(array: &ArrayRef) -> ArrayRef {
    let a = array.as_primitive::<IntervalMonthDayNanoType>();
    let mut s = String::new();
    let values: StringArray = (0..a.len())
        .map(|i| {
            a.is_valid(i).then(|| {
                let v = a.value(i);
                s.clear();
                write_interval(&mut s, v.months, v.days, v.nanoseconds / 1000);
                s.clone()
            })
        })
        .collect();
    Arc::new(values)
}

/// Recasts a batch to the Parquet schema's types.
fn to_parquet_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, ConnectorError> {
    let internal = |e: arrow_schema::ArrowError| ConnectorError::Internal(e.to_string());
    if batch.num_columns() != schema.fields().len() {
        return Err(ConnectorError::Internal(format!(
            "batch has {} columns, the Parquet schema {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(a, f)| match (a.data_type(), f.data_type()) {
            (x, y) if x == y => Ok(a.clone()),
            (DataType::Interval(IntervalUnit::MonthDayNano), DataType::Utf8) => {
                Ok(interval_text(a))
            }
            (_, to) => arrow_cast::cast(a, to).map_err(internal),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ConnectorError::Config(format!("cannot write the batch as Parquet: {e}")))
}

fn pq_err(e: parquet::errors::ParquetError) -> ConnectorError {
    ConnectorError::Internal(format!("parquet writer: {e}"))
}

/// One file being written: the rows of one chunk (or a whole table, when parts are joined).
pub(crate) enum FileWriter {
    Csv {
        sink: Sink,
        style: CsvStyle,
        buf: String,
    },
    Jsonl {
        sink: Sink,
        keys: Vec<String>,
        buf: String,
    },
    Parquet {
        writer: ArrowWriter<File>,
        file: File,
        schema: SchemaRef,
    },
}

impl FileWriter {
    /// Starts a chunk's file; `header` writes CSV's header record first.
    pub fn new(
        file: File,
        format: FileFormat,
        compression: FileCompression,
        style: &CsvStyle,
        table: &TargetTable,
        header: bool,
    ) -> Result<FileWriter, ConnectorError> {
        let io = |e: io::Error| ConnectorError::Internal(e.to_string());
        Ok(match format {
            FileFormat::Csv => {
                let mut sink = Sink::new(file, compression).map_err(io)?;
                if header {
                    sink.write_all(encode::csv_header(table, style).as_bytes())
                        .map_err(io)?;
                }
                FileWriter::Csv {
                    sink,
                    style: style.clone(),
                    buf: String::new(),
                }
            }
            FileFormat::Jsonl => FileWriter::Jsonl {
                sink: Sink::new(file, compression).map_err(io)?,
                keys: encode::json_keys(table),
                buf: String::new(),
            },
            FileFormat::Parquet => {
                let schema = parquet_schema(table);
                let handle = file.try_clone().map_err(io)?;
                let writer = ArrowWriter::try_new(
                    handle,
                    schema.clone(),
                    Some(parquet_properties(compression)),
                )
                .map_err(pq_err)?;
                FileWriter::Parquet {
                    writer,
                    file,
                    schema,
                }
            }
        })
    }

    pub fn write(
        &mut self,
        table: &TargetTable,
        batch: &RecordBatch,
    ) -> Result<(), ConnectorError> {
        let io = |e: io::Error| ConnectorError::Internal(e.to_string());
        match self {
            FileWriter::Csv { sink, style, buf } => {
                buf.clear();
                encode::csv_rows(table, batch, style, buf)?;
                sink.write_all(buf.as_bytes()).map_err(io)
            }
            FileWriter::Jsonl { sink, keys, buf } => {
                buf.clear();
                encode::jsonl_rows(table, batch, keys, buf)?;
                sink.write_all(buf.as_bytes()).map_err(io)
            }
            FileWriter::Parquet { writer, schema, .. } => {
                writer
                    .write(&to_parquet_batch(batch, schema)?)
                    .map_err(pq_err)?;
                if writer.in_progress_size() > ROW_GROUP_BYTES {
                    writer.flush().map_err(pq_err)?;
                }
                Ok(())
            }
        }
    }

    /// Ends the file's format (compressed stream, Parquet footer) and returns it for fsync.
    pub fn finish(self) -> Result<File, ConnectorError> {
        let io = |e: io::Error| ConnectorError::Internal(e.to_string());
        match self {
            FileWriter::Csv { sink, .. } | FileWriter::Jsonl { sink, .. } => {
                sink.finish().map_err(io)
            }
            FileWriter::Parquet { writer, file, .. } => {
                writer.close().map_err(pq_err)?;
                Ok(file)
            }
        }
    }
}

/// Joins a table's parts into `target` (atomically): CSV and JSON Lines by appending the
/// parts' bytes (gzip members and zstd frames concatenate into one valid stream), Parquet by
/// copying each part's batches into one file, a row group or more per part.
pub(crate) fn join_parts(
    target: &Path,
    header: Option<&Path>,
    parts: &[PathBuf],
    format: FileFormat,
    compression: FileCompression,
) -> Result<(), ConnectorError> {
    let (tmp, mut file) = TempFile::new(target)?;
    if format == FileFormat::Parquet {
        let first = parts.first().ok_or_else(|| {
            ConnectorError::Internal(format!("{}: no part to join", target.display()))
        })?;
        let schema = part_reader(first)?.schema().clone();
        let handle = file.try_clone().map_err(io_err(target))?;
        let mut writer =
            ArrowWriter::try_new(handle, schema, Some(parquet_properties(compression)))
                .map_err(pq_err)?;
        for part in parts {
            for batch in part_reader(part)?.build().map_err(pq_err)? {
                let batch = batch.map_err(|e| ConnectorError::Internal(e.to_string()))?;
                writer.write(&batch).map_err(pq_err)?;
                if writer.in_progress_size() > ROW_GROUP_BYTES {
                    writer.flush().map_err(pq_err)?;
                }
            }
            writer.flush().map_err(pq_err)?;
        }
        writer.close().map_err(pq_err)?;
    } else {
        for part in header.into_iter().chain(parts.iter().map(PathBuf::as_path)) {
            let mut src = File::open(part).map_err(io_err(part))?;
            io::copy(&mut src, &mut file).map_err(io_err(target))?;
        }
    }
    tmp.commit(file)
}

fn part_reader(
    part: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<File>, ConnectorError> {
    let f = File::open(part).map_err(io_err(part))?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).map_err(pq_err)
}
