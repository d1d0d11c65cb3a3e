-- What a job needs to undo itself: for append loads into tables that existed, the keys each
-- chunk inserted (a JSON array of integers), replaced by every attempt of the chunk; rollback
-- deletes those of chunks whose marker committed.
CREATE TABLE inserted_keys (
    job_id     TEXT NOT NULL REFERENCES migration_jobs (id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    chunk_id   TEXT NOT NULL,
    keys_json  TEXT NOT NULL,
    PRIMARY KEY (job_id, table_name, chunk_id)
);
