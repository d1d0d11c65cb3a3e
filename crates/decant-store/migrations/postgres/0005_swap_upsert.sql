-- What swap and upsert loads need to undo themselves, per table of a job. Swap: the shadow the
-- job loads and the backup name the live table gets at the swap (`state`: loading, swapped,
-- swapped_back, finalized). Upsert: the side table in the target that holds the pre-images
-- (`state`: recording, undone, finalized). `names_json` holds the exact names (schema, name).
CREATE TABLE undo_tables (
    job_id       TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    target_table TEXT NOT NULL,
    strategy     TEXT NOT NULL,
    backup_table TEXT,
    names_json   TEXT NOT NULL,
    state        TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (job_id, target_table)
);

-- A finalized job dropped what its rollback needed (backups, pre-images): it cannot be undone.
CREATE TABLE job_finalizations (
    job_id       TEXT PRIMARY KEY REFERENCES migration_jobs (id) ON DELETE CASCADE,
    finalized_at TEXT NOT NULL
);
