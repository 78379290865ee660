-- The ledger: an RFC 9162 Merkle tree over the global log, and its signed checkpoints.
-- Written by the single sealing runner (service/ledger.py); append-only like the events.

CREATE TABLE ledger_leaves (
    -- 0-based place of the event in the tree: its rank in the gap-free commit order.
    "index"    bigint PRIMARY KEY CHECK ("index" >= 0),
    event_id   uuid NOT NULL UNIQUE,
    position   bigint NOT NULL UNIQUE,
    -- With position, the log checkpoint the sealer resumes after.
    txid       xid8 NOT NULL,
    -- SHA-256(0x00 || the event's chain hash), kept so proofs are computed from it
    -- even if the events table were altered afterwards.
    leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32)
);

CREATE TABLE ledger_checkpoints (
    tree_size  bigint PRIMARY KEY CHECK (tree_size >= 0),
    root       bytea NOT NULL CHECK (length(root) = 32),
    origin     text NOT NULL,
    signed_at  timestamptz NOT NULL,
    -- Ed25519 over the checkpoint text (origin, size, base64 root; see service/signed_note.py).
    signature  bytea NOT NULL,
    -- The signer's raw 32-byte public key: which key signed each checkpoint.
    public_key bytea NOT NULL CHECK (length(public_key) = 32)
);

CREATE FUNCTION parley_refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_leaves_append_only
    BEFORE UPDATE OR DELETE ON ledger_leaves
    FOR EACH ROW EXECUTE FUNCTION parley_refuse_ledger_change();
CREATE TRIGGER ledger_leaves_no_truncate
    BEFORE TRUNCATE ON ledger_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_ledger_change();
CREATE TRIGGER ledger_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION parley_refuse_ledger_change();
CREATE TRIGGER ledger_checkpoints_no_truncate
    BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_ledger_change();
