ALTER TABLE docora.repositories DROP COLUMN scan_started_at;
DROP TABLE docora.scan_attempts;
