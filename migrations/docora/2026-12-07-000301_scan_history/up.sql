-- The scan history: each repository's last scans (SCAN_HISTORY_KEPT, 20), with their outcome
-- and error, so an error stays with the scan that had it and a later success is seen beside it.
-- A row is written in the transaction that records the scan's outcome (never one of its own),
-- and the same transaction drops the repository's rows past the last 20: it cannot grow.
CREATE TABLE docora.scan_attempts (
    repository_id text NOT NULL REFERENCES docora.repositories (id) ON DELETE CASCADE,
    -- when the scan claimed the repository
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    -- unchanged (the commit did not move), scanned (events written), empty (no commit yet),
    -- failed
    outcome text NOT NULL,
    commit_sha text,
    -- events written for the apps (scanned), or sync_failed events (a failure that opened the
    -- circuit)
    events integer NOT NULL DEFAULT 0,
    error text,
    -- this failure opened the circuit (or opened it again after a failed trial)
    circuit_opened boolean NOT NULL DEFAULT false,
    PRIMARY KEY (repository_id, started_at),
    CONSTRAINT scan_attempts_outcome_check CHECK (outcome IN ('unchanged', 'scanned', 'empty', 'failed'))
);

-- When the running scan claimed the repository (null when none runs): a scan still started once
-- its lease has run out was abandoned (its worker stopped or was cut off), which the console
-- shows as stuck.
ALTER TABLE docora.repositories ADD COLUMN scan_started_at timestamptz;
