-- Command-side tables of the HTTP API: idempotency keys and negotiation slugs.
-- Both are written in the same transaction as the events they concern, so they
-- can never disagree with the log, and every API process shares them.

-- One row per (API key, Idempotency-Key) whose request succeeded. The row and the
-- events it answers for commit together: a retry either finds both or neither.
CREATE TABLE idempotency_keys (
    -- The API key's public id: keys are scoped to the client that sent them.
    key_id          text NOT NULL,
    idempotency_key text NOT NULL,
    -- sha256 of method, path and the canonical JSON of the body: "the same request".
    request_digest  bytea NOT NULL,
    status_code     integer NOT NULL,
    -- The response exactly as first served (replayed byte for byte), and the
    -- headers that belong to it (Location, ETag).
    response_body   bytea NOT NULL,
    response_headers jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Kept at least 24 h (the contract); expired rows are ignored and purged.
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Slugs are unique across negotiations. The row is inserted with the
-- negotiation.opened event, so two concurrent opens with one slug produce one
-- negotiation; it also resolves `{ref}` without waiting for any projection.
CREATE TABLE negotiation_slugs (
    slug           text PRIMARY KEY,
    negotiation_id uuid NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now()
);
