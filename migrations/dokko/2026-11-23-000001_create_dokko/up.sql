-- dokko-api: tenants, people, service accounts, permissions, document sources, repositories.
-- Every tenant-owned table carries tenant_id, and references between tenant-owned rows are
-- composite (tenant_id, id) foreign keys, so a row can never point into another tenant.

CREATE TABLE dokko.tenants (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    subscription_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenants_name_format CHECK (name ~ '^[a-z0-9][a-z0-9-]{1,62}$')
);

CREATE TABLE dokko.users (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES dokko.tenants (id) ON DELETE CASCADE,
    -- stored lower-cased; unique per tenant
    email text NOT NULL,
    -- null until the invitation is accepted
    password_hash text,
    role text NOT NULL,
    is_active boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email),
    CONSTRAINT users_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT users_role_check CHECK (role IN ('org_admin', 'member')),
    CONSTRAINT users_active_has_password CHECK (NOT is_active OR password_hash IS NOT NULL)
);

CREATE TABLE dokko.invitations (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    -- SHA-256 of the one-time token; the token itself is never stored
    token_digest bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invitations_token_digest_key UNIQUE (token_digest),
    CONSTRAINT invitations_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES dokko.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX invitations_tenant_id_user_id_idx ON dokko.invitations (tenant_id, user_id);

CREATE TABLE dokko.service_accounts (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES dokko.tenants (id) ON DELETE CASCADE,
    name text NOT NULL,
    client_id text NOT NULL,
    -- argon2id PHC string of the client secret
    secret_hash text NOT NULL,
    -- bumped by every rotation; tokens carry the version they were issued under
    secret_version integer NOT NULL DEFAULT 1,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT service_accounts_client_id_key UNIQUE (client_id)
);
CREATE INDEX service_accounts_tenant_id_created_at_idx ON dokko.service_accounts (tenant_id, created_at, id);

CREATE TABLE dokko.permissions (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES dokko.tenants (id) ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT permissions_tenant_id_name_key UNIQUE (tenant_id, name),
    CONSTRAINT permissions_tenant_id_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX permissions_tenant_id_created_at_idx ON dokko.permissions (tenant_id, created_at, id);

CREATE TABLE dokko.document_sources (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES dokko.tenants (id) ON DELETE CASCADE,
    type text NOT NULL DEFAULT 'S3',
    -- the bucket name
    identifier text NOT NULL,
    status text NOT NULL DEFAULT 'unlocked',
    is_locked boolean NOT NULL DEFAULT false,
    -- ingestion settings, shown in the fields the seed reserves for them
    chunking_strategy text NOT NULL DEFAULT 'fixed_size',
    parser_strategy text NOT NULL DEFAULT 'default',
    embedding_model text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT document_sources_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT document_sources_identifier_key UNIQUE (identifier),
    CONSTRAINT document_sources_status_check CHECK (status IN ('unlocked', 'locked'))
);
CREATE INDEX document_sources_tenant_id_created_at_idx ON dokko.document_sources (tenant_id, created_at, id);

CREATE TABLE dokko.repositories (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    document_source_id uuid NOT NULL,
    name text NOT NULL,
    type text NOT NULL DEFAULT 'semantic',
    processing_started_at timestamptz,
    processing_ended_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repositories_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT repositories_document_source_fkey FOREIGN KEY (tenant_id, document_source_id)
        REFERENCES dokko.document_sources (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX repositories_source_created_at_idx
    ON dokko.repositories (tenant_id, document_source_id, created_at, id);
CREATE INDEX repositories_type_created_at_idx ON dokko.repositories (tenant_id, type, created_at, id);

CREATE TABLE dokko.repository_permissions (
    tenant_id uuid NOT NULL,
    repository_id uuid NOT NULL,
    permission_id uuid NOT NULL,
    PRIMARY KEY (repository_id, permission_id),
    CONSTRAINT repository_permissions_repository_fkey FOREIGN KEY (tenant_id, repository_id)
        REFERENCES dokko.repositories (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT repository_permissions_permission_fkey FOREIGN KEY (tenant_id, permission_id)
        REFERENCES dokko.permissions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX repository_permissions_tenant_id_repository_id_idx
    ON dokko.repository_permissions (tenant_id, repository_id);
CREATE INDEX repository_permissions_tenant_id_permission_id_idx
    ON dokko.repository_permissions (tenant_id, permission_id);
