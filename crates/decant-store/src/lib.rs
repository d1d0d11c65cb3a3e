//! Control-plane persistence: jobs, table mappings, chunk progress, errors and results.
//!
//! The embedded default is a SQLite file (`./.decant/state.db`); PostgreSQL (`postgres://...`)
//! holds the same schema for a shared control plane. Each backend has its migrations
//! (`migrations/sqlite`, `migrations/postgres`), applied at open. Queries are written once, with
//! `$N` parameters, which both backends take.

use std::path::Path;
use std::str::FromStr;

use decant_core::Reject;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Executor, Row, migrate::Migrator};

mod undo;
pub use undo::{Retention, UndoTableRecord};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Errors of the control store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement or could not be opened.
    #[error("control store: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations failed.
    #[error("control store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON document did not parse.
    #[error("control store holds invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The state directory could not be created.
    #[error("control store directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// The lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Initialized,
    /// Waiting for a slot under the service's concurrency limit.
    Queued,
    Running,
    /// Held between chunks by the service.
    Paused,
    Succeeded,
    Failed,
    Cancelled,
    /// Undone by `decant rollback` or `POST /migration/rollback`.
    RolledBack,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Initialized => "initialized",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::RolledBack => "rolled_back",
        }
    }

    /// A job in this state is never resumed: it succeeded or was rolled back.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::RolledBack)
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "rolled_back" => JobState::RolledBack,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Initialized,
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    pub state: JobState,
    pub plan_json: String,
    pub plan_fingerprint: String,
    pub schema_fingerprint: String,
    pub error: Option<String>,
    pub created_at: String,
}

/// One table of a job: how it maps, in which order it loads, and what was decided for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappingRecord {
    pub source_table: String,
    pub target_table: String,
    pub load_order: i64,
    /// `create`, `truncate`, `append`, `drop`, `swap` or `upsert`.
    pub decision: String,
    pub mapping_json: String,
}

/// A quarantined record, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectRecord {
    pub id: i64,
    pub table: String,
    pub chunk_id: String,
    #[serde(flatten)]
    pub reject: Reject,
    pub created_at: String,
    /// `quarantined`, `retrying`, `loaded` or `filtered` (see [`RejectStatus`]).
    pub status: String,
    /// The target chunk a retry loaded (or is loading) it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_chunk: Option<String>,
}

/// Where a quarantined record stands after `decant rejects --retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStatus {
    /// In the quarantine (the reason is the latest attempt's).
    Quarantined,
    /// A retry is about to commit it in its `retry_chunk`; the target's marker for that chunk
    /// decides whether it did.
    Retrying,
    /// Loaded into the target by a retry whose chunk marker committed.
    Loaded,
    /// The current plan's filter leaves it out.
    Filtered,
}

impl RejectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectStatus::Quarantined => "quarantined",
            RejectStatus::Retrying => "retrying",
            RejectStatus::Loaded => "loaded",
            RejectStatus::Filtered => "filtered",
        }
    }
}

/// One chunk's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub table_name: String,
    pub chunk_id: String,
    pub chunk_order: i64,
    pub range_json: String,
    pub estimated_rows: i64,
    pub state: String,
    pub rows_done: i64,
    pub attempts: i64,
}

/// One table's result of a job, as recorded in `success_records`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuccessRecord {
    pub table_name: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub target_rows: Option<i64>,
    pub finished_at: String,
}

/// One error of a job, as recorded in `error_logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub id: i64,
    pub table_name: Option<String>,
    pub chunk_id: Option<String>,
    /// `User`, `External` or `Internal`.
    pub domain: String,
    pub message: String,
    pub created_at: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The control store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

/// Whether a store location names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_location(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Opens the store at `location`: a `postgres://` URL, or else a SQLite file path
    /// (`sqlite://` prefix allowed).
    pub async fn open(location: &Path) -> Result<Store, StoreError> {
        let text = location.to_string_lossy();
        if is_postgres_location(&text) {
            return Store::open_postgres(&text).await;
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(&text);
        Store::open_sqlite(Path::new(path)).await
    }

    /// Connects to the PostgreSQL store at `url` (the database must exist) and applies
    /// migrations.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Store { pool })
    }

    /// Opens (creating if needed) the SQLite store at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        sqlx::any::install_default_drivers();
        let url = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .to_url_lossy();
        // Through the Any driver, which knows only the URL: the pragmas are set per connection.
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(AnyConnectOptions::from_url(&url)?)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Store { pool })
    }

    /// The newest job with this name, if any.
    pub async fn latest_job(&self, name: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, state, plan_json, plan_fingerprint, schema_fingerprint, error, created_at \
             FROM migration_jobs WHERE name = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| job_from_row(&r)))
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, state, plan_json, plan_fingerprint, schema_fingerprint, error, created_at \
             FROM migration_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| job_from_row(&r)))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_job(
        &self,
        id: &str,
        name: &str,
        plan_json: &str,
        plan_fingerprint: &str,
        schema_fingerprint: &str,
        source_url: &str,
        target_url: &str,
    ) -> Result<(), StoreError> {
        let t = now();
        sqlx::query(
            "INSERT INTO migration_jobs (id, name, state, plan_json, plan_fingerprint, schema_fingerprint, \
             source_url, target_url, created_at, updated_at) VALUES ($1, $2, 'initialized', $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(name)
        .bind(plan_json)
        .bind(plan_fingerprint)
        .bind(schema_fingerprint)
        .bind(source_url)
        .bind(target_url)
        .bind(&t)
        .bind(&t)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_job_state(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let t = now();
        let finished = matches!(
            state,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::RolledBack
        )
        .then_some(&t);
        sqlx::query("UPDATE migration_jobs SET state = $1, error = $2, updated_at = $3, finished_at = $4 WHERE id = $5")
            .bind(state.as_str())
            .bind(error)
            .bind(&t)
            .bind(finished)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_summary(&self, id: &str, summary_json: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE migration_jobs SET summary_json = $1 WHERE id = $2")
            .bind(summary_json)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every job, newest first.
    pub async fn list_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, state, plan_json, plan_fingerprint, schema_fingerprint, error, created_at \
             FROM migration_jobs ORDER BY created_at DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// The stored run summary (JSON) of a job that finished.
    pub async fn summary(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT summary_json FROM migration_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// The per-table results of a job (`success_records`).
    pub async fn results(&self, job: &str) -> Result<Vec<SuccessRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT table_name, rows_read, rows_written, target_rows, finished_at FROM success_records \
             WHERE job_id = $1 ORDER BY table_name",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SuccessRecord {
                table_name: r.get(0),
                rows_read: r.get(1),
                rows_written: r.get(2),
                target_rows: r.get(3),
                finished_at: r.get(4),
            })
            .collect())
    }

    /// The errors (not the rejects) of a job, oldest first.
    pub async fn error_records(&self, job: &str) -> Result<Vec<ErrorRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, table_name, chunk_id, domain, message, created_at FROM error_logs \
             WHERE job_id = $1 AND kind = 'error' ORDER BY id",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ErrorRecord {
                id: r.get(0),
                table_name: r.get(1),
                chunk_id: r.get(2),
                domain: r.get(3),
                message: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    /// Records the keys one chunk of an append load inserted, replacing an earlier attempt's.
    pub async fn replace_inserted_keys(
        &self,
        job: &str,
        table: &str,
        chunk: &str,
        keys: &[i64],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inserted_keys (job_id, table_name, chunk_id, keys_json) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job_id, table_name, chunk_id) DO UPDATE SET keys_json = excluded.keys_json",
        )
        .bind(job)
        .bind(table)
        .bind(chunk)
        .bind(serde_json::to_string(keys)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The keys recorded per chunk of one table of a job: `(chunk_id, keys)`.
    pub async fn inserted_keys(
        &self,
        job: &str,
        table: &str,
    ) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT chunk_id, keys_json FROM inserted_keys WHERE job_id = $1 AND table_name = $2 ORDER BY chunk_id",
        )
        .bind(job)
        .bind(table)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.get(0), serde_json::from_str(&r.get::<String, _>(1))?)))
            .collect()
    }

    /// Deletes a job and everything recorded for it.
    pub async fn delete_job(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM migration_jobs WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a job's table mappings and chunk plan in one transaction, so a resume never
    /// sees a half-recorded plan.
    pub async fn save_plan(
        &self,
        job: &str,
        mappings: &[MappingRecord],
        chunks: &[ChunkRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        for m in mappings {
            sqlx::query(
                "INSERT INTO source_mappings (job_id, source_table, target_table, load_order, decision, mapping_json) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(job)
            .bind(&m.source_table)
            .bind(&m.target_table)
            .bind(m.load_order)
            .bind(&m.decision)
            .bind(&m.mapping_json)
            .execute(&mut *tx)
            .await?;
        }
        for c in chunks {
            sqlx::query(
                "INSERT INTO progress_tracking (job_id, table_name, chunk_id, chunk_order, range_json, estimated_rows, \
                 state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
            )
            .bind(job)
            .bind(&c.table_name)
            .bind(&c.chunk_id)
            .bind(c.chunk_order)
            .bind(&c.range_json)
            .bind(c.estimated_rows)
            .bind(&t)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn mappings(&self, job: &str) -> Result<Vec<MappingRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT source_table, target_table, load_order, decision, mapping_json FROM source_mappings \
             WHERE job_id = $1 ORDER BY load_order",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| MappingRecord {
                source_table: r.get(0),
                target_table: r.get(1),
                load_order: r.get(2),
                decision: r.get(3),
                mapping_json: r.get(4),
            })
            .collect())
    }

    pub async fn chunks(&self, job: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT table_name, chunk_id, chunk_order, range_json, estimated_rows, state, rows_done, attempts \
             FROM progress_tracking WHERE job_id = $1 ORDER BY table_name, chunk_order",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ChunkRecord {
                table_name: r.get(0),
                chunk_id: r.get(1),
                chunk_order: r.get(2),
                range_json: r.get(3),
                estimated_rows: r.get(4),
                state: r.get(5),
                rows_done: r.get(6),
                attempts: r.get(7),
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update_chunk(
        &self,
        job: &str,
        table: &str,
        chunk: &str,
        state: &str,
        rows: u64,
        bytes: u64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE progress_tracking SET state = $1, rows_done = $2, bytes_done = $3, error = $4, updated_at = $5, \
             attempts = attempts + CASE WHEN $6 = 'running' THEN 1 ELSE 0 END \
             WHERE job_id = $7 AND table_name = $8 AND chunk_id = $9",
        )
        .bind(state)
        .bind(rows as i64)
        .bind(bytes as i64)
        .bind(error)
        .bind(now())
        .bind(state)
        .bind(job)
        .bind(table)
        .bind(chunk)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn log_error(
        &self,
        job: &str,
        table: Option<&str>,
        chunk: Option<&str>,
        domain: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO error_logs (job_id, table_name, chunk_id, domain, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job)
        .bind(table)
        .bind(chunk)
        .bind(domain)
        .bind(message)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn errors(&self, job: &str) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT table_name, message FROM error_logs WHERE job_id = $1 AND kind = 'error' ORDER BY id")
                .bind(job)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Puts the rejects of one chunk into the quarantine, replacing whatever an earlier attempt
    /// of the same chunk left there, in one transaction: a chunk's rejects are those of its last
    /// attempt, and the attempt that commits is the last.
    pub async fn replace_rejects(
        &self,
        job: &str,
        table: &str,
        chunk: &str,
        rejects: &[Reject],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM error_logs WHERE job_id = $1 AND kind = 'reject' AND table_name = $2 AND chunk_id = $3",
        )
        .bind(job)
        .bind(table)
        .bind(chunk)
        .execute(&mut *tx)
        .await?;
        let t = now();
        for r in rejects {
            sqlx::query(
                "INSERT INTO error_logs (job_id, table_name, chunk_id, domain, message, created_at, kind, location, rule, record, input_record) \
                 VALUES ($1, $2, $3, 'User', $4, $5, 'reject', $6, $7, $8, $9)",
            )
            .bind(job)
            .bind(table)
            .bind(chunk)
            .bind(&r.reason)
            .bind(&t)
            .bind(&r.location)
            .bind(&r.rule)
            .bind(&r.record)
            .bind(&r.input)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The quarantined records of a job, in the order they were rejected.
    pub async fn rejects(&self, job: &str) -> Result<Vec<RejectRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, table_name, chunk_id, location, rule, message, record, created_at, status, retry_chunk, input_record \
             FROM error_logs WHERE job_id = $1 AND kind = 'reject' ORDER BY id",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RejectRecord {
                id: r.get(0),
                table: r.get::<Option<String>, _>(1).unwrap_or_default(),
                chunk_id: r.get::<Option<String>, _>(2).unwrap_or_default(),
                reject: Reject {
                    location: r.get::<Option<String>, _>(3).unwrap_or_default(),
                    rule: r.get::<Option<String>, _>(4).unwrap_or_default(),
                    reason: r.get(5),
                    record: r.get::<Option<String>, _>(6).unwrap_or_default(),
                    input: r.get(10),
                },
                created_at: r.get(7),
                status: r.get(8),
                retry_chunk: r.get(9),
            })
            .collect())
    }

    /// Marks records as about to be loaded by retry chunk `chunk` (before the chunk writes), so
    /// that a crash before [`Store::finish_retry_chunk`] is settled by the chunk's target marker.
    pub async fn mark_retrying(&self, ids: &[i64], chunk: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE error_logs SET status = 'retrying', retry_chunk = $1 WHERE id = $2 AND kind = 'reject'",
            )
            .bind(chunk)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Settles retry chunk `chunk` of `job`: its records become `loaded` when its target marker
    /// committed, else `quarantined` again (the retry that wrote them did not commit).
    pub async fn finish_retry_chunk(
        &self,
        job: &str,
        chunk: &str,
        committed: bool,
    ) -> Result<u64, StoreError> {
        let (status, resolved) = if committed {
            (RejectStatus::Loaded, Some(now()))
        } else {
            (RejectStatus::Quarantined, None)
        };
        let done = sqlx::query(
            "UPDATE error_logs SET status = $1, resolved_at = $2 \
             WHERE job_id = $3 AND kind = 'reject' AND status = 'retrying' AND retry_chunk = $4",
        )
        .bind(status.as_str())
        .bind(resolved)
        .bind(job)
        .bind(chunk)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records a retry's verdict on records that did not load: still rejected (with the new
    /// rule, reason and record) or left out by the current filter.
    pub async fn update_rejects(
        &self,
        updates: &[(i64, RejectStatus, Option<&Reject>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, status, reject) in updates {
            match reject {
                Some(r) => {
                    sqlx::query(
                        "UPDATE error_logs SET status = $1, rule = $2, message = $3, record = $4, created_at = $5 WHERE id = $6",
                    )
                    .bind(status.as_str())
                    .bind(&r.rule)
                    .bind(&r.reason)
                    .bind(&r.record)
                    .bind(now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "UPDATE error_logs SET status = $1, resolved_at = $2 WHERE id = $3",
                    )
                    .bind(status.as_str())
                    .bind(now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records how many rows a chunk's `where` filter left out, replacing an earlier attempt's
    /// count (like [`Store::replace_rejects`]); the end-of-run proof adds them to the written rows.
    pub async fn replace_filtered(
        &self,
        job: &str,
        table: &str,
        chunk: &str,
        rows: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM error_logs WHERE job_id = $1 AND kind = 'filtered' AND table_name = $2 AND chunk_id = $3",
        )
        .bind(job)
        .bind(table)
        .bind(chunk)
        .execute(&mut *tx)
        .await?;
        if rows > 0 {
            sqlx::query(
                "INSERT INTO error_logs (job_id, table_name, chunk_id, domain, message, created_at, kind) \
                 VALUES ($1, $2, $3, 'User', $4, $5, 'filtered')",
            )
            .bind(job)
            .bind(table)
            .bind(chunk)
            .bind(rows.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rows left out by `where` filters, per (table, chunk) of a job.
    pub async fn filtered_counts(
        &self,
        job: &str,
    ) -> Result<std::collections::BTreeMap<(String, String), u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT table_name, chunk_id, message FROM error_logs WHERE job_id = $1 AND kind = 'filtered'",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    (
                        r.get::<Option<String>, _>(0).unwrap_or_default(),
                        r.get::<Option<String>, _>(1).unwrap_or_default(),
                    ),
                    r.get::<String, _>(2).parse().unwrap_or(0),
                )
            })
            .collect())
    }

    /// Quarantined records per (table, chunk) of a job (not those a retry loaded or filtered).
    pub async fn reject_counts(
        &self,
        job: &str,
    ) -> Result<std::collections::BTreeMap<(String, String), u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT table_name, chunk_id, count(*) FROM error_logs WHERE job_id = $1 AND kind = 'reject' \
             AND status IN ('quarantined', 'retrying') \
             GROUP BY table_name, chunk_id",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    (
                        r.get::<Option<String>, _>(0).unwrap_or_default(),
                        r.get::<Option<String>, _>(1).unwrap_or_default(),
                    ),
                    r.get::<i64, _>(2) as u64,
                )
            })
            .collect())
    }

    pub async fn record_success(
        &self,
        job: &str,
        table: &str,
        rows_read: u64,
        rows_written: u64,
        target_rows: Option<u64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO success_records (job_id, table_name, rows_read, rows_written, target_rows, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, table_name) DO UPDATE SET rows_read = excluded.rows_read, \
             rows_written = excluded.rows_written, target_rows = excluded.target_rows, finished_at = excluded.finished_at",
        )
        .bind(job)
        .bind(table)
        .bind(rows_read as i64)
        .bind(rows_written as i64)
        .bind(target_rows.map(|v| v as i64))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One validation of a plan, as recorded in `validation_runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationRunRecord {
    pub id: String,
    pub job_name: String,
    /// The migration job of that name, when one exists.
    pub job_id: Option<String>,
    /// `match`, `differences` or `error`.
    pub outcome: String,
    pub tables: i64,
    pub differences: i64,
    pub rules_failed: i64,
    pub report_json: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Store {
    /// Records one validation run.
    pub async fn record_validation(&self, run: &ValidationRunRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO validation_runs (id, job_name, job_id, outcome, tables, differences, rules_failed, \
             report_json, started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&run.id)
        .bind(&run.job_name)
        .bind(&run.job_id)
        .bind(&run.outcome)
        .bind(run.tables)
        .bind(run.differences)
        .bind(run.rules_failed)
        .bind(&run.report_json)
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest validation run of a job name, if any.
    pub async fn latest_validation(
        &self,
        job_name: &str,
    ) -> Result<Option<ValidationRunRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, job_name, job_id, outcome, tables, differences, rules_failed, report_json, \
             started_at, finished_at FROM validation_runs WHERE job_name = $1 \
             ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(job_name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ValidationRunRecord {
            id: r.get(0),
            job_name: r.get(1),
            job_id: r.get(2),
            outcome: r.get(3),
            tables: r.get(4),
            differences: r.get(5),
            rules_failed: r.get(6),
            report_json: r.get(7),
            started_at: r.get(8),
            finished_at: r.get(9),
        }))
    }
}

fn job_from_row(r: &AnyRow) -> JobRecord {
    JobRecord {
        id: r.get(0),
        name: r.get(1),
        state: JobState::parse(&r.get::<String, _>(2)),
        plan_json: r.get(3),
        plan_fingerprint: r.get(4),
        schema_fingerprint: r.get(5),
        error: r.get(6),
        created_at: r.get(7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_plans_and_chunks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("state.db"))
            .await
            .unwrap();
        round_trip(store).await;
    }

    /// The same on PostgreSQL, in a database made for this test (`DECANT_TEST_PG` names the
    /// server; unreachable fails, never skips).
    #[tokio::test]
    async fn jobs_plans_and_chunks_round_trip_on_postgres() {
        let admin = std::env::var("DECANT_TEST_PG")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
        let name = format!("decant_store_t_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let store = Store::open(Path::new(&url)).await.unwrap();
        round_trip(store.clone()).await;
        // Applying the migrations again (a second service start) is a no-op.
        Store::open(Path::new(&url)).await.unwrap();
        store.pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }

    /// Only a succeeded, not finalized job whose expiry passed is due.
    async fn retention_round_trip(store: &Store) {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert_eq!(store.retention("j1").await.unwrap(), Retention::default());
        store
            .set_job_state("j1", JobState::Failed, Some("boom"))
            .await
            .unwrap();
        store
            .set_backups_expire_at("j1", "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        assert!(
            store
                .expired_jobs(at("2026-01-02T00:00:00Z"))
                .await
                .unwrap()
                .is_empty(),
            "j1 is not succeeded here"
        );
        store
            .set_job_state("j1", JobState::Succeeded, None)
            .await
            .unwrap();
        assert!(
            store
                .expired_jobs(at("2025-12-31T23:59:59Z"))
                .await
                .unwrap()
                .is_empty(),
            "not expired yet"
        );
        assert_eq!(
            store
                .expired_jobs(at("2026-01-01T00:00:00.5+00:00"))
                .await
                .unwrap(),
            vec!["j1".to_string()]
        );
        store.finalize_job("j1").await.unwrap();
        assert!(
            store
                .expired_jobs(at("2027-01-01T00:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );
        let r = store.retention("j1").await.unwrap();
        assert_eq!(r.backups_expire_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(r.finalized_at.is_some());
    }

    async fn round_trip(store: Store) {
        store
            .create_job("j1", "shop", "{}", "pf", "sf", "sqlite://a", "sqlite://b")
            .await
            .unwrap();
        let mapping = MappingRecord {
            source_table: "t".into(),
            target_table: "t".into(),
            load_order: 0,
            decision: "create".into(),
            mapping_json: "{}".into(),
        };
        let chunk = ChunkRecord {
            table_name: "t".into(),
            chunk_id: "whole".into(),
            chunk_order: 0,
            range_json: "{}".into(),
            estimated_rows: 10,
            state: "pending".into(),
            rows_done: 0,
            attempts: 0,
        };
        store.save_plan("j1", &[mapping], &[chunk]).await.unwrap();
        store
            .update_chunk("j1", "t", "whole", "running", 0, 0, None)
            .await
            .unwrap();
        store
            .update_chunk("j1", "t", "whole", "done", 10, 100, None)
            .await
            .unwrap();
        let chunks = store.chunks("j1").await.unwrap();
        assert_eq!(
            (
                chunks[0].state.as_str(),
                chunks[0].rows_done,
                chunks[0].attempts
            ),
            ("done", 10, 1)
        );
        assert_eq!(store.latest_job("shop").await.unwrap().unwrap().id, "j1");
        store
            .set_job_state("j1", JobState::Succeeded, None)
            .await
            .unwrap();
        assert_eq!(
            store.job("j1").await.unwrap().unwrap().state,
            JobState::Succeeded
        );
        let run = ValidationRunRecord {
            id: "v1".into(),
            job_name: "shop".into(),
            job_id: Some("j1".into()),
            outcome: "match".into(),
            tables: 1,
            differences: 0,
            rules_failed: 0,
            report_json: "{}".into(),
            started_at: now(),
            finished_at: now(),
        };
        store.record_validation(&run).await.unwrap();
        let latest = store.latest_validation("shop").await.unwrap().unwrap();
        assert_eq!(
            (latest.id.as_str(), latest.outcome.as_str()),
            ("v1", "match")
        );
        store
            .replace_inserted_keys("j1", "t", "whole", &[1, 2, 3])
            .await
            .unwrap();
        store
            .replace_inserted_keys("j1", "t", "whole", &[4, 5])
            .await
            .unwrap();
        assert_eq!(
            store.inserted_keys("j1", "t").await.unwrap(),
            vec![("whole".to_string(), vec![4, 5])],
            "a retried chunk's keys replace its earlier attempt's"
        );
        store
            .log_error("j1", Some("t"), None, "User", "boom")
            .await
            .unwrap();
        store
            .record_success("j1", "t", 10, 10, Some(10))
            .await
            .unwrap();
        assert_eq!(store.error_records("j1").await.unwrap()[0].message, "boom");
        assert_eq!(store.results("j1").await.unwrap()[0].rows_written, 10);
        assert_eq!(store.list_jobs().await.unwrap().len(), 1);
        retention_round_trip(&store).await;
        store
            .set_job_state("j1", JobState::RolledBack, None)
            .await
            .unwrap();
        assert!(store.job("j1").await.unwrap().unwrap().state.is_final());
        store.delete_job("j1").await.unwrap();
        let kept = store.latest_validation("shop").await.unwrap().unwrap();
        assert_eq!(
            kept.job_id, None,
            "a validation outlives the job it checked"
        );
        assert!(
            store.chunks("j1").await.unwrap().is_empty(),
            "chunks go with their job"
        );
    }
}
