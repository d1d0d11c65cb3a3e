//! Chunks: the unit of parallelism, checkpoint, retry and (later) validation.

use serde::{Deserialize, Serialize};

/// Which rows of a table a chunk covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkRange {
    /// The whole table in one chunk (no usable key, or a small table).
    Whole,
    /// `lo <= key < hi` on a single integer key column; `None` is unbounded on that side.
    IntKey {
        column: String,
        lo: Option<i64>,
        hi: Option<i64>,
    },
    /// PostgreSQL physical pages `[lo, hi)` of a table without a key, read by `ctid`;
    /// `hi = None` is unbounded, so rows in pages added after planning are not lost.
    CtidPages { lo: u64, hi: Option<u64> },
    /// Bytes `[start, end)` of one file, starting at a record (`end = None`: to the end; a
    /// compressed file is always read whole). `line` is the line number at `start`, for the
    /// locations of rejected records; `start = 0` means the file's header (if any) comes first.
    FileBytes {
        file: String,
        start: u64,
        end: Option<u64>,
        line: u64,
    },
    /// Pages of an HTTP API table: page numbers (`page` pagination) or record offsets
    /// (`offset`) in `[lo, hi)`, `hi = None` reading on until an empty page; cursor and link
    /// pagination always read from the first page (`lo = 0`). `since` is the incremental
    /// watermark sent with every request, fixed when the job was planned so that a resumed
    /// job asks for the same records.
    HttpPages {
        lo: u64,
        hi: Option<u64>,
        since: Option<String>,
    },
}

/// A chunk of one table, with a stable id that names it in markers and the control store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSpec {
    /// Stable within a job: the same plan and source give the same ids, so resume can match them.
    pub id: String,
    pub range: ChunkRange,
    /// Rows the source expects in the chunk (an estimate, for progress and ETA).
    pub estimated_rows: u64,
}

impl ChunkRange {
    /// A short human description, used in errors: the key range of a failed chunk.
    pub fn describe(&self) -> String {
        match self {
            ChunkRange::Whole => "whole table".into(),
            ChunkRange::IntKey { column, lo, hi } => {
                let lo = lo.map_or("-inf".to_string(), |v| v.to_string());
                let hi = hi.map_or("+inf".to_string(), |v| v.to_string());
                format!("{column} in [{lo}, {hi})")
            }
            ChunkRange::CtidPages { lo, hi } => {
                let hi = hi.map_or("end".to_string(), |v| v.to_string());
                format!("pages [{lo}, {hi})")
            }
            ChunkRange::FileBytes {
                file, start, end, ..
            } => {
                let end = end.map_or("end".to_string(), |v| v.to_string());
                format!("{file} bytes [{start}, {end})")
            }
            ChunkRange::HttpPages { lo, hi, since } => {
                let hi = hi.map_or("end".to_string(), |v| v.to_string());
                match since {
                    Some(s) => format!("pages [{lo}, {hi}) since {s}"),
                    None => format!("pages [{lo}, {hi})"),
                }
            }
        }
    }
}
