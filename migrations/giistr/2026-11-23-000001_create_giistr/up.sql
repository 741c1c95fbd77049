-- Giistr: users identified by a GitHub token, their tags, their repositories, and which tag is
-- on which repository. Runs with search_path = giistr (see service-kit's db::migrate).

CREATE TABLE giistr.users (
    id             uuid        PRIMARY KEY,
    github_user_id bigint      NOT NULL,
    github_login   text        NOT NULL,
    -- An opaque id of the stored token (what the API shows as token_id), renewed with the token.
    token_id       uuid        NOT NULL,
    -- SHA-256 of the GitHub token: the token itself is never stored.
    token_digest   bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_github_user_id_key UNIQUE (github_user_id),
    CONSTRAINT users_token_id_key UNIQUE (token_id),
    CONSTRAINT users_token_digest_key UNIQUE (token_digest),
    CONSTRAINT users_token_digest_length CHECK (octet_length(token_digest) = 32)
);
CREATE INDEX users_created_at_idx ON giistr.users (created_at, id);

CREATE TABLE giistr.tags (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES giistr.users (id) ON DELETE CASCADE,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tags_user_id_name_key UNIQUE (user_id, name),
    -- Lets associations prove their tag belongs to the same user.
    CONSTRAINT tags_id_user_id_key UNIQUE (id, user_id),
    CONSTRAINT tags_name_length CHECK (char_length(name) BETWEEN 1 AND 255)
);
-- Listing a user's tags in creation order (also the index of the user_id foreign key).
CREATE INDEX tags_user_id_created_at_idx ON giistr.tags (user_id, created_at, id);

CREATE TABLE giistr.repos (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES giistr.users (id) ON DELETE CASCADE,
    github_repo_id  text        NOT NULL,
    repository_name text,
    user_login      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repos_user_id_github_repo_id_key UNIQUE (user_id, github_repo_id),
    CONSTRAINT repos_id_user_id_key UNIQUE (id, user_id),
    CONSTRAINT repos_github_repo_id_length CHECK (char_length(github_repo_id) BETWEEN 1 AND 100)
);
CREATE INDEX repos_user_id_created_at_idx ON giistr.repos (user_id, created_at, id);

CREATE TABLE giistr.repo_tag_assocs (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    tag_id     uuid        NOT NULL,
    repo_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repo_tag_assocs_tag_id_repo_id_key UNIQUE (tag_id, repo_id),
    -- The tag and the repository must both belong to the association's user; deleting either
    -- deletes the association.
    CONSTRAINT repo_tag_assocs_tag_fkey FOREIGN KEY (tag_id, user_id)
        REFERENCES giistr.tags (id, user_id) ON DELETE CASCADE,
    CONSTRAINT repo_tag_assocs_repo_fkey FOREIGN KEY (repo_id, user_id)
        REFERENCES giistr.repos (id, user_id) ON DELETE CASCADE
);
-- (tag_id, repo_id) serves lookups by tag; these serve lookups by repository and by user.
CREATE INDEX repo_tag_assocs_repo_id_user_id_idx ON giistr.repo_tag_assocs (repo_id, user_id);
CREATE INDEX repo_tag_assocs_user_id_idx ON giistr.repo_tag_assocs (user_id);
