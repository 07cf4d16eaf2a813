-- People who own protections, and the bearer tokens they use on the admin API.
-- A token is shown once at creation; only its SHA-256 digest is stored.

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_format_check CHECK (email = lower(email) AND email ~ '^[^@\s]+@[^@\s]+$')
);

CREATE UNIQUE INDEX index_users_on_email ON users (email);

CREATE TABLE api_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    token_sha256 bytea NOT NULL,
    role text NOT NULL,
    label text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_tokens_role_check CHECK (role IN ('admin', 'operator', 'viewer')),
    CONSTRAINT api_tokens_digest_check CHECK (octet_length(token_sha256) = 32),
    CONSTRAINT api_tokens_expiry_check CHECK (expires_at > created_at)
);

CREATE UNIQUE INDEX index_api_tokens_on_token_sha256 ON api_tokens (token_sha256);
CREATE INDEX index_api_tokens_on_user_id ON api_tokens (user_id);
