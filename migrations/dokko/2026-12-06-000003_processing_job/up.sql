-- The processing job a repository's processing_started_at / processing_ended_at belong to.
-- Job ids are UUID v7, ordered by their start: news of an older job never overwrites a newer's,
-- even within one second (the times themselves are whole seconds).
ALTER TABLE dokko.repositories ADD COLUMN processing_job_id uuid;
