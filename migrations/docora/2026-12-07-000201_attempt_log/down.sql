DROP INDEX docora.events_redelivery_of_idx;
ALTER TABLE docora.events DROP COLUMN redelivery_of;
DROP TABLE docora.delivery_attempts;
