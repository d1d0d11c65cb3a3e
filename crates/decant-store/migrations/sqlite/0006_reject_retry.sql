-- `decant rejects JOB --retry`: each quarantined record knows whether a retry loaded it.
-- status: 'quarantined' (in the quarantine), 'retrying' (a retry is about to commit it in the
-- target chunk retry_chunk), 'loaded' (that chunk's marker committed on the target) or
-- 'filtered' (the current plan's filter leaves it out). input_record is the row as the source
-- gave it (JSON: {"values": {column: text|null}, "masked": [columns left out]}), which a retry
-- runs through the current transforms; NULL for records the reader itself refused.
ALTER TABLE error_logs ADD COLUMN status TEXT NOT NULL DEFAULT 'quarantined';
ALTER TABLE error_logs ADD COLUMN retry_chunk TEXT;
ALTER TABLE error_logs ADD COLUMN resolved_at TEXT;
ALTER TABLE error_logs ADD COLUMN input_record TEXT;
