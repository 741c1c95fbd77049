-- The attempt log: every delivery attempt with what was sent and what came back, bounded (the
-- request body's first 64 KiB, the response body's first 8 KiB; the app's key is never
-- recorded, the signature may be). Rows are written by the statement that records the batch's
-- outcomes, in its transaction, never in one of their own; they are pruned in the background
-- after ATTEMPT_RETENTION_DAYS.
CREATE TABLE docora.delivery_attempts (
    event_id uuid NOT NULL REFERENCES docora.events (id) ON DELETE CASCADE,
    -- the event's attempt number (an admin retry starts it again at 1)
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    -- the last request of the attempt (a chunked file sends one per piece); null when the
    -- request could not be prepared (the error says why)
    request_url text,
    request_headers jsonb,
    -- the first 64 KiB of the body (file content can always be rebuilt from git)
    request_body text,
    -- the body's whole length in bytes
    request_body_bytes bigint,
    response_status integer,
    response_headers jsonb,
    -- the first 8 KiB of the response body
    response_body text,
    response_body_truncated boolean NOT NULL DEFAULT false,
    -- what went wrong (an error status, a timeout, a connection error, this side's failure)
    error text,
    PRIMARY KEY (event_id, started_at)
);
-- Bodies are stored as they are: compressing them costs PostgreSQL CPU on the delivery path.
ALTER TABLE docora.delivery_attempts ALTER COLUMN request_body SET STORAGE EXTERNAL;
ALTER TABLE docora.delivery_attempts ALTER COLUMN response_body SET STORAGE EXTERNAL;
-- Pruning by age; rows come in time order, so a BRIN index is enough and nearly free to keep.
CREATE INDEX delivery_attempts_started_at_idx ON docora.delivery_attempts USING brin (started_at);

-- A redelivery is a new event at the end of its link's queue (past the link's delivered_seq,
-- where delivery looks), a copy of the original it names here; it is sent with the original's
-- X-Docora-Delivery and X-Docora-Redelivery: true.
ALTER TABLE docora.events ADD COLUMN redelivery_of uuid;
CREATE INDEX events_redelivery_of_idx ON docora.events (redelivery_of) WHERE redelivery_of IS NOT NULL;
