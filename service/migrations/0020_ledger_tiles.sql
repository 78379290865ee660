-- The ledger v2 (service/audit/sealer.py): tiles, cosignatures, the sealing frontier.
--
-- The tree is stored as C2SP tlog-tiles, so proofs read O(log n) tiles and the
-- public routes serve them as they are. Cosignatures (the log's own signed time
-- and the witnesses') are kept per checkpoint. Only the sealer writes here: the
-- application role gets SELECT on these tables and nothing else.

-- Each leaf's entry: the event hash it seals (entry bundles serve it; the leaf hash
-- is SHA-256(0x00 || entry)). Filled for leaves sealed before this migration.
ALTER TABLE ledger_leaves ADD COLUMN entry bytea CHECK (length(entry) = 32);
ALTER TABLE ledger_leaves DISABLE TRIGGER ledger_leaves_append_only;
UPDATE ledger_leaves l SET entry = e.hash FROM events e WHERE e.id = l.event_id;
ALTER TABLE ledger_leaves ENABLE TRIGGER ledger_leaves_append_only;
-- (A leaf whose event was already gone keeps a NULL entry: verify reports it.)
-- The leaf order is the sealing order (an event whose transaction commits late is
-- sealed in the next round), so positions are no longer increasing with the index.

CREATE TABLE ledger_tiles (
    level   smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx     bigint NOT NULL CHECK (idx >= 0),
    -- 1 to 256 hashes of 32 bytes; a partial tile grows until it is full.
    hashes  bytea NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
);

CREATE TABLE ledger_cosignatures (
    tree_size  bigint NOT NULL REFERENCES ledger_checkpoints (tree_size),
    -- The cosigner's key name and 4-byte key id (C2SP signed-note); the log's own
    -- signed time is a cosignature by the log's key under the origin's name.
    signer     text NOT NULL,
    key_id     bytea NOT NULL CHECK (length(key_id) = 4),
    -- POSIX seconds, as signed.
    signed_at  bigint NOT NULL CHECK (signed_at >= 0),
    -- The 72 bytes after the key id: 8-byte time || Ed25519 signature.
    signature  bytea NOT NULL CHECK (length(signature) = 72),
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tree_size, key_id, signed_at)
);
CREATE INDEX ledger_cosignatures_signer ON ledger_cosignatures (key_id, tree_size DESC);

-- Where the next round starts: every event at or before (txid, position) is sealed.
CREATE TABLE ledger_frontier (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    txid       xid8 NOT NULL,
    position   bigint NOT NULL
);
INSERT INTO ledger_frontier (txid, position)
SELECT txid, position FROM ledger_leaves ORDER BY "index" DESC LIMIT 1;

-- Tiles only grow: a partial tile's hashes are a prefix of what replaces them.
CREATE FUNCTION parley_tiles_only_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND length(NEW.hashes) > length(OLD.hashes)
        AND substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) = OLD.hashes
        AND (NEW.level, NEW.idx) = (OLD.level, OLD.idx) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger tiles only grow: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER ledger_tiles_only_grow
    BEFORE UPDATE OR DELETE ON ledger_tiles
    FOR EACH ROW EXECUTE FUNCTION parley_tiles_only_grow();
CREATE TRIGGER ledger_tiles_no_truncate
    BEFORE TRUNCATE ON ledger_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_ledger_change();
CREATE TRIGGER ledger_cosignatures_append_only
    BEFORE UPDATE OR DELETE ON ledger_cosignatures
    FOR EACH ROW EXECUTE FUNCTION parley_refuse_ledger_change();
CREATE TRIGGER ledger_cosignatures_no_truncate
    BEFORE TRUNCATE ON ledger_cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_ledger_change();
