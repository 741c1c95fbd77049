-- docora-watcher: apps, the GitHub repositories they watch, and which app watches which.

CREATE TABLE docora.apps (
    -- app_ + 32 hex
    id text PRIMARY KEY,
    app_name text NOT NULL,
    -- where the app's webhook endpoints live ({base_url}/create, …)
    base_url text NOT NULL,
    email text NOT NULL,
    website text,
    description text,
    -- AES-256-GCM (nonce || ciphertext) of the key the app verifies signatures with
    client_auth_key_enc bytea NOT NULL,
    -- SHA-256 of the bearer token (docora_ + 64 hex); the token itself is never stored
    token_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT apps_token_digest_key UNIQUE (token_digest),
    CONSTRAINT apps_id_format CHECK (id ~ '^app_[0-9a-f]{32}$')
);

-- One row per GitHub repository, shared by every app that watches it (one clone, one scan).
CREATE TABLE docora.repositories (
    -- repo_ + 24 hex
    id text PRIMARY KEY,
    github_repo_id bigint NOT NULL,
    owner text NOT NULL,
    name text NOT NULL,
    is_private boolean NOT NULL,
    -- as GitHub reports it; scans follow it
    default_branch text NOT NULL,
    last_commit_sha text,
    last_scan_at timestamptz,
    next_scan_at timestamptz NOT NULL DEFAULT now(),
    -- git failures in a row, and the circuit breaker they open
    consecutive_failures integer NOT NULL DEFAULT 0,
    circuit_open_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repositories_github_repo_id_key UNIQUE (github_repo_id),
    CONSTRAINT repositories_id_format CHECK (id ~ '^repo_[0-9a-f]{24}$')
);
CREATE INDEX repositories_next_scan_at_idx ON docora.repositories (next_scan_at);

CREATE TABLE docora.app_repositories (
    app_id text NOT NULL REFERENCES docora.apps (id) ON DELETE CASCADE,
    repository_id text NOT NULL REFERENCES docora.repositories (id) ON DELETE CASCADE,
    -- AES-256-GCM of the app's GitHub token for this repository, when it gave one
    github_token_enc bytea,
    -- pending (not yet fully delivered), synced, failed (deliveries gave up)
    status text NOT NULL DEFAULT 'pending',
    -- the next scan sends this app every file as a create (registration, re-registration)
    needs_full_sync boolean NOT NULL DEFAULT true,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, repository_id),
    CONSTRAINT app_repositories_status_check CHECK (status IN ('pending', 'synced', 'failed'))
);
CREATE INDEX app_repositories_repository_id_idx ON docora.app_repositories (repository_id);
