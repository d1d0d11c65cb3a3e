-- `load.swap_retention`: when a succeeded job's swap backups and upsert pre-images expire
-- (its finish time plus the retention, RFC 3339 UTC); `decant serve` and
-- `decant finalize --expired` finalize the job after it. NULL: kept until finalized explicitly.
ALTER TABLE migration_jobs ADD COLUMN backups_expire_at TEXT;
