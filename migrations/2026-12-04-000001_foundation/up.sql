-- Foundation: apps (tenants), users, the request ledger, one-time codes, deliveries,
-- sessions and refresh tokens, and the token signing keys.

CREATE TABLE apps (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    client_id text NOT NULL UNIQUE,
    -- keyed hash (HMAC-SHA-256 under PASSGATE_CLIENT_KEY) of the client secret; never the secret
    client_secret_hash bytea NOT NULL,
    redirect_uris text[] NOT NULL DEFAULT '{}',
    -- per-app policy overrides (JSON object); unknown keys are ignored
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    email text,
    phone_number text,
    username text,
    external_user_id text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    email_verified_at timestamptz,
    phone_number_verified_at timestamptz,
    last_login_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (app_id, email),
    UNIQUE (app_id, phone_number),
    UNIQUE (app_id, username),
    UNIQUE (app_id, external_user_id)
);

-- One row per command: the ledger that makes workers idempotent and answers polling.
CREATE TABLE auth_requests (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    idempotency_key text,
    -- keyed hash of the request body, to refuse an idempotency key reused with another body
    request_hash bytea,
    http_status smallint,
    -- the final answer; bodies holding tokens are sealed instead (response_sealed)
    response jsonb,
    response_sealed bytea,
    retry_after integer,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    completed_at timestamptz,
    UNIQUE (app_id, idempotency_key)
);
CREATE INDEX auth_requests_created_at ON auth_requests (created_at);

-- The current one-time code of one subject (a user, or an unknown identifier) in one app.
-- Sending again replaces the code but keeps the failure counter: attempts are per subject.
CREATE TABLE otp_challenges (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    subject text NOT NULL,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('email', 'sms')),
    -- keyed hash of the code; NULL when no code is live (unknown user, consumed, locked)
    code_hash bytea,
    code_length smallint NOT NULL,
    create_new_user boolean NOT NULL DEFAULT false,
    new_user_email text,
    new_user_phone_number text,
    request_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    failed_attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_sent_at timestamptz NOT NULL,
    window_started_at timestamptz NOT NULL,
    sends_in_window integer NOT NULL DEFAULT 0,
    consumed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (app_id, subject)
);

-- One message to one destination; also the outbox: the sealed secret stays here until sent.
CREATE TABLE deliveries (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    request_id uuid NOT NULL UNIQUE,
    channel text NOT NULL CHECK (channel IN ('email', 'sms')),
    destination text NOT NULL,
    template text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'expired')),
    attempts integer NOT NULL DEFAULT 0,
    provider text,
    provider_message_id text,
    error_class text,
    last_error text,
    sealed_payload bytea,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    sent_at timestamptz
);
CREATE INDEX deliveries_status ON deliveries (status) WHERE status IN ('queued', 'sending');

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr text[] NOT NULL,
    created_at timestamptz NOT NULL,
    last_authenticated_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    parent_id uuid,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Token signing keys. The private key is sealed under PASSGATE_DATA_KEY (workers only);
-- the API reads public keys to publish the JWKS.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    algorithm text NOT NULL,
    public_key bytea NOT NULL,
    private_key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL,
    retired_at timestamptz,
    -- after this the key is no longer published: every token it signed has expired
    unpublish_after timestamptz
);
