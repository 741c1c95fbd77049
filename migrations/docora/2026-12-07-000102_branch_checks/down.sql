ALTER TABLE docora.repositories DROP COLUMN branch_checked_at;
