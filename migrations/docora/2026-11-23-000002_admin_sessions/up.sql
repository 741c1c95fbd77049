-- Sessions of the admin dashboard and its JSON API. Only the SHA-256 of the session cookie is
-- stored; the CSRF token is the one every state-changing request must echo.
CREATE TABLE docora.admin_sessions (
    token_digest bytea PRIMARY KEY,
    csrf_token text NOT NULL,
    username text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires_at_idx ON docora.admin_sessions (expires_at);
