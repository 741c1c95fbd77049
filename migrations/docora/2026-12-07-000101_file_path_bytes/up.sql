-- git paths are bytes. A name that is not UTF-8 is kept in `path` in its lossless text form
-- (`r\xe9sum\xe9.txt`) and in `path_raw` as its bytes; a UTF-8 name has an empty `path_raw` (a git
-- path is never empty). The key holds both, so a name that is not UTF-8 never collides with a
-- UTF-8 name that reads like its text form.
ALTER TABLE docora.repository_files ADD COLUMN path_raw bytea NOT NULL DEFAULT ''::bytea;
ALTER TABLE docora.repository_files DROP CONSTRAINT repository_files_pkey;
ALTER TABLE docora.repository_files ADD PRIMARY KEY (repository_id, path, path_raw);
