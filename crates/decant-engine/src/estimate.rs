//! Estimates before a run: duration and peak memory, from a short timed read of each large
//! table's first chunk and the table's size, so that the run's summary can put estimate and
//! actual side by side.

use std::time::{Duration, Instant};

use decant_connectors::{ReadRequest, Source};
use decant_core::{ChunkSpec, Table};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::planner::TableJob;

/// How long one table's read sample may take.
const SAMPLE_TIME: Duration = Duration::from_millis(400);
/// Tables calibrated by a read sample (the largest); the others use their rate.
const SAMPLED_TABLES: usize = 3;
/// Primary key and index builds after the load, per row and index, measured on this project's
/// benchmark machine (2 cores): about 0.5 µs per row for a bigint key.
const INDEX_SECS_PER_ROW: f64 = 0.5e-6;
/// Fixed costs of a run: connections, introspection, DDL, markers, the count proof.
const FIXED_SECS: f64 = 0.5;
/// Memory of the process before any batch: code, runtime, drivers' buffers (measured: about
/// 40 MB for a PostgreSQL → PostgreSQL run).
const FIXED_MEMORY: u64 = 40 << 20;

/// What a read sample measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReadRate {
    pub rows_per_sec: f64,
    pub bytes_per_row: f64,
}

/// The estimate of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableEstimate {
    pub table: String,
    pub rows: u64,
    pub seconds: f64,
    /// `sampled` when this table's own first chunk was read, else `extrapolated`.
    pub basis: String,
}

/// The estimate of a whole job.
#[derive(Debug, Clone, Serialize)]
pub struct JobEstimate {
    pub seconds: f64,
    pub peak_memory_bytes: u64,
    pub tables: Vec<TableEstimate>,
}

/// Reads the start of `chunk` for at most `SAMPLE_TIME` and returns the rate; `None` when the
/// chunk is empty or the read failed (the estimate then says it is extrapolated).
pub async fn sample_read(
    source: &dyn Source,
    job: &TableJob,
    chunk: &ChunkSpec,
    max_memory: u64,
) -> Option<ReadRate> {
    // Held to the run's memory ceiling like a load: batches sized by the table's row width.
    let width = job
        .size_bytes
        .checked_div(job.row_estimate)
        .map_or(256, |w| w.max(16));
    let batch_rows = (max_memory / 6 / width).clamp(1, 4096) as usize;
    let request = ReadRequest {
        table: job.source.clone(),
        columns: job.read_columns(),
        chunk: chunk.clone(),
        batch_rows,
        schema: job.source_schema(),
        policies: decant_core::plan::Policies {
            resolved: job.policies.clone(),
            ..Default::default()
        },
        rejects: Default::default(),
        filter: None,
    };
    let (tx, mut rx) = mpsc::channel(1);
    let started = Instant::now();
    let reader = source.read_chunk(&request, tx);
    let consumer = async move {
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = rx.recv().await {
            rows += batch.num_rows() as u64;
            bytes += batch.get_array_memory_size() as u64;
            if started.elapsed() >= SAMPLE_TIME {
                break; // dropping the receiver stops the reader
            }
        }
        (rows, bytes)
    };
    let (_, (rows, bytes)) = tokio::join!(reader, consumer);
    let secs = started.elapsed().as_secs_f64();
    (rows > 0).then(|| ReadRate {
        rows_per_sec: rows as f64 / secs,
        bytes_per_row: bytes as f64 / rows as f64,
    })
}

/// Estimates the run from each table's rows and read rate. The load overlaps reading and
/// writing, so its time is the read time at the sampled rate; keys and indexes follow.
pub fn estimate(
    jobs: &[(&TableJob, &Table, u64)],
    rates: &[Option<ReadRate>],
    parallelism: usize,
    batch_rows: usize,
    max_memory: u64,
    scan_secs: f64,
) -> JobEstimate {
    let known: Vec<&ReadRate> = rates.iter().flatten().collect();
    let fallback = if known.is_empty() {
        ReadRate {
            rows_per_sec: 500_000.0,
            bytes_per_row: 100.0,
        }
    } else {
        ReadRate {
            rows_per_sec: known.iter().map(|r| r.rows_per_sec).sum::<f64>() / known.len() as f64,
            bytes_per_row: known.iter().map(|r| r.bytes_per_row).sum::<f64>() / known.len() as f64,
        }
    };
    let mut tables = Vec::new();
    let mut widest = 0f64;
    for ((job, table, rows), rate) in jobs.iter().zip(rates) {
        let r = rate.unwrap_or(fallback);
        widest = widest.max(r.bytes_per_row);
        let indexes = (!table.primary_key.is_empty()) as usize
            + job.target.unique_keys.len()
            + job.target.indexes.len();
        let seconds = *rows as f64 / r.rows_per_sec.max(1.0)
            + *rows as f64 * INDEX_SECS_PER_ROW * indexes as f64;
        tables.push(TableEstimate {
            table: job.source.to_string(),
            rows: *rows,
            seconds,
            basis: if rate.is_some() {
                "sampled"
            } else {
                "extrapolated"
            }
            .into(),
        });
    }
    // Batches in flight cannot hold more rows than the largest table has.
    let largest = jobs.iter().map(|(_, _, rows)| *rows).max().unwrap_or(0);
    let in_flight = ((parallelism * 6 * batch_rows) as u64).min(largest) as f64 * widest;
    JobEstimate {
        seconds: FIXED_SECS + scan_secs + tables.iter().map(|t| t.seconds).sum::<f64>(),
        peak_memory_bytes: (in_flight.min(max_memory as f64) as u64) + FIXED_MEMORY,
        tables,
    }
}

/// The indexes of the tables worth sampling: the largest `SAMPLED_TABLES` by size.
pub fn tables_to_sample(sizes: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(sizes[*i]));
    order.truncate(SAMPLED_TABLES);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_tables_are_sampled() {
        assert_eq!(tables_to_sample(&[10, 500, 30, 900, 1]), vec![3, 1, 2]);
        assert_eq!(tables_to_sample(&[7]), vec![0]);
    }
}
