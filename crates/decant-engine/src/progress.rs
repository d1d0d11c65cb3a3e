//! Live progress shared between the runner and whoever shows it (terminal, API).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// Counters of one table, updated by the runner as batches flow.
#[derive(Debug, Default)]
pub struct TableProgress {
    pub name: String,
    pub rows_estimated: AtomicU64,
    pub rows_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub chunks_total: AtomicU64,
    pub chunks_done: AtomicU64,
}

/// A point-in-time view of one table's progress.
#[derive(Debug, Clone, Serialize)]
pub struct TableSnapshot {
    pub name: String,
    pub rows_estimated: u64,
    pub rows_done: u64,
    pub bytes_done: u64,
    pub chunks_total: u64,
    pub chunks_done: u64,
}

/// Progress of a whole job.
pub struct Progress {
    started: Instant,
    tables: Mutex<Vec<std::sync::Arc<TableProgress>>>,
    phase: Mutex<String>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            started: Instant::now(),
            tables: Mutex::new(Vec::new()),
            phase: Mutex::new("planning".into()),
        }
    }
}

impl Progress {
    pub fn add_table(
        &self,
        name: &str,
        rows_estimated: u64,
        chunks_total: u64,
    ) -> std::sync::Arc<TableProgress> {
        let t = std::sync::Arc::new(TableProgress {
            name: name.to_string(),
            rows_estimated: AtomicU64::new(rows_estimated),
            chunks_total: AtomicU64::new(chunks_total),
            ..Default::default()
        });
        self.tables.lock().expect("progress lock").push(t.clone());
        t
    }

    pub fn set_phase(&self, phase: &str) {
        tracing::info!(
            phase,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "phase"
        );
        *self.phase.lock().expect("progress lock") = phase.to_string();
    }

    pub fn phase(&self) -> String {
        self.phase.lock().expect("progress lock").clone()
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn tables(&self) -> Vec<TableSnapshot> {
        self.tables
            .lock()
            .expect("progress lock")
            .iter()
            .map(|t| TableSnapshot {
                name: t.name.clone(),
                rows_estimated: t.rows_estimated.load(Ordering::Relaxed),
                rows_done: t.rows_done.load(Ordering::Relaxed),
                bytes_done: t.bytes_done.load(Ordering::Relaxed),
                chunks_total: t.chunks_total.load(Ordering::Relaxed),
                chunks_done: t.chunks_done.load(Ordering::Relaxed),
            })
            .collect()
    }
}
