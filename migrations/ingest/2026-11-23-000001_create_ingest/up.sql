-- dokko-ingest's own record of what is indexed. The search index (tantivy, one per document
-- source, on local disk) is derived from these tables and can be rebuilt from them at any time.

-- Every change to a source's files takes the next value; the source's `version` is the last one.
-- The update of `sources.version` ends each transaction (a row lock held to the commit), so versions are
-- handed out in commit order and "everything up to version v" is a consistent cut.
CREATE SEQUENCE ingest.change_seq;

CREATE TABLE ingest.sources (
    -- dokko's document source id
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    -- the tenant's bucket, as dokko-api last reported it
    bucket text NOT NULL,
    version bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest.jobs (
    id uuid PRIMARY KEY,
    source_id uuid NOT NULL REFERENCES ingest.sources (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'RUNNING',
    -- listing: pulling the file list from dokko-api; processing: indexing what it listed
    phase text NOT NULL DEFAULT 'listing',
    -- where listing resumes (the last file id of the last page stored)
    list_cursor text,
    scanned bigint NOT NULL DEFAULT 0,
    new_indexed bigint NOT NULL DEFAULT 0,
    modified_indexed bigint NOT NULL DEFAULT 0,
    deleted bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    -- why the job FAILED
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    -- the last progress, or when the job ended
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- the worker holding the job, until when; a job whose lease ran out is picked up again
    lease_owner uuid,
    lease_until timestamptz,
    -- how many times a worker took the job (a job that keeps killing its worker ends FAILED)
    claims integer NOT NULL DEFAULT 0,
    CONSTRAINT jobs_status_check CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED')),
    CONSTRAINT jobs_phase_check CHECK (phase IN ('listing', 'processing'))
);
-- One running job per source, whatever the number of replicas.
CREATE UNIQUE INDEX jobs_one_running_per_source ON ingest.jobs (source_id) WHERE status = 'RUNNING';
CREATE INDEX jobs_source_started_idx ON ingest.jobs (source_id, started_at DESC);
CREATE INDEX jobs_running_lease_idx ON ingest.jobs (lease_until) WHERE status = 'RUNNING';

-- A file of a source as last indexed. `ord` is the file's number in the search index.
CREATE TABLE ingest.files (
    ord bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id uuid NOT NULL REFERENCES ingest.sources (id) ON DELETE CASCADE,
    file_id uuid NOT NULL,
    repository_id uuid NOT NULL,
    path text NOT NULL,
    sha256 text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- indexed: its chunks are searchable; failed: it could not be read (error says why);
    -- deleted: gone from the source (kept so replicas drop it from their index)
    state text NOT NULL,
    error text,
    chunk_count integer NOT NULL DEFAULT 0,
    -- the version at which its content (chunks) last changed
    change_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_source_id_file_id_key UNIQUE (source_id, file_id),
    CONSTRAINT files_state_check CHECK (state IN ('indexed', 'failed', 'deleted'))
);
CREATE INDEX files_source_change_seq_idx ON ingest.files (source_id, change_seq);

CREATE TABLE ingest.chunks (
    file_ord bigint NOT NULL REFERENCES ingest.files (ord) ON DELETE CASCADE,
    position integer NOT NULL,
    content text NOT NULL,
    -- little-endian f32s, when an embeddings endpoint is configured
    embedding bytea,
    PRIMARY KEY (file_ord, position)
);

-- What one job found for each file it listed; the per-file status listing. Pending while
-- `outcome` is null.
CREATE TABLE ingest.job_files (
    job_id uuid NOT NULL REFERENCES ingest.jobs (id) ON DELETE CASCADE,
    file_id uuid NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    repository_id uuid NOT NULL,
    path text NOT NULL,
    sha256 text NOT NULL,
    size bigint NOT NULL,
    object_key text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome text,
    reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, file_id),
    CONSTRAINT job_files_outcome_check
        CHECK (outcome IN ('new', 'modified', 'metadata', 'unchanged', 'deleted', 'failed'))
);
CREATE INDEX job_files_pending_idx ON ingest.job_files (job_id, seq) WHERE outcome IS NULL;
CREATE INDEX job_files_job_outcome_idx ON ingest.job_files (job_id, outcome, seq);
