ALTER TABLE docora.apps
    DROP COLUMN breaker_trial,
    DROP COLUMN breaker_open_until,
    DROP COLUMN delivery_failures;
