//! What swap and upsert loads record so that a rollback can undo them, and job finalization.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Store, StoreError, now};

/// One table of a job whose undo lives in the target (a swap's backup, an upsert's pre-images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoTableRecord {
    /// The live table's name (`schema.name`).
    pub target_table: String,
    /// `swap` or `upsert`.
    pub strategy: String,
    /// Swap: the name the live table gets when the shadow replaces it.
    pub backup_table: Option<String>,
    /// The exact names, as the engine wrote them.
    pub names_json: String,
    pub state: String,
    pub updated_at: String,
}

impl Store {
    /// Records a table's undo, or replaces what an earlier attempt of the same job recorded.
    pub async fn record_undo_table(
        &self,
        job: &str,
        record: &UndoTableRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO undo_tables (job_id, target_table, strategy, backup_table, names_json, state, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, target_table) DO UPDATE SET \
             strategy = excluded.strategy, backup_table = excluded.backup_table, names_json = excluded.names_json, \
             state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(&record.target_table)
        .bind(&record.strategy)
        .bind(record.backup_table.as_deref())
        .bind(&record.names_json)
        .bind(&record.state)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The undo records of a job, in the order they were written.
    pub async fn undo_tables(&self, job: &str) -> Result<Vec<UndoTableRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_table, strategy, backup_table, names_json, state, updated_at \
             FROM undo_tables WHERE job_id = $1 ORDER BY target_table",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| UndoTableRecord {
                target_table: r.get(0),
                strategy: r.get(1),
                backup_table: r.get(2),
                names_json: r.get(3),
                state: r.get(4),
                updated_at: r.get(5),
            })
            .collect())
    }

    /// Moves one table's undo to `state`.
    pub async fn set_undo_state(
        &self,
        job: &str,
        target_table: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE undo_tables SET state = $1, updated_at = $2 WHERE job_id = $3 AND target_table = $4",
        )
        .bind(state)
        .bind(now())
        .bind(job)
        .bind(target_table)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a job finalized: what its rollback needed is gone.
    pub async fn finalize_job(&self, job: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO job_finalizations (job_id, finalized_at) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the job was finalized, if it was.
    pub async fn finalized_at(&self, job: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT finalized_at FROM job_finalizations WHERE job_id = $1")
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}
