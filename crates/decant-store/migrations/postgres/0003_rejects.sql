-- The quarantine: rejected records live in error_logs beside the job's errors, marked
-- kind = 'reject', with where they came from, the rule that refused them and the record itself.
ALTER TABLE error_logs ADD COLUMN kind TEXT NOT NULL DEFAULT 'error';
ALTER TABLE error_logs ADD COLUMN location TEXT;
ALTER TABLE error_logs ADD COLUMN rule TEXT;
ALTER TABLE error_logs ADD COLUMN record TEXT;
CREATE INDEX error_logs_rejects ON error_logs (job_id, kind, table_name, chunk_id);
