//! Rejected records: input that could not become a row, or a row a rule refused. They go to the
//! quarantine (`error_logs` in the control store) with where they came from and why, never
//! silently away.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One rejected record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Where it came from: the source key (`id=42`), or `file.csv:17` (line) / `file.parquet@4096`
    /// (byte offset) for files.
    pub location: String,
    /// The check or rule that refused it (`malformed_record`, `not_null(email)`).
    pub rule: String,
    /// Why, in words a person can act on.
    pub reason: String,
    /// The record: the raw text for files, the row as a JSON object otherwise. Masked columns
    /// appear masked.
    pub record: String,
    /// The row as the source gave it, before transforms, for `decant rejects --retry`: JSON
    /// `{"values": {source column: text or null}, "masked": [source columns left out]}`.
    /// Columns the plan masks are left out (their raw value must not reach the quarantine), so
    /// a row with any is not retried. `None` for records the reader refused (no row to rerun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// The rejects of one chunk attempt, shared by its reader and its transforms. The runner writes
/// them to the quarantine in the same step that lets the chunk commit, so a chunk's rejects are
/// those of the attempt that committed: none twice, none lost.
#[derive(Debug, Clone, Default)]
pub struct RejectLog(Arc<Mutex<Vec<Reject>>>);

impl RejectLog {
    pub fn push(&self, reject: Reject) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(reject);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every reject recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<Reject> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_log() {
        let log = RejectLog::default();
        let other = log.clone();
        other.push(Reject {
            location: "a.csv:3".into(),
            rule: "malformed_record".into(),
            reason: "unbalanced quote".into(),
            record: "1,\"x".into(),
            input: None,
        });
        assert_eq!(log.len(), 1);
        assert_eq!(log.take()[0].location, "a.csv:3");
        assert!(other.is_empty());
    }
}
