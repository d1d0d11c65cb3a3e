-- Validation runs: one row per `decant validate` of a plan, with its full JSON report. Keyed by
-- the plan's job name, not a job id: a plan migrated by another tool has no job to point to.
CREATE TABLE validation_runs (
    id           TEXT PRIMARY KEY,
    job_name     TEXT NOT NULL,
    job_id       TEXT REFERENCES migration_jobs (id) ON DELETE SET NULL,
    outcome      TEXT NOT NULL,
    tables       BIGINT NOT NULL,
    differences  BIGINT NOT NULL,
    rules_failed BIGINT NOT NULL,
    report_json  TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL
);
CREATE INDEX validation_runs_job_name ON validation_runs (job_name, started_at);
