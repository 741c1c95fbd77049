-- Repository files and folders. A file's bytes live in the tenant's bucket under an object key
-- of their own (see dokko-api's storage module); moving or renaming a file changes only its
-- path here.

CREATE TABLE dokko.files (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    repository_id uuid NOT NULL,
    -- relative to the repository root, '/'-separated, validated by the service
    path text NOT NULL,
    size bigint NOT NULL,
    content_type text NOT NULL,
    -- SHA-256 of the bytes, lower-case hex; shown as e_tag
    sha256 text NOT NULL,
    -- 1 for the first upload, +1 for every content replacement
    version integer NOT NULL DEFAULT 1,
    object_key text NOT NULL,
    -- user-defined filter metadata (string, bool, int or list of strings values)
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_repository_id_path_key UNIQUE (repository_id, path),
    CONSTRAINT files_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT files_object_key_key UNIQUE (object_key),
    CONSTRAINT files_repository_fkey FOREIGN KEY (tenant_id, repository_id)
        REFERENCES dokko.repositories (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT files_size_check CHECK (size >= 0),
    CONSTRAINT files_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX files_tenant_id_repository_id_idx ON dokko.files (tenant_id, repository_id, path);

-- Folders created explicitly (a folder that holds files exists through their paths too).
CREATE TABLE dokko.folders (
    tenant_id uuid NOT NULL,
    repository_id uuid NOT NULL,
    path text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, path),
    CONSTRAINT folders_repository_fkey FOREIGN KEY (tenant_id, repository_id)
        REFERENCES dokko.repositories (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX folders_tenant_id_repository_id_idx ON dokko.folders (tenant_id, repository_id);

-- Objects in flight: written before an upload starts ('upload') or when a row stops pointing at
-- an object ('delete'), in the same transaction as the change. Whatever a crash or a failed
-- request leaves here is deleted from the bucket by the sweeper, so the bucket never keeps an
-- object no row knows about.
CREATE TABLE dokko.object_journal (
    object_key text NOT NULL,
    bucket text NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, object_key),
    CONSTRAINT object_journal_reason_check CHECK (reason IN ('upload', 'delete'))
);
CREATE INDEX object_journal_created_at_idx ON dokko.object_journal (created_at);
