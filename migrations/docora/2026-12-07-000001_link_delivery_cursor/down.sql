ALTER TABLE docora.app_repositories DROP COLUMN delivered_seq;
