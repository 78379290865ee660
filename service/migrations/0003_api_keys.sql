-- API keys: stored hashed (sha256 of the secret part); the key itself is shown once.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,          -- the public part of the key, "pk_<key_id>_<secret>"
    name        text NOT NULL UNIQUE,      -- recorded as `recorded_by` on every event this key writes
    role        text NOT NULL CHECK (role IN ('reader', 'recorder', 'auditor', 'admin')),
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
