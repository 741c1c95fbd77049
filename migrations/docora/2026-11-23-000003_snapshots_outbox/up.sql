-- What a repository looked like at its last scan, and the events waiting to be delivered.

-- A scan holds a lease instead of a lock while git runs (no transaction stays open across the
-- network); a crashed scanner's lease runs out and another replica takes the repository.
ALTER TABLE docora.repositories ADD COLUMN scan_lease_until timestamptz;

CREATE TABLE docora.repository_files (
    repository_id text NOT NULL REFERENCES docora.repositories (id) ON DELETE CASCADE,
    path text NOT NULL,
    -- git's object id: an unchanged blob is not read or hashed again
    blob text NOT NULL,
    -- SHA-256 of the bytes, lower-case hex (what webhooks call sha)
    sha256 text NOT NULL,
    size bigint NOT NULL,
    is_binary boolean NOT NULL,
    PRIMARY KEY (repository_id, path)
);

-- The durable outbox: written in the transaction that records the new snapshot, delivered per
-- app and repository in seq order. Contents are not copied here: delivery reads the blob from
-- the clone.
CREATE TABLE docora.events (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL,
    app_id text NOT NULL,
    repository_id text NOT NULL,
    -- create, update, delete, sync_failed
    event text NOT NULL,
    -- the file the event is about (null for sync_failed), for filters
    path text,
    -- what delivery needs besides: for file events {sha256, previous_sha256, size, is_binary,
    -- blob}; for sync_failed {error, circuit_breaker}
    payload jsonb NOT NULL,
    commit_sha text,
    -- pending, delivered, failed
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    CONSTRAINT events_link_fkey FOREIGN KEY (app_id, repository_id)
        REFERENCES docora.app_repositories (app_id, repository_id) ON DELETE CASCADE,
    CONSTRAINT events_event_check CHECK (event IN ('create', 'update', 'delete', 'sync_failed')),
    CONSTRAINT events_status_check CHECK (status IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX events_link_seq_idx ON docora.events (app_id, repository_id, seq);
CREATE INDEX events_pending_idx ON docora.events (next_attempt_at) WHERE status = 'pending';
