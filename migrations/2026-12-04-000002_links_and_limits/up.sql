-- Email magic links, and the shared counters behind abuse limits.

CREATE TABLE magic_links (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- keyed hash of the link code; the code itself is only in the email
    code_hash bytea NOT NULL UNIQUE,
    subject text NOT NULL,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri text NOT NULL,
    state text,
    create_new_user boolean NOT NULL DEFAULT false,
    new_user_email text,
    request_id uuid NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL,
    consumed_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX magic_links_subject ON magic_links (app_id, subject);

-- Fixed-window counters shared by every process: one row per limited key and window.
CREATE TABLE rate_limits (
    key text NOT NULL,
    window_start timestamptz NOT NULL,
    count integer NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_expires ON rate_limits (expires_at);
