-- Every delivery attempt, for operators and the fault-tolerance guarantees: which provider was
-- tried, when, and how it ended.
CREATE TABLE delivery_attempts (
    delivery_id uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    provider text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    -- sent | transient | permanent | expired; NULL while in flight (or if the worker died)
    outcome text,
    error text,
    provider_message_id text,
    PRIMARY KEY (delivery_id, attempt)
);
