ALTER TABLE docora.events DROP COLUMN lease_until;
