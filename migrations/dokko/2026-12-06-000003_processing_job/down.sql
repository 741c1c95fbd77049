ALTER TABLE dokko.repositories DROP COLUMN processing_job_id;
