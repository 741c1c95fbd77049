-- The per-app delivery breaker. An app whose receiver fails DELIVERY_BREAKER_THRESHOLD attempts
-- in a row, across all its repositories, gets nothing for DELIVERY_BREAKER_COOLDOWN_SECS; then
-- one trial attempt goes out (half-open): a success closes the breaker, a failure opens it again.
-- It lives here, not in a replica's memory, so every replica honours it. Events wait while it is
-- open: their attempts and schedules are left alone.
ALTER TABLE docora.apps
    -- failed delivery attempts in a row, any repository; a success resets it
    ADD COLUMN delivery_failures integer NOT NULL DEFAULT 0,
    -- null: closed. Otherwise no delivery to the app starts before it; once it has passed, one
    -- trial may start, which moves it forward by the delivery lease while it runs
    ADD COLUMN breaker_open_until timestamptz,
    -- the trial attempt is running
    ADD COLUMN breaker_trial boolean NOT NULL DEFAULT false;
