//! Staged chunks: one chunk's Arrow batches in one Parquet file, written the way a target writes
//! a chunk (every batch, then a commit) and read back as the batches of a source.
//!
//! A file is written under `NAME.tmp`, synced and renamed to `NAME` only once the sender
//! finished, so a staged file that exists is whole: a crash leaves at most a `.tmp` behind,
//! which the next attempt overwrites.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

use crate::error::ConnectorError;
use crate::traits::ChunkReceiver;

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("staging file {}: {e}", path.display()))
}

fn parquet_error(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> ConnectorError + '_ {
    move |e| ConnectorError::Config(format!("staging file {}: {e}", path.display()))
}

/// The name a staged file is written under before it is complete.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes every batch received on `rx` into the Parquet file `path` and commits it (sync,
/// rename) only when the sender finished; on any error nothing appears at `path`. `schema` is
/// the file's schema when no batch arrives (an empty chunk); otherwise the batches' own.
/// Returns the rows written.
pub async fn write_staged(
    path: PathBuf,
    schema: SchemaRef,
    mut rx: ChunkReceiver,
) -> Result<u64, ConnectorError> {
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let tmp = temp_path(&path);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer: Option<ArrowWriter<File>> = None;
        let mut rows = 0u64;
        let open = |schema: SchemaRef| -> Result<ArrowWriter<File>, ConnectorError> {
            let file = File::create(&tmp).map_err(io_error(&tmp))?;
            ArrowWriter::try_new(file, schema, Some(props.clone())).map_err(parquet_error(&tmp))
        };
        while let Some(batch) = rx.blocking_recv()? {
            if writer.is_none() {
                writer = Some(open(batch.schema())?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch).map_err(parquet_error(&tmp))?;
            }
            rows += batch.num_rows() as u64;
        }
        let writer = match writer {
            Some(w) => w,
            None => open(schema)?,
        };
        let file = writer.into_inner().map_err(parquet_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        Ok(rows)
    })
    .await?
}

/// Streams the staged file `path` as batches of at most `batch_rows` rows in `schema` (the
/// schema the chunk had when it was staged; columns are cast back where Parquet stored them
/// differently). Returns the rows sent. Blocking: call it from `spawn_blocking`.
pub fn read_staged(
    path: &Path,
    schema: &SchemaRef,
    batch_rows: usize,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ConnectorError> {
    let file = File::open(path).map_err(io_error(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error(path))?
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(parquet_error(path))?;
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut count = 0u64;
    for batch in reader {
        let batch = batch
            .map_err(|e| ConnectorError::Config(format!("staging file {}: {e}", path.display())))?;
        if batch.num_columns() != schema.fields().len() {
            return Err(ConnectorError::Config(format!(
                "staging file {} holds {} columns where the job has {}; was it replaced? \
                 delete it and run the phase that wrote it again",
                path.display(),
                batch.num_columns(),
                schema.fields().len()
            )));
        }
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (col, field) in batch.columns().iter().zip(schema.fields()) {
            columns.push(if col.data_type() == field.data_type() {
                col.clone()
            } else {
                arrow_cast::cast_with_options(col, field.data_type(), &options).map_err(|e| {
                    ConnectorError::Config(format!(
                        "staging file {}: column {}: {e}",
                        path.display(),
                        field.name()
                    ))
                })?
            });
        }
        let out = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        count += out.num_rows() as u64;
        tx.blocking_send(out)
            .map_err(|_| ConnectorError::ChannelClosed)?;
    }
    Ok(count)
}

/// The rows of a staged file, from its footer. Blocking.
pub fn staged_rows(path: &Path) -> Result<u64, ConnectorError> {
    let file = File::open(path).map_err(io_error(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error(path))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::traits::chunk_channel;

    fn batch(schema: &SchemaRef, ids: &[i64]) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[tokio::test]
    async fn a_finished_chunk_round_trips_and_an_unfinished_one_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/extract/chunk-000000.parquet");
        let schema = schema();
        let (tx, rx) = chunk_channel(2);
        let writer = tokio::spawn(write_staged(path.clone(), schema.clone(), rx));
        tx.send(batch(&schema, &[1, 2, 3])).await.unwrap();
        tx.send(batch(&schema, &[4, 5])).await.unwrap();
        tx.finish().await.unwrap();
        assert_eq!(writer.await.unwrap().unwrap(), 5);
        assert!(!temp_path(&path).exists());
        assert_eq!(staged_rows(&path).unwrap(), 5);
        let (btx, mut brx) = mpsc::channel(8);
        let read = {
            let (path, schema) = (path.clone(), schema.clone());
            tokio::task::spawn_blocking(move || read_staged(&path, &schema, 2, &btx))
        };
        let mut ids = Vec::new();
        while let Some(b) = brx.recv().await {
            assert!(b.num_rows() <= 2, "batches of at most batch_rows");
            assert_eq!(b.schema(), schema);
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            ids.extend(col.iter().flatten());
        }
        assert_eq!(read.await.unwrap().unwrap(), 5);
        assert_eq!(ids, [1, 2, 3, 4, 5]);

        // The sender drops without finishing (its source failed): nothing is committed.
        let lost = dir.path().join("t/extract/chunk-000001.parquet");
        let (tx, rx) = chunk_channel(2);
        let writer = tokio::spawn(write_staged(lost.clone(), schema.clone(), rx));
        tx.send(batch(&schema, &[6])).await.unwrap();
        drop(tx);
        assert!(writer.await.unwrap().is_err());
        assert!(!lost.exists(), "an unfinished chunk is never visible");
    }

    #[tokio::test]
    async fn an_empty_chunk_is_a_file_with_the_schema_and_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk-000000.parquet");
        let (tx, rx) = chunk_channel(2);
        let writer = tokio::spawn(write_staged(path.clone(), schema(), rx));
        tx.finish().await.unwrap();
        assert_eq!(writer.await.unwrap().unwrap(), 0);
        assert_eq!(staged_rows(&path).unwrap(), 0);
    }
}
