//! What swap and upsert loads record so that a rollback can undo them, job finalization, and
//! when a job's backups expire (`load.swap_retention`).

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

/// How long a job keeps what its rollback needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// When the job's backups and pre-images are due to be finalized (RFC 3339), if its plan
    /// has a `swap_retention`.
    pub backups_expire_at: Option<String>,
    /// When the job was finalized, if it was.
    pub finalized_at: Option<String>,
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

    /// Records when the job's backups and pre-images expire (RFC 3339).
    pub async fn set_backups_expire_at(&self, job: &str, at: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE migration_jobs SET backups_expire_at = $1 WHERE id = $2")
            .bind(at)
            .bind(job)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When the job's backups expire and when it was finalized.
    pub async fn retention(&self, job: &str) -> Result<Retention, StoreError> {
        let row = sqlx::query(
            "SELECT j.backups_expire_at, f.finalized_at FROM migration_jobs j \
             LEFT JOIN job_finalizations f ON f.job_id = j.id WHERE j.id = $1",
        )
        .bind(job)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Retention {
                backups_expire_at: r.get(0),
                finalized_at: r.get(1),
            })
            .unwrap_or_default())
    }

    /// The succeeded, not finalized jobs whose backups expired at or before `at`, oldest expiry
    /// first. Compared as times, not as text, so the stored form's precision does not matter.
    pub async fn expired_jobs(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.id, j.backups_expire_at FROM migration_jobs j \
             WHERE j.state = 'succeeded' AND j.backups_expire_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM job_finalizations f WHERE f.job_id = j.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut due: Vec<(chrono::DateTime<chrono::Utc>, String)> = rows
            .iter()
            .filter_map(|r| {
                let expires: String = r.get(1);
                let expires = chrono::DateTime::parse_from_rfc3339(&expires).ok()?;
                let expires = expires.with_timezone(&chrono::Utc);
                (expires <= at).then(|| (expires, r.get(0)))
            })
            .collect();
        due.sort();
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }
}
