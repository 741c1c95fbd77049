DROP TABLE ingest.job_files;
DROP TABLE ingest.chunks;
DROP TABLE ingest.files;
DROP TABLE ingest.jobs;
DROP TABLE ingest.sources;
DROP SEQUENCE ingest.change_seq;
