DROP TABLE docora.events;
DROP TABLE docora.repository_files;
ALTER TABLE docora.repositories DROP COLUMN scan_lease_until;
