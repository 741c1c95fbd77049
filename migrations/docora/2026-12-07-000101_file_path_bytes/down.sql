-- Names that are not UTF-8 cannot be kept apart without their bytes: they go, and the next scan
-- of their repository sends them again.
DELETE FROM docora.repository_files WHERE path_raw <> ''::bytea;
ALTER TABLE docora.repository_files DROP CONSTRAINT repository_files_pkey;
ALTER TABLE docora.repository_files DROP COLUMN path_raw;
ALTER TABLE docora.repository_files ADD PRIMARY KEY (repository_id, path);
