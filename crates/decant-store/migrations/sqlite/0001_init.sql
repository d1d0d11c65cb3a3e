-- The control store's first tables: jobs, their table mappings, chunk progress, errors and results.
CREATE TABLE migration_jobs (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    state              TEXT NOT NULL,
    plan_json          TEXT NOT NULL,
    plan_fingerprint   TEXT NOT NULL,
    schema_fingerprint TEXT NOT NULL,
    source_url         TEXT NOT NULL,
    target_url         TEXT NOT NULL,
    error              TEXT,
    summary_json       TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    finished_at        TEXT
);
CREATE INDEX migration_jobs_name ON migration_jobs (name, created_at);

CREATE TABLE source_mappings (
    job_id       TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    source_table TEXT NOT NULL,
    target_table TEXT NOT NULL,
    load_order   INTEGER NOT NULL,
    decision     TEXT NOT NULL,
    mapping_json TEXT NOT NULL,
    PRIMARY KEY (job_id, source_table)
);

CREATE TABLE progress_tracking (
    job_id         TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    table_name     TEXT NOT NULL,
    chunk_id       TEXT NOT NULL,
    chunk_order    INTEGER NOT NULL,
    range_json     TEXT NOT NULL,
    estimated_rows INTEGER NOT NULL,
    state          TEXT NOT NULL,
    rows_done      INTEGER NOT NULL DEFAULT 0,
    bytes_done     INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (job_id, table_name, chunk_id)
);

CREATE TABLE error_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    table_name TEXT,
    chunk_id   TEXT,
    domain     TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE success_records (
    job_id       TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    table_name   TEXT NOT NULL,
    rows_read    INTEGER NOT NULL,
    rows_written INTEGER NOT NULL,
    target_rows  INTEGER,
    finished_at  TEXT NOT NULL,
    PRIMARY KEY (job_id, table_name)
);
